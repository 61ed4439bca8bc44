package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/unwindd/unwindd/configs"
)

// lines joins source lines, so that a test's line numbers can be read off.
func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

// minimal is the smallest valid deployment body: one plugin.
const minimal = "plugins:\n  - name: p\n    path: p\n"

// TestParseErrors checks each kind of problem Parse reports: its exact
// position and field path, and the gist of its message.
func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		src  string
		want []string // "line:col: path: message substring"
	}{
		{"unknown top-level key", lines(
			"output: out",
			"outputs: x",
			"plugins: [{name: p, path: p}]",
		), []string{"2:1: outputs: unknown key; known keys here: output, log, source, unwind, plugins"}},
		{"unknown nested key", lines(
			"source:",
			"  perf:",
			"    freqency: 99",
			"plugins: [{name: p, path: p}]",
		), []string{"3:5: source.perf.freqency: unknown key; known keys here: frequency, stack_size, events"}},
		{"unknown plugin key", lines(
			"plugins:",
			"  - name: p",
			"    path: p",
			"    outbx: 1",
		), []string{"4:5: plugins[0].outbx: unknown key"}},
		{"unknown log key in flow style", lines(
			"log: {level: info, colour: true}",
			"plugins: [{name: p, path: p}]",
		), []string{"1:20: log.colour: unknown key; known keys here: level, format"}},
		{"wrong type: string for integer", lines(
			"plugins:",
			"  - name: p",
			"    path: p",
			"  - name: q",
			"    path: q",
			"    outbox: big",
		), []string{`6:13: plugins[1].outbox: want a positive integer (at most 1048576), got "big"`}},
		{"wrong type: quoted integer", lines(
			"source:",
			"  perf:",
			`    frequency: "99"`,
			minimal,
		), []string{`3:16: source.perf.frequency: want a frequency in Hz from 1 to 100000, got "99"`}},
		{"wrong type: list for string", lines(
			"output: [a, b]",
			minimal,
		), []string{"1:1: output: want a directory, got a list"}},
		{"wrong type: number for string", lines(
			"output: 12",
			minimal,
		), []string{"1:9: output: want a directory, got 12 (quote it to make it a string)"}},
		{"wrong type: scalar for mapping", lines(
			"log: debug",
			minimal,
		), []string{`1:6: log: want a mapping (level, format), got "debug"`}},
		{"wrong type: mapping for list", lines(
			"plugins:",
			"  name: p",
			"  path: p",
		), []string{"1:1: plugins: want a list of plugins, got a mapping"}},
		{"wrong type: block list for scalar", lines(
			"source:",
			"  kind:",
			"    - perf",
			minimal,
		), []string{"2:3: source.kind: want one of perf, ptrace, got a list"}},
		{"wrong type: plugin not a mapping", lines(
			"plugins:",
			"  - perf",
		), []string{`2:5: plugins[0]: want a plugin (a mapping with at least name and path), got "perf"`}},
		{"wrong type: env value", lines(
			"plugins:",
			"  - name: p",
			"    path: p",
			"    env:",
			"      GOMAXPROCS: 2",
		), []string{"5:19: plugins[0].env.GOMAXPROCS: want the variable's value (a string), got 2 (quote it to make it a string)"}},
		{"wrong type: env list", lines(
			"plugins:",
			"  - name: p",
			"    path: p",
			"    env: [A=1]",
		), []string{"4:5: plugins[0].env: want a mapping of environment variables (KEY: value), got a list"}},
		{"wrong type: args element", lines(
			"plugins:",
			"  - name: p",
			"    path: p",
			"    args: [-v, 3]",
		), []string{"4:16: plugins[0].args[1]: want an argument (a string), got 3 (quote it to make it a string)"}},
		{"wrong type: duration without unit", lines(
			"plugins:",
			"  - name: p",
			"    path: p",
			"    decide_deadline: 20",
		), []string{"4:22: plugins[0].decide_deadline: want a duration such as 20ms (more than 0, at most 1s), got 20 (a duration needs a unit"}},
		{"bad enum", lines(
			"source:",
			"  kind: perff",
			minimal,
		), []string{`2:9: source.kind: want one of perf, ptrace, got "perff"`}},
		{"bad log level and format", lines(
			"log:",
			"  level: verbose",
			"  format: text",
			minimal,
		), []string{
			`2:10: log.level: want one of debug, info, warn, error, got "verbose"`,
			`3:11: log.format: want one of console, json, got "text"`,
		}},
		{"out of range", lines(
			"source:",
			"  perf:",
			"    frequency: 100001",
			"    stack_size: 65536",
			"  ptrace:",
			"    frequency: 0",
			minimal,
		), []string{
			"3:16: source.perf.frequency: want a frequency in Hz from 1 to 100000, got 100001",
			"4:17: source.perf.stack_size: want a size in bytes from 8 to 65528, a multiple of 8, got 65536",
			"6:16: source.ptrace.frequency: want a frequency in Hz from 1 to 10000, got 0",
		}},
		{"stack size not a multiple of 8", lines(
			"source: {perf: {stack_size: 4100}}",
			minimal,
		), []string{"1:29: source.perf.stack_size: want a size in bytes from 8 to 65528, a multiple of 8, got 4100"}},
		{"huge integer", lines(
			"plugins:",
			"  - name: p",
			"    path: p",
			"    outbox: 18446744073709551615",
		), []string{"4:13: plugins[0].outbox: want a positive integer (at most 1048576), got 18446744073709551615"}},
		{"bad tracepoints", lines(
			"source:",
			"  perf:",
			"    events:",
			"      - sched:sched_switch",
			"      - sched",
			"      - sched:sched_switch",
			"      - 'a b:c'",
			minimal,
		), []string{
			`5:9: source.perf.events[1]: want a tracepoint "group:name" (letters, digits, _), got "sched"`,
			`6:9: source.perf.events[2]: tracepoint "sched:sched_switch" listed twice`,
			`7:9: source.perf.events[3]: want a tracepoint "group:name" (letters, digits, _), got "a b:c"`,
		}},
		{"bad unwind methods", lines(
			"unwind: [fp, dwarf, fp]",
			minimal,
		), []string{
			`1:14: unwind[1]: want one of sframe, cfi, fp, got "dwarf"`,
			"1:21: unwind[2]: method fp listed twice",
		}},
		{"no unwind method", lines(
			"unwind: []",
			minimal,
		), []string{"1:1: unwind: want at least one unwind method (sframe, cfi, fp)"}},
		{"bad plugin values", lines(
			"plugins:",
			"  - name: My_Plugin",
			"    path: ''",
			`    sha256: "abc"`,
			"    outbox: 0",
			"    decide_deadline: 2s",
			"    user: ''",
		), []string{
			`2:11: plugins[0].name: want a plugin name of 1 to 64 characters a-z, 0-9, _ and -, got "My_Plugin"`,
			"3:11: plugins[0].path: want a built-in plugin's name or a path to a plugin binary, got an empty string",
			`4:13: plugins[0].sha256: want a SHA-256 as 64 hex digits, got "abc"`,
			"5:13: plugins[0].outbox: want a positive integer (at most 1048576), got 0",
			`6:22: plugins[0].decide_deadline: want a duration such as 20ms (more than 0, at most 1s), got "2s"`,
			"7:11: plugins[0].user: want a user name or numeric id, got an empty string",
		}},
		{"negative and malformed durations", lines(
			"plugins:",
			"  - {name: a, path: a, decide_deadline: -1ms}",
			"  - {name: b, path: b, decide_deadline: soon}",
		), []string{
			`2:41: plugins[0].decide_deadline: want a duration such as 20ms (more than 0, at most 1s), got "-1ms"`,
			`3:41: plugins[1].decide_deadline: want a duration such as 20ms (more than 0, at most 1s), got "soon"`,
		}},
		{"missing plugins", lines(
			"output: out",
		), []string{"1:1: plugins: missing (required)"}},
		{"empty file", "", []string{"1:1: plugins: missing (required)"}},
		{"comments only", "# nothing here\n", []string{"1:1: plugins: missing (required)"}},
		{"no plugins", lines(
			"output: out",
			"plugins: []",
		), []string{"2:1: plugins: want at least one plugin"}},
		{"missing name and path", lines(
			"plugins:",
			"  - name: p",
			"    path: p",
			"  - sha256: "+strings.Repeat("a", 64),
		), []string{
			"4:3: plugins[1].name: missing (required)",
			"4:3: plugins[1].path: missing (required)",
		}},
		{"empty plugin entry", lines(
			"plugins:",
			"  -",
		), []string{"2:3: plugins[0]: want a plugin (a mapping with at least name and path), got nothing"}},
		{"duplicate plugin name", lines(
			"plugins:",
			"  - name: perf",
			"    path: perf",
			"  - name: ftrace",
			"    path: ftrace",
			"  - name: perf",
			"    path: ./other-perf",
		), []string{`6:11: plugins[2].name: plugin name "perf" already used by plugins[0] (line 2)`}},
		{"duplicate key", lines(
			"output: a",
			"output: b",
			minimal,
		), []string{`2:1: YAML: mapping key "output" already defined at [1:1]`}},
		{"syntax error", lines(
			"plugins: [{name: p, path: p}",
		), []string{"1:10: YAML: sequence end token ']' not found"}},
		{"tab indentation", lines(
			"plugins:",
			"\t- name: p",
		), []string{"2:1: YAML: found character '\t' that cannot start any token"}},
		{"CRLF line ends", "output: out\r\n# comment\r\n\r\nplugins: 3\r\n", []string{
			"4:10: plugins: want a list of plugins, got 3",
		}},
		{"CR line ends", "output: out\r# comment\r\rplugins: 3\r", []string{
			"4:10: plugins: want a list of plugins, got 3",
		}},
		{"second document", lines(
			minimal,
			"---",
			minimal,
		), []string{"5:1: a second YAML document (document 2): a file holds one deployment"}},
		{"not a mapping", lines(
			"- name: p",
		), []string{"1:1: want a mapping of deployment keys (output, log, source, unwind, plugins), got a list"}},
		{"unknown alias", lines(
			"output: *dir",
			minimal,
		), []string{"1:9: output: alias *dir: no anchor &dir before it"}},
		{"merge key outside config", lines(
			"plugins:",
			"  - <<: {name: p}",
			"    path: p",
		), []string{
			"2:3: plugins[0].name: missing (required)",
			"2:5: plugins[0].<<: merge keys are only allowed in a plugin's config block",
		}},
		{"tag outside config", lines(
			"output: !!str 12",
			minimal,
		), []string{"1:9: output: want a directory, got a value tagged !!str (tags are only allowed in a plugin's config block)"}},
		{"bad config block alias", lines(
			"plugins:",
			"  - name: p",
			"    path: p",
			"    config:",
			"      hz: *rate",
		), []string{"5:11: plugins[0].config.hz: alias *rate: no anchor &rate before it"}},
		{"bad config block tag", lines(
			"plugins:",
			"  - name: p",
			"    path: p",
			"    config:",
			"      a: !!int x",
			"      b: !custom 1",
		), []string{
			`5:10: plugins[0].config.a: !!int does not fit "x"`,
			"6:10: plugins[0].config.b: unsupported tag !custom",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("deploy.yaml", []byte(c.src))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse: %v, want an *Error", err)
			}
			if len(e.Problems) != len(c.want) {
				t.Errorf("got %d problems, want %d:\n%s", len(e.Problems), len(c.want), e)
			}
			for i, w := range c.want {
				if i >= len(e.Problems) {
					break
				}
				if got := e.Problems[i].String(); !strings.HasPrefix(got, "deploy.yaml:"+w) {
					t.Errorf("problem %d:\n got  %s\n want deploy.yaml:%s…", i, got, w)
				}
			}
			checkPositions(t, e, []byte(c.src))
		})
	}
}

