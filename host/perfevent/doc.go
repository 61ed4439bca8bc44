// Package perfevent is unwindd's live perf source: it records a running
// process tree with perf_event_open and hands its records out as the same
// [perfdata.Record] values the perf.data reader gives, so that one feed
// drives the entry tracker for a recording and for a live target alike.
//
// [Open] opens, for every online CPU and every thread of the target (its
// later children are inherited): a tracking event (a software dummy with
// mmap2, comm and task records), cpu-clock sampling at Options.Frequency
// and the requested tracepoints, each with the user registers and a user
// stack copy only where Options asks for them (a stack is most of what the
// kernel writes). All events of a CPU write into one ring buffer
// (PERF_EVENT_IOC_SET_OUTPUT), timestamped with CLOCK_MONOTONIC; they are
// opened disabled and enabled together once every ring exists, so that a
// target held stopped after its execve loses nothing when it is released.
// What existed before (the target's threads and executable mappings) is
// synthesized from /proc as COMM and MMAP2 records, as perf record does.
// [Preflight] checks, before anything is opened, what the kernel will allow
// (perf_event_paranoid, capabilities, tracefs and each tracepoint); every
// error is an [*Error] that says what is missing.
//
// [Session.ReadInto] reads the rings in place, through their mmap'ed data
// areas, without a syscall per record; only a record that wraps around a
// ring's end is copied. epoll_wait waits on the rings' wakeup watermarks (a
// quarter of a ring) or Options.MaxDelay, whichever comes first.
//
// # Order
//
// Records come out in timestamp order across CPUs, which the entry tracker
// needs (a sys_enter before its sys_exit, a task's MMAP2 before its
// samples). perf's own report orders by "finished rounds": records read
// after a pass over the rings may not be older than the newest of the pass
// before last, which assumes that rounds are long. Here the bound is the
// clock: a pass reads CLOCK_MONOTONIC, then every ring's head, and a record
// stamped more than orderSlack (2 ms) before that time was in its ring
// already, so the queued records up to that time are let through in
// timestamp order. An idle CPU's ring thus holds nobody back, and a record
// of one task can never overtake an earlier one of the same task (which
// was published before the later one was even stamped). A record published
// later than orderSlack after its stamp is delivered late and counted
// (Stats.Unordered). Records wait for their turn in place, in the ring;
// when a ring fills past half with them, they are copied out (spilled) so
// that the kernel has room and drops nothing it need not drop.
//
// # Lifetime and concurrency
//
// A delivered record's byte slices alias the ring and stay valid until the
// next ReadInto: the space is then given back to the kernel. ReadInto and
// Stats belong to one goroutine; Close may be called from another (it
// wakes ReadInto). The session's context, given to Open, ends the
// recording: the events are disabled, the rings drained, then ReadInto
// returns io.EOF, as it does when the target and all its children have
// exited.
//
// This package reads /proc (through host/procfs) and tracefs; it decodes
// nothing itself ([perfdata.Decoder] does).
package perfevent
