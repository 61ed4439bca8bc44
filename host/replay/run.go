package replay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/deferred"
	"github.com/unwindd/unwindd/host/entry"
	"github.com/unwindd/unwindd/host/perfdata"
	"github.com/unwindd/unwindd/host/pluginhost"
	"github.com/unwindd/unwindd/host/symbolize"
	"github.com/unwindd/unwindd/host/unwindinfo"
)

// Options configure [Run]. Plugins is required; every other zero field
// means the documented default.
type Options struct {
	// Plugins are the plugins the file is replayed into.
	Plugins []pluginhost.Spec
	// Manager configures the plugin manager; its Resolver is replaced by
	// the replay's [Resolver].
	Manager pluginhost.Options
	// Symbolize configures the symbolizer of the [Resolver].
	Symbolize symbolize.Options
	// StartTimeout bounds the wait for every plugin to run. 0 means
	// Manager.HandshakeTimeout plus 5s (15s by default).
	StartTimeout time.Duration
	// Progress is handed to [Feed].
	Progress func(done, total int64, records uint64)
	// Running, if set, is called once every plugin runs, just before the
	// source starts, with the manager: a live progress display polls its
	// Stats and Dispatched (both safe from any goroutine) until
	// [RunSource] returns.
	Running func(*pluginhost.Manager)
	// Shards is the engine's cookie shards; 0 means runtime.NumCPU().
	Shards int
	// Unwind lists the unwind methods in priority order; nil means
	// unwindinfo.DefaultMethods (SFrame, CFI, frame pointers). Stacks the
	// recording carries as callchains (perf record -g) are replayed as
	// recorded whatever this says.
	Unwind []x86_64.FrameType
	// NoPace: see [RunSource].
	NoPace bool
	// CopyStacks is entry.Options.CopyStacks: set it for a source whose
	// stack bytes do not outlive the record (a live ring).
	CopyStacks bool
}

// Summary is what a replay did.
type Summary struct {
	File     string
	Feed     FeedStats
	Tracker  entry.Stats
	Plugins  []pluginhost.Stats // after shutdown
	Duration time.Duration      // from the plugins' start to their shutdown
}

// Run replays the perf.data file at path into the plugins: it starts them,
// waits until every one runs (or fails: the error names it), feeds the file
// pacing itself so that no plugin's outbox overflows, then ends the
// manager's context, which drains every outbox and stops the plugins. The
// summary is valid whenever the file could be opened, also with an error.
func Run(ctx context.Context, path string, opts Options, log *zap.Logger) (*Summary, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if len(opts.Plugins) == 0 {
		return nil, errors.New("replay: no plugins")
	}
	f, err := perfdata.Open(path)
	if err != nil {
		return nil, fmt.Errorf("replay %s: %w", path, err)
	}
	defer f.Close()
	if f.FeatureErr != nil {
		log.Warn("perf.data feature sections damaged", zap.Error(f.FeatureErr))
	}
	src := func(ctx context.Context, tr *entry.Tracker, _ pluginhost.Wants, fo FeedOptions) (FeedStats, error) {
		st, err := Feed(ctx, f, tr, fo)
		if err != nil {
			err = fmt.Errorf("replay %s: %w", path, err)
		}
		return st, err
	}
	sum, err := RunSource(ctx, src, f, opts, log)
	if sum != nil {
		sum.File = path
	}
	return sum, err
}

// Source feeds a tracker until its records end or ctx ends: a perf.data
// file ([Feed]), a live session. wants is what the running plugins
// subscribed to (what a live source opens); fo carries the pacing and
// progress of the run.
type Source func(ctx context.Context, tr *entry.Tracker, wants pluginhost.Wants, fo FeedOptions) (FeedStats, error)

