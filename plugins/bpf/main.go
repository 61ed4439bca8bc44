// Command bpf is unwindd's bpftrace-like plugin: one tracer (one bit of the
// host's request mask) that runs many small programs, each a probe, an
// optional filter, an aggregation and a key, and keeps their results in
// maps that it prints as bpftrace prints its maps. Filters and the other
// expressions are CEL (cel.dev/cel-go), compiled once when the plugin
// starts and type-checked against the variables the probe gives.
//
// # Config
//
// The plugin's config block, a YAML mapping:
//
//	out: /tmp/bpf          # required: the output directory (the host's --out); made if missing
//	interval: 10s          # print the maps every interval, and at exit; 0: only at exit; default 10s
//	max_pending: 65536     # entries whose events wait for their stack; default 65536
//	max_keys: 65536        # keys per map; past it new keys are dropped and counted; default 65536
//	programs:
//	  # Where does bash open files from? Counted per command and user stack.
//	  - probe: syscall:openat
//	    filter: 'comm == "bash" && args.flags != 0'
//	    aggregate: count
//	    by: [comm, ustack]
//	  # How big are reads? A log2 histogram per command; no stack needed.
//	  - name: '@reads'
//	    probe: syscall:read
//	    aggregate: hist(args.count)
//	    by: [comm]
//	  # Which processes are on CPU? Counted per pid.
//	  - probe: profile:hz:99
//	    by: [pid]
//
// Each program has:
//
//   - probe (required): which events it sees. syscall:NAME is the entry of
//     the x86-64 system call NAME (as strace spells it: fstat, not newfstat),
//     syscall:* the entry of every system call; syscall_exit:NAME and
//     syscall_exit:* their exits; tracepoint:GROUP:NAME a tracepoint (not of
//     the syscalls or raw_syscalls groups: those are syscall events);
//     profile:hz:N cpu-clock samples, N a second of each thread's running
//     time. The host samples at its source's rate (its frequency setting),
//     and the plugin subscribes at the highest N; a program with a lower N
//     keeps a sample when the span its period covers crosses a multiple
//     of 1/N s (no state, so Decide and Events agree). A source slower
//     than N gives each of its samples.
//   - filter: a CEL expression of type bool; only the events for which it
//     is true are aggregated. Default: every event of the probe.
//   - aggregate: count (the default), sum(EXPR), min(EXPR), max(EXPR),
//     avg(EXPR) (an integer average, as bpftrace's), hist(EXPR) (a log2
//     histogram: buckets (…, 0), [0], [1], [2, 4), [4, 8) … as bpftrace's
//     hist) or lhist(EXPR, MIN, MAX, STEP) (a linear histogram: (…, MIN),
//     then [MIN, MIN+STEP) … up to MAX, then [MAX, …); MAX - MIN a
//     multiple of STEP, at most 1000 buckets). EXPR is a CEL expression of
//     type int.
//   - by: the map's key, a list of pid, tid, comm, cpu, probe, ustack (the
//     user stack of the event's kernel entry) and CEL expressions of type
//     int, uint, bool, string or bytes (args.fd, ret < 0). Default: none,
//     one value per map, as bpftrace's @x = count().
//   - name: the map's name, such as @opens (the @ may be left out). Default:
//     from the probe (@openat, @openat_exit, @syscalls, @sched_switch,
//     @profile), with _INDEX added (@openat_2) when taken.
//
// Describe rejects unknown or repeated keys, bad values, unknown probes,
// and expressions that do not parse or type-check (or whose comprehensions
// CEL estimates too costly to run on every event), each as an
// [sdk.ConfigError] naming the field ("programs[1].filter") and, for an
// expression, the column; the host reports it at its line in the
// deployment file. When the host only checks the config (unwindd config
// check), the plugin compiles it and creates nothing.
//
// # Expressions
//
// Every expression (filter, aggregate value, key) is CEL with these
// variables:
//
//	pid, tid, cpu   int      the task's process id, thread id, and cpu (-1 when not known)
//	comm            string   the task's command name
//	probe           string   the event's probe: syscall:openat, syscall_exit:openat, tracepoint:sched:sched_switch, or the program's profile:hz:N
//
// and by the probe:
//
//	syscall:NAME     args.ARG (int) for each argument the kernel's sys_enter_NAME tracepoint names
//	                 (args.fd, args.count of write), converted to its C type as the kernel does
//	                 (args.dfd of openat(AT_FDCWD, …) is -100); args[0]…args[5] and arg0…arg5 (int),
//	                 the raw registers
//	syscall:*        args[0]…args[5] and arg0…arg5 only
//	syscall_exit:…   ret (int), also as args.ret
//	tracepoint:G:N   args.FIELD for each field of the tracepoint's format, read from tracefs
//	                 when the plugin starts: integers as int, char arrays and strings as string,
//	                 other dynamic arrays as bytes (arrays of numbers are not available); when
//	                 tracefs cannot be read there, args is a map(string, dyn) checked at run time
//	profile:hz:N     nothing more
//
// The argument names of the syscalls are built in (syscallargs.go,
// generated from Linux 6.18's tracefs by internal/gensyscallargs), so
// that a config checks the same on every machine; an unknown name is a
// config error that lists the syscall's arguments. CEL has its standard
// functions (size, contains, startsWith, endsWith, matches, int(), …) but
// no bitwise operators. CEL integers are 64-bit: an unsigned 64-bit
// argument above 2^63 is negative. An expression that fails on an event (a
// division by zero, a missing field) does not aggregate it, and the event
// is counted as an error of its program.
//
// # Output
//
// The plugin writes two files into its out directory, every interval and
// when the host shuts it down. bpf.txt has the maps as bpftrace prints
// them, a section per print (appended; a new plugin process truncates the
// file), after a line "--- TIME interval N ---" or, at exit,
// "--- TIME exit ---" (TIME in RFC 3339, UTC). The programs of the
// end-to-end test (opens by comm, a histogram of write sizes by comm,
// getpids by ustack) give:
//
//	--- 2026-11-27T20:32:06.945Z exit ---
//	@opens[bpfload]: 20
//
//	@writes[bpfload]:
//	[1]                    1 |@@                                                  |
//	[2, 4)                 2 |@@@@@                                               |
//	[4, 8)                 4 |@@@@@@@@@@                                          |
//	[8, 16)                8 |@@@@@@@@@@@@@@@@@@@@@                               |
//	[16, 32)              16 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@         |
//	[32, 64)              19 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
//
//	@getpids[
//		syscall+25
//		do_getpids+29
//		main+58
//		__libc_start_call_main+122
//		__libc_start_main+133
//		_start+33
//	]: 30
//
// A map is "@name[key]: value" lines sorted by value, ascending, then an
// empty line; a histogram is "@name[key]:", its bucket lines from the
// first non-empty bucket to the last, and an empty line, per key, keys
// sorted by their count; a map without by is "@name: value". Key parts are
// joined by ", "; a ustack is a newline, then its frames, leaf first, one
// per line after a tab (bpftrace indents with spaces). Maps are
// cumulative: a section shows everything since the start. Empty maps are
// not printed.
//
// bpf.json is the latest section as one JSON document, replaced
// atomically (through a temporary file and a rename): its time and
// section, each map's name, probe, filter, aggregate and by, its counts
// (matched; errors; full, the updates max_keys refused) and entries in
// bpf.txt's order, each with its key (an array with an element per by
// item; a ustack is an array of frames), value, count, the sum of an avg,
// and for histograms the buckets of bpf.txt with their inclusive min and
// max as bpftrace's JSON output has them (none below the lowest bucket,
// none at the top); and the plugin's counts (stats).
//
// A frame is the function and the offset in it ("main+22"); without a
// symbol, the file's base name and the offset in the file
// ("libc.so.6+0x29d8f"); outside any file, the address. A stack without
// frames is "[" and why its walk ended "]" ("[no-regs]").
//
// # The unwind economy
//
// The plugin runs in request mode decide: the host holds each kernel entry
// with an event of a probe some ustack program uses and, before the entry
// returns to user space, asks Decide with the entry's events. The plugin
// wants the stack only when one of the events passes the probe and the
// filter of a program keyed by ustack; the host then walks the stack once,
// for this bit. The probes no ustack program uses are subscribed
// events-only (sdk.EventsOnly): their events are delivered as they come,
// and the host neither asks about nor unwinds an entry for them. So three
// programs on one bit, of which one is keyed by ustack, cost the decisions
// and unwinds of that one program's events, and none for the others.
//
// The events of a ustack program wait for their entry's stack by cookie
// (the host sends every event of an entry before its stack). When it
// comes, they are aggregated with it. They are aggregated with the stack
// "[lost]" when a lost notice names their cookie (the host dropped the
// stack or some of the entry's events; a stack that still comes later is
// counted as an orphan), and with "[no stack]" when no stack was requested
// (the event has no cookie: the Decide deadline passed, or the host refused
// the request), when more than max_pending entries wait (the oldest goes
// first), and at exit.
//
// At close the plugin logs one line through the host with its counts:
// events, matched, errors, stacks, joined, no_stack, lost, evicted, orphan
// stacks, decisions, and what the host reported it dropped.
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unwindd/unwindd/sdk"
	"github.com/unwindd/unwindd/sdk/outfile"
)

