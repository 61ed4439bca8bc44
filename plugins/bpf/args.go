package main

//go:generate go run ./internal/gensyscallargs -tracefs /sys/kernel/tracing -o syscallargs.go

import (
	"slices"
	"strings"
)

// syscallArg is one named argument of a system call: its name and C type,
// as the kernel's sys_enter_<name> tracepoint declares them.
type syscallArg struct {
	Name  string
	CType string
}

// argConv says how a 64-bit register becomes an argument's value: the
// kernel's syscall wrappers cast it to the argument's C type, so bpftrace's
// args.dfd of openat(AT_FDCWD, …) is -100, not 4294967196.
type argConv uint8

const (
	conv64  argConv = iota // pointers, long, size_t, loff_t…: the register's bits as a signed 64-bit integer
	convS32                // int, pid_t, clockid_t…: the low 32 bits, sign-extended
	convU32                // unsigned int, u32, uid_t, gid_t…: the low 32 bits
	convU16                // umode_t: the low 16 bits
)

// signed32 and unsigned32 are the 32-bit C types of the syscall arguments
// (the scalar types of Linux 6.18's sys_enter_* formats); anything else
// that is not a pointer is 64 bits wide.
var (
	signed32   = []string{"int", "pid_t", "clockid_t", "timer_t", "mqd_t", "key_t", "key_serial_t", "rwf_t", "__s32", "s32"}
	unsigned32 = []string{"unsigned int", "unsigned", "u32", "__u32", "uid_t", "gid_t", "qid_t"}
)

// convOf returns the conversion of an argument of C type ctype.
func convOf(ctype string) argConv {
	t := strings.TrimSpace(strings.TrimPrefix(ctype, "const "))
	switch {
	case strings.Contains(t, "*"):
		return conv64
	case strings.HasPrefix(t, "enum "), slices.Contains(signed32, t):
		return convS32
	case slices.Contains(unsigned32, t):
		return convU32
	case t == "umode_t":
		return convU16
	}
	return conv64
}

// apply converts the register reg.
func (c argConv) apply(reg uint64) int64 {
	switch c {
	case convS32:
		return int64(int32(reg))
	case convU32:
		return int64(uint32(reg))
	case convU16:
		return int64(uint16(reg))
	}
	return int64(reg)
}

// argsOf returns the named arguments of the x86-64 system call name, and
// whether they are known.
func argsOf(name string) ([]syscallArg, bool) {
	a, ok := syscallArgs[name]
	return a, ok
}

// argNames lists the names of args, for error messages.
func argNames(args []syscallArg) string {
	if len(args) == 0 {
		return "none"
	}
	names := make([]string, len(args))
	for i, a := range args {
		names[i] = a.Name
	}
	return strings.Join(names, ", ")
}
