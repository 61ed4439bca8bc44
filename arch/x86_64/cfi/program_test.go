package cfi

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/unwindd/unwindd/arch/x86_64"
)

// Rules the cases expect.
var (
	sp8     = x86_64.Rule{CFA: x86_64.CFASP, CFAOffset: 8, RA: x86_64.RegAtCFA, RAOffset: -8}
	sp16    = withCFA(sp8, x86_64.CFASP, 16)
	sp16bp  = withFP(sp16, x86_64.RegAtCFA, -16)
	bp16bp  = withCFA(sp16bp, x86_64.CFABP, 16)
	noRule  = x86_64.Rule{}
	fdeBase = uint64(0x1000)
)

func withCFA(r x86_64.Rule, k x86_64.CFAKind, off int32) x86_64.Rule {
	r.CFA, r.CFAOffset = k, off
	return r
}

func withFP(r x86_64.Rule, k x86_64.RegKind, off int32) x86_64.Rule {
	r.FP, r.FPOffset = k, off
	return r
}

func withRA(r x86_64.Rule, k x86_64.RegKind, off int32) x86_64.Rule {
	r.RA, r.RAOffset = k, off
	return r
}

func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// at is an expected lookup: the rule at fdeBase+pc (noRule: ok false).
type at struct {
	pc   uint64
	rule x86_64.Rule
}

