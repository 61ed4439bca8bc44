package cfi

import (
	"encoding/binary"
	"strings"
)

// Hand assembly of .eh_frame sections for the tests: the bytes gcc and ld
// would write, built field by field.

// testAddr is where test sections are loaded.
const testAddr = 0x2000

// testCIE is a CIE as gcc writes them: version 1, "zR" with pc-relative
// sdata4 pointers (0x1b), code alignment 1, data alignment -8, return
// address column 16, and the initial instructions "def_cfa rsp+8; rip at
// cfa-8" unless init says otherwise.
type testCIE struct {
	aug  string // default "zR"
	init []byte // default def_cfa rsp 8; offset r16 -8
}

// testFDE is an FDE of the CIE before it: pcs [begin, begin+size) and its
// instructions.
type testFDE struct {
	begin, size uint64
	ins         []byte
}

var defaultInit = []byte{cfaDefCFA, regRSP, 8, cfaOffset | regRA, 1}

// section lays out CIEs and FDEs at testAddr: each FDE points at the last
// CIE before it.
type sectionAsm struct{ b []byte }

func (s *sectionAsm) entry(id uint32, body []byte) int {
	// No padding to 8 bytes, which gcc adds as nops: an instruction
	// then ends exactly where its entry does.
	off := len(s.b)
	s.b = binary.LittleEndian.AppendUint32(s.b, uint32(4+len(body)))
	s.b = binary.LittleEndian.AppendUint32(s.b, id)
	s.b = append(s.b, body...)
	return off
}

func (s *sectionAsm) cie(c testCIE) int {
	aug := c.aug
	if aug == "" {
		aug = "zR"
	}
	init := c.init
	if init == nil {
		init = defaultInit
	}
	body := []byte{1}
	body = append(body, aug...)
	body = append(body, 0, 1, 0x78, regRA) // caf 1, daf -8 (sleb 0x78), ra 16
	if strings.HasPrefix(aug, "z") {
		var data []byte
		for _, ch := range aug[1:] {
			switch ch {
			case 'R':
				data = append(data, peSdata4|pePcrel)
			case 'P':
				data = append(data, peSdata4|pePcrel|peIndirect, 0, 0, 0, 0)
			case 'L':
				data = append(data, peSdata4|pePcrel)
			}
		}
		body = append(body, byte(len(data)))
		body = append(body, data...)
	}
	body = append(body, init...)
	return s.entry(0, body)
}

// fde appends an FDE for the CIE at cieOff: pc-relative sdata4 pointers
// when the CIE has 'R', absolute ones otherwise, then aug, its
// augmentation data.
func (s *sectionAsm) fde(cieOff int, f testFDE, pcrel bool, aug []byte) int {
	off := len(s.b)
	field := uint64(testAddr + off + 8) // address of pc_begin
	var body []byte
	if pcrel {
		body = binary.LittleEndian.AppendUint32(body, uint32(f.begin-field))
		body = binary.LittleEndian.AppendUint32(body, uint32(f.size))
	} else {
		body = binary.LittleEndian.AppendUint64(body, f.begin)
		body = binary.LittleEndian.AppendUint64(body, f.size)
	}
	body = append(body, aug...)
	body = append(body, f.ins...)
	return s.entry(uint32(off+4-cieOff), body)
}

// ehFrame is one CIE and its FDEs.
func ehFrame(c testCIE, fdes ...testFDE) []byte {
	var s sectionAsm
	ci := s.cie(c)
	aug, pcrel := []byte{}, c.aug == "" || strings.Contains(c.aug, "R")
	if strings.HasPrefix(c.aug, "z") || c.aug == "" {
		aug = []byte{0}
	}
	for _, f := range fdes {
		s.fde(ci, f, pcrel, aug)
	}
	return s.b
}

// Instruction encoders.

func uleb(v uint64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func sleb(v int64) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func op(code byte, operands ...[]byte) []byte { return cat(append([][]byte{{code}}, operands...)...) }

func advance(d uint8) []byte { return []byte{cfaAdvanceLoc | d} }

func defCFA(reg uint64, off uint64) []byte { return op(cfaDefCFA, uleb(reg), uleb(off)) }

func defCFAOffset(off uint64) []byte { return op(cfaDefCFAOffset, uleb(off)) }

func offsetReg(reg uint8, factored uint64) []byte { return op(cfaOffset|reg, uleb(factored)) }

// block is a DWARF expression with its uleb length, as the *expression
// instructions take it.
func block(ops ...[]byte) []byte {
	e := cat(ops...)
	return cat(uleb(uint64(len(e))), e)
}

func breg(reg uint8, off int64) []byte { return op(opBreg0+reg, sleb(off)) }

// pltExpr is ld's lazy .plt CFA expression with threshold lit.
func pltExpr(lit uint8) []byte {
	return block(breg(regRSP, 8), breg(regRA, 0), []byte{opLit0 + 15, opAnd, opLit0 + lit, opGe, opLit0 + 3, opShl, opPlus})
}
