package deferred

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/unwindd/unwindd/arch/x86_64"
)

var modelEntries = flag.Int("model.entries", 0, "kernel entries for TestModel (0: 1e6, or 3e4 under -race or -short)")

// The model test drives the engine from many goroutines at once with random
// registrations, cancels, owner and remote requests, entry opens and closes,
// and task exits, and checks after every batch against a reference model:
//   - every request that returned 0 is matched by exactly one callback of that
//     entry, unless its tracer's cancel began before the entry ended;
//   - no tracer is called in an entry where no request of its returned 0, and
//     none is called twice;
//   - a 1 is only returned after a 0 in the same entry;
//   - cookies are never 0 and no two entries share one;
//   - each callback gets the stack of its own entry.
//
// As in the kernel, a tracer stops requesting before it is cancelled: the
// test retires a tracer, waits until every requester has moved past it, and
// only then calls Cancel (while deliveries and other tracers' requests go on).

const (
	modelWorkers   = 4    // entry owners, one shard each
	modelRemotes   = 2    // goroutines making Engine.Request calls
	modelTasks     = 1024 // tasks, spread over the workers
	modelBatch     = 2000 // entries per worker per batch
	modelMaxFrames = 8
)

type evKind uint8

const (
	evZero evKind = iota
	evOne
	evCall
)

type ev struct {
	tracer int32 // index into model.tracers
	kind   evKind
}

// entryRec is what the model learnt of one entry, keyed by its cookie.
type entryRec struct {
	tid      int32
	closedAt int64 // model clock when its Close/Exit returned; 0 if open
	events   []ev
}

type mTracer struct {
	id       int32
	tr       *Tracer
	retiring atomic.Bool
	cancelAt atomic.Int64 // model clock when Cancel began
}

// requester is a goroutine that issues requests; tracers are retired only
// once every requester has moved past them.
type requester struct {
	epoch atomic.Int64
	idle  atomic.Bool
}

type recShard struct {
	mu   sync.Mutex
	recs map[Cookie]*entryRec
}

type model struct {
	t       *testing.T
	current [modelWorkers]atomic.Int32 // tid of each worker's open entry
	e       *Engine
	clock   atomic.Int64
	shards  [64]recShard
	live    atomic.Pointer[[]*mTracer] // tracers requesters may use
	tracers []*mTracer                 // all ever registered, by id; grows under regMu
	regMu   sync.Mutex
	reqs    []*requester
	errs    atomic.Int64
	closed  sync.Map // Cookie → tid, every cookie seen at an entry's end
	snaps   [modelMaxFrames + 1]struct {
		regs x86_64.Regs
		snap *x86_64.Snapshot
	}
}

func (m *model) fail(format string, args ...any) {
	if m.errs.Add(1) <= 20 {
		m.t.Errorf(format, args...)
	}
}

func (m *model) rec(c Cookie, tid int32) *entryRec {
	s := &m.shards[uint64(c)%uint64(len(m.shards))]
	s.mu.Lock()
	r := s.recs[c]
	if r == nil {
		r = &entryRec{tid: tid}
		s.recs[c] = r
	} else if r.tid != tid {
		m.fail("cookie %v seen for tasks %d and %d", c, r.tid, tid)
	}
	s.mu.Unlock()
	return r
}

func (m *model) note(c Cookie, tid int32, e ev) {
	if c == 0 {
		m.fail("task %d: cookie 0 with %v", tid, e)
		return
	}
	s := &m.shards[uint64(c)%uint64(len(m.shards))]
	r := m.rec(c, tid)
	s.mu.Lock()
	r.events = append(r.events, e)
	s.mu.Unlock()
}

func (m *model) request(r *requester, rng *rand.Rand, do func(*Tracer) (int, Cookie, error), tid int32) {
	defer r.epoch.Add(1)
	live := *m.live.Load()
	if len(live) == 0 {
		return
	}
	mt := live[rng.IntN(len(live))]
	if mt.retiring.Load() {
		return
	}
	ret, c, err := do(mt.tr)
	switch {
	case err != nil:
		if ret >= 0 || c != 0 {
			m.fail("request error %v with ret %d cookie %v", err, ret, c)
		}
	case ret == 0:
		m.note(c, tid, ev{mt.id, evZero})
	case ret == 1:
		m.note(c, tid, ev{mt.id, evOne})
	default:
		m.fail("request returned %d without error", ret)
	}
}

