package pluginhost

import (
	"sync"
	"testing"
	"time"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/deferred"
)

// entryInfo is what the driver did in one entry.
type entryInfo struct {
	tid    int32
	cookie uint64
	pcs    []uint64
	read   bool // a syscall-enter "read" event besides the sample
}

type synth struct {
	regs x86_64.Regs
	snap *x86_64.Snapshot
	pcs  []uint64
}

// drive is a synthetic source: goroutines × perG kernel entries, each on one
// of the goroutine's four tasks, with a cpu-clock sample in every entry and
// a read syscall in every 16th; 64 distinct 16-frame stacks. Each goroutine
// owns its tasks and its Dispatcher, as a source shard would. between, if
// set, runs on goroutine 0 after each of its entries.
func drive(t *testing.T, eng *deferred.Engine, m *Manager, goroutines, perG int, tidBase int32, between func(i int)) []entryInfo {
	t.Helper()
	stacks := make([]synth, 64)
	for j := range stacks {
		r, s, pcs := synthStack(16, 0x500000+uint64(j)*0x1000)
		stacks[j] = synth{r, s, pcs}
	}
	out := make([][]entryInfo, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			d := m.Dispatcher()
			shard := eng.Shard(g % eng.Shards())
			tasks := make([]*deferred.Task, 4)
			for k := range tasks {
				tid := tidBase + int32(g*4+k)
				tk, err := eng.AddTask(tid, tidBase, deferred.KindUser)
				if err != nil {
					t.Error(err)
					return
				}
				tasks[k] = tk
			}
			defer func() {
				for _, tk := range tasks {
					tk.Exit()
				}
			}()
			infos := make([]entryInfo, 0, perG)
			for i := range perG {
				tk := tasks[i%len(tasks)]
				st := &stacks[(i*7+g)%len(stacks)]
				if err := tk.Open(shard, st.regs, st.snap); err != nil {
					t.Error(err)
					return
				}
				now := uint64(time.Now().UnixNano())
				d.Event(tk, Event{Kind: KindSample, Name: "cpu-clock", TimeNS: now, CPU: int32(g), Comm: "synth", Period: 1000})
				// Reads on even tids (i%4 == 0) and odd ones (i%4 == 1):
				// the test plugin in mode decide wants the odd ones.
				read := i%16 == 0 || i%16 == 5
				if read {
					d.Event(tk, Event{Kind: KindSyscallEnter, Name: "read", TimeNS: now + 1, CPU: int32(g), Comm: "synth",
						Fields: []Field{{Name: "fd", Kind: FieldInt, Int: 3}, {Name: "count", Kind: FieldUint, Uint: 4096}}})
				}
				d.EndEntry(tk)
				c := tk.Close()
				infos = append(infos, entryInfo{tid: tk.TID(), cookie: uint64(c), pcs: st.pcs, read: read})
				if between != nil && g == 0 {
					between(i)
				}
			}
			out[g] = infos
		})
	}
	wg.Wait()
	var all []entryInfo
	for _, o := range out {
		all = append(all, o...)
	}
	return all
}

// want is what a plugin should have received.
type want struct {
	events, cookieEvents, stacks, sum uint64
}

// alwaysWant is what a plugin in mode always, subscribed to samples, must
// receive from entries of one sample each: every event with its cookie, and
// every stack.
func alwaysWant(infos []entryInfo) want {
	var w want
	for _, e := range infos {
		w.events++
		w.cookieEvents++
		w.stack(e)
	}
	return w
}

func (w *want) stack(e entryInfo) {
	w.stacks++
	w.sum += stackHash(e.cookie, e.pcs)
}

// checkClean fails on any protocol violation the plugin saw.
func checkClean(t *testing.T, c counts) {
	t.Helper()
	if c.DupStacks != 0 || c.EventAfter != 0 || c.SeqErrors != 0 || c.BadRefs != 0 {
		t.Errorf("%s (pid %d): dup stacks %d, events after their stack %d, seq errors %d, bad refs %d",
			c.Name, c.PID, c.DupStacks, c.EventAfter, c.SeqErrors, c.BadRefs)
	}
}

