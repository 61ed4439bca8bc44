package unwindinfo

import (
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"reflect"
	"sync"
	"testing"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/procfs"
	"github.com/unwindd/unwindd/host/symbolize"
	"github.com/unwindd/unwindd/internal/testutil"
)

func TestParseMethods(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []x86_64.FrameType
		err  bool
	}{
		{"sframe,cfi,fp", []x86_64.FrameType{x86_64.TypeSFrame, x86_64.TypeCFI, x86_64.TypeFramePointer}, false},
		{"fp", []x86_64.FrameType{x86_64.TypeFramePointer}, false},
		{" cfi , fp", []x86_64.FrameType{x86_64.TypeCFI, x86_64.TypeFramePointer}, false},
		{"dwarf", []x86_64.FrameType{x86_64.TypeCFI}, false},
		{"fp,fp", nil, true},
		{"orc", nil, true},
		{"", nil, true},
	} {
		got, err := ParseMethods(tt.in)
		if (err != nil) != tt.err || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseMethods(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestSteppers(t *testing.T) {
	st, opts, err := Steppers([]x86_64.FrameType{x86_64.TypeCFI, x86_64.TypeFramePointer})
	if err != nil {
		t.Fatal(err)
	}
	if len(st) != 2 || st[0].Type() != x86_64.TypeCFI || st[1].Type() != x86_64.TypeFramePointer || !opts.NoSFrame || opts.NoCFI {
		t.Errorf("Steppers(cfi,fp) = %v, %+v", st, opts)
	}
	if st, opts, err := Steppers(nil); err != nil || len(st) != 3 || opts.NoSFrame || opts.NoCFI {
		t.Errorf("Steppers(nil) = %v, %+v, %v; want all three methods", st, opts, err)
	}
}

// progSrc has a function whose address the test looks up.
const progSrc = `int f(int x) { return x * 3 + 1; }
int main(int argc, char **argv) { return f(argc); }
`

// TestObject reads a program's tables and looks a function up by the
// address it is loaded at, through the mapping: the table's rule at f's
// first instruction is the one every function has there (CFA = sp+8, the
// return address at CFA-8).
func TestObject(t *testing.T) {
	exe := testutil.BuildC(t, "", "prog", progSrc, "-O2", "-Wl,--build-id")
	ef, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	syms, err := ef.Symbols()
	ef.Close()
	if err != nil {
		t.Fatal(err)
	}
	var f elf.Symbol
	for _, s := range syms {
		if s.Name == "f" {
			f = s
		}
	}
	if f.Value == 0 {
		t.Fatal("no symbol f")
	}
	files := NewFiles(Options{}, nil)
	// The text is mapped at 0x7000_0000_0000 + the page of f's segment,
	// as a PIE would be.
	const base = 0x7000_0000_0000
	fh, _ := os.Open(exe)
	id, _ := symbolize.BuildID(fh)
	fh.Close()
	m := Mapping{Start: base, Limit: base + 1<<20, Offset: 0, Path: exe, BuildID: string(mustHex(t, id))}
	o := files.Object(&m)
	if o == nil || o.CFI == nil {
		t.Fatalf("Object(%s) = %+v, want CFI", exe, o)
	}
	if o.SFrame != nil {
		t.Errorf("a program built without --gsframe has an SFrame table")
	}
	if files.Object(&m) != o {
		t.Errorf("the object is not cached")
	}
	tab := files.Process(func(addr uint64) (Mapping, bool) { return m, addr >= m.Start && addr < m.Limit })
	r, ok := tab.Rule(x86_64.TypeCFI, base+f.Value) // offset == vaddr for this PIE's text
	want := x86_64.Rule{CFA: x86_64.CFASP, CFAOffset: 8, RA: x86_64.RegAtCFA, RAOffset: -8}
	if !ok || r != want {
		t.Errorf("Rule(cfi, f) = %v, %v; want %v", r, ok, want)
	}
	if _, ok := tab.Rule(x86_64.TypeSFrame, base+f.Value); ok {
		t.Errorf("Rule(sframe, f) found a rule in a file without .sframe")
	}
	if _, ok := tab.Rule(x86_64.TypeCFI, base+1<<21); ok {
		t.Errorf("Rule of an unmapped pc found a rule")
	}

	// The process caches what it resolved until told the mappings changed.
	cur := m
	proc := files.Process(func(addr uint64) (Mapping, bool) { return cur, addr >= cur.Start && addr < cur.Limit })
	if _, ok := proc.Rule(x86_64.TypeCFI, base+f.Value); !ok {
		t.Fatal("no rule for f")
	}
	cur = Mapping{Start: base, Limit: base + 1<<20, Path: "/nonexistent/file"}
	if _, ok := proc.Rule(x86_64.TypeCFI, base+f.Value); !ok {
		t.Error("the resolved mapping was not cached")
	}
	proc.Invalidate()
	if r, ok := proc.Rule(x86_64.TypeCFI, base+f.Value); ok {
		t.Errorf("after Invalidate, a mapping of a missing file gave %v", r)
	}

	// The same path with another build-id is another file: no tables.
	other := m
	other.BuildID = "\x01\x02\x03\x04"
	if o := files.Object(&other); o != nil {
		t.Errorf("Object with a foreign build-id = %+v, want nil", o)
	}
	// Pseudo-files and anonymous memory have none either.
	for _, p := range []string{"", "[stack]", "//anon", "/nonexistent/file"} {
		if o := files.Object(&Mapping{Path: p}); o != nil {
			t.Errorf("Object(%q) = %+v, want nil", p, o)
		}
	}
	// Turned off, a kind of table is not read.
	if o := NewFiles(Options{NoCFI: true}, nil).Object(&m); o == nil || o.CFI != nil {
		t.Errorf("Object with NoCFI = %+v, want no CFI", o)
	}
}

// TestVDSO reads this process's vDSO, whose .eh_frame describes the
// functions (clock_gettime…) a traced program's leaf is often in.
func TestVDSO(t *testing.T) {
	maps, err := procfs.ReadMaps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var vdso procfs.Mapping
	for _, m := range maps {
		if m.Path == VDSOPath {
			vdso = m
		}
	}
	if vdso.Start == 0 {
		t.Skip("this process has no vDSO mapping")
	}
	o := NewFiles(Options{}, nil).Object(&Mapping{Start: vdso.Start, Limit: vdso.End, Path: VDSOPath})
	if o == nil || o.CFI == nil {
		t.Fatalf("vDSO object %+v, want its CFI", o)
	}
	rows := 0
	for off := uint64(0); off < vdso.End-vdso.Start; off++ {
		if v, ok := o.Vaddr(off); ok {
			if _, ok := o.Rule(x86_64.TypeCFI, v); ok {
				rows++
			}
		}
	}
	if rows == 0 {
		t.Errorf("no pc of the vDSO has a CFI rule")
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) == 0 {
		t.Fatalf("build-id %q: %v", s, err)
	}
	return b
}

// TestProcessMemoConcurrent looks rules up from several goroutines while
// another invalidates the process again and again: every answer must be
// the one the file's table gives (run under -race).
func TestProcessMemoConcurrent(t *testing.T) {
	exe := testutil.BuildC(t, "", "prog", progSrc, "-O2")
	const base = 0x7000_0000_0000
	m := Mapping{Start: base, Limit: base + 1<<16, Path: exe}
	find := func(addr uint64) (Mapping, bool) { return m, addr >= m.Start && addr < m.Limit }
	want := NewFiles(Options{NoMemo: true}, nil).Process(find)
	proc := NewFiles(Options{}, nil).Process(find)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				proc.Invalidate()
			}
		}
	}()
	errs := make(chan string, 4)
	var workers sync.WaitGroup
	for w := range 4 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := range 20000 {
				pc := base + uint64((i*7919+w*131)%(1<<16))
				typ := []x86_64.FrameType{x86_64.TypeSFrame, x86_64.TypeCFI}[i%2]
				r, ok := proc.Rule(typ, pc)
				wr, wok := want.Rule(typ, pc)
				if r != wr || ok != wok {
					errs <- fmt.Sprintf("Rule(%v, %#x) = %v, %v; the table says %v, %v", typ, pc, r, ok, wr, wok)
					return
				}
			}
		}()
	}
	workers.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
