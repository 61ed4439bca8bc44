package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unwindd/unwindd/sdk"
	"github.com/unwindd/unwindd/sdk/syscalls"
	"github.com/unwindd/unwindd/sdk/tracefs"
)

var update = flag.Bool("update", false, "rewrite testdata/trace.golden")

// TestGolden runs the scenario and compares trace.txt with
// testdata/trace.golden (go test -update rewrites it; read the diff).
func TestGolden(t *testing.T) {
	got, _ := runScenario(t, fixtureTracefs)
	golden := filepath.Join("testdata", "trace.golden")
	if *update {
		must(t, os.WriteFile(golden, []byte(got), 0o644))
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("trace.txt differs from %s:\n%s", golden, lineDiff(string(want), got))
	}
	checkTrace(t, got)
}

// lineDiff shows the first lines where got differs from want.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	n := 0
	for i := 0; i < max(len(w), len(g)) && n < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, wl, gl)
			n++
		}
	}
	return b.String()
}

var (
	reCookie = regexp.MustCompile(` cookie=0x([0-9a-f]+)`)
	reHeader = regexp.MustCompile(`^ *(.+)-(\d+) +\[(-?\d{2,3})\] \.{5} +\d+\.\d{6}: (.*)$`)
)

// checkTrace checks the rules of trace.txt that hold for any input: every
// line is an event, a stack header, a frame or a lost notice; frames
// follow a header; a cookie's stack comes once, after every event that
// carries the cookie.
func checkTrace(t *testing.T, trace string) {
	t.Helper()
	stacked := map[string]bool{}
	inStack := false
	for i, line := range strings.Split(strings.TrimSuffix(trace, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, " => "):
			if !inStack {
				t.Errorf("line %d: a frame outside a stack: %q", i+1, line)
			}
			continue
		case strings.HasPrefix(line, "CPU:? [LOST "):
			inStack = false
			continue
		}
		m := reHeader.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("line %d: not a trace line: %q", i+1, line)
			continue
		}
		c := reCookie.FindStringSubmatch(line)
		inStack = strings.HasPrefix(m[4], "<user stack trace>")
		switch {
		case inStack && c == nil:
			t.Errorf("line %d: a stack without a cookie: %q", i+1, line)
		case inStack && stacked[c[1]]:
			t.Errorf("line %d: a second stack for cookie 0x%s", i+1, c[1])
		case inStack:
			stacked[c[1]] = true
		case c != nil && stacked[c[1]]:
			t.Errorf("line %d: an event of cookie 0x%s after its stack", i+1, c[1])
		}
	}
}

