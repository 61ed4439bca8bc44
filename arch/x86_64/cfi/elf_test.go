package cfi

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/internal/testutil"
)

func openELF(t testing.TB, path string) *elf.File {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// symbol returns the value and size of the function name in f's .symtab.
func symbol(t testing.TB, f *elf.File, name string) (addr, size uint64) {
	t.Helper()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatalf("symbols: %v", err)
	}
	for _, s := range syms {
		if s.Name == name && elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 {
			return s.Value, s.Size
		}
	}
	t.Fatalf("no function %s", name)
	return 0, 0
}

// The rules the CFI of a .plt says: "push GOT[1]; jmp *GOT[2]" in .plt's
// first entry, then per 16-byte entry "jmp *GOT[n]; push $n; jmp .plt"
// (the push ends at offset 11).
var (
	pltRule  = x86_64.Rule{CFA: x86_64.CFAPLT, CFAOffset: 8, RA: x86_64.RegAtCFA, RAOffset: -8}
	plt0Push = withCFA(sp8, x86_64.CFASP, 16)
	plt0Jmp  = withCFA(sp8, x86_64.CFASP, 24)
)

// checkPLT looks up every byte of the .plt of f in tab, and steps out of
// each half of an entry.
func checkPLT(t *testing.T, f *elf.File, tab *Table) {
	t.Helper()
	plt := f.Section(".plt")
	if plt == nil || plt.Size < 32 {
		t.Fatalf("no .plt with entries")
	}
	for pc := plt.Addr; pc < plt.Addr+plt.Size; pc++ {
		want := pltRule
		switch off := pc - plt.Addr; {
		case off < 6:
			want = plt0Push
		case off < 16:
			want = plt0Jmp
		}
		if r, ok := tab.Lookup(pc); !ok || r != want {
			t.Fatalf(".plt+%#x: Lookup(%#x) = %v, %v; want %v", pc-plt.Addr, pc, r, ok, want)
		}
	}
	// Step out of the second entry before and after its push: the CFA is
	// the caller's sp, 8 above the return address either way.
	const sp = 0x7ffd_0000
	stack := make([]byte, 32)
	binary.LittleEndian.PutUint64(stack[0:], 0x4242)   // the pushed index, after the push
	binary.LittleEndian.PutUint64(stack[8:], 0x401234) // the return address, after the push
	binary.LittleEndian.PutUint64(stack[16:], 0x5555)
	for _, c := range []struct {
		off    uint64
		sp, ra uint64
	}{
		{off: 0, sp: sp + 8, ra: 0x4242},  // before the push, sp points at the return address: here 0x4242
		{off: 10, sp: sp + 8, ra: 0x4242}, // the push (offset 6, 5 bytes) has not run at 10
		{off: 11, sp: sp + 16, ra: 0x401234},
		{off: 15, sp: sp + 16, ra: 0x401234},
	} {
		pc := plt.Addr + 16 + c.off
		r, _ := tab.Lookup(pc)
		st := &x86_64.State{IP: pc, SP: sp, BP: 0x9999}
		var tr x86_64.Trace
		u, _ := x86_64.New(x86_64.Options{Steppers: []x86_64.Stepper{stepRule(r)}, MaxDepth: 2})
		u.Unwind(x86_64.Regs{IP: st.IP, SP: st.SP, BP: st.BP}, &x86_64.Snapshot{Base: sp, Data: stack}, &tr)
		if len(tr.Frames) != 2 || tr.Frames[1].PC != c.ra {
			t.Errorf(".plt entry+%d: frames %+v (%v), want return address %#x", c.off, tr.Frames, tr.End, c.ra)
		}
	}
}

// stepRule is a Stepper that applies one rule whatever the pc.
type stepRule x86_64.Rule

func (stepRule) Type() x86_64.FrameType { return x86_64.TypeCFI }

