// Command ftrace is unwindd's syscall and tracepoint logger plugin. It
// subscribes to syscalls (all of them, or those its config names) and to
// named tracepoints, asks for the user stack of every kernel entry (mode
// always), or, with a comm or pid filter, of the entries of matching tasks
// only (the host checks the filter), and streams trace.txt into its out directory in the
// text layout of the kernel's trace_pipe with the userstacktrace and
// sym-userobj options: an event per line, then the entry's user stack.
//
// # Config
//
// The plugin's config block, a YAML mapping:
//
//	out: /tmp/trace            # required: the output directory (the host's --out); made if missing
//	syscalls: [openat, read]   # x86-64 syscall names; absent or []: every syscall
//	tracepoints: ["sched:sched_process_exec"]  # group:name, each once; default none
//	comm: [myapp]              # stacks only for tasks of these command names (at most 15 bytes each)
//	pid: [1234]                # stacks only for these process (or thread) ids
//
// Syscall names are those of x86-64's syscall table (strace's, and the
// host's syscall events'): "fstat", not the kernel's tracepoint name
// "newfstat", which is refused with the right name; a misspelt one with the
// nearest name. The table is built in (Linux 6.18) rather than read from
// tracefs: the host names syscalls by the same table, and tracefs may be
// unmounted or unreadable where the config is checked. A tracepoint is
// "group:name"; the syscalls group is refused (list syscalls under
// syscalls). With comm or pid (or both, when a task must match both),
// every subscribed event is still written, but a stack is requested only
// for an entry whose task matches (a pid matches the task's process id or
// its thread id; a comm matches the command name an event of the entry
// carries). The plugin hands the filter to the host as its
// [sdk.StackFilter], which the host checks in process at each event: no
// round trip to the plugin per entry, as request mode decide would cost.
// Describe rejects unknown or repeated keys,
// values of the wrong type and bad values, each as an [sdk.ConfigError]
// naming the key and list item ("syscalls[1]").
//
// # trace.txt
//
// An excerpt (the third frame, the tracepoint and the lost notice are made
// up):
//
//	            bash-24392   [000] ..... 12775.022116: sys_openat(dfd: 0xffffff9c, filename: 0x55eeb89dd2b0, flags: 0, mode: 0) cookie=0x2a
//	            bash-24392   [000] ..... 12775.022122: sys_openat -> 0x3 cookie=0x2a
//	            bash-24392   [000] ..... 12775.022122: <user stack trace> cookie=0x2a end=outermost
//	 => /usr/lib/x86_64-linux-gnu/libc.so.6[+0xd2011] __libc_open64+0x51
//	 => /usr/bin/bash[+0x689ee]
//	 =>  <00007f83344f422a>
//	            bash-24392   [001] ..... 12775.022301: sched:sched_process_fork: parent_comm=bash parent_pid=24392 child_comm=bash child_pid=24393
//	CPU:? [LOST 3 EVENTS] [LOST 1 STACKS] cookie=0x2b cookie=0x2c
//
// The lines, in the kernel's printf terms (the prefix is
// trace_print_context's: comm, tid, cpu, flags, seconds.microseconds):
//
//	event:        "%16s-%-7d [%03d] ..... %5lu.%06lu: %s" (the event), then " cookie=0x%lx" if a stack was requested
//	stack header: the same prefix, then "<user stack trace> cookie=0x%lx end=%s" (the end reason)
//	file frame:   " => %s[+0x%lx]" (path, ip - mapping start), then " %s+0x%lx" (function, offset) if it has a symbol
//	other frame:  " =>  <%016lx>" (ip), then " %s+0x%lx" (function, offset) if it has a symbol
//	lost notice:  "CPU:? [LOST %lu EVENTS] [LOST %lu STACKS]", then " cookie=0x%lx" per entry
//
// Lines come in the order the host delivers them. An event is the
// kernel's trace line. Its time is the event's, on the host's event clock
// (perf's, the same as ftrace's default "local" clock), rounded to the
// microsecond as ns2usecs does. The flags are always "....." (not known
// here; all clear for a task entering the kernel from user space); a cpu
// the source did not record is -01, a comm it did not is "<...>". The
// event is printed as the kernel prints it: a syscall as the syscalls:
// events do (print_syscall_enter and print_syscall_exit: arguments below
// 10 in decimal, others in hex with 0x, the return value as an unsigned
// long, the kernel's names such as sys_newfstat for fstat),
// raw_syscalls:sys_enter and sys_exit as their print fmt does
// ("sys_enter: NR 257 (ffffff9c, …)"), and any other tracepoint as
// "group:name: field=value …" (integers in decimal, strings as they are,
// bytes in hex; the kernel would print its own print fmt under the bare
// name). The argument names of a syscall event from raw_syscalls come from
// tracefs's events/syscalls/sys_enter_<name>/format when the plugin can
// read it (then as many arguments as the syscall has), and are arg0 to
// arg5 otherwise. The cookie ending the line makes
// grep 'cookie=0x2a\b' find the entry's events, its stack and any lost
// notice naming it.
//
// A stack is written once per cookie, when it arrives, which is after the
// events of its entry: a header with the context of the entry's latest
// event, then a line per frame, leaf first, all of them (the kernel stops
// at 8). The header is the kernel's "<user stack trace>", then the cookie
// and why the walk ended ([sdk.EndReason]). A frame in a file mapping is
// what the kernel prints with sym-userobj, the path and the offset from the
// start of the mapping (the kernel's ip - vm_start, not a file offset); any
// other frame ([vdso], anonymous memory, no mapping) is the kernel's bare
// address. When the host found a symbol, the function and the offset in it
// follow. The kernel's own text comes first and unchanged, so that a
// pattern for the kernel's lines matches ours and the kernel's and
// unwindd's stacks of one workload can be compared frame by frame as
// path[+offset]; the symbol comes after, where sym-addr would put the ip
// in the kernel's lines. A stack whose events did not come (dropped, or
// forgotten after 65536 entries waiting for their stack) has "<...>" for
// its comm, -01 for its cpu and the latest event's time.
//
// What the host dropped for the plugin (its outbox was full) is a line in
// the shape of the kernel's "CPU:N [LOST M EVENTS]", with "?" for the cpu
// (the host drops per plugin, not per cpu), the number of stacks dropped,
// and the cookies of the entries affected.
//
// Control characters in comms, paths, names and strings are written as
// "?", so an event is always one line. trace.txt is streamed through a
// buffer flushed every second and at close; a new plugin process
// truncates it.
//
// At close the plugin logs one line through the host: events, stacks,
// orphan stacks, lost notices, and what the host reported it dropped.
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/unwindd/unwindd/sdk"
)

