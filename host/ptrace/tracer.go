package ptrace

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/procfs"
)

// Errors. Each is returned wrapped with the pid or tid it is about.
var (
	// ErrNoProcess: no task has that id (it never existed, or it exited
	// and was reaped).
	ErrNoProcess = errors.New("ptrace: no such process")
	// ErrExited: the process has exited (it is a zombie, or every thread
	// exited while it was being stopped).
	ErrExited = errors.New("ptrace: process exited")
	// ErrKernelThread: the task is a kernel thread, which has no user
	// stack.
	ErrKernelThread = errors.New("ptrace: kernel thread")
	// ErrCompat: the task runs 32-bit (compat) code, which the x86-64
	// unwinder does not walk.
	ErrCompat = errors.New("ptrace: 32-bit (compat) task")
	// ErrTraced: another tracer (a debugger, strace) already traces the
	// task.
	ErrTraced = errors.New("ptrace: already traced by another process")
	// ErrSelf: the process is the caller's own; it cannot stop itself.
	ErrSelf = errors.New("ptrace: cannot stop the calling process")
	// ErrClosed: the Tracer was closed.
	ErrClosed = errors.New("ptrace: tracer closed")
	// ErrNotStarted: the process was not started by this Tracer with
	// [Tracer.Start] (or it was already reaped, or is still held where the
	// call needs it released).
	ErrNotStarted = errors.New("ptrace: not a process started by this tracer")
	// ErrBusy: a [Tracer.Trace] is already running on this Tracer.
	ErrBusy = errors.New("ptrace: a trace is already running on this tracer")
)

// Thread is one stopped thread of a [Process].
type Thread struct {
	TID  int
	Regs x86_64.Regs
	// Mode is what the thread's code segment selector says it runs:
	// [x86_64.ModeCompat] for 32-bit code, whose Regs are the low halves of
	// the 64-bit registers; [x86_64.Mode64] for 64-bit code.
	Mode x86_64.Mode

	sig int // signal the thread was stopped on, re-injected at detach
}

// Process is a process whose threads a [Tracer] has stopped. Its threads
// stay stopped until [Process.Detach] (or [Tracer.Close]).
type Process struct {
	PID     int      // the thread group id
	Threads []Thread // stopped threads, by tid
	Exited  []int    // threads that exited while the process was being stopped

	t *Tracer
}

// Tracer serves ptrace requests from one locked OS thread. The zero value is
// not usable: call [New].
type Tracer struct {
	log  *zap.Logger
	reqs chan request
	quit chan struct{}
	wg   sync.WaitGroup // the serving goroutine
	// kick, while a Trace runs, wakes its loop out of wait4 so that it
	// takes requests.
	kick atomic.Pointer[func()]

	closeOnce sync.Once
}

type request struct {
	fn   func(*state)
	done chan struct{}
}

// state is what the serving goroutine owns: no other goroutine touches it.
type state struct {
	attached map[*Process]bool
	stuck    []int // tids seized but never stopped, released by retiring the thread

	// Processes [Tracer.Start] made: children of the tracer thread.
	held     map[int]bool            // stopped after their execve, not yet released or traced
	children map[int]bool            // started and not yet reaped
	reaped   map[int]unix.WaitStatus // children a trace loop reaped, for Wait
	tracing  bool                    // a Trace runs (inside a request)
}

func newState() *state {
	return &state{attached: make(map[*Process]bool), held: make(map[int]bool),
		children: make(map[int]bool), reaped: make(map[int]unix.WaitStatus)}
}

// New starts a Tracer, logging to log (nil: no logging). Close it to stop
// its thread.
func New(log *zap.Logger) *Tracer {
	if log == nil {
		log = zap.NewNop()
	}
	t := &Tracer{log: log, reqs: make(chan request), quit: make(chan struct{})}
	t.wg.Add(1)
	go t.serve(newState())
	return t
}