func TestTracerCounts(t *testing.T) {
	trace, tr := runScenario(t, fixtureTracefs)
	o := tr.out
	if o.events != 17 || o.stacks != 5 || o.orphans != 1 || o.lostNotices != 1 || o.pending.evicted != 0 {
		t.Errorf("events %d stacks %d orphans %d lost notices %d evicted %d; want 17 5 1 1 0", o.events, o.stacks, o.orphans, o.lostNotices, o.pending.evicted)
	}
	if len(o.pending.m) != 2 { // 0x30, whose stack never came, and 0x2d, named by the lost notice
		t.Errorf("%d entries still wait for their stack, want 2", len(o.pending.m))
	}
	if want := (counts{HostLostEvents: 3, HostLostStacks: 1}); tr.counts != want {
		t.Errorf("counts %+v, want %+v", tr.counts, want)
	}
	dir := tr.cfg.Out
	wantLog := "ftrace: wrote trace\tevents=17\tevicted=0\thost_lost_events=3\thost_lost_stacks=1\tlost_notices=1\torphan_stacks=1\tout=" + filepath.Join(dir, traceFile) + "\tstacks=5\n"
	if got := tr.stderr.(*strings.Builder).String(); got != wantLog {
		t.Errorf("summary:\n%q\nwant\n%q", got, wantLog)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != traceFile {
		t.Errorf("out dir holds %v, want only %s", ents, traceFile)
	}
	if info, err := os.Stat(filepath.Join(dir, traceFile)); err != nil || info.Mode().Perm() != 0o644 {
		t.Errorf("trace.txt: %v, %v; want mode 0644", info, err)
	}
	for _, c := range []string{"0x2a", "0x2b", "0x2c", "0x2e", "0x2f"} {
		if n := strings.Count(trace, "<user stack trace> cookie="+c+" "); n != 1 {
			t.Errorf("cookie %s: %d stacks, want 1", c, n)
		}
	}
	// Calls after Close are ignored, and a second Close does nothing.
	ctx := context.Background()
	must(t, tr.Events(ctx, []sdk.Event{bash(sdk.KindSyscallEnter, "read", 1, 0, nil)}))
	must(t, tr.Stack(ctx, sdk.Stack{Cookie: 1, End: sdk.EndOutermost}))
	must(t, tr.Lost(ctx, sdk.Lost{Events: 1}))
	must(t, tr.Close())
	if tr.out.events != 17 {
		t.Error("an event after Close was counted")
	}
}

// Without tracefs, the arguments of a raw syscall event are arg0 to arg5;
// events of the syscalls: tracepoints still name theirs.
func TestNoTracefs(t *testing.T) {
	got, _ := runScenario(t, func() fs.FS { return nil })
	for _, want := range []string{
		"sys_openat(arg0: 0xffffff9c, arg1: 0x55eeb89dd2b0, arg2: 0, arg3: 0, arg4: 0, arg5: 0x20) cookie=0x2a\n",
		"sys_getpid(arg0: 0, arg1: 0, arg2: 0, arg3: 0, arg4: 0, arg5: 0)\n",
		"sys_openat(dfd: 0xffffff9c, filename: 0x55eeb89dd630, flags: 0, mode: 0) cookie=0x2e\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("trace.txt lacks %q:\n%s", want, got)
		}
	}
}

// The flusher writes buffered lines to the file without waiting for Close.
func TestFlushes(t *testing.T) {
	dir := t.TempDir()
	tr := newTracer()
	tr.tracefs = fixtureTracefs
	tr.stderr = io.Discard
	tr.flushEvery = 10 * time.Millisecond
	ctx := context.Background()
	if _, err := tr.Describe(ctx, sdk.DescribeInfo{Config: []byte("out: " + dir)}); err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	must(t, tr.Events(ctx, []sdk.Event{bash(sdk.KindSyscallEnter, "close", 1_000_000_000, 7, raw(3, 3))}))
	want := "            bash-24392   [000] .....     1.000000: sys_close(fd: 3) cookie=0x7\n"
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, traceFile))
		if err == nil && string(b) == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace.txt is %q (%v) after 10s, want %q", b, err, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A write error reaches the host as the delivery call's error.
func TestWriteError(t *testing.T) {
	dir := t.TempDir()
	tr := newTracer()
	tr.tracefs = fixtureTracefs
	tr.stderr = new(strings.Builder)
	ctx := context.Background()
	if _, err := tr.Describe(ctx, sdk.DescribeInfo{Config: []byte("out: " + dir)}); err != nil {
		t.Fatal(err)
	}
	tr.file.Close() // the next flush fails
	tr.mu.Lock()
	tr.buf.Reset(tr.file)
	tr.mu.Unlock()
	big := make([]sdk.Event, bufferSize/60)
	for i := range big {
		big[i] = bash(sdk.KindSyscallEnter, "close", uint64(i), 0, raw(3, 3))
	}
	err := tr.Events(ctx, big)
	if err == nil || !strings.Contains(err.Error(), "ftrace: write "+filepath.Join(dir, traceFile)) || !errors.Is(err, os.ErrClosed) {
		t.Errorf("Events after the file broke: %v", err)
	}
	if err := tr.Close(); err == nil {
		t.Error("Close after a write error: nil")
	}
	if got := tr.stderr.(*strings.Builder).String(); !strings.Contains(got, "ftrace: write trace failed") {
		t.Errorf("summary %q", got)
	}
}

