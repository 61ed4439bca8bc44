package main

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unwindd/unwindd/internal/testutil"
)

// The oracles of `unwindd run` (issue 6, "Checked against real tools"):
// the kernel's own user-stack walk of the same syscalls, perf record -g's
// distribution of stacks on the same workload, and gdb's backtrace at a
// known leaf.

// userstackProgram, built -O0 -fno-omit-frame-pointer, makes 5 getpid(2)
// and 5 write(2) calls (to /dev/null) from c, under main → a → b → c; then
// opens the FIFO argv[1] and reads it: it stays alive (the kernel resolves
// the paths of a user stack when the trace is read, from the live task's
// mappings) until the test has read the trace and closes its end.
const userstackProgram = `#include <fcntl.h>
#include <unistd.h>
volatile long sink;
void c(int fd) { for (int i = 0; i < 5; i++) { sink += getpid(); sink += write(fd, "x", 1); } }
void b(int fd) { c(fd); }
void a(int fd) { b(fd); }
int main(int argc, char **argv) {
	int fd = open("/dev/null", O_WRONLY);
	a(fd);
	int f = open(argv[1], O_RDONLY);
	char x;
	return read(f, &x, 1);
}
`

// userstackCalls is how many getpid and write calls userstackProgram makes.
const userstackCalls = 10

