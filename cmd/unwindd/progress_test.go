package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: the master, read by the test, and
// the slave, a terminal for isTerminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatalf("open the pty's slave: %v", err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

func TestIsTerminal(t *testing.T) {
	_, slave := openPTY(t)
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, c := range []struct {
		name string
		w    io.Writer
		want bool
	}{
		{"pty", slave, true},
		{"file", f, false},
		{"buffer", new(bytes.Buffer), false},
	} {
		if got := isTerminal(c.w); got != c.want {
			t.Errorf("isTerminal(%s) = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestLiveLine(t *testing.T) {
	for _, c := range []struct {
		elapsed      time.Duration
		events       uint64
		rate         float64
		stacks, lost uint64
		want         string
	}{
		{1234 * time.Millisecond, 10, 8, 2, 0, "run: 1.2s  events 10 (8/s)  stacks 2  lost 0"},
		{61 * time.Second, 123456, 40123, 999, 7, "run: 1m1s  events 123456 (40.1k/s)  stacks 999  lost 7"},
		{2 * time.Second, 5e6, 2.5e6, 1e6, 0, "run: 2s  events 5000000 (2.5M/s)  stacks 1000000  lost 0"},
	} {
		if got := liveLine(c.elapsed, c.events, c.rate, c.stacks, c.lost); got != c.want {
			t.Errorf("liveLine = %q, want %q", got, c.want)
		}
	}
}

// TestRunProgress runs `unwindd run` with stderr on a terminal: a progress
// line is redrawn (elapsed, events and their rate, stacks, lost) and cleared
// before the summary; on a pipe (every other run test), none is drawn.
func TestRunProgress(t *testing.T) {
	perf := buildPerfPlugin(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	deploy := writeFile(t, dir, "deploy.yaml", fmt.Sprintf("output: %[1]s\nplugins:\n  - name: perf\n    path: %[2]s\n    config: {out: %[1]s}\n", out, perf))
	master, slave := openPTY(t)
	var got bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		io.Copy(&got, master) // ends with EIO once the slave is closed
	}()
	var stdout bytes.Buffer
	// A shell spinning until --duration ends it: four redraws or so.
	code := run(context.Background(), []string{"--log-level", "warn", "run", "--config", deploy, "--duration", "1200ms", "--", "sh", "-c", "while :; do :; done"}, &stdout, slave)
	slave.Close()
	<-read
	if code != 0 {
		t.Fatalf("exit %d\nstdout %s\nterminal %q", code, stdout.String(), got.String())
	}
	term := got.String()
	line := regexp.MustCompile(`\rrun: [0-9.ms]+  events (\d+) \(([0-9.]+[kM]?)/s\)  stacks (\d+)  lost (\d+)\x1b\[K`)
	m := line.FindAllStringSubmatch(term, -1)
	if len(m) < 2 {
		t.Fatalf("%d progress lines on the terminal, want it redrawn: %q", len(m), term)
	}
	if last := m[len(m)-1]; last[1] == "0" {
		t.Errorf("the last progress line counts no events: %q", last[0])
	}
	if !strings.HasSuffix(term, "\r\x1b[K") {
		t.Errorf("the progress line is not cleared at the end: %q", term[max(0, len(term)-80):])
	}
	if strings.Contains(stdout.String(), "run: ") {
		t.Errorf("progress on stdout:\n%s", stdout.String())
	}
	t.Logf("%d progress lines, the last %q", len(m), m[len(m)-1][0])
}

// TestReplayProgress: replay's line gives the share of the file read, its
// MiB and the records, at most five times a second but always at the end,
// and done ends it with a newline.
func TestReplayProgress(t *testing.T) {
	var w bytes.Buffer
	p := &progress{w: &w}
	p.update(10<<20, 100<<20, 1234)
	p.update(20<<20, 100<<20, 2345) // within 200ms: not drawn
	p.update(100<<20, 100<<20, 9999)
	p.done()
	want := "\rreplay:  10% (10 of 100 MiB, 1234 records)\x1b[K" +
		"\rreplay: 100% (100 of 100 MiB, 9999 records)\x1b[K\n"
	if w.String() != want {
		t.Errorf("progress wrote %q, want %q", w.String(), want)
	}
	var nothing *progress
	nothing.done() // no progress (not a terminal): nothing to end
}