// version is the plugin's version, in its Description.
const version = "0.1.0"

// traceFile is the file the plugin writes into its out directory.
const traceFile = "trace.txt"

// The writer's settings.
const (
	bufferSize    = 256 << 10
	flushInterval = time.Second
	maxPending    = 65536 // entries whose stack header info is kept
)

// tracer is the ftrace plugin's sdk.Tracer and sdk.Closer.
type tracer struct {
	stderr     io.Writer     // where the summary goes when the host cannot take it
	tracefs    func() fs.FS  // finds tracefs for the argument names; nil result: none
	flushEvery time.Duration // how often buffered lines reach the file

	// mu serialises Close and the flusher, which run on their own
	// goroutines, with the delivery calls.
	mu      sync.Mutex
	cfg     config
	host    *sdk.Host
	started bool // the first Describe succeeded: the file is open
	closed  bool
	file    *os.File
	buf     *bufio.Writer
	out     *traceWriter
	werr    error // the first write error; delivery calls return it
	stop    chan struct{}
	flusher sync.WaitGroup
	counts  counts
}

// counts is what the host reported it dropped.
type counts struct {
	HostLostEvents uint64
	HostLostStacks uint64
}

func newTracer() *tracer {
	return &tracer{stderr: os.Stderr, tracefs: openTracefs, flushEvery: flushInterval}
}