// version is the plugin's version, in its Description.
const version = "0.1.0"

// tracer is the bpf plugin's sdk.Tracer, sdk.Decider and sdk.Closer.
type tracer struct {
	now     func() time.Time // the wall clock, for the sections' times
	stderr  io.Writer        // where the summary goes when the host cannot take it
	tracefs func() fs.FS     // finds tracefs for the tracepoints' formats; nil result: none

	// progs are the compiled programs, for Decide, which runs beside the
	// delivery calls; nil before the first Describe.
	progs   atomic.Pointer[[]*program]
	decided struct{ calls, entries, wanted atomic.Uint64 }

	// mu serialises the delivery calls, the printer and Close.
	mu       sync.Mutex
	raw      []byte // the config block the programs were compiled from
	cfg      config
	host     *sdk.Host
	started  bool
	closed   bool
	maps     []*bpfMap
	stackers []*program // the programs keyed by ustack
	act      *activation
	key      []keyVal // scratch
	pending  *pending
	stacks   stackCache
	st       stats
	txt      *os.File // bpf.txt, once the first section is written
	sections int      // interval sections written
	werr     error    // the first write error
	stop     chan struct{}
	printer  sync.WaitGroup
}

// stats are the plugin's counts, in bpf.json and the summary.
type stats struct {
	Events         uint64 `json:"events"`           // events delivered
	Stacks         uint64 `json:"stacks"`           // stacks delivered
	Joined         uint64 `json:"joined"`           // events aggregated with their stack
	NoStack        uint64 `json:"no_stack"`         // events of ustack programs aggregated as [no stack]
	Lost           uint64 `json:"lost"`             // events aggregated as [lost]
	Evicted        uint64 `json:"evicted"`          // entries given up on: more than max_pending waited
	Pending        int    `json:"pending"`          // entries waiting for their stack now
	OrphanStacks   uint64 `json:"orphan_stacks"`    // stacks no event waited for
	DecideCalls    uint64 `json:"decide_calls"`     // Decide calls
	DecideEntries  uint64 `json:"decide_entries"`   // entries offered
	DecideWanted   uint64 `json:"decide_wanted"`    // entries whose stack was wanted
	LostNotices    uint64 `json:"lost_notices"`     // lost notices
	HostLostEvents uint64 `json:"host_lost_events"` // events the host says it dropped
	HostLostStacks uint64 `json:"host_lost_stacks"` // stacks the host says it dropped
}

