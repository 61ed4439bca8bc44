package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/procfs"
	"github.com/unwindd/unwindd/host/ptrace"
	"github.com/unwindd/unwindd/host/symbolize"
	"github.com/unwindd/unwindd/host/unwindinfo"
)

type stackOptions struct {
	pid      int
	after    time.Duration
	timeout  time.Duration
	maxDepth int
	unwind   string
}

func newStackCmd(a *app) *cobra.Command {
	var o stackOptions
	cmd := &cobra.Command{
		Use:   "stack (-p PID | [--after D] -- CMD [ARGS...])",
		Short: "Print the user stack of every thread of a process",
		Long: `Print the user stack of every thread of a process, like eu-stack.

With -p, the process is stopped (ptrace), its stacks are walked from live
memory, and it runs on. With a command instead, unwindd starts it, waits
--after, takes its stacks the same way, then kills it (SIGKILL) and reaps it.`,
		Example: `  unwindd stack -p 1234
  unwindd stack --after 300ms -- ./demo`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case o.pid != 0 && len(args) > 0:
				return usageError{errors.New("stack: give -p PID or a command, not both")}
			case o.pid == 0 && len(args) == 0:
				return usageError{errors.New("stack: give -p PID or a command to start (unwindd stack --after 300ms -- ./prog)")}
			case o.pid < 0:
				return usageError{fmt.Errorf("stack: -p %d: not a pid", o.pid)}
			case o.pid != 0 && cmd.Flags().Changed("after"):
				return usageError{errors.New("stack: --after goes with a command, not -p")}
			case o.after < 0 || o.timeout <= 0 || o.maxDepth <= 0:
				return usageError{errors.New("stack: --after must be >= 0, --timeout and --max-depth > 0")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return stackCommand(cmd.Context(), a, o, args)
			}
			return stackPID(cmd.Context(), a, o)
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false) // flags after CMD are CMD's
	f.IntVarP(&o.pid, "pid", "p", 0, "process to take the stacks of")
	f.DurationVar(&o.after, "after", 100*time.Millisecond, "with a command: how long to let it run before taking its stacks")
	f.DurationVar(&o.timeout, "timeout", 5*time.Second, "how long to wait for every thread to stop")
	f.IntVar(&o.maxDepth, "max-depth", x86_64.DefaultMaxDepth, "most frames per thread")
	f.StringVar(&o.unwind, "unwind", "sframe,cfi,fp", "unwind methods in priority order (sframe, cfi, fp), e.g. fp alone")
	return cmd
}

// stackPID prints the stacks of a running process.
func stackPID(ctx context.Context, a *app, o stackOptions) error {
	r, err := takeStacks(ctx, a.log, o, o.pid)
	if err != nil {
		return err
	}
	return r.write(a.stdout)
}

// stackCommand starts args, takes its stacks after o.after, and kills it.
func stackCommand(ctx context.Context, a *app, o stackOptions, args []string) error {
	c := exec.Command(args[0], args[1:]...)
	c.Stdout, c.Stderr = a.stdout, a.stderr
	if err := c.Start(); err != nil {
		return fmt.Errorf("start %s: %w", args[0], err)
	}
	pid := c.Process.Pid
	a.log.Debug("started", zap.Strings("command", args), zap.Int("pid", pid))
	// However this ends, the command does not outlive us.
	kill := func() error {
		c.Process.Kill()
		return c.Wait()
	}

	select {
	case <-time.After(o.after):
	case <-ctx.Done():
		kill()
		return fmt.Errorf("%s: %w", args[0], context.Cause(ctx))
	}
	r, err := takeStacks(ctx, a.log, o, pid)
	werr := kill()
	if errors.Is(err, ptrace.ErrExited) || errors.Is(err, ptrace.ErrNoProcess) {
		return fmt.Errorf("%s exited (%v) before its stacks were taken after %v", args[0], werr, o.after)
	}
	if err != nil {
		return err
	}
	a.log.Debug("command killed", zap.Int("pid", pid), zap.NamedError("wait", werr))
	return r.write(a.stdout)
}

// frame is one frame as printed.
type frame struct {
	PC      uint64
	Type    x86_64.FrameType
	Func    string // "" when no symbol holds it
	FuncOff uint64
	Path    string // mapped file or pseudo-path; "" when anonymous
	FileOff uint64 // of PC in Path
	Mapped  bool   // PC lies in a mapping
}

