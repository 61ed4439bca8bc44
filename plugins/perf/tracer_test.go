package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unwindd/unwindd/sdk"
)

// The scenario's wall clock at close.
var closeTime = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// scenarioConfig is the scenario's config, writing into dir.
func scenarioConfig(dir string) []byte { return []byte("out: " + dir + "\nhz: 999\n") }

// scenarioBatches is one run, as the host would send it in three batches:
// two kernel entries joined (one with two samples, whose stack arrives after
// a later entry's), a sample with no cookie, one lost, one whose stack never
// comes, an orphan stack and a tracepoint event.
func scenarioBatches() [][]any {
	noStack := sampleEv(0, 103, 0, 3044_664000000)
	noStack.Comm = "my worker"
	return [][]any{
		{
			sampleEv(7, 101, 1, 3044_662589123),
			sampleEv(8, 102, 2, 3044_663000000),
			sampleEv(7, 101, 1, 3044_663590000),
			noStack,
			sdk.Event{Kind: sdk.KindTracepoint, Name: "sched:sched_switch", Time: 3044_663700000, TID: 101, Cookie: 7},
			stackOf(8, 102, 3044_664100000, stackB),
		},
		{
			stackOf(7, 101, 3044_664200000, stackA),
			sampleEv(9, 104, 3, 3044_665000000),
			sampleEv(10, 105, 3, 3044_666000000),
		},
		{
			sdk.Lost{Stacks: 1, Cookies: []uint64{9}},
			stackOf(11, 106, 3044_667000000, stackB), // no sample waits for 11
		},
	}
}

// checkDescription checks the plugin's answer to the scenario's Describe.
func checkDescription(t *testing.T, d sdk.Description) {
	t.Helper()
	if err := d.CheckValid(); err != nil {
		t.Fatalf("description: %v", err)
	}
	if len(d.Subscriptions) != 1 || d.Subscriptions[0].String() != "cpu-clock@999Hz" || d.Name != "perf" || d.Mode != sdk.ModeAlways {
		t.Errorf("description = %+v", d)
	}
}

// scenario drives a tracer through the scenario by calling its methods as
// the SDK does (a run of events is one Events call), then closes it.
func scenario(t *testing.T, tr *tracer, dir string) {
	t.Helper()
	ctx := context.Background()
	d, err := tr.Describe(ctx, sdk.DescribeInfo{Config: scenarioConfig(dir), Host: sdk.NewHost(nil)})
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	checkDescription(t, d)
	for _, batch := range scenarioBatches() {
		var events []sdk.Event
		flushEvents := func() {
			if len(events) > 0 {
				must(t, tr.Events(ctx, events))
				events = nil
			}
		}
		for _, it := range batch {
			switch x := it.(type) {
			case sdk.Event:
				events = append(events, x)
				continue
			case sdk.Stack:
				flushEvents()
				must(t, tr.Stack(ctx, x))
			case sdk.Lost:
				flushEvents()
				must(t, tr.Lost(ctx, x))
			}
		}
		flushEvents()
	}
	must(t, tr.Close())
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// runScenario runs the scenario into a fresh directory and returns it.
func runScenario(t *testing.T) (string, *tracer) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "out") // made by Describe
	tr := newTracer()
	tr.now = func() time.Time { return closeTime }
	tr.stderr = new(strings.Builder) // no host: the summary goes here
	scenario(t, tr, dir)
	return dir, tr
}

func TestTracerCounts(t *testing.T) {
	dir, tr := runScenario(t)
	want := joinStats{Samples: 6, Stacks: 3, Joined: 3, Lost: 1, Unjoined: 2, NoCookie: 1, AtClose: 1, OrphanStacks: 1}
	if tr.joiner.stats != want {
		t.Errorf("stats %+v, want %+v", tr.joiner.stats, want)
	}
	if want := (counts{OtherEvents: 1, LostNotices: 1, HostLostStacks: 1}); tr.counts != want {
		t.Errorf("counts %+v, want %+v", tr.counts, want)
	}
	wantLog := "perf: wrote profile\tat_close=1\tevicted=0\thost_lost_events=0\thost_lost_stacks=1\tjoined=3\tlost=1\tno_cookie=1\torphan_stacks=1\tother_events=1\tout=" + dir + "\tsamples=6\tstacks=3\tunjoined=2\n"
	if got := tr.stderr.(*strings.Builder).String(); got != wantLog {
		t.Errorf("summary:\n%q\nwant\n%q", got, wantLog)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		if info, err := e.Info(); err != nil || info.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, %v; want 0644", e.Name(), info.Mode(), err)
		}
	}
	if want := []string{flameFile, scriptFile, profileFile, foldedFile}; !slices.Equal(names, want) {
		t.Errorf("out dir holds %q, want exactly %q (no temporary files)", names, want)
	}
	// Calls after Close are ignored, and a second Close does nothing.
	ctx := context.Background()
	must(t, tr.Events(ctx, []sdk.Event{sampleEv(0, 1, 1, 1)}))
	must(t, tr.Close())
	if tr.joiner.stats.Samples != 6 {
		t.Error("a sample after Close was counted")
	}
}

func TestDescribeErrors(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ config, want string }{
		{"hz: 99", "perf: config: out is required"},
		{"out: " + t.TempDir() + "\nhz: 0", `perf: config: hz: want an integer from 1 to 100000, got "0"`},
		{"out: " + file, "perf: config: out: mkdir " + file},
		{"out: " + filepath.Join(file, "sub"), "perf: config: out: mkdir " + file},
	} {
		_, err := newTracer().Describe(ctx, sdk.DescribeInfo{Config: []byte(c.config)})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Describe(%q) = %v, want an error containing %q", c.config, err, c.want)
		}
	}

	// A second Describe (a new connection) must keep the config.
	tr := newTracer()
	tr.stderr = io.Discard
	dir := t.TempDir()
	if _, err := tr.Describe(ctx, sdk.DescribeInfo{Config: []byte("out: " + dir)}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Describe(ctx, sdk.DescribeInfo{Config: []byte("# again\nout: " + dir + "\nhz: 999")}); err != nil {
		t.Errorf("second Describe with the same config: %v", err)
	}
	for _, cfg := range []string{"out: " + t.TempDir(), "out: " + dir + "\nhz: 99"} {
		if _, err := tr.Describe(ctx, sdk.DescribeInfo{Config: []byte(cfg)}); err == nil || !strings.Contains(err.Error(), "differs from the first connection's") {
			t.Errorf("second Describe with %q: %v, want an error", cfg, err)
		}
	}
	must(t, tr.Close())
	for _, f := range []string{profileFile, foldedFile, scriptFile, flameFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("empty run: %v", err)
		}
	}
}

// Close without a Describe writes nothing and does not fail.
func TestCloseUndescribed(t *testing.T) {
	must(t, newTracer().Close())
}
