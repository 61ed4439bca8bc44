package main

import (
	"github.com/unwindd/unwindd/internal/testutil"

	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/unwindd/unwindd/host/procfs"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitSpinning waits until every thread of pid has run in user mode since
// it was called (its utime grew): a thread that wrote its "ready" and then
// spins is then past the write, in its spinning leaf, and stays there.
func waitSpinning(t *testing.T, pid int) {
	t.Helper()
	tids, err := procfs.Threads(pid)
	if err != nil {
		t.Fatal(err)
	}
	start := make(map[int]uint64)
	for _, tid := range tids {
		start[tid] = utime(t, pid, tid)
	}
	for deadline := time.Now().Add(10 * time.Second); len(start) > 0; {
		for tid, u := range start {
			if utime(t, pid, tid) > u {
				delete(start, tid)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("threads %v of pid %d did not run in user mode for 10s", start, pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// utime reads the user time (clock ticks) of thread tid of pid: field 14 of
// its stat, the 12th after the comm.
func utime(t *testing.T, pid, tid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	u, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		t.Fatalf("utime of task %d: %v", tid, err)
	}
	return u
}

// startSpinning starts exe, waits for its "ready" byte, then until every
// thread spins in its leaf ([waitSpinning]).
func startSpinning(t *testing.T, exe string) *exec.Cmd {
	t.Helper()
	cmd := testutil.Start(t, exe)
	waitSpinning(t, cmd.Process.Pid)
	return cmd
}