func checkExact(t *testing.T, c counts, w want) {
	t.Helper()
	checkClean(t, c)
	got := want{c.Events, c.CookieEvents, c.Stacks, c.StackSum}
	if got != w {
		t.Errorf("%s: got events %d (with cookie %d), stacks %d, sum %#x; want %d (%d), %d, %#x",
			c.Name, got.events, got.cookieEvents, got.stacks, got.sum, w.events, w.cookieEvents, w.stacks, w.sum)
	}
	if c.LostNotices != 0 {
		t.Errorf("%s: %d lost notices (%d events, %d stacks)", c.Name, c.LostNotices, c.LostEvents, c.LostStacks)
	}
}

// TestExactlyOnce sends 100,000 entries to three plugins, one per request
// mode, and checks on both sides that every event and every stack arrived
// once, events before their stack, with the right frames.
func TestExactlyOnce(t *testing.T) {
	eng, err := deferred.New(deferred.Options{Shards: 2})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	specs := []Spec{
		spec("always", out, "MODE=always", "SUBS=sample"),
		spec("decide", out, "MODE=decide", "SUBS=sys:read"),
		spec("never", out, "MODE=never", "SUBS=sample,sys:*"),
	}
	for i := range specs {
		specs[i].OutboxSize = 1 << 18 // no drops here: this test is about exactly once
		specs[i].DecideDeadline = 5 * time.Second
	}
	r := start(t, eng, specs, Options{})
	waitFor(t, r.m, 20*time.Second, "plugins running", allRunning)
	// What a live source would open for these three: samples at 99 Hz and
	// syscalls, both with stacks (always, decide); never's want no stack.
	if w := r.m.Wants(); !w.Samples || !w.SampleStack || w.Hz != 99 || !w.Syscalls || !w.SyscallStack || len(w.Tracepoints) != 0 {
		t.Errorf("Wants() = %+v", w)
	}

	const goroutines, perG = 2, 50_000
	infos := drive(t, eng, r.m, goroutines, perG, 1000, nil)
	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}

	var wa, wd, wn want
	for _, e := range infos {
		wa.events++
		wa.cookieEvents++
		wa.stack(e)
		wn.events++
		if e.read {
			wn.events++
			wd.events++
			if e.tid%2 == 1 {
				wd.cookieEvents++
				wd.stack(e)
			}
		}
	}
	if len(infos) != goroutines*perG {
		t.Fatalf("driver made %d entries, want %d", len(infos), goroutines*perG)
	}
	rep := reports(t, out)
	for name, w := range map[string]want{"always": wa, "decide": wd, "never": wn} {
		rs := rep[name]
		if len(rs) != 1 {
			t.Fatalf("%s: %d reports, want 1", name, len(rs))
		}
		c := rs[0]
		checkExact(t, c, w)
		if c.RequestRet != -22 || !c.RequestIsSDK {
			t.Errorf("%s: Host.Request for an unknown tid: ret %d, error %q (sdk.ErrUnknownTask: %v); want -22, sdk.ErrUnknownTask",
				name, c.RequestRet, c.RequestErr, c.RequestIsSDK)
		}
		s := byName(r.m.Stats(), name)
		if s.DroppedEvents != 0 || s.DroppedStacks != 0 || s.DecideTimeouts != 0 || s.DecideErrors != 0 || s.Crashes != 0 {
			t.Errorf("%s: stats %+v", name, s)
		}
		if s.Acked != s.Batches {
			t.Errorf("%s: host sent %d batches, %d acked", name, s.Batches, s.Acked)
		}
		if s.StackDefs+s.StackRefs != w.stacks {
			t.Errorf("%s: stack defs %d + refs %d != stacks %d", name, s.StackDefs, s.StackRefs, w.stacks)
		}
		if s.Events != w.events || s.Stacks != w.stacks || s.ItemsSent != w.events+w.stacks {
			t.Errorf("%s: host queued %d events, %d stacks, sent %d items; want %d, %d", name, s.Events, s.Stacks, s.ItemsSent, w.events, w.stacks)
		}
		if s.State != StateStopped {
			t.Errorf("%s: state %v after Run", name, s.State)
		}
		t.Logf("%s: %d events, %d stacks (%d defined, %d by reference), %d batches (%.1f items/batch), %d decide calls",
			name, c.Events, c.Stacks, s.StackDefs, s.StackRefs, s.Batches, float64(s.ItemsSent)/float64(max(s.Batches, 1)), s.DecideCalls)
	}
	if got := byName(r.m.Stats(), "always").StackDefs; got != 64 {
		t.Errorf("always: %d stacks defined, want the 64 distinct ones", got)
	}
}

