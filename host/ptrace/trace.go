package ptrace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/entry"
	"github.com/unwindd/unwindd/host/pluginhost"
	"github.com/unwindd/unwindd/host/procfs"
)

// TraceOptions configure [Tracer.Trace]. The zero value means the defaults.
type TraceOptions struct {
	// PID is the process to trace: one [Tracer.Start] holds after its
	// execve (traced from its first instruction), or any other process,
	// attached with PTRACE_SEIZE, every thread of it.
	PID int
	// Hz is the sampling rate: every Hz-th of a second, each thread running
	// in user space is interrupted (PTRACE_INTERRUPT) and the stop is a
	// user-mode sample, an entry of its own; a thread running inside a
	// system call gets a kernel-mode sample in its open entry, without being
	// stopped. 0 means no samples; at most 10000.
	Hz int
	// NoSyscalls: no plugin wants system calls. Threads are resumed with
	// PTRACE_CONT, so they never stop at system calls: no syscall events,
	// no entries but the samples', and the mappings are re-read at
	// sampling ticks (at most every [MapsEvery]) instead of after mmap-like
	// calls. Only threads the scheduler says are running are interrupted;
	// one running inside a system call sees it interrupted (and restarted,
	// for the calls the kernel restarts).
	NoSyscalls bool
	// Window is how many bytes of a process's memory one process_vm_readv
	// reads for the unwinder; 0 means [x86_64.DefaultWindow].
	Window int
	// LeaveRunning: when ctx ends, a process [Tracer.Start] made is
	// detached and left to run (reap it with [Tracer.Wait]); by default it
	// is killed. An attached process is always detached, never killed.
	LeaveRunning bool
	// DetachTimeout bounds the wait for every thread to stop so that it can
	// be detached when ctx ends; 0 means 5 s.
	DetachTimeout time.Duration
}

// TraceStats count what [Tracer.Trace] did.
type TraceStats struct {
	Stops         uint64 // ptrace stops handled
	Syscalls      uint64 // syscall-entry stops: entries opened
	SyscallExits  uint64 // syscall-exit stops
	Samples       uint64 // user-mode samples: interrupt stops
	KernelSamples uint64 // kernel-mode samples: threads running inside a syscall
	Ticks         uint64 // sampling ticks
	MissedTicks   uint64 // ticks skipped because the tracer fell behind
	Signals       uint64 // signals passed on to the tracee
	GroupStops    uint64 // job-control stops (PTRACE_LISTEN)
	Threads       uint64 // threads traced, attached or born
	Processes     uint64 // processes traced
	Execs         uint64 // successful execve
	MapReads      uint64 // reads of /proc/PID/maps
	Compat        uint64 // events of 32-bit tasks (delivered; their stacks are refused, R5)
	Detached      uint64 // threads detached when ctx ended

	// Exited says the traced process ended; Status is how (exit code or
	// signal).
	Exited bool
	Status syscall.WaitStatus
	// Killed says the process was killed when ctx ended (a process Start
	// made, without LeaveRunning).
	Killed bool
}

// MapsEvery is how often, at most, a process's mappings are re-read at
// sampling ticks under [TraceOptions].NoSyscalls.
const MapsEvery = 100 * time.Millisecond

// The x86-64 and i386 numbers of the calls that may map code.
const (
	sysMmap, sysMprotect, sysMremap, sysPrctl, sysPkeyMprotect = 9, 10, 25, 157, 329
	sys32OldMmap, sys32Mprotect, sys32Mremap, sys32Mmap2       = 90, 125, 163, 192
	sys32Prctl, sys32PkeyMprotect                              = 172, 380
	prSetName                                                  = 15
	traceOptions                                               = unix.PTRACE_O_TRACESYSGOOD | unix.PTRACE_O_TRACECLONE |
		unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_TRACEVFORK | unix.PTRACE_O_TRACEEXEC | unix.PTRACE_O_TRACEEXIT
)

