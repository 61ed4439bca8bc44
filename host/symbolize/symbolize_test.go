package symbolize

import (
	"github.com/unwindd/unwindd/internal/testutil"

	"bufio"
	"debug/elf"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/unwindd/unwindd/host/procfs"
)

const libc = "/usr/lib/x86_64-linux-gnu/libc.so.6"

// TestLibcDynsym resolves a libc function through libc's own .dynsym:
// Debian's libc.so.6 has no .symtab.
func TestLibcDynsym(t *testing.T) {
	f, err := elf.Open(libc)
	if err != nil {
		testutil.Need(t, "libc", err.Error())
	}
	defer f.Close()
	dyn, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	var write elf.Symbol
	for _, s := range dyn {
		if s.Name == "write" {
			write = s
		}
	}
	if write.Value == 0 || write.Size < 8 {
		t.Fatalf("no sized write in %s's .dynsym: %+v", libc, write)
	}
	r, err := os.Open(libc)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tab, err := NewTable(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []uint64{0, 3, write.Size - 1} {
		got, ok := tab.Lookup(write.Value + off)
		if !ok || got.Name != "write" || got.Offset != off || got.Addr != write.Value {
			t.Errorf("Lookup(write+%#x) = %+v, %v; want write+%#x", off, got, ok, off)
		}
	}
	if got, ok := tab.Lookup(write.Value + write.Size); ok && got.Name == "write" {
		t.Errorf("Lookup(just past write) = %v, want another symbol or none", got)
	}
	// The address the dynamic loader puts write at, through a mapping laid
	// out as ld.so lays it: file offset → the PT_LOAD holding it → vaddr.
	var text *elf.Prog
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Vaddr <= write.Value && write.Value-p.Vaddr < p.Filesz {
			text = p
		}
	}
	if text == nil {
		t.Fatalf("no PT_LOAD holds write at %#x", write.Value)
	}
	st, err := os.Stat(libc)
	if err != nil {
		t.Fatal(err)
	}
	const base = 0x7f1234560000
	m := procfs.Mapping{
		Start:  base + text.Vaddr&^0xfff,
		End:    base + (text.Vaddr+text.Memsz+0xfff)&^0xfff,
		Perms:  procfs.Perms{Read: true, Exec: true},
		Offset: text.Off &^ 0xfff,
		Inode:  inode(st),
		Path:   libc,
	}
	s := New(Options{}, nil)
	got, ok, err := s.Lookup(m, base+write.Value+0x1a)
	if err != nil || !ok || got.String() != "write+0x1a" {
		t.Errorf("Symbolizer.Lookup(write+0x1a) = %v, %v, %v; want write+0x1a", got, ok, err)
	}
}

func inode(fi fs.FileInfo) uint64 { return fi.Sys().(*syscall.Stat_t).Ino }

const program = `#include <stdio.h>
#include <unistd.h>

__attribute__((noinline)) int alpha(int x) { return x * 3 + 1; }
__attribute__((noinline)) int beta(int x) { return alpha(x) + 2; }
static __attribute__((noinline, used)) int gamma_local(int x) { return beta(x) - 1; }

int main(int argc, char **argv) {
	(void)argv;
	printf("alpha %p\nbeta %p\ngamma_local %p\nmain %p\nwrite %p\n",
	       (void *)alpha, (void *)beta, (void *)gamma_local, (void *)main, (void *)write);
	fflush(stdout);
	pause();
	return gamma_local(argc);
}
`

