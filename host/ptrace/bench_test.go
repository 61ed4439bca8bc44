package ptrace

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/unwindd/unwindd/internal/testutil"
)

var benchSyscalls = flag.Int("ptrace.syscalls", 10000, "getppid calls per run of BenchmarkTraceSyscalls")

// getppidProgram makes argv[1] getppid(2) calls from main → loop, a
// syscall-heavy workload where tracing costs all.
const getppidProgram = `#include <stdlib.h>
#include <unistd.h>
__attribute__((noinline)) void loop(long n) { for (long i = 0; i < n; i++) getppid(); }
int main(int argc, char **argv) { loop(atol(argv[1])); return 0; }
`

// BenchmarkTraceSyscalls measures the cost per system call of tracing a
// syscall-heavy program (getppid in a loop), each run from start to exit:
// the ptrace source events only ("ptrace"), and unwinding every entry
// ("ptrace-unwind": a stack requested at every event, walked from live
// memory with SFrame, CFI and frame pointers), beside strace -f and
// strace -f -k (which unwinds at every call) writing to /dev/null, and the
// program untraced ("bare"). ns/syscall is (run time - bare run time) /
// system calls; for "bare", its own run time / system calls.
func BenchmarkTraceSyscalls(b *testing.B) {
	exe := testutil.BuildC(b, "", "getppid", getppidProgram, "-O0", "-fno-omit-frame-pointer")
	null := devNull(b)
	argv := []string{exe, strconv.Itoa(*benchSyscalls)}
	run := func(b *testing.B, name string, args ...string) {
		cmd := exec.Command(name, args...)
		cmd.Stdout, cmd.Stderr = null, os.Stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
	}
	// Syscalls per run, counted by a traced run.
	calls := 0.0
	{
		tr := newTracer(b)
		g := newRig(b, false)
		pid := startOrSkip(b, tr, argv, StartOptions{Files: []*os.File{null, null, os.Stderr}})
		st := trace(b, context.Background(), tr, TraceOptions{PID: pid}, g)
		calls = float64(st.Syscalls)
	}
	// The program untraced, for the time its system calls take anyway.
	bare := time.Duration(1<<63 - 1)
	for range 5 {
		start := time.Now()
		run(b, exe, argv[1:]...)
		bare = min(bare, time.Since(start))
	}
	measure := func(b *testing.B, body func(b *testing.B)) {
		start := time.Now()
		n := 0
		for b.Loop() {
			body(b)
			n++
		}
		per := time.Since(start) / time.Duration(n)
		b.ReportMetric(float64((per-bare).Nanoseconds())/calls, "ns/syscall")
		b.ReportMetric(calls, "syscalls/op")
	}
	b.Run("bare", func(b *testing.B) {
		for b.Loop() {
			run(b, exe, argv[1:]...)
		}
		b.ReportMetric(float64(bare.Nanoseconds())/calls, "ns/syscall")
	})
	for _, unwind := range []bool{false, true} {
		name := "ptrace"
		if unwind {
			name = "ptrace-unwind"
		}
		b.Run(name, func(b *testing.B) {
			tr := newTracer(b)
			measure(b, func(b *testing.B) {
				g := newRig(b, unwind)
				g.rec.light = true
				pid := startOrSkip(b, tr, argv, StartOptions{Files: []*os.File{null, null, os.Stderr}})
				st := trace(b, context.Background(), tr, TraceOptions{PID: pid}, g)
				if unwind && uint64(g.rec.nstacks) < st.Syscalls {
					b.Fatalf("%d stacks for %d syscalls", g.rec.nstacks, st.Syscalls)
				}
			})
		})
	}
	strace, err := exec.LookPath("strace")
	if err != nil {
		b.Logf("no strace to compare with: %v", err)
		return
	}
	b.Run("strace", func(b *testing.B) {
		measure(b, func(b *testing.B) { run(b, strace, append([]string{"-f", "-o", os.DevNull}, argv...)...) })
	})
	b.Run("strace-k", func(b *testing.B) {
		measure(b, func(b *testing.B) { run(b, strace, append([]string{"-f", "-k", "-o", os.DevNull}, argv...)...) })
	})
}