// Trace traces process opts.PID into tr until the process (with every
// thread and child process it made while traced) has ended, or ctx ends,
// and returns what it did. It returns nil when the process ended (its
// status in the stats), ctx.Err() when ctx ended, after every thread was
// detached (an attached process runs on unharmed; one [Tracer.Start] made
// is killed unless opts.LeaveRunning, and also if the tracer thread dies),
// or an error saying why tracing could not start. If ctx has ended before
// Trace begins, a process Start holds stays held.
//
// The kernel's deferral made literal: each system call is an entry of tr,
// opened at the syscall-entry stop with the thread's user registers and its
// process's live memory (an [x86_64.ProcessMemory], one per process), and
// closed at the syscall-exit stop, where the engine walks the user stack
// from live memory if a plugin asked for it, before the thread is let go
// back to user space. Events are raw_syscalls:sys_enter/sys_exit as the
// perf source gives them (kind, name, fields "id", "args[0]".."args[5]",
// "ret"), so plugins cannot tell the sources apart. Threads and processes
// are followed through clone, fork, vfork, execve and exit (tr.Fork,
// tr.SetComm, tr.Exit); executable file mappings are read from
// /proc/PID/maps at the start, at each execve and after each successful
// mmap, mprotect or pkey_mprotect asking for PROT_EXEC, and mremap
// (tr.Mmap, only new ones; munmap needs nothing, as tr never drops
// mappings). Signals are passed on; job-control stops are kept
// (PTRACE_LISTEN) until SIGCONT. Every ptrace call and every call on tr
// comes from the tracer thread: tr must not be used elsewhere until Trace
// returns.
func (t *Tracer) Trace(ctx context.Context, opts TraceOptions, tr *entry.Tracker) (TraceStats, error) {
	switch {
	case tr == nil:
		return TraceStats{}, errors.New("ptrace: Trace needs a tracker")
	case opts.Hz < 0 || opts.Hz > 10000:
		return TraceStats{}, fmt.Errorf("ptrace: Hz %d must be in [0, 10000]", opts.Hz)
	case opts.Window < 0:
		return TraceStats{}, fmt.Errorf("ptrace: Window %d must be >= 0", opts.Window)
	case opts.DetachTimeout < 0:
		return TraceStats{}, fmt.Errorf("ptrace: DetachTimeout %v must be >= 0", opts.DetachTimeout)
	}
	if opts.DetachTimeout == 0 {
		opts.DetachTimeout = 5 * time.Second
	}
	tgid, err := check(opts.PID)
	if err != nil {
		return TraceStats{}, err
	}
	var stats TraceStats
	derr := t.do(ctx, func(st *state) {
		if st.tracing {
			err = fmt.Errorf("ptrace: trace pid %d: %w", opts.PID, ErrBusy)
			return
		}
		st.tracing = true
		defer func() { st.tracing = false }()
		s := &session{t: t, st: st, tr: tr, opts: opts, log: t.log, root: tgid,
			tasks: make(map[int]*tracee), procs: make(map[int]*tproc), early: make(map[int]unix.WaitStatus),
			resumeOp: unix.PTRACE_SYSCALL, base: time.Now()}
		if opts.NoSyscalls {
			s.resumeOp = unix.PTRACE_CONT
		}
		var ts unix.Timespec
		if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) == nil {
			s.baseNS = uint64(ts.Nano())
		}
		err = s.run(ctx)
		stats = s.stats
	})
	if derr != nil {
		if errors.Is(derr, ErrClosed) {
			return stats, fmt.Errorf("%w: trace pid %d", derr, opts.PID)
		}
		return stats, fmt.Errorf("ptrace: trace pid %d: %w", opts.PID, derr)
	}
	return stats, err
}

// session is one Trace, run on the tracer thread.
type session struct {
	t    *Tracer
	st   *state
	tr   *entry.Tracker
	opts TraceOptions
	log  *zap.Logger
	root int // the traced process

	tasks map[int]*tracee
	procs map[int]*tproc
	// early holds the first stops of new tasks whose parent's clone/fork
	// event has not been seen yet: they stay stopped until it is.
	early map[int]unix.WaitStatus

	waker    atomic.Pointer[waker] // wakes the blocked loop; replaced if it dies
	resumeOp int                   // PTRACE_SYSCALL, or PTRACE_CONT without syscall stops
	draining bool
	killing  bool
	stats    TraceStats
	period   uint64 // sampling period, ns

	base   time.Time // for event times: baseNS + time since base (CLOCK_MONOTONIC)
	baseNS uint64

	regs   unix.PtraceRegs
	sample entry.Sample
	slab   []pluginhost.Field // events' fields are cut from it
}

// fields returns n zeroed fields for one event. They are cut from a slab
// (one allocation per many events) with their capacity capped, so that an
// event's fields cannot grow into another's; the plugins never change
// them.
func (s *session) fields(n int) []pluginhost.Field {
	if len(s.slab) < n {
		s.slab = make([]pluginhost.Field, 256)
	}
	f := s.slab[:n:n]
	s.slab = s.slab[n:]
	return f
}

// tracee is one traced thread.
type tracee struct {
	tid  int
	proc *tproc

	fresh        bool // attached or born: its first stop is the attach stop
	interrupting bool // a PTRACE_INTERRUPT of ours is pending: the next stop satisfies it
	listening    bool // in a job-control stop (PTRACE_LISTEN)
	inSyscall    bool // between its syscall-entry and syscall-exit stops
	compat       bool // its last stop was in 32-bit mode
	exiting      bool // PTRACE_EVENT_EXIT seen: tr.Exit done
	dropCont     bool // the SIGCONT Trace sent itself is still to be suppressed
	held         bool // stopped and kept so (draining)
	sig          int  // signal to pass on when detaching a held thread
}

// tproc is one traced process.
type tproc struct {
	pid     int
	mem     *x86_64.ProcessMemory
	maps    map[mapKey]struct{} // executable mappings the tracker has
	read    time.Time           // when maps were last read
	threads int
}

