package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/unwindd/unwindd/internal/testutil"
)

// liveProgram, built -O2 -fomit-frame-pointer (only CFI walks it), spins
// ~300 ms under main → work → leaf, then makes exactly 40 write(2) calls
// from writer, to /dev/null.
const liveProgram = `#include <fcntl.h>
#include <time.h>
#include <unistd.h>
volatile unsigned long sink;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
__attribute__((noinline)) void leaf(double end) { while (now() < end) for (int i = 0; i < 100000; i++) sink++; }
__attribute__((noinline)) void work(double end) { leaf(end); sink++; }
__attribute__((noinline)) void writer(int fd) { for (int i = 0; i < 40; i++) sink += write(fd, "x", 1); }
int main(void) {
	work(now() + 0.3);
	int fd = open("/dev/null", O_WRONLY);
	writer(fd);
	return 0;
}
`

// buildFtracePlugin builds the ftrace plugin into a temporary directory.
func buildFtracePlugin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "unwindd-plugin-ftrace")
	if out, err := exec.Command("go", "build", "-o", bin, "../../plugins/ftrace").CombinedOutput(); err != nil {
		t.Fatalf("build the ftrace plugin: %v\n%s", err, out)
	}
	return bin
}

// writeCount is how many write(2) calls `strace -f -c` counts for exe.
func writeCount(t *testing.T, exe string) int {
	t.Helper()
	strace, err := exec.LookPath("strace")
	if err != nil {
		testutil.Need(t, "strace", "the syscall oracle: "+err.Error())
	}
	out, err := exec.Command(strace, "-f", "-c", "-e", "trace=write", "-o", "/dev/stdout", exe).Output()
	if err != nil {
		t.Fatalf("strace: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?write$`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no write line in strace -c's output:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestRun traces liveProgram with each source through `unwindd run` and a
// deployment of the perf and ftrace plugins: the profile's stacks are
// whole (leaf to _start, through the program's frameless functions), every
// write(2) is in trace.txt once, as many as strace counts, each with its
// own cookie and one stack through writer.
func TestRun(t *testing.T) {
	perf, ftrace := buildPerfPlugin(t), buildFtracePlugin(t)
	exe := testutil.BuildC(t, "", "live", liveProgram, "-O2", "-fomit-frame-pointer")
	wantWrites := writeCount(t, exe)
	for _, source := range []string{"perf", "ptrace"} {
		t.Run(source, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			deploy := writeFile(t, dir, "deploy.yaml", fmt.Sprintf(`output: %[1]s
source:
  perf: {frequency: 499}
  ptrace: {frequency: 199}
plugins:
  - name: perf
    path: %[2]s
    config: {out: %[1]s, hz: 499}
  - name: ftrace
    path: %[3]s
    config: {out: %[1]s, syscalls: [write]}
`, out, perf, ftrace))
			sumFile := filepath.Join(dir, "summary.json")
			code, stdout, stderr := runCLI(t, "--log-level", "warn", "run", "--config", deploy, "--source", source, "--summary-json", sumFile, "--", exe)
			skipIfNoPtrace(t, stderr)
			if code != 0 {
				t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
			}
			if b, err := os.ReadFile(sumFile); err != nil || !strings.Contains(string(b), `"target": "exited with status 0"`) || !strings.Contains(string(b), `"command": "run"`) {
				t.Errorf("summary.json (%v):\n%s", err, b)
			}
			for _, w := range []string{"with the " + source + " source", "target   exited with status 0", "plugin perf (stopped)", "plugin ftrace (stopped)"} {
				if !strings.Contains(stdout, w) {
					t.Errorf("summary lacks %q:\n%s", w, stdout)
				}
			}
			folded, err := os.ReadFile(filepath.Join(out, "stacks.folded"))
			if err != nil {
				t.Fatal(err)
			}
			whole, all := 0, 0
			for _, line := range strings.Split(strings.TrimSpace(string(folded)), "\n") {
				c, err := strconv.Atoi(line[strings.LastIndexByte(line, ' ')+1:])
				if err != nil {
					t.Fatalf("stacks.folded line %q: %v", line, err)
				}
				all += c
				if strings.Contains(line, "live;_start;__libc_start_main;__libc_start_call_main;main;work;leaf") {
					whole += c
				}
			}
			if all == 0 || whole*10 < all*6 {
				t.Errorf("%d of %d samples have the whole stack _start…main;work;leaf:\n%s", whole, all, folded)
			}
			t.Logf("%s: %d of %d samples with the whole stack _start…main;work;leaf", source, whole, all)
			trace, err := os.ReadFile(filepath.Join(out, "trace.txt"))
			if err != nil {
				t.Fatal(err)
			}
			checkTrace(t, string(trace), wantWrites)
		})
	}
}

// checkTrace: n sys_write entries, each with a cookie of its own, and one
// stack per cookie, through writer and main.
func checkTrace(t *testing.T, trace string, n int) {
	t.Helper()
	enter := regexp.MustCompile(`: sys_write\(.*\) cookie=(0x[0-9a-f]+)$`)
	stackHdr := regexp.MustCompile(`<user stack trace> cookie=(0x[0-9a-f]+)`)
	lines := strings.Split(trace, "\n")
	cookies, stacks := map[string]int{}, map[string]string{}
	for i, l := range lines {
		if m := enter.FindStringSubmatch(l); m != nil {
			cookies[m[1]]++
		}
		if m := stackHdr.FindStringSubmatch(l); m != nil {
			if _, dup := stacks[m[1]]; dup {
				t.Errorf("stack of cookie %s printed twice", m[1])
			}
			var frames []string
			for _, f := range lines[i+1:] {
				if !strings.HasPrefix(f, " => ") {
					break
				}
				frames = append(frames, f)
			}
			stacks[m[1]] = strings.Join(frames, "\n")
		}
	}
	if len(cookies) != n {
		t.Errorf("%d sys_write entries with cookies in trace.txt, strace counts %d", len(cookies), n)
	}
	for c, k := range cookies {
		if k != 1 {
			t.Errorf("cookie %s on %d sys_write lines", c, k)
		}
		s, ok := stacks[c]
		if !ok {
			t.Errorf("cookie %s has no stack", c)
			continue
		}
		if !strings.Contains(s, " writer+") || !strings.Contains(s, " main+") {
			t.Errorf("cookie %s's stack does not go through writer and main:\n%s", c, s)
		}
	}
}

// TestRunAttach attaches to a running process with each source for 300 ms:
// it is sampled, and runs on untraced afterwards.
func TestRunAttach(t *testing.T) {
	perf := buildPerfPlugin(t)
	exe := testutil.BuildC(t, "", "chain", chainProgram, "-O0", "-fno-omit-frame-pointer")
	cmd := startSpinning(t, exe)
	pid := strconv.Itoa(cmd.Process.Pid)
	for _, source := range []string{"perf", "ptrace"} {
		t.Run(source, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			deploy := writeFile(t, dir, "deploy.yaml", fmt.Sprintf("output: %[1]s\nsource: {ptrace: {frequency: 499}}\nplugins:\n  - name: perf\n    path: %[2]s\n    config: {out: %[1]s}\n", out, perf))
			code, stdout, stderr := runCLI(t, "--log-level", "warn", "run", "--config", deploy, "--source", source, "--duration", "500ms", "-p", pid)
			skipIfNoPtrace(t, stderr)
			if code != 0 {
				t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
			}
			folded, err := os.ReadFile(filepath.Join(out, "stacks.folded"))
			if err != nil || !strings.Contains(string(folded), "main;outer;inner;spin_here") {
				t.Errorf("stacks.folded (%v) lacks main;outer;inner;spin_here:\n%s", err, folded)
			}
			st, err := os.ReadFile("/proc/" + pid + "/status")
			if err != nil || !strings.Contains(string(st), "TracerPid:\t0\n") {
				t.Errorf("after unwindd run -p: %v\n%s", err, st)
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"nothing to trace", []string{"run"}, 2, "give a command to start"},
		{"both", []string{"run", "-p", "1", "--", "true"}, 2, "not both"},
		{"no such process", []string{"run", "-p", "999999999"}, 1, "-p 999999999: no such process"},
		{"kernel thread", []string{"run", "-p", "2"}, 1, "is a kernel thread"},
		{"bad source", []string{"run", "--source", "bpf", "--", "true"}, 2, `--source "bpf": want perf or ptrace`},
		{"bad unwind", []string{"run", "--unwind", "orc", "--", "true"}, 2, "want sframe, cfi or fp"},
		{"no such command", []string{"run", "--", "/nonexistent/prog"}, 1, "no such file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d stderr %q, want exit %d and %q", code, stderr, tt.code, tt.want)
			}
		})
	}
}

