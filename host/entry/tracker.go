package entry

import (
	"errors"
	"fmt"
	"strconv"

	"go.uber.org/zap"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/deferred"
	"github.com/unwindd/unwindd/host/pluginhost"
)

// Sink receives a tracker's events and entry ends: a
// [*pluginhost.Dispatcher] in the host. Event is called inside the task's
// open entry, EndEntry just before the entry closes.
type Sink interface {
	Event(t *deferred.Task, ev pluginhost.Event)
	EndEntry(t *deferred.Task)
}

var _ Sink = (*pluginhost.Dispatcher)(nil)

// CPUMode is where a task was when an event fired.
type CPUMode uint8

// CPU modes.
const (
	ModeUnknown CPUMode = iota // the source cannot tell: treated as kernel mode
	ModeUser                   // user mode: the event is an entry of its own
	ModeKernel                 // kernel mode: the event belongs to the open entry
)

// Kind is what kind of task an event says its task is.
type Kind uint8

// Task kinds, as a source can tell them from an event.
const (
	KindUnknown      Kind = iota // not said: the task keeps its kind (a new task is 64-bit)
	KindUser                     // a 64-bit task
	KindCompat                   // a 32-bit task (perf regs ABI 32): events delivered, stacks refused
	KindKernelThread             // no user side at all: events delivered, stacks refused
)

func (k Kind) engine() deferred.TaskKind {
	switch k {
	case KindCompat:
		return deferred.KindCompat
	case KindKernelThread:
		return deferred.KindKernelThread
	}
	return deferred.KindUser
}

// Boundary says whether an event opens or closes its task's entry.
type Boundary uint8

// Boundaries.
const (
	BoundaryNone  Boundary = iota // an event inside an entry (or an entry of its own)
	BoundaryEnter                 // opens the tid's entry (raw_syscalls:sys_enter)
	BoundaryExit                  // the last event of the tid's entry (raw_syscalls:sys_exit)
)

// Sample is one event of a source, with what the tracker needs to place it.
type Sample struct {
	PID, TID int32
	CPU      int32 // picks the engine shard that mints the entry's cookie; <0: shard 0
	Mode     CPUMode
	Kind     Kind
	Boundary Boundary

	// The user side of the entry the event opens, if it opens one: the
	// registers, and a way to read user memory, tried in this order: Mem
	// (a live task), Stack (a snapshot at Regs.SP: PERF_SAMPLE_STACK_USER),
	// Callchain (the user callchain the kernel recorded, leaf first). Mem
	// and Stack must stay valid and unchanged until the entry closes;
	// Callchain is copied.
	HaveRegs           bool
	Regs               x86_64.Regs
	Mem                x86_64.Memory
	Stack              []byte
	Callchain          []uint64
	CallchainTruncated bool // the kernel cut Callchain at its depth limit

	// Event is what the plugins get; an empty Comm is filled from the
	// tracker's task table. The tracker does not keep it.
	Event pluginhost.Event
}

// Options configure a [Tracker]. The zero value means the defaults.
type Options struct {
	// Spaces receives the processes' mappings; nil means a Spaces of the
	// tracker's own ([Tracker.Spaces]).
	Spaces *Spaces
	// Tables, if set, gives the unwind tables of process pid (see package
	// unwindinfo); each new task gets its process's. Nil: none, and only
	// methods that need no table (frame pointers) walk. A table with an
	// Invalidate method is told when its process's mappings change.
	Tables func(pid int32) x86_64.Table
	// CopyStacks says a Sample's Stack is valid only during the Sample
	// call (a live perf ring, whose space the kernel reuses): an entry
	// that stays open past it (a sys_enter's) walks a copy.
	CopyStacks bool
}

// Stats count what a [Tracker] did.
type Stats struct {
	Events   uint64 // events dispatched
	Entries  uint64 // entries opened
	Unwinds  uint64 // entries closed with a cookie: the engine walked the stack and made callbacks
	Stale    uint64 // entries ended by a user-mode sample or a second sys_enter (a missed sys_exit)
	Lost     uint64 // Lost calls
	LostEnds uint64 // entries ended by Lost
	Refused  uint64 // entries the engine refused to open (kernel threads, exiting tasks)
	Tasks    uint64 // threads seen
	Exits    uint64 // threads ended by Exit
	Mmaps    uint64 // mappings added
	Dropped  uint64 // events not dispatched: the engine would not take their task
}

// Tracker turns a source's records into kernel entries on a deferred engine
// and events on a [Sink]. It belongs to one goroutine.
type Tracker struct {
	eng     *deferred.Engine
	sink    Sink
	log     *zap.Logger
	spaces  *Spaces
	tables  func(pid int32) x86_64.Table
	ptables map[int32]x86_64.Table // tables by pid, made once per process
	copy    bool                   // Options.CopyStacks
	threads map[int32]*thread
	open    map[*thread]struct{} // threads with an open entry
	stats   Stats
}