// thread is one thread's stack as printed.
type thread struct {
	TID    int
	Comm   string
	Frames []frame
	End    x86_64.EndReason
	Err    error // why it was not walked
}

// report is what `unwindd stack` prints.
type report struct {
	PID     int
	Threads []thread
	Exited  []int
}

// takeStacks stops pid, walks every thread's stack (host/ptrace), and names
// each frame from the maps read while the process was stopped and the ELF
// symbols of the mapped files. The command and its oracle test both take
// stacks through it.
func takeStacks(ctx context.Context, log *zap.Logger, o stackOptions, pid int) (*report, error) {
	methods, err := unwindinfo.ParseMethods(o.unwind)
	if err != nil {
		return nil, usageError{fmt.Errorf("stack: --unwind: %w", err)}
	}
	steppers, fopts, err := unwindinfo.Steppers(methods)
	if err != nil {
		return nil, usageError{fmt.Errorf("stack: --unwind: %w", err)}
	}
	u, err := x86_64.New(x86_64.Options{MaxDepth: o.maxDepth, Steppers: steppers})
	if err != nil {
		return nil, err
	}
	tr := ptrace.New(log)
	defer tr.Close()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	st, err := tr.Stacks(ctx, pid, u, unwindinfo.NewFiles(fopts, log))
	if err != nil {
		return nil, err
	}
	sym := symbolize.New(symbolize.Options{}, log)
	r := &report{PID: st.PID, Exited: st.Exited}
	for _, s := range st.Threads {
		th := thread{TID: s.TID, Comm: s.Comm, End: s.Trace.End, Err: s.Err}
		for _, f := range s.Trace.Frames {
			th.Frames = append(th.Frames, resolve(log, sym, st.Maps, f))
		}
		r.Threads = append(r.Threads, th)
	}
	return r, nil
}

// resolve names frame f. A return address (any frame but the first) is
// looked up at address - 1, inside the call instruction, so that a call at
// the very end of a function is not blamed on the next one.
func resolve(log *zap.Logger, sym *symbolize.Symbolizer, maps procfs.Maps, f x86_64.Frame) frame {
	out := frame{PC: f.PC, Type: f.Type}
	at := f.PC
	if f.Type != x86_64.TypeRegs && at > 0 {
		at--
	}
	m, ok := maps.Find(at)
	if !ok {
		return out
	}
	out.Mapped, out.Path, out.FileOff = true, m.Path, m.FileOffset(f.PC)
	s, ok, err := sym.Lookup(m, at)
	if err != nil {
		log.Debug("no symbols", zap.String("path", m.Path), zap.Error(err))
	}
	if ok {
		out.Func, out.FuncOff = s.Name, s.Offset+(f.PC-at)
	}
	return out
}

// write prints the report, eu-stack style.
func (r *report) write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	threads := "threads"
	if len(r.Threads) == 1 {
		threads = "thread"
	}
	fmt.Fprintf(bw, "PID %d: %d %s\n", r.PID, len(r.Threads), threads)
	for _, th := range r.Threads {
		fmt.Fprintf(bw, "TID %d (%s):\n", th.TID, th.Comm)
		if th.Err != nil {
			fmt.Fprintf(bw, "not walked: %v\n\n", th.Err)
			continue
		}
		for i, f := range th.Frames {
			fmt.Fprintf(bw, "#%-2d 0x%016x %s (%s) [%s]\n", i, f.PC, f.funcText(), f.where(), f.Type)
		}
		fmt.Fprintf(bw, "end: %s\n\n", th.End)
	}
	for _, tid := range r.Exited {
		fmt.Fprintf(bw, "TID %d: exited while the process was being stopped\n", tid)
	}
	return bw.Flush()
}

func (f frame) funcText() string {
	if f.Func == "" {
		return "??"
	}
	return fmt.Sprintf("%s+%#x", f.Func, f.FuncOff)
}

func (f frame) where() string {
	switch {
	case !f.Mapped:
		return "??"
	case f.Path == "":
		return fmt.Sprintf("[anon]+%#x", f.FileOff)
	}
	return fmt.Sprintf("%s+%#x", f.Path, f.FileOff)
}
