package perfdata

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/unwindd/unwindd/internal/testutil"
)

// testProg forks a child and starts a thread, all three spinning for a
// while, so that a recording has FORK, COMM, EXIT and samples of three tids.
const testProg = `
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile unsigned long sink;

__attribute__((noinline)) static void spin(int ms) {
	for (long i = 0; i < ms * 200000L; i++) sink += i * 7;
}
__attribute__((noinline)) static void leaf(int ms) { spin(ms); }
static void *thread(void *arg) { leaf(40); return arg; }

int main(void) {
	pthread_t t;
	pthread_create(&t, 0, thread, 0);
	pid_t pid = fork();
	if (pid == 0) { leaf(40); _exit(0); }
	leaf(40);
	pthread_join(t, 0);
	waitpid(pid, 0, 0);
	printf("%lu\n", sink);
	return 0;
}
`

var (
	perfOnce sync.Once
	perfPath string
	perfErr  error
)

// needPerf returns the perf tool, installing linux-perf if it is missing,
// or skips t when it cannot be had.
func needPerf(t testing.TB) string {
	t.Helper()
	perfOnce.Do(func() {
		if perfPath, perfErr = exec.LookPath("perf"); perfErr == nil {
			return
		}
		out, err := exec.Command("apt-get", "install", "-y", "-qq", "linux-perf").CombinedOutput()
		if err != nil {
			perfErr = fmt.Errorf("perf missing and apt-get install linux-perf failed: %v: %s", err, lastLine(out))
			return
		}
		perfPath, perfErr = exec.LookPath("perf")
	})
	if perfErr != nil {
		testutil.Need(t, "perf", perfErr.Error())
	}
	return perfPath
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

var testProgOnce struct {
	sync.Once
	path string
}

// buildTestProg builds testProg once per test binary run.
func buildTestProg(t testing.TB) string {
	t.Helper()
	testProgOnce.Do(func() {
		dir, err := os.MkdirTemp("", "perfdata-prog")
		if err != nil {
			t.Fatal(err)
		}
		testProgOnce.path = testutil.BuildC(t, dir, "prog", testProg, "-O1", "-g", "-pthread", "-fno-omit-frame-pointer")
	})
	if testProgOnce.path == "" {
		t.Fatal("test program did not build")
	}
	return testProgOnce.path
}

// record runs perf record with args (to out, or to stdout when out is "-",
// which is written to the file pipeOut) and returns the file's path. It
// skips when the kernel refuses perf_event_open.
func record(t testing.TB, out string, args ...string) string {
	t.Helper()
	perf := needPerf(t)
	argv := append([]string{"record", "-N", "-q", "-o", out}, args...)
	cmd := exec.Command(perf, argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	path := out
	if out == "-" {
		path = filepath.Join(t.TempDir(), "pipe.data")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cmd.Stdout = f
	} else {
		cmd.Stdout = io.Discard
	}
	if err := cmd.Run(); err != nil {
		msg := stderr.String()
		if strings.Contains(msg, "perf_event_paranoid") || strings.Contains(msg, "Permission denied") ||
			strings.Contains(msg, "not supported") || strings.Contains(msg, "No permission") {
			testutil.Need(t, "perf", "perf record refused: "+lastLine(stderr.Bytes()))
		}
		t.Fatalf("perf %s: %v\n%s", strings.Join(argv, " "), err, msg)
	}
	return path
}

// perfLine is one record as perf report -D delivers it.
type perfLine struct {
	time   string
	offset string // "" in pipe mode, where perf's offsets are not the file's
	size   string
	name   string
	rest   string
}

var dumpRE = regexp.MustCompile(`^(?:\d+ )?(\d+) (0x[0-9a-f]+) \[(0x[0-9a-f]+)\]: PERF_RECORD_([A-Z0-9_]+)(.*)$`)

// perfDump runs perf report -D on path and returns the records in the order
// perf delivers them.
func perfDump(t testing.TB, path string, pipe bool) []perfLine {
	t.Helper()
	args := []string{"report", "-D", "-i", path}
	var stdin io.Reader
	if pipe {
		args[3] = "-"
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		stdin = f
	}
	cmd := exec.Command(needPerf(t), args...)
	cmd.Stdin = stdin
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("perf %s: %v", strings.Join(args, " "), err)
	}
	var lines []perfLine
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		m := dumpRE.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		l := perfLine{time: m[1], offset: m[2], size: m[3], name: m[4], rest: m[5]}
		if pipe {
			l.offset = ""
		}
		lines = append(lines, l)
	}
	return lines
}

