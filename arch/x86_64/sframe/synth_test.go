package sframe

import (
	"encoding/binary"
	"testing"

	"github.com/unwindd/unwindd/arch/x86_64"
)

// synth builds an SFrame section, for what no assembler here writes: fixed
// FP offsets, tracked RA offsets, 4-byte FRE start offsets, auxiliary
// headers, v3 without PCREL, and flexible rows other than DRAP's.
type synth struct {
	version          byte
	flags            byte
	fixedFP, fixedRA int8
	aux              int // bytes of auxiliary header
	addr             uint64
	funcs            []synFunc
}

type synFunc struct {
	start        uint64 // absolute
	size         uint32
	freType      byte // 0, 1, 2: 1-, 2-, 4-byte start offsets
	rep          byte // a PC-mask function's block size; 0 for PC-increment
	mask         bool
	flex, signal bool
	rows         []synRow
}

type synRow struct {
	start uint32
	sp    bool  // default FDEs: CFA from sp, else from bp
	wsize int   // 1, 2 or 4
	words []int // data words; control words are small and positive
}

// ctl is a flexible FDE's control word.
func ctl(reg int, deref, regP bool) int {
	w := reg << 3
	if deref {
		w |= 2
	}
	if regP {
		w |= 1
	}
	return w
}

func (s synth) bytes() []byte {
	le := binary.LittleEndian
	hdrEnd := headerSize + s.aux
	size := int(fdeSize[s.version])
	var fres []byte
	fdes := make([]byte, len(s.funcs)*size)
	nfres := 0
	for i, f := range s.funcs {
		fdeOff := hdrEnd + i*size
		field := int64(f.start - s.addr)
		if s.flags&flagPCRel != 0 {
			field -= int64(fdeOff)
		}
		info := f.freType
		if f.mask {
			info |= 0x10
		}
		if f.signal {
			info |= 0x80
		}
		d := fdes[i*size:]
		switch s.version {
		case 1, 2:
			le.PutUint32(d, uint32(int32(field)))
			le.PutUint32(d[4:], f.size)
			le.PutUint32(d[8:], uint32(len(fres)))
			le.PutUint32(d[12:], uint32(len(f.rows)))
			d[16] = info
			if s.version == 2 {
				d[17] = f.rep
			}
		case 3:
			le.PutUint64(d, uint64(field))
			le.PutUint32(d[8:], f.size)
			le.PutUint32(d[12:], uint32(len(fres)))
			var info2 byte
			if f.flex {
				info2 = fdeTypeFlex
			}
			fres = le.AppendUint16(fres, uint16(len(f.rows)))
			fres = append(fres, info, info2, f.rep)
		}
		for _, r := range f.rows {
			switch f.freType {
			case 0:
				fres = append(fres, byte(r.start))
			case 1:
				fres = le.AppendUint16(fres, uint16(r.start))
			default:
				fres = le.AppendUint32(fres, r.start)
			}
			ri := byte(len(r.words)) << 1
			if r.sp {
				ri |= 1
			}
			switch r.wsize {
			case 2:
				ri |= 1 << 5
			case 4:
				ri |= 2 << 5
			}
			fres = append(fres, ri)
			for _, w := range r.words {
				switch r.wsize {
				case 1:
					fres = append(fres, byte(w))
				case 2:
					fres = le.AppendUint16(fres, uint16(w))
				default:
					fres = le.AppendUint32(fres, uint32(w))
				}
			}
			nfres++
		}
	}
	out := make([]byte, hdrEnd)
	le.PutUint16(out, magic)
	out[2], out[3], out[4] = s.version, s.flags, abiAMD64LE
	out[5], out[6], out[7] = byte(s.fixedFP), byte(s.fixedRA), byte(s.aux)
	le.PutUint32(out[8:], uint32(len(s.funcs)))
	le.PutUint32(out[12:], uint32(nfres))
	le.PutUint32(out[16:], uint32(len(fres)))
	le.PutUint32(out[20:], 0)
	le.PutUint32(out[24:], uint32(len(fdes)))
	for i := headerSize; i < hdrEnd; i++ {
		out[i] = 0xaa // auxiliary header: skipped
	}
	return append(append(out, fdes...), fres...)
}

