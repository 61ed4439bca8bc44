package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const dwarfData = "../../host/perfdata/testdata/dwarf.perf.data"

// buildReplayPlugin builds package replay's test plugin, which writes every
// event it gets, joined with its stack, to OUT/events.jsonl.
func buildReplayPlugin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "unwindd-plugin-replaytest")
	if out, err := exec.Command("go", "build", "-o", bin, "../../host/replay/testdata/plugin").CombinedOutput(); err != nil {
		t.Fatalf("build the test plugin: %v\n%s", err, out)
	}
	return bin
}

func TestReplay(t *testing.T) {
	plugin := buildReplayPlugin(t)
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, stderr := runCLI(t, "replay", "--log-level", "warn", "--plugin", plugin, "--out", out, dwarfData)
	if code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
	for _, want := range []string{"replayed " + dwarfData, "records ", "entries ", "unwinds ", "lost ", "plugin replaytest (stopped): events "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), `"HasStack":true`); n == 0 || n != strings.Count(string(b), "\n") {
		t.Errorf("%d of %d events have their stack", n, strings.Count(string(b), "\n"))
	}
}

func TestReplayErrors(t *testing.T) {
	dir := t.TempDir()
	notPerf := filepath.Join(dir, "text")
	if err := os.WriteFile(notPerf, []byte(strings.Repeat("not a perf.data file\n", 20)), 0o644); err != nil {
		t.Fatal(err)
	}
	plugin := buildReplayPlugin(t)
	out := filepath.Join(dir, "out")
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no file", []string{"replay", "--plugin", plugin}, 2, "give one perf.data file"},
		{"missing file", []string{"replay", "--plugin", plugin, "--out", out, filepath.Join(dir, "nope")}, 1, "no such file"},
		{"not perf.data", []string{"replay", "--plugin", plugin, "--out", out, notPerf}, 1, "perfdata"},
		{"missing plugin", []string{"replay", "--plugin", filepath.Join(dir, "nope"), dwarfData}, 1, "plugin"},
		{"plugin that does not start", []string{"replay", "--log-level", "error", "--plugin", "/bin/false", "--out", out, dwarfData}, 1, `plugin "false" did not start`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d stderr %q, want exit %d and %q", code, stderr, tt.code, tt.want)
			}
		})
	}
}