// ourLine formats rec as perf report -D does for the record types this
// package decodes; rest is "" for the others (only their type, offset and
// size are compared).
func ourLine(rec *Record, pipe bool) perfLine {
	l := perfLine{
		offset: fmt.Sprintf("%#x", rec.Offset),
		size:   fmt.Sprintf("%#x", len(rec.Data)),
		name:   rec.Type.String(),
		time:   "0",
	}
	if pipe {
		l.offset = ""
	}
	if t, ok := rec.Time(); ok && rec.Type < recordUserTypeStart {
		l.time = fmt.Sprint(t)
	}
	switch rec.Type {
	case RecordSample:
		s := &rec.Sample
		l.rest = fmt.Sprintf("(IP, 0x%x): %d/%d: %s period: %d addr: %s", rec.Misc, int32(rec.Ident.PID), int32(rec.Ident.TID), hx(s.IP), s.Period, hx(s.Addr))
	case RecordMmap:
		m := &rec.Mmap
		x := byte('x')
		if rec.Misc&MiscMmapData != 0 {
			x = 'r'
		}
		l.rest = fmt.Sprintf(" %d/%d: [%s(%s) @ %s]: %c %s", int32(m.PID), int32(m.TID), hx(m.Addr), hx(m.Len), hx(m.Pgoff), x, m.Filename)
	case RecordMmap2:
		m := &rec.Mmap
		prot := []byte("---p")
		for i, c := range "rwx" {
			if m.Prot&(1<<i) != 0 {
				prot[i] = byte(c)
			}
		}
		if m.Flags&1 != 0 { // MAP_SHARED
			prot[3] = 's'
		}
		if rec.Misc&MiscMmapBuildID != 0 {
			l.rest = fmt.Sprintf(" %d/%d: [%s(%s) @ %s <%x>]: %s %s", int32(m.PID), int32(m.TID), hx(m.Addr), hx(m.Len), hx(m.Pgoff), m.BuildID, prot, m.Filename)
		} else {
			l.rest = fmt.Sprintf(" %d/%d: [%s(%s) @ %s %02x:%02x %d %d]: %s %s", int32(m.PID), int32(m.TID), hx(m.Addr), hx(m.Len), hx(m.Pgoff), m.Maj, m.Min, m.Ino, m.InoGeneration, prot, m.Filename)
		}
	case RecordComm:
		exec := ""
		if rec.Comm.Exec {
			exec = " exec"
		}
		l.rest = fmt.Sprintf("%s: %s:%d/%d", exec, rec.Comm.Comm, int32(rec.Comm.PID), int32(rec.Comm.TID))
	case RecordFork, RecordExit:
		k := &rec.Task
		// perf prints these u32s with %d, so -1 (no task) shows as -1.
		l.rest = fmt.Sprintf("(%d:%d):(%d:%d)", int32(k.PID), int32(k.TID), int32(k.PPID), int32(k.PTID))
	}
	return l
}

// hx formats v as C's %#llx does: "0" for zero.
func hx(v uint64) string {
	if v == 0 {
		return "0"
	}
	return fmt.Sprintf("%#x", v)
}

// readAll reads every record of f, formatted as ourLine does.
func readAll(t testing.TB, f *File) ([]perfLine, Stats) {
	t.Helper()
	var lines []perfLine
	st := eachRecord(t, f, func(rec *Record) { lines = append(lines, ourLine(rec, f.Pipe)) })
	return lines, st
}