// m32Program spins ~200 ms and makes 5 write(2) calls, exit status 3.
const m32Program = `#include <time.h>
#include <unistd.h>
volatile unsigned long sink;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(void) { double e = now() + 0.2; while (now() < e) sink++; for (int i = 0; i < 5; i++) write(1, "", 0); return 3; }
`

// TestRunCompat traces a 32-bit program with each source: its events reach
// the plugins, every stack request is refused (SEMANTICS R5: no deferred
// user stack for a compat task) and counted, nothing crashes, and its exit
// status is reported. The 32-bit build needs Debian's gcc-multilib (make
// deps installs it).
func TestRunCompat(t *testing.T) {
	dir := t.TempDir()
	src := writeFile(t, dir, "m32.c", m32Program)
	exe := filepath.Join(dir, "m32")
	if out, err := exec.Command("gcc", "-m32", "-O0", "-o", exe, src).CombinedOutput(); err != nil {
		testutil.Need(t, "multilib", fmt.Sprintf("gcc -m32 (install gcc-multilib): %v: %s", err, out))
	}
	perf, ftrace := buildPerfPlugin(t), buildFtracePlugin(t)
	for _, source := range []string{"perf", "ptrace"} {
		t.Run(source, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			deploy := writeFile(t, t.TempDir(), "deploy.yaml", fmt.Sprintf("output: %[1]s\nsource: {ptrace: {frequency: 199}}\nplugins:\n  - name: perf\n    path: %[2]s\n    config: {out: %[1]s}\n  - name: ftrace\n    path: %[3]s\n    config: {out: %[1]s, syscalls: [write]}\n", out, perf, ftrace))
			code, stdout, stderr := runCLI(t, "--log-level", "warn", "run", "--config", deploy, "--source", source, "--", exe)
			skipIfNoPtrace(t, stderr)
			if code != 0 {
				t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
			}
			plugin := regexp.MustCompile(`plugin (\w+) \(stopped\): events (\d+), callbacks (\d+), refused (\d+)`)
			found := 0
			for _, m := range plugin.FindAllStringSubmatch(stdout, -1) {
				found++
				events, _ := strconv.Atoi(m[2])
				callbacks, _ := strconv.Atoi(m[3])
				refused, _ := strconv.Atoi(m[4])
				if events == 0 || callbacks != 0 || refused == 0 {
					t.Errorf("plugin %s: %d events, %d callbacks, %d refused; want events, no stack, refusals", m[1], events, callbacks, refused)
				}
			}
			if found != 2 || !strings.Contains(stdout, "target   exited with status 3") {
				t.Errorf("summary:\n%s", stdout)
			}
			// Its syscalls are named by the i386 table: write is 4 there
			// (stat on x86-64).
			trace, err := os.ReadFile(filepath.Join(out, "trace.txt"))
			if n := strings.Count(string(trace), ": sys_write("); err != nil || n != 5 {
				t.Errorf("%d sys_write entries in trace.txt (%v), want the program's 5:\n%s", n, err, trace)
			}
		})
	}
}

