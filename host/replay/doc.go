// Package replay feeds perf.data files (perf record's output, read by
// package perfdata) through unwindd's host: the entry tracker (package
// entry), the deferred engine and the plugins (package pluginhost), so that
// every result of the live host can be had, and checked, offline.
//
// [Feed] is the source: it reads a file's records in perf's time order and
// hands them to an [entry.Tracker] — samples and tracepoints with their user
// registers and stack snapshot (perf record --call-graph dwarf) or, for a
// recording without snapshots (perf record -g), the user callchain the
// kernel recorded; COMM, FORK, EXIT and MMAP/MMAP2 for task lifetimes and
// mappings; LOST and LOST_SAMPLES, which end every open entry (a lost record
// does not say whose events were lost). [Resolver] names the addresses of
// the stacks for the plugins: the mapping from the file's MMAP records, the
// build-id from the record or the file's build-id table, the function from
// the mapped file's ELF symbols on the local filesystem (package symbolize),
// unless the local file's build-id shows it is not the recorded one. [Run]
// does a whole replay: plugins started, the file fed, every plugin drained,
// a [Summary].
//
// # Errors
//
// A file that is not perf.data, or is damaged, fails with perfdata's errors
// (wrapped); records before the damage are replayed first. A plugin that
// does not start fails Run before anything is fed.
//
// # Concurrency
//
// Feed runs on its caller's goroutine, which owns the tracker; a Resolver is
// safe for concurrent use.
package replay
