package main

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unwindd/unwindd/sdk"
	"github.com/unwindd/unwindd/sdk/sdktest"
)

// scenarioBlock is the config of the scenario: eight programs over
// openat, write, read and close, one of them keyed by ustack.
const scenarioBlock = `interval: 0
programs:
  - name: opens
    probe: syscall:openat
    by: [comm]
  - name: writes
    probe: syscall:write
    filter: args.fd == 1
    aggregate: hist(args.count)
    by: [comm]
  - name: stacks
    probe: syscall:write
    filter: args.fd == 2
    by: [comm, ustack]
  - name: sizes
    probe: syscall:read
    aggregate: lhist(args.count, 0, 100, 25)
  - name: total
    probe: syscall:write
    aggregate: sum(args.count)
  - name: closes
    probe: syscall:close
  - name: never
    probe: syscall:close
    filter: args.fd == 99
  - name: avg
    probe: syscall:read
    aggregate: avg(args.count)
    by: [pid, 'args.fd > 2']
`

// scenario is the scenario's deliveries, in the host's order: events
// before the stack of their cookie.
func scenario() []any {
	bash := func(ev sdk.Event, cookie uint64) sdk.Event { return with(ev, "bash", 100, 100, cookie) }
	sh := func(ev sdk.Event, cookie uint64) sdk.Event { return with(ev, "sh", 200, 201, cookie) }
	w := func(fd, n uint64) sdk.Event { return enter("write", 1, fd, 0x7ffc0000, n) }
	r := func(fd, n uint64) sdk.Event { return enter("read", 0, fd, 0x7ffc0000, n) }
	open := enter("openat", 257, 0xffffff9c, 0x55eeb89dd2b0, 0)
	return []any{
		bash(open, 0), bash(open, 0), sh(open, 0), bash(open, 0),
		bash(w(1, 1), 0), bash(w(1, 2), 0), bash(w(1, 3), 0), bash(w(1, 100), 0), sh(w(1, 5), 0),
		bash(w(2, 7), 0x11), bash(exit("write", 1, 7), 0x11),
		stackOf(0x11, stackA),
		bash(w(2, 8), 0x12),
		stackOf(0x12, stackA), // the same stack again
		bash(w(2, 9), 0x13),
		stackOf(0x13, stackB),
		sh(w(2, 1), 0x14),
		sdk.Lost{Events: 2, Stacks: 1, Cookies: []uint64{0x14, 0x99}},
		sh(w(2, 1), 0),        // no stack was requested
		stackOf(0x77, stackB), // nothing waits for it
		bash(w(2, 3), 0x15),   // its stack never comes: at close
		bash(r(3, 10), 0), bash(r(3, 30), 0), bash(r(3, 99), 0), bash(r(0, 100), 0), bash(r(0, 1000), 0), sh(r(4, 1), 0),
		bash(enter("close", 3, 3), 0),
	}
}

// scenarioText is bpf.txt after the scenario: the maps as bpftrace prints
// them. (A key line that goes on with a ustack ends in a space, after the
// comma, as bpftrace's do.)
const scenarioText = `--- 2026-11-27T20:01:54.123Z exit ---
@opens[sh]: 1
@opens[bash]: 3

@writes[sh]:
[4, 8)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|

@writes[bash]:
[1]                    1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |
[2, 4)                 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
[4, 8)                 0 |                                                    |
[8, 16)                0 |                                                    |
[16, 32)               0 |                                                    |
[32, 64)               0 |                                                    |
[64, 128)              1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |

@stacks[bash, 
	[no stack]
]: 1
@stacks[bash, 
	write+20
	main+80
]: 1
@stacks[sh, 
	[lost]
]: 1
@stacks[sh, 
	[no stack]
]: 1
@stacks[bash, 
	write+20
	log_line+19
	main+64
	libc.so.6+0x29d90
	0x1234
]: 2

@sizes:
[0, 25)                2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
[25, 50)               1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |
[50, 75)               0 |                                                    |
[75, 100)              1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |
[100, ...)             2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|

@total: 140

@closes: 1

@avg[200, true]: 1
@avg[100, true]: 46
@avg[100, false]: 550

`

