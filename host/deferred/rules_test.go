package deferred

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/unwindd/unwindd/arch/x86_64"
)

func TestRule_R1_SixtyTwoTracersThenBusy(t *testing.T) {
	e := newEngine(t, Options{Shards: 1})
	nop := func(*Task, *x86_64.Trace, Cookie) {}
	for i := 0; i < MaxTracers; i++ {
		tr := mustRegister(t, e, fmt.Sprint(i), nop)
		if got, want := tr.Bit(), i+2; got != want {
			t.Fatalf("tracer %d got bit %d, want %d (lowest free bit from 2)", i, got, want)
		}
	}
	tr, err := e.Register("63rd", nop)
	if !errors.Is(err, ErrBusy) || tr != nil {
		t.Fatalf("63rd Register = %v, %v; want nil, ErrBusy", tr, err)
	}
	if got := Errno(err); got != -int(syscall.EBUSY) {
		t.Errorf("Errno(busy) = %d, want %d", got, -int(syscall.EBUSY))
	}
	if got := len(e.Tracers()); got != MaxTracers {
		t.Errorf("after a failed registration %d tracers, want %d", got, MaxTracers)
	}
	// Freeing one bit makes exactly that bit available again.
	e.Cancel(e.Tracers()[10])
	tr = mustRegister(t, e, "again", nop)
	if tr.Bit() != 12 {
		t.Errorf("re-registration got bit %d, want 12", tr.Bit())
	}
}

func TestRule_R2_CallbacksInListOrder(t *testing.T) {
	e := newEngine(t, Options{Shards: 1})
	var rec recorder
	a := mustRegister(t, e, "a", rec.cb("a"))
	b := mustRegister(t, e, "b", rec.cb("b"))
	c := mustRegister(t, e, "c", rec.cb("c"))
	tk := mustTask(t, e, 100, KindUser)
	openStack(t, e, tk, 4)
	for _, tr := range []*Tracer{c, a, b} { // request order differs from list order
		request(t, tk, tr)
	}
	tk.Close()
	if got, want := rec.names(), []string{"a", "b", "c"}; !equal(got, want) {
		t.Errorf("callback order %v, want registration order %v", got, want)
	}
	// A tracer registered after a cancel goes to the end, even on a lower bit.
	e.Cancel(a)
	d := mustRegister(t, e, "d", rec.cb("d"))
	if d.Bit() != 2 {
		t.Fatalf("d got bit %d, want a's old bit 2", d.Bit())
	}
	rec.reset()
	openStack(t, e, tk, 4)
	for _, tr := range []*Tracer{d, c, b} {
		request(t, tk, tr)
	}
	tk.Close()
	if got, want := rec.names(), []string{"b", "c", "d"}; !equal(got, want) {
		t.Errorf("callback order %v, want %v", got, want)
	}
}

func TestRule_R3_Cancel(t *testing.T) {
	e := newEngine(t, Options{Shards: 2})
	var rec recorder
	a := mustRegister(t, e, "a", rec.cb("a"))
	b := mustRegister(t, e, "b", rec.cb("b"))
	t1, t2 := mustTask(t, e, 1, KindUser), mustTask(t, e, 2, KindUser)
	openStack(t, e, t1, 3)
	openStack(t, e, t2, 3)
	request(t, t1, a)
	request(t, t1, b)
	// On t2, a is already called (completed mask) and the entry goes on.
	request(t, t2, a)
	if _, err := t2.Unwind(); err != nil {
		t.Fatal(err)
	}
	tk2bits := t2.Mask()
	t2.drain() // run t2's work without ending the entry
	if t2.completed.Load()&(1<<a.Bit()) == 0 {
		t.Fatalf("a not in t2's completed mask after its work ran (mask was %#x)", tk2bits)
	}
	abit := uint64(1) << a.Bit()
	rec.reset()

	e.Cancel(a)
	if a.Bit() != -1 {
		t.Errorf("cancelled tracer's bit = %d, want -1", a.Bit())
	}
	for _, tk := range []*Task{t1, t2} {
		if tk.Mask()&abit != 0 || tk.completed.Load()&abit != 0 {
			t.Errorf("task %d: cancelled bit still set: mask %#x completed %#x", tk.TID(), tk.Mask(), tk.completed.Load())
		}
	}
	if ret, c, err := t1.Request(a); !errors.Is(err, ErrCancelled) || ret != -int(syscall.EINVAL) || c != 0 {
		t.Errorf("request after cancel = %d, %v, %v; want -EINVAL, 0, ErrCancelled", ret, c, err)
	}
	if _, _, err := e.Request(a, 1); !errors.Is(err, ErrCancelled) {
		t.Errorf("remote request after cancel: %v, want ErrCancelled", err)
	}
	t1.Close()
	t2.Close()
	if got := rec.names(); !equal(got, []string{"b"}) {
		t.Errorf("callbacks after cancel %v, want [b] (a never called after Cancel returns)", got)
	}
	// Cancel of nothing, and a second cancel, change nothing.
	e.Cancel(nil)
	e.Cancel(a)
	if got := len(e.Tracers()); got != 1 {
		t.Errorf("%d tracers after repeated cancels, want 1", got)
	}
	// A reserved bit is never cancelled.
	fake := &Tracer{name: "reserved"}
	fake.bit.Store(1)
	before := e.regMask
	e.Cancel(fake)
	if e.regMask != before || fake.Bit() != 1 {
		t.Errorf("cancel of a reserved bit changed state: regMask %#x→%#x bit %d", before, e.regMask, fake.Bit())
	}
}

