package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/unwindd/unwindd/sdk"
)

// times lists the sample times of a perf script text, in file order.
func times(s string) []string {
	return regexp.MustCompile(`(?m)^\S+ +\d+ \[\d{3}\] +(\d+\.\d{6}):`).FindAllString(s, -1)
}

func TestScriptOrder(t *testing.T) {
	at := func(us uint64) []sample { return []sample{{Comm: "x", TID: 1, Time: us * 1000, Period: 1}} }
	for _, c := range []struct {
		name    string
		window  uint64 // µs
		maxHeld int
		in      []uint64 // µs, in release order
		want    []uint64 // µs, in file order
	}{
		{"sorted within the window", 100, 100, []uint64{5, 3, 4, 1, 2}, []uint64{1, 2, 3, 4, 5}},
		{"equal times keep arrival order", 100, 100, []uint64{2, 2, 1}, []uint64{1, 2, 2}},
		// 1 is written when 200 arrives (more than 100 after it); 0 comes
		// later than that, so it is out of order, as documented.
		{"a record later than the window", 100, 100, []uint64{1, 200, 0}, []uint64{1, 0, 200}},
		{"beyond maxHeld the oldest goes", 1 << 40, 2, []uint64{3, 2, 1, 0}, []uint64{1, 0, 2, 3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b strings.Builder
			sw := newScriptWriter(&b, c.window*1000, c.maxHeld)
			for _, us := range c.in {
				sw.add(at(us), nil)
			}
			must(t, sw.flush())
			var want []string
			for _, us := range c.want {
				var r strings.Builder
				r.Write(appendScript(nil, &record{sample: at(us)[0]}))
				want = append(want, times(r.String())...)
			}
			if got := times(b.String()); !slices.Equal(got, want) {
				t.Errorf("file order %q, want %q", got, want)
			}
		})
	}
}

func TestAppendScript(t *testing.T) {
	for _, c := range []struct {
		name string
		r    record
		want string
	}{
		{"a frame of each kind", record{
			sample: sample{Name: "cpu-clock", Comm: "sha256sum", TID: 12345, CPU: 1, Time: 3044_662589999, Period: 250000},
			frames: []sdk.Frame{stackA[0], stackA[2], stackA[4]},
		}, "sha256sum 12345 [001]  3044.662589:     250000 cpu-clock: \n" +
			"\t    55d5565581ac parse_header+0x13 (/work/main/bin/demo)\n" +
			"\t    7f8cad0a6100 [unknown] (/usr/lib/x86_64-linux-gnu/libc.so.6)\n" +
			"\t            1234 [unknown] ([unknown])\n\n"},
		{"no comm, no name, wide fields, offset 0", record{
			sample: sample{TID: 1234567, CPU: 1234, Time: 123456_000001000, Period: 12345678901},
			frames: []sdk.Frame{{Addr: 0xffffffffffff, Function: "f"}},
		}, ":1234567 1234567 [1234] 123456.000001: 12345678901 cpu-clock: \n" +
			"\t    ffffffffffff f+0x0 ([unknown])\n\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := string(appendScript(nil, &c.r)); got != c.want {
				t.Errorf("got\n%q\nwant\n%q", got, c.want)
			}
		})
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestScriptWriteError(t *testing.T) {
	sw := newScriptWriter(failWriter{}, 0, 1)
	for i := range 100000 { // more than the buffer holds
		sw.add([]sample{{Time: uint64(i)}}, nil)
	}
	if err := sw.flush(); err == nil || err.Error() != "disk full" {
		t.Errorf("flush = %v, want the write's error", err)
	}
}

// TestCloseError: when the out directory vanishes, Close reports every
// file it could not write, by name, and leaves no temporary file behind.
func TestCloseError(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	tr := newTracer()
	var log strings.Builder
	tr.stderr = &log
	if _, err := tr.Describe(context.Background(), sdk.DescribeInfo{Config: scenarioConfig(dir)}); err != nil {
		t.Fatal(err)
	}
	must(t, tr.Events(context.Background(), []sdk.Event{sampleEv(0, 1, 1, 1)}))
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	err := tr.Close()
	for _, f := range []string{scriptFile, profileFile, foldedFile, flameFile} {
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, f)) {
			t.Errorf("Close = %v, want an error naming %s", err, f)
		}
	}
	if !strings.Contains(log.String(), "perf: write profile failed") || !strings.Contains(log.String(), "samples=1") {
		t.Errorf("log %q lacks the failure summary", log.String())
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("out dir: %v, want it still gone", err)
	}
}
