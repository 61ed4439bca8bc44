// Command perf is unwindd's sampling profiler plugin. It subscribes to
// cpu-clock samples with request mode always, joins each sample to the user
// stack of its kernel entry by cookie, and when the host shuts it down
// writes four files into its out directory:
//
//   - profile.pb.gz: a pprof profile (sample types samples/count and
//     cpu/nanoseconds; mappings with build-ids, locations, functions; string
//     label "comm", numeric labels "pid" and "tid") for go tool pprof;
//   - stacks.folded: "comm;root;…;leaf count" lines for flamegraph.pl and
//     inferno;
//   - perf.script.txt: the samples in the layout of perf script with
//     callchains;
//   - flame.svg: the folded stacks as an interactive flame graph, in the
//     layout of flamegraph.pl (root at the bottom, an "all" frame, then the
//     comms), self-contained (inline CSS and JavaScript): hover for a
//     frame's samples, click to zoom, search with a regular expression
//     (also as ?s=regexp in its URL). Frames narrower than 0.1% of the
//     width are left out; their samples count in their parent.
//
// Each file is written to a temporary name in the out directory and renamed,
// so a crash never leaves a half-written file under the final name (it may
// leave a ".perf.script.txt.tmp…" file: perf script text is streamed to it
// from the start, so that its memory stays bounded). The profile and the
// folded stacks aggregate identical stacks of a task, so their memory grows
// with distinct stacks, not samples; the folded counts are samples, and the
// flame graph is drawn from the same counts (see writeFlame). In
// perf.script.txt samples are in time order within a window of max_wait
// (see scriptWriter); pprof locations of non-leaf frames are return address
// minus one (see profileBuilder).
//
// # Config
//
// The plugin's config block, one "key: value" per line (a flat YAML
// mapping; "#" starts a comment):
//
//	out: /tmp/profile   # required: the output directory (the host's --out); made if missing
//	hz: 999             # sampling frequency, 1 to 100000; default 999
//	max_pending: 65536  # samples held while they wait for their stack; default 65536
//	max_wait: 10s       # how long (in sample time) a sample waits for its stack; default 10s
//
// Describe rejects unknown or repeated keys and bad values, naming the line
// and the key.
//
// # Joining samples to stacks
//
// The host sends every event of a kernel entry before the entry's stack.
// Samples wait in a map by cookie; when the stack comes, each sample of the
// entry (an entry may hold several) becomes one sample with that stack. A
// lost notice drops the waiting samples of the cookies it names: they are
// counted as lost and written nowhere. A sample whose stack does not come is
// written without a stack, and counted as unjoined: at once if it has no
// cookie (no stack was requested for it), when its entry is evicted (its
// first sample is more than max_wait older than the newest event seen, or more than max_pending samples wait and it is the oldest), or at
// close. Without a stack a sample is a pprof sample with no locations (it
// counts in the totals), a folded line of the comm alone (what
// stackcollapse-perf.pl makes of a sample without a callchain), and a perf
// script header without frame lines. A stack that finds no waiting sample is
// counted as an orphan.
//
// At close the plugin logs one line through the host: samples, stacks,
// joined, lost, unjoined (of which evicted, no cookie, at close), orphan
// stacks, and what the host reported it dropped.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/unwindd/unwindd/sdk"
	"github.com/unwindd/unwindd/sdk/outfile"
)

// version is the plugin's version, in its Description.
const version = "0.1.0"

// tracer is the perf plugin's sdk.Tracer and sdk.Closer.
type tracer struct {
	now    func() time.Time // the wall clock, for the profile's start time
	stderr io.Writer        // where the summary goes when the host cannot take it

	// mu serialises Close, which the SDK calls from its own goroutine,
	// with the delivery calls.
	mu        sync.Mutex
	cfg       config
	host      *sdk.Host
	started   bool // the first Describe succeeded: the writers exist
	closed    bool
	joiner    *joiner
	prof      *profileBuilder
	folded    *foldedBuilder
	script    *scriptWriter
	scriptTmp *outfile.File
	stacks    *stackTable // the distinct stacks, shared by the outputs
	cur       sdk.Stack   // the stack being joined (kept here so that it does not escape per call)
	counts    counts
}

// counts is what the tracer saw besides what the joiner counts.
type counts struct {
	OtherEvents    uint64 // events that are not cpu-clock samples
	LostNotices    uint64
	HostLostEvents uint64 // events the host says it dropped
	HostLostStacks uint64 // stacks the host says it dropped
}

func newTracer() *tracer { return &tracer{now: time.Now, stderr: os.Stderr} }

