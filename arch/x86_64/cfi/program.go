package cfi

import (
	"errors"
	"fmt"
	"math"

	"github.com/unwindd/unwindd/arch/x86_64"
)

// DWARF register numbers of x86-64 (System V psABI, figure 3.36) that the
// unwinder tracks: bp, sp, and the return address column.
const (
	regRBP = 6
	regRSP = 7
	regRA  = 16
)

// Call frame instructions (DWARF 5 §6.4.2, and GNU's).
const (
	cfaNop                     = 0x00
	cfaSetLoc                  = 0x01
	cfaAdvanceLoc1             = 0x02
	cfaAdvanceLoc2             = 0x03
	cfaAdvanceLoc4             = 0x04
	cfaOffsetExtended          = 0x05
	cfaRestoreExtended         = 0x06
	cfaUndefined               = 0x07
	cfaSameValue               = 0x08
	cfaRegister                = 0x09
	cfaRememberState           = 0x0a
	cfaRestoreState            = 0x0b
	cfaDefCFA                  = 0x0c
	cfaDefCFARegister          = 0x0d
	cfaDefCFAOffset            = 0x0e
	cfaDefCFAExpression        = 0x0f
	cfaExpression              = 0x10
	cfaOffsetExtendedSF        = 0x11
	cfaDefCFASF                = 0x12
	cfaDefCFAOffsetSF          = 0x13
	cfaValOffset               = 0x14
	cfaValOffsetSF             = 0x15
	cfaValExpression           = 0x16
	cfaGNUArgsSize             = 0x2e
	cfaGNUNegativeOffsetExtend = 0x2f
	cfaAdvanceLoc              = 0x40 // high two bits; the delta in the low six
	cfaOffset                  = 0x80 // high two bits; the register in the low six
	cfaRestore                 = 0xc0 // high two bits; the register in the low six
)

// DWARF expression operations the recognized expressions use.
const (
	opDeref = 0x06
	opAnd   = 0x1a
	opPlus  = 0x22
	opShl   = 0x24
	opGe    = 0x2a
	opLit0  = 0x30
	opBreg0 = 0x70
)

// maxRemembered bounds DW_CFA_remember_state nesting; gcc nests one deep.
const maxRemembered = 64

type cfaKind uint8

const (
	cfaRegOff  cfaKind = iota // reg + off: what DW_CFA_def_cfa and its kin say
	cfaExprSP                 // rsp + xoff, by an expression
	cfaExprBP                 // rbp + xoff, by an expression
	cfaDerefSP                // *(rsp + xoff)
	cfaDerefBP                // *(rbp + xoff)
	cfaPLT                    // the .plt expression: rsp + xoff, + 8 past the push
	cfaPLTIBT                 // the same in an IBT .plt (the push is 4 bytes later)
	cfaBad                    // an expression the unwinder cannot follow
)

// noReg is the CFA register before any instruction names one.
const noReg = math.MaxUint64

// cfaRule is the CFA rule as libgcc and readelf keep it: the register and
// offset of DW_CFA_def_cfa stay behind an expression, so that
// DW_CFA_def_cfa_register after DW_CFA_def_cfa_expression (hand-written
// assembly in libgcrypt does that) gives the register plus the last offset,
// and DW_CFA_def_cfa_offset under an expression changes nothing yet.
type cfaRule struct {
	kind cfaKind
	reg  uint64 // cfaRegOff's register
	off  int64  // cfaRegOff's offset
	xoff int64  // an expression's offset
}

type regKind uint8

const (
	regUnset  regKind = iota // not mentioned: rbp and rsp are then unchanged, the return address unknown
	regSame                  // DW_CFA_same_value
	regUndef                 // DW_CFA_undefined
	regAtCFA                 // saved at CFA + off
	regAtSP                  // saved at rsp + off (DW_OP_breg7)
	regAtBP                  // saved at rbp + off (DW_OP_breg6)
	regValCFA                // the value CFA + off (DW_CFA_val_offset)
	regBad                   // a rule the unwinder cannot follow
)

type regRule struct {
	kind regKind
	off  int64
}

// state is the row a CFA program has built so far, for the registers the
// unwinder tracks; the others' rules are read and dropped.
type state struct {
	cfa        cfaRule
	ra, fp, sp regRule
}

func (s *state) reg(n uint64) *regRule {
	switch n {
	case regRA:
		return &s.ra
	case regRBP:
		return &s.fp
	case regRSP:
		return &s.sp
	}
	return nil
}

