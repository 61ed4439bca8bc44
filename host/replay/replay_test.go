package replay

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/deferred"
	"github.com/unwindd/unwindd/host/entry"
	"github.com/unwindd/unwindd/host/perfdata"
	"github.com/unwindd/unwindd/host/pluginhost"
	"github.com/unwindd/unwindd/internal/testutil"
)

// testPlugin is testdata/plugin, built once by TestMain.
var testPlugin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "replay-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testPlugin = filepath.Join(dir, "plugin")
	cmd := exec.Command("go", "build", "-o", testPlugin, "./testdata/plugin")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build testdata/plugin:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// record is testdata/plugin's Record.
type record struct {
	Kind     string
	Name     string
	Time     uint64
	PID, TID int32
	Comm     string
	Cookie   uint64
	HasStack bool
	Funcs    []string
	Addrs    []uint64
	Types    []string
	Paths    []string
	Offsets  []uint64
	End      string
	Fields   map[string]string
}

// chainSrc spins ~300 ms at the bottom of main → a → b → leaf, reading the
// clock seldom: the frame-pointer walk cannot step out of the vdso's and
// libc's functions, which have no frame pointer (libdw can, with CFI).
const chainSrc = `#include <time.h>
static volatile unsigned long sink;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
void leaf(double end) { while (now() < end) for (int i = 0; i < 1000000; i++) sink++; }
void b(double end) { leaf(end); sink++; }
void a(double end) { b(end); sink++; }
int main(void) { a(now() + 0.3); sink++; return 0; }
`

func needPerf(t *testing.T) string {
	t.Helper()
	perf, err := exec.LookPath("perf")
	if err != nil {
		testutil.Need(t, "perf", "records and reads the test's perf.data: "+err.Error())
	}
	return perf
}

// perfRecord records exe with perf record and the call-graph mode given.
func perfRecord(t *testing.T, perf, exe, callGraph string) string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "perf.data")
	out, err := exec.Command(perf, "record", "-q", "-e", "cpu-clock", "-F", "999", "--call-graph", callGraph, "-o", data, "--", exe).CombinedOutput()
	if err != nil {
		testutil.Need(t, "perf", fmt.Sprintf("perf record: %v: %s", err, out))
	}
	return data
}

// perfScript returns perf script's user-space function names per sample,
// keyed by "tid time", from the leaf up, without symbol versions
// ("clock_gettime@@GLIBC_2.17").
func perfScript(t *testing.T, perf, data string) map[string][]string {
	t.Helper()
	out, err := exec.Command(perf, "script", "-i", data, "-F", "tid,time,ip,sym,dso", "--no-inline").Output()
	if err != nil {
		t.Fatalf("perf script: %v", err)
	}
	got := map[string][]string{}
	var key string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
			key = ""
		case !strings.HasPrefix(line, "\t"): // a sample's header; perf pads a short tid with spaces
			if len(f) >= 2 {
				key = f[0] + " " + strings.TrimSuffix(f[1], ":")
				got[key] = nil
			}
		case key != "" && len(f) >= 3:
			if f[len(f)-1] == "([kernel.kallsyms])" {
				continue
			}
			sym, _, _ := strings.Cut(f[1], "@")
			got[key] = append(got[key], sym)
		}
	}
	return got
}

// upTo cuts the stack fs (leaf first) after its first frame in function
// top; ok says whether there was one.
func upTo(fs []string, top string) (cut []string, ok bool) {
	for i, f := range fs {
		if f == top {
			return fs[:i+1], true
		}
	}
	return fs, false
}

func readRecords(t *testing.T, path string) []record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rs []record
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		rs = append(rs, r)
	}
	return rs
}

// program is a workload of the stack comparisons.
type program struct {
	name string
	exe  func(t *testing.T) string
	comm string // of the program's threads
	top  string // the stacks compared end here
	// all compares every sample, sample by sample; otherwise only those
	// whose stack reaches top, on either side.
	all bool
}

var (
	cChain = program{"c", func(t *testing.T) string {
		return testutil.BuildC(t, "", "chain", chainSrc, "-O0", "-g", "-fno-omit-frame-pointer")
	}, "chain", "main", true}
	goChain = program{"go", func(t *testing.T) string { return testutil.BuildGo(t, "gochain", testutil.GoChainSrc) }, "gochain", "main.main", false}
)

