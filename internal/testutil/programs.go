package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// GoChainSrc is a Go program that spins ~300 ms in main.leaf under
// main.main → main.a → main.b on its main goroutine (GOMAXPROCS 1). The Go
// compiler keeps frame pointers on amd64, and //go:noinline keeps the
// frames. Build it with [BuildGo].
const GoChainSrc = `package main

import (
	"runtime"
	"time"
)

var sink uint64

//go:noinline
func leaf(end time.Time) {
	for time.Now().Before(end) {
		for i := 0; i < 1000000; i++ {
			sink++
		}
	}
}

//go:noinline
func b(end time.Time) { leaf(end); sink++ }

//go:noinline
func a(end time.Time) { b(end); sink++ }

func main() {
	runtime.GOMAXPROCS(1)
	a(time.Now().Add(300 * time.Millisecond))
	sink++
}
`

// MemsetChainSrc is a C program for -O2 -fno-omit-frame-pointer: noinline
// keeps the chain main → a → b → leaf for ~300 ms, and leaf spends part of
// its time in libc's memset, a frameless leaf (hand-written assembly that
// pushes no frame pointer). A sample there has the caller's frame pointer
// in rbp, so a frame-pointer walk goes from memset to leaf's caller, b, and
// leaf is not on the stack: the kernel's walk (perf record -g) does that.
const MemsetChainSrc = `#include <string.h>
#include <time.h>
volatile unsigned long sink;
char buf[1 << 14];
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
__attribute__((noinline)) void leaf(double end) {
	for (int n = 0; now() < end; n++) {
		for (int i = 0; i < 300000; i++) sink++;
		for (int i = 0; i < 500; i++) memset(buf, n + i, sizeof buf);
		sink += buf[n % sizeof buf];
	}
}
__attribute__((noinline)) void b(double end) { leaf(end); sink++; }
__attribute__((noinline)) void a(double end) { b(end); sink++; }
int main(void) { a(now() + 0.3); sink++; return 0; }
`

// BuildGo builds the single-file Go program src as a module of its own,
// with the toolchain running the test, linked by the Go linker
// (CGO_ENABLED=0), with its symbol table, and returns the executable's path.
func BuildGo(t testing.TB, name, src string) string {
	t.Helper()
	gocmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gocmd); err != nil {
		Need(t, "go", "builds the Go test program: "+err.Error())
	}
	dir := t.TempDir()
	for file, text := range map[string]string{"go.mod": "module " + name + "\n\ngo 1.21\n", "main.go": src} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exe := filepath.Join(dir, name)
	cmd := exec.Command(gocmd, "build", "-o", exe, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, out)
	}
	return exe
}
