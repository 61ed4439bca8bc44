package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/unwindd/unwindd/internal/testutil"
)

// loadProgram makes a known number of system calls, each kind from a
// function of its own: 20 openat(O_RDONLY|O_NOCTTY) from do_opens (the
// loader's and the other opens have other flags), 50 write(2)s of 1 to 50
// bytes to fd 42 from do_writes, 30 getpid(2)s from do_getpids.
const loadProgram = `#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>
static char buf[64];
__attribute__((noinline)) void do_opens(void) {
	for (int i = 0; i < 20; i++) {
		int fd = open("/dev/null", O_RDONLY | O_NOCTTY);
		if (fd >= 0)
			close(fd);
	}
}
__attribute__((noinline)) void do_writes(int fd) {
	for (int i = 1; i <= 50; i++)
		write(fd, buf, i);
}
__attribute__((noinline)) void do_getpids(void) {
	for (int i = 0; i < 30; i++)
		syscall(SYS_getpid);
}
int main(void) {
	do_opens();
	int fd = open("/dev/null", O_WRONLY);
	dup2(fd, 42);
	do_writes(42);
	do_getpids();
	return 0;
}
`

// loadDeployment is the deployment of the end-to-end test: three programs
// on the bpf plugin's one bit, only the third keyed by ustack.
const loadDeployment = `output: %s
plugins:
  - name: bpf
    path: bpf
    decide_deadline: 1s   # a missed decision would cost the stack: generous under -race
    config:
      interval: 0
      programs:
        - name: opens
          probe: syscall:openat
          filter: args.flags == 0x100   # O_RDONLY|O_NOCTTY: do_opens' only
          by: [comm]
        - name: writes
          probe: syscall:write
          filter: args.fd == 42
          aggregate: hist(args.count)
          by: [comm]
        - name: getpids
          probe: syscall:getpid
          by: [ustack]
`

// buildHost builds unwindd and the bpf plugin beside it, where unwindd
// looks for its built-in plugins, and returns unwindd's path.
func buildHost(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	for pkg, name := range map[string]string{"../../cmd/unwindd": "unwindd", ".": "unwindd-plugin-bpf"} {
		if out, err := exec.Command(gobin, "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return filepath.Join(dir, "unwindd")
}

// summary is what the test reads of `unwindd run --summary-json`.
type summary struct {
	Unwinds *uint64 `json:"unwinds"` // newer hosts: stacks walked
	Tracker struct {
		Unwinds uint64 // entries closed with a cookie: the stack was walked
		Entries uint64
	} `json:"tracker"`
	Plugins []struct {
		Name           string `json:"name"`
		State          string `json:"state"`
		Events         uint64 `json:"events"`
		Callbacks      uint64 `json:"callbacks"`
		DecideCalls    uint64 `json:"decide_calls"`
		DecideTimeouts uint64 `json:"decide_timeouts"`
		Error          string `json:"error"`
	} `json:"plugins"`
	Target string `json:"target"`
}

// TestThreeProgramsOneBit runs loadProgram under `unwindd run` with each
// source (ptrace, perf) and loadDeployment: three programs on one tracer bit, of which
// only the getpid program needs stacks. The host must unwind exactly the
// 30 getpid entries, none of the 70 openat and write entries; the maps
// must hold the program's 20 opens, a histogram of its 50 writes, and its
// 30 getpids by stacks through do_getpids and main.
func TestThreeProgramsOneBit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds unwindd and the plugin, and traces a program")
	}
	unwindd := buildHost(t)
	exe := testutil.BuildC(t, "", "bpfload", loadProgram, "-O1", "-g", "-fno-omit-frame-pointer")
	for _, source := range []string{"ptrace", "perf"} {
		t.Run(source, func(t *testing.T) { threePrograms(t, unwindd, exe, source) })
	}
}