func newTracer() *tracer {
	return &tracer{now: time.Now, stderr: os.Stderr, tracefs: openTracefs}
}

// Describe validates and compiles the config and, on the first call that
// is not a check, makes the out directory and starts the printer. A check
// ([sdk.DescribeInfo.Check]: unwindd config check) creates nothing and
// writes nothing. A later call (a new host connection) keeps the maps and
// must give the same config.
func (t *tracer) Describe(_ context.Context, info sdk.DescribeInfo) (sdk.Description, error) {
	cfg, err := parseConfig(info.Config)
	if err != nil {
		return sdk.Description{}, fmt.Errorf("bpf: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return sdk.Description{}, fmt.Errorf("bpf: described after close")
	}
	var progs []*program
	if t.started {
		if !bytes.Equal(info.Config, t.raw) {
			return sdk.Description{}, fmt.Errorf("bpf: config differs from the first connection's, which is in use")
		}
		progs = *t.progs.Load()
	} else {
		var tfs fs.FS
		if t.tracefs != nil {
			tfs = t.tracefs()
		}
		if progs, err = compile(&cfg, tfs); err != nil {
			return sdk.Description{}, fmt.Errorf("bpf: %w", err)
		}
		if !info.Check {
			if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
				return sdk.Description{}, fmt.Errorf("bpf: %w", &sdk.ConfigError{Field: "out", Msg: err.Error()})
			}
			t.start(cfg, progs)
			t.raw = slices.Clone(info.Config)
		}
	}
	t.host = info.Host
	if t.host == nil {
		t.host = sdk.NewHost(nil) // logs to stderr
	}
	return sdk.Description{Name: "bpf", Version: version, Subscriptions: subscriptions(progs), Mode: sdk.ModeDecide}, nil
}

