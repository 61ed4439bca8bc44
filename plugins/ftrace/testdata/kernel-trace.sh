#!/bin/sh
# Makes kernel-trace.txt, the kernel's own trace text that the ftrace
# plugin's layout is checked against: a bash process that reads
# /etc/hostname, fails to open /nonexistent and runs true, traced in a
# private tracefs instance with the openat, read and close syscall events,
# raw_syscalls, and the userstacktrace, sym-userobj and event-fork options.
# Run as root:
#
#	sh kernel-trace.sh > kernel-trace.txt
#
# bash turns tracing on and off around its work itself, and sleeps (in a
# child) while the trace is read, so that sym-userobj, which resolves
# addresses when the trace is read, still finds bash's mappings; true has
# exited by then, so its frames are bare addresses.
set -eu
I=/sys/kernel/tracing/instances/unwindd-ftrace-excerpt.$$
mkdir "$I"
trap 'echo 0 > "$I/events/enable"; echo 0 > "$I/options/userstacktrace"; rmdir "$I"' EXIT
echo 0 > "$I/tracing_on"
echo 1 > "$I/options/userstacktrace"
echo 1 > "$I/options/sym-userobj"
echo 1 > "$I/options/event-fork"
for e in syscalls/sys_enter_openat syscalls/sys_exit_openat syscalls/sys_enter_read syscalls/sys_exit_read \
	syscalls/sys_enter_close syscalls/sys_exit_close raw_syscalls/sys_enter raw_syscalls/sys_exit; do
	echo 1 > "$I/events/$e/enable"
done
bash -c 'echo $$ > "$1/set_event_pid"; echo 1 > "$1/tracing_on"; read x < /etc/hostname; read y < /nonexistent; /bin/true; echo 0 > "$1/tracing_on"; sleep 1; true' bash "$I" 2>/dev/null &
sleep 0.5
grep -v '^#' "$I/trace"
wait