// compareDump checks our records against perf report -D's, in order.
func compareDump(t *testing.T, path string, pipe bool) (samples int) {
	t.Helper()
	want := perfDump(t, path, pipe)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.FeatureErr != nil {
		t.Errorf("features: %v", f.FeatureErr)
	}
	got, st := readAll(t, f)
	if pipe { // perf lists the pipe's header records, which are not records here
		var w []perfLine
		for _, l := range want {
			if l.name != "ATTR" && l.name != "FEATURE" && l.name != "TRACING_DATA" && l.name != "BUILD_ID" {
				w = append(w, l)
			}
		}
		want = w
	}
	if len(got) != len(want) {
		t.Errorf("%d records, perf report -D delivers %d", len(got), len(want))
	}
	bad := 0
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.rest == "" || w.name != g.name { // compare what we format
			w.rest = ""
		}
		if g.name == RecordSample.String() {
			samples++
		}
		if g != w {
			if bad++; bad <= 10 {
				t.Errorf("record %d:\n got %+v\nwant %+v", i, g, w)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d records differ", bad, len(want))
	}
	t.Logf("%s: %d records (%d samples) match perf report -D; stats %+v", filepath.Base(path), len(got), samples, statsBrief(st))
	return samples
}

func statsBrief(s Stats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "records=%d unknown=%d unknownID=%d unordered=%d maxQueued=%d", s.Records, s.Unknown, s.UnknownID, s.Unordered, s.MaxQueued)
	for t, n := range s.ByType {
		if n > 0 {
			fmt.Fprintf(&b, " %v=%d", RecordType(t), n)
		}
	}
	return b.String()
}

func TestAgainstPerfReport(t *testing.T) {
	prog := buildTestProg(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "input")
	if err := os.WriteFile(data, bytes.Repeat([]byte("unwindd"), 4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		pipe bool
	}{
		{"dwarf", []string{"-e", "cpu-clock", "-F", "999", "--call-graph", "dwarf", "--", prog}, false},
		{"dwarf-sha256sum", []string{"-e", "cpu-clock", "-F", "999", "--call-graph", "dwarf", "--", "/usr/bin/sha256sum", data}, false},
		{"fp", []string{"-e", "cpu-clock", "-F", "999", "-g", "--", prog}, false},
		{"cpu-wide", []string{"-e", "cpu-clock", "-F", "999", "-a", "-g", "--", prog}, false},
		{"tracepoints", []string{"-e", "raw_syscalls:sys_enter", "-e", "raw_syscalls:sys_exit", "--", prog}, false},
		{"pipe-dwarf", []string{"-e", "cpu-clock", "-F", "999", "--call-graph", "dwarf", "--", prog}, true},
		{"pipe-tracepoints", []string{"-e", "raw_syscalls:sys_enter", "-e", "raw_syscalls:sys_exit", "--", prog}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "perf.data")
			if tt.pipe {
				out = "-"
			}
			path := record(t, out, tt.args...)
			if n := compareDump(t, path, tt.pipe); n == 0 {
				t.Errorf("no samples in %s", tt.name)
			}
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, a := range f.Attrs {
				if want := tt.args[1]; a.Type != TypeTracepoint && a.Name != want && !strings.HasPrefix(a.Name, "dummy") {
					t.Errorf("event name %q, want %q", a.Name, want)
				}
				if a.Type == TypeTracepoint && (a.Format == nil || !strings.HasPrefix(a.Name, "raw_syscalls:sys_e")) {
					t.Errorf("tracepoint %q: format %v", a.Name, a.Format)
				}
			}
		})
	}
}

