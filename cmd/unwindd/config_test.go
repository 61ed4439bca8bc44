package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/unwindd/unwindd/configs"
)

// buildPerfPlugin builds the perf plugin into a temporary directory.
func buildPerfPlugin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "unwindd-plugin-perf")
	if out, err := exec.Command("go", "build", "-o", bin, "../../plugins/perf").CombinedOutput(); err != nil {
		t.Fatalf("build the perf plugin: %v\n%s", err, out)
	}
	return bin
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigDefault(t *testing.T) {
	code, out, errOut := runCLI(t, "config", "default")
	if code != 0 || out != string(configs.Default()) {
		t.Errorf("config default: exit %d, stderr %q; printed %d bytes, want the embedded %d", code, errOut, len(out), len(configs.Default()))
	}
}

// TestConfigCheck checks deployments through the command: the schema's
// mistakes and the plugin's own (the perf plugin refusing keys of its
// block) come out at their file:line:col, with the source line.
func TestConfigCheck(t *testing.T) {
	perf := buildPerfPlugin(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	deploy := func(block string) string {
		return fmt.Sprintf("output: %s\nplugins:\n  - name: perf\n    path: %s\n    config:\n      out: %s\n%s", out, perf, out, block)
	}
	for _, tt := range []struct {
		name, text string
		code       int
		want       []string // in stdout (code 0) or stderr
	}{
		{"good", deploy("      hz: 99\n"), 0, []string{"good.yaml: ok (1 plugins)"}},
		{"plugin refuses keys", deploy("      hz: fast\n      bogus: 1\n"), 1, []string{
			"plugin refuses keys.yaml:7:11: plugins[0].config.hz: want an integer from 1 to 100000, got \"fast\"",
			"    7 |       hz: fast\n      |           ^",
			"plugin refuses keys.yaml:8:14: plugins[0].config.bogus: unknown key",
		}},
		{"schema mistakes", "outptu: x\nplugins:\n  - name: Perf!\n    path: /nonexistent/plugin\n    outbox: big\n", 1, []string{
			"schema mistakes.yaml:1:1: outptu: unknown key",
			"schema mistakes.yaml:3:11: plugins[0].name:",
			"schema mistakes.yaml:5:13: plugins[0].outbox: want",
		}},
		{"missing binary", "plugins:\n  - name: x\n    path: /nonexistent/plugin\n", 1, []string{
			"missing binary.yaml:3:11: plugins[0].path:",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := writeFile(t, dir, tt.name+".yaml", tt.text)
			code, stdout, stderr := runCLI(t, "--log-level", "error", "config", "check", file)
			got := stdout
			if tt.code != 0 {
				got = stderr
			}
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", code, tt.code, stdout, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, filepath.Join(dir, "")+"/"+w) && !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

// TestReplayConfig replays through a deployment file: its perf plugin
// writes the three files to the deployment's output directory.
func TestReplayConfig(t *testing.T) {
	perf := buildPerfPlugin(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	file := writeFile(t, dir, "deploy.yaml", fmt.Sprintf("output: %s\nunwind: [fp]\nplugins:\n  - name: perf\n    path: %s\n    config: {out: %s}\n", out, perf, out))
	sumFile := filepath.Join(dir, "summary.json")
	code, stdout, stderr := runCLI(t, "replay", "--log-level", "warn", "--config", file, "--summary-json", sumFile, dwarfData)
	if code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	var sum struct {
		Command string
		Feed    struct{ Samples uint64 }
		Plugins []struct {
			Name      string
			State     string
			Events    uint64
			Callbacks uint64
		}
	}
	if b, err := os.ReadFile(sumFile); err != nil {
		t.Error(err)
	} else if err := json.Unmarshal(b, &sum); err != nil {
		t.Errorf("summary.json: %v\n%s", err, b)
	} else if sum.Command != "replay" || sum.Feed.Samples == 0 || len(sum.Plugins) != 1 || sum.Plugins[0].Name != "perf" ||
		sum.Plugins[0].State != "stopped" || sum.Plugins[0].Callbacks != sum.Feed.Samples {
		t.Errorf("summary.json %+v", sum)
	}
	for _, f := range []string{"profile.pb.gz", "stacks.folded", "perf.script.txt"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v (size %v)", f, err, st)
		}
	}
	if !strings.Contains(stdout, "plugin perf (stopped)") {
		t.Errorf("summary lacks the perf plugin:\n%s", stdout)
	}
	// --plugin and --config exclude each other.
	if code, _, stderr := runCLI(t, "replay", "--config", file, "--plugin", perf, dwarfData); code != 2 || !strings.Contains(stderr, "not both") {
		t.Errorf("--config with --plugin: exit %d, stderr %q", code, stderr)
	}
}

// TestLogFromConfig: a deployment's log keys set the log level and format
// when the command line does not.
func TestLogFromConfig(t *testing.T) {
	perf := buildPerfPlugin(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	file := writeFile(t, dir, "deploy.yaml", fmt.Sprintf("output: %s\nlog: {level: info, format: json}\nunwind: [fp]\nplugins:\n  - name: perf\n    path: %s\n    config: {out: %s}\n", out, perf, out))
	code, stdout, stderr := runCLI(t, "replay", "--config", file, dwarfData)
	if code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, `{"level":"info"`) || !strings.Contains(stderr, `"msg":"plugin started"`) {
		t.Errorf("stderr is not the deployment's JSON log at info:\n%s", stderr)
	}
	// The command line wins.
	code, _, stderr = runCLI(t, "--log-level", "error", "replay", "--config", file, dwarfData)
	if code != 0 || strings.Contains(stderr, "plugin started") {
		t.Errorf("--log-level error: exit %d, stderr:\n%s", code, stderr)
	}
}

// TestPluginsList starts each configured plugin once and prints what it
// says of itself; a plugin whose binary is missing is listed as such.
func TestPluginsList(t *testing.T) {
	perf, ftrace := buildPerfPlugin(t), buildFtracePlugin(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "deploy.yaml", fmt.Sprintf("plugins:\n  - name: perf\n    path: %s\n    config: {out: %s, hz: 99}\n  - name: ftrace\n    path: %s\n    config: {out: %s, syscalls: [openat, read]}\n  - name: gone\n    path: %s\n",
		perf, dir, ftrace, dir, filepath.Join(dir, "no-such-plugin")))
	code, stdout, stderr := runCLI(t, "--log-level", "error", "plugins", "list", "--config", file)
	if code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	for _, w := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^perf\s+configured\s+0\.1\.0\s+always\s+cpu-clock@99Hz\s+` + regexp.QuoteMeta(perf) + `$`),
		regexp.MustCompile(`(?m)^ftrace\s+configured\s+\S+\s+always\s+syscalls:openat,read\s+` + regexp.QuoteMeta(ftrace) + `$`),
		regexp.MustCompile(`(?m)^gone\s+configured\s+-\s+-\s+not installed\s`),
	} {
		if !w.MatchString(stdout) {
			t.Errorf("plugins list lacks %v:\n%s", w, stdout)
		}
	}
}

// TestThirdPartyPlugin is docs/plugins.md's walk-through: the example
// plugin, a module of its own built against sdk/ alone, deployed by path
// with its SHA-256 and its own config block, replayed into.
func TestThirdPartyPlugin(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "stackcount")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = "../../examples/stackcount"
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build examples/stackcount: %v\n%s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	counts := filepath.Join(dir, "counts.txt")
	deploy := writeFile(t, dir, "deploy.yaml", fmt.Sprintf("unwind: [fp]\nplugins:\n  - name: stackcount\n    path: ./stackcount\n    sha256: \"%x\"\n    config:\n      hz: 99\n      output: %s\n", sha256.Sum256(b), counts))
	if code, stdout, stderr := runCLI(t, "--log-level", "error", "config", "check", deploy); code != 0 {
		t.Fatalf("config check: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr := runCLI(t, "--log-level", "warn", "replay", "--config", deploy, dwarfData)
	if code != 0 {
		t.Fatalf("replay: exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	out, err := os.ReadFile(counts)
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Errorf("the plugin wrote no counts (%v):\n%s", err, out)
	}
	// A wrong checksum is refused.
	bad := writeFile(t, dir, "bad.yaml", strings.Replace(string(must(os.ReadFile(deploy))), fmt.Sprintf("%x", sha256.Sum256(b)), strings.Repeat("0", 64), 1))
	if code, _, stderr := runCLI(t, "--log-level", "error", "config", "check", bad); code == 0 || !strings.Contains(stderr, "checksum") {
		t.Errorf("a wrong sha256: exit %d, stderr %q", code, stderr)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestCheckWritesNothing: `config check` and `plugins list` start the
// plugins only to check them (sdk.DescribeInfo.Check): the last run's
// files in the output directory are left as they were, and a missing
// output directory is not made.
func TestCheckWritesNothing(t *testing.T) {
	perf, ftrace := buildPerfPlugin(t), buildFtracePlugin(t)
	dir := t.TempDir()
	last := filepath.Join(dir, "last")
	if err := os.MkdirAll(last, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"trace.txt": "a trace\n", "profile.pb.gz": "a profile", "stacks.folded": "demo;main 1\n", "flame.svg": "<svg/>", "perf.script.txt": "script\n"}
	for name, text := range files {
		writeFile(t, last, name, text)
	}
	fresh := filepath.Join(dir, "fresh")
	for _, out := range []string{last, fresh} {
		deploy := writeFile(t, dir, "deploy.yaml", fmt.Sprintf("output: %[1]s\nplugins:\n  - name: perf\n    path: %[2]s\n    config: {out: %[1]s}\n  - name: ftrace\n    path: %[3]s\n    config: {out: %[1]s}\n", out, perf, ftrace))
		for _, args := range [][]string{{"config", "check", deploy}, {"plugins", "list", "--config", deploy}} {
			if code, stdout, stderr := runCLI(t, append([]string{"--log-level", "warn"}, args...)...); code != 0 {
				t.Fatalf("%v: exit %d\n%s%s", args, code, stdout, stderr)
			}
		}
	}
	entries, err := os.ReadDir(last)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(files) {
		t.Errorf("%d files in the output directory after the checks, want the %d of the last run: %v", len(entries), len(files), entries)
	}
	for name, text := range files {
		if b, err := os.ReadFile(filepath.Join(last, name)); err != nil || string(b) != text {
			t.Errorf("%s after the checks: %q (%v), want %q", name, b, err, text)
		}
	}
	if _, err := os.Stat(fresh); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the checks made the output directory %s (%v)", fresh, err)
	}
}
