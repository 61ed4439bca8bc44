// Package ptrace is unwindd's ptrace(2) side: it stops a live process to
// walk its threads' stacks ([Tracer.Stacks]), starts a program stopped
// before its first instruction ([Tracer.Start]), and is the ptrace live
// source ([Tracer.Trace]), the kernel's deferred unwinding made literal.
//
// A [Tracer] owns one OS thread, locked for its whole life, and every ptrace
// and wait call it makes comes from that thread: Linux ties a tracee to the
// tracer thread, not to the tracer process.
//
// # Stopping a process
//
// [Tracer.Stop] attaches to each thread with PTRACE_SEIZE and stops it with
// PTRACE_INTERRUPT (so no signal is sent and a job-control stop is left as
// it was), re-listing /proc/PID/task until no thread appears that has not
// been stopped, and reads registers with PTRACE_GETREGS. [Process.Detach]
// lets every thread run on, re-injecting any signal a thread was stopped on.
// [Tracer.Close] detaches whatever is still attached; if the Tracer's thread
// exits, the kernel detaches its tracees by itself.
//
// Races are part of the contract: a thread that exits while the process is
// being stopped is reported in [Process.Exited], not as an error; a thread
// that never stops (uninterruptible sleep) makes Stop fail when its context
// ends, and stays attached until the Tracer has nothing else attached, when
// its OS thread is retired to release it.
//
// # Starting a program
//
// [Tracer.Start] forks on the tracer thread (PTRACE_TRACEME: the forking
// thread becomes the tracer) and returns once the program is stopped right
// after its execve. [Tracer.Release] then lets it run untraced (for the perf
// source, which opens its events first) and [Tracer.Wait] collects its exit
// status; or [Tracer.Trace] traces it from there.
//
// # The live source
//
// [Tracer.Trace] follows a process (one Start holds, or any other, attached
// with PTRACE_SEIZE) and every thread and child process it makes, feeding an
// [entry.Tracker]: a system call is an entry, opened at its syscall-entry
// stop with the thread's user registers and its process's live memory
// ([x86_64.ProcessMemory]: process_vm_readv, a window per read, not a word)
// and closed at its syscall-exit stop, where the deferred engine walks the
// user stack if a plugin asked for it, before the thread returns to user
// space. Sampling interrupts every thread running in user space at the
// configured rate (PTRACE_INTERRUPT: the stop is the sample); a thread
// running inside a system call gets a kernel-mode sample in its open entry
// instead, without being stopped (an interrupt would cut a blocking call
// short). Mappings come from /proc/PID/maps (at the start, at each execve,
// after each mmap-like call that may map code), names from /proc (at the
// start, at exec, at prctl(PR_SET_NAME)). Signals are passed on; job-control
// stops are kept (PTRACE_LISTEN) until SIGCONT. When ctx ends, every thread
// is stopped, the open entries are closed (unwound), and every thread is
// detached: an attached process runs on unharmed; a started one is killed
// unless [TraceOptions].LeaveRunning.
//
// The tracer thread blocks in wait4, as strace does, so that a stopping
// tracee wakes it on its own CPU; a small traced child process (the waker)
// lets other goroutines wake it for sampling ticks, the end of the context
// and requests.
//
// # Errors and concurrency
//
// Errors match, with errors.Is, the sentinels below ([ErrNoProcess],
// [ErrExited], [ErrKernelThread], [ErrCompat], [ErrTraced], [ErrSelf],
// [ErrClosed], [ErrNotStarted], [ErrBusy]) or [fs.ErrPermission] when the
// caller may not trace the process (the message names CAP_SYS_PTRACE). A
// Tracer is safe for concurrent use; its requests are served one at a time,
// also while a Trace runs (one Trace at a time). A [Process] is a plain
// value apart from Detach, which may be called from any goroutine, more
// than once. The [entry.Tracker] given to Trace is used on the tracer thread
// until Trace returns.
//
// x86-64 only, like the unwinder: each [Thread] carries the mode its code
// segment selector says it runs in ([x86_64.ModeFromCS]); Stacks refuses to
// walk a 32-bit (compat) thread, and Trace delivers a compat task's events
// (Kind compat) while the engine refuses its stacks (R5).
package ptrace
