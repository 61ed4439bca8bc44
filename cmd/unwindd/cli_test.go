package main

import (
	"encoding/json"

	"github.com/unwindd/unwindd/internal/testutil"
	"go.uber.org/zap"

	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chainProgram: main → outer → inner → spin_here, spinning after writing
// "r\n".
const chainProgram = `#include <unistd.h>
void spin_here(void) { write(1, "r\n", 2); for (;;) __asm__ volatile(""); }
void inner(void) { spin_here(); }
void outer(void) { inner(); }
int main(void) { outer(); return 0; }
`

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// skipIfNoPtrace skips when the command failed only because ptrace is not
// permitted here.
func skipIfNoPtrace(t *testing.T, stderr string) {
	t.Helper()
	if strings.Contains(stderr, "CAP_SYS_PTRACE") {
		testutil.Need(t, "ptrace", stderr)
	}
}

// frameLine matches a printed frame: number, address, function+offset or
// ??, file+offset, unwind type.
var frameLine = regexp.MustCompile(`^#(\d+) +0x[0-9a-f]{16} (\S+) \((\S+)\) \[(regs|fp|cfi|sframe)\]$`)

// TestStackPID runs `unwindd stack -p PID` on a running program and checks
// the printed stack, line by line.
func TestStackPID(t *testing.T) {
	dir := t.TempDir()
	exe := testutil.BuildC(t, dir, "chain", chainProgram, "-O0", "-fno-omit-frame-pointer")
	cmd := startSpinning(t, exe)
	pid := cmd.Process.Pid

	code, out, errOut := runCLI(t, "stack", "-p", strconv.Itoa(pid))
	skipIfNoPtrace(t, errOut)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []struct{ fn, file string }{
		{"spin_here+", exe + "+0x"},
		{"inner+", exe + "+0x"},
		{"outer+", exe + "+0x"},
		{"main+", exe + "+0x"},
	}
	if len(lines) < 3+len(want) || lines[0] != "PID "+strconv.Itoa(pid)+": 1 thread" || lines[1] != "TID "+strconv.Itoa(pid)+" (chain):" {
		t.Fatalf("output:\n%s", out)
	}
	for i, w := range want {
		m := frameLine.FindStringSubmatch(lines[2+i])
		if m == nil || m[1] != strconv.Itoa(i) || !strings.HasPrefix(m[2], w.fn) || !strings.HasPrefix(m[3], w.file) {
			t.Errorf("frame line %d = %q, want #%d %s… (%s…)", i, lines[2+i], i, w.fn, w.file)
		}
		// Every method by default: the program's .eh_frame first.
		if typ := map[bool]string{true: "regs", false: "cfi"}[i == 0]; m != nil && m[4] != typ {
			t.Errorf("frame %d type [%s], want [%s]", i, m[4], typ)
		}
	}
	// --unwind fp: the same frames, by frame pointers.
	code, fpOut, errOut := runCLI(t, "stack", "--unwind", "fp", "-p", strconv.Itoa(pid))
	if code != 0 {
		t.Fatalf("--unwind fp: exit %d, stderr %q", code, errOut)
	}
	fpLines := strings.Split(strings.TrimSpace(fpOut), "\n")
	for i := range want {
		if len(fpLines) < 3+len(want) {
			t.Fatalf("--unwind fp output:\n%s", fpOut)
		}
		m, f := frameLine.FindStringSubmatch(lines[2+i]), frameLine.FindStringSubmatch(fpLines[2+i])
		typ := map[bool]string{true: "regs", false: "fp"}[i == 0]
		if m == nil || f == nil || f[4] != typ || (i > 0 && f[2] != m[2]) {
			t.Errorf("--unwind fp frame %d = %q, want %q by %s", i, fpLines[2+i], lines[2+i], typ)
		}
	}
	if code, _, errOut := runCLI(t, "stack", "--unwind", "orc", "-p", strconv.Itoa(pid)); code != 2 || !strings.Contains(errOut, "want sframe, cfi or fp") {
		t.Errorf("--unwind orc: exit %d, stderr %q", code, errOut)
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "end: ") {
		t.Errorf("last line %q, want the end reason", last)
	}
	// It runs on, untraced.
	if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status"); err != nil || !strings.Contains(string(st), "TracerPid:\t0\n") {
		t.Errorf("after unwindd stack: %v\n%s", err, st)
	}
}

