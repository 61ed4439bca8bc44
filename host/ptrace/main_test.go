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

	"go.uber.org/goleak"
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
	before := openFDs()
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
			code = 1
		}
		for fd, target := range openFDs() {
			if before[fd] != target {
				fmt.Fprintf(os.Stderr, "leaked file descriptor %s -> %s\n", fd, target)
				code = 1
			}
		}
	}
	os.Exit(code)
}

// openFDs maps this process's open file descriptors to what they point at,
// less the runtime's network poller (an epoll and an eventfd, opened once on
// first use and kept).
func openFDs() map[string]string {
	fds := make(map[string]string)
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fds
	}
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || target == "anon_inode:[eventpoll]" || target == "anon_inode:[eventfd]" {
			continue // the directory being read, or the poller
		}
		fds[e.Name()] = target
	}
	return fds
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