// thread is the tracker's state of one task.
type thread struct {
	pid, tid int32
	comm     string
	task     *deferred.Task // nil until its first event
	open     bool           // an entry is open (even if the engine refused it)
	snap     x86_64.Snapshot
	chain    []byte
	stack    []byte // a copy of the open entry's stack (Options.CopyStacks)
}

// New returns a Tracker that opens entries on eng and dispatches to sink.
// A nil log means zap.NewNop().
func New(eng *deferred.Engine, sink Sink, opts Options, log *zap.Logger) (*Tracker, error) {
	if eng == nil || sink == nil {
		return nil, errors.New("entry: New needs an engine and a sink")
	}
	if log == nil {
		log = zap.NewNop()
	}
	sp := opts.Spaces
	if sp == nil {
		sp = new(Spaces)
	}
	return &Tracker{eng: eng, sink: sink, log: log, spaces: sp, tables: opts.Tables, ptables: map[int32]x86_64.Table{}, copy: opts.CopyStacks,
		threads: make(map[int32]*thread), open: make(map[*thread]struct{})}, nil
}

// Spaces returns the tracker's address spaces.
func (tr *Tracker) Spaces() *Spaces { return tr.spaces }

// Stats returns the counts so far.
func (tr *Tracker) Stats() Stats { return tr.stats }

// Comm returns the command name of tid, as the tracker knows it.
func (tr *Tracker) Comm(tid int32) string {
	if th := tr.threads[tid]; th != nil {
		return th.comm
	}
	return ""
}

func (tr *Tracker) thread(pid, tid int32) *thread {
	th := tr.threads[tid]
	if th == nil {
		th = &thread{pid: pid, tid: tid, comm: placeholder(tid)}
		tr.threads[tid] = th
		tr.stats.Tasks++
	}
	return th
}

// SetComm records that tid of process pid is now called comm; exec says
// the name changed by exec (its kind may change too: the engine task is
// made anew at its next entry if its events say so).
func (tr *Tracker) SetComm(pid, tid int32, comm string, exec bool) {
	th := tr.thread(pid, tid)
	th.comm = comm
	th.pid = pid
}

// Fork records a new task tid of process pid, made by ptid of ppid: a new
// process (pid != ppid) gets a copy of its parent's mappings; the task
// inherits its parent's name. A tid still known (a reused tid, a missed
// exit) is ended first.
func (tr *Tracker) Fork(pid, ppid, tid, ptid int32) {
	comm := ""
	if p := tr.threads[ptid]; p != nil {
		comm = p.comm
	}
	if old := tr.threads[tid]; old != nil {
		if old.task != nil || old.pid != pid {
			tr.Exit(old.pid, tid)
		} else if old.comm != placeholder(tid) {
			comm = old.comm // perf writes a synthesized thread's COMM before its FORK
		}
	}
	if pid != ppid {
		tr.spaces.fork(ppid, pid)
		tr.invalidate(pid)
	}
	th := tr.thread(pid, tid)
	th.pid = pid
	if comm != "" {
		th.comm = comm
	}
}

// placeholder is the name of a task whose COMM was not seen, as perf
// script prints it.
func placeholder(tid int32) string { return ":" + strconv.Itoa(int(tid)) }

// Exit ends task tid: its open entry, if any, ends (EndEntry, then
// [deferred.Task.Exit], which still makes the callbacks due, R16). The
// process's mappings stay for the stacks still being delivered.
func (tr *Tracker) Exit(pid, tid int32) {
	th := tr.threads[tid]
	if th == nil {
		return
	}
	if th.task != nil {
		if th.open {
			tr.sink.EndEntry(th.task)
		}
		if th.task.Exit() != 0 {
			tr.stats.Unwinds++
		}
	}
	th.open = false
	delete(tr.open, th)
	delete(tr.threads, tid)
	if pid == tid {
		delete(tr.ptables, pid) // the process is gone; a reused pid gets new tables
	}
	tr.stats.Exits++
}

// Mmap records a mapping of process pid.
func (tr *Tracker) Mmap(pid int32, m Mapping) {
	tr.spaces.insert(pid, m)
	tr.invalidate(pid)
	tr.stats.Mmaps++
}

// invalidate tells pid's unwind tables, if they cache what they resolved
// (unwindinfo.Process does), that its mappings changed.
func (tr *Tracker) invalidate(pid int32) {
	if tab, ok := tr.ptables[pid].(interface{ Invalidate() }); ok {
		tab.Invalidate()
	}
}