func TestDescribe(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "file")
	must(t, os.WriteFile(file, nil, 0o644))
	for _, c := range []struct{ config, want string }{
		{"syscalls: [read]", "ftrace: config: out is required"},
		{"out: " + t.TempDir() + "\nsyscalls: [reed]", `ftrace: config: syscalls[0]: no x86-64 syscall "reed" (did you mean "read"?)`},
		{"out: " + file, "ftrace: config: out: mkdir " + file},
		{"out: " + filepath.Join(file, "sub"), "ftrace: config: out: mkdir " + file},
	} {
		_, err := newTracer().Describe(ctx, sdk.DescribeInfo{Config: []byte(c.config)})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Describe(%q) = %v, want an error containing %q", c.config, err, c.want)
		}
		if ces := sdk.ConfigErrors(err); len(ces) != 1 {
			t.Errorf("Describe(%q): config errors %v, want one", c.config, ces)
		}
	}

	// Subscriptions and the stack filter (mode always throughout: the
	// host checks the filter).
	for _, c := range []struct {
		config string
		filter sdk.StackFilter
		subs   string
	}{
		{"", sdk.StackFilter{}, "syscalls:*"},
		{"syscalls: []\ntracepoints: []", sdk.StackFilter{}, "syscalls:*"},
		{"syscalls: [openat, read]\ncomm: [myapp]", sdk.StackFilter{Comms: []string{"myapp"}}, "syscalls:openat,read"},
		{"pid: [1]\ntracepoints: [sched:sched_switch]", sdk.StackFilter{IDs: []int32{1}}, "syscalls:* sched:sched_switch"},
		{"comm: [myapp, sh]\npid: [10, 31]", sdk.StackFilter{IDs: []int32{10, 31}, Comms: []string{"myapp", "sh"}}, "syscalls:*"},
	} {
		tr := newTracer()
		tr.stderr = io.Discard
		d, err := tr.Describe(ctx, sdk.DescribeInfo{Config: []byte("out: " + t.TempDir() + "\n" + c.config)})
		if err != nil {
			t.Fatalf("Describe(%q): %v", c.config, err)
		}
		var subs []string
		for _, s := range d.Subscriptions {
			subs = append(subs, s.String())
		}
		if d.Mode != sdk.ModeAlways || !reflect.DeepEqual(d.StackFilter, c.filter) || strings.Join(subs, " ") != c.subs || d.CheckValid() != nil {
			t.Errorf("Describe(%q) = mode %v, stack filter %+v, subscriptions %q; want always, %+v, %q", c.config, d.Mode, d.StackFilter, subs, c.filter, c.subs)
		}
		must(t, tr.Close())
	}

	// A second Describe (a new connection) must keep the config.
	tr := newTracer()
	tr.stderr = io.Discard
	dir := t.TempDir()
	if _, err := tr.Describe(ctx, sdk.DescribeInfo{Config: []byte("out: " + dir + "\ncomm: [a]")}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Describe(ctx, sdk.DescribeInfo{Config: []byte("# again\ncomm: [a]\nout: " + dir)}); err != nil {
		t.Errorf("second Describe with the same config: %v", err)
	}
	for _, cfg := range []string{"out: " + t.TempDir() + "\ncomm: [a]", "out: " + dir + "\ncomm: [b]"} {
		if _, err := tr.Describe(ctx, sdk.DescribeInfo{Config: []byte(cfg)}); err == nil || !strings.Contains(err.Error(), "differs from the first connection's") {
			t.Errorf("second Describe with %q: %v, want an error", cfg, err)
		}
	}
	must(t, tr.Close())
	if _, err := tr.Describe(ctx, sdk.DescribeInfo{Config: []byte("out: " + dir + "\ncomm: [a]")}); err == nil {
		t.Error("Describe after Close: nil")
	}
	if b, err := os.ReadFile(filepath.Join(dir, traceFile)); err != nil || len(b) != 0 {
		t.Errorf("empty run: trace.txt %q, %v", b, err)
	}
}

