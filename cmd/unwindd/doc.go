// Command unwindd is the unwindd command line: user-stack tracing on Linux
// x86-64 (see DESIGN.md).
//
// Subcommands so far:
//
//	unwindd stack -p PID                      print every thread's user stack
//	unwindd stack [--after D] -- CMD ARGS...  start CMD, print its stacks after D, kill it
//	unwindd version                           print the version
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
// Exit status: 0 on success; 2 for a usage error; 1 for any other error,
// printed as one line on stderr. Logs (zap, --log-level) go to stderr.
package main