// start sets up the maps and starts the printer.
func (t *tracer) start(cfg config, progs []*program) {
	t.cfg = cfg
	t.maps = make([]*bpfMap, len(progs))
	maxKeys := 0
	for i, p := range progs {
		t.maps[i] = newMap(p, cfg.MaxKeys)
		if p.ustack >= 0 {
			t.stackers = append(t.stackers, p)
		}
		maxKeys = max(maxKeys, len(p.keys))
	}
	t.key = make([]keyVal, maxKeys)
	t.act = newActivation()
	t.pending = newPending(cfg.MaxPending)
	t.progs.Store(&progs)
	t.stop = make(chan struct{})
	if cfg.Interval > 0 {
		t.printer.Go(t.printLoop)
	}
	t.started = true
}

// subscriptions is the union of the programs' probes: the syscalls by
// name (or all of them), the tracepoints, and cpu-clock samples at the
// highest profile rate. A probe that no program keyed by ustack uses is
// events-only (sdk.EventsOnly): the host neither unwinds nor asks this
// plugin about an entry for its events alone, so that programs without
// ustack cost no unwind and no round trip.
func subscriptions(progs []*program) []sdk.Subscription {
	var subs []sdk.Subscription
	var names, stackNames []string
	all, allStack, hz, hzStack := false, false, uint32(0), false
	var tps, stackTps []string
	for _, p := range progs {
		stack := p.ustack >= 0
		switch p.probe.kind {
		case probeSyscall, probeSyscallExit:
			switch {
			case p.probe.syscall == "":
				all, allStack = true, allStack || stack
			case stack && !slices.Contains(stackNames, p.probe.syscall):
				stackNames = append(stackNames, p.probe.syscall)
			case !stack && !slices.Contains(names, p.probe.syscall):
				names = append(names, p.probe.syscall)
			}
		case probeTracepoint:
			if stack && !slices.Contains(stackTps, p.probe.tp) {
				stackTps = append(stackTps, p.probe.tp)
			} else if !stack && !slices.Contains(tps, p.probe.tp) {
				tps = append(tps, p.probe.tp)
			}
		case probeProfile:
			hz, hzStack = max(hz, p.probe.hz), hzStack || stack
		}
	}
	// A name with a stack program needs no events-only subscription too.
	names = slices.DeleteFunc(names, func(n string) bool { return slices.Contains(stackNames, n) })
	tps = slices.DeleteFunc(tps, func(tp string) bool { return slices.Contains(stackTps, tp) })
	if all {
		s := sdk.Syscalls()
		if !allStack {
			s = sdk.EventsOnly(s)
		}
		subs = append(subs, s)
	}
	if len(stackNames) > 0 {
		subs = append(subs, sdk.Syscalls(stackNames...))
	}
	if len(names) > 0 && !(all && !allStack) { // all syscalls events-only covers them already
		subs = append(subs, sdk.EventsOnly(sdk.Syscalls(names...)))
	}
	for _, tp := range stackTps {
		group, name, _ := strings.Cut(tp, ":")
		subs = append(subs, sdk.Tracepoint(group, name))
	}
	for _, tp := range tps {
		group, name, _ := strings.Cut(tp, ":")
		subs = append(subs, sdk.EventsOnly(sdk.Tracepoint(group, name)))
	}
	if hz > 0 {
		s := sdk.CPUClock(hz)
		if !hzStack {
			s = sdk.EventsOnly(s)
		}
		subs = append(subs, s)
	}
	return subs
}