// wTask is a worker's view of one of its tasks.
type wTask struct {
	tk     *Task
	frames int // depth of the open entry's stack
}

func (m *model) callback(mt *mTracer) Callback {
	return func(tk *Task, trace *x86_64.Trace, c Cookie) {
		m.note(c, tk.TID(), ev{mt.id, evCall})
		if want := int(tk.regs.IP>>12) - 0x400; len(trace.Frames) != want {
			m.fail("task %d cookie %v: callback got %d frames, entry had %d", tk.TID(), c, len(trace.Frames), want)
		}
	}
}

func (m *model) register(rng *rand.Rand) {
	m.regMu.Lock()
	defer m.regMu.Unlock()
	mt := &mTracer{id: int32(len(m.tracers))}
	tr, err := m.e.Register(fmt.Sprint("t", mt.id), m.callback(mt))
	if err != nil {
		m.fail("register: %v", err)
		return
	}
	mt.tr = tr
	m.tracers = append(m.tracers, mt)
	l := append(append([]*mTracer(nil), *m.live.Load()...), mt)
	m.live.Store(&l)
}

// retire stops requests for a random tracer, waits until every requester has
// moved past it, then cancels it.
func (m *model) retire(rng *rand.Rand) {
	m.regMu.Lock()
	old := *m.live.Load()
	if len(old) < 2 {
		m.regMu.Unlock()
		return
	}
	i := rng.IntN(len(old))
	mt := old[i]
	l := append(append([]*mTracer(nil), old[:i]...), old[i+1:]...)
	m.live.Store(&l)
	m.regMu.Unlock()
	mt.retiring.Store(true)
	for _, r := range m.reqs {
		e0 := r.epoch.Load()
		for r.epoch.Load() == e0 && !r.idle.Load() {
			runtime.Gosched()
		}
	}
	mt.cancelAt.Store(m.clock.Add(1))
	m.e.Cancel(mt.tr)
}

func (m *model) worker(w int, tasks []*wTask, n int, req *requester, rng *rand.Rand) {
	defer req.idle.Store(true)
	s := m.e.Shard(w)
	for i := 0; i < n; i++ {
		wt := tasks[rng.IntN(len(tasks))]
		wt.frames = 1 + rng.IntN(modelMaxFrames)
		sn := m.snaps[wt.frames]
		if err := wt.tk.Open(s, sn.regs, sn.snap); err != nil {
			m.fail("open task %d: %v", wt.tk.TID(), err)
			continue
		}
		m.current[w].Store(wt.tk.TID())
		for k := rng.IntN(4); k > 0; k-- {
			m.request(req, rng, wt.tk.Request, wt.tk.TID())
		}
		if rng.IntN(16) == 0 {
			if _, err := wt.tk.Unwind(); err != nil {
				m.fail("unwind: %v", err)
			}
		}
		if rng.IntN(4) == 0 {
			runtime.Gosched() // let remote requests in while the entry is open
		}
		var c Cookie
		if rng.IntN(64) == 0 {
			tid := wt.tk.TID()
			c = wt.tk.Exit()
			tk, err := m.e.AddTask(tid, tid, KindUser)
			if err != nil {
				m.fail("re-add task %d: %v", tid, err)
				return
			}
			wt.tk = tk
		} else {
			c = wt.tk.Close()
		}
		now := m.clock.Add(1)
		if c != 0 {
			if prev, dup := m.closed.LoadOrStore(c, wt.tk.TID()); dup {
				m.fail("cookie %v ended twice (tasks %v and %d)", c, prev, wt.tk.TID())
			}
			r := m.rec(c, wt.tk.TID())
			sh := &m.shards[uint64(c)%uint64(len(m.shards))]
			sh.mu.Lock()
			r.closedAt = now
			sh.mu.Unlock()
		}
	}
}

func (m *model) remote(req *requester, rng *rand.Rand, stop <-chan struct{}) {
	defer req.idle.Store(true)
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		// Mostly a task whose entry is open (or was a moment ago): that is
		// where requests race with Close.
		tid := m.current[rng.IntN(modelWorkers)].Load()
		if rng.IntN(8) == 0 {
			tid = int32(1 + rng.IntN(modelTasks))
		}
		if i%16 == 0 {
			runtime.Gosched() // leave the workers their share of 2 cores
		}
		m.request(req, rng, func(tr *Tracer) (int, Cookie, error) { return m.e.Request(tr, tid) }, tid)
	}
}