// A delivery running when Cancel starts either calls the tracer before Cancel
// returns or not at all; Cancel waits for it.
func TestRule_R3_CancelWaitsForRunningDelivery(t *testing.T) {
	e := newEngine(t, Options{Shards: 1})
	entered, release := make(chan struct{}), make(chan struct{})
	var bCalls, cCalls int
	var cancelDoneAt, bCalledAfterCancel bool
	var mu sync.Mutex
	cancelled := make(chan struct{})
	a := mustRegister(t, e, "a", func(*Task, *x86_64.Trace, Cookie) {
		close(entered)
		<-release
	})
	b := mustRegister(t, e, "b", func(*Task, *x86_64.Trace, Cookie) {
		mu.Lock()
		defer mu.Unlock()
		bCalls++
		select {
		case <-cancelled:
			bCalledAfterCancel = true
		default:
		}
	})
	c := mustRegister(t, e, "c", func(*Task, *x86_64.Trace, Cookie) { cCalls++ })
	tk := mustTask(t, e, 7, KindUser)
	openStack(t, e, tk, 2)
	for _, tr := range []*Tracer{a, b, c} {
		request(t, tk, tr)
	}
	closed := make(chan struct{})
	go func() { tk.Close(); close(closed) }()
	<-entered
	go func() { e.Cancel(b); close(cancelled) }()
	select {
	case <-cancelled:
		mu.Lock()
		cancelDoneAt = true
		mu.Unlock()
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-closed
	<-cancelled
	if cancelDoneAt {
		t.Error("Cancel returned while a delivery that could call its tracer was still running")
	}
	if bCalledAfterCancel {
		t.Error("cancelled tracer called after Cancel returned")
	}
	if bCalls != 0 {
		t.Errorf("b called %d times; Cancel began before its turn, so 0", bCalls)
	}
	if cCalls != 1 {
		t.Errorf("c called %d times, want 1", cCalls)
	}
}

func TestRule_R4_RefusedWithoutEntryOrForKernelThreadOrExiting(t *testing.T) {
	e := newEngine(t, Options{Shards: 1})
	tr := mustRegister(t, e, "a", func(*Task, *x86_64.Trace, Cookie) {})
	kt := mustTask(t, e, 2, KindKernelThread)
	user := mustTask(t, e, 3, KindUser)
	exiting := mustTask(t, e, 4, KindUser)
	openStack(t, e, exiting, 2)
	exiting.Exit()
	regs, snap := stack(2, 1)
	if err := kt.Open(e.Shard(0), regs, snap); !errors.Is(err, ErrKernelThread) {
		t.Errorf("Open of a kernel thread: %v, want ErrKernelThread", err)
	}
	for _, c := range []struct {
		name string
		tk   *Task
		want error
	}{
		{"kernel thread", kt, ErrKernelThread},
		{"no open entry", user, ErrNoEntry},
		{"exiting", exiting, ErrExiting},
	} {
		ret, cookie, err := c.tk.Request(tr)
		if !errors.Is(err, c.want) || ret != -int(syscall.EINVAL) || cookie != 0 {
			t.Errorf("%s: Request = %d, %v, %v; want -EINVAL, 0, %v", c.name, ret, cookie, err, c.want)
		}
		if c.tk.Mask() != 0 {
			t.Errorf("%s: refused request changed the mask to %#x", c.name, c.tk.Mask())
		}
	}
	for _, c := range []struct {
		tid  int32
		want error
	}{{2, ErrKernelThread}, {3, ErrNoEntry}, {4, ErrUnknownTask}, {99, ErrUnknownTask}} {
		if ret, cookie, err := e.Request(tr, c.tid); !errors.Is(err, c.want) || ret != -int(syscall.EINVAL) || cookie != 0 {
			t.Errorf("Engine.Request(tid %d) = %d, %v, %v; want -EINVAL, 0, %v", c.tid, ret, cookie, err, c.want)
		}
	}
	if _, err := user.Unwind(); !errors.Is(err, ErrNoEntry) {
		t.Errorf("Unwind without an entry: %v, want ErrNoEntry", err)
	}
}

func TestRule_R5_CompatTaskRefused(t *testing.T) {
	e := newEngine(t, Options{Shards: 1})
	called := 0
	tr := mustRegister(t, e, "a", func(*Task, *x86_64.Trace, Cookie) { called++ })
	tk := mustTask(t, e, 32, KindCompat)
	openStack(t, e, tk, 2) // compat tasks have entries (their events are delivered)
	if ret, c, err := tk.Request(tr); !errors.Is(err, ErrCompat) || ret != -int(syscall.EINVAL) || c != 0 {
		t.Errorf("compat Request = %d, %v, %v; want -EINVAL, 0, ErrCompat", ret, c, err)
	}
	if _, err := tk.Unwind(); !errors.Is(err, ErrCompat) {
		t.Errorf("compat Unwind: %v, want ErrCompat", err)
	}
	tk.Close()
	if called != 0 || tk.Mask() != 0 {
		t.Errorf("compat task: %d callbacks, mask %#x; want none", called, tk.Mask())
	}
}

func TestRule_R6_FirstRequestMintsCookieSharedByAll(t *testing.T) {
	e := newEngine(t, Options{Shards: 1})
	var rec recorder
	a := mustRegister(t, e, "a", rec.cb("a"))
	b := mustRegister(t, e, "b", rec.cb("b"))
	tk := mustTask(t, e, 5, KindUser)
	openStack(t, e, tk, 3)
	if tk.Cookie() != 0 {
		t.Fatalf("cookie %v before any request, want 0", tk.Cookie())
	}
	_, c1 := request(t, tk, a)
	_, c2 := request(t, tk, b)
	_, c3 := request(t, tk, a)
	_, c4, err := e.Request(b, 5)
	if err != nil {
		t.Fatal(err)
	}
	if c1 == 0 || c1 != c2 || c1 != c3 || c1 != c4 || tk.Cookie() != c1 {
		t.Errorf("cookies %v %v %v %v (task %v): want one non-zero cookie", c1, c2, c3, c4, tk.Cookie())
	}
	tk.Close()
	for _, c := range rec.calls {
		if c.cookie != c1 {
			t.Errorf("%s called with cookie %v, want %v", c.tracer, c.cookie, c1)
		}
	}
}

func TestRule_R7_CookieLayout(t *testing.T) {
	e := newEngine(t, Options{Shards: 4})
	tr := mustRegister(t, e, "a", func(*Task, *x86_64.Trace, Cookie) {})
	tk := mustTask(t, e, 9, KindUser)
	seen := map[Cookie]bool{}
	for i := 0; i < 5; i++ {
		regs, snap := stack(2, 1)
		if err := tk.Open(e.Shard(3), regs, snap); err != nil {
			t.Fatal(err)
		}
		_, c := request(t, tk, tr)
		tk.Close()
		if got := uint32(c); got != 4 {
			t.Errorf("entry %d: low 32 bits %d, want shard id + 1 = 4", i, got)
		}
		if c.Shard() != 3 {
			t.Errorf("entry %d: Shard() = %d, want 3", i, c.Shard())
		}
		if want := uint32(3 + 2*i); c.Counter() != want {
			t.Errorf("entry %d: counter %d, want %d (advances by 2 from 3, odd)", i, c.Counter(), want)
		}
		if seen[c] {
			t.Errorf("entry %d: cookie %v reused", i, c)
		}
		seen[c] = true
	}
	// The counter wraps within 32 bits and stays odd: never 0.
	s := e.Shard(1)
	s.ctr.Store(^uint32(0) - 2)
	for i := 0; i < 4; i++ {
		c := Cookie(s.mint())
		if c == 0 || c.Counter()&1 == 0 || uint32(c) != 2 {
			t.Errorf("minted %v near wrap: want odd counter, low bits 2", c)
		}
	}
}

func TestRule_R8_ReturnValues(t *testing.T) {
	e := newEngine(t, Options{Shards: 1})
	var tk *Task
	var inCallback []int
	a := mustRegister(t, e, "a", func(task *Task, _ *x86_64.Trace, _ Cookie) {
		// A tracer already called asks again in the same entry: 1, no second call.
		ret, _, err := task.Request(e.Tracers()[0])
		if err != nil {
			t.Errorf("request in callback: %v", err)
		}
		inCallback = append(inCallback, ret)
	})
	b := mustRegister(t, e, "b", func(*Task, *x86_64.Trace, Cookie) {})
	tk = mustTask(t, e, 11, KindUser)
	openStack(t, e, tk, 2)
	for _, c := range []struct {
		tr   *Tracer
		want int
	}{{a, 0}, {a, 1}, {b, 0}, {b, 1}, {a, 1}} {
		ret, cookie := request(t, tk, c.tr)
		if ret != c.want || cookie == 0 {
			t.Errorf("Request(%s) = %d, %v; want %d and a cookie", c.tr.Name(), ret, cookie, c.want)
		}
	}
	tk.Close()
	if !equal(inCallback, []int{1}) {
		t.Errorf("re-request from inside a's callback returned %v, want [1] (a called once)", inCallback)
	}
	if ret, c, err := tk.Request(a); ret >= 0 || c != 0 || err == nil {
		t.Errorf("request with no entry = %d, %v, %v; want negative, 0, error", ret, c, err)
	}
}

func TestRule_R9_RequestLockFreeAllocFree(t *testing.T) {
	e := newEngine(t, Options{Shards: 2})
	a := mustRegister(t, e, "a", func(*Task, *x86_64.Trace, Cookie) {})
	tk := mustTask(t, e, 12, KindUser)
	openStack(t, e, tk, 2)
	if n := testing.AllocsPerRun(1000, func() { tk.Request(a) }); n != 0 {
		t.Errorf("Task.Request allocates %.1f times, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { e.Request(a, 12) }); n != 0 {
		t.Errorf("Engine.Request allocates %.1f times, want 0", n)
	}
	tk.Close()
	// Safe from any goroutine, concurrently with other requests, with the
	// entry's end and with cancel (go test -race watches this).
	var rec recorder
	trs := []*Tracer{a, mustRegister(t, e, "b", rec.cb("b")), mustRegister(t, e, "c", rec.cb("c"))}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				e.Request(trs[(g+i)%3], 12)
				if i%8 == 0 {
					// Requesters that never yield get preempted while pinned,
					// and Close then waits for their next time slice.
					runtime.Gosched()
				}
			}
		})
	}
	for i := 0; i < 2000; i++ {
		openStack(t, e, tk, 3)
		tk.Request(trs[i%3])
		tk.Close()
		if i == 1000 {
			e.Cancel(trs[0])
		}
	}
	close(stop)
	wg.Wait()
}