// serve runs requests on a locked OS thread. It never unlocks it: when serve
// returns, the thread exits, and the kernel detaches every task the thread
// still traced. serve retires its thread that way, starting a successor,
// when tasks that never stopped are attached to it and nothing else is.
func (t *Tracer) serve(st *state) {
	defer t.wg.Done()
	runtime.LockOSThread()
	for {
		select {
		case req := <-t.reqs:
			req.fn(st)
			close(req.done)
			if len(st.stuck) > 0 && len(st.attached) == 0 && len(st.held) == 0 {
				t.log.Info("retiring tracer thread to release tasks that never stopped", zap.Ints("tids", st.stuck))
				st.stuck = nil
				t.wg.Add(1)
				go t.serve(st)
				return
			}
		case <-t.quit:
			for p := range st.attached {
				if err := st.detach(t.log, p); err != nil {
					t.log.Warn("detach at close", zap.Int("pid", p.PID), zap.Error(err))
				}
			}
			st.killHeld(t.log)
			return
		}
	}
}

// do runs fn on the tracer thread and waits for it. Once fn has started it
// runs to its end; fn itself watches ctx.
func (t *Tracer) do(ctx context.Context, fn func(*state)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	req := request{fn: fn, done: make(chan struct{})}
	for sent := false; !sent; {
		var retry <-chan time.Time
		if k := t.kick.Load(); k != nil {
			// A Trace holds the thread: wake its loop, and again if it
			// looked before the request was there.
			(*k)()
			retry = time.After(5 * time.Millisecond)
		}
		select {
		case t.reqs <- req:
			sent = true
		case <-ctx.Done():
			return ctx.Err()
		case <-t.quit:
			return ErrClosed
		case <-retry:
		}
	}
	<-req.done
	return nil
}

// Close detaches every process still stopped, kills the processes
// [Tracer.Start] made that are still held (never released nor traced), and
// ends the tracer thread. It may be called more than once.
func (t *Tracer) Close() error {
	t.closeOnce.Do(func() { close(t.quit) })
	t.wg.Wait()
	return nil
}

// Stop stops every thread of process pid and reads their registers. A pid
// that is a thread id stands for its whole process (Process.PID is then the
// thread group id). ctx bounds the wait for the threads to stop.
func (t *Tracer) Stop(ctx context.Context, pid int) (*Process, error) {
	tgid, err := check(pid)
	if err != nil {
		return nil, err
	}
	if tgid != pid {
		t.log.Info("thread id stands for its process", zap.Int("tid", pid), zap.Int("pid", tgid))
	}
	var p *Process
	if derr := t.do(ctx, func(st *state) {
		p, err = st.stop(ctx, t.log, tgid)
		if err == nil {
			p.t = t
			st.attached[p] = true
		}
	}); derr != nil {
		if errors.Is(derr, ErrClosed) {
			return nil, fmt.Errorf("%w: stop pid %d", derr, pid)
		}
		return nil, fmt.Errorf("ptrace: stop pid %d: %w", pid, derr)
	}
	return p, err
}

// check returns the thread group of task pid, or why it cannot be stopped.
func check(pid int) (int, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("%w: pid %d", ErrNoProcess, pid)
	}
	stat, err := procfs.ReadStat(pid)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%w: pid %d", ErrNoProcess, pid)
	}
	if err != nil {
		return 0, fmt.Errorf("ptrace: %w", err)
	}
	if stat.KernelThread() {
		return 0, fmt.Errorf("%w: pid %d (%s)", ErrKernelThread, pid, stat.Comm)
	}
	status, err := procfs.ReadStatus(pid)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%w: pid %d", ErrNoProcess, pid)
	}
	if err != nil {
		return 0, fmt.Errorf("ptrace: %w", err)
	}
	if status.Tgid == os.Getpid() {
		return 0, fmt.Errorf("%w: pid %d", ErrSelf, pid)
	}
	if stat.Dead() && status.Tgid == pid {
		// A zombie leader whose other threads still run (it called
		// pthread_exit) is a live process; one without is not.
		if tids, err := procfs.Threads(pid); err != nil || len(tids) <= 1 {
			return 0, fmt.Errorf("%w: pid %d (%s) is a zombie", ErrExited, pid, stat.Comm)
		}
	}
	return status.Tgid, nil
}

// waiting is a seized thread not yet seen stopped.
type waiting struct {
	tid  int
	done bool
}