// checkPositions checks that every problem is in the file.
func checkPositions(t *testing.T, e *Error, src []byte) {
	t.Helper()
	n := len(lineStarts(src))
	for _, p := range e.Problems {
		if p.Line < 1 || p.Column < 1 || p.Line > n {
			t.Errorf("problem %q at %d:%d: outside the file (%d lines)", p.Msg, p.Line, p.Column, n)
		}
	}
}

// TestTooManyPlugins: the 63rd plugin is the problem, at its entry.
func TestTooManyPlugins(t *testing.T) {
	var b strings.Builder
	b.WriteString("plugins:\n")
	for i := range MaxPlugins + 2 {
		fmt.Fprintf(&b, "  - name: p%d\n    path: p\n", i)
	}
	_, err := Parse("deploy.yaml", []byte(b.String()))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Parse: %v, want an *Error", err)
	}
	want := "deploy.yaml:126:3: plugins[62]: more than 62 plugins (the engine has 62 tracer bits)"
	if len(e.Problems) != 1 || e.Problems[0].String() != want {
		t.Errorf("got\n%s\nwant\n%s", e, want)
	}
	// 62 are fine.
	b.Reset()
	b.WriteString("plugins:\n")
	for i := range MaxPlugins {
		fmt.Fprintf(&b, "  - {name: p%d, path: p}\n", i)
	}
	c, err := Parse("deploy.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Plugins) != MaxPlugins {
		t.Errorf("%d plugins, want %d", len(c.Plugins), MaxPlugins)
	}
}

