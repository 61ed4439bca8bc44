package pluginhost

import (
	"testing"
	"time"

	"github.com/unwindd/unwindd/host/deferred"
)

// TestDecisions drives entries from two goroutines (so decisions are in
// flight on one stream at once) into three decide-mode plugins: one on the
// Decisions stream, one that does not serve it (a plugin built before it:
// the host falls back to Decide calls), and one that answers too late.
// The first two get exactly the stacks they wanted (odd tids) and no
// timeouts or errors; the late one's every call times out, it gets no
// stack and no cookie, and its late answers are dropped, not misread as
// the answers of later entries.
func TestDecisions(t *testing.T) {
	eng, err := deferred.New(deferred.Options{Shards: 2})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	specs := []Spec{
		spec("stream", out, "MODE=decide", "SUBS=sys:read"),
		spec("legacy", out, "MODE=decide", "SUBS=sys:read", "NO_DECISIONS=1"),
		spec("late", out, "MODE=decide", "SUBS=sys:read", "DECIDE_SLEEP=30ms"),
	}
	for i := range specs {
		specs[i].DecideDeadline = 5 * time.Second
	}
	specs[2].DecideDeadline = 10 * time.Millisecond
	r := start(t, eng, specs, Options{})
	waitFor(t, r.m, 20*time.Second, "plugins running", allRunning)
	const goroutines, perG = 2, 300
	infos := drive(t, eng, r.m, goroutines, perG, 1000, nil)
	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var wd, wl want
	reads := uint64(0)
	for _, e := range infos {
		if !e.read {
			continue
		}
		reads++
		wd.events++
		wl.events++
		if e.tid%2 == 1 {
			wd.cookieEvents++
			wd.stack(e)
		}
	}
	if reads == 0 {
		t.Fatal("the driver made no read events")
	}
	rep := reports(t, out)
	for name, w := range map[string]want{"stream": wd, "legacy": wd, "late": wl} {
		if len(rep[name]) != 1 {
			t.Fatalf("%s: %d reports, want 1", name, len(rep[name]))
		}
		checkExact(t, rep[name][0], w)
		s := byName(r.m.Stats(), name)
		if s.DecideCalls != reads {
			t.Errorf("%s: %d decide calls for %d entries with a read", name, s.DecideCalls, reads)
		}
		wantTimeouts := uint64(0)
		if name == "late" {
			wantTimeouts = reads
		}
		if s.DecideTimeouts != wantTimeouts || s.DecideErrors != 0 {
			t.Errorf("%s: %d decide timeouts, %d errors; want %d, 0", name, s.DecideTimeouts, s.DecideErrors, wantTimeouts)
		}
		t.Logf("%s: %d decide calls, %d timeouts, %d stacks", name, s.DecideCalls, s.DecideTimeouts, s.Stacks)
	}
}
