package ptrace

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/deferred"
	"github.com/unwindd/unwindd/host/entry"
	"github.com/unwindd/unwindd/host/pluginhost"
	"github.com/unwindd/unwindd/host/procfs"
	"github.com/unwindd/unwindd/host/symbolize"
	"github.com/unwindd/unwindd/host/unwindinfo"
	"github.com/unwindd/unwindd/internal/testutil"
)

// recorder is an entry.Sink that remembers every event and, when request
// is set, asks for the stack of every one, as a plugin in mode always does;
// its callback records each stack by cookie. Everything runs on the tracer
// goroutine during Trace; the test reads it after Trace returns.
type recorder struct {
	tracer  *deferred.Tracer
	request bool
	light   bool // count only (benchmarks): no events, stacks nor callbacks kept
	nevents int
	nstacks int
	events  []seen
	stacks  map[deferred.Cookie][]uint64
	calls   map[deferred.Cookie]int   // callbacks per cookie: exactly one each
	owner   map[deferred.Cookie]int32 // the tid each callback was for
	refused []error                   // failed requests
	ends    int                       // EndEntry calls
}

type seen struct {
	pid, tid int32
	ev       pluginhost.Event
	cookie   deferred.Cookie
}

func (r *recorder) Event(t *deferred.Task, ev pluginhost.Event) {
	r.nevents++
	if r.light {
		if r.request {
			t.Request(r.tracer)
		}
		return
	}
	s := seen{pid: t.PID(), tid: t.TID(), ev: ev}
	if r.request {
		var err error
		if _, s.cookie, err = t.Request(r.tracer); err != nil {
			r.refused = append(r.refused, err)
		}
	}
	r.events = append(r.events, s)
}

func (r *recorder) EndEntry(*deferred.Task) { r.ends++ }

// rig is a real engine (SFrame, CFI and frame-pointer walks with the
// processes' unwind tables) and tracker around a recorder.
type rig struct {
	rec    *recorder
	eng    *deferred.Engine
	tr     *entry.Tracker
	spaces *entry.Spaces
}

