package deferred

import (
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/unwindd/unwindd/arch/x86_64"
)

// Task states. The kind bits are set for life at AddTask, so that one load
// and one compare tell the request fast path that a task can take requests.
const (
	stateOpen    uint32 = 1 << iota // a kernel entry is open
	stateClosing                    // Close or Exit is running: remote requests are refused
	stateExiting                    // the task is exiting or gone
	stateKernel                     // a kernel thread (R4)
	stateCompat                     // a 32-bit task (R5)
)

func kindBits(k TaskKind) uint32 {
	switch k {
	case KindKernelThread:
		return stateKernel
	case KindCompat:
		return stateCompat
	}
	return 0
}

// Task is the engine's per-task state (the kernel's unwind_task_info).
type Task struct {
	eng      *Engine
	tid, pid int32
	kind     TaskKind

	state  atomic.Uint32
	mask   atomic.Uint64 // request mask: PENDING, USED, tracer bits
	cookie atomic.Uint64 // the open entry's cookie, 0 until the first request
	pins   atomic.Int32  // Engine.Request calls in flight
	shard  atomic.Pointer[Shard]

	// Owned by the entry's owner (and by callbacks it runs).
	regs      x86_64.Regs
	mem       x86_64.Memory
	table     x86_64.Table  // the process's unwind tables; nil: none
	trace     x86_64.Trace  // the cache (R15); Frames empty means "not walked"
	completed atomic.Uint64 // tracers already called in this entry (R11, R13)
}

// SetTable gives t the unwind tables of its process (package unwindinfo),
// which table-driven unwind methods look its frames up in; nil means none.
// It is the owner's call, made between entries (a new thread, an exec).
func (t *Task) SetTable(tab x86_64.Table) { t.table = tab }

// TID reports the task's thread id.
func (t *Task) TID() int32 { return t.tid }

// PID reports the task's process id.
func (t *Task) PID() int32 { return t.pid }

// Kind reports the task's kind.
func (t *Task) Kind() TaskKind { return t.kind }

// Mask reports the task's request mask (for tests and diagnostics).
func (t *Task) Mask() uint64 { return t.mask.Load() }

// Cookie reports the open entry's cookie, 0 if none was minted.
func (t *Task) Cookie() Cookie { return Cookie(t.cookie.Load()) }

// Open begins a kernel entry of t on shard s, with the user registers and the
// memory to unwind from (for a snapshot, the bytes at the sample's user sp).
// It is the owner's call. Kernel threads are refused.
func (t *Task) Open(s *Shard, regs x86_64.Regs, mem x86_64.Memory) error {
	switch st := t.state.Load(); {
	case t.kind == KindKernelThread:
		return fmt.Errorf("open entry of task %d: %w", t.tid, ErrKernelThread)
	case st&stateExiting != 0:
		return fmt.Errorf("open entry of task %d: %w", t.tid, ErrExiting)
	case st&stateOpen != 0:
		return fmt.Errorf("open entry of task %d: %w", t.tid, ErrEntryOpen)
	}
	t.regs, t.mem = regs, mem
	t.shard.Store(s)
	t.state.Store(kindBits(t.kind) | stateOpen)
	return nil
}

// check reports why t cannot take a request or unwind now.
func (t *Task) check() error {
	if st := t.state.Load(); st&^stateClosing != stateOpen {
		return refusal(st)
	}
	return nil
}

// refusal says why a task in state st takes no request (R4, R5).
func refusal(st uint32) error {
	switch {
	case st&stateKernel != 0:
		return ErrKernelThread
	case st&stateCompat != 0:
		return ErrCompat
	case st&stateExiting != 0:
		return ErrExiting
	case st&stateOpen == 0:
		return ErrNoEntry
	}
	return nil
}

// Request asks for t's user stack for the open entry on behalf of tr (R6–R10):
// 0 and the cookie when tr's callback is newly queued, 1 and the cookie when
// it was already queued or already called in this entry, or a negative errno,
// cookie 0 and an error. It takes no lock and allocates nothing: one atomic
// fetch-or on t's mask (R9). It is the owner's call (see the package
// documentation); other goroutines use [Engine.Request].
func (t *Task) Request(tr *Tracer) (int, Cookie, error) {
	bit := tr.bit.Load()
	st := t.state.Load()
	c := Cookie(t.cookie.Load())
	if bit < 0 || st&^stateClosing != stateOpen || c == 0 {
		return t.requestSlow(tr) // refused, or the first request: mint the cookie
	}
	// The fetch-or, as an inlined compare-and-swap loop (atomic.Uint64.Or
	// that returns the old value is a function call on amd64).
	b := uint64(1) << (bit & 63)
	old := t.mask.Load()
	for old&b == 0 && !t.mask.CompareAndSwap(old, old|Pending|b) {
		old = t.mask.Load()
	}
	if old&b != 0 {
		return 1, c, nil // already queued, or already called in this entry
	}
	if old&Pending == 0 || tr.bit.Load() != bit {
		return t.requestDone(b, bit, tr, c) // schedule the work, or a cancel raced
	}
	return 0, c, nil // rides on the work already scheduled
}