// TestSynthetic parses built sections and looks pcs up in them.
func TestSynthetic(t *testing.T) {
	const base = 0x40_1000
	row := func(start uint32, sp bool, words ...int) synRow {
		return synRow{start: start, sp: sp, wsize: 1, words: words}
	}
	wide := func(r synRow, size int) synRow { r.wsize = size; return r }
	sp := func(off int32) x86_64.Rule { return spRule(off) }
	type lookup struct {
		pc   uint64
		want x86_64.Rule
		ok   bool
	}
	tests := []struct {
		name    string
		s       synth
		lookups []lookup
	}{
		{"no FDEs", synth{version: 2, flags: flagSorted}, []lookup{{0, noRule, false}, {base, noRule, false}}},
		{"fixed FP offset", synth{version: 2, fixedFP: -16, fixedRA: -8, addr: 0x2000, funcs: []synFunc{
			{start: base, size: 16, rows: []synRow{row(0, true, 8), row(4, false, 16)}},
		}}, []lookup{
			{base, withFP(sp(8), x86_64.RegAtCFA, -16), true},
			{base + 4, bp16, true},
		}},
		{"RA in the rows", synth{version: 2, flags: flagSorted, aux: 5, funcs: []synFunc{
			// CFA only: RA not tracked; CFA, RA; CFA, RA, FP; RA
			// padding (0) with FP.
			{start: base, size: 16, rows: []synRow{row(0, true, 8), row(1, true, 16, -8), row(2, true, 16, -8, -16), row(3, true, 16, 0, -16)}},
		}}, []lookup{
			{base, noRule, false},
			{base + 1, sp(16), true},
			{base + 2, withFP(sp(16), x86_64.RegAtCFA, -16), true},
			{base + 3, noRule, false},
		}},
		{"4-byte start offsets", synth{version: 1, fixedRA: -8, funcs: []synFunc{
			{start: base, size: 0x20000, freType: 2, rows: []synRow{row(0, true, 8), wide(row(0x10000, true, 0x1000), 2), wide(row(0x1ffff, true, 0x12345), 4)}},
		}}, []lookup{
			{base + 0xffff, sp(8), true},
			{base + 0x10000, sp(0x1000), true},
			{base + 0x1fffe, sp(0x1000), true},
			{base + 0x1ffff, sp(0x12345), true},
			{base + 0x20000, noRule, false},
		}},
		// gas 2.40 to 2.47 write a row at the function's end for CFI
		// after its last instruction (".cfi_def_cfa_offset 16" after
		// "ret"): it covers nothing.
		{"row at the function end", synth{version: 2, fixedRA: -8, funcs: []synFunc{
			{start: base, size: 3, rows: []synRow{row(0, true, 8), row(1, true, 16), row(2, true, 8), row(3, true, 16)}},
			{start: base + 3, size: 2, rows: []synRow{row(0, true, 8)}},
		}}, []lookup{
			{base + 2, sp(8), true},
			{base + 3, sp(8), true},
			{base + 5, noRule, false},
		}},
		{"v1 PC mask", synth{version: 1, fixedRA: -8, funcs: []synFunc{
			{start: base, size: 64, mask: true, rows: []synRow{row(0, true, 8), row(11, true, 16)}},
		}}, []lookup{
			{base + 16 + 10, sp(8), true}, // v1 blocks are 16 bytes
			{base + 48 + 11, sp(16), true},
			{base + 64, noRule, false},
		}},
		{"v3 without PCREL", synth{version: 3, flags: flagSorted, fixedRA: -8, addr: 0x8000, funcs: []synFunc{
			{start: base, size: 4, rows: []synRow{row(0, true, 8)}},
			{start: base + 8, size: 8, mask: true, rep: 4, rows: []synRow{row(2, true, 16)}},
		}}, []lookup{
			{base + 3, sp(8), true},
			{base + 4, noRule, false},
			{base + 9, noRule, false}, // before the block's first row
			{base + 10, sp(16), true},
			{base + 13, noRule, false},
			{base + 15, sp(16), true},
		}},
		{"v2 RA undefined", synth{version: 2, flags: flagSorted | flagPCRel, fixedRA: -8, addr: base + 0x1000, funcs: []synFunc{
			{start: base, size: 8, rows: []synRow{row(0, true)}},
		}}, []lookup{{base + 7, outerOne, true}}},
		{"no rows", synth{version: 3, flags: flagPCRel, fixedRA: -8, funcs: []synFunc{
			{start: base, size: 8},
		}}, []lookup{{base, noRule, false}}},
		{"v3 flexible", synth{version: 3, flags: flagSorted | flagPCRel, fixedRA: -8, funcs: []synFunc{
			{start: base, size: 16, flex: true, signal: true, rows: []synRow{
				// A signal frame as glibc's CFI gives it:
				// CFA = *(sp+160), RA = *(sp+168), rbp = *(sp+120).
				wide(row(0, false, ctl(regSP, true, true), 160, ctl(regSP, true, true), 168, ctl(regSP, true, true), 120), 2),
				// rbp = rbp+0: unchanged; RA from the header.
				row(1, false, ctl(regSP, false, true), 8, 0, ctl(regBP, false, true), 0),
				// RA in a register: not a Rule.
				row(2, false, ctl(regSP, false, true), 8, ctl(16, false, true), 0),
				// rbp = CFA-16, a value, not a saved word.
				row(3, false, ctl(regSP, false, true), 8, 0, ctl(0, false, false)|8, -16),
				// rbp at *(CFA-16), in 4-byte words.
				wide(row(4, false, ctl(regBP, false, true), 16, 0, ctl(0, true, false), -16), 4),
				// rbp = *(rbp+8)? A saved word at rbp+8: RegAtBP.
				row(5, false, ctl(regBP, false, true), 16, ctl(0, true, false), -8, ctl(regBP, true, true), 8),
				// CFA = *(sp+0) with the RA at *(CFA-8) given
				// explicitly.
				row(6, false, ctl(regSP, true, true), 0),
			}},
		}}, []lookup{
			{base, x86_64.Rule{CFA: x86_64.CFADerefSP, CFAOffset: 160, RA: x86_64.RegAtSP, RAOffset: 168, FP: x86_64.RegAtSP, FPOffset: 120, Signal: true}, true},
			{base + 1, func() x86_64.Rule { r := sp(8); r.Signal = true; return r }(), true},
			{base + 2, noRule, false},
			{base + 3, noRule, false},
			{base + 4, func() x86_64.Rule { r := bp16; r.Signal = true; return r }(), true},
			{base + 5, x86_64.Rule{CFA: x86_64.CFABP, CFAOffset: 16, RA: x86_64.RegAtCFA, RAOffset: -8, FP: x86_64.RegAtBP, FPOffset: 8, Signal: true}, true},
			{base + 6, x86_64.Rule{CFA: x86_64.CFADerefSP, RA: x86_64.RegAtCFA, RAOffset: -8, FP: x86_64.RegSame, Signal: true}, true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := tt.s.bytes()
			s, err := Parse(data, tt.s.addr)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if s.Version() != int(tt.s.version) || s.NumFDEs() != len(tt.s.funcs) {
				t.Errorf("version %d with %d FDEs, want %d with %d", s.Version(), s.NumFDEs(), tt.s.version, len(tt.s.funcs))
			}
			for i, f := range tt.s.funcs {
				if got := s.Func(i); got.Start != f.start || got.Size != f.size || got.Flex != f.flex || got.Signal != f.signal || got.NumRows != len(f.rows) {
					t.Errorf("Func(%d) = %+v, want %+v", i, got, f)
				}
			}
			for _, l := range tt.lookups {
				if r, ok := s.Lookup(l.pc); r != l.want || ok != l.ok {
					t.Errorf("Lookup(%#x) = %v, %v; want %v, %v", l.pc, r, ok, l.want, l.ok)
				}
			}
			checkEveryPC(t, s)
		})
	}
}