// Events runs every program on every event and updates the maps; the
// events of ustack programs wait for their stack.
// CopiesEvents: Events keeps copies of the keys it computes, never an
// event (sdk.EventCopier).
func (t *tracer) CopiesEvents() bool { return true }

func (t *tracer) Events(_ context.Context, events []sdk.Event) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.started || t.closed {
		return nil
	}
	a := t.act
	for i := range events {
		ev := &events[i]
		t.st.Events++
		a.reset(ev)
		for _, m := range t.maps {
			t.run(m, a, ev)
		}
	}
	a.reset(nil)
	return nil
}

// run runs m's program on a's event ev.
func (t *tracer) run(m *bpfMap, a *activation, ev *sdk.Event) {
	p := m.prog
	ok, err := p.matches(a)
	if err != nil {
		m.Errors++
		return
	}
	if !ok {
		return
	}
	v, err := p.value(a)
	if err != nil {
		m.Errors++
		return
	}
	key := t.key[:len(p.keys)]
	if err := p.key(a, key); err != nil {
		m.Errors++
		return
	}
	m.Matched++
	if p.ustack < 0 {
		m.add(key, v)
		return
	}
	if ev.Cookie == 0 {
		key[p.ustack].s = stackNone
		t.st.NoStack++
		m.add(key, v)
		return
	}
	if old, ok := t.pending.add(ev.Cookie, pendingEvent{m: m, key: slices.Clone(key), val: v}); ok {
		t.st.Evicted++
		t.settle(old, stackNone)
	}
}

// settle aggregates waiting events with the stack key s.
func (t *tracer) settle(evs []pendingEvent, s string) {
	for i := range evs {
		e := &evs[i]
		e.key[e.m.prog.ustack].s = s
		e.m.add(e.key, e.val)
		switch s {
		case stackNone:
			t.st.NoStack++
		case stackLost:
			t.st.Lost++
		default:
			t.st.Joined++
		}
	}
}

// Stack aggregates the events waiting for s.Cookie with s.
func (t *tracer) Stack(_ context.Context, s sdk.Stack) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.started || t.closed {
		return nil
	}
	t.st.Stacks++
	evs, ok := t.pending.take(s.Cookie)
	if !ok {
		t.st.OrphanStacks++
		return nil
	}
	t.settle(evs, t.stacks.key(&s))
	return nil
}

// Lost aggregates the waiting events of the cookies the host names with
// the stack [lost].
func (t *tracer) Lost(_ context.Context, l sdk.Lost) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.started || t.closed {
		return nil
	}
	t.st.LostNotices++
	t.st.HostLostEvents += l.Events
	t.st.HostLostStacks += l.Stacks
	for _, c := range l.Cookies {
		if evs, ok := t.pending.take(c); ok {
			t.settle(evs, stackLost)
		}
	}
	return nil
}

// Decide wants the stack of an entry when one of its events passes the
// probe and the filter of a program keyed by ustack. It runs beside the
// delivery calls and reads only the compiled programs.
func (t *tracer) Decide(_ context.Context, entries []sdk.DecideEntry) ([]bool, error) {
	want := make([]bool, len(entries))
	pp := t.progs.Load()
	if pp == nil {
		return want, nil
	}
	t.decided.calls.Add(1)
	t.decided.entries.Add(uint64(len(entries)))
	a := newActivation()
	for i := range entries {
		want[i] = wants(*pp, a, entries[i].Events)
		if want[i] {
			t.decided.wanted.Add(1)
		}
	}
	return want, nil
}

// wants reports whether one of evs passes a ustack program.
func wants(progs []*program, a *activation, evs []sdk.Event) bool {
	for j := range evs {
		a.reset(&evs[j])
		for _, p := range progs {
			if p.ustack < 0 {
				continue
			}
			if ok, err := p.matches(a); ok && err == nil {
				return true
			}
		}
	}
	return false
}