// runScenario delivers the scenario to a tracer started on block, closes
// it, and returns its outputs and the tracer.
func runScenario(t *testing.T, block string) (string, *jsonDoc, *tracer) {
	t.Helper()
	tr, dir, _ := describe(t, block)
	sdktest.Call(t, tr, scenario()...)
	must(t, tr.Close())
	txt, doc := readOutputs(t, dir)
	return txt, doc, tr
}

func TestScenarioText(t *testing.T) {
	txt, _, _ := runScenario(t, scenarioBlock)
	if txt != scenarioText {
		t.Errorf("bpf.txt:\n%s\nwant:\n%s", txt, scenarioText)
	}
}

// TestScenarioJSON: bpf.json decodes to the same maps as bpf.txt shows,
// with the programs, keys (a ustack as an array of frames), values,
// buckets with bpftrace's bounds, and the counts; and it encodes back to
// the same bytes.
func TestScenarioJSON(t *testing.T) {
	_, doc, tr := runScenario(t, scenarioBlock)
	if doc.Time != "2026-11-27T20:01:54.123Z" || doc.Section != "exit" || doc.Interval != 0 || len(doc.Maps) != 8 {
		t.Fatalf("document %s %s %d with %d maps", doc.Time, doc.Section, doc.Interval, len(doc.Maps))
	}
	// Round trip: what was decoded encodes to the file's bytes.
	b, err := os.ReadFile(filepath.Join(tr.cfg.Out, jsonFile))
	if err != nil {
		t.Fatal(err)
	}
	again, err := marshalDoc(doc)
	if err != nil || string(again) != string(b) {
		t.Errorf("bpf.json decoded and encoded again differs (%v):\n%s\nwas\n%s", err, again, b)
	}

	type entry struct {
		key   string
		value int64
	}
	flat := func(m *jsonMap) []entry {
		var out []entry
		for _, e := range m.Entries {
			k, _ := json.Marshal(e.Key)
			out = append(out, entry{string(k), e.Value})
		}
		return out
	}
	for _, c := range []struct {
		name string
		want []entry
	}{
		{"@opens", []entry{{`["sh"]`, 1}, {`["bash"]`, 3}}},
		{"@writes", []entry{{`["sh"]`, 1}, {`["bash"]`, 4}}},
		{"@stacks", []entry{
			{`["bash",["[no stack]"]]`, 1}, {`["bash",["write+20","main+80"]]`, 1}, {`["sh",["[lost]"]]`, 1}, {`["sh",["[no stack]"]]`, 1},
			{`["bash",["write+20","log_line+19","main+64","libc.so.6+0x29d90","0x1234"]]`, 2},
		}},
		{"@sizes", []entry{{`[]`, 6}}},
		{"@total", []entry{{`[]`, 140}}},
		{"@closes", []entry{{`[]`, 1}}},
		{"@never", nil},
		{"@avg", []entry{{`[200,true]`, 1}, {`[100,true]`, 46}, {`[100,false]`, 550}}},
	} {
		if got := flat(mapNamed(t, doc, c.name)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s entries %v, want %v", c.name, got, c.want)
		}
	}

	w := mapNamed(t, doc, "@writes")
	if w.Probe != "syscall:write" || w.Filter != "args.fd == 1" || w.Aggregate != "hist(args.count)" || !slices.Equal(w.By, []string{"comm"}) || w.Matched != 5 || w.Errors != 0 {
		t.Errorf("@writes program %+v", w)
	}
	bucket := func(min, max *int64, n uint64) string {
		s := "("
		if min != nil {
			s += strconv.FormatInt(*min, 10)
		}
		s += ","
		if max != nil {
			s += strconv.FormatInt(*max, 10)
		}
		return s + ")=" + strconv.FormatUint(n, 10)
	}
	buckets := func(m *jsonMap, i int) string {
		var out []string
		for _, b := range m.Entries[i].Buckets {
			out = append(out, bucket(b.Min, b.Max, b.Count))
		}
		return strings.Join(out, " ")
	}
	if got, want := buckets(w, 1), "(1,1)=1 (2,3)=2 (4,7)=0 (8,15)=0 (16,31)=0 (32,63)=0 (64,127)=1"; got != want {
		t.Errorf("@writes[bash] buckets %s, want %s", got, want)
	}
	if got, want := buckets(mapNamed(t, doc, "@sizes"), 0), "(0,24)=2 (25,49)=1 (50,74)=0 (75,99)=1 (100,)=2"; got != want {
		t.Errorf("@sizes buckets %s, want %s", got, want)
	}
	if a := mapNamed(t, doc, "@avg").Entries[2]; a.Count != 2 || a.Sum == nil || *a.Sum != 1100 {
		t.Errorf("@avg[100, false] %+v, want count 2, sum 1100", a)
	}
	want := stats{Events: 23, Stacks: 4, Joined: 3, NoStack: 2, Lost: 1, OrphanStacks: 1, LostNotices: 1, HostLostEvents: 2, HostLostStacks: 1}
	if doc.Stats != want {
		t.Errorf("stats %+v\nwant  %+v", doc.Stats, want)
	}
	if logged := tr.stderr.(*strings.Builder).String(); !strings.Contains(logged, "bpf: wrote maps\t") || !strings.Contains(logged, "\tjoined=3\t") || !strings.Contains(logged, "\tmatched=39\t") {
		t.Errorf("the summary on stderr (no host): %q", logged)
	}
}

