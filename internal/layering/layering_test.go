package layering

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const module = "github.com/unwindd/unwindd"

// repoRoot is the repository's top directory, found from this file.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// deps lists, per package matched by pattern in dir, its transitive imports.
func deps(t *testing.T, dir, pattern string) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, pattern)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		if strings.Contains(stderr, "matched no packages") {
			return nil
		}
		t.Fatalf("go list %s in %s: %v\n%s", pattern, dir, err, stderr)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			m[f[0]] = f[1:]
		}
	}
	return m
}

func TestLayering(t *testing.T) {
	root := repoRoot(t)
	for _, c := range []struct {
		name, dir, pattern string
		forbidden          []string // import path prefixes
		allowed            []string // exceptions to forbidden
	}{
		{"plugins import only the sdk", root, "./plugins/...", []string{module + "/host/", module + "/arch/", module + "/internal/"}, nil},
		{"the example plugin imports only the sdk", filepath.Join(root, "examples", "stackcount"), "./...", []string{module + "/host/", module + "/arch/", module + "/internal/"}, nil},
		{"the sdk imports nothing of the host", root, "./sdk/...", []string{module + "/host/", module + "/plugins/"}, nil},
		{"the host imports no plugin", root, "./host/...", []string{module + "/plugins/", module + "/examples/"}, nil},
		{"perfdata stands alone", root, "./host/perfdata/...", []string{module + "/host/"}, []string{module + "/host/perfdata"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for pkg, ds := range deps(t, c.dir, c.pattern) {
				for _, d := range ds {
					if hasPrefix(d, c.forbidden) && !hasPrefix(d, c.allowed) {
						t.Errorf("%s imports %s", pkg, d)
					}
				}
			}
		})
	}
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