// Close without a Describe writes nothing and does not fail.
func TestCloseUndescribed(t *testing.T) {
	must(t, newTracer().Close())
}

func TestPending(t *testing.T) {
	p := newPending(3)
	for c := uint64(1); c <= 5; c++ {
		p.put(c, entryInfo{tid: int32(c)})
	}
	if _, ok := p.take(2); ok || p.evicted != 2 || len(p.m) != 3 {
		t.Errorf("after 5 puts into 3: evicted %d, %d held", p.evicted, len(p.m))
	}
	if e, ok := p.take(4); !ok || e.tid != 4 {
		t.Errorf("take(4) = %+v, %v", e, ok)
	}
	// Many entries taken as they come: the order list stays small.
	for c := uint64(100); c < 100000; c++ {
		p.put(c, entryInfo{})
		p.take(c)
	}
	if len(p.order) > 2*len(p.m)+1025 || p.evicted != 2 {
		t.Errorf("order holds %d cookies for %d entries; evicted %d", len(p.order), len(p.m), p.evicted)
	}
}

func TestParseFormatArgs(t *testing.T) {
	for _, c := range []struct {
		name string
		want []string
	}{
		{"openat", []string{"dfd", "filename", "flags", "mode"}},
		{"read", []string{"fd", "buf", "count"}},
		{"newfstat", []string{"fd", "statbuf"}},
		{"getpid", []string{}},
	} {
		b, err := fs.ReadFile(fixtureTracefs(), "events/syscalls/sys_enter_"+c.name+"/format")
		if err != nil {
			t.Fatal(err)
		}
		if got := parseFormatArgs(b); !slices.Equal(got, c.want) || got == nil {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	if got := parseFormatArgs([]byte("name: sched_switch\nformat:\n\tfield:int prev_pid;\toffset:8;\tsize:4;\tsigned:1;\n")); got != nil {
		t.Errorf("a format without __syscall_nr: %q", got)
	}
	// Newer kernels add fields for the strings arguments point to.
	if got := parseFormatArgs([]byte("name: sys_enter_unlink\nformat:\n\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n" +
		"\tfield:const char * filename;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:__data_loc char[] __filename_val;\toffset:24;\tsize:4;\tsigned:0;\n")); !slices.Equal(got, []string{"filename"}) {
		t.Errorf("with a __filename_val field: %q", got)
	}
	a := newArgNames(fixtureTracefs())
	if _, ok := a.lookup("mseal"); ok {
		t.Error("lookup(mseal) in the fixture: found")
	}
	if names, ok := a.lookup("openat"); !ok || len(names) != 4 {
		t.Errorf("lookup(openat) = %q, %v", names, ok)
	}
}

// The real tracefs, when the test can read it, names the arguments of
// every syscall of the table that has a tracepoint, the aliases included.
func TestRealTracefs(t *testing.T) {
	fsys := openTracefs()
	if fsys == nil {
		t.Skip("no readable tracefs at " + strings.Join(tracefs.Dirs, " or "))
	}
	a := newArgNames(fsys)
	found := 0
	for _, n := range syscalls.All() {
		if n == "" {
			continue
		}
		if _, ok := a.lookup(kernelName(n)); ok {
			found++
		}
	}
	if names, ok := a.lookup("newfstat"); !ok || !slices.Equal(names, []string{"fd", "statbuf"}) {
		t.Errorf("newfstat: %q, %v", names, ok)
	}
	if found < 300 {
		t.Errorf("only %d syscalls have a format in tracefs", found)
	}
	// Every syscall tracepoint of the kernel is in the table.
	ents, err := fs.ReadDir(fsys, "events/syscalls")
	if err != nil {
		t.Fatal(err)
	}
	table := map[string]bool{}
	for _, n := range syscalls.All() {
		table[kernelName(n)] = true
	}
	for _, e := range ents {
		if n, ok := strings.CutPrefix(e.Name(), "sys_enter_"); ok && !table[n] {
			t.Errorf("tracefs has %s, which syscalls.go lacks: add the kernel's new syscalls to the table", e.Name())
		}
	}
}
