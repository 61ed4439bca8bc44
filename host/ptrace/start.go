package ptrace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// StartOptions configure [Tracer.Start]. The zero value means the defaults.
type StartOptions struct {
	// Dir is the program's working directory; "" means the caller's.
	Dir string
	// Files are the program's open files, from fd 0 on (nil entries are
	// closed); nil means the caller's standard input, output and error.
	Files []*os.File
	// Sys holds further attributes (credentials, process group…); it is
	// copied and its Ptrace field set.
	Sys *syscall.SysProcAttr
}

// Start starts the program path with argv (nil means {path}) and env (nil
// means the caller's environment) as a child of the tracer thread, traced
// from its execve (PTRACE_TRACEME), and returns once the program is stopped
// right after the execve, before its first instruction. It stays stopped
// until [Tracer.Release] lets it run untraced (for a source that sets up its
// own instrumentation first) or [Tracer.Trace] traces it from there. A held
// program is killed by [Tracer.Close].
//
// path is a file path, as for [os.StartProcess]: no $PATH search. An error
// means nothing is left running.
func (t *Tracer) Start(ctx context.Context, path string, argv, env []string, opts StartOptions) (int, error) {
	if path == "" {
		return 0, errors.New("ptrace: start: empty path")
	}
	if len(argv) == 0 {
		argv = []string{path}
	}
	attr := &os.ProcAttr{Dir: opts.Dir, Env: env, Files: opts.Files}
	if attr.Files == nil {
		attr.Files = []*os.File{os.Stdin, os.Stdout, os.Stderr}
	}
	var sys syscall.SysProcAttr
	if opts.Sys != nil {
		sys = *opts.Sys
	}
	// The kernel makes the forking thread the tracer, and only it may make
	// ptrace calls: fork on the tracer thread.
	sys.Ptrace = true
	attr.Sys = &sys
	var pid int
	var err error
	derr := t.do(ctx, func(st *state) {
		pid, err = st.start(ctx, t.log, path, argv, attr)
	})
	if derr != nil {
		return 0, fmt.Errorf("ptrace: start %s: %w", path, derr)
	}
	return pid, err
}

// start runs on the tracer thread.
func (st *state) start(ctx context.Context, log *zap.Logger, path string, argv []string, attr *os.ProcAttr) (int, error) {
	p, err := os.StartProcess(path, argv, attr)
	if err != nil {
		return 0, fmt.Errorf("ptrace: start: %w", err)
	}
	pid := p.Pid
	// The child is reaped with wait4 on this thread, not through p (whose
	// pidfd would leak otherwise).
	p.Release()
	ws, err := waitPID(ctx, pid)
	if err != nil {
		syscall.Kill(pid, syscall.SIGKILL)
		waitPID(context.Background(), pid)
		return 0, fmt.Errorf("ptrace: start %s: wait for its exec: %w", path, err)
	}
	switch {
	case ws.Stopped() && ws.StopSignal() == syscall.SIGTRAP:
	case ws.Exited() || ws.Signaled():
		return 0, fmt.Errorf("ptrace: start %s: pid %d ended before its first instruction: %s", path, pid, describe(ws))
	default:
		syscall.Kill(pid, syscall.SIGKILL)
		waitPID(context.Background(), pid)
		return 0, fmt.Errorf("ptrace: start %s: pid %d stopped with %s, not at its exec", path, pid, describe(ws))
	}
	log.Debug("started, held after exec", zap.String("path", path), zap.Int("pid", pid))
	st.held[pid] = true
	st.children[pid] = true
	return pid, nil
}

// waitPID waits (polling, bounded by ctx) for the next state change of task
// pid, a child or tracee of the calling thread.
func waitPID(ctx context.Context, pid int) (unix.WaitStatus, error) {
	delay := 10 * time.Microsecond
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(pid, &ws, unix.WALL|unix.WNOHANG, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return 0, err
		case wpid == pid:
			return ws, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Millisecond)
	}
}

// describe says how a wait status ended or stopped a task.
func describe(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("signal %v", ws.Signal())
	case ws.Stopped():
		return fmt.Sprintf("stop signal %v (event %d)", ws.StopSignal(), ws.TrapCause())
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}

// Release lets a program [Tracer.Start] holds run on, untraced
// (PTRACE_DETACH). Its exit status is then had with [Tracer.Wait].
func (t *Tracer) Release(pid int) error {
	var err error
	derr := t.do(context.Background(), func(st *state) {
		if !st.held[pid] {
			err = fmt.Errorf("ptrace: release pid %d: %w (or not held)", pid, ErrNotStarted)
			return
		}
		delete(st.held, pid)
		if e := ptrace(unix.PTRACE_DETACH, pid, 0, 0); e != nil {
			err = fmt.Errorf("ptrace: release pid %d: %w", pid, e)
		}
	})
	return errors.Join(derr, err)
}

// Wait waits for a program [Tracer.Start] made, released since (or left
// running by a Trace), to end, and returns its wait status. A trace loop
// that reaped it meanwhile hands the status over. ctx bounds the wait.
func (t *Tracer) Wait(ctx context.Context, pid int) (syscall.WaitStatus, error) {
	delay := 50 * time.Microsecond
	for {
		var ws unix.WaitStatus
		var done bool
		var err error
		derr := t.do(ctx, func(st *state) {
			if s, ok := st.reaped[pid]; ok {
				delete(st.reaped, pid)
				ws, done = s, true
				return
			}
			if !st.children[pid] {
				err = fmt.Errorf("ptrace: wait for pid %d: %w", pid, ErrNotStarted)
				return
			}
			if st.held[pid] {
				err = fmt.Errorf("ptrace: wait for pid %d: still held after its exec: release or trace it first: %w", pid, ErrNotStarted)
				return
			}
			var s unix.WaitStatus
			wpid, e := unix.Wait4(pid, &s, unix.WALL|unix.WNOHANG, nil)
			switch {
			case errors.Is(e, unix.EINTR):
			case e != nil:
				delete(st.children, pid)
				err = fmt.Errorf("ptrace: wait for pid %d: %w", pid, e)
			case wpid == pid && (s.Exited() || s.Signaled()):
				delete(st.children, pid)
				ws, done = s, true
			}
		})
		if derr != nil {
			return 0, fmt.Errorf("ptrace: wait for pid %d: %w", pid, derr)
		}
		if err != nil || done {
			return syscall.WaitStatus(ws), err
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("ptrace: wait for pid %d: %w", pid, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(2*delay, 20*time.Millisecond)
	}
}

// killHeld kills and reaps the programs Start made that are still held.
func (st *state) killHeld(log *zap.Logger) {
	for pid := range st.held {
		syscall.Kill(pid, syscall.SIGKILL)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for {
			ws, err := waitPID(ctx, pid)
			if err != nil || ws.Exited() || ws.Signaled() {
				if err != nil {
					log.Warn("held process not reaped", zap.Int("pid", pid), zap.Error(err))
				}
				break
			}
		}
		cancel()
		delete(st.held, pid)
		delete(st.children, pid)
	}
}

// ptrace makes a ptrace request that does not block (every one but
// PTRACE_SEIZE and PTRACE_ATTACH), without the scheduler's syscall hooks.
func ptrace(req, tid int, addr, data uintptr) error {
	_, _, e := unix.RawSyscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
