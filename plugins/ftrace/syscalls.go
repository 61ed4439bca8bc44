package main

// kernelNames are the syscalls whose entry point, and so whose syscalls:
// tracepoints (sys_enter_newfstat) and trace lines (sys_newfstat(...)), the
// kernel names otherwise than the table does (syscall_64.tbl's fourth
// column). _sysctl has no entry point (sys_ni_syscall), so no tracepoint.
var kernelNames = map[string]string{
	"fstat":    "newfstat",
	"lstat":    "newlstat",
	"sendfile": "sendfile64",
	"stat":     "newstat",
	"umount2":  "umount",
	"uname":    "newuname",
}