// requestDone finishes a request that set its bit and either found PENDING
// clear, so it schedules the work (R10), or lost a race with its tracer's
// cancel, so it takes the bit back.
func (t *Task) requestDone(b uint64, bit int32, tr *Tracer, c Cookie) (int, Cookie, error) {
	if tr.bit.Load() != bit {
		t.mask.And(^b)
		return Errno(ErrCancelled), 0, ErrCancelled
	}
	if t.eng.schedule != nil {
		if err := t.eng.schedule(t); err != nil {
			t.mask.Store(0)
			err = fmt.Errorf("%w: %w", ErrSchedule, err)
			return Errno(err), 0, err
		}
	}
	return 0, c, nil
}

// requestSlow is Request's cold path: refusals and the cookie's minting.
func (t *Task) requestSlow(tr *Tracer) (int, Cookie, error) {
	bit := tr.bit.Load()
	if bit < 0 {
		return Errno(ErrCancelled), 0, ErrCancelled
	}
	if err := t.check(); err != nil {
		return Errno(err), 0, err
	}
	t.mintCookie()
	return t.Request(tr)
}

// mintCookie gives the entry its cookie, minted on the entry's shard (R6,
// R7). When two goroutines mint for the same entry at once, one counter value
// goes unused; cookies stay unique.
func (t *Task) mintCookie() uint64 {
	c := t.shard.Load().mint()
	if t.cookie.CompareAndSwap(0, c) {
		return c
	}
	return t.cookie.Load()
}

// Unwind is the direct, non-deferred unwind (R15): it walks t's user stack
// into the entry's cache, or returns the cache if the entry was already
// walked, and sets USED so that the cache is emptied when the entry ends.
// The trace is valid until the entry closes. It is the owner's call.
func (t *Task) Unwind() (*x86_64.Trace, error) {
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("unwind task %d: %w", t.tid, err)
	}
	return t.unwindCached(), nil
}

func (t *Task) unwindCached() *x86_64.Trace {
	if len(t.trace.Frames) == 0 {
		if t.mem != nil {
			t.eng.unwinder.UnwindTable(t.regs, t.mem, t.table, &t.trace)
		}
		t.mask.Or(Used)
	}
	return &t.trace
}

// process is the deferred work (R11, R12): take the mask clearing PENDING,
// unwind or reuse the cache, and call each requested tracer not yet called,
// in list order.
func (t *Task) process(s *Shard) {
	bits := t.mask.And(^Pending)
	trace := t.unwindCached()
	cookie := Cookie(t.cookie.Load())
	s.mu.Lock()
	defer s.mu.Unlock()
	bits &^= t.completed.Load()
	for _, tr := range *t.eng.list.Load() {
		bit := tr.bit.Load()
		if bit < 0 || bits&(1<<bit) == 0 {
			continue
		}
		tr.cb(t, trace, cookie)
		t.completed.Or(1 << bit)
	}
}

// Close ends t's kernel entry, the host's return to user space (R11–R14):
// while PENDING is set it runs the deferred work (a callback may request
// again, R13), then resets the task: mask 0, cookie 0, cache and completed
// mask emptied. Remote requests that race with Close either are seen by it or
// fail. It returns the cookie the entry had, 0 if none was minted. It is the
// owner's call; Close of a task with no open entry is a no-op.
func (t *Task) Close() Cookie {
	if t.state.Load()&stateOpen == 0 {
		return 0
	}
	t.quiesce(kindBits(t.kind) | stateOpen | stateClosing)
	for {
		t.drain()
		// R14: swap the mask to 0 unless a callback requested again.
		if m := t.mask.Load(); m&Pending == 0 && t.mask.CompareAndSwap(m, 0) {
			break
		}
	}
	c := t.reset()
	t.state.Store(kindBits(t.kind))
	return c
}

// Exit ends t for good (R16): pending work runs first, with whatever trace
// can still be had, then the work is cancelled and the task forgotten.
// Requests fail from the moment Exit starts. It returns the cookie of the
// entry that was open, 0 if none. It is the owner's call.
func (t *Task) Exit() Cookie {
	t.quiesce(t.state.Load() | stateClosing | stateExiting)
	if s := t.shard.Load(); s != nil {
		t.drain()
	}
	c := t.reset()
	t.state.Store(kindBits(t.kind) | stateExiting)
	t.eng.tasks.CompareAndDelete(t.tid, t)
	return c
}

// quiesce publishes st (which includes stateClosing) and waits for the remote
// requests in flight: each one either saw stateClosing and gave up, or is
// finished with the mask when pins reads 0.
func (t *Task) quiesce(st uint32) {
	t.state.Store(st)
	// A pin is held for a few nanoseconds: spin briefly before yielding, or
	// the closer waits for a scheduler time slice behind busy requesters.
	for i := 0; t.pins.Load() != 0; i++ {
		if i >= 64 {
			runtime.Gosched()
		}
	}
}

// drain runs the deferred work while PENDING is set: the kernel's task_work
// loop before return to user, which reruns when a callback requests again.
func (t *Task) drain() {
	s := t.shard.Load()
	for t.mask.Load()&Pending != 0 {
		t.process(s)
	}
}

// reset empties the entry's state and returns the cookie it had.
func (t *Task) reset() Cookie {
	t.mask.Store(0)
	c := Cookie(t.cookie.Swap(0))
	t.completed.Store(0)
	t.trace.Reset()
	t.mem = nil
	return c
}