type scheduleHook struct {
	calls int
	err   error
}

func (h *scheduleHook) schedule(*Task) error { h.calls++; return h.err }

func TestRule_R10_OnlyFirstRequestSchedules(t *testing.T) {
	hook := &scheduleHook{}
	e := newEngine(t, Options{Shards: 1, Schedule: hook.schedule})
	a := mustRegister(t, e, "a", func(*Task, *x86_64.Trace, Cookie) {})
	b := mustRegister(t, e, "b", func(*Task, *x86_64.Trace, Cookie) {})
	tk := mustTask(t, e, 13, KindUser)
	openStack(t, e, tk, 2)
	request(t, tk, a)
	request(t, tk, b) // rides on a's work
	request(t, tk, a)
	if hook.calls != 1 {
		t.Errorf("work scheduled %d times in one entry, want 1", hook.calls)
	}
	tk.Close()
	openStack(t, e, tk, 2)
	hook.err = syscall.ESRCH
	ret, c, err := tk.Request(a)
	if !errors.Is(err, ErrSchedule) || !errors.Is(err, syscall.ESRCH) || ret != -int(syscall.ESRCH) || c != 0 {
		t.Errorf("failed scheduling: Request = %d, %v, %v; want -ESRCH, 0, ErrSchedule", ret, c, err)
	}
	if tk.Mask() != 0 {
		t.Errorf("mask %#x after failed scheduling, want 0", tk.Mask())
	}
	hook.err = nil
	if ret, _ := request(t, tk, a); ret != 0 || hook.calls != 3 {
		t.Errorf("after a failure, request = %d with %d schedules; want 0 and a new schedule (3)", ret, hook.calls)
	}
	tk.Close()
}