// TestTracepointFields compares the decoded fields of raw_syscalls samples
// with perf script's rendering of them.
func TestTracepointFields(t *testing.T) {
	prog := buildTestProg(t)
	for _, pipe := range []bool{false, true} {
		t.Run(fmt.Sprintf("pipe=%v", pipe), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "perf.data")
			if pipe {
				out = "-"
			}
			path := record(t, out, "-e", "raw_syscalls:sys_enter", "-e", "raw_syscalls:sys_exit", "--", prog)
			args := []string{"script", "-F", "tid,time,event,trace", "-i", path}
			cmd := exec.Command(needPerf(t), args...)
			if pipe {
				args[len(args)-1] = "-"
				cmd = exec.Command(needPerf(t), args...)
				in, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer in.Close()
				cmd.Stdin = in
			}
			outb, err := cmd.Output()
			if err != nil {
				t.Fatalf("perf script: %v", err)
			}
			var want []string
			for _, l := range strings.Split(strings.TrimSpace(string(outb)), "\n") {
				want = append(want, strings.Join(strings.Fields(l), " "))
			}
			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var got []string
			eachRecord(t, f, func(rec *Record) {
				if rec.Type == RecordSample {
					got = append(got, syscallLine(t, rec))
				}
			})
			if len(got) != len(want) {
				t.Errorf("%d samples, perf script prints %d", len(got), len(want))
			}
			bad := 0
			for i := range min(len(got), len(want)) {
				if got[i] != want[i] {
					if bad++; bad < 10 {
						t.Errorf("sample %d:\n got %s\nwant %s", i, got[i], want[i])
					}
				}
			}
			t.Logf("%d tracepoint samples, %d differ from perf script", len(got), bad)
		})
	}
}

// syscallLine prints a raw_syscalls sample as perf script -F
// tid,time,event,trace does, from the fields decoded by the event's format.
func syscallLine(t testing.TB, rec *Record) string {
	t.Helper()
	a := rec.Attr
	if a == nil || a.Format == nil {
		t.Fatalf("sample at %#x: no tracepoint format (attr %+v)", rec.Offset, a)
	}
	raw := rec.Sample.Raw
	get := func(name string, i int) uint64 {
		f := a.Format.Field(name)
		if f == nil {
			t.Fatalf("%s has no field %s", a.Name, name)
		}
		v, err := f.Uint(raw, i)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tm := rec.Ident.Time
	head := fmt.Sprintf("%d %d.%06d: %s:", rec.Ident.TID, tm/1e9, tm%1e9/1e3, a.Name)
	switch a.Format.Name {
	case "sys_enter":
		args := make([]string, 6)
		for i := range args {
			args[i] = fmt.Sprintf("%x", get("args", i))
		}
		return fmt.Sprintf("%s NR %d (%s)", head, int64(get("id", 0)), strings.Join(args, ", "))
	case "sys_exit":
		return fmt.Sprintf("%s NR %d = %d", head, int64(get("id", 0)), int64(get("ret", 0)))
	}
	t.Fatalf("unexpected tracepoint %s", a.Name)
	return ""
}

func TestFeatures(t *testing.T) {
	path := record(t, filepath.Join(t.TempDir(), "perf.data"), "-e", "cpu-clock", "-F", "999", "--", "/bin/true")
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.FeatureErr != nil {
		t.Fatal(f.FeatureErr)
	}
	hostname, _ := os.Hostname()
	rel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	fs := &f.Features
	for _, c := range []struct{ name, got, want string }{
		{"hostname", fs.Hostname, hostname},
		{"os release", fs.OSRelease, strings.TrimSpace(string(rel))},
		{"arch", fs.Arch, "x86_64"},
		{"cmdline[1]", strings.Join(fs.Cmdline[1:min(2, len(fs.Cmdline))], ""), "record"},
		{"event name", f.Attrs[0].Name, "cpu-clock"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if fs.NrCPUsOnline == 0 || fs.NrCPUsAvail < fs.NrCPUsOnline {
		t.Errorf("nrcpus online %d avail %d", fs.NrCPUsOnline, fs.NrCPUsAvail)
	}
	if !strings.HasPrefix(fs.Version, "6.") {
		t.Errorf("version %q", fs.Version)
	}
	// perf report --header-only names the same build-ids.
	out, err := exec.Command(needPerf(t), "buildid-list", "-i", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var want, got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			want = append(want, l)
		}
	}
	for _, b := range fs.BuildIDs {
		got = append(got, fmt.Sprintf("%x %s", b.ID, b.Filename))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("build-ids:\n%s\nperf buildid-list:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(f.Attrs) != 1 || f.Attrs[0].SampleType&SampleTime == 0 || !f.Attrs[0].SampleIDAll() || len(f.Attrs[0].IDs) == 0 {
		t.Errorf("attrs %+v", f.Attrs)
	}
}
