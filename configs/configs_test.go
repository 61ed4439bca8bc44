package configs_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/unwindd/unwindd/configs"
	"github.com/unwindd/unwindd/host/config"
)

// deployments returns the YAML files of this directory.
func deployments(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.yaml here: %v", err)
	}
	return files
}

// TestDeployments loads every deployment here and checks it as
// `unwindd config check` would, against stand-ins for what it names: a
// directory of executable built-in plugins, and, for a plugin given by a
// relative path, an executable at that path beside a copy of the file. A
// missing binary is tested in host/config; the plugins' own blocks, by
// the real plugins, in TestDeploymentsCheck.
func TestDeployments(t *testing.T) {
	for _, name := range deployments(t) {
		t.Run(name, func(t *testing.T) {
			c, err := config.Load(name)
			if err != nil {
				var e *config.Error
				if errors.As(err, &e) {
					t.Fatalf("\n%s", e.Annotated())
				}
				t.Fatal(err)
			}
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			dir, builtins := t.TempDir(), t.TempDir()
			copyPath := filepath.Join(dir, name)
			if err := os.WriteFile(copyPath, src, 0o644); err != nil {
				t.Fatal(err)
			}
			c, err = config.Load(copyPath)
			if err != nil {
				t.Fatal(err)
			}
			for i := range c.Plugins {
				p := &c.Plugins[i]
				if !p.Builtin() && filepath.IsAbs(p.Path) {
					t.Errorf("plugin %s: an absolute path (%s) cannot be checked here; give examples a path relative to the file", p.Name, p.Path)
					continue
				}
				bin := c.BinaryPath(p, builtins)
				if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			specs, err := c.Specs(builtins)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range specs {
				if s.Name != c.Plugins[i].Name || s.Path == "" {
					t.Errorf("spec %d: %+v", i, s)
				}
				if c.Plugins[i].Builtin() && !bytes.Contains(s.Config, []byte("out: ")) {
					t.Errorf("built-in plugin %s gets no out: %q", s.Name, s.Config)
				}
			}
		})
	}
}

// TestDeploymentsCheck runs `unwindd config check` on every deployment
// here whose plugins are all built in, with unwindd and the built-in
// plugins (perf, ftrace, bpf) built beside it: each plugin is started and
// checks its own config block (the bpf plugin compiles its programs). The
// output directory is moved to a temporary one, should a plugin write
// there.
// A deployment with a plugin that is not built in is checked by
// cmd/unwindd's TestThirdPartyPlugin.
func TestDeploymentsCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("builds unwindd and the built-in plugins")
	}
	bin := t.TempDir()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	for pkg, name := range map[string]string{
		"../cmd/unwindd": "unwindd", "../plugins/perf": "unwindd-plugin-perf",
		"../plugins/ftrace": "unwindd-plugin-ftrace", "../plugins/bpf": "unwindd-plugin-bpf",
	} {
		if out, err := exec.Command(gobin, "build", "-o", filepath.Join(bin, name), pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	output := regexp.MustCompile(`(?m)^output: .*$`)
	for _, name := range deployments(t) {
		t.Run(name, func(t *testing.T) {
			c, err := config.Load(name)
			if err != nil {
				t.Fatal(err)
			}
			for i := range c.Plugins {
				if !c.Plugins[i].Builtin() {
					t.Skipf("plugin %s is not built in", c.Plugins[i].Name)
				}
			}
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if !output.Match(src) {
				t.Fatal("no output: line to move")
			}
			src = output.ReplaceAll(src, []byte("output: "+filepath.Join(dir, "out")))
			copyPath := filepath.Join(dir, name)
			if err := os.WriteFile(copyPath, src, 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(filepath.Join(bin, "unwindd"), "config", "check", copyPath)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), copyPath+": ok (") {
				t.Errorf("unwindd config check %s: %v\n%s", name, err, out)
			}
		})
	}
}

// TestDefault: the embedded default is default.yaml, and each call
// returns a copy.
func TestDefault(t *testing.T) {
	file, err := os.ReadFile("default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b := configs.Default()
	if !bytes.Equal(b, file) {
		t.Fatal("configs.Default() differs from default.yaml")
	}
	b[0] ^= 0xff
	if !bytes.Equal(configs.Default(), file) {
		t.Fatal("modifying the result of configs.Default() changed the default")
	}
	if c := config.Default(); c.File != configs.DefaultName {
		t.Errorf("config.Default().File = %q, want %q", c.File, configs.DefaultName)
	}
}

// readme returns README.md.
func readme(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReadmeKeys: README.md documents every key of the schema. The keys
// are taken from the schema itself: from the "known keys" an unknown key
// at each level is answered with.
func TestReadmeKeys(t *testing.T) {
	doc := readme(t)
	known := regexp.MustCompile(`known keys here: (.*)$`)
	for _, c := range []struct{ prefix, src string }{
		{"", "zz: 1\n"},
		{"log.", "log: {zz: 1}\n"},
		{"source.", "source: {zz: 1}\n"},
		{"source.perf.", "source: {perf: {zz: 1}}\n"},
		{"source.ptrace.", "source: {ptrace: {zz: 1}}\n"},
		{"plugins[i].", "plugins: [{name: p, path: p, zz: 1}]\n"},
	} {
		_, err := config.Parse("deploy.yaml", []byte(c.src))
		var e *config.Error
		if !errors.As(err, &e) {
			t.Fatalf("%q: %v", c.src, err)
		}
		var keys []string
		for _, p := range e.Problems {
			if m := known.FindStringSubmatch(p.Msg); m != nil {
				keys = strings.Split(m[1], ", ")
			}
		}
		if len(keys) == 0 {
			t.Fatalf("%q: no list of known keys in\n%s", c.src, e)
		}
		for _, k := range keys {
			// A key is documented by a table row "| `key` |", in its
			// section (or as "section.key" in the source table).
			short := strings.TrimPrefix(c.prefix, "source.")
			if !strings.Contains(doc, "| `"+k+"` |") && !strings.Contains(doc, "| `"+short+k+"` |") {
				t.Errorf("README.md documents no key %s%s", c.prefix, k)
			}
		}
	}
}

// TestReadmeExamples: every yaml block in README.md is a deployment that
// parses, unless a text block of errors follows it, which must be exactly
// what the deployment gives (named deploy.yaml).
func TestReadmeExamples(t *testing.T) {
	doc := readme(t)
	block := regexp.MustCompile("(?s)```(yaml|text)\n(.*?)```")
	ms := block.FindAllStringSubmatch(doc, -1)
	n := 0
	for i, m := range ms {
		if m[1] != "yaml" {
			continue
		}
		n++
		_, err := config.Parse("deploy.yaml", []byte(m[2]))
		if i+1 < len(ms) && ms[i+1][1] == "text" && strings.HasPrefix(ms[i+1][2], "deploy.yaml:") {
			var e *config.Error
			if !errors.As(err, &e) {
				t.Errorf("example %d: %v, want the errors the README shows", n, err)
				continue
			}
			if got, want := e.Annotated()+"\n", ms[i+1][2]; got != want {
				t.Errorf("example %d gives\n%s\nthe README shows\n%s", n, got, want)
			}
			continue
		}
		if err != nil {
			t.Errorf("example %d:\n%v", n, err)
		}
	}
	if n < 2 {
		t.Errorf("%d yaml examples in README.md, want at least 2", n)
	}
}
