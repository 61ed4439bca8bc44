package x86_64

import (
	"testing"
)

// mapTable is a Table of fixed rules by exact pc, recording the pcs it was
// asked for.
type mapTable struct {
	typ   FrameType
	rules map[uint64]Rule
	asked []uint64
}

func (m *mapTable) Rule(typ FrameType, pc uint64) (Rule, bool) {
	m.asked = append(m.asked, pc)
	if typ != m.typ {
		return Rule{}, false
	}
	r, ok := m.rules[pc]
	return r, ok
}

func TestRuleStep(t *testing.T) {
	const base = testBase
	img := newStackImage(base, 512)
	img.put(base+0x10, 0x1111)     // rbp saved at sp+16 / cfa-…
	img.put(base+0x18, 0x2222)     // return address at sp+24
	img.put(base+0x40, base+0x100) // *(sp+0x40): a signal frame's saved rsp
	img.put(base+0x48, 0x3333)     // rip in the signal frame
	img.put(base+0x50, base+0x80)  // rbp in the signal frame
	img.put(base+0x78, base+0x1f0) // *(bp-8) with bp = base+0x80: DRAP
	img.put(base+0x1e8, 0x4444)    // return address at DRAP cfa-8
	img.put(base+0x80, 0x5555)     // rbp saved at bp+0
	snap := img.snapshot()
	for _, c := range []struct {
		name       string
		st         State
		r          Rule
		ok         bool
		why        EndReason
		ip, sp, bp uint64
		signal     bool
	}{
		{"cfa=sp+32, ra at cfa-8, bp same", State{IP: 1, SP: base, BP: 7},
			Rule{CFA: CFASP, CFAOffset: 0x20, RA: RegAtCFA, RAOffset: -8},
			true, EndNone, 0x2222, base + 0x20, 7, false},
		{"bp saved at cfa-16", State{IP: 1, SP: base, BP: 7},
			Rule{CFA: CFASP, CFAOffset: 0x20, RA: RegAtCFA, RAOffset: -8, FP: RegAtCFA, FPOffset: -16},
			true, EndNone, 0x2222, base + 0x20, 0x1111, false},
		{"cfa=bp+16", State{IP: 1, SP: base, BP: base + 0x10},
			Rule{CFA: CFABP, CFAOffset: 16, RA: RegAtCFA, RAOffset: -8, FP: RegAtCFA, FPOffset: -16},
			true, EndNone, 0x2222, base + 0x20, 0x1111, false},
		{"plt before the push: ip&15 < 11", State{IP: 0x1006, SP: base + 0x10},
			Rule{CFA: CFAPLT, CFAOffset: 8, RA: RegAtCFA, RAOffset: -8},
			true, EndNone, 0x1111, base + 0x18, 0, false},
		{"plt after the push: ip&15 >= 11", State{IP: 0x100b, SP: base + 0x8},
			Rule{CFA: CFAPLT, CFAOffset: 8, RA: RegAtCFA, RAOffset: -8},
			true, EndNone, 0x1111, base + 0x18, 0, false},
		{"ibt plt before the push: ip&15 < 9", State{IP: 0x1008, SP: base + 0x10},
			Rule{CFA: CFAPLTIBT, CFAOffset: 8, RA: RegAtCFA, RAOffset: -8},
			true, EndNone, 0x1111, base + 0x18, 0, false},
		{"ibt plt after the push: ip&15 >= 9", State{IP: 0x1009, SP: base + 0x8},
			Rule{CFA: CFAPLTIBT, CFAOffset: 8, RA: RegAtCFA, RAOffset: -8},
			true, EndNone, 0x1111, base + 0x18, 0, false},
		{"signal frame: cfa=*(sp+0x40), ra and bp at sp+off", State{IP: 1, SP: base, BP: 9},
			Rule{CFA: CFADerefSP, CFAOffset: 0x40, RA: RegAtSP, RAOffset: 0x48, FP: RegAtSP, FPOffset: 0x50, Signal: true},
			true, EndNone, 0x3333, base + 0x100, base + 0x80, true},
		{"DRAP: cfa=*(bp-8), bp at bp+0", State{IP: 1, SP: base, BP: base + 0x80},
			Rule{CFA: CFADerefBP, CFAOffset: -8, RA: RegAtCFA, RAOffset: -8, FP: RegAtBP, FPOffset: 0},
			true, EndNone, 0x4444, base + 0x1f0, 0x5555, false},
		{"outermost: ra undefined", State{IP: 1, SP: base, BP: 3},
			Rule{CFA: CFASP, CFAOffset: 8, RA: RegUndefined},
			true, EndNone, 0, base + 8, 3, false},
		{"undefined cfa: not applicable", State{IP: 1, SP: base},
			Rule{}, false, EndNone, 1, base, 0, false},
		{"cfa not above sp", State{IP: 1, SP: base},
			Rule{CFA: CFASP, CFAOffset: 0, RA: RegAtCFA, RAOffset: -8}, false, EndInvalid, 1, base, 0, false},
		{"cfa below sp", State{IP: 1, SP: base + 0x20, BP: base},
			Rule{CFA: CFABP, CFAOffset: 16, RA: RegAtCFA, RAOffset: -8}, false, EndInvalid, 1, base + 0x20, base, false},
		{"misaligned cfa", State{IP: 1, SP: base},
			Rule{CFA: CFASP, CFAOffset: 12, RA: RegAtCFA, RAOffset: -8}, false, EndInvalid, 1, base, 0, false},
		{"ra same is invalid", State{IP: 1, SP: base},
			Rule{CFA: CFASP, CFAOffset: 16, RA: RegSame}, false, EndInvalid, 1, base, 0, false},
		{"ra past the snapshot", State{IP: 1, SP: base},
			Rule{CFA: CFASP, CFAOffset: 0x400, RA: RegAtCFA, RAOffset: -8}, false, EndSnapshot, 1, base, 0, false},
		{"deref cfa past the snapshot", State{IP: 1, SP: base},
			Rule{CFA: CFADerefSP, CFAOffset: 0x400, RA: RegAtCFA, RAOffset: -8}, false, EndSnapshot, 1, base, 0, false},
		{"cfa wraps around", State{IP: 1, SP: base},
			Rule{CFA: CFASP, CFAOffset: -16, RA: RegAtCFA, RAOffset: -8}, false, EndInvalid, 1, base, 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			rd := Reader{mem: snap, snap: snap}
			st := c.st
			ok, why := c.r.Step(&st, &rd)
			if ok != c.ok || why != c.why {
				t.Fatalf("Step(%v) = %v, %v; want %v, %v", c.r, ok, why, c.ok, c.why)
			}
			if st.IP != c.ip || st.SP != c.sp || st.BP != c.bp || st.signal != c.signal {
				t.Errorf("Step(%v): state ip=%#x sp=%#x bp=%#x signal=%v; want ip=%#x sp=%#x bp=%#x signal=%v",
					c.r, st.IP, st.SP, st.BP, st.signal, c.ip, c.sp, c.bp, c.signal)
			}
		})
	}
}

