package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/unwindd/unwindd/host/config"
	"github.com/unwindd/unwindd/host/entry"
	"github.com/unwindd/unwindd/host/perfevent"
	"github.com/unwindd/unwindd/host/pluginhost"
	"github.com/unwindd/unwindd/host/procfs"
	"github.com/unwindd/unwindd/host/ptrace"
	"github.com/unwindd/unwindd/host/replay"
	"github.com/unwindd/unwindd/host/unwindinfo"
)

type runOptions struct {
	config   string
	out      string
	source   string
	unwind   string
	pid      int
	duration time.Duration
	summary  string
}

func newRunCmd(a *app) *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run [--config FILE] [--out DIR] [--source perf|ptrace] [--unwind LIST] [--duration D] (-- CMD ARGS... | -p PID)",
		Short: "Trace a live program: samples and syscalls, each kernel entry's user stack unwound once",
		Long: `Trace a program live and deliver its events and user stacks to the plugins
of a deployment (--config FILE, or the embedded default: unwindd config
default). Two sources:

  perf    (default) perf_event_open: cpu-clock samples and the tracepoints the
          plugins subscribe to, each with the user registers and a copy of
          the user stack, read from per-CPU rings; unwound by unwindd.
  ptrace  every system call stops the task at its entry and its exit; the
          entry closes at the exit stop, where the stack is walked from live
          memory if a plugin asked for it (the kernel's deferral, literally);
          samples by PTRACE_INTERRUPT.

A command is started stopped and released once tracing is armed (nothing is
missed at its start); -p attaches to a running process, which runs on
unharmed afterwards. Ctrl-C, SIGTERM or --duration stop tracing: the plugins
are drained, write their outputs, and a summary is printed.`,
		Example: `  unwindd run -- ./app --flag
  unwindd run --source ptrace --out out -- ./app
  unwindd run -p 1234 --duration 10s --unwind fp`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case o.pid != 0 && len(args) > 0:
				return usageError{errors.New("run: give -p PID or a command, not both")}
			case o.pid == 0 && len(args) == 0:
				return usageError{errors.New("run: give a command to start (unwindd run -- ./app) or -p PID")}
			case o.pid < 0:
				return usageError{fmt.Errorf("run: -p %d: not a pid", o.pid)}
			case o.duration < 0:
				return usageError{errors.New("run: --duration must be >= 0")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLive(cmd, a, o, args)
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false) // flags after CMD are CMD's
	f.StringVar(&o.config, "config", "", "deployment file (YAML); default: the embedded one")
	f.StringVar(&o.out, "out", "unwindd-out", "directory the plugins write their output to (default: the deployment's output)")
	f.StringVar(&o.source, "source", "perf", "event source: perf or ptrace (default: the deployment's)")
	f.StringVar(&o.unwind, "unwind", "sframe,cfi,fp", "unwind methods in priority order (default: the deployment's)")
	f.IntVarP(&o.pid, "pid", "p", 0, "process to attach to")
	f.DurationVar(&o.duration, "duration", 0, "stop tracing after this long (0: when the target ends or on Ctrl-C)")
	f.StringVar(&o.summary, "summary-json", "", "also write the summary to this file, as JSON")
	return cmd
}

