// Command unwindd is the unwindd command line: user-stack tracing on Linux
// x86-64 with the kernel's deferred-unwinding model, in user space (see
// DESIGN.md).
//
//	unwindd run [--config FILE] [--source perf|ptrace] -- CMD ARGS...   trace a command live
//	unwindd run -p PID [--duration D]                                    attach to a process
//	unwindd replay [--config FILE] [--plugin PATH]... perf.data         replay a perf record file
//	unwindd stack -p PID | --after D -- CMD ARGS...                     print every thread's user stack
//	unwindd config default | check FILE                                 the embedded deployment; check one
//	unwindd plugins list [--config FILE]                                the plugins, their versions and subscriptions
//	unwindd version
//
// run and replay start the deployment's plugins (go-plugin processes),
// feed them events from the source (perf_event_open or ptrace live, or a
// perf.data file), unwind each kernel entry's user stack once for every
// plugin that asked, and print a summary when done: records, entries,
// events, unwinds and the callbacks served from an entry's cache, tasks and
// mappings, what was lost, and per plugin its events, callbacks, refusals,
// drops, lost notices, batches and, for a decide-mode plugin, its calls and
// timeouts. --summary-json FILE writes the same counts as JSON. On a
// terminal, run redraws a progress line on stderr (elapsed, events and
// their rate, stacks, lost) and replay of a large file its bytes read;
// nothing extra is written when stderr is not a terminal.
//
// `unwindd stack` stops every thread of the process with ptrace
// (PTRACE_SEIZE + PTRACE_INTERRUPT, host/ptrace), walks each user stack from
// live memory (arch/x86_64), names each frame from /proc/PID/maps and the
// mapped file's ELF symbols (host/procfs, host/symbolize), detaches and lets
// the process run on. Each thread prints as:
//
//	TID 1234 (demo):
//	#0  0x00005555555551a9 leaf+0x10 (/path/to/demo+0x11a9) [regs]
//	#1  0x00005555555551c4 c+0x14 (/path/to/demo+0x11c4) [fp]
//	end: invalid-frame
//
// frame number, address, function+offset ("??" when no symbol holds it;
// the function of a return address is the one holding the call, at address
// - 1), mapped file + file offset, the unwind method of the frame, and the
// reason the walk ended.
//
// With a command instead of -p, unwindd starts it (stdin from /dev/null,
// stdout and stderr shared), waits D (--after, 100ms by default), takes the
// stacks the same way, detaches, then kills the command with SIGKILL and
// reaps it before printing. The command never outlives unwindd.
//
// Exit status:
//
//	0  success; for run also an end by Ctrl-C, SIGTERM or --duration
//	1  an error: a deployment that does not check, a plugin that failed or
//	   was given up, a source that could not be opened (printed as one line
//	   on stderr, "unwindd: ...")
//	2  a usage error: an unknown flag, missing or contradictory arguments
//
// The traced command's own exit status is reported in run's summary
// ("target exited with status N"), not passed on. Logs (zap; --log-level,
// --log-format console|json) go to stderr.
package main