// Lost ends the open entries of tids, or of every task when tids is empty:
// the source lost records, and no stack may join events across the gap.
func (tr *Tracker) Lost(tids ...int32) {
	tr.stats.Lost++
	if len(tids) == 0 {
		for th := range tr.open {
			tr.end(th)
			tr.stats.LostEnds++
		}
		return
	}
	for _, tid := range tids {
		if th := tr.threads[tid]; th != nil && th.open {
			tr.end(th)
			tr.stats.LostEnds++
		}
	}
}

// Flush ends every open entry: the end of the stream.
func (tr *Tracker) Flush() {
	for th := range tr.open {
		tr.end(th)
	}
}

// Sample places one event: see the package documentation for the rules.
func (tr *Tracker) Sample(s *Sample) {
	th := tr.thread(s.PID, s.TID)
	if th.pid != s.PID {
		th.pid = s.PID
	}
	ev := s.Event
	if ev.Comm == "" {
		ev.Comm = th.comm
	}
	switch {
	case s.Boundary == BoundaryEnter:
		if th.open {
			tr.end(th)
			tr.stats.Stale++
		}
		tr.begin(th, s)
		tr.event(th, ev)
	case s.Boundary == BoundaryExit:
		if !th.open {
			tr.begin(th, s)
		}
		tr.event(th, ev)
		tr.end(th)
	case s.Mode == ModeUser:
		if th.open {
			tr.end(th)
			tr.stats.Stale++
		}
		tr.begin(th, s)
		tr.event(th, ev)
		tr.end(th)
	case th.open:
		tr.event(th, ev)
	default:
		tr.begin(th, s)
		tr.event(th, ev)
		tr.end(th)
	}
}

func (tr *Tracker) event(th *thread, ev pluginhost.Event) {
	if th.task == nil {
		tr.stats.Dropped++
		return
	}
	tr.sink.Event(th.task, ev)
	tr.stats.Events++
}

// task returns th's engine task, made (anew) for kind k when needed.
func (tr *Tracker) task(th *thread, k Kind) (*deferred.Task, error) {
	if th.task != nil && (k == KindUnknown || th.task.Kind() == k.engine()) {
		return th.task, nil
	}
	if th.task != nil { // the kind changed (exec of a 32-bit program): a new task
		th.task.Exit()
		th.task = nil
	}
	t, err := tr.eng.AddTask(th.tid, th.pid, k.engine())
	if errors.Is(err, deferred.ErrTaskExists) {
		// Someone else's task with that tid: replace it, this stream owns it.
		if old := tr.eng.Task(th.tid); old != nil {
			old.Exit()
		}
		t, err = tr.eng.AddTask(th.tid, th.pid, k.engine())
	}
	if err != nil {
		return nil, fmt.Errorf("entry: add task %d: %w", th.tid, err)
	}
	if tr.tables != nil {
		tab, ok := tr.ptables[th.pid]
		if !ok {
			tab = tr.tables(th.pid)
			tr.ptables[th.pid] = tab
		}
		t.SetTable(tab)
	}
	th.task = t
	return t, nil
}

// begin opens th's entry with s's user side.
func (tr *Tracker) begin(th *thread, s *Sample) {
	t, err := tr.task(th, s.Kind)
	if err != nil {
		// Only if another owner re-adds the tid at once: the event is counted
		// as dropped.
		tr.log.Warn("entry: no engine task", zap.Error(err))
		return
	}
	th.open = true
	tr.open[th] = struct{}{}
	tr.stats.Entries++
	regs, mem := s.Regs, x86_64.Memory(nil)
	switch {
	case s.Mem != nil && s.HaveRegs:
		mem = s.Mem
	case s.Stack != nil && s.HaveRegs:
		data := s.Stack
		if tr.copy && s.Boundary == BoundaryEnter {
			th.stack = append(th.stack[:0], s.Stack...)
			data = th.stack
		}
		th.snap = x86_64.Snapshot{Base: s.Regs.SP, Data: data}
		mem = &th.snap
	case len(s.Callchain) > 0:
		regs, th.chain = chainMemory(s.Callchain, s.CallchainTruncated, th.chain)
		th.snap = x86_64.Snapshot{Base: ChainBase, Data: th.chain}
		mem = &th.snap
	case !s.HaveRegs:
		regs = x86_64.Regs{}
	}
	shard := 0
	if n := tr.eng.Shards(); s.CPU > 0 {
		shard = int(s.CPU) % n
	}
	if err := t.Open(tr.eng.Shard(shard), regs, mem); err != nil {
		tr.stats.Refused++
		if !errors.Is(err, deferred.ErrKernelThread) {
			tr.log.Debug("entry refused", zap.Int32("tid", th.tid), zap.Error(err))
		}
	}
}

// end closes th's entry: EndEntry, then Close.
func (tr *Tracker) end(th *thread) {
	if !th.open {
		return
	}
	tr.sink.EndEntry(th.task)
	if th.task.Close() != 0 {
		tr.stats.Unwinds++
	}
	th.open = false
	delete(tr.open, th)
}