// TestProcess symbolizes a running C program built three ways: a PIE, a
// fixed-address executable, and a stripped PIE whose only symbols are the
// exported ones in .dynsym. The program prints its functions' addresses;
// each must resolve, through the process's real mappings, to its own name.
func TestProcess(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		testutil.Need(t, "gcc", "builds the test program: "+err.Error())
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "prog.c")
	if err := os.WriteFile(src, []byte(program), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		flags []string
		want  map[string]string // printed name → symbol expected; "" for none
	}{
		{"pie", []string{"-fPIE", "-pie"}, map[string]string{"alpha": "alpha", "beta": "beta", "gamma_local": "gamma_local", "main": "main", "write": "write"}},
		{"no-pie", []string{"-fno-pie", "-no-pie"}, map[string]string{"alpha": "alpha", "beta": "beta", "gamma_local": "gamma_local", "main": "main"}},
		{"stripped dynsym", []string{"-fPIE", "-pie", "-s", "-rdynamic"}, map[string]string{"alpha": "alpha", "beta": "beta", "gamma_local": "", "main": "main", "write": "write"}},
	}
	s := New(Options{}, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exe := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			args := append([]string{"-O0", "-o", exe, src}, tt.flags...)
			if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
				t.Fatalf("gcc %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			addrs, pid := runProgram(t, exe)
			maps, err := procfs.ReadMaps(pid)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tt.want {
				addr := addrs[name]
				m, ok := maps.Find(addr)
				if !ok {
					t.Errorf("%s at %#x: not mapped", name, addr)
					continue
				}
				for _, off := range []uint64{0, 1} {
					got, ok, err := s.Lookup(m, addr+off)
					if err != nil {
						t.Errorf("Lookup(%s+%d in %s): %v", name, off, m.Path, err)
						continue
					}
					switch {
					case want == "" && ok:
						t.Errorf("Lookup(%s+%d) = %v, want no symbol", name, off, got)
					case want != "" && (!ok || got.Name != want || got.Offset != off):
						t.Errorf("Lookup(%s+%d at %#x in %s) = %v (ok %v), want %s+%#x", name, off, addr+off, m.Path, got, ok, want, off)
					}
				}
			}
			// The ELF header, at offset 0 of the executable, is in no function.
			if m, ok := maps.Find(addrs["main"]); ok {
				for _, hm := range maps {
					if hm.Path == m.Path && hm.Offset == 0 {
						if got, ok, err := s.Lookup(hm, hm.Start); ok || err != nil {
							t.Errorf("Lookup(ELF header) = %v, %v, %v; want no symbol, no error", got, ok, err)
						}
					}
				}
			}
		})
	}
}

// runProgram starts exe, reads the "name address" lines it prints, and
// returns them with its pid; the program is killed when the test ends.
func runProgram(t *testing.T, exe string) (map[string]uint64, int) {
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
	addrs := make(map[string]uint64)
	sc := bufio.NewScanner(out)
	for len(addrs) < 5 && sc.Scan() {
		name, hex, _ := strings.Cut(sc.Text(), " ")
		a, err := strconv.ParseUint(strings.TrimPrefix(hex, "0x"), 16, 64)
		if err != nil {
			t.Fatalf("program printed %q: %v", sc.Text(), err)
		}
		addrs[name] = a
	}
	if len(addrs) < 5 {
		t.Fatalf("program printed %d addresses, want 5: %v", len(addrs), sc.Err())
	}
	return addrs, cmd.Process.Pid
}

func TestLookupNoSymbol(t *testing.T) {
	s := New(Options{}, nil)
	tests := []struct {
		name string
		m    procfs.Mapping
		addr uint64
	}{
		{"anonymous", procfs.Mapping{Start: 0x1000, End: 0x2000}, 0x1800},
		{"heap", procfs.Mapping{Start: 0x1000, End: 0x2000, Path: "[heap]"}, 0x1800},
		{"vdso", procfs.Mapping{Start: 0x1000, End: 0x2000, Path: "[vdso]"}, 0x1800},
		{"outside the mapping", procfs.Mapping{Start: 0x1000, End: 0x2000, Inode: 1, Path: libc}, 0x2000},
	}
	for _, tt := range tests {
		got, ok, err := s.Lookup(tt.m, tt.addr)
		if ok || err != nil {
			t.Errorf("%s: Lookup = %v, %v, %v; want no symbol and no error", tt.name, got, ok, err)
		}
	}
}