// TestRunStackFilter traces liveProgram with the ftrace plugin's comm
// filter (its StackFilter, checked by the host): naming the program, every
// write(2) has its cookie and stack; naming no task, every write is still
// in trace.txt, none with a cookie, and nothing is unwound.
func TestRunStackFilter(t *testing.T) {
	ftrace := buildFtracePlugin(t)
	exe := testutil.BuildC(t, "", "live", liveProgram, "-O2", "-fomit-frame-pointer")
	wantWrites := writeCount(t, exe)
	for _, source := range []string{"perf", "ptrace"} {
		for _, comm := range []string{"live", "nomatch"} {
			t.Run(source+"/"+comm, func(t *testing.T) {
				dir := t.TempDir()
				out := filepath.Join(dir, "out")
				deploy := writeFile(t, dir, "deploy.yaml", fmt.Sprintf("output: %[1]s\nplugins:\n  - name: ftrace\n    path: %[2]s\n    config: {out: %[1]s, syscalls: [write], comm: [%[3]s]}\n", out, ftrace, comm))
				sumFile := filepath.Join(dir, "summary.json")
				code, stdout, stderr := runCLI(t, "--log-level", "warn", "run", "--config", deploy, "--source", source, "--summary-json", sumFile, "--", exe)
				skipIfNoPtrace(t, stderr)
				if code != 0 {
					t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
				}
				trace, err := os.ReadFile(filepath.Join(out, "trace.txt"))
				if err != nil {
					t.Fatal(err)
				}
				if comm == "live" {
					checkTrace(t, string(trace), wantWrites)
					return
				}
				enters := regexp.MustCompile(`(?m): sys_write\(.*\)$`).FindAllString(string(trace), -1)
				if len(enters) != wantWrites || strings.Contains(string(trace), "cookie=") || strings.Contains(string(trace), "<user stack trace>") {
					t.Errorf("%d sys_write lines without a cookie (want %d), cookies or stacks in trace.txt:\n%.1500s", len(enters), wantWrites, trace)
				}
				if b, err := os.ReadFile(sumFile); err != nil || !strings.Contains(string(b), `"unwinds": 0,`) || !strings.Contains(string(b), `"decide_calls": 0,`) {
					t.Errorf("summary (%v): want no unwinds and no decide calls:\n%s", err, b)
				}
			})
		}
	}
}