// TestProblemCap: all problems are counted, MaxProblems are listed, in the
// order of the file.
func TestProblemCap(t *testing.T) {
	var b strings.Builder
	b.WriteString("plugins:\n")
	for i := range 30 {
		fmt.Fprintf(&b, "  - {name: p%d, path: p, outbox: x}\n", i)
	}
	b.WriteString("bogus: 1\n")
	_, err := Parse("deploy.yaml", []byte(b.String()))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Parse: %v, want an *Error", err)
	}
	if len(e.Problems) != MaxProblems || e.Omitted != 31-MaxProblems {
		t.Errorf("%d problems listed, %d omitted; want %d and %d", len(e.Problems), e.Omitted, MaxProblems, 31-MaxProblems)
	}
	for i, p := range e.Problems {
		if p.Line != i+2 {
			t.Errorf("problem %d at line %d, want %d", i, p.Line, i+2)
		}
	}
	if !strings.HasSuffix(e.Error(), "\n(and 11 more problems)") {
		t.Errorf("Error() does not end with the count of omitted problems:\n%s", e)
	}
}

func TestAnnotated(t *testing.T) {
	src := lines(
		"plugins:",
		"  - name: p",
		"\tpath: p", // a tab: a syntax error at 3:1
	)
	_, err := Parse("deploy.yaml", []byte(src))
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Parse: %v, want an *Error", err)
	}
	src = lines(
		"plugins:",
		"  - name: p",
		"    path: p",
		"    outbox: big   ",
		"    args: [a, é, 3]",
	)
	_, err = Parse("deploy.yaml", []byte(src))
	if !errors.As(err, &e) {
		t.Fatalf("Parse: %v, want an *Error", err)
	}
	want := lines(
		`deploy.yaml:4:13: plugins[0].outbox: want a positive integer (at most 1048576), got "big"`,
		"    4 |     outbox: big",
		"      |             ^",
		"deploy.yaml:5:18: plugins[0].args[2]: want an argument (a string), got 3 (quote it to make it a string)",
		"    5 |     args: [a, é, 3]",
		"      |                  ^",
	)
	if got := e.Annotated() + "\n"; got != want {
		t.Errorf("Annotated:\n%s\nwant\n%s", got, want)
	}
}