// TestProgram runs each call frame instruction, hand-assembled, through a
// one-FDE section covering [0x1000, 0x1040) and looks the result up.
func TestProgram(t *testing.T) {
	drap := testCIE{}
	cases := []struct {
		name string
		cie  testCIE
		ins  []byte
		want []at
		cut  bool // the program stops at an undecodable instruction
	}{
		{name: "cie only", want: []at{{0, sp8}, {0x3f, sp8}}},
		{name: "nop", ins: []byte{cfaNop, cfaNop}, want: []at{{0, sp8}}},
		{name: "push rbp", ins: cat(advance(1), defCFAOffset(16), offsetReg(regRBP, 2)),
			want: []at{{0, sp8}, {1, sp16bp}, {0x3f, sp16bp}}},
		{name: "frame pointer", ins: cat(advance(1), defCFAOffset(16), offsetReg(regRBP, 2), advance(3), op(cfaDefCFARegister, uleb(regRBP)), advance(0x20), defCFA(regRSP, 8)),
			want: []at{{0, sp8}, {1, sp16bp}, {3, sp16bp}, {4, bp16bp}, {0x23, bp16bp}, {0x24, withFP(sp8, x86_64.RegAtCFA, -16)}}},
		{name: "advance_loc1", ins: cat(op(cfaAdvanceLoc1, []byte{0x20}), defCFAOffset(16)),
			want: []at{{0x1f, sp8}, {0x20, sp16}}},
		{name: "advance_loc2", ins: cat(op(cfaAdvanceLoc2, []byte{0x21, 0}), defCFAOffset(16)),
			want: []at{{0x20, sp8}, {0x21, sp16}}},
		{name: "advance_loc4", ins: cat(op(cfaAdvanceLoc4, []byte{0x22, 0, 0, 0}), defCFAOffset(16)),
			want: []at{{0x21, sp8}, {0x22, sp16}}},
		{name: "advance past the end", ins: cat(op(cfaAdvanceLoc4, []byte{0, 0, 1, 0}), defCFAOffset(16)),
			want: []at{{0x3f, sp8}, {0x40, noRule}}},
		{name: "set_loc", ins: cat(op(cfaSetLoc, []byte{0, 0, 0, 0}), advance(2), defCFAOffset(16)),
			// pc-relative: the pointer's own address plus 0 lies
			// past the FDE, so nothing after it applies.
			want: []at{{0, sp8}, {0x3f, sp8}}},
		{name: "set_loc absolute", cie: testCIE{aug: "z"}, ins: cat(op(cfaSetLoc, le64(fdeBase+0x10)), defCFAOffset(16)),
			want: []at{{0xf, sp8}, {0x10, sp16}}},
		{name: "set_loc backwards", cie: testCIE{aug: "z"}, ins: cat(advance(4), op(cfaSetLoc, le64(fdeBase+2)), defCFAOffset(16)),
			want: []at{{3, sp8}, {4, noRule}}, cut: true},
		{name: "def_cfa_sf", ins: op(cfaDefCFASF, uleb(regRBP), sleb(-2)), want: []at{{0, withCFA(sp8, x86_64.CFABP, 16)}}},
		{name: "def_cfa_offset_sf", ins: op(cfaDefCFAOffsetSF, sleb(-3)), want: []at{{0, withCFA(sp8, x86_64.CFASP, 24)}}},
		{name: "offset_extended", ins: op(cfaOffsetExtended, uleb(regRBP), uleb(3)), want: []at{{0, withFP(sp8, x86_64.RegAtCFA, -24)}}},
		{name: "offset_extended_sf", ins: op(cfaOffsetExtendedSF, uleb(regRBP), sleb(4)), want: []at{{0, withFP(sp8, x86_64.RegAtCFA, -32)}}},
		{name: "GNU_negative_offset_extended", ins: op(cfaGNUNegativeOffsetExtend, uleb(regRBP), uleb(1)), want: []at{{0, withFP(sp8, x86_64.RegAtCFA, 8)}}},
		{name: "offset of rip", ins: offsetReg(regRA, 2), want: []at{{0, withRA(sp8, x86_64.RegAtCFA, -16)}}},
		{name: "offset of another register", ins: offsetReg(3, 2), want: []at{{0, sp8}}},
		{name: "restore", ins: cat(offsetReg(regRBP, 2), offsetReg(regRA, 3), advance(4), []byte{cfaRestore | regRBP, cfaRestore | regRA}),
			want: []at{{0, withRA(withFP(sp8, x86_64.RegAtCFA, -16), x86_64.RegAtCFA, -24)}, {4, sp8}}},
		{name: "restore_extended", ins: cat(offsetReg(regRBP, 2), advance(4), op(cfaRestoreExtended, uleb(regRBP))),
			want: []at{{0, withFP(sp8, x86_64.RegAtCFA, -16)}, {4, sp8}}},
		{name: "undefined rip (_start)", ins: op(cfaUndefined, uleb(regRA)), want: []at{{0, withRA(sp8, x86_64.RegUndefined, 0)}}},
		{name: "undefined rbp", ins: op(cfaUndefined, uleb(regRBP)), want: []at{{0, withFP(sp8, x86_64.RegUndefined, 0)}}},
		{name: "same_value rbp", ins: cat(offsetReg(regRBP, 2), advance(1), op(cfaSameValue, uleb(regRBP))),
			want: []at{{0, withFP(sp8, x86_64.RegAtCFA, -16)}, {1, sp8}}},
		{name: "same_value rip", ins: op(cfaSameValue, uleb(regRA)), want: []at{{0, noRule}}},
		{name: "register rbp in rbx", ins: cat(op(cfaRegister, uleb(regRBP), uleb(3)), advance(2), []byte{cfaRestore | regRBP}),
			want: []at{{0, noRule}, {1, noRule}, {2, sp8}}},
		{name: "register rip in rdx (vfork)", ins: op(cfaRegister, uleb(regRA), uleb(1)), want: []at{{0, noRule}}},
		{name: "register rbp in itself", ins: op(cfaRegister, uleb(regRBP), uleb(regRBP)), want: []at{{0, sp8}}},
		{name: "register rsp in r8", ins: op(cfaRegister, uleb(regRSP), uleb(8)), want: []at{{0, noRule}}},
		{name: "register of another register", ins: op(cfaRegister, uleb(3), uleb(1)), want: []at{{0, sp8}}},
		{name: "remember and restore state", ins: cat(
			advance(1), defCFAOffset(16), offsetReg(regRBP, 2),
			advance(1), []byte{cfaRememberState}, defCFAOffset(8), []byte{cfaRestore | regRBP},
			advance(1), []byte{cfaRestoreState}),
			want: []at{{0, sp8}, {1, sp16bp}, {2, sp8}, {3, sp16bp}, {0x3f, sp16bp}}},
		{name: "restore_state with nothing remembered", ins: cat(advance(1), defCFAOffset(16), advance(1), []byte{cfaRestoreState}, advance(1), defCFAOffset(8)),
			want: []at{{0, sp8}, {1, sp16}, {2, noRule}, {0x3f, noRule}}, cut: true},
		{name: "GNU_args_size", ins: cat(op(cfaGNUArgsSize, uleb(16)), advance(1), defCFAOffset(16)), want: []at{{0, sp8}, {1, sp16}}},
		{name: "def_cfa in r10 (DRAP prologue)", ins: cat(advance(5), defCFA(10, 0), advance(5), defCFA(regRSP, 8)),
			want: []at{{4, sp8}, {5, noRule}, {9, noRule}, {10, sp8}}},
		{name: "DRAP", cie: drap, ins: cat(
			advance(5), defCFA(10, 0),
			advance(28), op(cfaExpression, uleb(regRBP), block(breg(regRBP, 0))),
			advance(2), op(cfaDefCFAExpression, block(breg(regRBP, -8), []byte{opDeref})),
			advance(20), defCFA(10, 0)),
			want: []at{
				{0, sp8}, {5, noRule}, {33, noRule}, // rbp saved at rbp+0, but the CFA is in r10
				{35, withFP(withCFA(sp8, x86_64.CFADerefBP, -8), x86_64.RegAtBP, 0)},
				{54, withFP(withCFA(sp8, x86_64.CFADerefBP, -8), x86_64.RegAtBP, 0)},
				{55, noRule},
			}},
		{name: "plt", ins: op(cfaDefCFAExpression, pltExpr(11)), want: []at{{0, withCFA(sp8, x86_64.CFAPLT, 8)}, {0x3f, withCFA(sp8, x86_64.CFAPLT, 8)}}},
		{name: "plt with IBT's threshold", ins: op(cfaDefCFAExpression, pltExpr(9)), want: []at{{0, withCFA(sp8, x86_64.CFAPLTIBT, 8)}}},
		{name: "plt with MPX's threshold", ins: op(cfaDefCFAExpression, pltExpr(5)), want: []at{{0, noRule}}},
		{name: "cfa expression breg7", ins: op(cfaDefCFAExpression, block(breg(regRSP, 24))), want: []at{{0, withCFA(sp8, x86_64.CFASP, 24)}}},
		{name: "cfa expression deref plus_uconst (openssl)", ins: op(cfaDefCFAExpression, block(breg(regRSP, 40), []byte{opDeref, 0x23, 8})), want: []at{{0, noRule}}},
		{name: "cfa expression in another register", ins: op(cfaDefCFAExpression, block(breg(3, 8), []byte{opDeref})), want: []at{{0, noRule}}},
		// As libgcc and readelf keep it, def_cfa's offset stays behind
		// an expression: def_cfa_offset under one changes nothing yet,
		// def_cfa_register after one brings the offset back.
		{name: "def_cfa_offset under an expression", ins: cat(op(cfaDefCFAExpression, block(breg(regRSP, 160), []byte{opDeref})), defCFAOffset(16)),
			want: []at{{0, withCFA(sp8, x86_64.CFADerefSP, 160)}}},
		{name: "def_cfa_register after an expression", ins: cat(
			defCFAOffset(56), advance(1), op(cfaDefCFAExpression, block(breg(regRSP, 536), []byte{opDeref, 0x23, 56})),
			advance(1), op(cfaDefCFARegister, uleb(regRSP))),
			want: []at{{0, withCFA(sp8, x86_64.CFASP, 56)}, {1, noRule}, {2, withCFA(sp8, x86_64.CFASP, 56)}}},
		{name: "def_cfa_offset with no register", cie: testCIE{init: offsetReg(regRA, 1)}, ins: defCFAOffset(8), want: []at{{0, noRule}}},
		{name: "def_cfa_register with no offset", cie: testCIE{init: offsetReg(regRA, 1)}, ins: op(cfaDefCFARegister, uleb(regRSP)), want: []at{{0, withCFA(sp8, x86_64.CFASP, 0)}}},
		{name: "signal frame (__restore_rt)", cie: testCIE{aug: "zRS", init: []byte{}}, ins: cat(
			op(cfaDefCFAExpression, block(breg(regRSP, 160), []byte{opDeref})),
			op(cfaExpression, uleb(8), block(breg(regRSP, 40))),
			op(cfaExpression, uleb(regRBP), block(breg(regRSP, 120))),
			op(cfaExpression, uleb(regRSP), block(breg(regRSP, 160))),
			op(cfaExpression, uleb(regRA), block(breg(regRSP, 168)))),
			want: []at{{0, x86_64.Rule{CFA: x86_64.CFADerefSP, CFAOffset: 160, RA: x86_64.RegAtSP, RAOffset: 168, FP: x86_64.RegAtSP, FPOffset: 120, Signal: true}}}},
		{name: "signal CIE without z", cie: testCIE{aug: "S"}, want: []at{{0, func() x86_64.Rule { r := sp8; r.Signal = true; return r }()}}},
		{name: "rsp saved elsewhere than the CFA", ins: cat(
			op(cfaDefCFAExpression, block(breg(regRSP, 160), []byte{opDeref})),
			op(cfaExpression, uleb(regRSP), block(breg(regRSP, 152)))),
			want: []at{{0, noRule}}},
		{name: "val_offset rsp 0", ins: op(cfaValOffset, uleb(regRSP), uleb(0)), want: []at{{0, sp8}}},
		{name: "val_offset rbp", ins: op(cfaValOffset, uleb(regRBP), uleb(1)), want: []at{{0, noRule}}},
		{name: "val_offset_sf rsp", ins: op(cfaValOffsetSF, uleb(regRSP), sleb(1)), want: []at{{0, noRule}}},
		{name: "val_expression rip", ins: op(cfaValExpression, uleb(regRA), block(breg(regRSP, 8))), want: []at{{0, noRule}}},
		{name: "expression rbp with a deref", ins: op(cfaExpression, uleb(regRBP), block(breg(regRBP, 0), []byte{opDeref})), want: []at{{0, noRule}}},
		{name: "expression of another register", ins: op(cfaExpression, uleb(3), block([]byte{0xff})), want: []at{{0, sp8}}},
		{name: "cfa offset past int32", ins: defCFA(regRSP, 1<<31), want: []at{{0, noRule}}},
		{name: "huge factored offset", ins: op(cfaOffsetExtendedSF, uleb(regRBP), sleb(1<<40)), want: []at{{0, noRule}}},
		{name: "unknown opcode", ins: cat(advance(2), defCFAOffset(16), advance(2), []byte{0x3f}, defCFAOffset(8)),
			want: []at{{0, sp8}, {2, sp16}, {4, noRule}, {0x3f, noRule}}, cut: true},
		{name: "operand past the end", ins: cat(advance(2), []byte{cfaDefCFA, 0x80}),
			want: []at{{0, sp8}, {2, noRule}}, cut: true},
		{name: "expression past the end", ins: cat(advance(2), op(cfaDefCFAExpression, uleb(4), breg(regRSP, 8))),
			want: []at{{0, sp8}, {2, noRule}}, cut: true},
		{name: "remember_state too deep", ins: cat(advance(1), slices.Repeat([]byte{cfaRememberState}, maxRemembered+1)),
			want: []at{{0, sp8}, {1, noRule}}, cut: true},
		{name: "no CFA rule", cie: testCIE{init: []byte{cfaOffset | regRA, 1}}, want: []at{{0, noRule}}},
		{name: "no return address rule", cie: testCIE{init: defCFA(regRSP, 8)}, want: []at{{0, noRule}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sec := ehFrame(c.cie, testFDE{begin: fdeBase, size: 0x40, ins: c.ins})
			tab, err := Parse(sec, testAddr)
			if err != nil {
				t.Fatal(err)
			}
			st := tab.Stats()
			if st.FDEs != 1 || st.Skipped != 0 {
				t.Errorf("stats %+v, want 1 FDE, none skipped", st)
			}
			if cut := st.Cut == 1; cut != c.cut {
				t.Errorf("stats %+v: cut %v, want %v", st, cut, c.cut)
			}
			if c.cut && !errors.As(st.Err, new(*FormatError)) {
				t.Errorf("Stats.Err = %v, want a *FormatError", st.Err)
			}
			for _, w := range c.want {
				got, ok := tab.Lookup(fdeBase + w.pc)
				if wantOK := w.rule != noRule; ok != wantOK || got != w.rule {
					t.Errorf("Lookup(%#x) = %v, %v; want %v, %v", fdeBase+w.pc, got, ok, w.rule, wantOK)
				}
			}
			for _, pc := range []uint64{fdeBase - 1, fdeBase + 0x40, 0, ^uint64(0)} {
				if r, ok := tab.Lookup(pc); ok {
					t.Errorf("Lookup(%#x) outside the FDE = %v, want no rule", pc, r)
				}
			}
			checkRows(t, tab)
		})
	}
}

