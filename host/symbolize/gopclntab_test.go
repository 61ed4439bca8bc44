package symbolize

import (
	"bufio"
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/unwindd/unwindd/host/procfs"
	"github.com/unwindd/unwindd/internal/testutil"
)

// goProgram prints the addresses of five of its functions — a plain one, its
// caller, a method, a closure and main — then sleeps until killed.
const goProgram = `package main

import (
	"fmt"
	"reflect"
	"time"
)

var sink int

type T struct{ n int }

//go:noinline
func (t *T) M() { t.n++ }

//go:noinline
func leaf(n int) int { return n*3 + 1 }

//go:noinline
func b(n int) int { return leaf(n) + 2 }

func main() {
	c := func() { sink++ }
	for _, f := range []any{leaf, b, (*T).M, c, main} {
		fmt.Printf("%#x\n", reflect.ValueOf(f).Pointer())
	}
	sink = b(sink)
	c()
	time.Sleep(time.Hour)
}
`

// goNames are the Go linker's names of the functions goProgram prints, in
// its order.
var goNames = []string{"main.leaf", "main.b", "main.(*T).M", "main.main.func1", "main.main"}

// goTool returns the go command of the toolchain running the test.
func goTool(t *testing.T) string {
	t.Helper()
	g := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(g); err != nil {
		testutil.Need(t, "go", "builds the Go test program: "+err.Error())
	}
	return g
}

// buildGo builds goProgram into dir/name with the go build flags given,
// linked by the Go linker itself (CGO_ENABLED=0).
func buildGo(t *testing.T, gocmd, dir, name string, flags ...string) string {
	t.Helper()
	exe := filepath.Join(dir, name)
	args := append(append([]string{"build", "-o", exe}, flags...), "./src")
	cmd := exec.Command(gocmd, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return exe
}

// goNm returns the text symbols of exe, name → address, from go tool nm.
func goNm(t *testing.T, gocmd, exe string) map[string]uint64 {
	t.Helper()
	out, err := exec.Command(gocmd, "tool", "nm", exe).Output()
	if err != nil {
		t.Fatalf("go tool nm %s: %v", exe, err)
	}
	syms := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[1] != "T" {
			continue
		}
		a, err := strconv.ParseUint(f[0], 16, 64)
		if err != nil {
			t.Fatalf("go tool nm: %q: %v", sc.Text(), err)
		}
		syms[strings.Join(f[2:], " ")] = a
	}
	return syms
}