func TestLookupErrors(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "text")
	if err := os.WriteFile(notELF, []byte("not an ELF file, but long enough to be read as one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := New(Options{}, nil)
	tests := []struct {
		name string
		path string
		is   error
	}{
		{"missing", filepath.Join(dir, "missing"), fs.ErrNotExist},
		{"not ELF", notELF, nil},
	}
	for _, tt := range tests {
		m := procfs.Mapping{Start: 0x1000, End: 0x2000, Inode: 7, Path: tt.path}
		for range 2 { // the second lookup gets the remembered error
			_, ok, err := s.Lookup(m, 0x1000)
			if err == nil || ok {
				t.Errorf("%s: Lookup = ok %v, err %v; want an error", tt.name, ok, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("%s: Lookup error %v, want %v", tt.name, err, tt.is)
			}
		}
	}
}

// TestSeparateDebugFile strips a program of its symbols into a separate
// debug file, found by build-id under a debug directory, as Debian's -dbg
// packages are: its static function gets its name back from there, and only
// from there.
func TestSeparateDebugFile(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		testutil.Need(t, "gcc", "builds the test program: "+err.Error())
	}
	objcopy, err := exec.LookPath("objcopy")
	if err != nil {
		testutil.Need(t, "objcopy", "splits the debug file: "+err.Error())
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "prog.c")
	if err := os.WriteFile(src, []byte(program), 0o644); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "prog")
	for _, args := range [][]string{
		{gcc, "-O0", "-g", "-Wl,--build-id", "-o", exe, src},
		{objcopy, "--only-keep-debug", exe, exe + ".debug"},
		{objcopy, "--strip-all", exe},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	f, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	id, err := BuildID(f)
	f.Close()
	if err != nil || len(id) != 40 {
		t.Fatalf("BuildID = %q, %v; want 40 hex digits (sha1)", id, err)
	}
	if readelf, err := exec.LookPath("readelf"); err == nil {
		out, err := exec.Command(readelf, "-n", exe).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Build ID: "+id) {
			t.Errorf("BuildID = %s, readelf -n says:\n%s", id, out)
		}
	}
	debugDir := filepath.Join(dir, "debug")
	if err := os.MkdirAll(filepath.Join(debugDir, ".build-id", id[:2]), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(exe+".debug", filepath.Join(debugDir, ".build-id", id[:2], id[2:]+".debug")); err != nil {
		t.Fatal(err)
	}

	addrs, pid := runProgram(t, exe)
	maps, err := procfs.ReadMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := maps.Find(addrs["gamma_local"])
	if !ok {
		t.Fatalf("gamma_local at %#x not mapped", addrs["gamma_local"])
	}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"with the debug file", Options{DebugDir: debugDir}, "gamma_local"},
		{"without", Options{NoDebugFiles: true}, ""},
		{"debug dir without it", Options{DebugDir: t.TempDir()}, ""},
	}
	for _, tt := range tests {
		got, ok, err := New(tt.opts, nil).Lookup(m, addrs["gamma_local"]+2)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if tt.want == "" && ok || tt.want != "" && (got.Name != tt.want || got.Offset != 2) {
			t.Errorf("%s: Lookup(gamma_local+2) = %v (ok %v), want %q", tt.name, got, ok, tt.want)
		}
	}
}

// TestLibcDebugFile resolves a function local to libc (start_thread, in no
// .dynsym) through libc's installed separate debug file, as gdb does.
func TestLibcDebugFile(t *testing.T) {
	f, err := os.Open(libc)
	if err != nil {
		testutil.Need(t, "libc", err.Error())
	}
	defer f.Close()
	id, err := BuildID(f)
	if err != nil || id == "" {
		t.Fatalf("BuildID(%s) = %q, %v", libc, id, err)
	}
	dpath := filepath.Join(DefaultDebugDir, ".build-id", id[:2], id[2:]+".debug")
	df, err := os.Open(dpath)
	if err != nil {
		testutil.Need(t, "libc6-dbg", "no separate debug file for libc: "+err.Error())
	}
	defer df.Close()
	plain, err := NewTable(f)
	if err != nil {
		t.Fatal(err)
	}
	full, err := NewTable(f, df)
	if err != nil {
		t.Fatal(err)
	}
	dbg, err := elf.NewFile(df)
	if err != nil {
		t.Fatal(err)
	}
	syms, err := dbg.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	var st elf.Symbol
	for _, s := range syms {
		if s.Name == "start_thread" {
			st = s
		}
	}
	if st.Value == 0 {
		t.Fatalf("no start_thread in %s", dpath)
	}
	if got, ok := plain.Lookup(st.Value + 5); ok && got.Name == "start_thread" {
		t.Errorf("without the debug file: Lookup(start_thread+5) = %v, want another symbol or none", got)
	}
	if got, ok := full.Lookup(st.Value + 5); !ok || got.String() != "start_thread+0x5" {
		t.Errorf("with the debug file: Lookup(start_thread+5) = %v (ok %v), want start_thread+0x5", got, ok)
	}
	if full.Len() <= plain.Len() {
		t.Errorf("debug file added no functions: %d with, %d without", full.Len(), plain.Len())
	}
}