type mapKey struct {
	start, end, offset uint64
	major, minor       uint32
	inode              uint64
	path               string
}

func (s *session) now() uint64 { return s.baseNS + uint64(time.Since(s.base)) }

func (s *session) newProc(pid int, parent *tproc) (*tproc, error) {
	mem, err := x86_64.NewProcessMemory(pid, s.opts.Window)
	if err != nil {
		return nil, err
	}
	p := &tproc{pid: pid, mem: mem, maps: make(map[mapKey]struct{})}
	if parent != nil {
		for k := range parent.maps {
			p.maps[k] = struct{}{}
		}
	}
	s.procs[pid] = p
	s.stats.Processes++
	return p, nil
}

func (s *session) addTask(tid int, p *tproc) *tracee {
	tk := &tracee{tid: tid, proc: p, fresh: true}
	s.tasks[tid] = tk
	p.threads++
	s.stats.Threads++
	return tk
}

// run attaches, loops until the end, and detaches.
func (s *session) run(ctx context.Context) error {
	w, err := startWaker()
	if err != nil {
		return err
	}
	s.waker.Store(w)
	kick := func() {
		if w := s.waker.Load(); w != nil {
			w.kick()
		}
	}
	if s.opts.Hz > 0 {
		s.period = uint64(time.Second) / uint64(s.opts.Hz)
	}
	// Goroutines that wake the loop: at the end of ctx or of the Tracer, at
	// each sampling tick, and (through the Tracer's kick) for requests.
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-s.t.quit:
		case <-done:
			return
		}
		kick()
	})
	if s.period > 0 {
		wg.Go(func() {
			tk := time.NewTicker(time.Duration(s.period))
			defer tk.Stop()
			for {
				select {
				case <-tk.C:
					kick()
				case <-done:
					return
				}
			}
		})
	}
	s.t.kick.Store(&kick)
	defer func() {
		s.t.kick.Store(nil)
		close(done)
		wg.Wait()
		if w := s.waker.Load(); w != nil {
			w.stop()
		}
	}()

	if s.st.held[s.root] {
		if err := s.adopt(); err != nil {
			return err
		}
	} else if err := s.attach(ctx); err != nil {
		return err
	}
	err = s.loop(ctx)
	s.tr.Flush()
	return err
}

// adopt turns a process Start holds (TRACEME-traced, stopped after its
// execve) into a seized one: PTRACE_INTERRUPT and PTRACE_LISTEN need
// PTRACE_SEIZE. Detached with SIGSTOP, it stops itself before its first
// instruction; seized, it is continued with a SIGCONT that is not passed on
// to it (the equivalent of what strace does for the command it starts).
func (s *session) adopt() error {
	pid := s.root
	delete(s.st.held, pid)
	fail := func(err error) error {
		syscall.Kill(pid, syscall.SIGKILL)
		if ws, werr := waitPID(context.Background(), pid); werr == nil && (ws.Exited() || ws.Signaled()) {
			delete(s.st.children, pid)
		}
		return fmt.Errorf("ptrace: trace pid %d: %w", pid, err)
	}
	if err := ptrace(unix.PTRACE_DETACH, pid, 0, uintptr(syscall.SIGSTOP)); err != nil {
		return fail(fmt.Errorf("detach to re-attach: %w", err))
	}
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, unix.WALL|unix.WUNTRACED, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fail(fmt.Errorf("wait for its stop: %w", err))
		}
		if ws.Stopped() {
			break
		}
		if ws.Exited() || ws.Signaled() {
			delete(s.st.children, pid)
			return fmt.Errorf("ptrace: trace pid %d: ended before its first instruction: %s", pid, describe(ws))
		}
	}
	// Killed at the end unless LeaveRunning: then also if the tracer
	// thread dies (and so its children processes, which inherit it).
	opts := uintptr(traceOptions)
	if !s.opts.LeaveRunning {
		opts |= unix.PTRACE_O_EXITKILL
	}
	if err := seizeOpts(pid, opts); err != nil {
		return fail(fmt.Errorf("seize: %w", err))
	}
	p, err := s.newProc(pid, nil)
	if err != nil {
		return fail(err)
	}
	tk := s.addTask(pid, p)
	tk.dropCont = true
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		return fail(fmt.Errorf("continue: %w", err))
	}
	s.comm(tk, true)
	s.refreshMaps(p)
	return nil
}