// TestDefaults: keys left out take the documented defaults.
func TestDefaults(t *testing.T) {
	c, err := Parse("dir/deploy.yaml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		File:   "dir/deploy.yaml",
		Output: "unwindd-out",
		Log:    Log{Level: "info", Format: "console"},
		Source: Source{
			Kind:   SourcePerf,
			Perf:   PerfSource{Frequency: 999, StackSize: 8192, Events: []string{}},
			Ptrace: PtraceSource{Frequency: 99},
		},
		Unwind: []Method{MethodSFrame, MethodCFI, MethodFP},
		Plugins: []Plugin{{
			Name: "p", Path: "p", Outbox: 8192, DecideDeadline: 20 * time.Millisecond,
		}},
	}
	if !equalConfig(c, &want) {
		t.Errorf("got  %+v\nwant %+v", *c, want)
	}
	// Null sections are empty ones: defaults again.
	c2, err := Parse("dir/deploy.yaml", []byte("log:\nsource:\n  perf:\n"+minimal))
	if err != nil {
		t.Fatal(err)
	}
	if !equalConfig(c2, &want) {
		t.Errorf("with null sections: got %+v\nwant %+v", *c2, want)
	}
}

// TestAllKeys sets every key to a value other than its default.
func TestAllKeys(t *testing.T) {
	src := lines(
		"output: /var/out",
		"log: {level: debug, format: json}",
		"source:",
		"  kind: ptrace",
		"  perf: {frequency: 4000, stack_size: 16384, events: ['sched:sched_switch', 'irq:softirq_entry']}",
		"  ptrace: {frequency: 10}",
		"unwind: [fp, cfi]",
		"plugins:",
		"  - name: third_party-1",
		"    path: bin/tp",
		"    sha256: "+strings.Repeat("AB", 32),
		"    user: 65534",
		"    group: nogroup",
		"    args: ['-v', '--mode=fast', '']",
		"    env: {B: '2', A: 'x=y', EMPTY: ''}",
		"    outbox: 1048576",
		"    decide_deadline: 1.5ms",
		"    config: {hz: 99}",
	)
	c, err := Parse("deploy.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		File:   "deploy.yaml",
		Output: "/var/out",
		Log:    Log{Level: "debug", Format: "json"},
		Source: Source{
			Kind:   SourcePtrace,
			Perf:   PerfSource{Frequency: 4000, StackSize: 16384, Events: []string{"sched:sched_switch", "irq:softirq_entry"}},
			Ptrace: PtraceSource{Frequency: 10},
		},
		Unwind: []Method{MethodFP, MethodCFI},
		Plugins: []Plugin{{
			Name: "third_party-1", Path: "bin/tp", SHA256: strings.Repeat("ab", 32),
			User: "65534", Group: "nogroup",
			Args: []string{"-v", "--mode=fast", ""}, Env: []string{"B=2", "A=x=y", "EMPTY="},
			Outbox: 1 << 20, DecideDeadline: 1500 * time.Microsecond,
			Config: []byte("hz: 99\n"),
		}},
	}
	if !equalConfig(c, &want) {
		t.Errorf("got  %+v\nwant %+v", *c, want)
	}
}