// tracefsInstance makes a private tracefs instance, removed when the test
// ends, with raw_syscalls:sys_enter enabled for getpid(2) and write(2) of
// tasks named comm, each with its user stack (userstacktrace) printed as
// file and offset (sym-userobj). It returns the instance's directory.
func tracefsInstance(t *testing.T, comm string) string {
	t.Helper()
	const root = "/sys/kernel/tracing"
	if _, err := os.Stat(filepath.Join(root, "instances")); err != nil {
		testutil.Need(t, "tracefs", "the kernel's user stacks: "+err.Error())
	}
	dir := filepath.Join(root, "instances", fmt.Sprintf("unwindd-test-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		testutil.Need(t, "tracefs", "a private instance: "+err.Error())
	}
	t.Cleanup(func() {
		os.WriteFile(filepath.Join(dir, "events/raw_syscalls/sys_enter/enable"), []byte("0"), 0)
		// An instance is removed with rmdir, once nothing has its files open.
		for i := 0; ; i++ {
			err := syscall.Rmdir(dir)
			if err == nil || errors.Is(err, syscall.ENOENT) {
				return
			}
			if i == 50 {
				t.Errorf("remove %s: %v", dir, err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	for _, w := range []struct{ file, value string }{
		{"options/userstacktrace", "1"},
		{"options/sym-userobj", "1"},
		{"events/raw_syscalls/sys_enter/filter", fmt.Sprintf(`comm == "%s" && (id == %d || id == %d)`, comm, syscall.SYS_GETPID, syscall.SYS_WRITE)},
		{"events/raw_syscalls/sys_enter/enable", "1"},
		{"tracing_on", "1"},
	} {
		if err := os.WriteFile(filepath.Join(dir, w.file), []byte(w.value), 0); err != nil {
			testutil.Need(t, "tracefs", fmt.Sprintf("write %q to %s: %v", w.value, w.file, err))
		}
	}
	return dir
}

// syscallStack is a syscall entry and its user stack, leaf first, each frame
// as the kernel prints it with sym-userobj: "/path[+0xOFF]" (OFF = ip −
// mapping start), or "<%016x>" outside file mappings.
type syscallStack struct {
	call   string // "NR 39" or "NR 1"
	frames []string
}

var (
	// kernelEnter and kernelStack match the kernel's trace lines: the
	// task-tid prefix, then the event or the stack's header.
	kernelEnter = regexp.MustCompile(`^\s*.*-(\d+)\s+\[\d+\] \S+\s+[\d.]+: sys_enter: (NR \d+) `)
	kernelStack = regexp.MustCompile(`^\s*.*-(\d+)\s+\[\d+\] \S+\s+[\d.]+: <user stack trace>`)
	// oursEnter and oursStack match trace.txt's.
	oursEnter = regexp.MustCompile(`^\s*.*-(\d+)\s+\[[-\d]+\] \S+\s+[\d.]+: sys_(getpid|write)\(.*\) cookie=(0x[0-9a-f]+)$`)
	oursStack = regexp.MustCompile(`<user stack trace> cookie=(0x[0-9a-f]+) end=(\S+)`)
)

// stackFrame is a " => " line's frame without the symbol trace.txt adds.
func stackFrame(line string) string {
	s := strings.TrimSpace(strings.TrimPrefix(line, " => "))
	if i := strings.Index(s, "[+0x"); i >= 0 {
		if j := strings.IndexByte(s[i:], ']'); j >= 0 {
			return s[:i+j+1]
		}
	}
	f, _, _ := strings.Cut(s, " ")
	return f
}

// frameLines collects the " => " lines after lines[i].
func frameLines(lines []string, i int) []string {
	var fs []string
	for _, l := range lines[i+1:] {
		if !strings.HasPrefix(l, " => ") {
			break
		}
		fs = append(fs, stackFrame(l))
	}
	return fs
}

// kernelStacks parses an instance's trace: per tid, the sys_enter events in
// order, each with the user stack the kernel recorded right after it.
func kernelStacks(trace string) map[int][]syscallStack {
	by := map[int][]syscallStack{}
	lines := strings.Split(trace, "\n")
	for i, l := range lines {
		if m := kernelEnter.FindStringSubmatch(l); m != nil {
			tid, _ := strconv.Atoi(m[1])
			by[tid] = append(by[tid], syscallStack{call: m[2]})
		} else if m := kernelStack.FindStringSubmatch(l); m != nil {
			tid, _ := strconv.Atoi(m[1])
			if n := len(by[tid]); n > 0 && by[tid][n-1].frames == nil {
				by[tid][n-1].frames = frameLines(lines, i)
			}
		}
	}
	return by
}

// ourStacks parses trace.txt the same way: the getpid and write entries per
// tid in order, each with the stack of its cookie.
func ourStacks(trace string) map[int][]syscallStack {
	type ev struct {
		tid    int
		call   string
		cookie string
	}
	var evs []ev
	stacks := map[string][]string{}
	lines := strings.Split(trace, "\n")
	nr := map[string]string{"getpid": fmt.Sprintf("NR %d", syscall.SYS_GETPID), "write": fmt.Sprintf("NR %d", syscall.SYS_WRITE)}
	for i, l := range lines {
		if m := oursEnter.FindStringSubmatch(l); m != nil {
			tid, _ := strconv.Atoi(m[1])
			evs = append(evs, ev{tid, nr[m[2]], m[3]})
		} else if m := oursStack.FindStringSubmatch(l); m != nil {
			stacks[m[1]] = frameLines(lines, i)
		}
	}
	by := map[int][]syscallStack{}
	for _, e := range evs {
		by[e.tid] = append(by[e.tid], syscallStack{call: e.call, frames: stacks[e.cookie]})
	}
	return by
}

// runUserstack runs exe under `unwindd run --source perf` with the ftrace
// plugin and the given --unwind methods ("" for the default), and returns
// the kernel's trace of the instance dir and unwindd's trace.txt, the
// kernel's read while exe is still alive (waiting on its FIFO).
func runUserstack(t *testing.T, dir, exe, ftrace, unwind string) (kernel, ours string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "trace"), nil, 0); err != nil { // clear
		t.Fatal(err)
	}
	tmp := t.TempDir()
	out := filepath.Join(tmp, "out")
	fifo := filepath.Join(tmp, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	deploy := writeFile(t, tmp, "deploy.yaml", fmt.Sprintf(`output: %[1]s
plugins:
  - name: ftrace
    path: %[2]s
    config: {out: %[1]s, syscalls: [getpid, write]}
`, out, ftrace))
	args := []string{"--log-level", "warn", "run", "--config", deploy, "--source", "perf"}
	if unwind != "" {
		args = append(args, "--unwind", unwind)
	}
	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.code, r.stdout, r.stderr = runCLI(t, append(args, "--", exe, fifo)...)
		done <- r
	}()
	// The FIFO opens for writing once exe opened it for reading: past its
	// syscalls, whose events and stacks are then in the kernel's buffer.
	var w *os.File
	for deadline := time.Now().Add(10 * time.Second); w == nil; {
		fd, err := syscall.Open(fifo, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		switch {
		case err == nil:
			w = os.NewFile(uintptr(fd), fifo)
		case !errors.Is(err, syscall.ENXIO):
			t.Fatal(err)
		case time.Now().After(deadline):
			t.Fatalf("%s did not open its FIFO in 10s", exe)
		}
		select {
		case r := <-done:
			t.Fatalf("unwindd run ended early: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
		default:
		}
		if w == nil {
			time.Sleep(5 * time.Millisecond)
		}
	}
	k, err := os.ReadFile(filepath.Join(dir, "trace"))
	w.Close() // exe reads EOF and exits
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.code != 0 || !strings.Contains(r.stdout, "target   exited with status 0") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	o, err := os.ReadFile(filepath.Join(out, "trace.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return string(k), string(o)
}

// TestRunKernelUserstack takes the kernel's own unwinder as the oracle of
// the syscall stacks: a private tracefs instance records
// raw_syscalls:sys_enter of the workload's getpid(2) and write(2) calls
// with options/userstacktrace and sym-userobj, while `unwindd run` traces
// the same process with the ftrace plugin; the two stacks of each syscall
// (in order, per tid) are compared frame by frame as /path[+0xOFF], the
// kernel's offsets and trace.txt's being the same (ip − mapping start).
//
// The kernel walks frame pointers, at most 8 entries: with --unwind fp its
// frames must be our first frames. With the default methods (sframe, cfi,
// fp) every kernel frame must appear in ours, in order, and ours must have
// the frame the kernel loses: Debian's libc has no frame pointers, so at
// the syscall in the libc wrapper rbp is still the caller's (c's) frame,
// and the kernel goes from the wrapper to c's caller, b; CFI does not.
func TestRunKernelUserstack(t *testing.T) {
	ftrace := buildFtracePlugin(t)
	comm := fmt.Sprintf("uwk%d", os.Getpid()%100000000)
	exe := testutil.BuildC(t, "", comm, userstackProgram, "-O0", "-fno-omit-frame-pointer")
	dir := tracefsInstance(t, comm)

	for _, unwind := range []string{"fp", ""} {
		name := unwind
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			k, o := runUserstack(t, dir, exe, ftrace, unwind)
			kern, ours := kernelStacks(k), ourStacks(o)
			if len(kern) != 1 || len(ours) != 1 {
				t.Fatalf("tasks: the kernel's trace has %d, trace.txt %d; want 1 each\nkernel:\n%s\ntrace.txt:\n%s", len(kern), len(ours), k, o)
			}
			compared, frames := 0, 0
			for tid, ks := range kern {
				us := ours[tid]
				if len(ks) != userstackCalls || len(us) != userstackCalls {
					t.Fatalf("tid %d: the kernel has %d getpid/write entries, trace.txt %d; want %d each\nkernel:\n%s\ntrace.txt:\n%s", tid, len(ks), len(us), userstackCalls, k, o)
				}
				for i := range ks {
					kf, of := ks[i].frames, us[i].frames
					if ks[i].call != us[i].call {
						t.Errorf("tid %d syscall #%d: the kernel's is %s, ours %s", tid, i, ks[i].call, us[i].call)
						continue
					}
					if len(kf) < 3 {
						t.Errorf("tid %d syscall #%d (%s): the kernel's stack has %d frames: %q", tid, i, ks[i].call, len(kf), kf)
						continue
					}
					compared++
					frames += len(kf)
					if unwind == "fp" {
						if len(of) < len(kf) || !slices.Equal(kf, of[:len(kf)]) {
							t.Errorf("tid %d syscall #%d (%s): the kernel's stack is not the start of ours\nkernel: %q\nours:   %q", tid, i, ks[i].call, kf, of)
						}
						continue
					}
					// Every kernel frame in ours, in order; the kernel's
					// second frame (c's caller, b) not ours.
					at, j := []int{}, 0
					for _, f := range kf {
						for j < len(of) && of[j] != f {
							j++
						}
						if j == len(of) {
							break
						}
						at = append(at, j)
						j++
					}
					switch {
					case len(at) < len(kf):
						t.Errorf("tid %d syscall #%d (%s): kernel frame %q is not in ours (in order)\nkernel: %q\nours:   %q", tid, i, ks[i].call, kf[len(at)], kf, of)
					case at[0] != 0 || at[1] < 2 || !strings.HasPrefix(of[1], exe+"[+0x"):
						t.Errorf("tid %d syscall #%d (%s): ours lacks the libc wrapper's caller (c) the kernel loses\nkernel: %q\nours:   %q", tid, i, ks[i].call, kf, of)
					}
				}
				t.Logf("tid %d: %d syscalls compared, %d kernel frames; e.g. #0 %s\nkernel: %q\nours:   %q", tid, compared, frames, ks[0].call, ks[0].frames, us[0].frames)
			}
		})
	}
}

// cChain spins ~300 ms in leaf under main → a → b, built -O2
// -fno-omit-frame-pointer: nearly every sample is main;a;b;leaf (a few in
// the clock read).
const cChain = `#include <time.h>
volatile unsigned long sink;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
__attribute__((noinline)) void leaf(double end) { while (now() < end) for (int i = 0; i < 300000; i++) sink++; }
__attribute__((noinline)) void b(double end) { leaf(end); sink++; }
__attribute__((noinline)) void a(double end) { b(end); sink++; }
int main(void) { a(now() + 0.3); sink++; return 0; }
`

// notMain is the folded stack of the samples whose stack does not reach the
// top function.
const notMain = "(not reaching main)"

// foldedStack folds a stack given leaf first as "top;…;leaf", cut at its
// first frame in top; ok is false if it has none.
func foldedStack(leafFirst []string, top string) (string, bool) {
	i := slices.Index(leafFirst, top)
	if i < 0 {
		return notMain, false
	}
	cut := slices.Clone(leafFirst[:i+1])
	slices.Reverse(cut)
	return strings.Join(cut, ";"), true
}

// stackCounts is a multiset of folded stacks.
type stackCounts map[string]int

func (c stackCounts) total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// foldedFile reads the perf plugin's stacks.folded ("comm;root;…;leaf N"),
// the stacks of comm's samples cut at top. With onlyTop, stacks that do not
// reach top are left out; otherwise they count as [notMain].
func foldedFile(t *testing.T, path, comm, top string, onlyTop bool) stackCounts {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := stackCounts{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		sp := strings.LastIndexByte(line, ' ')
		n, err := strconv.Atoi(line[sp+1:])
		if err != nil {
			t.Fatalf("%s: line %q: %v", path, line, err)
		}
		fs := strings.Split(line[:sp], ";")
		if fs[0] != comm {
			continue
		}
		fs = fs[1:]
		slices.Reverse(fs)
		for i, f := range fs {
			fs[i], _, _ = strings.Cut(f, "@")
		}
		if k, ok := foldedStack(fs, top); ok || !onlyTop {
			c[k] += n
		}
	}
	return c
}

// perfG records exe with perf record -g (the kernel's frame-pointer walk)
// and folds perf script's stacks of comm's samples the same way.
func perfG(t *testing.T, exe, comm, top string, onlyTop bool) stackCounts {
	t.Helper()
	perf, err := exec.LookPath("perf")
	if err != nil {
		testutil.Need(t, "perf", "the oracle, perf record -g: "+err.Error())
	}
	data := filepath.Join(t.TempDir(), "perf.data")
	if out, err := exec.Command(perf, "record", "-q", "-e", "cpu-clock", "-F", "999", "-g", "-o", data, "--", exe).CombinedOutput(); err != nil {
		testutil.Need(t, "perf", fmt.Sprintf("perf record: %v: %s", err, out))
	}
	out, err := exec.Command(perf, "script", "-i", data, "-F", "comm,tid,time,ip,sym,dso", "--no-inline").Output()
	if err != nil {
		t.Fatalf("perf script: %v", err)
	}
	c := stackCounts{}
	var stack []string
	in := false
	flush := func() {
		if in {
			if k, ok := foldedStack(stack, top); ok || !onlyTop {
				c[k]++
			}
		}
		in, stack = false, nil
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
			flush()
		case !strings.HasPrefix(line, "\t"):
			flush()
			in = f[0] == comm
		case in && len(f) >= 3:
			if f[len(f)-1] == "([kernel.kallsyms])" {
				continue
			}
			sym, _, _ := strings.Cut(f[1], "@")
			if i := strings.LastIndex(sym, "+0x"); i > 0 {
				sym = sym[:i]
			}
			stack = append(stack, sym)
		}
	}
	flush()
	return c
}

// leafOverlap is 1 − the total variation distance of the stacks above each
// leaf function, averaged over the leaves weighted by the mean of their
// shares on the two sides: how samples split between leaves is the
// workload's (it moves between two runs by more than sampling noise), what
// is above a leaf is the unwinder's. A leaf on one side only counts as
// wholly different.
func leafOverlap(p, q stackCounts) float64 {
	byLeaf := func(c stackCounts) map[string]stackCounts {
		m := map[string]stackCounts{}
		for k, n := range c {
			leaf := k[strings.LastIndexByte(k, ';')+1:]
			if m[leaf] == nil {
				m[leaf] = stackCounts{}
			}
			m[leaf][k] += n
		}
		return m
	}
	lp, lq := byLeaf(p), byLeaf(q)
	leaves := map[string]bool{}
	for l := range lp {
		leaves[l] = true
	}
	for l := range lq {
		leaves[l] = true
	}
	np, nq := float64(p.total()), float64(q.total())
	if np == 0 || nq == 0 {
		return 0
	}
	ov := 0.0
	for l := range leaves {
		w := (float64(lp[l].total())/np + float64(lq[l].total())/nq) / 2
		ov += w * overlap(lp[l], lq[l])
	}
	return ov
}

// overlap is 1 − the total variation distance of the two distributions.
func overlap(p, q stackCounts) float64 {
	np, nq := float64(p.total()), float64(q.total())
	if np == 0 || nq == 0 {
		return 0
	}
	d := 0.0
	for k := range p {
		d += math.Abs(float64(p[k])/np - float64(q[k])/nq)
	}
	for k := range q {
		if _, ok := p[k]; !ok {
			d += float64(q[k]) / nq
		}
	}
	return 1 - d/2
}

// distTable prints the distributions side by side, most frequent first.
func distTable(p, q stackCounts) string {
	np, nq := float64(max(p.total(), 1)), float64(max(q.total(), 1))
	keys := slices.Collect(maps.Keys(p))
	for k := range q {
		if _, ok := p[k]; !ok {
			keys = append(keys, k)
		}
	}
	frac := func(k string) float64 { return float64(p[k])/np + float64(q[k])/nq }
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(cmp.Compare(frac(b), frac(a)), strings.Compare(a, b)) })
	var s strings.Builder
	fmt.Fprintf(&s, "\t unwindd  perf -g\n")
	for i, k := range keys {
		if i == 12 {
			fmt.Fprintf(&s, "\t… %d more\n", len(keys)-i)
			break
		}
		fmt.Fprintf(&s, "\t%7.1f%% %7.1f%%  %s\n", 100*float64(p[k])/np, 100*float64(q[k])/nq, k)
	}
	return s.String()
}

// TestRunMatchesPerfG compares the samples' stacks of `unwindd run --unwind
// fp` (the perf plugin's stacks.folded) with those of perf record -g (the
// kernel's frame-pointer walk, read with perf script) on separate runs of
// the same workload, folded leaf to main: the distributions must overlap by
// at least 90% (1 − total variation distance ≥ 0.9). For Go, only the
// samples whose stack reaches main.main count on either side (the runtime's
// other threads are not the workload).
//
// The memset workload (testutil.MemsetChainSrc) splits its time between two leaves, leaf
// and libc's frameless memset (whose samples both walks attribute to b,
// leaf's caller, skipping leaf), and the split moves between two runs by
// more than 10% on a busy machine: there the overlap is taken leaf by leaf
// ([leafOverlap]), the plain one logged.
func TestRunMatchesPerfG(t *testing.T) {
	perf := buildPerfPlugin(t)
	for _, p := range []struct {
		name, top string
		onlyTop   bool // only the stacks reaching top
		perLeaf   bool // the overlap leaf by leaf
		build     func(t *testing.T) string
	}{
		{"c", "main", false, false, func(t *testing.T) string {
			return testutil.BuildC(t, "", "cchain", cChain, "-O2", "-g", "-fno-omit-frame-pointer")
		}},
		{"c-memset", "main", false, true, func(t *testing.T) string {
			return testutil.BuildC(t, "", "o2chain", testutil.MemsetChainSrc, "-O2", "-g", "-fno-omit-frame-pointer")
		}},
		{"go", "main.main", true, false, func(t *testing.T) string { return testutil.BuildGo(t, "gochain", testutil.GoChainSrc) }},
	} {
		t.Run(p.name, func(t *testing.T) {
			exe := p.build(t)
			comm := filepath.Base(exe)
			theirs := perfG(t, exe, comm, p.top, p.onlyTop)

			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			deploy := writeFile(t, dir, "deploy.yaml", fmt.Sprintf("output: %[1]s\nsource: {perf: {frequency: 999}}\nplugins:\n  - name: perf\n    path: %[2]s\n    config: {out: %[1]s, hz: 999}\n", out, perf))
			code, stdout, stderr := runCLI(t, "--log-level", "warn", "run", "--config", deploy, "--source", "perf", "--unwind", "fp", "--", exe)
			if code != 0 {
				t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
			}
			ours := foldedFile(t, filepath.Join(out, "stacks.folded"), comm, p.top, p.onlyTop)
			if ours.total() < 50 || theirs.total() < 50 {
				t.Fatalf("%d samples from unwindd, %d from perf record -g; want ≥ 50 each\n%s", ours.total(), theirs.total(), distTable(ours, theirs))
			}
			plain, perLeaf := overlap(ours, theirs), leafOverlap(ours, theirs)
			ov, how := plain, "whole stacks"
			if p.perLeaf {
				ov, how = perLeaf, "stacks above each leaf"
			}
			msg := fmt.Sprintf("%s leaf to %s overlap by %.3f (whole stacks %.3f, above each leaf %.3f); unwindd %d samples, perf -g %d:\n%s",
				how, p.top, ov, plain, perLeaf, ours.total(), theirs.total(), distTable(ours, theirs))
			if ov < 0.9 {
				t.Errorf("%s; want ≥ 0.9", msg)
				return
			}
			t.Log(msg)
		})
	}
}

// leafProgram spins in leaf under main → a → b → leaf: ~300 ms and exits
// without arguments; with one, it writes "r" and spins forever.
const leafProgram = `#include <stdlib.h>
#include <time.h>
#include <unistd.h>
volatile unsigned long sink;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
__attribute__((noinline)) void leaf(double end) { while (end == 0 || now() < end) for (int i = 0; i < 100000; i++) sink++; }
__attribute__((noinline)) void b(double end) { leaf(end); sink++; }
__attribute__((noinline)) void a(double end) { b(end); sink++; }
int main(int argc, char **argv) {
	if (argc > 1) { write(1, "r", 1); a(0); }
	a(now() + 0.3);
	return 0;
}
`

// TestRunGDBLeaf: the dominant stack of `unwindd run -- prog` (default
// unwind methods), from main to the leaf, is gdb's backtrace of the same
// program spinning at the same leaf (a separate run), read from the leaf to
// main.
func TestRunGDBLeaf(t *testing.T) {
	gdb, err := exec.LookPath("gdb")
	if err != nil {
		testutil.Need(t, "gdb", "the oracle: "+err.Error())
	}
	perf := buildPerfPlugin(t)
	exe := testutil.BuildC(t, "", "gdbleaf", leafProgram, "-O2", "-g", "-fno-omit-frame-pointer")

	cmd := testutil.Start(t, exe, "spin")
	waitSpinning(t, cmd.Process.Pid)
	out, err := exec.Command(gdb, "-batch", "-nx", "-p", strconv.Itoa(cmd.Process.Pid), "-ex", "thread apply all bt").CombinedOutput()
	if err != nil {
		t.Fatalf("gdb: %v\n%s", err, out)
	}
	bt := parseGDB(string(out))[cmd.Process.Pid]
	var chain []string
	for _, f := range bt {
		chain = append(chain, f.name)
		if f.name == "main" {
			break
		}
	}
	if len(chain) == 0 || chain[len(chain)-1] != "main" {
		t.Fatalf("gdb's backtrace does not reach main:\n%s", out)
	}
	slices.Reverse(chain)
	want := strings.Join(chain, ";")
	if want != "main;a;b;leaf" {
		t.Errorf("gdb's chain is %s, want main;a;b;leaf:\n%s", want, out)
	}
	cmd.Process.Kill() // not to take CPU time from the traced run
	cmd.Wait()

	dir := t.TempDir()
	o := filepath.Join(dir, "out")
	deploy := writeFile(t, dir, "deploy.yaml", fmt.Sprintf("output: %[1]s\nsource: {perf: {frequency: 499}}\nplugins:\n  - name: perf\n    path: %[2]s\n    config: {out: %[1]s, hz: 499}\n", o, perf))
	code, stdout, stderr := runCLI(t, "--log-level", "warn", "run", "--config", deploy, "--", exe)
	if code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	ours := foldedFile(t, filepath.Join(o, "stacks.folded"), "gdbleaf", "main", false)
	var top string
	for k, n := range ours {
		if top == "" || n > ours[top] || n == ours[top] && k < top {
			top = k
		}
	}
	if top != want || ours[top]*2 < ours.total() || ours.total() < 20 {
		t.Errorf("the dominant stack is %s (%d of %d samples), gdb's %s:\n%s", top, ours[top], ours.total(), want, distTable(ours, stackCounts{want: 1}))
		return
	}
	t.Logf("dominant stack %s: %d of %d samples; gdb: %s", top, ours[top], ours.total(), want)
}