// threePrograms is TestThreeProgramsOneBit with one source.
func threePrograms(t *testing.T, unwindd, exe, source string) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	deploy := filepath.Join(dir, "deploy.yaml")
	must(t, os.WriteFile(deploy, []byte(fmt.Sprintf(loadDeployment, out)), 0o644))
	sumFile := filepath.Join(dir, "summary.json")

	cmd := exec.Command(unwindd, "--log-level", "warn", "run", "--source", source, "--config", deploy, "--summary-json", sumFile, "--", exe)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if strings.Contains(stderr.String(), "CAP_SYS_PTRACE") {
		testutil.Need(t, "ptrace", stderr.String())
	}
	if err != nil {
		t.Fatalf("unwindd run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}

	// The host: 30 unwinds, all for the bpf plugin, no decision missed.
	b, err := os.ReadFile(sumFile)
	if err != nil {
		t.Fatal(err)
	}
	var sum summary
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatalf("summary: %v\n%s", err, b)
	}
	if sum.Target != "exited with status 0" || len(sum.Plugins) != 1 || sum.Plugins[0].Name != "bpf" || sum.Plugins[0].Error != "" {
		t.Fatalf("summary:\n%s", b)
	}
	p := sum.Plugins[0]
	if sum.Tracker.Unwinds != 30 || p.Callbacks != 30 || p.DecideTimeouts != 0 {
		t.Errorf("%d unwinds, %d callbacks to bpf, %d decide timeouts; want 30, 30, 0 (only the getpid entries)\nsummary:\n%s",
			sum.Tracker.Unwinds, p.Callbacks, p.DecideTimeouts, b)
	}
	if sum.Unwinds != nil && *sum.Unwinds != 30 {
		t.Errorf("summary's unwinds %d, want 30", *sum.Unwinds)
	}
	// The openat and write programs' probes are events-only: the host asks
	// the plugin about the getpid entries alone.
	if p.DecideCalls != 30 {
		t.Errorf("%d decide calls, want 30 (the getpid entries; openat and write are events only)", p.DecideCalls)
	}
	t.Logf("%s source: %d entries, %d events to bpf, %d decide calls, %d unwinds", source, sum.Tracker.Entries, p.Events, p.DecideCalls, sum.Tracker.Unwinds)

	// The plugin's maps.
	_, doc := readOutputs(t, out)
	opens := mapNamed(t, doc, "@opens")
	if len(opens.Entries) != 1 || opens.Entries[0].Key[0] != "bpfload" || opens.Entries[0].Value != 20 {
		t.Errorf("@opens entries %+v, want [bpfload]: 20", opens.Entries)
	}
	writes := mapNamed(t, doc, "@writes")
	if len(writes.Entries) != 1 || writes.Entries[0].Key[0] != "bpfload" || writes.Entries[0].Count != 50 {
		t.Fatalf("@writes entries %+v, want [bpfload] with 50 writes", writes.Entries)
	}
	var hist []string
	for _, bk := range writes.Entries[0].Buckets {
		hist = append(hist, fmt.Sprintf("%d-%d:%d", *bk.Min, *bk.Max, bk.Count))
	}
	if want := []string{"1-1:1", "2-3:2", "4-7:4", "8-15:8", "16-31:16", "32-63:19"}; !slices.Equal(hist, want) {
		t.Errorf("@writes[bpfload] buckets %v, want %v (counts 1 to 50)", hist, want)
	}
	getpids := mapNamed(t, doc, "@getpids")
	total := int64(0)
	for _, e := range getpids.Entries {
		total += e.Value
		frames, _ := e.Key[0].([]any)
		var names []string
		for _, f := range frames {
			s, _ := f.(string)
			names = append(names, s)
		}
		joined := strings.Join(names, " ")
		if !regexp.MustCompile(`(^| )do_getpids\+\d+ main\+\d+( |$)`).MatchString(joined) {
			t.Errorf("@getpids stack %q (count %d) lacks do_getpids+N ← main+N", joined, e.Value)
		}
	}
	if total != 30 || getpids.Matched != 30 {
		t.Errorf("@getpids counts sum to %d of %d matched, want 30:\n%+v", total, getpids.Matched, getpids.Entries)
	}
	if st := doc.Stats; st.Joined != 30 || st.DecideWanted != 30 || st.NoStack != 0 || st.Lost != 0 || st.OrphanStacks != 0 || st.Stacks != 30 {
		t.Errorf("the plugin's stats %+v: want 30 stacks, 30 joined, 30 entries wanted, nothing without a stack", st)
	}

	// strace, the oracle, counts the same system calls.
	t.Run("strace", func(t *testing.T) {
		strace, err := exec.LookPath("strace")
		if err != nil {
			testutil.Need(t, "strace", "the syscall oracle: "+err.Error())
		}
		o, err := exec.Command(strace, "-f", "-c", "-e", "trace=write,getpid", "-o", "/dev/stdout", exe).Output()
		if err != nil {
			t.Fatalf("strace: %v\n%s", err, o)
		}
		for name, want := range map[string]uint64{"write": writes.Entries[0].Count, "getpid": uint64(total)} {
			m := regexp.MustCompile(`(?m)^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?` + name + `$`).FindStringSubmatch(string(o))
			if m == nil {
				t.Fatalf("no %s line in strace -c's output:\n%s", name, o)
			}
			if n, _ := strconv.ParseUint(m[1], 10, 64); n != want {
				t.Errorf("strace counts %d %s calls, the bpf plugin %d", n, name, want)
			}
		}
	})
}

