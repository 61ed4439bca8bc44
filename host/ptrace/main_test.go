package ptrace

import (
	"github.com/unwindd/unwindd/internal/testutil"

	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"testing"
	"time"
)

// helperEnv, when set to a pid, makes the test binary a helper that tries to
// stop that pid and prints what it got (see TestPermission).
const helperEnv = "UNWINDD_PTRACE_HELPER_PID"

// TestMain fails the run on leaked goroutines (a Tracer not closed) and file
// descriptors.
func TestMain(m *testing.M) {
	if pid := os.Getenv(helperEnv); pid != "" {
		os.Exit(helper(pid))
	}
	os.Exit(testutil.RunLeakChecked(m, nil))
}

// helper tries to stop pid and reports the error: "ok" or
// "permission=<errors.Is(err, fs.ErrPermission)> <message>".
func helper(pidText string) int {
	pid, err := strconv.Atoi(pidText)
	if err != nil {
		fmt.Println("bad pid", pidText)
		return 2
	}
	tr := New(nil)
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := tr.Stop(ctx, pid)
	if err != nil {
		fmt.Printf("permission=%v %v\n", errors.Is(err, fs.ErrPermission), err)
		return 0
	}
	p.Detach()
	fmt.Println("ok")
	return 0
}

// stopOrSkip stops pid, skipping the test when ptrace is not permitted here
// (a real EPERM from the kernel, not a guess from the uid).
func stopOrSkip(t *testing.T, tr *Tracer, pid int) *Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := tr.Stop(ctx, pid)
	if errors.Is(err, fs.ErrPermission) {
		testutil.Need(t, "ptrace", err.Error())
	}
	if err != nil {
		t.Fatalf("Stop(%d): %v", pid, err)
	}
	return p
}