func (s stepRule) Step(st *x86_64.State, rd *x86_64.Reader) (bool, x86_64.EndReason) {
	return x86_64.Rule(s).Step(st, rd)
}

// TestPLT: the .plt of a lazily bound program and of libc.
func TestPLT(t *testing.T) {
	t.Run("program", func(t *testing.T) {
		exe := testutil.BuildC(t, "", "plt", testSource, "-O2", "-Wl,-z,lazy")
		checkPLT(t, openELF(t, exe), fromFile(t, exe))
	})
	t.Run("libc", func(t *testing.T) {
		checkPLT(t, openELF(t, libcPath(t)), fromFile(t, libcPath(t)))
	})
}

// restoreRTCode is glibc's __restore_rt: mov $15 (rt_sigreturn), %rax;
// syscall.
var restoreRTCode = []byte{0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05}

// The kernel's rt_sigframe as __restore_rt finds it: sp points at the
// ucontext (the handler's return popped pretcode); uc_mcontext starts 40
// bytes in (uc_flags, uc_link, uc_stack), and its gregs run r8 … r15, rdi,
// rsi, rbp, rbx, rdx, rax, rcx, rsp, rip: rbp at index 10, rsp 15, rip 16.
const (
	ucMcontext = 40
	sigRBP     = ucMcontext + 10*8 // 120
	sigRSP     = ucMcontext + 15*8 // 160
	sigRIP     = ucMcontext + 16*8 // 168
)

// TestRestoreRT: glibc's signal trampoline, found by its code (and by its
// symbol in the libc6-dbg debug file, where installed), is a signal frame
// whose registers come from the sigcontext.
func TestRestoreRT(t *testing.T) {
	f := openELF(t, libcPath(t))
	tab := fromFile(t, libcPath(t))
	text := f.Section(".text")
	code, err := text.Data()
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(code, restoreRTCode)
	if i < 1 || bytes.Index(code[i+1:], restoreRTCode) >= 0 {
		t.Fatalf("want one mov $15,%%rax; syscall in libc's .text, after a byte")
	}
	addr := text.Addr + uint64(i)
	if dbg := debugFile(t, f); dbg != nil {
		if sym, _ := symbol(t, dbg, "__restore_rt"); sym != addr {
			t.Errorf("__restore_rt at %#x, its code at %#x", sym, addr)
		}
	} else {
		t.Logf("no libc6-dbg debug file: __restore_rt found by its code alone")
	}
	want := x86_64.Rule{
		CFA: x86_64.CFADerefSP, CFAOffset: sigRSP,
		RA: x86_64.RegAtSP, RAOffset: sigRIP,
		FP: x86_64.RegAtSP, FPOffset: sigRBP,
		Signal: true,
	}
	// glibc starts the FDE one byte early (a nop) so that a lookup by
	// return address − 1 also finds it.
	for _, pc := range []uint64{addr - 1, addr, addr + uint64(len(restoreRTCode)) - 1} {
		if r, ok := tab.Lookup(pc); !ok || r != want {
			t.Errorf("__restore_rt%+d: Lookup(%#x) = %v, %v; want %v", int64(pc-addr), pc, r, ok, want)
		}
	}
	// Step out of a signal frame: the interrupted rip, rsp and rbp.
	const sp = 0x7ffd_0000
	stack := make([]byte, 256)
	binary.LittleEndian.PutUint64(stack[sigRSP:], sp+0x1000)
	binary.LittleEndian.PutUint64(stack[sigRIP:], 0x401234)
	binary.LittleEndian.PutUint64(stack[sigRBP:], sp+0x1100)
	u, err := x86_64.New(x86_64.Options{Steppers: []x86_64.Stepper{stepRule(want)}, MaxDepth: 2})
	if err != nil {
		t.Fatal(err)
	}
	var tr x86_64.Trace
	u.Unwind(x86_64.Regs{IP: addr, SP: sp, BP: 1}, &x86_64.Snapshot{Base: sp, Data: stack}, &tr)
	if len(tr.Frames) != 2 || tr.Frames[1].PC != 0x401234 {
		t.Errorf("step out of __restore_rt: frames %+v (%v), want the interrupted ip 0x401234", tr.Frames, tr.End)
	}
}

