package deferred

import (
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/unwindd/unwindd/arch/x86_64"
)

// The reserved bits of a task's mask (R1).
const (
	Pending  uint64 = 1 << 0 // deferred work is due before the entry ends
	Used     uint64 = 1 << 1 // the cache was filled and must be emptied at the end of the entry
	reserved        = Pending | Used

	// MaxTracers is how many tracers can be registered at once: bits 2..63.
	MaxTracers = 62
)

// Errors. Each maps to a negative errno through [Errno].
var (
	// ErrBusy: all 62 tracer bits are taken (the kernel's -EBUSY).
	ErrBusy = errors.New("deferred: all 62 tracer bits are in use")
	// ErrCancelled: the tracer was cancelled (-EINVAL).
	ErrCancelled = errors.New("deferred: tracer is cancelled")
	// ErrUnknownTask: no task with that tid is known (-EINVAL).
	ErrUnknownTask = errors.New("deferred: unknown task")
	// ErrTaskExists: a task with that tid is already known.
	ErrTaskExists = errors.New("deferred: task already exists")
	// ErrKernelThread: kernel threads have no user stack (-EINVAL, R4).
	ErrKernelThread = errors.New("deferred: task is a kernel thread")
	// ErrCompat: 32-bit tasks are not deferred on x86-64 (-EINVAL, R5).
	ErrCompat = errors.New("deferred: task is a 32-bit (compat) task")
	// ErrExiting: the task is exiting or has exited (-EINVAL, R4).
	ErrExiting = errors.New("deferred: task is exiting")
	// ErrNoEntry: the task has no open kernel entry (-EINVAL, R4).
	ErrNoEntry = errors.New("deferred: task has no open kernel entry")
	// ErrEntryOpen: Open on a task whose entry is already open.
	ErrEntryOpen = errors.New("deferred: task already has an open kernel entry")
	// ErrSchedule: the work could not be scheduled (R10); wraps the cause.
	ErrSchedule = errors.New("deferred: cannot schedule deferred work")
)

// Errno maps an error from this package to the kernel's negative return
// value: 0 for nil, -EBUSY for [ErrBusy], the errno itself for a wrapped
// syscall.Errno, -EINVAL otherwise.
func Errno(err error) int {
	switch err {
	case nil:
		return 0
	case ErrCancelled, ErrUnknownTask, ErrKernelThread, ErrCompat, ErrExiting, ErrNoEntry:
		return -int(syscall.EINVAL) // the hot path's unwrapped sentinels
	}
	if errors.Is(err, ErrBusy) {
		return -int(syscall.EBUSY)
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return -int(en)
	}
	return -int(syscall.EINVAL)
}

// Cookie identifies one kernel entry of one task (R6, R7). It is never 0.
type Cookie uint64

// Shard reports the id of the shard that minted c.
func (c Cookie) Shard() int { return int(uint32(c)) - 1 }

// Counter reports the shard counter value c carries.
func (c Cookie) Counter() uint32 { return uint32(c >> 32) }

func (c Cookie) String() string { return fmt.Sprintf("%#016x", uint64(c)) }

// Callback is a tracer's deferred-unwind callback: the task, its user stack
// and the entry's cookie. trace is the task's cache: it is valid only during
// the call; copy what must outlive it. A callback runs on the goroutine that
// closes (or exits) the entry and may call [Task.Request] for the same task.
type Callback func(t *Task, trace *x86_64.Trace, cookie Cookie)

// Tracer is one registered consumer of deferred stacks (the kernel's
// unwind_work): it owns one bit of every task's mask.
type Tracer struct {
	name string
	cb   Callback
	bit  atomic.Int32 // -1 once cancelled
}

// Name reports the name the tracer was registered with.
func (tr *Tracer) Name() string { return tr.name }

// Bit reports the tracer's mask bit (2..63), or -1 once cancelled.
func (tr *Tracer) Bit() int { return int(tr.bit.Load()) }

// Shard mints cookies, like one CPU in the kernel, and serialises the
// callbacks of the entries it owns against [Engine.Cancel]. Cookie minting
// is safe from any goroutine.
type Shard struct {
	id  int
	ctr atomic.Uint32 // odd; the next cookie uses ctr+2
	mu  sync.Mutex    // held while callbacks run (the kernel's srcu read side)
	_   [40]byte      // keep shards on their own cache lines
}

// ID reports the shard's id.
func (s *Shard) ID() int { return s.id }

func (s *Shard) mint() uint64 {
	cnt := s.ctr.Add(2) // stays odd: it starts at 1
	return uint64(cnt)<<32 | uint64(uint32(s.id+1))
}

// Options configure an [Engine]. The zero value means the defaults.
type Options struct {
	// Shards is the number of cookie shards; 0 means runtime.NumCPU().
	Shards int
	// Unwinder walks user stacks; nil means x86_64 frame pointers with the
	// default depth (511 frames, R15).
	Unwinder *x86_64.Unwinder
	// Schedule, if set, is called by the request that schedules a task's
	// deferred work (R10), as the kernel calls task_work_add: a live source
	// uses it to make sure it stops the task before it returns to user
	// space. An error resets the task's mask and fails the request.
	Schedule func(t *Task) error
}

// Engine is the deferred-unwind engine. All methods are safe for concurrent
// use, with the ownership rules in the package documentation.
type Engine struct {
	unwinder *x86_64.Unwinder
	schedule func(*Task) error
	shards   []Shard

	regMu   sync.Mutex // registration and cancel (the kernel's callback_mutex)
	regMask uint64     // bits in use, reserved included; under regMu
	list    atomic.Pointer[[]*Tracer]

	tasks sync.Map // int32 tid → *Task; lock-free lookups
}