// TestStackCommand runs `unwindd stack --after D -- CMD`: the stacks of the
// started command, which is killed and reaped afterwards.
func TestStackCommand(t *testing.T) {
	dir := t.TempDir()
	exe := testutil.BuildC(t, dir, "chain", chainProgram, "-O0", "-fno-omit-frame-pointer")
	code, out, errOut := runCLI(t, "stack", "--after", "200ms", "--", exe)
	skipIfNoPtrace(t, errOut)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	// The command's own output ("r\n") comes first: it shares stdout.
	m := regexp.MustCompile(`(?m)^PID (\d+): 1 thread$`).FindStringSubmatch(out)
	if m == nil || !strings.HasPrefix(out, "r\n") || !strings.Contains(out, " spin_here+0x") || !strings.Contains(out, " main+0x") {
		t.Fatalf("output:\n%s", out)
	}
	if _, err := os.Stat("/proc/" + m[1]); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("command pid %s still exists after unwindd stack returned: %v", m[1], err)
	}
}

func TestStackErrors(t *testing.T) {
	dir := t.TempDir()
	quick := testutil.BuildC(t, dir, "quick", "int main(void) { return 3; }\n")
	tests := []struct {
		name string
		args []string
		code int
		msg  string // in the one-line error
	}{
		{"no pid nor command", []string{"stack"}, 2, "give -p PID or a command"},
		{"both", []string{"stack", "-p", "1", "--", "true"}, 2, "not both"},
		{"negative pid", []string{"stack", "-p", "-5"}, 2, "not a pid"},
		{"after with pid", []string{"stack", "-p", "1", "--after", "1s"}, 2, "--after goes with a command"},
		{"bad flag", []string{"stack", "--bogus"}, 2, "unknown flag: --bogus"},
		{"bad log level", []string{"--log-level", "loud", "stack", "-p", "1"}, 2, "--log-level"},
		{"no such pid", []string{"stack", "-p", "1073741824"}, 1, "no such process: pid 1073741824"},
		{"kernel thread", []string{"stack", "-p", "2"}, 1, "kernel thread: pid 2 (kthreadd)"},
		{"command not found", []string{"stack", "--", dir + "/missing"}, 1, "start " + dir + "/missing"},
		{"command exits first", []string{"stack", "--after", "300ms", "--", quick}, 1, "exited (exit status 3) before its stacks were taken"},
		{"version with args", []string{"version", "x"}, 2, "version: no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.msg) || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "unwindd: ") {
				t.Errorf("unwindd %s: exit %d, stderr %q; want exit %d and one line with %q", strings.Join(tt.args, " "), code, errOut, tt.code, tt.msg)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	code, out, errOut := runCLI(t, "version")
	if code != 0 || !regexp.MustCompile(`^unwindd \S+ go1\.\S+ linux/amd64\n$`).MatchString(out) {
		t.Errorf("version: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestStackInterrupted: a cancelled context (Ctrl-C) while waiting --after
// kills the started command and fails.
func TestStackInterrupted(t *testing.T) {
	dir := t.TempDir()
	exe := testutil.BuildC(t, dir, "chain", chainProgram, "-O0")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var out, errb bytes.Buffer
	start := time.Now()
	code := run(ctx, []string{"stack", "--after", "1m", "--", exe}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "deadline exceeded") || time.Since(start) > 30*time.Second {
		t.Errorf("interrupted: exit %d after %v, stderr %q", code, time.Since(start), errb.String())
	}
}

// TestLogFormat: --log-format json writes one JSON object per entry, with
// the plugin name as a field, and a bad format is a usage error.
func TestLogFormat(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger("info", "json", &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("plugin started", zap.String("plugin", "perf"))
	var entry map[string]any
	if err := json.Unmarshal(buf.Bytes(), &entry); err != nil {
		t.Fatalf("not JSON: %v: %q", err, buf.String())
	}
	if entry["msg"] != "plugin started" || entry["plugin"] != "perf" || entry["level"] != "info" || entry["ts"] == nil {
		t.Errorf("entry %v", entry)
	}
	if code, _, stderr := runCLI(t, "--log-format", "xml", "version"); code != 2 || !strings.Contains(stderr, `--log-format "xml": want console or json`) {
		t.Errorf("--log-format xml: exit %d, stderr %q", code, stderr)
	}
	if code, out, _ := runCLI(t, "--log-format", "json", "version"); code != 0 || !strings.HasPrefix(out, "unwindd ") {
		t.Errorf("--log-format json version: exit %d, %q", code, out)
	}
}