func newRig(t testing.TB, request bool) *rig {
	t.Helper()
	steppers, fopts, err := unwindinfo.Steppers(nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := x86_64.New(x86_64.Options{Steppers: steppers})
	if err != nil {
		t.Fatal(err)
	}
	files := unwindinfo.NewFiles(fopts, nil)
	eng, err := deferred.New(deferred.Options{Unwinder: u})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{request: request, stacks: map[deferred.Cookie][]uint64{}, calls: map[deferred.Cookie]int{}, owner: map[deferred.Cookie]int32{}}
	rec.tracer, err = eng.Register("test", func(tk *deferred.Task, tr *x86_64.Trace, c deferred.Cookie) {
		rec.nstacks++
		if rec.light {
			return
		}
		rec.calls[c]++
		rec.stacks[c] = tr.PCs(nil)
		rec.owner[c] = tk.TID()
	})
	if err != nil {
		t.Fatal(err)
	}
	spaces := new(entry.Spaces)
	tables := func(pid int32) x86_64.Table {
		return files.Process(func(addr uint64) (unwindinfo.Mapping, bool) {
			m, ok := spaces.Find(pid, addr)
			if !ok || !m.Exec {
				return unwindinfo.Mapping{}, false
			}
			return unwindinfo.Mapping{Start: m.Start, Limit: m.Limit, Offset: m.Offset, Path: m.Path,
				Major: m.Major, Minor: m.Minor, Inode: m.Inode}, true
		})
	}
	tr, err := entry.New(eng, rec, entry.Options{Spaces: spaces, Tables: tables}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{rec: rec, eng: eng, tr: tr, spaces: spaces}
}

// funcs names the frames of a stack of process pid, leaf first ("?" for
// what has no symbol), from the mappings the tracker was given.
func (g *rig) funcs(t testing.TB, sym *symbolize.Symbolizer, pid int32, pcs []uint64) []string {
	t.Helper()
	out := make([]string, 0, len(pcs))
	for i, pc := range pcs {
		if i > 0 {
			pc-- // a return address: the call is before it
		}
		m, ok := g.spaces.Find(pid, pc)
		if !ok {
			out = append(out, "?")
			continue
		}
		s, ok, _ := sym.Lookup(procfs.Mapping{Start: m.Start, End: m.Limit, Perms: procfs.Perms{Read: true, Exec: true},
			Offset: m.Offset, Major: m.Major, Minor: m.Minor, Inode: m.Inode, Path: m.Path}, pc)
		if !ok {
			out = append(out, "?")
			continue
		}
		out = append(out, s.Name)
	}
	return out
}

// chain reports whether fs (leaf first) holds want, in order, as
// consecutive frames.
func chain(fs, want []string) bool {
	for i := range fs {
		if i+len(want) <= len(fs) && slices.Equal(fs[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

func fieldOf(ev pluginhost.Event, name string) (pluginhost.Field, bool) {
	for _, f := range ev.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return pluginhost.Field{}, false
}

// devNull is /dev/null, opened for the test's children's standard streams.
func devNull(t testing.TB) *os.File {
	t.Helper()
	f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// startOrSkip starts exe held after its exec, skipping where ptrace is not
// permitted (the kernel's EPERM).
func startOrSkip(t testing.TB, tr *Tracer, argv []string, opts StartOptions) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pid, err := tr.Start(ctx, argv[0], argv, nil, opts)
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EPERM) {
		testutil.Need(t, "ptrace", err.Error())
	}
	if err != nil {
		t.Fatalf("Start(%v): %v", argv, err)
	}
	return pid
}

func trace(t testing.TB, ctx context.Context, tr *Tracer, opts TraceOptions, g *rig) TraceStats {
	t.Helper()
	st, err := tr.Trace(ctx, opts, g.tr)
	if err != nil {
		t.Fatalf("Trace(%+v): %v (stats %+v)", opts, err, st)
	}
	return st
}

// syscallsProgram makes argv[1] write(2) and getpid(2) calls from
// main → mid → leaf, and exits with status 3.
const syscallsProgram = `#include <stdlib.h>
#include <unistd.h>
__attribute__((noinline)) void leaf(void) { write(1, "x", 1); getpid(); }
__attribute__((noinline)) void mid(int n) { for (int i = 0; i < n; i++) leaf(); }
int main(int argc, char **argv) { mid(atoi(argv[1])); return 3; }
`

// straceCounts runs argv under strace -f -c and returns the calls per
// system call name, as strace counts them (at their exit: exit_group is
// never counted).
func straceCounts(t *testing.T, argv []string, stdout *os.File) map[string]int {
	t.Helper()
	strace, err := exec.LookPath("strace")
	if err != nil {
		testutil.Need(t, "strace", "the oracle for syscall counts: "+err.Error())
	}
	out := filepath.Join(t.TempDir(), "strace.txt")
	cmd := exec.Command(strace, append([]string{"-f", "-c", "-U", "name,calls", "-o", out}, argv...)...)
	cmd.Stdout, cmd.Stderr = stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("strace: %v", err)
		}
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 2 || fs[0] == "total" || fs[0] == "syscall" {
			continue
		}
		n, err := strconv.Atoi(fs[1])
		if err != nil {
			continue
		}
		counts[fs[0]] = n
	}
	if len(counts) == 0 {
		t.Fatalf("strace -c gave no counts")
	}
	return counts
}

// TestTraceSyscalls traces a deterministic program from its first
// instruction, requesting a stack at every event: the system calls are
// those strace -f -c counts on the same program, each entry is unwound
// exactly once with a cookie of its own, and every write's stack is
// write ← leaf ← mid ← main. The exit status is the program's.
func TestTraceSyscalls(t *testing.T) {
	const n = 50
	exe := testutil.BuildC(t, "", "syscalls", syscallsProgram, "-O0", "-fno-omit-frame-pointer", "-g")
	null := devNull(t)
	argv := []string{exe, strconv.Itoa(n)}
	tr := newTracer(t)
	g := newRig(t, true)
	pid := startOrSkip(t, tr, argv, StartOptions{Files: []*os.File{null, null, os.Stderr}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := trace(t, ctx, tr, TraceOptions{PID: pid}, g)
	t.Logf("stats %+v; tracker %+v", st, g.tr.Stats())
	if !st.Exited || !st.Status.Exited() || st.Status.ExitStatus() != 3 {
		t.Errorf("exit: exited %v status %v, want exit status 3", st.Exited, st.Status)
	}

	// Per syscall: entries (sys_enter events) against strace's counts. The
	// events are raw_syscalls:sys_enter/sys_exit as the perf source decodes
	// them (host/replay): field names and kinds from the tracepoints'
	// formats (long id, unsigned long args[6]; long ret), period 1.
	got := map[string]int{}
	exits := 0
	shape := func(ev pluginhost.Event) string {
		var b strings.Builder
		fmt.Fprintf(&b, "period %d cpu %d comm %q:", ev.Period, ev.CPU, ev.Comm)
		for _, f := range ev.Fields {
			fmt.Fprintf(&b, " %s/%d", f.Name, f.Kind)
		}
		return b.String()
	}
	I, U := pluginhost.FieldInt, pluginhost.FieldUint
	wantEnter := fmt.Sprintf("period 1 cpu -1 comm %q: id/%d args[0]/%d args[1]/%d args[2]/%d args[3]/%d args[4]/%d args[5]/%d", "syscalls", I, U, U, U, U, U, U)
	wantExit := fmt.Sprintf("period 1 cpu -1 comm %q: id/%d ret/%d", "syscalls", I, I)
	for _, s := range g.rec.events {
		switch sh := shape(s.ev); {
		case s.ev.Kind == pluginhost.KindSyscallEnter && sh != wantEnter:
			t.Fatalf("sys_enter %s: %s, want %s", s.ev.Name, sh, wantEnter)
		case s.ev.Kind == pluginhost.KindSyscallExit && sh != wantExit:
			t.Fatalf("sys_exit %s: %s, want %s", s.ev.Name, sh, wantExit)
		}
		if id, _ := fieldOf(s.ev, "id"); entry.SyscallName(id.Int) != s.ev.Name {
			t.Fatalf("event %s with id %d", s.ev.Name, id.Int)
		}
		switch s.ev.Kind {
		case pluginhost.KindSyscallEnter:
			got[s.ev.Name]++
			if s.pid != int32(pid) || s.tid != int32(pid) {
				t.Errorf("%s on pid %d tid %d, want %d", s.ev.Name, s.pid, s.tid, pid)
			}
			if _, ok := fieldOf(s.ev, "args[5]"); !ok {
				t.Errorf("sys_enter without args[5]: %+v", s.ev)
			}
		case pluginhost.KindSyscallExit:
			exits++
			if _, ok := fieldOf(s.ev, "ret"); !ok {
				t.Errorf("sys_exit without ret: %+v", s.ev)
			}
		default:
			t.Errorf("unexpected event %+v", s.ev)
		}
	}
	want := straceCounts(t, argv, null)
	// strace sees the execve that started the program (we are attached
	// after it), and does not count exit_group (it never returns).
	delete(want, "execve")
	want["exit_group"] = 1
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("syscall entries\n got %v\nwant %v (strace -f -c)", got, want)
	}
	if got["write"] != n || got["getpid"] != n {
		t.Errorf("%d writes, %d getpids, want %d each", got["write"], got["getpid"], n)
	}
	total := 0
	for _, c := range got {
		total += c
	}
	if uint64(total) != st.Syscalls || exits != total-1 || st.SyscallExits != uint64(exits) {
		t.Errorf("%d entries, %d exits, stats %+v", total, exits, st)
	}

	// Exactly one stack per entry, no cookie twice.
	entries := map[deferred.Cookie]int{}
	var last deferred.Cookie
	for _, s := range g.rec.events {
		if s.cookie == 0 {
			t.Fatalf("event %+v without a cookie", s.ev)
		}
		if s.ev.Kind == pluginhost.KindSyscallEnter {
			entries[s.cookie]++
		} else if s.cookie != last {
			t.Errorf("sys_exit %s with cookie %v, its sys_enter's was %v", s.ev.Name, s.cookie, last)
		}
		last = s.cookie
	}
	for c, k := range entries {
		if k != 1 {
			t.Errorf("cookie %v for %d entries", c, k)
		}
		if g.rec.calls[c] != 1 {
			t.Errorf("cookie %v: %d callbacks, want 1", c, g.rec.calls[c])
		}
	}
	if len(g.rec.calls) != len(entries) {
		t.Errorf("%d callbacks for %d entries", len(g.rec.calls), len(entries))
	}

	// The write and getpid stacks: libc's code, then leaf, mid, main.
	sym := symbolize.New(symbolize.Options{}, nil)
	checked := 0
	for _, s := range g.rec.events {
		if s.ev.Kind != pluginhost.KindSyscallEnter || s.ev.Name != "write" && s.ev.Name != "getpid" {
			continue
		}
		fs := g.funcs(t, sym, s.pid, g.rec.stacks[s.cookie])
		if !chain(fs, []string{"leaf", "mid", "main"}) || fs[0] == "leaf" {
			t.Fatalf("%s's stack %v (%#x), want libc's %[1]s, then leaf, mid, main", s.ev.Name, fs, g.rec.stacks[s.cookie])
		}
		if checked++; checked == 1 {
			t.Logf("%s: %v", s.ev.Name, fs)
		}
	}
	if checked != 2*n {
		t.Errorf("%d write and getpid stacks, want %d", checked, 2*n)
	}
}

// familyProgram: the main thread, two more threads and a forked child each
// make n write(2) calls to fd 100+who whose count is the caller's own tid
// (they fail, EBADF), from report ← worker (threads), report ← child_main
// ← main (the child), report ← main (the main thread); a vforked child
// execs /bin/true. The exit status is 5.
const familyProgram = `#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#define N 20
__attribute__((noinline)) void report(int who) {
	for (int i = 0; i < N; i++) write(100 + who, "", (size_t)syscall(SYS_gettid));
}
__attribute__((noinline)) void *worker(void *arg) { report((int)(long)arg); return 0; }
__attribute__((noinline)) void child_main(void) { report(3); }
int main(void) {
	pthread_t t[2];
	for (long i = 0; i < 2; i++) pthread_create(&t[i], 0, worker, (void *)(i + 1));
	pid_t p = fork();
	if (p == 0) { child_main(); _exit(0); }
	report(0);
	for (int i = 0; i < 2; i++) pthread_join(t[i], 0);
	int st;
	waitpid(p, &st, 0);
	pid_t v = vfork();
	if (v == 0) { execl("/bin/true", "true", (char *)0); _exit(127); }
	waitpid(v, &st, 0);
	return WEXITSTATUS(st) + 5;
}
`

// TestTraceThreadsForks: events and stacks of a process with threads, a
// forked child and a vforked one that execs land on the right tids and
// pids, with the right call chains.
func TestTraceThreadsForks(t *testing.T) {
	exe := testutil.BuildC(t, "", "family", familyProgram, "-O0", "-fno-omit-frame-pointer", "-pthread")
	if _, err := os.Stat("/bin/true"); err != nil {
		testutil.Need(t, "true", "the vforked child execs /bin/true: "+err.Error())
	}
	null := devNull(t)
	tr := newTracer(t)
	g := newRig(t, true)
	pid := startOrSkip(t, tr, []string{exe}, StartOptions{Files: []*os.File{null, null, os.Stderr}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := trace(t, ctx, tr, TraceOptions{PID: pid}, g)
	t.Logf("stats %+v; tracker %+v", st, g.tr.Stats())
	if !st.Exited || st.Status.ExitStatus() != 5 {
		t.Errorf("exit status %v, want 5", st.Status)
	}
	if st.Threads != 5 || st.Processes != 3 || st.Execs != 1 {
		t.Errorf("%d threads, %d processes, %d execs; want 5 (main, 2 threads, 2 children), 3, 1", st.Threads, st.Processes, st.Execs)
	}
	sym := symbolize.New(symbolize.Options{}, nil)
	per := map[int]int{}             // writes per who
	tids := map[int]map[int32]bool{} // tids per who
	var truePID int32
	for _, s := range g.rec.events {
		if s.ev.Kind == pluginhost.KindSyscallEnter && s.ev.Name == "exit_group" && s.ev.Comm == "true" {
			truePID = s.pid
		}
		if s.ev.Kind != pluginhost.KindSyscallEnter || s.ev.Name != "write" {
			continue
		}
		fd, _ := fieldOf(s.ev, "args[0]")
		count, _ := fieldOf(s.ev, "args[2]")
		who := int(fd.Uint) - 100
		if who < 0 || who > 3 {
			continue
		}
		per[who]++
		if tids[who] == nil {
			tids[who] = map[int32]bool{}
		}
		tids[who][s.tid] = true
		if int32(count.Uint) != s.tid {
			t.Fatalf("who %d: write by tid %d (pid %d) seen on tid %d", who, count.Uint, s.pid, s.tid)
		}
		switch who {
		case 0:
			if s.tid != int32(pid) || s.pid != int32(pid) {
				t.Fatalf("main thread's write on pid %d tid %d, want %d", s.pid, s.tid, pid)
			}
		case 1, 2:
			if s.pid != int32(pid) || s.tid == int32(pid) {
				t.Fatalf("thread's write on pid %d tid %d, want pid %d, another tid", s.pid, s.tid, pid)
			}
		case 3:
			if s.pid == int32(pid) || s.tid != s.pid {
				t.Fatalf("child's write on pid %d tid %d, want a process of its own", s.pid, s.tid)
			}
		}
		if owner, ok := g.rec.owner[s.cookie]; !ok || owner != s.tid {
			t.Fatalf("who %d: stack of cookie %v made for tid %d (%v), event on %d", who, s.cookie, owner, ok, s.tid)
		}
		fs := g.funcs(t, sym, s.pid, g.rec.stacks[s.cookie])
		want := map[int][]string{0: {"report", "main"}, 1: {"report", "worker"}, 2: {"report", "worker"}, 3: {"report", "child_main", "main"}}[who]
		if !chain(fs, want) {
			t.Fatalf("who %d (pid %d tid %d): stack %v, want %v in it", who, s.pid, s.tid, fs, want)
		}
	}
	for who := range 4 {
		if per[who] != 20 || len(tids[who]) != 1 {
			t.Errorf("who %d: %d writes from tids %v, want 20 from one tid", who, per[who], tids[who])
		}
	}
	if truePID == 0 || truePID == int32(pid) {
		t.Errorf("no exit_group of the vforked child after its exec (comm %q)", "true")
	}
	for c, n := range g.rec.calls {
		if n != 1 {
			t.Errorf("cookie %v: %d callbacks", c, n)
		}
	}
}

// TestStartRelease: a started program held after its exec, released, runs
// untraced to its end; Wait has its exit status (7: it saw TracerPid 0).
func TestStartRelease(t *testing.T) {
	const src = `#include <stdio.h>
int main(void) {
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int tp = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "TracerPid: %d", &tp) == 1)
			break;
	return tp == 0 ? 7 : 9;
}
`
	exe := testutil.BuildC(t, "", "release", src, "-O0")
	tr := newTracer(t)
	null := devNull(t)
	pid := startOrSkip(t, tr, []string{exe}, StartOptions{Files: []*os.File{null, null, os.Stderr}})
	// Held: stopped, traced, at its first instruction.
	if s := taskState(t, pid, pid); s != 't' {
		t.Errorf("held process in state %q, want 't'", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := tr.Wait(ctx, pid); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Wait on a held process = %v, want ErrNotStarted", err)
	}
	if err := tr.Release(pid); err != nil {
		t.Fatal(err)
	}
	if err := tr.Release(pid); !errors.Is(err, ErrNotStarted) {
		t.Errorf("second Release = %v, want ErrNotStarted", err)
	}
	ws, err := tr.Wait(ctx, pid)
	if err != nil || !ws.Exited() || ws.ExitStatus() != 7 {
		t.Errorf("Wait = %v, %v; want exit status 7 (9: it was still traced)", ws, err)
	}
	if _, err := tr.Wait(ctx, pid); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Wait after the reap = %v, want ErrNotStarted", err)
	}
	if err := tr.Release(os.Getpid()); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Release of a process not started = %v, want ErrNotStarted", err)
	}
	// A program that cannot be run leaves nothing behind.
	if _, err := tr.Start(ctx, filepath.Join(t.TempDir(), "nope"), nil, nil, StartOptions{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Start of a missing file = %v, want fs.ErrNotExist", err)
	}
	// Close kills a held process.
	tr2 := New(nil)
	held := startOrSkip(t, tr2, []string{exe}, StartOptions{Files: []*os.File{null, null, os.Stderr}})
	tr2.Close()
	if _, err := procfs.ReadStat(held); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("held process %d after Close: %v, want it gone", held, err)
	}
}

// sleeperProgram: the main thread sleeps 1 ms and calls getppid in a loop
// (exiting with status 1 if a sleep is cut short: tracing must not be
// seen), a second thread spins; it writes "r" once both run.
const sleeperProgram = `#include <pthread.h>
#include <time.h>
#include <unistd.h>
static volatile unsigned long spins;
static void *spin(void *arg) { for (;;) spins++; return arg; }
int main(void) {
	pthread_t t;
	pthread_create(&t, 0, spin, 0);
	write(1, "r", 1);
	for (;;) {
		struct timespec ts = {0, 1000000};
		if (nanosleep(&ts, 0) != 0)
			_exit(1);
		getppid();
	}
}
`

// ctxSwitches reads voluntary_ctxt_switches of task pid.
func ctxSwitches(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	t.Fatal("no voluntary_ctxt_switches")
	return 0
}

// TestTraceAttach attaches to a running two-thread process by pid,
// samples and traces it for a while, cancels: every thread is detached,
// the process runs on, untraced and unharmed.
func TestTraceAttach(t *testing.T) {
	exe := testutil.BuildC(t, "", "sleeper", sleeperProgram, "-O0", "-fno-omit-frame-pointer", "-pthread")
	cmd := testutil.Start(t, exe)
	pid := cmd.Process.Pid
	tr := newTracer(t)
	g := newRig(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	st, err := tr.Trace(ctx, TraceOptions{PID: pid, Hz: 100}, g.tr)
	if errors.Is(err, fs.ErrPermission) {
		testutil.Need(t, "ptrace", err.Error())
	}
	t.Logf("stats %+v; tracker %+v", st, g.tr.Stats())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Trace = %v, want context.DeadlineExceeded", err)
	}
	if st.Exited || st.Killed || st.Detached != 2 || st.Threads != 2 {
		t.Errorf("stats %+v: want 2 threads traced and detached, not exited nor killed", st)
	}
	// ~400 sleeps of the main thread; samples of the spinning one.
	names := map[string]int{}
	for _, s := range g.rec.events {
		names[s.ev.Name]++
	}
	if names["getppid"] < 100 || names["cpu-clock"] < 10 || st.Samples < 10 {
		t.Errorf("events %v, samples %d: want >= 100 getppid and >= 10 samples", names, st.Samples)
	}
	tids, err := procfs.Threads(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		if s, err := procfs.ReadStatus(tid); err != nil || s.TracerPid != 0 {
			t.Errorf("task %d: TracerPid %d (%v) after Trace, want 0", tid, s.TracerPid, err)
		}
	}
	before := ctxSwitches(t, pid)
	time.Sleep(50 * time.Millisecond)
	if after := ctxSwitches(t, pid); after <= before {
		t.Errorf("main thread not sleeping on: %d voluntary switches, then %d", before, after)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Errorf("the process did not survive: %v", err)
	}
	if s := taskState(t, pid, pid); s == 't' || s == 'T' || s == 'Z' {
		t.Errorf("state %q after detach", s)
	}
}

// TestTraceCancelStarted: a started process is killed when ctx ends, or
// left running with LeaveRunning (and then Wait reaps it).
func TestTraceCancelStarted(t *testing.T) {
	exe := testutil.BuildC(t, "", "sleeper", sleeperProgram, "-O0", "-pthread")
	null := devNull(t)
	tr := newTracer(t)
	for _, leave := range []bool{false, true} {
		g := newRig(t, false)
		pid := startOrSkip(t, tr, []string{exe}, StartOptions{Files: []*os.File{null, null, os.Stderr}})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		st, err := tr.Trace(ctx, TraceOptions{PID: pid, LeaveRunning: leave}, g.tr)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("LeaveRunning %v: Trace = %v, want DeadlineExceeded", leave, err)
		}
		if !leave {
			if !st.Killed || !st.Exited || !st.Status.Signaled() || st.Status.Signal() != syscall.SIGKILL {
				t.Errorf("stats %+v: want killed, exit by SIGKILL", st)
			}
			if _, err := procfs.ReadStat(pid); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("killed process %d: %v, want it reaped", pid, err)
			}
			continue
		}
		if st.Killed || st.Exited || st.Detached != 2 {
			t.Errorf("stats %+v: want 2 threads detached", st)
		}
		if s, err := procfs.ReadStatus(pid); err != nil || s.TracerPid != 0 {
			t.Errorf("TracerPid %d (%v), want 0", s.TracerPid, err)
		}
		syscall.Kill(pid, syscall.SIGTERM)
		wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
		ws, err := tr.Wait(wctx, pid)
		wcancel()
		if err != nil || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
			t.Errorf("Wait = %v, %v; want SIGTERM", ws, err)
		}
	}
}

// spinProgram spins ~600 ms at the bottom of main → a → b → spin, reading
// the clock (vDSO, no system call) seldom.
const spinProgram = `#include <time.h>
static volatile unsigned long sink;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
__attribute__((noinline)) void spin(double end) { while (now() < end) for (int i = 0; i < 100000; i++) sink++; }
__attribute__((noinline)) void b(double end) { spin(end); sink++; }
__attribute__((noinline)) void a(double end) { b(end); sink++; }
int main(void) { a(now() + 0.6); return 0; }
`

// TestTraceSampling samples a CPU-bound program at 200 Hz, with and
// without syscall stops: about 200 samples a second of its run, each an
// entry of its own, in user mode, and their stacks reach main through
// spin ← b ← a.
func TestTraceSampling(t *testing.T) {
	exe := testutil.BuildC(t, "", "spin", spinProgram, "-O0", "-fno-omit-frame-pointer")
	null := devNull(t)
	tr := newTracer(t)
	sym := symbolize.New(symbolize.Options{}, nil)
	for _, noSyscalls := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoSyscalls=%v", noSyscalls), func(t *testing.T) {
			g := newRig(t, true)
			pid := startOrSkip(t, tr, []string{exe}, StartOptions{Files: []*os.File{null, null, os.Stderr}})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			st := trace(t, ctx, tr, TraceOptions{PID: pid, Hz: 200, NoSyscalls: noSyscalls}, g)
			took := time.Since(start)
			t.Logf("%v: stats %+v; tracker %+v", took, st, g.tr.Stats())
			if noSyscalls && st.Syscalls != 0 {
				t.Errorf("%d syscall stops without syscalls", st.Syscalls)
			}
			want := 0.6 * 200
			if float64(st.Samples) < 0.5*want || float64(st.Samples) > 1.1*took.Seconds()*200 {
				t.Errorf("%d samples in %v of a 600 ms spin at 200 Hz, want about %.0f", st.Samples, took, want)
			}
			samples, deep := 0, 0
			for _, s := range g.rec.events {
				if s.ev.Kind != pluginhost.KindSample {
					continue
				}
				samples++
				if s.ev.Name != "cpu-clock" || s.ev.Period != uint64(5*time.Millisecond) || s.cookie == 0 {
					t.Fatalf("sample %+v cookie %v", s.ev, s.cookie)
				}
				fs := g.funcs(t, sym, s.pid, g.rec.stacks[s.cookie])
				if chain(fs, []string{"spin", "b", "a", "main"}) {
					deep++
				}
			}
			// A thread inside a system call (at the start, in the loader)
			// gets a kernel-mode sample in its open entry instead.
			if uint64(samples) != st.Samples+st.KernelSamples || deep < samples*9/10 {
				t.Errorf("%d of %d samples (stats %d) reach main through spin, b, a", deep, samples, st.Samples)
			}
		})
	}
}