// TestReplayMatchesPerfScript replays recordings of a C program and of a Go
// program through the host into testdata/plugin and checks, sample by
// sample, that the functions of the stack it got, leaf to main (main.main
// for Go), are those perf script prints on the same file: libdw's or
// libunwind's unwind for dwarf, the kernel's callchain for fp.
//
// A Go program runs more threads than the one that runs main.main: sysmon,
// the GC's workers, threads started before main. Their samples are not the
// workload, and their stacks are the runtime's, often on g0 or signal
// stacks; so the Go case compares only the samples whose stack reaches
// main.main on either side: a stack that perf script walks up to main.main
// and the replay does not (or the other way round) still counts as a
// mismatch. At least 80% of the samples must be of main.main, or the
// filter would be hiding the workload.
//
// perf script cannot unwind a Go program's dwarf recording: Go writes no
// .eh_frame, and perf's unwinder (libunwind in Debian's perf) reads only
// that, so it prints the leaf alone. There the leaves of all samples are
// compared sample by sample, and the whole stacks as a distribution, against perf script's
// stacks of an fp recording of the same program (the kernel's walk), as
// [TestO2Distribution] does.
func TestReplayMatchesPerfScript(t *testing.T) {
	perf := needPerf(t)
	for _, prog := range []program{cChain, goChain} {
		t.Run(prog.name, func(t *testing.T) {
			exe := prog.exe(t)
			fpData := perfRecord(t, perf, exe, "fp")
			for _, tt := range []struct {
				callGraph string
				frameType string // of the frames after the first
			}{{"dwarf", "fp"}, {"fp", "callchain"}} {
				t.Run(tt.callGraph, func(t *testing.T) {
					data := fpData
					if tt.callGraph != "fp" {
						data = perfRecord(t, perf, exe, tt.callGraph)
					}
					rs, dur := replayFileWith(t, data, fpOnly)
					want := perfScript(t, perf, data)
					leafOnly := prog.name == "go" && tt.callGraph == "dwarf"
					same, typed, compared := 0, 0, 0
					for i, r := range rs {
						key := fmt.Sprintf("%d %d.%06d", r.TID, r.Time/1e9, r.Time%1e9/1e3)
						w, ok := want[key]
						w, wtop := upTo(w, prog.top)
						got, gtop := upTo(r.Funcs, prog.top)
						if !r.HasStack || r.Cookie == 0 || r.Comm != prog.comm {
							t.Errorf("sample %s: stack %v cookie %#x comm %q", key, r.HasStack, r.Cookie, r.Comm)
						}
						if leafOnly { // every sample's, whichever thread's
							w, got = w[:min(len(w), 1)], got[:min(len(got), 1)]
						} else if !prog.all && !wtop && !gtop {
							continue
						}
						compared++
						if ok && strings.Join(got, ";") == strings.Join(w, ";") {
							same++
						} else if i < 50 || testing.Verbose() {
							t.Logf("sample %s: ours %q, perf script %q (%v)", key, got, w, ok)
						}
						if len(r.Types) > 1 && r.Types[1] == tt.frameType {
							typed++
						}
					}
					if compared*100 < len(rs)*80 {
						t.Errorf("%d of %d samples reach %s, want ≥ 80%%", compared, len(rs), prog.top)
					}
					if same*100 < compared*95 {
						t.Errorf("%d of %d samples have perf script's functions, want ≥ 95%%", same, compared)
					}
					if typed*100 < compared*95 {
						t.Errorf("%d of %d samples have %s frames", typed, compared, tt.frameType)
					}
					what := "stacks up to " + prog.top
					if leafOnly {
						what = "leaves"
					}
					t.Logf("%s %s: %d of %d samples compared (%d in the file) match perf script's %s; replay took %v",
						prog.name, tt.callGraph, same, compared, len(rs), what, dur)
					if tt.callGraph == "dwarf" {
						checkDistribution(t, rs, perfScript(t, perf, fpData), prog.top)
					}
				})
			}
		})
	}
}

