package cfi

import (
	"debug/elf"
	"testing"

	"github.com/unwindd/unwindd/internal/testutil"
)

const libc = "/lib/x86_64-linux-gnu/libc.so.6"

func libcPath(t testing.TB) string {
	t.Helper()
	f, err := elf.Open(libc)
	if err != nil {
		testutil.Need(t, "libc", err.Error())
	}
	f.Close()
	return libc
}

// testSource has the function shapes whose CFI gcc writes differently: a
// leaf, recursion, alloca (CFA moves to rbp), a stack-realigning function
// with a variable-size frame (DRAP: CFA through *(rbp-8)), varargs, a
// noreturn call, and a signal handler; calls through the .plt.
const testSource = `#include <alloca.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) int leaf(int x) { return x * 3 + 1; }

__attribute__((noinline)) int recurse(int n) { return n <= 0 ? leaf(n) : recurse(n - 1) + leaf(n); }

__attribute__((noinline)) int with_alloca(int n) {
	char *p = alloca(n);
	memset(p, n, n);
	__asm__ volatile("" :: "r"(p) : "memory");
	return p[n - 1] + leaf(n);
}

__attribute__((noinline)) double realign(int n) {
	double v[8] __attribute__((aligned(32)));
	char *p = alloca(n);
	memset(p, 1, n);
	for (int i = 0; i < 8; i++) v[i] = p[i % n] * i;
	__asm__ volatile("" :: "r"(v), "r"(p) : "memory");
	return v[n & 7] + leaf(n);
}

__attribute__((noinline)) int sum(int n, ...) {
	va_list ap;
	va_start(ap, n);
	int s = 0;
	for (int i = 0; i < n; i++) s += va_arg(ap, int);
	va_end(ap);
	return s;
}

__attribute__((noinline, noreturn)) void die(const char *msg) { fputs(msg, stderr); exit(3); }

static volatile sig_atomic_t got;
static void handler(int sig) { got = sig; }

int main(int argc, char **argv) {
	signal(SIGUSR1, handler);
	raise(SIGUSR1);
	if (argc > 5) die("too many\n");
	printf("%d %d %f %d %d\n", recurse(argc), with_alloca(argc + 8), realign(argc + 8), sum(3, 1, 2, argc), got);
	return 0;
}
`

// testProgram is testSource built with some flags.
type testProgram struct {
	name   string
	flags  []string
	path   string
	noRule []string // readelf rules this build may have that no Rule can say (oracle reasons)
}

// drapProlog is what a DRAP function's prologue and epilogue say while the
// CFA is in r10 (between "lea 8(%rsp),%r10" and the switch to
// *(rbp-8)): the unwinder tracks no r10, so those few pcs have no rule.
const drapProlog = "cfa in r10"

// testPrograms builds testSource with the flags whose CFI differs.
func testPrograms(t testing.TB) []testProgram {
	t.Helper()
	progs := []testProgram{
		{name: "O2", flags: []string{"-O2"}, noRule: []string{drapProlog}},
		{name: "O2-fp", flags: []string{"-O2", "-fno-omit-frame-pointer"}, noRule: []string{drapProlog}},
		{name: "O0", flags: []string{"-O0"}, noRule: []string{drapProlog}},
		{name: "O2-avx", flags: []string{"-O2", "-mavx"}, noRule: []string{drapProlog}},
		{name: "lazy-plt", flags: []string{"-O2", "-Wl,-z,lazy"}, noRule: []string{drapProlog}},
		{name: "ibt-plt", flags: []string{"-O2", "-fcf-protection=full", "-Wl,-z,ibtplt", "-Wl,-z,lazy"}, noRule: []string{drapProlog}},
		{name: "debug-frame", flags: []string{"-O2", "-g", "-fno-asynchronous-unwind-tables"}, noRule: []string{drapProlog}},
	}
	dir := t.TempDir()
	for i := range progs {
		progs[i].path = testutil.BuildC(t, dir, progs[i].name, testSource, progs[i].flags...)
	}
	return progs
}
