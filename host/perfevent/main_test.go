package perfevent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

// helperEnv, when set to "PID FREQUENCY", makes the test binary a helper
// that opens a session on PID and prints what it got (see TestPermission).
const helperEnv = "UNWINDD_PERFEVENT_HELPER"

// TestMain fails the run on leaked goroutines (a Session not closed: its
// context.AfterFunc) and file descriptors (events, epoll, eventfd).
func TestMain(m *testing.M) {
	if args := os.Getenv(helperEnv); args != "" {
		os.Exit(helper(args))
	}
	before := openFDs()
	code := m.Run()
	if progOnce.path != "" {
		os.RemoveAll(filepath.Dir(progOnce.path))
	}
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

// helper opens a session on the pid in args ("PID FREQUENCY") and prints
// "ok" or "permission=<errors.Is(err, fs.ErrPermission)> <message>".
func helper(args string) int {
	var pid, freq int
	if _, err := fmt.Sscan(args, &pid, &freq); err != nil {
		fmt.Println("bad helper arguments", strconv.Quote(args))
		return 2
	}
	s, err := Open(context.Background(), Options{PID: pid, Frequency: freq, RingPages: 8})
	if err != nil {
		fmt.Printf("permission=%v %v\n", errors.Is(err, fs.ErrPermission), err)
		return 0
	}
	s.Close()
	fmt.Println("ok")
	return 0
}