// printLoop prints a section every interval until Close.
func (t *tracer) printLoop() {
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-tick.C:
			t.mu.Lock()
			if t.closed {
				t.mu.Unlock()
				return
			}
			t.sections++
			text, doc := t.render("interval", t.sections)
			t.mu.Unlock()
			t.write(text, doc)
		}
	}
}

// render makes a section of bpf.txt and bpf.json's document, under mu.
func (t *tracer) render(section string, n int) ([]byte, *jsonDoc) {
	now := t.now().UTC().Format("2006-01-02T15:04:05.000Z07:00")
	var b bytes.Buffer
	b.WriteString("--- " + now + " " + section)
	if n > 0 {
		b.WriteString(" " + strconv.Itoa(n))
	}
	b.WriteString(" ---\n")
	doc := &jsonDoc{Time: now, Section: section, Interval: n, Stats: t.stats()}
	for _, m := range t.maps {
		m.writeText(&b)
		doc.Maps = append(doc.Maps, m.jsonOf())
	}
	return b.Bytes(), doc
}

// stats returns the counts, with the decisions'.
func (t *tracer) stats() stats {
	st := t.st
	st.Pending = t.pending.len()
	st.DecideCalls, st.DecideEntries, st.DecideWanted = t.decided.calls.Load(), t.decided.entries.Load(), t.decided.wanted.Load()
	return st
}

// write appends text to bpf.txt and replaces bpf.json with doc. It runs
// on the printer's goroutine, or in Close once the printer is gone: never
// two at once.
func (t *tracer) write(text []byte, doc *jsonDoc) {
	dir := t.cfg.Out
	var errs []error
	if t.txt == nil {
		f, err := os.OpenFile(filepath.Join(dir, textFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			errs = append(errs, err)
		}
		t.txt = f
	}
	if t.txt != nil {
		if _, err := t.txt.Write(text); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", t.txt.Name(), err))
		}
	}
	if b, err := marshalDoc(doc); err != nil {
		errs = append(errs, err)
	} else if err := outfile.Write(dir, jsonFile, func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		t.mu.Lock()
		if t.werr == nil {
			t.werr = errs[0]
		}
		t.mu.Unlock()
	}
}

// Close prints the final maps, the events still waiting for their stack
// aggregated as [no stack], and logs a summary. A second Close does
// nothing.
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
	t.printer.Wait() // it takes mu: wait outside it

	t.mu.Lock()
	t.pending.drain(func(_ uint64, evs []pendingEvent) { t.settle(evs, stackNone) })
	text, doc := t.render("exit", 0)
	t.mu.Unlock()
	t.write(text, doc)
	if t.txt != nil {
		if err := t.txt.Close(); err != nil && t.werr == nil {
			t.werr = fmt.Errorf("write %s: %w", t.txt.Name(), err)
		}
	}

	st := doc.Stats
	var matched, errs, full uint64
	for _, m := range doc.Maps {
		matched, errs, full = matched+m.Matched, errs+m.Errors, full+m.Full
	}
	fields := map[string]string{"out": t.cfg.Out, "programs": strconv.Itoa(len(t.maps))}
	for _, kv := range []struct {
		k string
		v uint64
	}{
		{"events", st.Events}, {"matched", matched}, {"errors", errs}, {"map_full", full},
		{"stacks", st.Stacks}, {"joined", st.Joined}, {"no_stack", st.NoStack}, {"lost", st.Lost},
		{"evicted", st.Evicted}, {"orphan_stacks", st.OrphanStacks}, {"decide_calls", st.DecideCalls},
		{"decide_wanted", st.DecideWanted}, {"host_lost_events", st.HostLostEvents}, {"host_lost_stacks", st.HostLostStacks},
	} {
		fields[kv.k] = strconv.FormatUint(kv.v, 10)
	}
	if t.werr != nil {
		fields["error"] = t.werr.Error()
		t.host.CloseLog(t.stderr, sdk.LevelError, "bpf: write maps failed", fields)
		return fmt.Errorf("bpf: %w", t.werr)
	}
	t.host.CloseLog(t.stderr, sdk.LevelInfo, "bpf: wrote maps", fields)
	return nil
}

var _ interface {
	sdk.Tracer
	sdk.EventCopier
	sdk.Decider
	sdk.Closer
} = (*tracer)(nil)

func main() { sdk.Serve(newTracer()) }
