// Package deferred is unwindd's deferred user-stack unwinding engine: the
// user-space twin of the Linux kernel's unwind_deferred (Linux 6.17), held to
// the numbered rules of SEMANTICS.md.
//
// A tracer registers a [Callback] with [Engine.Register] and gets one bit of
// a 64-bit mask (bits 0 and 1 are reserved for PENDING and USED, so at most 62
// tracers; R1, R2). When an event fires inside a task's kernel entry, the
// tracer asks for that task's user stack with [Task.Request] (or
// [Engine.Request] from any goroutine) and gets the entry's [Cookie] at once
// (R6–R10). When the entry closes ([Task.Close], the host's "return to user
// space"), the stack is walked once and every tracer that asked is called
// exactly once with the same trace and cookie (R11–R14, R17). A task that
// exits with work pending still gets its callbacks ([Task.Exit], R16). A
// cancelled tracer is never called again and its bit is cleared from every
// task before it can be reused ([Engine.Cancel], R3). Kernel threads and
// 32-bit (compat) tasks are refused (R4, R5). [Task.Unwind] is the direct,
// non-deferred unwind that shares the entry's cache (R15).
//
// # Who may call what
//
// A task's entry has an owner: the source goroutine that calls [Task.Open],
// [Task.Close] and [Task.Exit] for it, the analogue of the CPU the kernel
// task runs on. [Task.Request] and [Task.Unwind] are the owner's calls (and
// the calls a [Callback] may make while the entry closes): the hot path, one
// atomic fetch-or on the task's mask, lock-free and allocation-free (R9).
// [Engine.Request] may be called from any goroutine at any time, also while
// the entry closes; it pins the task for the few nanoseconds it runs, so that
// a close either sees its request or the request fails with [ErrNoEntry]. (A
// requester preempted while pinned delays that Close until it runs again.)
//
// As in the kernel, a tracer must stop requesting before it is cancelled (a
// kernel tracer unregisters its probes first). A request racing with its own
// tracer's [Engine.Cancel] is refused with [ErrCancelled] and its bit removed
// again; callbacks are never made to a cancelled tracer after Cancel returns.
// A [Callback] must not call [Engine.Cancel] or [Engine.Register] (the
// kernel's synchronize_srcu inside an srcu read section deadlocks the same
// way).
//
// # Errors
//
// Requests return the kernel's values: 0 (queued now), 1 (already queued or
// already called in this entry) or a negative errno, with an error that
// matches one of the sentinels below through errors.Is ([Errno] maps it).
//
// # Cookies
//
// A cookie is minted per shard ([Engine.Shard], the analogue of the kernel's
// CPU): low 32 bits shard id + 1, high 32 bits that shard's counter, which
// advances by 2 and is always odd (R7). A cookie is never 0.
package deferred