// Describe validates the config and, on the first call, makes the out
// directory and starts the outputs. A later call (a new host connection)
// keeps what was collected and must give the same config.
func (t *tracer) Describe(_ context.Context, info sdk.DescribeInfo) (sdk.Description, error) {
	cfg, err := parseConfig(info.Config)
	if err != nil {
		return sdk.Description{}, fmt.Errorf("perf: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return sdk.Description{}, fmt.Errorf("perf: described after close")
	}
	if t.started {
		if cfg != t.cfg {
			return sdk.Description{}, fmt.Errorf("perf: config %+v differs from the first connection's %+v, which is in use", cfg, t.cfg)
		}
	} else if !info.Check { // a check makes no directory and writes no file
		if err := t.start(cfg); err != nil {
			return sdk.Description{}, fmt.Errorf("perf: %w", err)
		}
	}
	t.host = info.Host
	if t.host == nil {
		t.host = sdk.NewHost(nil) // logs to stderr
	}
	return sdk.Description{
		Name:          "perf",
		Version:       version,
		Subscriptions: []sdk.Subscription{sdk.CPUClock(cfg.Hz)},
		Mode:          sdk.ModeAlways,
	}, nil
}

// start makes the out directory and the writers.
func (t *tracer) start(cfg config) error {
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return &sdk.ConfigError{Field: "out", Msg: err.Error()}
	}
	f, err := outfile.Create(cfg.Out, scriptFile)
	if err != nil {
		return &sdk.ConfigError{Field: "out", Msg: err.Error()}
	}
	wait := uint64(cfg.MaxWait.Nanoseconds())
	t.cfg = cfg
	t.scriptTmp = f
	t.prof = newProfileBuilder(cfg.Hz)
	t.folded = newFoldedBuilder()
	t.script = newScriptWriter(f, wait, cfg.MaxPending)
	t.stacks = newStackTable()
	t.prof.stacks, t.folded.stacks, t.script.stacks = t.stacks, t.stacks, t.stacks
	t.joiner = newJoiner(cfg.MaxPending, wait, func(samples []sample, st *sdk.Stack) {
		si := t.stacks.lookupStack(st)
		t.prof.addStack(samples, si)
		t.folded.addStack(samples, si)
		t.script.addStack(samples, si)
	})
	t.started = true
	return nil
}

// Events takes the cpu-clock samples; other events are counted and ignored.
// CopiesEvents: Events copies what it keeps of each sample (sdk.EventCopier).
func (t *tracer) CopiesEvents() bool { return true }

func (t *tracer) Events(_ context.Context, events []sdk.Event) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.started || t.closed {
		return nil
	}
	for i := range events {
		ev := &events[i]
		if ev.Kind != sdk.KindSample {
			t.counts.OtherEvents++
			continue
		}
		t.joiner.add(ev.Cookie, sample{
			Name:   ev.Name,
			Comm:   ev.Comm,
			PID:    ev.PID,
			TID:    ev.TID,
			CPU:    ev.CPU,
			Time:   ev.Time,
			Period: ev.Period,
		})
	}
	return nil
}

// Stack joins the samples waiting for s.Cookie to s.
func (t *tracer) Stack(_ context.Context, s sdk.Stack) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.started || t.closed {
		return nil
	}
	t.cur = s
	t.joiner.stack(&t.cur)
	t.cur = sdk.Stack{}
	return nil
}

// Lost drops the samples of the cookies the host names.
func (t *tracer) Lost(_ context.Context, l sdk.Lost) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.started || t.closed {
		return nil
	}
	t.counts.LostNotices++
	t.counts.HostLostEvents += l.Events
	t.counts.HostLostStacks += l.Stacks
	t.joiner.lost(l.Cookies)
	return nil
}

// Close writes the four files and logs a summary. Samples still waiting
// for their stack are written without one. A second Close does nothing.
func (t *tracer) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || !t.started {
		t.closed = true
		return nil
	}
	t.closed = true
	t.joiner.flush()
	st := t.joiner.stats
	dir := t.cfg.Out

	errScript := t.scriptTmp.Commit(t.script.flush())
	var errProfile error
	if p, err := t.prof.profile(t.now().UnixNano(), t.comments()); err != nil {
		errProfile = fmt.Errorf("build %s: %w", profileFile, err)
	} else {
		errProfile = outfile.Write(dir, profileFile, p.Write)
	}
	errFolded := outfile.Write(dir, foldedFile, func(w io.Writer) error { _, err := t.folded.WriteTo(w); return err })
	errFlame := outfile.Write(dir, flameFile, t.folded.writeFlame)
	err := errors.Join(errScript, errProfile, errFolded, errFlame)

	fields := map[string]string{"out": dir}
	for _, kv := range []struct {
		k string
		v uint64
	}{
		{"samples", st.Samples}, {"stacks", st.Stacks}, {"joined", st.Joined}, {"lost", st.Lost},
		{"unjoined", st.Unjoined}, {"evicted", st.Evicted}, {"no_cookie", st.NoCookie}, {"at_close", st.AtClose},
		{"orphan_stacks", st.OrphanStacks}, {"other_events", t.counts.OtherEvents},
		{"host_lost_events", t.counts.HostLostEvents}, {"host_lost_stacks", t.counts.HostLostStacks},
	} {
		fields[kv.k] = strconv.FormatUint(kv.v, 10)
	}
	if err != nil {
		fields["error"] = err.Error()
		t.host.CloseLog(t.stderr, sdk.LevelError, "perf: write profile failed", fields)
		return fmt.Errorf("perf: %w", err)
	}
	t.host.CloseLog(t.stderr, sdk.LevelInfo, "perf: wrote profile", fields)
	return nil
}

// comments are the profile's comments: where it came from and the counts.
func (t *tracer) comments() []string {
	st := t.joiner.stats
	return []string{
		"unwindd perf plugin " + version,
		fmt.Sprintf("samples=%d stacks=%d joined=%d lost=%d unjoined=%d evicted=%d no_cookie=%d at_close=%d orphan_stacks=%d",
			st.Samples, st.Stacks, st.Joined, st.Lost, st.Unjoined, st.Evicted, st.NoCookie, st.AtClose, st.OrphanStacks),
	}
}

func main() { sdk.Serve(newTracer()) }
