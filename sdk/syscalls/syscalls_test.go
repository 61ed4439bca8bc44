package syscalls

import (
	"strings"
	"testing"
)

// TestTables: every number of the x86-64 table but the unused 337–423 has
// a name, no name is used twice, and a few known numbers of both ABIs.
func TestTables(t *testing.T) {
	seen := map[string]int{}
	for nr, n := range syscallNames {
		if n == "" {
			if nr <= 336 || nr >= 424 {
				t.Errorf("no name for syscall %d", nr)
			}
			continue
		}
		if prev, ok := seen[n]; ok {
			t.Errorf("%q is syscall %d and %d", n, prev, nr)
		}
		seen[n] = nr
	}
	all := 0
	for nr, n := range All() {
		if Name(int64(nr)) != n {
			t.Errorf("All yields %d %q, Name says %q", nr, n, Name(int64(nr)))
		}
		all++
	}
	if all != len(seen) {
		t.Errorf("All yields %d calls, the table has %d", all, len(seen))
	}
	for _, c := range []struct {
		nr       int64
		x64, x86 string
	}{{0, "read", "restart_syscall"}, {1, "write", "exit"}, {4, "stat", "write"}, {257, "openat", "remap_file_pages"}, {435, "clone3", "clone3"}, {-1, "", ""}, {100000, "", ""}} {
		if Name(c.nr) != c.x64 || Name32(c.nr) != c.x86 {
			t.Errorf("syscall %d: %q and %q, want %q (x86-64) and %q (i386)", c.nr, Name(c.nr), Name32(c.nr), c.x64, c.x86)
		}
	}
}

func TestCheck(t *testing.T) {
	for _, c := range []struct{ name, want string }{
		{"openat", ""},
		{"fstat", ""},
		{"newfstat", `"newfstat" is the kernel's tracepoint name; the syscall is "fstat"`},
		{"sys_enter_openat", `no x86-64 syscall "sys_enter_openat" (did you mean "openat"?)`},
		{"__x64_sys_read", `no x86-64 syscall "__x64_sys_read" (did you mean "read"?)`},
		{"opnat", `no x86-64 syscall "opnat" (did you mean "openat"?)`},
		{"zzzzzzzzzz", `no x86-64 syscall "zzzzzzzzzz"`},
		{strings.Repeat("a", 100), `no x86-64 syscall "` + strings.Repeat("a", 100) + `"`},
	} {
		if got := Check(c.name); got != c.want {
			t.Errorf("Check(%q) = %q, want %q", c.name, got, c.want)
		}
	}
	if nr, ok := Number("write"); !ok || nr != 1 {
		t.Errorf("Number(write) = %d, %v", nr, ok)
	}
	if KernelName("uname") != "newuname" || KernelName("read") != "read" || UserName("newuname") != "uname" || UserName("read") != "read" {
		t.Error("KernelName/UserName")
	}
}

// TestKernelNames: each renamed syscall is in the table under its own
// name, and its kernel name is not a syscall of the table.
func TestKernelNames(t *testing.T) {
	for user, kernel := range kernelNames {
		if _, ok := Number(user); !ok {
			t.Errorf("kernelNames: %q is not in the table", user)
		}
		if _, ok := Number(kernel); ok {
			t.Errorf("kernelNames: %q is a syscall of the table", kernel)
		}
	}
}