// seizeOpts attaches to tid with options.
func seizeOpts(tid int, opts uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(tid), 0, opts, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// attach seizes every thread of the root process, re-listing its threads
// until none appears that is not attached, and interrupts each so that it
// can be resumed with syscall stops.
func (s *session) attach(ctx context.Context) error {
	pid := s.root
	self := unix.Gettid()
	p, err := s.newProc(pid, nil)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		s.finish(nil, false)
		return err
	}
	for round := 0; ; round++ {
		tids, err := procfs.Threads(pid)
		if errors.Is(err, fs.ErrNotExist) {
			if round == 0 {
				return fail(fmt.Errorf("%w: pid %d", ErrNoProcess, pid))
			}
			break // it ended while being attached: the loop sees the exits
		}
		if err != nil {
			return fail(fmt.Errorf("ptrace: %w", err))
		}
		added := 0
		for _, tid := range tids {
			if s.tasks[tid] != nil {
				continue
			}
			err := seizeOpts(tid, traceOptions)
			switch {
			case err == nil:
			case errors.Is(err, unix.ESRCH):
				continue
			case errors.Is(err, unix.EPERM):
				if st, serr := procfs.ReadStat(tid); errors.Is(serr, fs.ErrNotExist) || serr == nil && st.Dead() {
					continue
				}
				if st, serr := procfs.ReadStatus(tid); serr == nil && st.TracerPid == self {
					// Born of a thread already seized: attached by the
					// kernel, its first stop is the attach stop.
					s.addTask(tid, p)
					added++
					continue
				} else if serr == nil && st.TracerPid != 0 {
					return fail(fmt.Errorf("%w: task %d of pid %d is traced by task %d", ErrTraced, tid, pid, st.TracerPid))
				}
				return fail(fmt.Errorf("ptrace: seize task %d of pid %d: %w: tracing another user's process needs CAP_SYS_PTRACE (kernel.yama.ptrace_scope may also forbid it)", tid, pid, err))
			default:
				return fail(fmt.Errorf("ptrace: seize task %d of pid %d: %w", tid, pid, err))
			}
			tk := s.addTask(tid, p)
			if err := ptrace(unix.PTRACE_INTERRUPT, tid, 0, 0); err == nil {
				tk.interrupting = true
			}
			added++
		}
		if added == 0 {
			break
		}
	}
	for _, tk := range s.tasks {
		s.comm(tk, false)
	}
	s.refreshMaps(p)
	return nil
}

// loop handles stops until every tracee is gone or ctx ends. It blocks in
// wait4 (see [waker]); what other goroutines ask for is looked at when the
// waker stops.
func (s *session) loop(ctx context.Context) error {
	var next time.Time // next sampling tick
	if s.period > 0 {
		next = time.Now().Add(time.Duration(s.period))
	}
	for {
		if len(s.tasks) == 0 {
			for tid := range s.early { // never claimed by a parent's event
				ptrace(unix.PTRACE_DETACH, tid, 0, 0)
			}
			return nil
		}
		var ws unix.WaitStatus
		r, _, e := unix.Syscall6(unix.SYS_WAIT4, ^uintptr(0), uintptr(unsafe.Pointer(&ws)), unix.WALL|unix.WNOTHREAD, 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return errors.Join(fmt.Errorf("ptrace: wait: %w", e), s.finish(nil, false))
		}
		if !s.handle(int(r), ws) {
			continue
		}
		// The waker stopped: see why.
		switch {
		case ctx.Err() != nil:
			return s.finish(ctx.Err(), s.st.children[s.root] && !s.opts.LeaveRunning)
		case s.quitting():
			return s.finish(ErrClosed, s.st.children[s.root] && !s.opts.LeaveRunning)
		}
		s.serveRequests()
		if now := time.Now(); s.period > 0 && !now.Before(next) {
			s.tick()
			next = next.Add(time.Duration(s.period))
			if behind := now.Sub(next); behind >= 0 {
				skip := uint64(behind)/s.period + 1
				s.stats.MissedTicks += skip
				next = next.Add(time.Duration(skip * s.period))
			}
		}
	}
}

func (s *session) quitting() bool {
	select {
	case <-s.t.quit:
		return true
	default:
		return false
	}
}

// serveRequests runs the requests other goroutines have made of the
// Tracer meanwhile (Release, Wait, Stop…).
func (s *session) serveRequests() {
	for {
		select {
		case req := <-s.t.reqs:
			req.fn(s.st)
			close(req.done)
		default:
			return
		}
	}
}