// debugFile opens f's separate debug file from /usr/lib/debug/.build-id,
// or returns nil when it is not installed.
func debugFile(t testing.TB, f *elf.File) *elf.File {
	t.Helper()
	note := f.Section(".note.gnu.build-id")
	if note == nil {
		return nil
	}
	data, err := note.Data()
	if err != nil || len(data) < 16 {
		return nil
	}
	nameSize := binary.LittleEndian.Uint32(data)
	descSize := binary.LittleEndian.Uint32(data[4:])
	desc := data[12+(nameSize+3)&^3:]
	if uint32(len(desc)) < descSize || descSize < 2 {
		return nil
	}
	id := hex.EncodeToString(desc[:descSize])
	path := filepath.Join("/usr/lib/debug/.build-id", id[:2], id[2:]+".debug")
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	return openELF(t, path)
}

// TestStart: _start's CFI marks the outermost frame (DW_CFA_undefined
// rip).
func TestStart(t *testing.T) {
	exe := testutil.BuildC(t, "", "start", testSource, "-O2")
	f := openELF(t, exe)
	tab := fromFile(t, exe)
	start, size := symbol(t, f, "_start")
	want := withRA(sp8, x86_64.RegUndefined, 0)
	for _, pc := range []uint64{start, start + size - 1} {
		if r, ok := tab.Lookup(pc); !ok || r != want {
			t.Errorf("_start: Lookup(%#x) = %v, %v; want %v", pc, r, ok, want)
		}
	}
}

// TestDRAP: a function that realigns its stack and has a variable-size
// frame keeps the CFA through its DRAP: *(rbp−8), and rbp at rbp+0; while
// the CFA is in r10 (prologue, epilogue) it has no rule.
func TestDRAP(t *testing.T) {
	for _, flags := range [][]string{{"-O2"}, {"-O2", "-mavx"}, {"-O0"}} {
		exe := testutil.BuildC(t, "", "drap", testSource, flags...)
		f := openELF(t, exe)
		tab := fromFile(t, exe)
		fn, size := symbol(t, f, "realign")
		want := withFP(withCFA(sp8, x86_64.CFADerefBP, -8), x86_64.RegAtBP, 0)
		var sawDRAP, sawNone int
		for pc := fn; pc < fn+size; pc++ {
			r, ok := tab.Lookup(pc)
			switch {
			case !ok:
				sawNone++
			case r == want:
				sawDRAP++
			}
		}
		if sawDRAP < 10 || sawNone == 0 {
			t.Errorf("%v: realign's %d bytes: %d with %v, %d with no rule; want the body through the DRAP, the r10 part without a rule", flags, size, sawDRAP, want, sawNone)
		}
		if r, ok := tab.Lookup(fn); !ok || r != sp8 {
			t.Errorf("%v: realign's entry: Lookup(%#x) = %v, %v; want %v", flags, fn, r, ok, sp8)
		}
	}
}