// TestConfigCheck: `unwindd config check` starts the plugin with its block
// (which then makes no output directory), and a type error in a filter
// comes out at its line and column in the deployment file.
func TestConfigCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds unwindd and the plugin")
	}
	unwindd := buildHost(t)
	dir := t.TempDir()
	deploy := filepath.Join(dir, "deploy.yaml")
	must(t, os.WriteFile(deploy, []byte(fmt.Sprintf(loadDeployment, filepath.Join(dir, "out"))), 0o644))
	if out, err := exec.Command(unwindd, "config", "check", deploy).CombinedOutput(); err != nil || !strings.Contains(string(out), "ok (1 plugins)") {
		t.Errorf("config check of the good deployment: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "out")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("config check made the output directory (%v)", err)
	}
	bad := strings.Replace(fmt.Sprintf(loadDeployment, filepath.Join(dir, "out")), "filter: args.fd == 42", "filter: args.fd == comm", 1)
	must(t, os.WriteFile(deploy, []byte(bad), 0o644))
	out, err := exec.Command(unwindd, "config", "check", deploy).CombinedOutput()
	want := deploy + ":15:19: plugins[0].config.programs[1].filter: column 9: found no matching overload for '_==_' applied to '(int, string)'"
	if err == nil || !strings.Contains(string(out), want) {
		t.Errorf("config check of a type error: %v\n%s\nwant %s", err, out, want)
	}
}

// spinProgram spins in one thread for the milliseconds it is given.
const spinProgram = `#include <stdlib.h>
#include <time.h>
volatile unsigned long sink;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) { double end = now() + atol(argv[1]) / 1000.0; while (now() < end) for (int i = 0; i < 10000; i++) sink++; return 0; }
`

// TestProfileRates traces a thread spinning for 1.5 s with the perf source
// sampling at 999 Hz and two profile programs, at 999 Hz and 99 Hz: the
// 99 Hz program keeps a tenth of the samples the 999 Hz one does (within
// 15%), whatever CPU time the thread got.
func TestProfileRates(t *testing.T) {
	if testing.Short() {
		t.Skip("builds unwindd and the plugin, and traces a program")
	}
	unwindd := buildHost(t)
	exe := testutil.BuildC(t, "", "spin", spinProgram, "-O1")
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	deploy := filepath.Join(dir, "deploy.yaml")
	must(t, os.WriteFile(deploy, []byte(fmt.Sprintf(`output: %s
source:
  perf: {frequency: 999}
plugins:
  - name: bpf
    path: bpf
    config:
      interval: 0
      programs:
        - {name: '@fast', probe: 'profile:hz:999'}
        - {name: '@slow', probe: 'profile:hz:99'}
`, out)), 0o644))
	cmd := exec.Command(unwindd, "--log-level", "warn", "run", "--source", "perf", "--config", deploy, "--", exe, "1500")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("unwindd run: %v\n%s", err, b)
	}
	_, doc := readOutputs(t, out)
	fast, slow := mapNamed(t, doc, "@fast"), mapNamed(t, doc, "@slow")
	if fast.Matched < 500 {
		t.Fatalf("@fast matched %d samples in 1.5 s at 999 Hz, want hundreds", fast.Matched)
	}
	ratio := float64(slow.Matched) / float64(fast.Matched)
	if ratio < 0.085 || ratio > 0.115 {
		t.Errorf("@slow kept %d of @fast's %d samples (%.3f), want a tenth (99/999)", slow.Matched, fast.Matched, ratio)
	}
	t.Logf("profile:hz:999 %d samples, profile:hz:99 %d (%.3f)", fast.Matched, slow.Matched, ratio)
}