// signalsProgram raises SIGUSR1 five times (its handler counts), tells
// the test on stdout, stops itself with SIGSTOP and, continued (its SIGCONT
// handler must have run), exits with the count: 5, or 10+ when a signal
// was swallowed or the stop did not hold.
const signalsProgram = `#include <signal.h>
#include <unistd.h>
static volatile int usr1, cont;
static void on_usr1(int s) { (void)s; usr1++; }
static void on_cont(int s) { (void)s; cont++; }
int main(void) {
	signal(SIGUSR1, on_usr1);
	signal(SIGCONT, on_cont);
	for (int i = 0; i < 5; i++) raise(SIGUSR1);
	write(1, "s", 1);
	raise(SIGSTOP);
	return cont == 1 ? usr1 : 10 + usr1;
}
`

// TestTraceSignals: signals reach the tracee (re-injected, not
// swallowed), and a job-control stop holds until SIGCONT.
func TestTraceSignals(t *testing.T) {
	exe := testutil.BuildC(t, "", "signals", signalsProgram, "-O0")
	null := devNull(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tr := newTracer(t)
	g := newRig(t, false)
	pid := startOrSkip(t, tr, []string{exe}, StartOptions{Files: []*os.File{null, w, os.Stderr}})
	w.Close()
	errc := make(chan error, 1)
	go func() {
		var b [1]byte
		if _, err := r.Read(b[:]); err != nil {
			errc <- err
			return
		}
		// Stopped (traced: 't'), and staying so.
		for range 20 {
			time.Sleep(10 * time.Millisecond)
			if s, err := procfs.ReadStat(pid); err != nil || s.State != 't' && s.State != 'T' {
				errc <- fmt.Errorf("state %q (%v) after SIGSTOP, want stopped", s.State, err)
				syscall.Kill(pid, syscall.SIGCONT)
				return
			}
		}
		errc <- syscall.Kill(pid, syscall.SIGCONT)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st := trace(t, ctx, tr, TraceOptions{PID: pid}, g)
	if err := <-errc; err != nil {
		t.Error(err)
	}
	t.Logf("stats %+v", st)
	if !st.Exited || st.Status.ExitStatus() != 5 {
		t.Errorf("exit status %v, want 5 (10+: a signal was lost or the stop did not hold)", st.Status)
	}
	if st.Signals != 7 || st.GroupStops < 1 {
		t.Errorf("%d signals passed on, %d group-stops; want 7 (5 SIGUSR1, SIGSTOP, SIGCONT), >= 1", st.Signals, st.GroupStops)
	}
}

// TestTraceErrors: what cannot be traced says why; a second Trace on a
// busy Tracer is refused while the first serves other requests.
func TestTraceErrors(t *testing.T) {
	tr := newTracer(t)
	g := newRig(t, false)
	bg := context.Background()
	for _, tt := range []struct {
		name string
		opts TraceOptions
		want error
	}{
		{"no such pid", TraceOptions{PID: 1 << 30}, ErrNoProcess},
		{"kthreadd", TraceOptions{PID: 2}, ErrKernelThread},
		{"self", TraceOptions{PID: os.Getpid()}, ErrSelf},
	} {
		if _, err := tr.Trace(bg, tt.opts, g.tr); !errors.Is(err, tt.want) {
			t.Errorf("%s: Trace = %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := tr.Trace(bg, TraceOptions{PID: 1, Hz: -1}, g.tr); err == nil {
		t.Error("Hz -1 accepted")
	}
	if _, err := tr.Trace(bg, TraceOptions{PID: 1}, nil); err == nil {
		t.Error("nil tracker accepted")
	}

	exe := testutil.BuildC(t, "", "sleeper", sleeperProgram, "-O0", "-pthread")
	cmd := testutil.Start(t, exe)
	ctx, cancel := context.WithCancel(bg)
	done := make(chan error, 1)
	go func() {
		_, err := tr.Trace(ctx, TraceOptions{PID: cmd.Process.Pid}, g.tr)
		done <- err
	}()
	// Wait until it traces, then ask for more: served, or refused.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if s, err := procfs.ReadStatus(cmd.Process.Pid); err == nil && s.TracerPid != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not traced after 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	other := testutil.Start(t, exe)
	if _, err := tr.Trace(bg, TraceOptions{PID: other.Process.Pid}, newRig(t, false).tr); !errors.Is(err, ErrBusy) {
		t.Errorf("second Trace = %v, want ErrBusy", err)
	}
	if err := tr.Release(other.Process.Pid); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Release during a Trace = %v, want ErrNotStarted", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Trace = %v, want context.Canceled", err)
	}
}

// compatProgram (gcc -m32): ten write(2) and getpid(2) calls from main →
// leaf, exit status 3.
const compatProgram = `#include <unistd.h>
__attribute__((noinline)) void leaf(void) { write(1, "x", 1); getpid(); }
int main(void) { for (int i = 0; i < 10; i++) leaf(); return 3; }
`

// compatBare is compatProgram without libc, for a machine without 32-bit
// libraries: the same calls made with int $0x80.
const compatBare = `static int sys3(int nr, int a, int b, int c) {
	int r;
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
	return r;
}
__attribute__((noinline)) void leaf(void) { sys3(4, 1, (int)"x", 1); sys3(20, 0, 0, 0); }
void _start(void) { for (int i = 0; i < 10; i++) leaf(); sys3(252, 3, 0, 0); for (;;); }
`

// buildCompat builds compatProgram with gcc -m32, installing Debian's
// gcc-multilib (as the Makefile installs its packages) when 32-bit libc is
// missing; failing that, compatBare. It says which it built.
func buildCompat(t *testing.T) (exe string, withLibc bool) {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		testutil.Need(t, "gcc", err.Error())
	}
	dir := t.TempDir()
	build := func(name, src string, flags ...string) (string, error) {
		c := filepath.Join(dir, name+".c")
		if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		exe := filepath.Join(dir, name)
		out, err := exec.Command(gcc, append([]string{"-m32", "-O0", "-fno-omit-frame-pointer", "-o", exe, c}, flags...)...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%v: %s", err, out)
		}
		return exe, nil
	}
	exe, err = build("compat", compatProgram)
	if err != nil && os.Getuid() == 0 {
		if apt, lerr := exec.LookPath("apt-get"); lerr == nil {
			t.Logf("gcc -m32 without 32-bit libc (%v): installing gcc-multilib", err)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			out, ierr := exec.CommandContext(ctx, apt, "install", "-y", "-qq", "gcc-multilib").CombinedOutput()
			if ierr != nil {
				exec.CommandContext(ctx, apt, "update", "-qq").Run()
				out, ierr = exec.CommandContext(ctx, apt, "install", "-y", "-qq", "gcc-multilib").CombinedOutput()
			}
			cancel()
			if ierr != nil {
				t.Logf("apt-get install gcc-multilib: %v: %s", ierr, out)
			}
			exe, err = build("compat", compatProgram)
		}
	}
	if err == nil {
		return exe, true
	}
	t.Logf("no 32-bit libc (%v): the program without libc instead", err)
	exe, err = build("compat-bare", compatBare, "-nostdlib", "-static", "-fno-pic")
	if err != nil {
		testutil.Need(t, "gcc-m32", "gcc -m32 cannot build a 32-bit program here: "+err.Error())
	}
	return exe, false
}

// TestTraceCompat traces a 32-bit program: its system calls are delivered
// (i386 numbers, ebx… as args, Kind compat), every stack request is
// refused (R5) and counted, nothing crashes, its exit status is reported.
func TestTraceCompat(t *testing.T) {
	exe, withLibc := buildCompat(t)
	null := devNull(t)
	tr := newTracer(t)
	g := newRig(t, true)
	pid := startOrSkip(t, tr, []string{exe}, StartOptions{Files: []*os.File{null, null, os.Stderr}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st := trace(t, ctx, tr, TraceOptions{PID: pid, Hz: 1000}, g)
	t.Logf("libc %v: stats %+v; tracker %+v", withLibc, st, g.tr.Stats())
	if !st.Exited || st.Status.ExitStatus() != 3 {
		t.Errorf("exit status %v, want 3", st.Status)
	}
	writes, getpids := 0, 0
	for _, s := range g.rec.events {
		if s.ev.Kind != pluginhost.KindSyscallEnter {
			continue
		}
		id, _ := fieldOf(s.ev, "id")
		fd, _ := fieldOf(s.ev, "args[0]")
		n, _ := fieldOf(s.ev, "args[2]")
		switch {
		case id.Int == 4 && fd.Uint == 1 && n.Uint == 1: // i386 write(1, "x", 1)
			writes++
		case id.Int == 20: // i386 getpid
			getpids++
		}
	}
	if writes != 10 || getpids != 10 {
		t.Errorf("%d writes, %d getpids seen, want 10 each", writes, getpids)
	}
	if st.Compat == 0 || uint64(len(g.rec.events)) > st.Compat+st.Samples {
		t.Errorf("%d compat events of %d", st.Compat, len(g.rec.events))
	}
	if len(g.rec.refused) == 0 || len(g.rec.calls) != 0 {
		t.Errorf("%d requests refused, %d stacks made; want all refused, none made", len(g.rec.refused), len(g.rec.calls))
	}
	for _, err := range g.rec.refused {
		if !errors.Is(err, deferred.ErrCompat) {
			t.Fatalf("request refused with %v, want deferred.ErrCompat", err)
		}
	}
}

// TestTraceThreadExec: a thread other than the leader calls execve; the
// kernel gives it the leader's tid, the old leader vanishes without an exit
// report. The new program's events come on the leader's tid, named anew.
func TestTraceThreadExec(t *testing.T) {
	const src = `#include <pthread.h>
#include <unistd.h>
static void *run(void *arg) { execl("/bin/true", "true", (char *)0); return arg; }
int main(void) { pthread_t t; pthread_create(&t, 0, run, 0); for (;;) pause(); }
`
	if _, err := os.Stat("/bin/true"); err != nil {
		testutil.Need(t, "true", "the thread execs /bin/true: "+err.Error())
	}
	exe := testutil.BuildC(t, "", "threadexec", src, "-O0", "-pthread")
	null := devNull(t)
	tr := newTracer(t)
	g := newRig(t, true)
	pid := startOrSkip(t, tr, []string{exe}, StartOptions{Files: []*os.File{null, null, os.Stderr}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st := trace(t, ctx, tr, TraceOptions{PID: pid}, g)
	t.Logf("stats %+v; tracker %+v", st, g.tr.Stats())
	if !st.Exited || st.Status.ExitStatus() != 0 || st.Execs != 1 {
		t.Errorf("stats %+v: want one exec, exit status 0", st)
	}
	last := g.rec.events[len(g.rec.events)-1]
	if last.ev.Name != "exit_group" || last.ev.Comm != "true" || last.tid != int32(pid) || last.pid != int32(pid) {
		t.Errorf("last event %s by %q on pid %d tid %d, want exit_group by true on %d", last.ev.Name, last.ev.Comm, last.pid, last.tid, pid)
	}
}

// TestTraceAttachChurn attaches to a process whose threads are created and
// end without pause, samples and traces it, and detaches, many times: the
// process survives, every thread untraced.
func TestTraceAttachChurn(t *testing.T) {
	exe := testutil.BuildC(t, "", "threads", threadsProgram, "-O0", "-pthread")
	cmd := testutil.Start(t, exe, "2", "churn")
	pid := cmd.Process.Pid
	tr := newTracer(t)
	threads := uint64(0)
	for i := range 10 {
		g := newRig(t, i%2 == 0)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		st, err := tr.Trace(ctx, TraceOptions{PID: pid, Hz: 500}, g.tr)
		cancel()
		if errors.Is(err, fs.ErrPermission) {
			testutil.Need(t, "ptrace", err.Error())
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("round %d: Trace = %v (stats %+v)", i, err, st)
		}
		threads += st.Threads
		if st.Threads < 4 || st.Detached == 0 || st.Exited {
			t.Errorf("round %d: stats %+v", i, st)
		}
		tids, _ := procfs.Threads(pid)
		for _, tid := range tids {
			if s, err := procfs.ReadStatus(tid); err == nil && s.TracerPid != 0 {
				t.Errorf("round %d: task %d still traced by %d", i, tid, s.TracerPid)
			}
		}
	}
	t.Logf("%d threads traced over 10 rounds", threads)
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the process did not survive: %v", err)
	}
	if s := taskState(t, pid, pid); s != 'S' && s != 'R' {
		t.Errorf("main thread in state %q after the rounds", s)
	}
}
