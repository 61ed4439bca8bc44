// Package procfs reads what unwindd needs about a live process from /proc:
// its memory mappings ([ReadMaps], /proc/PID/maps, sorted, with a binary
// search by address in [Maps.Find]), its threads ([Threads],
// /proc/PID/task), a task's name ([Comm]) and state ([ReadStat],
// [ReadStatus]).
//
// Kernel threads are told apart by the PF_KTHREAD bit of the flags field of
// /proc/PID/stat ([Stat.KernelThread]): the kernel sets it on every kernel
// thread and on nothing else. The other signs are not reliable: an empty
// /proc/PID/maps or a missing /proc/PID/exe target also belong to a zombie,
// and reading exe needs the right to ptrace the task.
//
// Errors from a missing task wrap [fs.ErrNotExist] (the task never existed
// or is gone); [ParseMaps] returns a [*FormatError] naming the line at fault.
// Everything here reads /proc anew on each call and keeps no state: the
// functions are safe for concurrent use, and the [Maps] they return are
// plain values. Mapping file offsets to symbols is left to host/symbolize.
package procfs
