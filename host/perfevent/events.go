package perfevent

import (
	"fmt"
	"io/fs"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/perfdata"
)

// event is one event of a session, opened on every CPU for every thread.
type event struct {
	name     string
	attr     perfdata.EventAttr
	tp       *Tracepoint           // a tracepoint's name; nil for the others
	format   *perfdata.EventFormat // a tracepoint's format
	tracking bool                  // the dummy event carrying mmap, comm and task records
}

// The sample_type bits every event of a session has: the sample id fields
// (the same for all, so that the id and the time are at the same places in
// every record: see perfdata.Decoder) and what a sample needs besides.
const baseSampleType = perfdata.SampleIdentifier | perfdata.SampleIP | perfdata.SampleTID |
	perfdata.SampleTime | perfdata.SampleCPU | perfdata.SampleID | perfdata.SamplePeriod

// clockMonotonic is the clock of every event's timestamps (use_clockid):
// CLOCK_MONOTONIC, which the reader also reads (clock_gettime) to know how
// far the rings have been read in time.
const clockMonotonic = unix.CLOCK_MONOTONIC

// attrSize is the size of unix.PerfEventAttr (PERF_ATTR_SIZE_VER7).
const attrSize = uint32(unsafe.Sizeof(unix.PerfEventAttr{}))

// plan is what Open opens: the options with their defaults, the system's
// limits, the CPUs and the events, tracking first.
type plan struct {
	opts   Options
	sys    system
	cpus   []int
	events []*event
}

// newPlan checks opts against the system (see Preflight) and lays the events
// out.
func newPlan(opts Options) (*plan, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &plan{opts: opts, sys: readSystem()}
	if !p.sys.haveParanoid {
		return nil, &Error{Op: "perf_event_open", CPU: -1, Err: ErrNotSupported,
			Why: "no /proc/sys/kernel/perf_event_paranoid: this kernel has no perf events (CONFIG_PERF_EVENTS)"}
	}
	if opts.Frequency > 0 && p.sys.maxRate > 0 && opts.Frequency > p.sys.maxRate {
		return nil, &Error{Op: "perf_event_open", Event: "cpu-clock", PID: opts.PID, CPU: -1, Err: unix.EINVAL,
			Why: fmt.Sprintf("sampling frequency %d Hz is above kernel.perf_event_max_sample_rate %d: lower Frequency or raise the sysctl",
				opts.Frequency, p.sys.maxRate)}
	}
	if err := checkTarget(opts.PID); err != nil {
		return nil, err
	}
	if p.cpus, err = onlineCPUs(); err != nil {
		return nil, err
	}
	ringBytes := opts.RingPages * os.Getpagesize()
	common := perfdata.AttrDisabled | perfdata.AttrInherit | perfdata.AttrSampleIDAll | perfdata.AttrUseClockID |
		perfdata.AttrFlags(unix.PerfBitWatermark)
	mk := func(name string, typ uint32, config uint64, st perfdata.SampleType, flags perfdata.AttrFlags) *event {
		return &event{name: name, attr: perfdata.EventAttr{
			Type: typ, Size: attrSize, Config: config, SamplePeriod: 1,
			SampleType: st, Flags: common | flags,
			WakeupEvents: uint32(ringBytes / 4), // wakeup_watermark, in bytes
			ClockID:      clockMonotonic,
		}}
	}
	userStack := func(ev *event) {
		ev.attr.SampleType |= perfdata.SampleRegsUser | perfdata.SampleStackUser
		ev.attr.SampleRegsUser = uint64(x86_64.SampleRegsUserMask)
		ev.attr.SampleStackUser = uint32(opts.StackSize)
	}
	track := mk("dummy", perfdata.TypeSoftware, unix.PERF_COUNT_SW_DUMMY, baseSampleType,
		perfdata.AttrMmap|perfdata.AttrMmap2|perfdata.AttrComm|perfdata.AttrCommExec|perfdata.AttrTask|
			perfdata.AttrFlags(unix.PerfBitExcludeKernel))
	track.tracking = true
	p.events = append(p.events, track)
	if opts.Frequency > 0 {
		ev := mk("cpu-clock", perfdata.TypeSoftware, unix.PERF_COUNT_SW_CPU_CLOCK, baseSampleType, perfdata.AttrFreq)
		ev.attr.SamplePeriod = uint64(opts.Frequency) // sample_freq
		userStack(ev)
		p.events = append(p.events, ev)
	}
	if len(opts.Tracepoints) > 0 {
		dir, err := findTracefs(opts.TracefsDir)
		if err != nil {
			return nil, err
		}
		for i := range opts.Tracepoints {
			tp := &opts.Tracepoints[i]
			f, err := readTracepoint(dir, *tp)
			if err != nil {
				return nil, err
			}
			ev := mk(tp.String(), perfdata.TypeTracepoint, f.ID, baseSampleType|perfdata.SampleRaw, 0)
			ev.tp, ev.format = tp, f
			if tp.Stack {
				userStack(ev)
			}
			p.events = append(p.events, ev)
		}
	}
	for _, ev := range p.events {
		if why := p.sys.paranoidWhy(ev, false); why != "" {
			return nil, &Error{Op: "perf_event_open", Event: ev.name, PID: opts.PID, CPU: -1, Err: fs.ErrPermission, Why: why}
		}
	}
	return p, nil
}

// unixAttr is a as perf_event_open takes it.
func unixAttr(a *perfdata.EventAttr) *unix.PerfEventAttr {
	return &unix.PerfEventAttr{
		Type:               a.Type,
		Size:               attrSize,
		Config:             a.Config,
		Sample:             a.SamplePeriod,
		Sample_type:        uint64(a.SampleType),
		Read_format:        uint64(a.ReadFormat),
		Bits:               uint64(a.Flags),
		Wakeup:             a.WakeupEvents,
		Bp_type:            a.BPType,
		Ext1:               a.Config1,
		Ext2:               a.Config2,
		Branch_sample_type: a.BranchSampleType,
		Sample_regs_user:   a.SampleRegsUser,
		Sample_stack_user:  a.SampleStackUser,
		Clockid:            a.ClockID,
		Sample_regs_intr:   a.SampleRegsIntr,
		Aux_watermark:      a.AuxWatermark,
		Sample_max_stack:   a.SampleMaxStack,
		Aux_sample_size:    a.AuxSampleSize,
		Sig_data:           a.SigData,
	}
}