// TestNegativeHistJSON: the (…, 0) bucket has no min.
func TestNegativeHistJSON(t *testing.T) {
	buckets := make([]uint64, histBuckets)
	buckets[0], buckets[2], buckets[64] = 4, 1, 1
	got := histJSON(buckets)
	if len(got) != 65 || got[0].Min != nil || *got[0].Max != -1 || got[0].Count != 4 || *got[64].Min != 1<<62 || *got[64].Max != 1<<63-1 {
		t.Errorf("buckets %d, first %+v, last %+v", len(got), got[0], got[len(got)-1])
	}
}

// TestDecide: an entry's stack is wanted exactly when one of its events
// passes a program keyed by ustack; other programs' matches cost nothing.
func TestDecide(t *testing.T) {
	tr, _, _ := describe(t, `programs:
  - {probe: 'syscall:openat', by: [comm]}
  - {probe: 'syscall:write', filter: 'args.fd == 42', aggregate: hist(args.count), by: [comm]}
  - {probe: 'syscall:getpid', by: [ustack]}
  - {probe: 'syscall_exit:read', filter: 'ret < 0', by: [comm, ustack]}
`)
	defer tr.Close()
	open := enter("openat", 257, 0xffffff9c, 0, 0)
	entries := []sdk.DecideEntry{
		{PID: 1, TID: 1, Events: []sdk.Event{open, exit("openat", 257, 3)}},
		{PID: 1, TID: 1, Events: []sdk.Event{enter("write", 1, 42, 0, 10)}},
		{PID: 1, TID: 1, Events: []sdk.Event{enter("getpid", 39), exit("getpid", 39, 1)}},
		{PID: 1, TID: 1, Events: []sdk.Event{enter("read", 0, 3, 0, 10), exit("read", 0, 10)}},
		{PID: 1, TID: 1, Events: []sdk.Event{enter("read", 0, 3, 0, 10), exit("read", 0, -11)}},
		{PID: 1, TID: 1},
	}
	want, err := tr.Decide(context.Background(), entries)
	if err != nil || !slices.Equal(want, []bool{false, false, true, false, true, false}) {
		t.Errorf("Decide = %v, %v; want [false false true false true false]", want, err)
	}
	st := tr.stats()
	if st.DecideCalls != 1 || st.DecideEntries != 6 || st.DecideWanted != 2 {
		t.Errorf("decide counts %+v", st)
	}
	// Without ustack programs, nothing is wanted.
	tr2, _, _ := describe(t, "programs: [{probe: 'syscall:getpid'}]\n")
	defer tr2.Close()
	if want, err := tr2.Decide(context.Background(), entries); err != nil || slices.Contains(want, true) {
		t.Errorf("Decide without ustack = %v, %v", want, err)
	}
}

