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

	"github.com/unwindd/unwindd/internal/testutil"
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
	os.Exit(testutil.RunLeakChecked(m, func() {
		if progOnce.path != "" {
			os.RemoveAll(filepath.Dir(progOnce.path))
		}
	}))
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