// runLive is `unwindd run`.
func runLive(cmd *cobra.Command, a *app, o runOptions, args []string) error {
	flags := cmd.Flags()
	cfg := config.Default()
	if o.config != "" {
		var err error
		if cfg, err = config.Load(o.config); err != nil {
			return wrapConfigError(err)
		}
	}
	if err := a.logFromConfig(cmd, cfg.Log.Level, cfg.Log.Format); err != nil {
		return err
	}
	if flags.Changed("out") {
		cfg.Output = o.out
	}
	source := string(cfg.Source.Kind)
	if flags.Changed("source") {
		source = o.source
	}
	if source != "perf" && source != "ptrace" {
		return usageError{fmt.Errorf("run: --source %q: want perf or ptrace", source)}
	}
	unwind := o.unwind
	if !flags.Changed("unwind") {
		var names []string
		for _, m := range cfg.Unwind {
			names = append(names, string(m))
		}
		unwind = strings.Join(names, ",")
	}
	methods, err := unwindinfo.ParseMethods(unwind)
	if err != nil {
		return usageError{fmt.Errorf("run: --unwind: %w", err)}
	}
	if o.pid != 0 {
		if err := checkTarget(o.pid); err != nil {
			return err
		}
	}
	var path string
	if len(args) > 0 {
		if path, err = exec.LookPath(args[0]); err != nil {
			return fmt.Errorf("run: %w", err)
		}
	}
	specs, err := deploymentSpecs(cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Output, 0o755); err != nil {
		return fmt.Errorf("run: %w", err)
	}

	ctx := cmd.Context()
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	tracer := ptrace.New(a.log)
	defer tracer.Close()
	pid, started := o.pid, false
	what := fmt.Sprintf("pid %d", pid)
	if len(args) > 0 {
		if pid, err = tracer.Start(ctx, path, args, nil, ptrace.StartOptions{}); err != nil {
			return fmt.Errorf("run: %w", err)
		}
		started, what = true, fmt.Sprintf("%s (pid %d)", strings.Join(args, " "), pid)
	}
	lv := &live{log: a.log, tracer: tracer, pid: pid, started: started, cfg: cfg, ctx: ctx}
	src := lv.perf
	if source == "ptrace" {
		src = lv.ptrace
	}
	begin := time.Now()
	ro := replay.Options{
		Plugins: specs, Manager: pluginhost.Options{HostVersion: "unwindd"},
		Unwind: methods, NoPace: true, CopyStacks: source == "perf",
	}
	var prog *liveProgress
	if isTerminal(a.stderr) {
		ro.Running = func(m *pluginhost.Manager) { prog = startLive(a.stderr, m, liveInterval) }
	}
	// The plugins' life is not ctx's: on Ctrl-C they are drained, not cut.
	sum, err := replay.RunSource(context.WithoutCancel(ctx), src, nil, ro, a.log)
	prog.done()
	if started && !lv.reaped {
		// The source never ran (a plugin did not start): end the program.
		tracer.Close()
	}
	if sum != nil {
		title := fmt.Sprintf("traced %s with the %s source for %v", what, source, time.Since(begin).Round(time.Millisecond))
		writeSummary(a.stdout, title, sum)
		if lv.status != "" {
			fmt.Fprintf(a.stdout, "  target   %s\n", lv.status)
		}
		err = errors.Join(err, writeSummaryJSON(o.summary, "run", what, lv.status, sum))
		for _, p := range sum.Plugins {
			if p.State == pluginhost.StateFailed {
				err = errors.Join(err, fmt.Errorf("plugin %s failed: %w", p.Name, p.Err))
			}
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		err = nil // Ctrl-C, SIGTERM, --duration: a normal end
	}
	return err
}

// live is one `unwindd run`'s source: the target and how it ended.
type live struct {
	log     *zap.Logger
	tracer  *ptrace.Tracer
	pid     int
	started bool // tracer.Start made the target; it is held until released or traced
	cfg     *config.Config
	ctx     context.Context // ends tracing: Ctrl-C, SIGTERM, --duration

	reaped bool   // the started target has been waited for (or handed to Trace)
	status string // how the target ended, for the summary
}

// perf runs the perf_event_open source: events for what the plugins
// subscribed to, opened on the target before it is released.
func (l *live) perf(_ context.Context, tr *entry.Tracker, w pluginhost.Wants, fo replay.FeedOptions) (replay.FeedStats, error) {
	freq := 0
	if w.Samples {
		freq = l.cfg.Source.Perf.Frequency
	}
	var tps []perfevent.Tracepoint
	if w.Syscalls {
		tps = append(tps, perfevent.Tracepoint{Group: "raw_syscalls", Name: "sys_enter", Stack: w.SyscallStack},
			perfevent.Tracepoint{Group: "raw_syscalls", Name: "sys_exit"})
	}
	for name, stack := range w.Tracepoints {
		g, n, _ := strings.Cut(name, ":")
		tps = append(tps, perfevent.Tracepoint{Group: g, Name: n, Stack: stack})
	}
	for _, e := range l.cfg.Source.Perf.Events {
		if _, ok := w.Tracepoints[e]; !ok {
			g, n, _ := strings.Cut(e, ":")
			tps = append(tps, perfevent.Tracepoint{Group: g, Name: n})
		}
	}
	// 4 MiB a CPU: about 500 samples with 8 KiB stacks, room for the
	// plugins' start and a slow wakeup.
	sess, err := perfevent.Open(l.ctx, perfevent.Options{PID: l.pid, Frequency: freq, StackSize: l.cfg.Source.Perf.StackSize, Tracepoints: tps, RingPages: 1024})
	if err != nil {
		return replay.FeedStats{}, fmt.Errorf("run: %w", err)
	}
	defer sess.Close()
	if l.started {
		if err := l.tracer.Release(l.pid); err != nil {
			return replay.FeedStats{}, fmt.Errorf("run: %w", err)
		}
	}
	// The session ends the records itself when l.ctx ends (after draining
	// its rings) or the target is gone: the feed must not stop first.
	st, err := replay.FeedRecords(context.WithoutCancel(l.ctx), sess, tr, fo)
	if l.started {
		l.finish()
	}
	if err == nil {
		err = l.ctx.Err()
	}
	return st, err
}

// finish ends and reaps a started target that was released: it has exited,
// or tracing stopped first (Ctrl-C, --duration), and it gets SIGTERM.
func (l *live) finish() {
	l.reaped = true
	if l.ctx.Err() != nil {
		syscall.Kill(l.pid, syscall.SIGTERM)
	}
	wctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, err := l.tracer.Wait(wctx, l.pid)
	if err != nil {
		syscall.Kill(l.pid, syscall.SIGKILL)
		ws, err = l.tracer.Wait(context.Background(), l.pid)
	}
	if err == nil {
		l.status = describeStatus(ws)
	}
}

// ptrace runs the ptrace source on the target.
func (l *live) ptrace(_ context.Context, tr *entry.Tracker, w pluginhost.Wants, _ replay.FeedOptions) (replay.FeedStats, error) {
	hz := 0
	if w.Samples {
		hz = l.cfg.Source.Ptrace.Frequency
	}
	l.reaped = l.started // Trace kills a started target when ctx ends
	st, err := l.tracer.Trace(l.ctx, ptrace.TraceOptions{PID: l.pid, Hz: hz, NoSyscalls: !w.Syscalls}, tr)
	switch {
	case st.Exited:
		l.status = describeStatus(st.Status)
	case st.Killed:
		l.status = "killed when tracing stopped"
	case !l.started && l.ctx.Err() != nil:
		l.status = "detached, running on"
	}
	fs := replay.FeedStats{Samples: st.Samples + st.KernelSamples + st.Syscalls + st.SyscallExits}
	if err == nil {
		err = l.ctx.Err()
	}
	return fs, err
}

// checkTarget refuses, before anything starts, a pid that cannot be
// traced: no such process, a kernel thread, a zombie.
func checkTarget(pid int) error {
	st, err := procfs.ReadStat(pid)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("run: -p %d: no such process", pid)
	case err != nil:
		return fmt.Errorf("run: -p %d: %w", pid, err)
	case st.KernelThread():
		return fmt.Errorf("run: -p %d: %s is a kernel thread: it has no user space to trace", pid, st.Comm)
	case st.Dead():
		return fmt.Errorf("run: -p %d: %s has exited (state %c)", pid, st.Comm, st.State)
	}
	return nil
}

// describeStatus says how a process ended.
func describeStatus(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exited with status %d", ws.ExitStatus())
	case ws.Signaled():
		return fmt.Sprintf("killed by signal %v", ws.Signal())
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}