// single is a Manager running one plugin, and one task of the engine whose
// entries each carry one event: what the tests of batching drive.
type single struct {
	r    *running
	eng  *deferred.Engine
	tk   *deferred.Task
	d    *Dispatcher
	regs x86_64.Regs
	snap *x86_64.Snapshot
}

// startOne starts s with opts and waits until it runs.
func startOne(t *testing.T, s Spec, opts Options) *single {
	t.Helper()
	eng, err := deferred.New(deferred.Options{Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, eng, []Spec{s}, opts)
	waitFor(t, r.m, 20*time.Second, "plugin running", allRunning)
	tk, err := eng.AddTask(77, 77, deferred.KindUser)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tk.Exit() }) // before start's cleanup stops the Manager
	regs, snap, _ := synthStack(4, 0x500000)
	return &single{r: r, eng: eng, tk: tk, d: r.m.Dispatcher(), regs: regs, snap: snap}
}

// entry opens an entry of the task, dispatches ev in it and closes it.
func (o *single) entry(t *testing.T, ev Event) {
	t.Helper()
	if err := o.tk.Open(o.eng.Shard(0), o.regs, o.snap); err != nil {
		t.Fatal(err)
	}
	o.d.Event(o.tk, ev)
	o.d.EndEntry(o.tk)
	o.tk.Close()
}

// TestLoneEventIsSent: a single event does not wait for its batch to fill;
// it leaves within BatchDelay (plus scheduling).
func TestLoneEventIsSent(t *testing.T) {
	one := startOne(t, spec("lone", t.TempDir(), "MODE=never", "SUBS=sample"), Options{BatchDelay: 3 * time.Millisecond})
	r := one.r
	began := time.Now()
	one.entry(t, Event{Kind: KindSample, Name: "cpu-clock"})
	waitFor(t, r.m, 5*time.Second, "the event to be acknowledged", func(st []Stats) bool { return st[0].ItemsSent == 1 && st[0].Acked == 1 })
	t.Logf("one event sent and acknowledged %v after it was dispatched", time.Since(began))
	if took := time.Since(began); took > time.Second {
		t.Errorf("a lone event took %v", took)
	}
}

// TestLargeEvents: events whose fields are large (a syscall's buffer, a
// tracepoint's raw data) are delivered whole. A batch is bounded in bytes
// as well as in items: 2048 events of 8 KiB once made a 16 MiB message,
// past gRPC's default 4 MiB limit on the plugin's side, and the plugin's
// stream broke on it as if the plugin had died.
func TestLargeEvents(t *testing.T) {
	out := t.TempDir()
	s := spec("large", out, "MODE=never", "SUBS=sys:write")
	s.OutboxSize = 1 << 14
	one := startOne(t, s, Options{})
	r := one.r
	buf := make([]byte, 8<<10)
	for i := range buf {
		buf[i] = byte(i)
	}
	const n = 6000
	for i := range n {
		one.entry(t, Event{Kind: KindSyscallEnter, Name: "write", TimeNS: uint64(i), Comm: "big",
			Fields: []Field{{Name: "fd", Kind: FieldInt, Int: 1}, {Name: "buf", Kind: FieldBytes, Bytes: buf}}})
	}
	waitFor(t, r.m, 30*time.Second, "the events to be acknowledged", func(st []Stats) bool {
		return st[0].ItemsSent == n && st[0].Acked == st[0].Batches || st[0].Crashes != 0
	})
	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := r.m.Stats()[0]
	if st.Crashes != 0 || st.DroppedEvents != 0 {
		t.Fatalf("stats %+v", st)
	}
	c := reports(t, out)["large"]
	if len(c) != 1 {
		t.Fatalf("%d reports, want 1", len(c))
	}
	checkClean(t, c[0])
	if c[0].Events != n {
		t.Errorf("plugin received %d events, want %d", c[0].Events, n)
	}
	t.Logf("%d events of %d KiB in %d batches", n, len(buf)>>10, st.Batches)
}

