package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// normKeys returns v with every mapping key replaced by its text, as
// goccy/go-yaml's decoder gives keys back.
func normKeys(v any) any {
	switch x := v.(type) {
	case yaml.MapSlice:
		m := make(yaml.MapSlice, len(x))
		for i, it := range x {
			k := it.Key
			if _, ok := k.(string); !ok {
				k, _ = scalar(k)
			}
			m[i] = yaml.MapItem{Key: k, Value: normKeys(it.Value)}
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = normKeys(e)
		}
		return l
	}
	return v
}

// checkEncodes checks that encode(v) decodes back to v.
func checkEncodes(t *testing.T, v any) {
	t.Helper()
	b, err := encode(v)
	if err != nil {
		t.Fatalf("encode(%#v): %v", v, err)
	}
	var back any
	if err := yaml.UnmarshalWithOptions(b, &back, yaml.UseOrderedMap()); err != nil {
		t.Fatalf("encode(%#v) = %q, which does not decode: %v", v, b, err)
	}
	if !sameValue(normKeys(v), back) {
		t.Fatalf("encode(%#v) = %q, which decodes to %#v", v, b, back)
	}
}

func TestEncodeStrings(t *testing.T) {
	for _, s := range []string{
		"", " ", "  x", "x ", "a\tb", "\x01", "\x7f", "line\n", "a\r\nb", "é", "日本", "- x", "-x", "? x", "?x",
		"[x]", "{x}", "*x", "&x", "!x", "%x", "@x", "`x", "#x", "x #y", "x# y", "x: y", "x:", "x:y", ":x",
		"yes", "NO", "On", "off", "y", "~", "null", "Null", "true", "False", ".inf", ".NaN", "1", "-1", "+1",
		"0x1", "0o7", "1e3", "1_000", "1:20", "2024-01-01", "a'b", `a"b`, `a\b`, strings.Repeat("x", 300),
		"\u2028", "\ufeff", "\u0085", "\u00a0", "\ufffd", "a  b", "/usr/bin/x", "syscall:openat",
		"hist(args.count)", "comm == \"bash\"", "|", ">", "'", "\"", ",", "x,y", "=", "<<",
	} {
		checkEncodes(t, s)
		checkEncodes(t, yaml.MapSlice{{Key: s, Value: s}})
		checkEncodes(t, []any{s, []any{s}, yaml.MapSlice{{Key: "k", Value: s}}})
	}
	for _, v := range []any{
		nil, true, int64(-5), uint64(1 << 63), 0.1, -0.0, 1e300, 5e-324, 2.0,
		yaml.MapSlice{}, []any{}, []any{[]any{}, yaml.MapSlice{}, nil},
		yaml.MapSlice{{Key: int64(1), Value: "one"}, {Key: true, Value: nil}, {Key: nil, Value: 1.5}, {Key: 2.5, Value: []any{}}},
		[]any{[]any{[]any{"deep"}}, yaml.MapSlice{{Key: "a", Value: yaml.MapSlice{{Key: "b", Value: []any{"c", "d"}}}}}},
	} {
		checkEncodes(t, v)
	}
}

// seeds are the fuzz seeds: every file in configs/, and the sources of the
// error tests.
func seeds(t testing.TB) [][]byte {
	files, err := filepath.Glob(filepath.Join("..", "..", "configs", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no configs/*.yaml: %v", err)
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	for _, s := range []string{
		minimal,
		deployWith("a: &x {b: [1, 2.5, yes, ~]}\nc:\n  <<: *x\n  d: !!str 12\n"),
		deployWith("- {k: 'v'}\n- |\n  text\n"),
		"plugins: [{name: p, path: p, config: {1: x, true: y}}]\n",
		"output: *x\nplugins:\n  - <<: {}\n  -\n",
		"log: {level: verbose}\nsource: {kind: x, perf: {frequency: 0}}\nunwind: []\nplugins: []\n",
		"a: b\n---\nc: d\n",
	} {
		out = append(out, []byte(s))
	}
	return out
}

// FuzzParse: no input panics; Parse returns a Config exactly when it
// returns no error; every error is an *Error whose problems are in the
// file; a parsed Config is whole, and its config blocks re-encode to what
// they hold.
func FuzzParse(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v: want exactly one of a Config and an error", c, err)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not an *Error", err, err)
			}
			if len(e.Problems) == 0 || len(e.Problems) > MaxProblems || e.Omitted < 0 {
				t.Fatalf("%d problems, %d omitted", len(e.Problems), e.Omitted)
			}
			n := len(lineStarts(data))
			for _, p := range e.Problems {
				if p.File != "fuzz.yaml" || p.Line < 1 || p.Column < 1 || p.Line > n || p.Msg == "" {
					t.Fatalf("bad problem %+v in a file of %d lines", p, n)
				}
			}
			_ = e.Annotated()
			return
		}
		if len(c.Plugins) == 0 || len(c.Plugins) > MaxPlugins || len(c.Unwind) == 0 || c.Output == "" {
			t.Fatalf("Config not whole: %+v", c)
		}
		names := map[string]bool{}
		for i := range c.Plugins {
			p := &c.Plugins[i]
			if names[p.Name] || p.Name == "" || p.Path == "" || p.Outbox <= 0 || p.DecideDeadline <= 0 {
				t.Fatalf("plugin %d not whole or not unique: %+v", i, p)
			}
			names[p.Name] = true
			for _, fp := range []string{"", "a", "a.b[0]", "[1].x"} {
				pp := c.PluginProblem(i, fp, "m")
				if pp.Line < 1 || pp.Column < 1 {
					t.Fatalf("PluginProblem(%d, %q) = %+v", i, fp, pp)
				}
			}
			if p.Config == nil {
				continue
			}
			// The bytes decode to the block's value.
			d := &decoder{problems: problems{file: "x"}, doc: c.doc, budget: maxBlockNodes}
			v, ok := d.value(p.src.config, pos{1, 1}, "", 0)
			if !ok {
				t.Fatalf("plugin %d: the block does not build again: %v", i, d.err(nil))
			}
			var back any
			if err := yaml.UnmarshalWithOptions(p.Config, &back, yaml.UseOrderedMap()); err != nil {
				t.Fatalf("plugin %d: config %q does not decode: %v", i, p.Config, err)
			}
			if !sameValue(normKeys(v), back) {
				t.Fatalf("plugin %d: config %q decodes to %#v, the block is %#v", i, p.Config, back, v)
			}
			// A built-in plugin's block with out added still decodes.
			p.Path = "perf"
			b, err := c.pluginConfig(p)
			if err != nil {
				t.Fatalf("plugin %d: adding out to %q: %v", i, p.Config, err)
			}
			if err := yaml.UnmarshalWithOptions(b, &back, yaml.UseOrderedMap()); err != nil {
				t.Fatalf("plugin %d: config with out %q does not decode: %v", i, b, err)
			}
		}
	})
}

// TestSeedsParse: the seeds from configs/ (the first ones) parse, so that
// the fuzzer starts from valid deployments.
func TestSeedsParse(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "configs", "*.yaml"))
	for i, s := range seeds(t)[:len(files)] {
		if _, err := Parse(fmt.Sprintf("seed%d.yaml", i), s); err != nil {
			t.Errorf("seed %d: %v", i, err)
		}
	}
}