// checkRows checks the table's invariants: rows strictly increasing,
// adjacent rules different, the last row a gap, and Lookup agreeing with
// every row at its first and last pc.
func checkRows(t testing.TB, tab *Table) {
	t.Helper()
	n := tab.Len()
	if n == 0 {
		return
	}
	if last := tab.Row(n - 1); last.Rule != noRule {
		t.Errorf("last row %+v has a rule", last)
	}
	var prev Row
	i := 0
	for row := range tab.All() {
		if i > 0 {
			if row.Start <= prev.Start {
				t.Fatalf("row %d starts at %#x, not after row %d's %#x", i, row.Start, i-1, prev.Start)
			}
			if row.Rule == prev.Rule {
				t.Errorf("rows %d and %d both have %v", i-1, i, row.Rule)
			}
			if r, ok := tab.Lookup(row.Start - 1); r != prev.Rule || ok != (prev.Rule != noRule) {
				t.Errorf("Lookup(%#x) = %v, %v; want row %d's %v", row.Start-1, r, ok, i-1, prev.Rule)
			}
		}
		if r, ok := tab.Lookup(row.Start); r != row.Rule || ok != (row.Rule != noRule) {
			t.Errorf("Lookup(%#x) = %v, %v; want row %d's %v", row.Start, r, ok, i, row.Rule)
		}
		prev = row
		i++
	}
	if i != n {
		t.Errorf("All yielded %d rows, Len %d", i, n)
	}
}