// equalConfig compares the exported fields.
func equalConfig(a, b *Config) bool {
	if len(a.Plugins) != len(b.Plugins) {
		return false
	}
	for i := range a.Plugins {
		pa, pb := a.Plugins[i], b.Plugins[i]
		pa.src, pb.src = pluginSrc{}, pluginSrc{}
		if !reflect.DeepEqual(pa, pb) {
			return false
		}
	}
	ca, cb := *a, *b
	ca.Plugins, cb.Plugins, ca.dir, cb.dir, ca.doc, cb.doc = nil, nil, "", "", nil, nil
	return reflect.DeepEqual(ca, cb)
}

func TestDefault(t *testing.T) {
	a, b := Default(), Default()
	if a == b || &a.Plugins[0] == &b.Plugins[0] {
		t.Error("Default returns shared values")
	}
	c, err := Parse(configs.DefaultName, configs.Default())
	if err != nil {
		t.Fatal(err)
	}
	if !equalConfig(a, c) {
		t.Errorf("Default() = %+v, parsing configs.Default() = %+v", *a, *c)
	}
	// The default: the perf source at 999 Hz, the perf and ftrace
	// plugins (the ftrace plugin subscribes to the syscalls).
	if a.Source.Kind != SourcePerf || a.Source.Perf.Frequency != 999 {
		t.Errorf("default source %+v, want perf at 999 Hz", a.Source)
	}
	var names []string
	for _, p := range a.Plugins {
		names = append(names, p.Name)
		if !p.Builtin() {
			t.Errorf("default plugin %s is not built in", p.Name)
		}
	}
	if !reflect.DeepEqual(names, []string{"perf", "ftrace"}) {
		t.Errorf("default plugins %v, want [perf ftrace]", names)
	}
	if got := string(a.Plugins[0].Config); got != "hz: 999\n" {
		t.Errorf("perf plugin's config %q, want the source's rate, hz: 999", got)
	}
}

