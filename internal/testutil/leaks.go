package testutil

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// RunLeakChecked runs m's tests, then cleanup (may be nil), and fails the
// run (exit status 1) on leaked goroutines or file descriptors, for a
// TestMain: os.Exit(testutil.RunLeakChecked(m, nil)). Packages that own
// goroutines or descriptors (a ptrace thread, perf events and their epoll)
// use it to prove Close gives everything back.
func RunLeakChecked(m *testing.M, cleanup func()) int {
	before := OpenFDs()
	code := m.Run()
	if cleanup != nil {
		cleanup()
	}
	if code != 0 {
		return code
	}
	if err := goleak.Find(); err != nil {
		fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
		code = 1
	}
	for fd, target := range OpenFDs() {
		if before[fd] != target {
			fmt.Fprintf(os.Stderr, "leaked file descriptor %s -> %s\n", fd, target)
			code = 1
		}
	}
	return code
}

// OpenFDs maps this process's open file descriptors to what they point at,
// less the runtime's network poller (an epoll and an eventfd, opened once on
// first use and kept).
func OpenFDs() map[string]string {
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