// TestGoPclntab builds a Go program with and without its ELF symbol table
// (-ldflags='-s -w'): both must name its functions, at the addresses go tool
// nm gives for the unstripped build, the stripped one through .gopclntab.
// Every text symbol of the unstripped build must resolve to its own name in
// the stripped one too (the linker lays out both alike), up to the spelling
// of [goName].
func TestGoPclntab(t *testing.T) {
	gocmd := goTool(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "src"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"go.mod":      "module gotarget\n\ngo 1.21\n",
		"src/main.go": goProgram,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	plain := buildGo(t, gocmd, dir, "plain")
	stripped := buildGo(t, gocmd, dir, "stripped", "-ldflags=-s -w")
	nm := goNm(t, gocmd, plain)
	for _, name := range goNames {
		if nm[name] == 0 {
			t.Fatalf("go tool nm %s: no %s", plain, name)
		}
	}
	for _, tt := range []struct {
		name, exe string
		symtab    bool
	}{{"plain", plain, true}, {"stripped", stripped, false}} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := os.Open(tt.exe)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			ef, err := elf.NewFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if has := ef.Section(".symtab") != nil; has != tt.symtab || ef.Section(".gopclntab") == nil {
				t.Fatalf(".symtab %v, want %v; .gopclntab %v", has, tt.symtab, ef.Section(".gopclntab") != nil)
			}
			tab, err := NewTable(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range goNames {
				for _, off := range []uint64{0, 1} {
					got, ok := tab.Lookup(nm[name] + off)
					if !ok || got.Name != name || got.Offset != off || got.Addr != nm[name] {
						t.Errorf("Lookup(%s+%d at %#x) = %v (ok %v), want %s+%#x", name, off, nm[name]+off, got, ok, name, off)
					}
				}
			}
			same := 0
			for name, addr := range nm {
				if got, ok := tab.Lookup(addr); ok && goName(got.Name) == goName(name) && got.Offset == 0 {
					same++
				} else if testing.Verbose() {
					t.Logf("Lookup(%s at %#x) = %v (ok %v)", name, addr, got, ok)
				}
			}
			if same != len(nm) {
				t.Errorf("%d of %d text symbols of go tool nm resolve to their name, want all", same, len(nm))
			}
			t.Logf("%s: %d of %d text symbols of go tool nm resolve to their name; %d functions", tt.name, same, len(nm), tab.Len())
		})
	}

	// The stripped builds, running, a fixed-address one and a PIE: the
	// Symbolizer names the functions at the addresses the program prints,
	// through its real mappings.
	pie := buildGo(t, gocmd, dir, "stripped-pie", "-buildmode=pie", "-ldflags=-s -w")
	s := New(Options{NoDebugFiles: true}, nil)
	for _, exe := range []string{stripped, pie} {
		addrs, pid := runGoProgram(t, exe)
		maps, err := procfs.ReadMaps(pid)
		if err != nil {
			t.Fatal(err)
		}
		for i, name := range goNames {
			m, ok := maps.Find(addrs[i])
			if !ok {
				t.Errorf("%s: %s at %#x: not mapped", exe, name, addrs[i])
				continue
			}
			got, ok, err := s.Lookup(m, addrs[i]+2)
			if err != nil || !ok || got.Name != name || got.Offset != 2 {
				t.Errorf("%s: Symbolizer.Lookup(%s+2 at %#x) = %v, %v, %v; want %s+0x2", filepath.Base(exe), name, addrs[i]+2, got, ok, err, name)
			}
		}
	}

	// Linked by gcc, stripped: the pclntab cannot be placed (runtime.text
	// is not at the start of .text), so its functions get no names, or
	// .dynsym's, but never another function's.
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Logf("no gcc, no externally linked build: %v", err)
		return
	}
	ext := filepath.Join(dir, "stripped-external")
	cmd := exec.Command(gocmd, "build", "-o", ext, "-ldflags=-s -w -linkmode=external", "./src")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1", "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -linkmode=external: %v\n%s", err, out)
	}
	addrs, pid := runGoProgram(t, ext)
	maps, err := procfs.ReadMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range goNames {
		m, ok := maps.Find(addrs[i])
		if !ok {
			t.Errorf("external: %s at %#x: not mapped", name, addrs[i])
			continue
		}
		if got, ok, err := s.Lookup(m, addrs[i]+2); err != nil || ok && got.Name != name {
			t.Errorf("external: Symbolizer.Lookup(%s+2 at %#x) = %v, %v, %v; want %s+0x2 or no symbol", name, addrs[i]+2, got, ok, err, name)
		}
	}
}

// goName is the name of a Go function as the runtime spells it: the linker
// marks assembly functions (ABI0) with ".abi0" in .symtab only, and writes
// "·" as "." there.
func goName(s string) string {
	return strings.ReplaceAll(strings.TrimSuffix(s, ".abi0"), "·", ".")
}

// runGoProgram starts goProgram's executable, reads the addresses it prints,
// and returns them with its pid; the program is killed when the test ends.
func runGoProgram(t *testing.T, exe string) ([]uint64, int) {
	t.Helper()
	cmd := exec.Command(exe)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	var addrs []uint64
	sc := bufio.NewScanner(out)
	for len(addrs) < len(goNames) && sc.Scan() {
		a, err := strconv.ParseUint(strings.TrimPrefix(sc.Text(), "0x"), 16, 64)
		if err != nil {
			t.Fatalf("program printed %q: %v", sc.Text(), err)
		}
		addrs = append(addrs, a)
	}
	if len(addrs) < len(goNames) {
		t.Fatalf("program printed %d addresses, want %d: %v", len(addrs), len(goNames), sc.Err())
	}
	return addrs, cmd.Process.Pid
}