// rule turns s into what the unwinder follows; ok is false when some part of
// s has no [x86_64.Rule] equivalent.
func (s *state) rule(signal bool) (r x86_64.Rule, ok bool) {
	c := s.cfa
	off := c.xoff
	switch {
	case c.kind == cfaRegOff && c.reg == regRSP:
		r.CFA, off = x86_64.CFASP, c.off
	case c.kind == cfaRegOff && c.reg == regRBP:
		r.CFA, off = x86_64.CFABP, c.off
	case c.kind == cfaExprSP:
		r.CFA = x86_64.CFASP
	case c.kind == cfaExprBP:
		r.CFA = x86_64.CFABP
	case c.kind == cfaDerefSP:
		r.CFA = x86_64.CFADerefSP
	case c.kind == cfaDerefBP:
		r.CFA = x86_64.CFADerefBP
	case c.kind == cfaPLT:
		r.CFA = x86_64.CFAPLT
	case c.kind == cfaPLTIBT:
		r.CFA = x86_64.CFAPLTIBT
	default:
		return r, false
	}
	if r.CFAOffset, ok = int32Of(off); !ok {
		return r, false
	}
	r.Signal = signal
	// The caller's sp is the CFA. A rule for rsp must say the same, as
	// __restore_rt's "rsp at *(rsp+160)" beside "CFA = *(rsp+160)" does;
	// any other (rsp kept in another register: getcontext) cannot be
	// followed.
	switch sp := s.sp; sp.kind {
	case regUnset, regSame:
	case regValCFA:
		if sp.off != 0 {
			return r, false
		}
	case regAtSP:
		if c.kind != cfaDerefSP || sp.off != c.xoff {
			return r, false
		}
	case regAtBP:
		if c.kind != cfaDerefBP || sp.off != c.xoff {
			return r, false
		}
	default:
		return r, false
	}
	if r.RA, r.RAOffset, ok = regOf(s.ra, false); !ok {
		return r, false
	}
	if r.FP, r.FPOffset, ok = regOf(s.fp, true); !ok {
		return r, false
	}
	return r, true
}

// regOf converts a register rule. An unmentioned or same-value register is
// unchanged, which holds for bp but makes no return address.
func regOf(g regRule, bp bool) (x86_64.RegKind, int32, bool) {
	off, ok := int32Of(g.off)
	if !ok {
		return 0, 0, false
	}
	switch g.kind {
	case regUnset, regSame:
		return x86_64.RegSame, 0, bp
	case regUndef:
		return x86_64.RegUndefined, 0, true
	case regAtCFA:
		return x86_64.RegAtCFA, off, true
	case regAtSP:
		return x86_64.RegAtSP, off, true
	case regAtBP:
		return x86_64.RegAtBP, off, true
	}
	return 0, 0, false
}

func int32Of(v int64) (int32, bool) {
	return int32(v), v >= math.MinInt32 && v <= math.MaxInt32
}

// factored multiplies an operand by an alignment factor; a product that
// would overflow is bad.
func factored(n, factor int64) (int64, bool) {
	const lim = 1 << 31
	if n <= -lim || n >= lim || factor <= -lim || factor >= lim {
		return 0, false
	}
	return n * factor, true
}

// errStop is why a program stopped: the instruction at fault is named by
// the error wrapping it.
var errStop = errors.New("undecodable instruction")

// machine runs CFA programs. Its remember stack is reused across FDEs.
type machine struct {
	st      state
	initial *state // DW_CFA_restore's rules: the CIE's initial state
	c       *cie
	stack   []state
	loc     uint64
	end     uint64
	inCIE   bool // running a CIE's initial instructions: no rows, no location changes

	// row is called with each row's start and state as the location moves
	// past it (not for a CIE).
	row func(start uint64, st *state)
}

// run executes ins (loaded at insAddr). It returns nil at the end of ins or
// once the location reaches m.end, and an error at an instruction it cannot
// decode, with m.st unchanged since the last complete instruction.
func (m *machine) run(ins []byte, insAddr uint64) error {
	r := reader{b: ins}
	for r.left() > 0 {
		at := r.off
		if err := m.step(&r, insAddr); err != nil {
			return fmt.Errorf("%w at +%#x: %v", errStop, at, err)
		}
		if !m.inCIE && m.loc >= m.end {
			return nil
		}
	}
	return nil
}