// reap handles every stop there is to collect, and reports how many.
func (s *session) reap() int {
	n := 0
	for {
		var ws unix.WaitStatus
		r, _, e := unix.RawSyscall6(unix.SYS_WAIT4, ^uintptr(0), uintptr(unsafe.Pointer(&ws)),
			unix.WALL|unix.WNOTHREAD|unix.WNOHANG, 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 || r == 0 {
			return n
		}
		n++
		s.handle(int(r), ws)
	}
}

// handle takes one stop or exit of task tid. It reports whether tid was
// the waker.
func (s *session) handle(tid int, ws unix.WaitStatus) (waker bool) {
	if w := s.waker.Load(); w != nil && tid == w.pid {
		if ws.Stopped() {
			w.stopped(ws)
			return true
		}
		// Killed by someone else: a new one, or the loop could sleep for
		// good.
		w.p.Release()
		s.waker.Store(nil)
		s.log.Warn("waker ended; starting another", zap.String("how", describe(ws)))
		if nw, err := startWaker(); err == nil {
			s.waker.Store(nw)
		} else {
			s.log.Error("no waker: ticks, the end of ctx and requests wait for the next stop", zap.Error(err))
		}
		return true
	}
	s.stats.Stops++
	if ws.Exited() || ws.Signaled() {
		s.gone(tid, ws)
		return false
	}
	if !ws.Stopped() {
		return false
	}
	sig := ws.StopSignal()
	event := int(uint32(ws)>>16) & 0xff // PTRACE_EVENT_*, whatever the signal (TrapCause wants SIGTRAP)
	if sig == syscall.SIGTRAP && event == unix.PTRACE_EVENT_EXEC {
		s.execStop(tid)
		return false
	}
	tk := s.tasks[tid]
	if tk == nil {
		if s.st.children[tid] && !s.st.held[tid] {
			return false // a released child: not ours to handle
		}
		s.early[tid] = ws // a new task, before its parent's event
		return false
	}
	// Any stop satisfies a pending PTRACE_INTERRUPT (ptrace(2); the
	// kernel's ptrace_stop clears JOBCTL_TRAP_STOP), not only the
	// PTRACE_EVENT_STOP it asks for.
	interrupted := tk.interrupting && !s.draining
	tk.interrupting = false
	switch {
	case sig == syscall.SIGTRAP|0x80:
		s.syscallStop(tk, interrupted)
	case event == 0:
		s.signalStop(tk, int(sig))
	case event == unix.PTRACE_EVENT_STOP:
		s.eventStop(tk, sig, interrupted)
	case event == unix.PTRACE_EVENT_CLONE || event == unix.PTRACE_EVENT_FORK || event == unix.PTRACE_EVENT_VFORK:
		s.forkStop(tk, event)
	case event == unix.PTRACE_EVENT_EXIT:
		if !tk.exiting {
			tk.exiting = true
			tk.proc.mem.Reset()
			s.tr.Exit(int32(tk.proc.pid), int32(tk.tid)) // pending work runs while memory is there (R16)
		}
		s.resume(tk, 0)
	default:
		s.resume(tk, 0)
	}
	return false
}

// resume lets tk run on, passing sig, or holds it while draining.
func (s *session) resume(tk *tracee, sig int) {
	if s.draining && !s.killing {
		tk.held, tk.sig = true, sig
		return
	}
	tk.held = false
	var err error
	if tk.listening {
		err = ptrace(unix.PTRACE_LISTEN, tk.tid, 0, 0)
	} else {
		err = ptrace(s.resumeOp, tk.tid, 0, uintptr(sig))
	}
	if err != nil && !errors.Is(err, unix.ESRCH) {
		s.log.Warn("resume", zap.Int("tid", tk.tid), zap.Error(err))
	}
	// ESRCH: killed while stopped; its exit is reported next.
}

// getRegs reads tk's registers into s.regs; false if tk is gone.
func (s *session) getRegs(tk *tracee) bool {
	if err := getRegs(tk.tid, &s.regs); err != nil {
		if !errors.Is(err, unix.ESRCH) {
			s.log.Warn("registers", zap.Int("tid", tk.tid), zap.Error(err))
		}
		return false
	}
	tk.compat = x86_64.ModeFromCS(s.regs.Cs) == x86_64.ModeCompat
	return true
}

// prepare fills s.sample's common part for tk from s.regs.
func (s *session) prepare(tk *tracee, mode entry.CPUMode, b entry.Boundary) *entry.Sample {
	smp := &s.sample
	*smp = entry.Sample{PID: int32(tk.proc.pid), TID: int32(tk.tid), CPU: -1, Mode: mode, Kind: entry.KindUser, Boundary: b,
		HaveRegs: true, Regs: x86_64.Regs{IP: s.regs.Rip, SP: s.regs.Rsp, BP: s.regs.Rbp}, Mem: tk.proc.mem}
	if tk.compat {
		smp.Kind = entry.KindCompat
		s.stats.Compat++
	}
	// The CPU is not known without reading /proc per event: -1, as for a
	// recording without it. Tracepoint events have period 1, as the perf
	// source opens them.
	smp.Event.TimeNS, smp.Event.CPU, smp.Event.Period = s.now(), -1, 1
	// The task is stopped: what the unwinder reads now is consistent, but
	// it may have run (or another thread of its process) since the cached
	// window was read.
	tk.proc.mem.Reset()
	return smp
}

// syscallName names nr as the perf source does: by the i386 table for a
// 32-bit task.
func syscallName(nr int64, compat bool) string {
	k := entry.KindUser
	if compat {
		k = entry.KindCompat
	}
	if name := entry.SyscallNameOf(k, nr); name != "" {
		return name
	}
	return "syscall_" + strconv.FormatInt(nr, 10)
}

const enosys = -int64(unix.ENOSYS)

// syscallStop: an entry (opens tk's entry) or an exit (closes it; the
// deferred unwind runs here, the task still stopped). interrupted: the
// stop satisfied a sampling interrupt, which becomes a kernel-mode sample
// in the entry.
func (s *session) syscallStop(tk *tracee, interrupted bool) {
	if !s.getRegs(tk) {
		return
	}
	r := &s.regs
	nr := int64(r.Orig_rax)
	// The kernel sets rax to -ENOSYS before the entry stop; an exit whose
	// entry was not seen (attached inside a system call) has its result.
	if !tk.inSyscall && int64(r.Rax) == enosys {
		tk.inSyscall = true
		s.stats.Syscalls++
		smp := s.prepare(tk, entry.ModeKernel, entry.BoundaryEnter)
		args := [6]uint64{r.Rdi, r.Rsi, r.Rdx, r.R10, r.R8, r.R9}
		if tk.compat {
			args = [6]uint64{uint64(uint32(r.Rbx)), uint64(uint32(r.Rcx)), uint64(uint32(r.Rdx)),
				uint64(uint32(r.Rsi)), uint64(uint32(r.Rdi)), uint64(uint32(r.Rbp))}
		}
		fields := s.fields(7)
		fields[0] = pluginhost.Field{Name: "id", Kind: pluginhost.FieldInt, Int: nr}
		for i, a := range args {
			fields[i+1] = pluginhost.Field{Name: argNames[i], Kind: pluginhost.FieldUint, Uint: a}
		}
		smp.Event.Kind, smp.Event.Name, smp.Event.Fields = pluginhost.KindSyscallEnter, syscallName(nr, tk.compat), fields
		s.tr.Sample(smp)
		if interrupted {
			s.kernelSample(tk)
		}
		s.resume(tk, 0)
		return
	}
	if interrupted {
		s.kernelSample(tk)
	}
	tk.inSyscall = false
	s.stats.SyscallExits++
	ret := int64(r.Rax)
	if ret < 0 && ret > -4096 {
		// failed: nothing mapped, no name set
	} else if s.mapsChanged(tk, nr) {
		s.refreshMaps(tk.proc)
	} else if (!tk.compat && nr == sysPrctl || tk.compat && nr == sys32Prctl) && (tk.compat && uint32(r.Rbx) == prSetName || !tk.compat && r.Rdi == prSetName) {
		s.comm(tk, false)
	}
	smp := s.prepare(tk, entry.ModeKernel, entry.BoundaryExit)
	smp.Event.Kind, smp.Event.Name = pluginhost.KindSyscallExit, syscallName(nr, tk.compat)
	fields := s.fields(2)
	fields[0] = pluginhost.Field{Name: "id", Kind: pluginhost.FieldInt, Int: nr}
	fields[1] = pluginhost.Field{Name: "ret", Kind: pluginhost.FieldInt, Int: ret}
	smp.Event.Fields = fields
	s.tr.Sample(smp)
	s.resume(tk, 0)
}

var argNames = [6]string{"args[0]", "args[1]", "args[2]", "args[3]", "args[4]", "args[5]"}

// mapsChanged says whether the system call nr that tk just made (with
// success) may have mapped code: mmap, mprotect, pkey_mprotect with
// PROT_EXEC (mmap of a file, not anonymous memory), mremap.
func (s *session) mapsChanged(tk *tracee, nr int64) bool {
	r := &s.regs
	if tk.compat {
		switch nr {
		case sys32OldMmap, sys32Mmap2, sys32Mprotect, sys32Mremap, sys32PkeyMprotect:
			return true
		}
		return false
	}
	switch nr {
	case sysMmap:
		return r.Rdx&unix.PROT_EXEC != 0 && r.R10&unix.MAP_ANONYMOUS == 0
	case sysMprotect, sysPkeyMprotect:
		return r.Rdx&unix.PROT_EXEC != 0
	case sysMremap:
		return true
	}
	return false
}

// signalStop: a signal is about to be delivered; it is passed on.
func (s *session) signalStop(tk *tracee, sig int) {
	if sig == int(syscall.SIGCONT) && tk.dropCont {
		tk.dropCont = false
		s.resume(tk, 0)
		return
	}
	s.stats.Signals++
	s.resume(tk, sig)
}

func isStopSignal(sig syscall.Signal) bool {
	switch sig {
	case syscall.SIGSTOP, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU:
		return true
	}
	return false
}

// eventStop: PTRACE_EVENT_STOP, which is the attach stop of a new tracee,
// a group-stop (a stop signal), our interrupt (a sample), or the trap after
// SIGCONT ended a group-stop.
func (s *session) eventStop(tk *tracee, sig syscall.Signal, interrupted bool) {
	fresh := tk.fresh
	tk.fresh = false
	if isStopSignal(sig) {
		// A group-stop: keep it, and hear of SIGCONT (PTRACE_LISTEN).
		if !tk.dropCont { // not the stop adopt made
			s.stats.GroupStops++
		}
		tk.listening = true
		s.resume(tk, 0)
		return
	}
	tk.listening = false
	// Our interrupt is taken on the way back to user space: the thread is
	// in user mode, no entry of its own is open.
	if interrupted && !fresh && !tk.inSyscall {
		s.userSample(tk)
	}
	s.resume(tk, 0)
}

// userSample makes a user-mode sample of tk, stopped by our interrupt: an
// entry of its own, unwound at once.
func (s *session) userSample(tk *tracee) {
	if !s.getRegs(tk) {
		return
	}
	s.stats.Samples++
	smp := s.prepare(tk, entry.ModeUser, entry.BoundaryNone)
	smp.Event.Kind, smp.Event.Name, smp.Event.Period = pluginhost.KindSample, "cpu-clock", s.period
	s.tr.Sample(smp)
}

// tick interrupts every thread running in user space (a sample each), and
// adds a kernel-mode sample to the open entry of every thread running
// inside a system call.
func (s *session) tick() {
	s.stats.Ticks++
	s.reap() // so that a thread's state is its latest
	if s.opts.NoSyscalls {
		now := time.Now()
		for _, p := range s.procs {
			if now.Sub(p.read) >= MapsEvery {
				s.refreshMaps(p)
			}
		}
	}
	for _, tk := range s.tasks {
		if tk.fresh || tk.listening || tk.interrupting || tk.exiting || tk.held {
			continue
		}
		if tk.inSyscall || s.opts.NoSyscalls {
			// Interrupting a thread inside a system call would end a
			// blocking one early (it is restarted): look instead.
			st, err := procfs.ReadStat(tk.tid)
			if err != nil || st.State != 'R' {
				continue
			}
			if tk.inSyscall {
				s.kernelSample(tk)
				continue
			}
		}
		if err := ptrace(unix.PTRACE_INTERRUPT, tk.tid, 0, 0); err == nil {
			tk.interrupting = true
		}
	}
}

// kernelSample adds a kernel-mode sample to tk's open entry (tk is inside
// a system call): no registers, the entry has them.
func (s *session) kernelSample(tk *tracee) {
	s.stats.KernelSamples++
	smp := &s.sample
	*smp = entry.Sample{PID: int32(tk.proc.pid), TID: int32(tk.tid), CPU: -1, Mode: entry.ModeKernel}
	if tk.compat {
		smp.Kind = entry.KindCompat
		s.stats.Compat++
	}
	smp.Event = pluginhost.Event{Kind: pluginhost.KindSample, Name: "cpu-clock", TimeNS: s.now(), CPU: -1, Period: s.period}
	s.tr.Sample(smp)
}

// forkStop: tk made a thread or a process.
func (s *session) forkStop(tk *tracee, event int) {
	msg, err := unix.PtraceGetEventMsg(tk.tid)
	if err != nil {
		s.log.Warn("clone event message", zap.Int("tid", tk.tid), zap.Error(err))
		s.resume(tk, 0)
		return
	}
	child := int(msg)
	pid := child
	if event == unix.PTRACE_EVENT_CLONE {
		pid = tk.proc.pid // a thread, unless clone was asked for a process
		if st, err := procfs.ReadStatus(child); err == nil {
			pid = st.Tgid
		}
	}
	nt := s.tasks[child]
	if nt == nil {
		p := tk.proc
		if pid != tk.proc.pid {
			if p = s.procs[pid]; p == nil {
				if p, err = s.newProc(pid, tk.proc); err != nil {
					s.log.Warn("new process", zap.Int("pid", pid), zap.Error(err))
					s.resume(tk, 0)
					return
				}
			}
		}
		nt = s.addTask(child, p)
	}
	s.tr.Fork(int32(pid), int32(tk.proc.pid), int32(child), int32(tk.tid))
	if ws, ok := s.early[child]; ok {
		delete(s.early, child)
		s.handle(child, ws)
	}
	s.resume(tk, 0)
}

// execStop: thread tid (the leader's tid, whatever thread called execve)
// runs a new program.
func (s *session) execStop(tid int) {
	msg, err := unix.PtraceGetEventMsg(tid)
	former := int(msg)
	if err != nil {
		former = tid
	}
	tk := s.tasks[former]
	if tk == nil {
		tk = s.tasks[tid]
	}
	if tk == nil {
		s.log.Warn("exec of an unknown task", zap.Int("tid", tid))
		ptrace(s.resumeOp, tid, 0, 0)
		return
	}
	pid := tk.proc.pid
	if former != tid {
		// Another thread called execve: the kernel gave it the leader's
		// tid, and the old leader is gone without an exit report.
		if old := s.tasks[tid]; old != nil {
			if !old.exiting {
				s.tr.Exit(int32(pid), int32(tid))
			}
			delete(s.tasks, tid)
			old.proc.threads--
		}
		delete(s.tasks, former)
		s.tr.Exit(int32(pid), int32(former))
		tk.tid = tid
		s.tasks[tid] = tk
	}
	s.stats.Execs++
	s.getRegs(tk) // the new program's mode, from its code segment
	tk.proc.mem.Reset()
	s.comm(tk, true)
	clear(tk.proc.maps)
	s.refreshMaps(tk.proc)
	s.resume(tk, 0)
}

// gone: task tid ended and is reaped.
func (s *session) gone(tid int, ws unix.WaitStatus) {
	delete(s.early, tid)
	tk := s.tasks[tid]
	if tk == nil {
		if s.st.children[tid] {
			delete(s.st.children, tid)
			s.st.reaped[tid] = ws // a released child: for Wait
		}
		return
	}
	if !tk.exiting {
		s.tr.Exit(int32(tk.proc.pid), int32(tid))
	}
	delete(s.tasks, tid)
	if tk.proc.threads--; tk.proc.threads <= 0 && s.procs[tk.proc.pid] == tk.proc {
		delete(s.procs, tk.proc.pid)
	}
	if tid == s.root {
		s.stats.Exited, s.stats.Status = true, syscall.WaitStatus(ws)
		delete(s.st.children, tid)
	}
}

// comm tells the tracker tk's name.
func (s *session) comm(tk *tracee, exec bool) {
	c, err := procfs.Comm(tk.proc.pid, tk.tid)
	if err != nil {
		s.log.Debug("no comm", zap.Int("tid", tk.tid), zap.Error(err))
		return
	}
	s.tr.SetComm(int32(tk.proc.pid), int32(tk.tid), c, exec)
}

// refreshMaps reads p's mappings and gives the tracker the executable file
// mappings (and the vDSO) it does not have yet.
func (s *session) refreshMaps(p *tproc) {
	maps, err := procfs.ReadMaps(p.pid)
	if err != nil {
		s.log.Debug("maps", zap.Int("pid", p.pid), zap.Error(err))
		return
	}
	s.stats.MapReads++
	p.read = time.Now()
	next := make(map[mapKey]struct{}, len(p.maps)+4)
	for _, m := range maps {
		if !m.Perms.Exec || !m.File() && m.Path != procfs.VDSOPath {
			continue
		}
		k := mapKey{m.Start, m.End, m.Offset, m.Major, m.Minor, m.Inode, m.Path}
		next[k] = struct{}{}
		if _, ok := p.maps[k]; ok {
			continue
		}
		s.tr.Mmap(int32(p.pid), entry.Mapping{Start: m.Start, Limit: m.End, Offset: m.Offset, Path: m.Path,
			Major: m.Major, Minor: m.Minor, Inode: m.Inode, Exec: true})
	}
	p.maps = next
}

// finish stops every tracee, ends the open entries (unwinding from live
// memory while everything is stopped), and detaches every thread, or, with
// kill, kills the traced processes and reaps them. It returns why (ctx's
// error, ErrClosed, nil), joined with what went wrong.
func (s *session) finish(why error, kill bool) error {
	s.draining = true
	for _, tk := range s.tasks {
		if !tk.held {
			if err := ptrace(unix.PTRACE_INTERRUPT, tk.tid, 0, 0); err == nil {
				tk.interrupting = true
			}
		}
	}
	deadline := time.Now().Add(s.opts.DetachTimeout)
	if !s.waitAll(deadline, func() bool {
		for _, tk := range s.tasks {
			if !tk.held {
				return false
			}
		}
		return len(s.early) == 0
	}) {
		for _, tk := range s.tasks {
			if !tk.held {
				s.st.stuck = append(s.st.stuck, tk.tid)
				s.log.Warn("thread did not stop: left attached until the tracer thread retires", zap.Int("tid", tk.tid))
			}
		}
	}
	s.tr.Flush()
	if kill && len(s.tasks) > 0 {
		s.killing = true
		s.stats.Killed = true
		for pid := range s.procs {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		for _, tk := range s.tasks {
			if tk.held {
				s.resume(tk, 0)
			}
		}
		if !s.waitAll(time.Now().Add(s.opts.DetachTimeout), func() bool { return len(s.tasks) == 0 }) {
			return errors.Join(why, fmt.Errorf("ptrace: %d threads not gone after SIGKILL", len(s.tasks)))
		}
		return why
	}
	var errs []error
	for tid, tk := range s.tasks {
		if !tk.held {
			continue
		}
		err := ptrace(unix.PTRACE_DETACH, tid, 0, uintptr(tk.sig))
		switch {
		case err == nil:
			s.stats.Detached++
		case errors.Is(err, unix.ESRCH): // killed meanwhile
		default:
			errs = append(errs, fmt.Errorf("ptrace: detach task %d: %w", tid, err))
		}
		delete(s.tasks, tid)
	}
	for tid := range s.early {
		ptrace(unix.PTRACE_DETACH, tid, 0, 0)
	}
	// A process Start made, left running: Wait reaps it.
	return errors.Join(append([]error{why}, errs...)...)
}

// waitAll handles stops until done reports true or the deadline passes.
func (s *session) waitAll(deadline time.Time, done func() bool) bool {
	delay := 10 * time.Microsecond
	for {
		if s.reap() > 0 {
			delay = 10 * time.Microsecond
		}
		if done() {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(delay)
		delay = min(2*delay, 5*time.Millisecond)
	}
}