func TestRule_R11_WorkRunsOnceUnwindsOnce(t *testing.T) {
	e := newEngine(t, Options{Shards: 1})
	var rec recorder
	trs := []*Tracer{mustRegister(t, e, "a", rec.cb("a")), mustRegister(t, e, "b", rec.cb("b")), mustRegister(t, e, "c", rec.cb("c"))}
	tk := mustTask(t, e, 14, KindUser)
	regs, snap := stack(5, 0x500000)
	mem := &countingMem{Memory: snap}
	// Reads one walk of this stack makes.
	var probe x86_64.Trace
	u, _ := x86_64.New(x86_64.Options{})
	one := &countingMem{Memory: snap}
	u.Unwind(regs, one, &probe)
	if err := tk.Open(e.Shard(0), regs, mem); err != nil {
		t.Fatal(err)
	}
	var cookie Cookie
	for _, tr := range trs {
		_, cookie = request(t, tk, tr)
	}
	tk.Close()
	if got, want := mem.reads.Load(), one.reads.Load(); got != want {
		t.Errorf("close made %d reads, one walk makes %d: the stack must be walked once", got, want)
	}
	if got := rec.names(); !equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("callbacks %v, want a, b, c once each", got)
	}
	want := probe.PCs(nil)
	if len(want) != 5 {
		t.Fatalf("probe walk gave %d frames, want 5", len(want))
	}
	for _, c := range rec.calls {
		if c.cookie != cookie || !equal(c.pcs, want) {
			t.Errorf("%s got cookie %v pcs %x; want %v %x", c.tracer, c.cookie, c.pcs, cookie, want)
		}
	}
}

