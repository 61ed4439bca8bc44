package perfevent

import (
	"fmt"
	"math/bits"
	"strings"
	"time"
)

// Options configure [Open]. PID is required; every other zero field means
// the documented default.
type Options struct {
	// PID is the target process: its threads are traced, and the processes
	// and threads they start afterwards (perf's inherit).
	PID int
	// Frequency is the cpu-clock sampling rate in Hz; 0 means no sampling.
	// It must not exceed kernel.perf_event_max_sample_rate.
	Frequency int
	// StackSize is how many bytes of user stack each sample (and each
	// tracepoint hit with Stack) copies (PERF_SAMPLE_STACK_USER), a multiple
	// of 8 up to MaxStackSize; 0 means DefaultStackSize.
	StackSize int
	// Tracepoints are the tracepoints to record.
	Tracepoints []Tracepoint
	// TracefsDir is where tracefs is mounted; "" means the first of
	// /sys/kernel/tracing and /sys/kernel/debug/tracing that holds an
	// events directory. Only read when Tracepoints is not empty.
	TracefsDir string
	// RingPages is the size of each CPU's ring buffer in pages (its data
	// area, without the metadata page), a power of two; 0 means
	// DefaultRingPages.
	RingPages int
	// MaxDelay bounds how long a record may wait in a ring before the reader
	// looks at the rings (the poll timeout while the rings fill up less
	// than their wakeup watermark); 0 means DefaultMaxDelay.
	MaxDelay time.Duration
}

// Tracepoint names a tracepoint (tracefs events/Group/Name).
type Tracepoint struct {
	Group, Name string // "raw_syscalls", "sys_enter"
	// Stack asks for the user registers and a user stack copy with each
	// hit (PERF_SAMPLE_REGS_USER and PERF_SAMPLE_STACK_USER): set it only
	// when some plugin may want the stack of this event, since the copy is
	// most of what the kernel writes.
	Stack bool
}

// String returns "group:name".
func (t Tracepoint) String() string { return t.Group + ":" + t.Name }

// Defaults and limits of [Options].
const (
	DefaultStackSize = 8192                  // bytes of user stack per sample: perf record --call-graph dwarf's default
	MaxStackSize     = 65528 - 512           // a record's size is a u16: room for the other fields
	DefaultRingPages = 256                   // 1 MiB per CPU with 4 KiB pages: about 120 samples with 8 KiB stacks
	DefaultMaxDelay  = 10 * time.Millisecond // about 100 wakeups a second on a quiet target
)

// withDefaults checks o and fills its zero fields.
func (o Options) withDefaults() (Options, error) {
	if o.PID <= 0 {
		return o, fmt.Errorf("perfevent: PID %d must be > 0", o.PID)
	}
	if o.Frequency < 0 {
		return o, fmt.Errorf("perfevent: Frequency %d must be >= 0", o.Frequency)
	}
	if o.StackSize == 0 {
		o.StackSize = DefaultStackSize
	}
	if o.StackSize < 0 || o.StackSize%8 != 0 || o.StackSize > MaxStackSize {
		return o, fmt.Errorf("perfevent: StackSize %d must be a multiple of 8 between 8 and %d", o.StackSize, MaxStackSize)
	}
	if o.RingPages == 0 {
		o.RingPages = DefaultRingPages
	}
	if o.RingPages < 0 || bits.OnesCount(uint(o.RingPages)) != 1 {
		return o, fmt.Errorf("perfevent: RingPages %d must be a power of two", o.RingPages)
	}
	if o.MaxDelay == 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	if o.MaxDelay < 0 {
		return o, fmt.Errorf("perfevent: MaxDelay %v must be >= 0", o.MaxDelay)
	}
	seen := make(map[string]bool)
	for _, tp := range o.Tracepoints {
		if tp.Group == "" || tp.Name == "" || strings.ContainsAny(tp.Group, "/:") || strings.ContainsAny(tp.Name, "/:") || tp.Group[0] == '.' || tp.Name[0] == '.' {
			return o, fmt.Errorf("perfevent: bad tracepoint %q", tp.String())
		}
		if seen[tp.String()] {
			return o, fmt.Errorf("perfevent: tracepoint %s given twice", tp)
		}
		seen[tp.String()] = true
	}
	return o, nil
}