// New returns an Engine.
func New(opts Options) (*Engine, error) {
	if opts.Shards < 0 {
		return nil, fmt.Errorf("deferred: Shards %d must be >= 0", opts.Shards)
	}
	n := opts.Shards
	if n == 0 {
		n = runtime.NumCPU()
	}
	e := &Engine{unwinder: opts.Unwinder, schedule: opts.Schedule, shards: make([]Shard, n), regMask: reserved}
	if e.unwinder == nil {
		u, err := x86_64.New(x86_64.Options{})
		if err != nil {
			return nil, fmt.Errorf("deferred: default unwinder: %w", err)
		}
		e.unwinder = u
	}
	for i := range e.shards {
		e.shards[i].id = i
		e.shards[i].ctr.Store(1)
	}
	e.list.Store(new([]*Tracer))
	return e, nil
}

// Shards reports the number of shards.
func (e *Engine) Shards() int { return len(e.shards) }

// Shard returns shard i (0 ≤ i < Shards()).
func (e *Engine) Shard(i int) *Shard { return &e.shards[i] }

// Register adds a tracer with the lowest free bit, at the end of the callback
// list (R1, R2). It fails with [ErrBusy] when 62 tracers are registered.
func (e *Engine) Register(name string, cb Callback) (*Tracer, error) {
	if cb == nil {
		return nil, errors.New("deferred: Register: nil callback")
	}
	e.regMu.Lock()
	defer e.regMu.Unlock()
	if e.regMask == ^uint64(0) {
		return nil, fmt.Errorf("register %q: %w", name, ErrBusy)
	}
	bit := bits.TrailingZeros64(^e.regMask)
	e.regMask |= 1 << bit
	tr := &Tracer{name: name, cb: cb}
	tr.bit.Store(int32(bit))
	old := *e.list.Load()
	l := make([]*Tracer, len(old), len(old)+1)
	copy(l, old)
	l = append(l, tr)
	e.list.Store(&l)
	return tr, nil
}

// Tracers returns the registered tracers in callback order.
func (e *Engine) Tracers() []*Tracer {
	return append([]*Tracer(nil), *e.list.Load()...)
}

// Cancel unregisters tr (R3): it leaves the callback list, its requests fail
// from now on, it is never called after Cancel returns, and its bit is
// cleared from every task's request and completed masks before the bit can
// be handed to another tracer. Cancel of nil or of a cancelled tracer is a
// no-op. It must not be called from a [Callback].
func (e *Engine) Cancel(tr *Tracer) {
	if tr == nil {
		return
	}
	e.regMu.Lock()
	defer e.regMu.Unlock()
	bit := tr.bit.Load()
	if bit < 0 || uint64(1)<<bit&reserved != 0 {
		return
	}
	old := *e.list.Load()
	l := make([]*Tracer, 0, len(old))
	for _, t := range old {
		if t != tr {
			l = append(l, t)
		}
	}
	e.list.Store(&l)
	tr.bit.Store(-1) // no more requests, no more callbacks
	// Wait for deliveries that may have loaded the old list (synchronize_srcu).
	for i := range e.shards {
		e.shards[i].mu.Lock()
		//lint:ignore SA2001 an empty critical section is the point: it waits for running deliveries.
		e.shards[i].mu.Unlock()
	}
	b := uint64(1) << bit
	e.tasks.Range(func(_, v any) bool {
		t := v.(*Task)
		t.mask.And(^b)
		t.completed.And(^b)
		return true
	})
	e.regMask &^= b
}

// TaskKind says what kind of task a [Task] is.
type TaskKind uint8

// Task kinds.
const (
	KindUser         TaskKind = iota // a 64-bit user task
	KindKernelThread                 // a kernel thread: no user stack (R4)
	KindCompat                       // a 32-bit task on x86-64 (R5)
)

// AddTask makes a task known to the engine.
func (e *Engine) AddTask(tid, pid int32, kind TaskKind) (*Task, error) {
	t := &Task{eng: e, tid: tid, pid: pid, kind: kind}
	t.state.Store(kindBits(kind))
	if _, loaded := e.tasks.LoadOrStore(tid, t); loaded {
		return nil, fmt.Errorf("add task %d: %w", tid, ErrTaskExists)
	}
	return t, nil
}

// Task looks a task up by tid; nil if unknown. Lookups take no lock.
func (e *Engine) Task(tid int32) *Task {
	v, ok := e.tasks.Load(tid)
	if !ok {
		return nil
	}
	return v.(*Task)
}

// Request asks for a deferred user stack of task tid on behalf of tr, from
// any goroutine (R8–R10): see [Task.Request] for the results. It pins the
// task so that a concurrent [Task.Close] either sees the request or the
// request fails with [ErrNoEntry].
func (e *Engine) Request(tr *Tracer, tid int32) (int, Cookie, error) {
	t := e.Task(tid)
	if t == nil {
		return Errno(ErrUnknownTask), 0, ErrUnknownTask
	}
	// Pin the task, then look: Close publishes stateClosing, then waits for
	// pins to drain, so one of the two always sees the other.
	if t.state.Load()&stateClosing != 0 {
		return Errno(ErrNoEntry), 0, ErrNoEntry
	}
	t.pins.Add(1)
	defer t.pins.Add(-1)
	if t.state.Load()&stateClosing != 0 {
		return Errno(ErrNoEntry), 0, ErrNoEntry
	}
	return t.Request(tr)
}