func TestRule_R12_CalledEvenWhenUnwindFails(t *testing.T) {
	e := newEngine(t, Options{Shards: 1})
	var rec recorder
	a := mustRegister(t, e, "a", rec.cb("a"))
	tk := mustTask(t, e, 15, KindUser)
	for _, c := range []struct {
		name string
		regs x86_64.Regs
		mem  x86_64.Memory
		n    int
	}{
		{"no ip", x86_64.Regs{}, &x86_64.Snapshot{}, 0},
		{"no memory", x86_64.Regs{IP: 0x1000, SP: 0x2000, BP: 0x2000}, nil, 0},
		{"unreadable stack", x86_64.Regs{IP: 0x1000, SP: 0x2000, BP: 0x2000}, &x86_64.Snapshot{Base: 0x9000}, 1},
	} {
		rec.reset()
		if err := tk.Open(e.Shard(0), c.regs, c.mem); err != nil {
			t.Fatal(err)
		}
		request(t, tk, a)
		tk.Close()
		if len(rec.calls) != 1 || len(rec.calls[0].pcs) != c.n {
			t.Errorf("%s: calls %+v; want one call with %d frames", c.name, rec.calls, c.n)
		}
	}
}

func TestRule_R13_LateRequestDoesNotRepeat(t *testing.T) {
	e := newEngine(t, Options{Shards: 1})
	var rec recorder
	var b *Tracer
	var lateRet []int
	a := mustRegister(t, e, "a", func(tk *Task, tr *x86_64.Trace, c Cookie) {
		rec.cb("a")(tk, tr, c)
		ret, _, _ := tk.Request(b) // b asks late, from inside the work
		lateRet = append(lateRet, ret)
	})
	b = mustRegister(t, e, "b", rec.cb("b"))
	tk := mustTask(t, e, 16, KindUser)
	regs, snap := stack(4, 0x600000)
	mem := &countingMem{Memory: snap}
	if err := tk.Open(e.Shard(0), regs, mem); err != nil {
		t.Fatal(err)
	}
	request(t, tk, a)
	tk.drain() // the work ran; the entry has not ended
	readsAfterFirst := mem.reads.Load()
	if !equal(lateRet, []int{0}) {
		t.Fatalf("late request returned %v, want [0]", lateRet)
	}
	// drain ran the rescheduled work too: b was called after a.
	if got := rec.names(); !equal(got, []string{"a", "b"}) {
		t.Fatalf("calls %v, want a then b", got)
	}
	// a asks again after being called: 1, no second callback.
	if ret, _ := request(t, tk, a); ret != 1 {
		t.Errorf("re-request by a called tracer = %d, want 1", ret)
	}
	tk.Close()
	if got := rec.names(); !equal(got, []string{"a", "b"}) {
		t.Errorf("calls %v, want a, b each once", got)
	}
	if rec.calls[0].cookie != rec.calls[1].cookie || !equal(rec.calls[0].pcs, rec.calls[1].pcs) {
		t.Errorf("late tracer got %v %x, first got %v %x: want the same cookie and cached trace",
			rec.calls[1].cookie, rec.calls[1].pcs, rec.calls[0].cookie, rec.calls[0].pcs)
	}
	if mem.reads.Load() != readsAfterFirst {
		t.Errorf("late work walked the stack again (%d reads after %d)", mem.reads.Load(), readsAfterFirst)
	}
}