// stop seizes and interrupts every thread of pid until the thread list is
// stable, then reads their registers. On error it detaches what it seized.
func (st *state) stop(ctx context.Context, log *zap.Logger, pid int) (*Process, error) {
	p := &Process{PID: pid}
	seen := make(map[int]bool) // seized or exited
	var stopped []Thread
	fail := func(err error) (*Process, error) {
		p.Threads = stopped
		if derr := st.detach(log, p); derr != nil {
			log.Warn("detach after failed stop", zap.Int("pid", pid), zap.Error(derr))
		}
		return nil, err
	}
	for round := 0; ; round++ {
		if err := ctx.Err(); err != nil {
			return fail(fmt.Errorf("ptrace: stop pid %d: %w", pid, err))
		}
		tids, err := procfs.Threads(pid)
		if errors.Is(err, fs.ErrNotExist) {
			if round == 0 {
				return nil, fmt.Errorf("%w: pid %d", ErrNoProcess, pid)
			}
			return fail(fmt.Errorf("%w: pid %d", ErrExited, pid))
		}
		if err != nil {
			return fail(fmt.Errorf("ptrace: %w", err))
		}
		var batch []waiting
		for _, tid := range tids {
			if seen[tid] {
				continue
			}
			seen[tid] = true
			gone, err := seize(pid, tid)
			if err != nil {
				// Those seized before it must stop before they can be
				// released.
				ths, exited, werr := waitStopped(ctx, batch)
				stopped = append(stopped, ths...)
				p.Exited = append(p.Exited, exited...)
				if werr != nil {
					st.stick(batch)
				}
				return fail(err)
			}
			if gone {
				p.Exited = append(p.Exited, tid)
				continue
			}
			batch = append(batch, waiting{tid: tid})
		}
		if len(batch) == 0 {
			break // every listed thread is stopped or gone: none can start another
		}
		if round > 0 {
			log.Debug("threads appeared while stopping", zap.Int("pid", pid), zap.Int("round", round), zap.Int("new", len(batch)))
		}
		ths, exited, err := waitStopped(ctx, batch)
		stopped = append(stopped, ths...)
		p.Exited = append(p.Exited, exited...)
		if err != nil {
			st.stick(batch)
			return fail(fmt.Errorf("ptrace: stop pid %d: %w", pid, err))
		}
	}
	// Registers, now that nothing runs.
	for i := 0; i < len(stopped); i++ {
		th := &stopped[i]
		var regs unix.PtraceRegs
		if err := getRegs(th.TID, &regs); err != nil {
			if errors.Is(err, unix.ESRCH) { // killed (SIGKILL) while stopped
				reap(th.TID)
				p.Exited = append(p.Exited, th.TID)
				stopped = slices.Delete(stopped, i, i+1)
				i--
				continue
			}
			return fail(fmt.Errorf("ptrace: registers of task %d: %w", th.TID, err))
		}
		th.Regs = x86_64.Regs{IP: regs.Rip, SP: regs.Rsp, BP: regs.Rbp}
		th.Mode = x86_64.ModeFromCS(regs.Cs)
		if th.Mode == x86_64.ModeUnknown {
			log.Warn("unexpected code segment selector", zap.Int("tid", th.TID), zap.Uint64("cs", regs.Cs))
		}
	}
	slices.SortFunc(stopped, func(a, b Thread) int { return a.TID - b.TID })
	slices.Sort(p.Exited)
	p.Threads = stopped
	if len(stopped) == 0 {
		return fail(fmt.Errorf("%w: pid %d", ErrExited, pid))
	}
	return p, nil
}

// stick records the threads of batch that never stopped: PTRACE_DETACH
// cannot release a running tracee, retiring the tracer thread will.
func (st *state) stick(batch []waiting) {
	for _, w := range batch {
		if !w.done {
			st.stuck = append(st.stuck, w.tid)
		}
	}
}

