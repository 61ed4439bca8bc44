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
// the answers of later entries. Two more plugins have a StackFilter (tid
// 1001): in mode decide it is asked about that thread's entries only, in
// mode always it gets that thread's stacks only, and both get every event.
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
		// StackFilter: only tid 1001's entries are asked about, or (mode
		// always) requested; every event still arrives.
		spec("filtered-decide", out, "MODE=decide", "SUBS=sys:read", "STACK_IDS=1001"),
		spec("filtered-always", out, "MODE=always", "SUBS=sys:read", "STACK_IDS=1001"),
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
	var wd, wl, wf want
	reads, filteredReads := uint64(0), uint64(0)
	for _, e := range infos {
		if !e.read {
			continue
		}
		reads++
		wd.events++
		wl.events++
		wf.events++
		if e.tid%2 == 1 {
			wd.cookieEvents++
			wd.stack(e)
		}
		if e.tid == 1001 { // odd: the decider wants it too
			filteredReads++
			wf.cookieEvents++
			wf.stack(e)
		}
	}
	if filteredReads == 0 {
		t.Fatal("the driver made no read in tid 1001")
	}
	if reads == 0 {
		t.Fatal("the driver made no read events")
	}
	rep := reports(t, out)
	for name, w := range map[string]want{"stream": wd, "legacy": wd, "late": wl, "filtered-decide": wf, "filtered-always": wf} {
		if len(rep[name]) != 1 {
			t.Fatalf("%s: %d reports, want 1", name, len(rep[name]))
		}
		checkExact(t, rep[name][0], w)
		s := byName(r.m.Stats(), name)
		wantCalls := map[string]uint64{"filtered-decide": filteredReads, "filtered-always": 0}[name]
		if _, ok := map[string]bool{"filtered-decide": true, "filtered-always": true}[name]; !ok {
			wantCalls = reads
		}
		if s.DecideCalls != wantCalls {
			t.Errorf("%s: %d decide calls, want %d (%d entries with a read, %d of them in tid 1001)", name, s.DecideCalls, wantCalls, reads, filteredReads)
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