func TestRule_R14_ResetAtReturnToUser(t *testing.T) {
	e := newEngine(t, Options{Shards: 1})
	var rec recorder
	a := mustRegister(t, e, "a", rec.cb("a"))
	tk := mustTask(t, e, 17, KindUser)
	openStack(t, e, tk, 3)
	_, c1 := request(t, tk, a)
	tk.Close()
	if tk.Mask() != 0 || tk.Cookie() != 0 || len(tk.trace.Frames) != 0 || tk.completed.Load() != 0 {
		t.Errorf("after close: mask %#x cookie %v cache %d completed %#x; want all zero",
			tk.Mask(), tk.Cookie(), len(tk.trace.Frames), tk.completed.Load())
	}
	// The next entry mints a new cookie, walks its own stack, and calls a again.
	regs, snap := stack(6, 0x700000)
	if err := tk.Open(e.Shard(0), regs, snap); err != nil {
		t.Fatal(err)
	}
	ret, c2 := request(t, tk, a)
	tk.Close()
	if ret != 0 || c2 == c1 {
		t.Errorf("next entry: ret %d cookie %v (previous %v); want 0 and a new cookie", ret, c2, c1)
	}
	if len(rec.calls) != 2 || len(rec.calls[1].pcs) != 6 || rec.calls[1].pcs[1] != 0x700000 {
		t.Errorf("second entry's callback %+v: want the new 6-frame stack", rec.calls[len(rec.calls)-1])
	}
	// USED alone (a direct unwind, no request) is reset too.
	openStack(t, e, tk, 2)
	if _, err := tk.Unwind(); err != nil {
		t.Fatal(err)
	}
	if tk.Mask() != Used {
		t.Errorf("mask %#x after a direct unwind, want USED", tk.Mask())
	}
	tk.Close()
	if tk.Mask() != 0 || len(tk.trace.Frames) != 0 {
		t.Errorf("USED-only entry not reset: mask %#x cache %d", tk.Mask(), len(tk.trace.Frames))
	}
}

func TestRule_R15_CacheLimitAndDirectUnwind(t *testing.T) {
	e := newEngine(t, Options{Shards: 1})
	var rec recorder
	a := mustRegister(t, e, "a", rec.cb("a"))
	tk := mustTask(t, e, 18, KindUser)
	regs, snap := stack(600, 0x800000)
	mem := &countingMem{Memory: snap}
	if err := tk.Open(e.Shard(0), regs, mem); err != nil {
		t.Fatal(err)
	}
	tr, err := tk.Unwind()
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Frames) != 511 || tr.End != x86_64.EndDepth {
		t.Fatalf("600-frame stack: %d frames end %v; want 511, depth-limit", len(tr.Frames), tr.End)
	}
	if tk.Mask()&Used == 0 {
		t.Errorf("direct unwind did not set USED: mask %#x", tk.Mask())
	}
	reads := mem.reads.Load()
	if _, err := tk.Unwind(); err != nil {
		t.Fatal(err)
	}
	request(t, tk, a)
	tk.Close()
	if mem.reads.Load() != reads {
		t.Errorf("second direct unwind and the deferred work walked again (%d reads, first walk %d)", mem.reads.Load(), reads)
	}
	if len(rec.calls) != 1 || len(rec.calls[0].pcs) != 511 {
		t.Errorf("deferred callback got %d frames, want the cached 511", len(rec.calls[0].pcs))
	}
	// The cache was emptied at return to user: the next entry walks anew.
	if err := tk.Open(e.Shard(0), regs, mem); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Unwind(); err != nil {
		t.Fatal(err)
	}
	if mem.reads.Load() == reads {
		t.Error("next entry reused the previous entry's cache")
	}
	tk.Close()
}

