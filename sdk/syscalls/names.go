package syscalls

import (
	"fmt"
	"strings"
)

// kernelNames are the x86-64 system calls whose kernel entry point, and so
// whose syscalls:sys_enter_* tracepoint, has another name than the
// syscall table's.
var kernelNames = map[string]string{
	"fstat":    "newfstat",
	"lstat":    "newlstat",
	"sendfile": "sendfile64",
	"stat":     "newstat",
	"umount2":  "umount",
	"uname":    "newuname",
}

// KernelName returns the kernel's name of system call name, the one its
// tracepoints carry ("newfstat" for "fstat"): name itself for most.
func KernelName(name string) string {
	if k, ok := kernelNames[name]; ok {
		return k
	}
	return name
}

// UserName is KernelName's inverse: the syscall table's name of the
// kernel's name k ("fstat" for "newfstat"), k itself for most.
func UserName(k string) string {
	for user, kernel := range kernelNames {
		if kernel == k {
			return user
		}
	}
	return k
}

// Number returns the number of x86-64 system call name.
func Number(name string) (int, bool) {
	for nr, n := range All() {
		if n == name {
			return nr, true
		}
	}
	return 0, false
}

// Check says what is wrong with name as an x86-64 system call, for a
// config error, or "" when it is one. It names the right spelling when it
// can: the syscall table's for a kernel name ("newfstat"), the bare name
// for a tracepoint or symbol name ("sys_enter_openat"), or the nearest
// name within two edits ("opnat").
func Check(name string) string {
	if _, ok := Number(name); ok {
		return ""
	}
	if user := UserName(name); user != name {
		return fmt.Sprintf("%q is the kernel's tracepoint name; the syscall is %q", name, user)
	}
	msg := fmt.Sprintf("no x86-64 syscall %q", name)
	for _, prefix := range []string{"sys_enter_", "sys_exit_", "__x64_sys_", "sys_"} {
		if bare, ok := strings.CutPrefix(name, prefix); ok && Check(bare) == "" {
			return msg + fmt.Sprintf(" (did you mean %q?)", bare)
		}
	}
	if near := nearest(name); near != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", near)
	}
	return msg
}

// nearest returns the system call name closest to s, if one is within two
// edits.
func nearest(s string) string {
	if len(s) > 64 {
		return ""
	}
	best, bestD := "", 3
	for _, n := range All() {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
