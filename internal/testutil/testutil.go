// Package testutil holds what unwindd's tests share: skipping (or, where
// UNWINDD_TEST_REQUIRE says so, failing) for lack of a tool or a kernel
// capability, building C test targets with gcc, and starting a test program
// and waiting until it is ready.
//
// A test skips only on a real, observed lack (exec.LookPath failed, the
// kernel said EPERM), never on a guess from the uid; CI sets
// UNWINDD_TEST_REQUIRE so that what must be there fails instead of skipping.
package testutil

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RequireEnv is the environment variable that lists, comma-separated, what
// tests must not skip for lack of (e.g. "gcc,gdb,ptrace").
const RequireEnv = "UNWINDD_TEST_REQUIRE"

// Need skips t for lack of what (a tool or capability name), saying why, or
// fails t when [RequireEnv] names what.
func Need(t testing.TB, what, why string) {
	t.Helper()
	for _, r := range strings.Split(os.Getenv(RequireEnv), ",") {
		if strings.TrimSpace(r) == what {
			t.Fatalf("%s required by %s: %s", what, RequireEnv, why)
		}
	}
	t.Skipf("%s: %s", what, why)
}

// BuildC compiles the C source src with gcc and flags into dir (a fresh
// temporary directory when dir is "") and returns the executable's path.
func BuildC(t testing.TB, dir, name, src string, flags ...string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		Need(t, "gcc", "builds the test program: "+err.Error())
	}
	if dir == "" {
		dir = t.TempDir()
	}
	c := filepath.Join(dir, name+".c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, name)
	args := append([]string{"-o", exe, c}, flags...)
	if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return exe
}

// Start runs exe with args, waits until it writes its first byte to stdout
// (its "ready"), and kills and reaps it when the test ends.
func Start(t testing.TB, exe string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(exe, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ready := make(chan error, 1)
	go func() {
		var b [1]byte
		_, err := io.ReadFull(bufio.NewReader(out), b[:])
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("%s did not get ready: %v", exe, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not get ready in 10s", exe)
	}
	return cmd
}

// Sleeper starts sleep(1) for a minute, a child process that does nothing,
// and kills and reaps it when the test ends (a test may end it sooner).
func Sleeper(t testing.TB) *exec.Cmd {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		Need(t, "sleep", "runs as a child: "+err.Error())
	}
	cmd := exec.Command(sleep, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}
