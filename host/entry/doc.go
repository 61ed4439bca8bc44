// Package entry is unwindd's entry tracker: it turns a source's time-ordered
// stream of task records (comm, fork, exit, mmap), events (samples,
// tracepoints, syscalls) and lost-record notices into kernel entries on the
// deferred engine and events on the plugins' dispatcher (DESIGN §5).
//
// The tracker is source-neutral: a perf.data replay (package replay) and the
// live sources fill the same small input types ([Sample], [Mapping]) and call
// [Tracker.Sample], [Tracker.Comm], [Tracker.Fork], [Tracker.Exit],
// [Tracker.Mmap] and [Tracker.Lost] in time order. The rules:
//
//   - A sample taken in user mode is an entry of its own (the timer
//     interrupt): Open, Event, EndEntry, Close.
//   - A [BoundaryEnter] event (raw_syscalls:sys_enter) opens an entry with
//     its user registers and memory; the tid's later kernel-mode events
//     belong to it; a [BoundaryExit] event (sys_exit) is its last event and
//     closes it.
//   - A kernel-mode event of a tid with no open entry is an entry of its own,
//     with the user registers it carries, if any.
//   - [Tracker.Lost] ends the open entries of the tids it names (all of them
//     when it names none): a stack after a gap is never joined with events
//     from before it.
//   - [Tracker.Exit] ends the task with [deferred.Task.Exit], so pending work
//     still runs (SEMANTICS R16).
//
// A task's kind (64-bit, compat, kernel thread) comes from the events: the
// engine refuses requests for compat tasks and kernel threads (R4, R5), but
// their events are still delivered, without a cookie. A user stack is walked
// from the memory the event carries: a stack snapshot at the user sp, a live
// task's memory, or — for recordings without either (perf record -g) — the
// user callchain the kernel recorded, replayed by [CallchainStepper] so that
// every frame is marked [x86_64.TypeCallchain]; engines that replay such
// callchains must be built with [NewUnwinder].
//
// Processes' mappings are kept in [Spaces], which a pluginhost Resolver reads
// concurrently with the tracker ([Spaces.Find]). Mappings are never dropped
// when a process execs or exits, because stacks queued for delivery may
// still need them; a newer mapping replaces the parts of older ones it
// overlaps.
//
// # Concurrency
//
// A Tracker belongs to one source goroutine (the owner of its tasks' entries,
// see package deferred). [Spaces] is safe for concurrent use.
package entry