// RunSource is [Run] for any source: it starts the plugins, waits until
// every one runs, makes the tracker (with the unwind tables of opts.Unwind
// and a [Resolver] naming functions, with the build-ids of recorded, which
// may be nil), runs src, and drains and stops the plugins. With
// opts.NoPace the source is not held back when an outbox fills (a live
// source cannot wait: the plugin's outbox drops, and its losses are told
// to it). The summary is valid whenever the plugins could be started.
func RunSource(ctx context.Context, src Source, recorded *perfdata.File, opts Options, log *zap.Logger) (*Summary, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if len(opts.Plugins) == 0 {
		return nil, errors.New("replay: no plugins")
	}
	steppers, fopts, err := unwindinfo.Steppers(opts.Unwind)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	u, err := entry.NewUnwinder(x86_64.Options{Steppers: steppers})
	if err != nil {
		return nil, err
	}
	files := unwindinfo.NewFiles(fopts, log)
	eng, err := deferred.New(deferred.Options{Shards: opts.Shards, Unwinder: u})
	if err != nil {
		return nil, err
	}
	spaces := new(entry.Spaces)
	mopts := opts.Manager
	mopts.Resolver = NewResolver(spaces, recorded, symbolize.New(opts.Symbolize, log))
	mgr, err := pluginhost.New(eng, opts.Plugins, mopts, log)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	sum := &Summary{}
	begin := time.Now()
	mctx, stop := context.WithCancel(ctx)
	defer stop()
	runErr := make(chan error, 1)
	go func() { runErr <- mgr.Run(mctx) }()
	finish := func(err error) (*Summary, error) {
		stop()
		err = errors.Join(err, <-runErr)
		sum.Plugins, sum.Duration = mgr.Stats(), time.Since(begin)
		return sum, err
	}

	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = mopts.HandshakeTimeout + 5*time.Second
		if mopts.HandshakeTimeout == 0 {
			timeout = 15 * time.Second
		}
	}
	if err := waitRunning(ctx, mgr, timeout); err != nil {
		return finish(err)
	}
	tr, err := entry.New(eng, mgr.Dispatcher(), entry.Options{Spaces: spaces, Tables: Tables(spaces, files), CopyStacks: opts.CopyStacks}, log)
	if err != nil {
		return finish(err)
	}
	fo := FeedOptions{Progress: opts.Progress}
	if !opts.NoPace {
		p := &pacer{mgr: mgr, limits: outboxLimits(opts.Plugins)}
		fo.Pace = p.pace
	}
	if opts.Running != nil {
		opts.Running(mgr)
	}
	sum.Feed, err = src(ctx, tr, mgr.Wants(), fo)
	sum.Tracker = tr.Stats()
	return finish(err)
}

// Tables returns the per-process unwind tables of the processes in spaces,
// for [entry.Options].
func Tables(spaces *entry.Spaces, files *unwindinfo.Files) func(pid int32) x86_64.Table {
	return func(pid int32) x86_64.Table {
		return files.Process(func(addr uint64) (unwindinfo.Mapping, bool) {
			m, ok := spaces.Find(pid, addr)
			if !ok || !m.Exec {
				return unwindinfo.Mapping{}, false
			}
			return unwindinfo.Mapping{Start: m.Start, Limit: m.Limit, Offset: m.Offset, Path: m.Path,
				BuildID: m.BuildID, Major: m.Major, Minor: m.Minor, Inode: m.Inode}, true
		})
	}
}

// waitRunning waits until every plugin runs. A plugin that crashes before
// it ever ran, or is given up, fails the wait with its error.
func waitRunning(ctx context.Context, mgr *pluginhost.Manager, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		running := 0
		for _, s := range mgr.Stats() {
			switch {
			case s.State == pluginhost.StateRunning:
				running++
			case s.State == pluginhost.StateFailed || s.Crashes > 0:
				return fmt.Errorf("replay: plugin %q did not start: %w", s.Name, s.Err)
			}
		}
		if running == len(mgr.Stats()) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replay: plugins not running after %v", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// outboxLimits are the backlogs the feed lets each plugin have: half its
// outbox.
func outboxLimits(specs []pluginhost.Spec) []uint64 {
	l := make([]uint64, len(specs))
	for i, s := range specs {
		n := s.OutboxSize
		if n <= 0 {
			n = 8192
		}
		l[i] = uint64(max(1, n/2))
	}
	return l
}

// pacer holds the feed back while a running plugin's outbox is more than
// half full: a file is read much faster than plugins take events, and a
// replay must not drop what a live host would have had time to send.
type pacer struct {
	mgr    *pluginhost.Manager
	limits []uint64
	base   []uint64 // per plugin: items counted as queued that a crash discarded
	starts []uint64 // per plugin: Restarts when base was taken
}

// maxStall is how long the pacer waits for a plugin that sends nothing
// before it lets the feed go on (the plugin's outbox then overflows and
// its losses are counted).
const maxStall = 2 * time.Second

func (p *pacer) pace(ctx context.Context) error {
	var lastSent uint64
	progress := time.Now()
	for {
		st := p.mgr.Stats()
		if p.base == nil {
			p.base, p.starts = make([]uint64, len(st)), make([]uint64, len(st))
		}
		full, sent := false, uint64(0)
		for i, s := range st {
			queued := s.Events + s.Stacks
			if s.Restarts != p.starts[i] { // a crash discarded its outbox
				p.starts[i], p.base[i] = s.Restarts, queued-min(queued, s.ItemsSent)
			}
			sent += s.ItemsSent
			if s.State != pluginhost.StateRunning {
				continue
			}
			backlog := queued - min(queued, s.ItemsSent+p.base[i])
			if backlog > p.limits[i] {
				full = true
			}
		}
		if !full {
			return nil
		}
		if sent != lastSent {
			lastSent, progress = sent, time.Now()
		} else if time.Since(progress) > maxStall {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}