// check tallies the batch's entries against the rules and forgets them.
func (m *model) check() (entries, calls int) {
	for i := range m.shards {
		for c, r := range m.shards[i].recs {
			entries++
			if r.closedAt == 0 {
				m.fail("cookie %v (task %d): requests returned it but the entry never ended", c, r.tid)
				continue
			}
			var zero, one, call = map[int32]int{}, map[int32]int{}, map[int32]int{}
			for _, e := range r.events {
				switch e.kind {
				case evZero:
					zero[e.tracer]++
				case evOne:
					one[e.tracer]++
				case evCall:
					call[e.tracer]++
					calls++
				}
			}
			for id, z := range zero {
				mt := m.tracers[id]
				cancelled := mt.cancelAt.Load() != 0 && mt.cancelAt.Load() < r.closedAt
				switch {
				case z != 1:
					m.fail("entry %v: %s got 0 from %d requests", c, mt.tr.Name(), z)
				case call[id] == 0 && !cancelled:
					m.fail("entry %v: %s got 0 but was never called (not cancelled)", c, mt.tr.Name())
				}
			}
			for id, n := range call {
				if n != 1 || zero[id] != 1 {
					m.fail("entry %v: %s called %d times with %d zero returns", c, m.tracers[id].tr.Name(), n, zero[id])
				}
			}
			for id := range one {
				if zero[id] != 1 {
					m.fail("entry %v: %s got 1 without a 0 in the entry", c, m.tracers[id].tr.Name())
				}
			}
		}
		m.shards[i].recs = map[Cookie]*entryRec{}
	}
	return entries, calls
}

func TestModel(t *testing.T) {
	total := *modelEntries
	if total == 0 {
		total = 1_000_000
		if raceEnabled || testing.Short() {
			total = 30_000
		}
	}
	e := newEngine(t, Options{Shards: modelWorkers})
	m := &model{t: t, e: e}
	for i := range m.shards {
		m.shards[i].recs = map[Cookie]*entryRec{}
	}
	for n := 1; n <= modelMaxFrames; n++ {
		regs, snap := stack(n, 0x10000)
		regs.IP = uint64(0x400+n) << 12 // the callback reads the depth back from ip
		m.snaps[n].regs, m.snaps[n].snap = regs, snap
	}
	m.live.Store(new([]*mTracer))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 8; i++ {
		m.register(rng)
	}
	tasks := make([][]*wTask, modelWorkers)
	for tid := int32(1); tid <= modelTasks; tid++ {
		w := int(tid) % modelWorkers
		tasks[w] = append(tasks[w], &wTask{tk: mustTask(t, e, tid, KindUser)})
	}
	var entries, calls, batches int
	for done := 0; done < total && m.errs.Load() == 0; done += modelWorkers * modelBatch {
		batches++
		m.reqs = make([]*requester, modelWorkers+modelRemotes)
		for i := range m.reqs {
			m.reqs[i] = &requester{}
		}
		var workers, others sync.WaitGroup
		stop := make(chan struct{})
		for w := 0; w < modelWorkers; w++ {
			r := rand.New(rand.NewPCG(uint64(batches), uint64(w)))
			workers.Go(func() { m.worker(w, tasks[w], modelBatch, m.reqs[w], r) })
		}
		for i := 0; i < modelRemotes; i++ {
			r := rand.New(rand.NewPCG(uint64(batches), uint64(100+i)))
			others.Go(func() { m.remote(m.reqs[modelWorkers+i], r, stop) })
		}
		others.Go(func() { // registrations and cancels, under way while the batch runs
			for k := 0; k < 3; k++ {
				select {
				case <-stop:
					return
				default:
				}
				if rng.IntN(2) == 0 && len(*m.live.Load()) < 20 {
					m.register(rng)
				} else {
					m.retire(rng)
				}
				runtime.Gosched()
			}
		})
		workers.Wait()
		close(stop)
		others.Wait()
		n, c := m.check()
		entries += n
		calls += c
	}
	t.Logf("%d batches, %d entries with requests, %d callbacks, %d tracers registered over the run", batches, entries, calls, len(m.tracers))
	if calls == 0 || len(m.tracers) <= 8 {
		t.Errorf("the run made %d callbacks and %d registrations: nothing was exercised", calls, len(m.tracers))
	}
}