func TestRule_R16_ExitRunsPendingWork(t *testing.T) {
	e := newEngine(t, Options{Shards: 1})
	var rec recorder
	a := mustRegister(t, e, "a", rec.cb("a"))
	b := mustRegister(t, e, "b", rec.cb("b"))
	tk := mustTask(t, e, 19, KindUser)
	openStack(t, e, tk, 3)
	_, c := request(t, tk, a)
	request(t, tk, b)
	tk.Exit()
	if got := rec.names(); !equal(got, []string{"a", "b"}) || rec.calls[0].cookie != c || len(rec.calls[0].pcs) != 3 {
		t.Fatalf("exit with pending work: calls %+v; want a, b with cookie %v and the stack", rec.calls, c)
	}
	if e.Task(19) != nil {
		t.Error("exited task still known")
	}
	if _, _, err := tk.Request(a); !errors.Is(err, ErrExiting) {
		t.Errorf("request after exit: %v, want ErrExiting", err)
	}
	tk.Close() // the queued work was cancelled: nothing runs after exit
	if len(rec.calls) != 2 {
		t.Errorf("%d callbacks after exit+close, want 2", len(rec.calls))
	}
	// Exit with nothing pending calls no one.
	rec.reset()
	t2 := mustTask(t, e, 20, KindUser)
	openStack(t, e, t2, 3)
	request(t, t2, a)
	t2.Close()
	rec.reset()
	openStack(t, e, t2, 3)
	t2.Exit()
	if len(rec.calls) != 0 {
		t.Errorf("exit with nothing pending made calls %v", rec.names())
	}
	// A tid can be reused after exit.
	if _, err := e.AddTask(19, 19, KindUser); err != nil {
		t.Errorf("re-adding exited tid: %v", err)
	}
}

// R17 across threads: remote requests race with entry ends on one task; every
// 0 is matched by exactly one callback of that entry, and no callback comes
// for an entry its tracer did not request in.
func TestRule_R17_ExactlyOnceUnderRaces(t *testing.T) {
	e := newEngine(t, Options{Shards: 2})
	type key struct {
		tr     string
		cookie Cookie
	}
	var mu sync.Mutex
	calls := map[key]int{}
	zeros := map[key]int{}
	ones := map[key]int{}
	names := []string{"a", "b", "c"}
	var trs []*Tracer
	for _, n := range names {
		trs = append(trs, mustRegister(t, e, n, func(_ *Task, _ *x86_64.Trace, c Cookie) {
			mu.Lock()
			calls[key{n, c}]++
			mu.Unlock()
		}))
	}
	tk := mustTask(t, e, 21, KindUser)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 3; g++ {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tr := trs[(g+i)%3]
				ret, c, err := e.Request(tr, 21)
				if err != nil {
					continue
				}
				mu.Lock()
				if ret == 0 {
					zeros[key{tr.Name(), c}]++
				} else {
					ones[key{tr.Name(), c}]++
				}
				mu.Unlock()
			}
		})
	}
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for i := 0; i < n; i++ {
		regs, snap := stack(3, 1)
		if err := tk.Open(e.Shard(i%2), regs, snap); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < i%3; j++ {
			runtime.Gosched() // let the remote requesters in while the entry is open
		}
		tk.Close()
	}
	close(stop)
	wg.Wait()
	for k, z := range zeros {
		if z != 1 || calls[k] != 1 {
			t.Errorf("%s in entry %v: %d zero returns, %d callbacks; want 1 and 1", k.tr, k.cookie, z, calls[k])
		}
	}
	for k, c := range calls {
		if zeros[k] == 0 {
			t.Errorf("%s called %d times in entry %v where no request returned 0", k.tr, c, k.cookie)
		}
	}
	for k := range ones {
		if zeros[k] != 1 {
			t.Errorf("%s got 1 in entry %v without a 0 before it", k.tr, k.cookie)
		}
	}
	if len(zeros) == 0 {
		t.Error("no remote request ever landed in an open entry: the race was not exercised")
	}
}