// TestTableStepperWalk walks a stack through a table: a frameless leaf
// (cfa=sp+16), a signal trampoline, the interrupted frame (looked up at its
// exact ip, not ip-1), and a frame-pointer caller, which the table does not
// know, so the next method steps it.
func TestTableStepperWalk(t *testing.T) {
	const base = testBase
	img := newStackImage(base, 0x200)
	// leaf at 0x1000: cfa = sp+16, ra at cfa-8 → 0x2000 (the trampoline)
	img.put(base+8, 0x2000)
	// trampoline at 0x2000 (a return address: looked up at 0x1fff), sp = base+16:
	// cfa = *(sp+0x20), rip at sp+0x28, rbp at sp+0x30
	img.put(base+16+0x20, base+0x100)
	img.put(base+16+0x28, 0x3000)
	img.put(base+16+0x30, base+0x140)
	// interrupted frame at 0x3000, exact: cfa = sp+0x30 → ra 0x4000
	img.put(base+0x100+0x28, 0x4000)
	// fp caller at 0x4000 (not in the table): record at bp = base+0x140
	img.frame(base+0x140, 0, 0x5000)
	// 0x5000's caller: ra 0 → outermost, via fp with saved bp 0 → bp 0 < sp: invalid
	tab := &mapTable{typ: TypeCFI, rules: map[uint64]Rule{
		0x1000: {CFA: CFASP, CFAOffset: 16, RA: RegAtCFA, RAOffset: -8},
		0x1fff: {CFA: CFADerefSP, CFAOffset: 0x20, RA: RegAtSP, RAOffset: 0x28, FP: RegAtSP, FPOffset: 0x30, Signal: true},
		0x3000: {CFA: CFASP, CFAOffset: 0x30, RA: RegAtCFA, RAOffset: -8},
	}}
	u := mustNew(t, Options{Steppers: []Stepper{TableStepper(TypeSFrame), TableStepper(TypeCFI), FramePointer{}}})
	var tr Trace
	u.UnwindTable(Regs{IP: 0x1000, SP: base, BP: 0xdead}, img.snapshot(), tab, &tr)
	want := []Frame{{0x1000, TypeRegs}, {0x2000, TypeCFI}, {0x3000, TypeCFI}, {0x4000, TypeCFI}, {0x5000, TypeFramePointer}}
	if len(tr.Frames) != len(want) {
		t.Fatalf("frames %v (end %v), want %v", tr.Frames, tr.End, want)
	}
	for i := range want {
		if tr.Frames[i] != want[i] {
			t.Errorf("frame %d = %v, want %v", i, tr.Frames[i], want[i])
		}
	}
	// Each frame was asked for by the sframe and the cfi stepper, at
	// the leaf's ip, the trampoline's ip-1, the interrupted frame's
	// exact ip and the fp caller's ip-1.
	wantAsked := []uint64{0x1000, 0x1000, 0x1fff, 0x1fff, 0x3000, 0x3000, 0x3fff, 0x3fff, 0x4fff, 0x4fff}
	if len(tab.asked) < len(wantAsked) || !equalU64(tab.asked[:len(wantAsked)], wantAsked) {
		t.Errorf("table asked for %#x, want %#x first", tab.asked, wantAsked)
	}
	// Without a table the table steppers do not apply: frame pointers alone.
	u.UnwindTable(Regs{IP: 0x1000, SP: base, BP: base + 0x140}, img.snapshot(), nil, &tr)
	if len(tr.Frames) < 2 || tr.Frames[1] != (Frame{0x5000, TypeFramePointer}) {
		t.Errorf("without a table: %v, want fp frames", tr.Frames)
	}
}

func equalU64(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestRuleString(t *testing.T) {
	r := Rule{CFA: CFADerefSP, CFAOffset: 160, RA: RegAtSP, RAOffset: 168, FP: RegAtCFA, FPOffset: -16, Signal: true}
	if got, want := r.String(), "cfa=*sp+160 ra=sp+168 fp=c-16 signal"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