// TestEvict: more than max_pending entries waiting for their stack: the
// oldest goes first, without a stack, and its stack is an orphan later.
func TestEvict(t *testing.T) {
	tr, dir, _ := describe(t, "interval: 0\nmax_pending: 2\nprograms: [{probe: 'syscall:getpid', by: [tid, ustack]}]\n")
	g := func(tid int32, cookie uint64) sdk.Event { return with(enter("getpid", 39), "app", 1, tid, cookie) }
	sdktest.Call(t, tr,
		g(1, 0xa), g(1, 0xa), g(2, 0xb), g(3, 0xc), // 0xa (two events) is evicted
		stackOf(0xa, stackB), stackOf(0xb, stackB), g(4, 0xd), stackOf(0xc, stackA), stackOf(0xd, stackA),
	)
	must(t, tr.Close())
	txt, doc := readOutputs(t, dir)
	want := "--- 2026-11-27T20:01:54.123Z exit ---\n" +
		"@getpid[2, \n\twrite+20\n\tmain+80\n]: 1\n" +
		"@getpid[3, \n\twrite+20\n\tlog_line+19\n\tmain+64\n\tlibc.so.6+0x29d90\n\t0x1234\n]: 1\n" +
		"@getpid[4, \n\twrite+20\n\tlog_line+19\n\tmain+64\n\tlibc.so.6+0x29d90\n\t0x1234\n]: 1\n" +
		"@getpid[1, \n\t[no stack]\n]: 2\n\n"
	if txt != want {
		t.Errorf("bpf.txt:\n%q\nwant\n%q", txt, want)
	}
	if st := doc.Stats; st.Evicted != 1 || st.NoStack != 2 || st.Joined != 3 || st.OrphanStacks != 1 || st.Pending != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestPendingBounded: entries whose stacks come keep the pending queue
// small, however many pass.
func TestPendingBounded(t *testing.T) {
	p := newPending(4)
	for c := uint64(1); c < 100000; c++ {
		p.add(c, pendingEvent{})
		if c%3 != 0 { // some wait longer
			p.take(c)
		}
		if len(p.order) > 2*p.max+2048 {
			t.Fatalf("after %d entries, order holds %d cookies for %d waiting", c, len(p.order), p.len())
		}
	}
	if p.len() != 4 || p.Evicted == 0 {
		t.Errorf("%d waiting, %d evicted", p.len(), p.Evicted)
	}
	var got []uint64
	p.drain(func(c uint64, _ []pendingEvent) { got = append(got, c) })
	if !slices.Equal(got, []uint64{99990, 99993, 99996, 99999}) || p.len() != 0 {
		t.Errorf("drained %v, want the newest four, oldest first", got)
	}
}

// TestInterval: a section every interval, appended to bpf.txt, bpf.json
// replaced by the latest; the exit section last.
func TestInterval(t *testing.T) {
	tr, dir, _ := describe(t, "interval: 100ms\nprograms: [{name: n, probe: 'syscall:getpid'}]\n")
	sdktest.Call(t, tr, enter("getpid", 39))
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, textFile))
		if strings.Count(string(b), " interval ") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no two interval sections in 10s:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, doc := readOutputs(t, dir)
	if doc.Section != "interval" || doc.Interval < 2 || mapNamed(t, doc, "@n").Entries[0].Value != 1 {
		t.Errorf("bpf.json during the run: %+v", doc)
	}
	sdktest.Call(t, tr, enter("getpid", 39))
	must(t, tr.Close())
	must(t, tr.Close()) // a second Close does nothing
	txt, doc := readOutputs(t, dir)
	sections := strings.Split(strings.TrimPrefix(txt, "--- "), "\n--- ")
	last := sections[len(sections)-1]
	if !strings.HasPrefix(sections[0], "2026-11-27T20:01:54.123Z interval 1 ---\n@n: 1\n") ||
		last != "2026-11-27T20:01:54.123Z exit ---\n@n: 2\n\n" || doc.Section != "exit" || doc.Maps[0].Entries[0].Value != 2 {
		t.Errorf("bpf.txt:\n%s\nbpf.json %+v", txt, doc)
	}
}