// TestFlowBatches: while items flow, batches are FlowDelay apart, not
// BatchDelay: a flow of 100 events a millisecond for 300ms goes in about
// 50 batches; with FlowDelay set to BatchDelay (1ms) it took 192-194 (Go's
// timers here fire up to a millisecond late). The bound is one batch per
// 4ms. (The sender cuts a batch when its timer fires; a busy
// machine only makes batches larger and fewer.) Once the flow has stopped,
// a lone event waits BatchDelay again, not FlowDelay.
func TestFlowBatches(t *testing.T) {
	s := spec("flow", t.TempDir(), "MODE=never", "SUBS=sample")
	s.OutboxSize = 1 << 16
	opts := Options{BatchDelay: time.Millisecond, FlowDelay: 5 * time.Millisecond}
	one := startOne(t, s, opts)
	r := one.r
	event := func(i int) { one.entry(t, Event{Kind: KindSample, Name: "cpu-clock", TimeNS: uint64(i)}) }
	const ms, perMS = 300, 100
	began := time.Now()
	for i := range ms {
		for k := range perMS {
			event(i*perMS + k)
		}
		time.Sleep(time.Until(began.Add(time.Duration(i+1) * time.Millisecond)))
	}
	took := time.Since(began)
	st := waitFor(t, r.m, 20*time.Second, "the flow to be acknowledged", func(st []Stats) bool {
		return st[0].ItemsSent == ms*perMS && st[0].Acked == st[0].Batches
	})[0]
	t.Logf("%d events in %v: %d batches (%.0f items each)", ms*perMS, took.Round(time.Millisecond), st.Batches, float64(st.ItemsSent)/float64(st.Batches))
	if limit := uint64(took / (4 * time.Millisecond)); st.Batches > limit {
		t.Errorf("%d batches in %v; a flow's batches should be FlowDelay apart (at most %d)", st.Batches, took.Round(time.Millisecond), limit)
	}

	// A lone event after a flow (a burst of 20 events, a batch of 16 or
	// more) and a pause of 15ms is sent about BatchDelay after it came
	// (1-2ms here, 1.3ms median), not FlowDelay (5-6ms; 6.0ms median when
	// the sender did not notice the pause). The bound leaves room for a
	// loaded machine: a timer never fires early, so waiting FlowDelay
	// cannot pass it.
	var waits []time.Duration
	for i := range 15 {
		for k := range 20 {
			event(k)
		}
		time.Sleep(15 * time.Millisecond)
		sent := r.m.Stats()[0].ItemsSent
		t0 := time.Now()
		event(ms*perMS + i)
		for r.m.Stats()[0].ItemsSent == sent {
			if time.Since(t0) > 10*time.Second {
				t.Fatal("a lone event was not sent within 10s")
			}
			time.Sleep(50 * time.Microsecond)
		}
		waits = append(waits, time.Since(t0))
	}
	t.Logf("lone events after a flow were sent after %v (median)", median(waits))
	if m := median(waits); m > 4500*time.Microsecond { // FlowDelay could not be under 5ms
		t.Errorf("lone events after a flow waited %v (median); BatchDelay is %v, FlowDelay %v", m, opts.BatchDelay, opts.FlowDelay)
	}
}