// advance moves the location to loc, emitting the row that ends there.
func (m *machine) advance(loc uint64) error {
	if m.inCIE {
		return errors.New("location change in a CIE's initial instructions")
	}
	if loc < m.loc {
		return fmt.Errorf("location %#x moves back from %#x", loc, m.loc)
	}
	if loc > m.loc {
		m.row(m.loc, &m.st)
		m.loc = min(loc, m.end)
	}
	return nil
}

func (m *machine) delta(d uint64) error {
	loc := m.loc + d*m.c.caf
	if m.c.caf != 0 && (d > math.MaxUint64/m.c.caf || loc < m.loc) {
		loc = math.MaxUint64
	}
	return m.advance(loc)
}

// step executes one instruction.
func (m *machine) step(r *reader, insAddr uint64) error {
	op := r.u8()
	st := &m.st
	switch op & 0xc0 {
	case cfaAdvanceLoc:
		return m.delta(uint64(op & 0x3f))
	case cfaOffset:
		return m.offset(uint64(op&0x3f), r.ulebInt(), r)
	case cfaRestore:
		m.restore(uint64(op & 0x3f))
		return nil
	}
	switch op {
	case cfaNop:
	case cfaSetLoc:
		loc, ok := r.pointer(m.c.fdeEnc, insAddr)
		if r.bad {
			break
		}
		if !ok {
			return fmt.Errorf("DW_CFA_set_loc with pointer encoding %#x", m.c.fdeEnc)
		}
		return m.advance(loc)
	case cfaAdvanceLoc1:
		d := r.u8()
		if !r.bad {
			return m.delta(uint64(d))
		}
	case cfaAdvanceLoc2:
		d := r.u16()
		if !r.bad {
			return m.delta(uint64(d))
		}
	case cfaAdvanceLoc4:
		d := r.u32()
		if !r.bad {
			return m.delta(uint64(d))
		}
	case cfaOffsetExtended:
		reg := r.uleb()
		return m.offset(reg, r.ulebInt(), r)
	case cfaOffsetExtendedSF:
		reg := r.uleb()
		return m.offset(reg, r.sleb(), r)
	case cfaGNUNegativeOffsetExtend:
		reg := r.uleb()
		return m.offset(reg, -r.ulebInt(), r)
	case cfaValOffset, cfaValOffsetSF:
		reg := r.uleb()
		var n int64
		if op == cfaValOffset {
			n = r.ulebInt()
		} else {
			n = r.sleb()
		}
		if g := st.reg(reg); g != nil && !r.bad {
			off, ok := factored(n, m.c.daf)
			*g = regRule{kind: regValCFA, off: off}
			if !ok {
				*g = regRule{kind: regBad}
			}
		}
	case cfaRestoreExtended:
		reg := r.uleb()
		if !r.bad {
			m.restore(reg)
		}
	case cfaUndefined, cfaSameValue:
		reg := r.uleb()
		if g := st.reg(reg); g != nil && !r.bad {
			*g = regRule{kind: regUndef}
			if op == cfaSameValue {
				*g = regRule{kind: regSame}
			}
		}
	case cfaRegister:
		reg, from := r.uleb(), r.uleb()
		if g := st.reg(reg); g != nil && !r.bad {
			// Kept in a register the unwinder does not track
			// (rip in rdx around vfork's syscall), or in itself.
			*g = regRule{kind: regBad}
			if from == reg {
				*g = regRule{kind: regSame}
			}
		}
	case cfaRememberState:
		if len(m.stack) >= maxRemembered {
			return fmt.Errorf("DW_CFA_remember_state nested deeper than %d", maxRemembered)
		}
		m.stack = append(m.stack, *st)
	case cfaRestoreState:
		if len(m.stack) == 0 {
			return errors.New("DW_CFA_restore_state with no state remembered")
		}
		// The CFA rule comes back too, as gcc expects and as libgcc
		// and readelf do.
		*st = m.stack[len(m.stack)-1]
		m.stack = m.stack[:len(m.stack)-1]
	case cfaDefCFA, cfaDefCFASF:
		reg := r.uleb()
		off, ok := int64(0), true
		if op == cfaDefCFA {
			off = r.ulebInt()
		} else {
			off, ok = factored(r.sleb(), m.c.daf)
		}
		st.cfa.kind, st.cfa.reg, st.cfa.off = cfaRegOff, reg, off
		if !ok {
			st.cfa.off = math.MaxInt64 // more than a Rule holds
		}
	case cfaDefCFARegister:
		st.cfa.kind, st.cfa.reg = cfaRegOff, r.uleb()
	case cfaDefCFAOffset, cfaDefCFAOffsetSF:
		off, ok := int64(0), true
		if op == cfaDefCFAOffset {
			off = r.ulebInt()
		} else {
			off, ok = factored(r.sleb(), m.c.daf)
		}
		st.cfa.off = off
		if !ok {
			st.cfa.off = math.MaxInt64
		}
	case cfaDefCFAExpression:
		block := r.take(r.uleb())
		if !r.bad {
			st.cfa.kind, st.cfa.xoff = cfaExpr(block)
		}
	case cfaExpression, cfaValExpression:
		reg := r.uleb()
		block := r.take(r.uleb())
		if g := st.reg(reg); g != nil && !r.bad {
			*g = regRule{kind: regBad}
			if op == cfaExpression {
				*g = regExpr(block)
			}
		}
	case cfaGNUArgsSize:
		r.uleb()
	default:
		return fmt.Errorf("unknown opcode %#x", op)
	}
	if r.bad {
		return fmt.Errorf("opcode %#x: operands past the end", op)
	}
	return nil
}