// Describe validates the config and, on the first call, makes the out
// directory and opens trace.txt. A later call (a new host connection)
// keeps writing the same file and must give the same config.
func (t *tracer) Describe(_ context.Context, info sdk.DescribeInfo) (sdk.Description, error) {
	cfg, err := parseConfig(info.Config)
	if err != nil {
		return sdk.Description{}, fmt.Errorf("ftrace: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return sdk.Description{}, fmt.Errorf("ftrace: described after close")
	}
	if t.started {
		if !cfg.equal(&t.cfg) {
			return sdk.Description{}, fmt.Errorf("ftrace: config %+v differs from the first connection's %+v, which is in use", cfg, t.cfg)
		}
	} else if info.Check {
		// Only a check: trace.txt is neither made nor truncated.
	} else if err := t.start(cfg); err != nil {
		return sdk.Description{}, fmt.Errorf("ftrace: %w", err)
	}
	t.host = info.Host
	if t.host == nil {
		t.host = sdk.NewHost(nil) // logs to stderr
	}
	subs := []sdk.Subscription{sdk.Syscalls(cfg.Syscalls...)}
	for _, tp := range cfg.Tracepoints {
		group, name, _ := strings.Cut(tp, ":")
		subs = append(subs, sdk.Tracepoint(group, name))
	}
	return sdk.Description{Name: "ftrace", Version: version, Subscriptions: subs, Mode: sdk.ModeAlways,
		StackFilter: sdk.StackFilter{IDs: cfg.PIDs, Comms: cfg.Comms}}, nil
}

// start makes the out directory, opens trace.txt and starts the flusher.
func (t *tracer) start(cfg config) error {
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return &sdk.ConfigError{Field: "out", Msg: err.Error()}
	}
	path := filepath.Join(cfg.Out, traceFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return &sdk.ConfigError{Field: "out", Msg: err.Error()}
	}
	var tracefs fs.FS
	if t.tracefs != nil {
		tracefs = t.tracefs()
	}
	t.cfg = cfg
	t.file = f
	t.buf = bufio.NewWriterSize(f, bufferSize)
	t.out = newTraceWriter(t.buf, newArgNames(tracefs), maxPending)
	t.stop = make(chan struct{})
	t.flusher.Go(t.flushLoop)
	t.started = true
	return nil
}

// flushLoop flushes the buffered lines every flushEvery until Close.
func (t *tracer) flushLoop() {
	tick := time.NewTicker(t.flushEvery)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			t.mu.Lock()
			if !t.closed && t.buf.Buffered() > 0 {
				t.noteErr(t.buf.Flush())
			}
			t.mu.Unlock()
		}
	}
}

// noteErr keeps the first write error.
func (t *tracer) noteErr(err error) {
	if err != nil && t.werr == nil {
		t.werr = fmt.Errorf("ftrace: write %s: %w", filepath.Join(t.cfg.Out, traceFile), err)
	}
}

// Events writes a line per event.
// CopiesEvents: Events writes each event and keeps only copies of its
// entry's comm, tid, cpu and time (sdk.EventCopier).
func (t *tracer) CopiesEvents() bool { return true }

func (t *tracer) Events(_ context.Context, events []sdk.Event) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.started || t.closed {
		return nil
	}
	for i := range events {
		t.noteErr(t.out.event(&events[i]))
	}
	return t.werr
}

// Stack writes s's block.
func (t *tracer) Stack(_ context.Context, s sdk.Stack) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.started || t.closed {
		return nil
	}
	t.noteErr(t.out.stack(&s))
	return t.werr
}

// Lost writes a lost notice.
func (t *tracer) Lost(_ context.Context, l sdk.Lost) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.started || t.closed {
		return nil
	}
	t.counts.HostLostEvents += l.Events
	t.counts.HostLostStacks += l.Stacks
	t.noteErr(t.out.lost(&l))
	return t.werr
}

// Close flushes and closes trace.txt and logs a summary. A second Close
// does nothing.
func (t *tracer) Close() error {
	t.mu.Lock()
	if t.closed || !t.started {
		t.closed = true
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.stop)
	t.mu.Unlock()
	t.flusher.Wait() // it takes mu: wait outside it

	t.mu.Lock()
	defer t.mu.Unlock()
	t.noteErr(t.buf.Flush())
	t.noteErr(t.file.Sync())
	t.noteErr(t.file.Close())
	o := t.out
	fields := map[string]string{"out": filepath.Join(t.cfg.Out, traceFile)}
	for _, kv := range []struct {
		k string
		v uint64
	}{
		{"events", o.events}, {"stacks", o.stacks}, {"orphan_stacks", o.orphans}, {"evicted", o.pending.evicted},
		{"lost_notices", o.lostNotices}, {"host_lost_events", t.counts.HostLostEvents}, {"host_lost_stacks", t.counts.HostLostStacks},
	} {
		fields[kv.k] = strconv.FormatUint(kv.v, 10)
	}
	if t.werr != nil {
		fields["error"] = t.werr.Error()
		t.host.CloseLog(t.stderr, sdk.LevelError, "ftrace: write trace failed", fields)
		return t.werr
	}
	t.host.CloseLog(t.stderr, sdk.LevelInfo, "ftrace: wrote trace", fields)
	return nil
}

var _ interface {
	sdk.Tracer
	sdk.EventCopier
	sdk.Closer
} = (*tracer)(nil)

func main() { sdk.Serve(newTracer()) }