// replayFile replays the perf.data file data into testdata/plugin, checks
// that every sample got through with its stack, and returns what the plugin
// wrote, with the replay's duration.
func replayFile(t *testing.T, data string) ([]record, time.Duration) {
	t.Helper()
	return replayFileWith(t, data, nil)
}

// replayFileWith is replayFile with the unwind methods given (nil: the
// default).
func replayFileWith(t *testing.T, data string, methods []x86_64.FrameType) ([]record, time.Duration) {
	t.Helper()
	out := t.TempDir()
	sum, err := Run(context.Background(), data, Options{
		Plugins: []pluginhost.Spec{{Name: "replaytest", Path: testPlugin, Config: []byte("out: " + out + "\n")}},
		Unwind:  methods,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Feed.Samples < 30 { // ~300 expected; fewer on a loaded machine (cpu-clock counts CPU time)
		t.Fatalf("only %d samples recorded", sum.Feed.Samples)
	}
	if tr := sum.Tracker; tr.Entries != sum.Feed.Samples || tr.Unwinds != tr.Entries || tr.Events != tr.Entries {
		t.Errorf("samples %d, tracker %+v: want one entry, one unwind and one event per sample", sum.Feed.Samples, tr)
	}
	p := sum.Plugins[0]
	if p.State != pluginhost.StateStopped || p.Err != nil || p.DroppedEvents+p.DroppedStacks != 0 ||
		p.Events != sum.Feed.Samples || p.Stacks != sum.Feed.Samples || p.Acked != p.Batches {
		t.Errorf("plugin stats %+v", p)
	}
	rs := readRecords(t, filepath.Join(out, "events.jsonl"))
	if len(rs) != int(sum.Feed.Samples) {
		t.Fatalf("plugin wrote %d events, %d samples replayed", len(rs), sum.Feed.Samples)
	}
	return rs, sum.Duration
}

// recorder is an entry.Sink that asks for the stack of every event, as a
// plugin in mode always does, and keeps what it saw.
type recorder struct {
	tracer *deferred.Tracer
	events []seen
	stacks map[deferred.Cookie][]uint64
}

type seen struct {
	tid    int32
	ev     pluginhost.Event
	cookie deferred.Cookie
}

func (r *recorder) Event(t *deferred.Task, ev pluginhost.Event) {
	_, c, _ := t.Request(r.tracer)
	r.events = append(r.events, seen{tid: t.TID(), ev: ev, cookie: c})
}

func (r *recorder) EndEntry(*deferred.Task) {}

func feedFile(t *testing.T, path string) (*recorder, FeedStats, entry.Stats) {
	t.Helper()
	f, err := perfdata.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u, err := entry.NewUnwinder(x86_64.Options{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := deferred.New(deferred.Options{Unwinder: u})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{stacks: map[deferred.Cookie][]uint64{}}
	rec.tracer, err = eng.Register("test", func(_ *deferred.Task, tr *x86_64.Trace, c deferred.Cookie) {
		rec.stacks[c] = tr.PCs(nil)
	})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := entry.New(eng, rec, entry.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var progress []int64
	st, err := Feed(context.Background(), f, tr, FeedOptions{Progress: func(done, total int64, _ uint64) { progress = append(progress, done) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(progress) == 0 || progress[len(progress)-1] != int64(f.Header.Data.Size) {
		t.Errorf("progress %v, want it to end at the data size %d", progress, f.Header.Data.Size)
	}
	return rec, st, tr.Stats()
}

// TestFeedSyscalls: raw_syscalls tracepoints open and close entries; each
// sys_exit joins its sys_enter's entry; syscall names and fields come from
// the tracepoint formats.
func TestFeedSyscalls(t *testing.T) {
	rec, st, ts := feedFile(t, "../perfdata/testdata/syscalls-pipe.perf.data")
	if st.Samples == 0 || st.Samples != ts.Events {
		t.Fatalf("feed %+v tracker %+v", st, ts)
	}
	open := map[int32]deferred.Cookie{}
	names := map[string]bool{}
	pairs := 0
	for _, s := range rec.events {
		names[s.ev.Name] = true
		switch s.ev.Kind {
		case pluginhost.KindSyscallEnter:
			open[s.tid] = s.cookie
			if _, ok := fieldOf(s.ev, "args[5]"); !ok {
				t.Errorf("sys_enter without args[5]: %+v", s.ev.Fields)
			}
		case pluginhost.KindSyscallExit:
			if c, ok := open[s.tid]; ok {
				pairs++
				if c != s.cookie {
					t.Errorf("tid %d %s: exit cookie %v, enter's %v", s.tid, s.ev.Name, s.cookie, c)
				}
				delete(open, s.tid)
			}
			if _, ok := fieldOf(s.ev, "ret"); !ok {
				t.Errorf("sys_exit without ret: %+v", s.ev.Fields)
			}
		default:
			t.Errorf("event kind %v", s.ev.Kind)
		}
	}
	if pairs == 0 || !names["execve"] && !names["brk"] {
		t.Errorf("%d enter/exit pairs, names %v", pairs, names)
	}
	// Entries: one per enter/exit pair, plus unmatched ones.
	if ts.Entries < uint64(pairs) || ts.Entries > st.Samples-uint64(pairs) {
		t.Errorf("%d entries for %d samples with %d pairs", ts.Entries, st.Samples, pairs)
	}
}

func fieldOf(ev pluginhost.Event, name string) (pluginhost.Field, bool) {
	for _, f := range ev.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return pluginhost.Field{}, false
}

// TestFeedDwarf: every sample of a --call-graph dwarf recording is an entry
// whose stack walk starts at the sample's user ip.
func TestFeedDwarf(t *testing.T) {
	rec, st, ts := feedFile(t, "../perfdata/testdata/dwarf.perf.data")
	if st.Samples == 0 || ts.Entries != st.Samples || ts.Unwinds != st.Samples {
		t.Fatalf("feed %+v tracker %+v", st, ts)
	}
	for _, s := range rec.events {
		pcs := rec.stacks[s.cookie]
		if s.cookie == 0 || len(pcs) == 0 {
			t.Fatalf("event %+v: cookie %v stack %#x", s.ev, s.cookie, pcs)
		}
		if s.ev.Comm == "" || s.ev.Name != "cpu-clock" {
			t.Errorf("event %+v", s.ev)
		}
	}
	if ts.Mmaps == 0 || ts.Tasks == 0 {
		t.Errorf("tracker %+v: no mappings or tasks", ts)
	}
}

func TestUserChain(t *testing.T) {
	const k, u = ^uint64(128 - 1), contextUser
	tests := []struct {
		name  string
		cc    []uint64
		max   uint16
		want  []uint64
		trunc bool
	}{
		{"kernel and user", []uint64{k, 1, 2, u, 10, 11}, 0, []uint64{10, 11}, false},
		{"user only", []uint64{u, 10}, 0, []uint64{10}, false},
		{"kernel only", []uint64{k, 1, 2}, 0, nil, false},
		{"cut at max_stack", []uint64{k, 1, u, 10, 11}, 3, []uint64{10, 11}, true},
		{"empty", nil, 0, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, trunc := userChain(tt.cc, tt.max)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) || trunc != tt.trunc {
				t.Errorf("got %v %v, want %v %v", got, trunc, tt.want, tt.trunc)
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	notPerf := filepath.Join(dir, "not.data")
	if err := os.WriteFile(notPerf, []byte("hello, this is not a perf.data file at all, but long enough to have a header........................................................................................................"), 0o644); err != nil {
		t.Fatal(err)
	}
	plugin := []pluginhost.Spec{{Name: "t", Path: testPlugin, Config: []byte("out: " + dir + "\n")}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tt := range []struct {
		name, path string
		specs      []pluginhost.Spec
		want       string
	}{
		{"missing file", filepath.Join(dir, "nope"), plugin, "no such file"},
		{"not perf.data", notPerf, plugin, "perfdata"},
		{"plugin that does not start", "../perfdata/testdata/dwarf.perf.data",
			[]pluginhost.Spec{{Name: "bad", Path: "/bin/false"}}, `plugin "bad" did not start`},
		{"plugin that rejects its config", "../perfdata/testdata/dwarf.perf.data",
			[]pluginhost.Spec{{Name: "noconf", Path: testPlugin}}, `plugin "noconf" did not start`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(ctx, tt.path, Options{Plugins: tt.specs}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one saying %q", err, tt.want)
			}
		})
	}
}