// TestDescribeAgain: a second connection keeps the maps when it brings
// the same config, and is refused with another.
func TestDescribeAgain(t *testing.T) {
	tr, dir, _ := describe(t, "programs: [{name: n, probe: 'syscall:getpid'}]\n")
	sdktest.Call(t, tr, enter("getpid", 39))
	cfg := []byte("out: " + dir + "\nprograms: [{name: n, probe: 'syscall:getpid'}]\n")
	if _, err := tr.Describe(context.Background(), sdk.DescribeInfo{Config: cfg}); err != nil {
		t.Fatalf("Describe again: %v", err)
	}
	sdktest.Call(t, tr, enter("getpid", 39))
	if _, err := tr.Describe(context.Background(), sdk.DescribeInfo{Config: append(cfg, "interval: 1s\n"...)}); err == nil || !strings.Contains(err.Error(), "config differs") {
		t.Errorf("Describe with another config: %v", err)
	}
	must(t, tr.Close())
	if _, err := tr.Describe(context.Background(), sdk.DescribeInfo{Config: cfg}); err == nil {
		t.Error("Describe after Close succeeded")
	}
	if _, doc := readOutputs(t, dir); doc.Maps[0].Entries[0].Value != 2 {
		t.Errorf("@n = %d, want 2", doc.Maps[0].Entries[0].Value)
	}
}

// TestUnwritableOut: an out directory that cannot be made is a config
// error for out.
func TestUnwritableOut(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	must(t, os.WriteFile(file, nil, 0o644))
	tr := newTracer()
	_, err := tr.Describe(context.Background(), sdk.DescribeInfo{Config: []byte("out: " + file + "/sub\nprograms: [{probe: 'syscall:read'}]")})
	checkConfigError(t, err, "out", "not a directory")
}

// TestCheck: a Describe that only checks the config compiles it, refuses
// its mistakes, and creates nothing: no directory, and no file at Close.
func TestCheck(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	tr := newTracer()
	tr.tracefs = fixtureTracefs
	d, err := tr.Describe(context.Background(), sdk.DescribeInfo{Check: true, Config: []byte("out: " + dir + "\n" + scenarioBlock)})
	if err != nil || d.Name != "bpf" || d.Mode != sdk.ModeDecide || len(d.Subscriptions) != 2 {
		t.Fatalf("Describe to check: %+v, %v", d, err)
	}
	_, err = tr.Describe(context.Background(), sdk.DescribeInfo{Check: true, Config: []byte("out: " + dir + "\nprograms: [{probe: 'syscall:read', filter: 'comm == 1'}]")})
	checkConfigError(t, err, "programs[0].filter", "found no matching overload")
	sdktest.Call(t, tr, enter("write", 1, 1, 0, 1))
	want, _ := tr.Decide(context.Background(), []sdk.DecideEntry{{Events: []sdk.Event{enter("write", 1, 2, 0, 1)}}})
	must(t, tr.Close())
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) || slices.Contains(want, true) {
		t.Errorf("after a check: %v (want no %s), Decide %v", err, dir, want)
	}
}
