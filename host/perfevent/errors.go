package perfevent

import (
	"errors"
	"fmt"
	"strings"
)

// Errors an [*Error] may wrap (test with errors.Is). A refusal for lack of
// privilege wraps fs.ErrPermission (the kernel's EACCES or EPERM, or
// [Preflight]'s finding), whatever the explanation says.
var (
	// ErrNoProcess means the target pid does not exist (or has exited).
	ErrNoProcess = errors.New("perfevent: no such process")
	// ErrKernelThread means the target is a kernel thread, which has no
	// user side to trace.
	ErrKernelThread = errors.New("perfevent: target is a kernel thread")
	// ErrNoTracefs means tracefs is not mounted where it was looked for.
	ErrNoTracefs = errors.New("perfevent: tracefs not found")
	// ErrNoTracepoint means a tracepoint does not exist in tracefs.
	ErrNoTracepoint = errors.New("perfevent: no such tracepoint")
	// ErrNotSupported means the kernel lacks what the session needs (perf
	// events, an event type, a sample field).
	ErrNotSupported = errors.New("perfevent: not supported by this kernel")
)

// Error is a step of opening a session that failed — a preflight check,
// perf_event_open, an ioctl or mmap on an event — with what was being done
// and, in Why, what is missing and how to get it. It is never a bare errno.
type Error struct {
	Op    string // "perf_event_open", "mmap", "ioctl(PERF_EVENT_IOC_SET_OUTPUT)", "tracefs"…
	Event string // the event: "cpu-clock", "dummy", "raw_syscalls:sys_enter"; "" if none
	PID   int    // the task the event is for; 0 if none
	CPU   int    // the CPU; -1 if none
	Err   error  // the errno, or a sentinel of this package, or fs.ErrPermission
	Why   string // the explanation: what is missing, what to do
}

// Error formats e as "perfevent: OP(EVENT, pid PID, cpu CPU): ERR: WHY".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("perfevent: ")
	b.WriteString(e.Op)
	var args []string
	if e.Event != "" {
		args = append(args, e.Event)
	}
	if e.PID != 0 {
		args = append(args, fmt.Sprintf("pid %d", e.PID))
	}
	if e.CPU >= 0 {
		args = append(args, fmt.Sprintf("cpu %d", e.CPU))
	}
	if len(args) > 0 {
		b.WriteString("(" + strings.Join(args, ", ") + ")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(strings.TrimPrefix(e.Err.Error(), "perfevent: "))
	}
	if e.Why != "" {
		b.WriteString(": ")
		b.WriteString(e.Why)
	}
	return b.String()
}

// Unwrap returns the errno or sentinel e wraps.
func (e *Error) Unwrap() error { return e.Err }
