package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"go.uber.org/zap"

	"github.com/unwindd/unwindd/host/deferred"
	"github.com/unwindd/unwindd/sdk"
)

// State is where a plugin is in its life.
type State uint8

// Plugin states.
const (
	StateStarting   State = iota // not yet started, or starting
	StateRunning                 // connected and receiving
	StateRestarting              // crashed, waiting for its restart
	StateFailed                  // given up: see Stats.Err
	StateStopped                 // shut down with the manager
)

func (s State) String() string {
	switch s {
	case StateStarting:
		return "starting"
	case StateRunning:
		return "running"
	case StateRestarting:
		return "restarting"
	case StateFailed:
		return "failed"
	case StateStopped:
		return "stopped"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Stats are one plugin's counters, summed over its restarts.
type Stats struct {
	Name  string
	State State
	Err   error // why the plugin was given up (StateFailed), or its last crash
	Mode  Mode  // as the current or last instance described itself
	Bit   int   // the current tracer bit, -1 when not running
	// Description is what the current or last instance said of itself
	// (name, version, subscriptions, filter); zero before the first start.
	Description sdk.Description

	Events, Stacks               uint64 // items accepted into the outbox
	DroppedEvents, DroppedStacks uint64 // items dropped: full outbox, or left behind by a crash
	LostNotices                  uint64 // lost notices sent
	ItemsSent                    uint64 // events and stacks sent
	Batches, Acked               uint64 // batches sent and acknowledged
	StackDefs, StackRefs         uint64 // stacks sent in full, stacks sent as a reference only
	DecideCalls, DecideTimeouts  uint64
	DecideErrors                 uint64
	// RequestsRefused counts the stacks the host asked the engine for on
	// the plugin's behalf and the engine refused: a 32-bit (compat) task
	// or a kernel thread (R5), an exiting task.
	RequestsRefused   uint64
	Crashes, Restarts uint64
}

type counters struct {
	events, stacks               atomic.Uint64
	droppedEvents, droppedStacks atomic.Uint64
	lostNotices, itemsSent       atomic.Uint64
	batches, acked               atomic.Uint64
	stackDefs, stackRefs         atomic.Uint64
	decideCalls, decideTimeouts  atomic.Uint64
	decideErrors                 atomic.Uint64
	refused                      atomic.Uint64
	crashes, restarts            atomic.Uint64
}

// plugin is one spec and its supervisor's state.
type plugin struct {
	spec prepared
	log  *zap.Logger
	ctr  counters

	mu    sync.Mutex // guards state, err, cur, mode; taken after Manager.liveMu, never on the hot path
	state State
	err   error
	cur   *instance
	mode  Mode
	desc  sdk.Description
}

// Manager starts, supervises and feeds the plugins of a host. Its
// [Dispatcher]s are the sources' hot path; [Manager.Run] is its life.
//
// Lock order: Manager.liveMu, then plugin.mu, then instance.lostMu. The
// hot path ([Dispatcher.Event], the engine's callbacks) takes none of them
// except lostMu, and that only when an outbox is full.
type Manager struct {
	eng     *deferred.Engine
	opts    Options
	log     *zap.Logger
	plugins []*plugin

	liveMu sync.Mutex                  // serialises changes of live
	live   atomic.Pointer[[]*instance] // the running instances, read lock-free by dispatchers
	ran    atomic.Bool

	dispatched atomic.Uint64 // events handed to Dispatcher.Event, for Dispatched
}

// Dispatched returns how many events the sources have handed to the
// manager's dispatchers so far (each counted once, whichever plugins it
// went to). It may be called at any time, from any goroutine: a progress
// display polls it.
func (m *Manager) Dispatched() uint64 { return m.dispatched.Load() }

// New validates specs and opts and returns a Manager; nothing is started
// until [Manager.Run]. A nil log means zap.NewNop().
func New(eng *deferred.Engine, specs []Spec, opts Options, log *zap.Logger) (*Manager, error) {
	if eng == nil {
		return nil, errors.New("pluginhost: nil engine")
	}
	if log == nil {
		log = zap.NewNop()
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if len(specs) > deferred.MaxTracers {
		return nil, fmt.Errorf("pluginhost: %d plugins, at most %d", len(specs), deferred.MaxTracers)
	}
	m := &Manager{eng: eng, opts: opts, log: log}
	m.live.Store(new([]*instance))
	seen := map[string]bool{}
	for _, s := range specs {
		p, err := s.prepare()
		if err != nil {
			return nil, err
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("pluginhost: plugin name %q used twice", p.Name)
		}
		seen[p.Name] = true
		m.plugins = append(m.plugins, &plugin{spec: p, log: log.With(zap.String("plugin", p.Name))})
	}
	return m, nil
}

// Run starts every plugin and supervises them until ctx ends: a plugin that
// dies is restarted with exponential backoff, and given up after
// MaxQuickCrashes quick crashes in a row (the others run on). When ctx ends,
// each plugin's outbox is drained within DrainTimeout and the plugin is
// stopped. Run returns nil after a clean shutdown, or the plugins' failures
// (given up, drain incomplete) joined. It may be called once.
func (m *Manager) Run(ctx context.Context) error {
	if !m.ran.CompareAndSwap(false, true) {
		return errors.New("pluginhost: Run called twice")
	}
	errs := make([]error, len(m.plugins))
	var wg sync.WaitGroup
	for i, p := range m.plugins {
		wg.Go(func() { errs[i] = m.supervise(ctx, p) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// permanent reports whether a start error will not go away by retrying.
func permanent(err error) bool {
	return len(sdk.ConfigErrors(err)) > 0 || errors.Is(err, goplugin.ErrChecksumsDoNotMatch) || errors.Is(err, goplugin.ErrSecureConfigNoChecksum) ||
		errors.Is(err, goplugin.ErrSecureConfigNoHash) || strings.Contains(strings.ToLower(err.Error()), "incompatible api version")
}

func (p *plugin) setState(s State, err error, in *instance) {
	p.mu.Lock()
	p.state, p.cur = s, in
	if err != nil {
		p.err = err
	}
	if in != nil {
		p.mode, p.desc = in.mode, in.desc
	}
	p.mu.Unlock()
}

// supervise is one plugin's life: start, watch, restart, give up or drain.
func (m *Manager) supervise(ctx context.Context, p *plugin) error {
	backoff, quick := m.opts.RestartBackoff, 0
	for {
		p.setState(StateStarting, nil, nil)
		in, err := m.startInstance(p)
		if err == nil {
			p.setState(StateRunning, nil, in)
			m.publish(in)
			if err = in.watch(ctx); err == nil { // ctx ended
				err = in.shutdown()
				p.setState(StateStopped, err, nil)
				if err != nil {
					err = fmt.Errorf("pluginhost: plugin %q: %w", p.spec.Name, err)
					p.log.Error("plugin shutdown incomplete", zap.Error(err))
				} else {
					p.log.Info("plugin stopped")
				}
				return err
			}
			err = fmt.Errorf("plugin died after %v: %w", time.Since(in.start).Round(time.Millisecond), err)
			p.ctr.crashes.Add(1)
			p.log.Warn("plugin died", zap.Error(err))
			in.stop()
		} else {
			err = fmt.Errorf("start failed: %w", err)
			if ctx.Err() == nil {
				p.ctr.crashes.Add(1)
			}
		}
		if ctx.Err() != nil {
			p.setState(StateStopped, err, nil)
			return nil
		}
		quickCrash := in == nil || time.Since(in.start) < m.opts.QuickCrash
		if quickCrash {
			quick++
		} else {
			quick, backoff = 0, m.opts.RestartBackoff
		}
		if perm := permanent(err); perm || quick >= m.opts.MaxQuickCrashes {
			if perm {
				err = fmt.Errorf("pluginhost: plugin %q refused: %w", p.spec.Name, err)
			} else {
				err = fmt.Errorf("pluginhost: plugin %q given up after %d quick crashes: %w", p.spec.Name, quick, err)
			}
			p.log.Error("plugin given up", zap.Error(err))
			p.setState(StateFailed, err, nil)
			return err
		}
		p.log.Warn("restarting plugin", zap.Error(err), zap.Duration("backoff", backoff), zap.Int("quick_crashes", quick))
		p.setState(StateRestarting, err, nil)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			p.setState(StateStopped, nil, nil)
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, m.opts.MaxBackoff)
		p.ctr.restarts.Add(1)
	}
}

func (m *Manager) publish(in *instance) {
	m.liveMu.Lock()
	defer m.liveMu.Unlock()
	l := append(slices.Clone(*m.live.Load()), in)
	m.live.Store(&l)
}

func (m *Manager) unpublish(in *instance) {
	in.gone.Store(true)
	m.liveMu.Lock()
	defer m.liveMu.Unlock()
	l := slices.DeleteFunc(slices.Clone(*m.live.Load()), func(x *instance) bool { return x == in })
	m.live.Store(&l)
}

// Stats returns every plugin's counters, in spec order.
func (m *Manager) Stats() []Stats {
	out := make([]Stats, len(m.plugins))
	for i, p := range m.plugins {
		c := &p.ctr
		p.mu.Lock()
		s := Stats{Name: p.spec.Name, State: p.state, Err: p.err, Mode: p.mode, Bit: -1, Description: p.desc}
		if p.cur != nil {
			s.Bit = p.cur.tracer.Bit()
		}
		p.mu.Unlock()
		s.Events, s.Stacks = c.events.Load(), c.stacks.Load()
		s.DroppedEvents, s.DroppedStacks = c.droppedEvents.Load(), c.droppedStacks.Load()
		s.LostNotices, s.ItemsSent = c.lostNotices.Load(), c.itemsSent.Load()
		s.Batches, s.Acked = c.batches.Load(), c.acked.Load()
		s.StackDefs, s.StackRefs = c.stackDefs.Load(), c.stackRefs.Load()
		s.DecideCalls, s.DecideTimeouts, s.DecideErrors = c.decideCalls.Load(), c.decideTimeouts.Load(), c.decideErrors.Load()
		s.RequestsRefused = c.refused.Load()
		s.Crashes, s.Restarts = c.crashes.Load(), c.restarts.Load()
		out[i] = s
	}
	return out
}

// Wants is what the running plugins subscribed to, merged: what a live
// source must open. Stack says whether some plugin may want the user stack
// of such events (its mode is not never), so that a source captures stack
// snapshots only for events that can use them.
type Wants struct {
	Samples, SampleStack   bool
	Hz                     uint32 // the highest cpu-clock rate a plugin asked for
	Syscalls, SyscallStack bool   // some plugin subscribed to syscalls (all or some)
	// Tracepoints maps "group:name" to whether a stack may be wanted.
	Tracepoints map[string]bool
}

// Wants merges the subscriptions of the plugins running now.
func (m *Manager) Wants() Wants {
	w := Wants{Tracepoints: map[string]bool{}}
	for _, in := range *m.live.Load() {
		mt, stack := in.match, in.mode != ModeNever
		if mt.samples {
			w.Samples, w.SampleStack, w.Hz = true, w.SampleStack || stack && mt.sampleStack, max(w.Hz, mt.hz)
		}
		if mt.allSyscalls || len(mt.syscalls) > 0 {
			w.Syscalls = true
			w.SyscallStack = w.SyscallStack || stack && (mt.allSyscalls && mt.allStack || slices.Contains(slices.Collect(maps.Values(mt.syscalls)), true))
		}
		for tp, tpStack := range mt.tracepoints {
			w.Tracepoints[tp] = w.Tracepoints[tp] || stack && tpStack
		}
	}
	return w
}
