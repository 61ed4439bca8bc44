// Package ptrace stops every thread of a live process with ptrace(2), reads
// their user registers, and lets them run on again; [Tracer.Stacks] walks
// each stopped thread's user stack from live memory on the way.
//
// A [Tracer] owns one OS thread, locked for its whole life, and every ptrace
// and wait call it makes comes from that thread: Linux ties a tracee to the
// tracer thread, not to the tracer process. [Tracer.Stop] attaches to each
// thread with PTRACE_SEIZE and stops it with PTRACE_INTERRUPT (so no signal
// is sent and a job-control stop is left as it was), re-listing
// /proc/PID/task until no thread appears that has not been stopped, and reads
// registers with PTRACE_GETREGS. [Process.Detach] lets every thread run on,
// re-injecting any signal a thread was stopped on. [Tracer.Close] detaches
// whatever is still attached; if the Tracer's thread exits, the kernel
// detaches its tracees by itself.
//
// Races are part of the contract: a thread that exits while the process is
// being stopped is reported in [Process.Exited], not as an error; a thread
// that never stops (uninterruptible sleep) makes Stop fail when its context
// ends, and stays attached until the Tracer has nothing else attached, when
// its OS thread is retired to release it.
//
// Errors match, with errors.Is, the sentinels below ([ErrNoProcess],
// [ErrExited], [ErrKernelThread], [ErrCompat], [ErrTraced], [ErrSelf],
// [ErrClosed]) or [fs.ErrPermission] when the caller may not trace the
// process (the message names CAP_SYS_PTRACE). A Tracer is safe for concurrent
// use; its requests are served one at a time. A [Process] is a plain value
// apart from Detach, which may be called from any goroutine, more than once.
//
// x86-64 only, like the unwinder: each [Thread] carries the mode its code
// segment selector says it runs in ([x86_64.ModeFromCS]); Stacks refuses to
// walk a 32-bit (compat) thread.
package ptrace