// offset applies DW_CFA_offset and its extended forms: reg saved at
// CFA + n*daf.
func (m *machine) offset(reg uint64, n int64, r *reader) error {
	if r.bad {
		return errors.New("offset operand past the end")
	}
	if g := m.st.reg(reg); g != nil {
		off, ok := factored(n, m.c.daf)
		*g = regRule{kind: regAtCFA, off: off}
		if !ok {
			*g = regRule{kind: regBad}
		}
	}
	return nil
}

// restore gives reg back the rule the CIE's initial instructions left.
func (m *machine) restore(reg uint64) {
	if g := m.st.reg(reg); g != nil {
		*g = *m.initial.reg(reg)
	}
}

// cfaExpr recognizes the CFA expressions gcc, binutils and glibc emit on
// x86-64: "breg7|breg6 off" (as def_cfa would say), "breg7|breg6 off;
// deref" (a signal frame; a DRAP-realigned function), and the lazy .plt
// entry's expression. Anything else is a rule the unwinder cannot follow.
func cfaExpr(b []byte) (cfaKind, int64) {
	r := reader{b: b}
	op := r.u8()
	off := r.sleb()
	if r.bad || op != opBreg0+regRSP && op != opBreg0+regRBP {
		return cfaBad, 0
	}
	sp := op == opBreg0+regRSP
	switch rest := b[r.off:]; {
	case len(rest) == 0 && sp:
		return cfaExprSP, off
	case len(rest) == 0:
		return cfaExprBP, off
	case string(rest) == string(rune(opDeref)) && sp:
		return cfaDerefSP, off
	case string(rest) == string(rune(opDeref)):
		return cfaDerefBP, off
	case string(rest) == pltTail && sp:
		return cfaPLT, off
	case string(rest) == pltTailIBT && sp:
		return cfaPLTIBT, off
	}
	return cfaBad, 0
}

// pltTail is what follows "DW_OP_breg7 (rsp) 8" in the CFA expression ld
// writes for a lazy 16-byte .plt entry: "+ 8 once (rip & 15) >= 11", the
// offset of the jmp after the entry's push ([x86_64.CFAPLT]). ld's IBT
// .plt compares with 9: endbr64 comes first, the push 4 bytes later
// ([x86_64.CFAPLTIBT], pltTailIBT). The MPX variant (5) is gone from
// binutils and gives no rule.
//
// The bytes: DW_OP_breg16 (rip) 0; DW_OP_lit15; DW_OP_and; DW_OP_lit11;
// DW_OP_ge; DW_OP_lit3; DW_OP_shl; DW_OP_plus.
const pltTail = "\x80\x00\x3f\x1a\x3b\x2a\x33\x24\x22"

// pltTailIBT is pltTail with DW_OP_lit9.
const pltTailIBT = "\x80\x00\x3f\x1a\x39\x2a\x33\x24\x22"

// regExpr recognizes a DW_CFA_expression that saves a register at a fixed
// offset from rsp (signal frames) or rbp (DRAP-realigned functions).
func regExpr(b []byte) regRule {
	r := reader{b: b}
	op := r.u8()
	off := r.sleb()
	switch {
	case r.bad || r.left() != 0:
	case op == opBreg0+regRSP:
		return regRule{kind: regAtSP, off: off}
	case op == opBreg0+regRBP:
		return regRule{kind: regAtBP, off: off}
	}
	return regRule{kind: regBad}
}