// seize attaches to thread tid of pid and asks it to stop. gone reports a
// thread that no longer exists (or is a zombie) and is not attached.
func seize(pid, tid int) (gone bool, err error) {
	err = unix.PtraceSeize(tid)
	switch {
	case err == nil:
	case errors.Is(err, unix.ESRCH):
		return true, nil
	case errors.Is(err, unix.EPERM):
		// EPERM also means "already traced" and "zombie" (a leader that
		// called pthread_exit): tell them from a lack of privilege.
		if s, serr := procfs.ReadStat(tid); errors.Is(serr, fs.ErrNotExist) || serr == nil && s.Dead() {
			return true, nil
		}
		if s, serr := procfs.ReadStatus(tid); serr == nil && s.TracerPid != 0 {
			return false, fmt.Errorf("%w: task %d of pid %d is traced by task %d", ErrTraced, tid, pid, s.TracerPid)
		}
		return false, fmt.Errorf("ptrace: seize task %d of pid %d: %w: stopping another user's process needs CAP_SYS_PTRACE (kernel.yama.ptrace_scope may also forbid it)", tid, pid, err)
	default:
		return false, fmt.Errorf("ptrace: seize task %d of pid %d: %w", tid, pid, err)
	}
	if err := unix.PtraceInterrupt(tid); err != nil && !errors.Is(err, unix.ESRCH) {
		// ESRCH: it is exiting; the wait will see it go.
		return false, fmt.Errorf("ptrace: interrupt task %d of pid %d: %w", tid, pid, err)
	}
	return false, nil
}

// waitStopped polls (wait4 WNOHANG) until every thread of batch has stopped
// or exited, or ctx ends. It marks the threads it saw stop or exit done.
func waitStopped(ctx context.Context, batch []waiting) (stopped []Thread, exited []int, err error) {
	left := len(batch)
	delay := 20 * time.Microsecond
	for {
		for i := range batch {
			w := &batch[i]
			if w.done {
				continue
			}
			var ws unix.WaitStatus
			wpid, err := unix.Wait4(w.tid, &ws, unix.WALL|unix.WNOHANG, nil)
			switch {
			case errors.Is(err, unix.EINTR):
				continue
			case errors.Is(err, unix.ECHILD): // no longer ours: it is gone
				w.done = true
				exited = append(exited, w.tid)
			case err != nil:
				return stopped, exited, fmt.Errorf("wait for task %d: %w", w.tid, err)
			case wpid == 0: // still running
				continue
			case ws.Stopped():
				w.done = true
				th := Thread{TID: w.tid}
				// PTRACE_EVENT_STOP in bits 16-23: the interrupt (SIGTRAP)
				// or a group stop; otherwise a signal-delivery stop whose
				// signal detach must pass on.
				if (uint32(ws)>>16)&0xff != unix.PTRACE_EVENT_STOP {
					th.sig = int(ws.StopSignal())
				}
				stopped = append(stopped, th)
			case ws.Exited() || ws.Signaled():
				w.done = true
				exited = append(exited, w.tid)
			default:
				continue
			}
			left--
		}
		if left == 0 {
			return stopped, exited, nil
		}
		select {
		case <-ctx.Done():
			return stopped, exited, fmt.Errorf("%d threads not stopped: %w", left, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Millisecond)
	}
}

// getRegs reads the user registers of stopped task tid with PTRACE_GETREGS,
// which (unlike PTRACE_GETREGSET) always fills the 64-bit layout, cs
// included, for a 32-bit tracee too.
func getRegs(tid int, regs *unix.PtraceRegs) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETREGS, uintptr(tid), 0, uintptr(unsafe.Pointer(regs)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// reap collects the exit of a traced thread that died while stopped, so
// that it does not linger as a zombie attached to the tracer.
func reap(tid int) {
	var ws unix.WaitStatus
	unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
}

// detach lets every thread of p run on.
func (st *state) detach(log *zap.Logger, p *Process) error {
	delete(st.attached, p)
	var errs []error
	for _, th := range p.Threads {
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(th.TID), 0, uintptr(th.sig), 0, 0)
		switch {
		case e == 0:
		case e == unix.ESRCH: // killed while stopped
			reap(th.TID)
			log.Debug("thread gone before detach", zap.Int("pid", p.PID), zap.Int("tid", th.TID))
		default:
			errs = append(errs, fmt.Errorf("ptrace: detach task %d of pid %d: %w", th.TID, p.PID, e))
		}
	}
	return errors.Join(errs...)
}

// Detach lets every stopped thread of p run on, passing on any signal a
// thread was stopped on. A second call, or a call after [Tracer.Close]
// (which detached p already), does nothing.
func (p *Process) Detach() error {
	if p.t == nil {
		return nil
	}
	var err error
	derr := p.t.do(context.Background(), func(st *state) {
		if st.attached[p] {
			err = st.detach(p.t.log, p)
		}
	})
	if errors.Is(derr, ErrClosed) {
		return nil
	}
	return errors.Join(derr, err)
}