// TestNoCFI: a file without .eh_frame and .debug_frame. Built without
// unwind tables, a program still gets .eh_frame from crt1.o (_start) and
// the linker (.plt), though none for main; only one linked without them
// has none.
func TestNoCFI(t *testing.T) {
	exe := testutil.BuildC(t, "", "nounwind", testSource, "-O2", "-fno-asynchronous-unwind-tables")
	f := openELF(t, exe)
	tab := fromFile(t, exe)
	main, _ := symbol(t, f, "main")
	if r, ok := tab.Lookup(main); ok {
		t.Errorf("main, built without unwind tables: Lookup(%#x) = %v, want no rule", main, r)
	}
	start, _ := symbol(t, f, "_start")
	if _, ok := tab.Lookup(start); !ok {
		t.Errorf("_start, from crt1.o's .eh_frame: no rule")
	}

	const bare = "void _start(void) { for (;;) __asm__ volatile(\"pause\"); }\n"
	exe = testutil.BuildC(t, "", "bare", bare, "-O2", "-fno-asynchronous-unwind-tables", "-nostdlib", "-static")
	f = openELF(t, exe)
	if f.Section(".eh_frame") != nil {
		t.Fatalf("%s has an .eh_frame", exe)
	}
	if tab, err := FromELF(f); !errors.Is(err, ErrNoCFI) {
		t.Errorf("FromELF(no .eh_frame) = %v, %v; want ErrNoCFI", tab, err)
	}
}

func TestNotX86(t *testing.T) {
	for _, h := range []elf.FileHeader{
		{Class: elf.ELFCLASS32, Machine: elf.EM_386},
		{Class: elf.ELFCLASS64, Machine: elf.EM_AARCH64},
	} {
		if _, err := FromELF(&elf.File{FileHeader: h}); err == nil {
			t.Errorf("FromELF(%v %v): no error", h.Class, h.Machine)
		}
	}
}

// TestParseSection: Parse of libc's .eh_frame bytes is FromELF's table.
func TestParseSection(t *testing.T) {
	f := openELF(t, libcPath(t))
	sec := f.Section(".eh_frame")
	data, err := sec.Data()
	if err != nil {
		t.Fatal(err)
	}
	tab, err := Parse(data, sec.Addr)
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, tab)
	want := fromFile(t, libcPath(t))
	if tab.Len() != want.Len() || tab.Size() != want.Size() {
		t.Fatalf("Parse: %d rows, %d bytes; FromELF: %d rows, %d bytes", tab.Len(), tab.Size(), want.Len(), want.Size())
	}
	for i := range tab.Len() {
		if tab.Row(i) != want.Row(i) {
			t.Fatalf("row %d: Parse %+v, FromELF %+v", i, tab.Row(i), want.Row(i))
		}
	}
	t.Logf("libc.so.6: %d FDEs, %d rows, %d distinct rules, %d bytes (%.1f bytes a row)",
		tab.Stats().FDEs, tab.Len(), tab.Rules(), tab.Size(), float64(tab.Size())/float64(tab.Len()))
}

// TestGoDebugFrame: a Go executable has no .eh_frame, only the
// (compressed) .debug_frame the Go linker writes; main.main is found there.
// (go test's own binaries are linked without DWARF: one is built here.)
func TestGoDebugFrame(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		testutil.Need(t, "go", "builds a Go program: "+err.Error())
	}
	dir := t.TempDir()
	for name, body := range map[string]string{
		"go.mod":  "module hello\n\ngo 1.22\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exe := filepath.Join(dir, "hello")
	cmd := exec.Command(gobin, "build", "-o", exe, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildmode=exe", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	f := openELF(t, exe)
	if f.Section(".eh_frame") != nil || f.Section(".debug_frame") == nil {
		t.Fatalf("want a Go executable with .debug_frame and no .eh_frame")
	}
	tab := fromFile(t, exe)
	main, size := symbol(t, f, "main.main")
	for _, pc := range []uint64{main, main + size - 1} {
		if r, ok := tab.Lookup(pc); !ok || r.CFA != x86_64.CFASP || r.RA != x86_64.RegAtCFA || r.RAOffset != -8 {
			t.Errorf("main.main: Lookup(%#x) = %v, %v; want cfa=sp+N ra=c-8", pc, r, ok)
		}
	}
	n := compareReadelf(t, exe, tab)
	if n.checked == 0 || n.noRule > 0 {
		t.Errorf("readelf: %d rows with the same rule, %d with none", n.checked, n.noRule)
	}
}