// fakeBuiltins makes a directory of executable stand-ins for the named
// built-in plugins.
func fakeBuiltins(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, "unwindd-plugin-"+n), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestSpecs(t *testing.T) {
	dir := t.TempDir()
	builtins := fakeBuiltins(t, "perf", "ftrace")
	if err := os.MkdirAll(filepath.Join(dir, "sub", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"sub/bin/rel", "abs"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	abs := filepath.Join(dir, "abs")
	src := lines(
		"output: /data/out",
		"plugins:",
		"  - name: perf",
		"    path: perf",
		"    config: {hz: 99}",
		"  - name: ftrace",
		"    path: ftrace",
		"  - name: own-out",
		"    path: perf",
		"    config:",
		"      out: /elsewhere",
		"  - name: rel",
		"    path: bin/rel",
		"    args: [-x]",
		"    env: {K: v}",
		"    outbox: 16",
		"    decide_deadline: 5ms",
		"    config: {hz: 7}",
		"  - name: abs",
		"    path: "+abs,
		"  - name: dotted",
		"    path: ./bin/../bin/rel",
		"  - name: list-block",
		"    path: perf",
		"    config: [a, b]",
	)
	path := filepath.Join(dir, "sub", "deploy.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	specs, err := c.Specs(builtins)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		path, config string
	}
	for i, w := range []want{
		{filepath.Join(builtins, "unwindd-plugin-perf"), "hz: 99\nout: /data/out\n"},
		{filepath.Join(builtins, "unwindd-plugin-ftrace"), "out: /data/out\n"},
		{filepath.Join(builtins, "unwindd-plugin-perf"), "out: /elsewhere\n"},
		{filepath.Join(dir, "sub", "bin", "rel"), "hz: 7\n"}, // not built in: no out
		{abs, ""},
		{filepath.Join(dir, "sub", "bin", "rel"), ""},
		{filepath.Join(builtins, "unwindd-plugin-perf"), "- a\n- b\n"}, // not a mapping: as is
	} {
		s := specs[i]
		if s.Path != w.path || string(s.Config) != w.config {
			t.Errorf("specs[%d] (%s): path %s, config %q; want %s, %q", i, s.Name, s.Path, s.Config, w.path, w.config)
		}
	}
	rel := specs[3]
	if rel.Name != "rel" || !reflect.DeepEqual(rel.Args, []string{"-x"}) || !reflect.DeepEqual(rel.Env, []string{"K=v"}) ||
		rel.OutboxSize != 16 || rel.DecideDeadline != 5*time.Millisecond {
		t.Errorf("specs[3] = %+v", rel)
	}
	if specs[0].OutboxSize != 8192 || specs[0].DecideDeadline != 20*time.Millisecond {
		t.Errorf("specs[0] without outbox and decide_deadline: %d, %v; want 8192, 20ms", specs[0].OutboxSize, specs[0].DecideDeadline)
	}
	// Output changed after parsing (--out) is what built-ins get.
	c.Output = "/flag/out"
	specs, err = c.Specs(builtins)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(specs[1].Config); got != "out: /flag/out\n" {
		t.Errorf("after changing Output, ftrace config %q", got)
	}
}

// TestSpecsErrors: what Specs checks on the machine, each at its line.
func TestSpecsErrors(t *testing.T) {
	dir := t.TempDir()
	builtins := fakeBuiltins(t, "perf")
	if err := os.WriteFile(filepath.Join(dir, "noexec"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := lines(
		"plugins:",
		"  - name: perf",
		"    path: perf",
		"  - name: ftrace",
		"    path: ftrace",
		"  - name: missing",
		"    path: ./nope",
		"  - name: noexec",
		"    path: ./noexec",
		"  - name: dir",
		"    path: adir/",
		"  - name: user",
		"    path: perf",
		"    user: no-such-user-unwindd",
		"    group: no-such-group-unwindd",
	)
	path := filepath.Join(dir, "deploy.yaml")
	c, err := Parse(path, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Specs(builtins)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Specs: %v, want an *Error", err)
	}
	for i, w := range []string{
		`5:11: plugins[1].path: no built-in plugin "ftrace": ` + filepath.Join(builtins, "unwindd-plugin-ftrace") + " does not exist",
		"7:11: plugins[2].path: no plugin binary: " + filepath.Join(dir, "nope") + " does not exist",
		"9:11: plugins[3].path: " + filepath.Join(dir, "noexec") + " is not executable (mode -rw-r--r--)",
		"11:11: plugins[4].path: " + filepath.Join(dir, "adir") + " is a directory, not a plugin binary",
		`14:11: plugins[5].user: no user "no-such-user-unwindd" on this machine`,
		`15:12: plugins[5].group: no group "no-such-group-unwindd" on this machine`,
	} {
		if i >= len(e.Problems) {
			t.Errorf("missing problem %s", w)
			continue
		}
		if got := e.Problems[i].String(); !strings.HasPrefix(got, path+":"+w) {
			t.Errorf("problem %d:\n got  %s\n want %s:%s…", i, got, path, w)
		}
	}
	if len(e.Problems) != 6 {
		t.Errorf("%d problems, want 6:\n%s", len(e.Problems), e)
	}
	if !strings.Contains(e.Annotated(), "    7 |     path: ./nope\n      |           ^") {
		t.Errorf("Annotated has no excerpt of line 7:\n%s", e.Annotated())
	}
}

func TestLoad(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "none.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want ErrNotExist", err)
	}
	big := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(big, []byte("# "+strings.Repeat("x", MaxSize)+"\n"+minimal), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(big)
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(e.Error(), "big.yaml:1:1: the file is 1048577 bytes, more than the 1048576") {
		t.Errorf("Load of a big file: %v", err)
	}
}
