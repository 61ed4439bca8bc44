package sframe

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/unwindd/unwindd/arch/x86_64"
)

// FuzzParse parses any bytes as a section. A refusal must be a *FormatError
// within the data; an accepted section must look every pc up without
// panicking and agree with its own rows.
func FuzzParse(f *testing.F) {
	for _, tc := range fixtures {
		fx := loadFixture(f, tc.name)
		f.Add(fx.data, fx.addr)
	}
	for _, s := range fuzzSeeds() {
		f.Add(s.bytes(), s.addr)
	}
	f.Add([]byte{0xe2, 0xde, 3, 5, 3, 0, 0xf8, 0}, uint64(0))

	f.Fuzz(func(t *testing.T, data []byte, addr uint64) {
		s, err := Parse(data, addr)
		if err != nil {
			var fe *FormatError
			switch {
			case s != nil:
				t.Fatalf("Parse returned a section and %v", err)
			case !errors.As(err, &fe):
				t.Fatalf("error %v is not a *FormatError", err)
			case fe.Offset < 0 || fe.Offset > int64(len(data)):
				t.Fatalf("error %v: offset outside the %d bytes", err, len(data))
			case !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported):
				t.Fatalf("error %v wraps neither ErrMalformed nor ErrUnsupported", err)
			}
			return
		}
		check := func(pc uint64) (x86_64.Rule, bool) {
			r, ok := s.Lookup(pc)
			if ok && (r.CFA == x86_64.CFAUndefined || r.RA == x86_64.RegSame) {
				t.Fatalf("Lookup(%#x) = %v: ok without a CFA or return address rule", pc, r)
			}
			if !ok && r != (x86_64.Rule{}) {
				t.Fatalf("Lookup(%#x) = %v, not ok but not zero", pc, r)
			}
			return r, ok
		}
		rows := 0
		for i := range s.NumFDEs() {
			fn := s.Func(i)
			rows += fn.NumRows
			end := fn.Start + uint64(fn.Size)
			for _, pc := range []uint64{fn.Start - 1, fn.Start, end - 1, end} {
				check(pc)
			}
			if i > 0 && fn.Start < s.Func(i-1).Start+uint64(s.Func(i-1).Size) {
				t.Fatalf("Func(%d) at %#x overlaps Func(%d)", i, fn.Start, i-1)
			}
		}
		seen := 0
		var prev Row
		var prevFn Func
		for fn, r := range s.Rows {
			limit := uint64(fn.Size)
			if fn.PCMask {
				limit = uint64(fn.RepSize)
			}
			if r.Start > r.End || r.End > limit || (r.Start == r.End && r.Start != limit) {
				t.Fatalf("%+v: row [%#x, %#x) outside [0, %#x)", fn, r.Start, r.End, limit)
			}
			if seen > 0 && prevFn == fn && prev.End != r.Start {
				t.Fatalf("%+v: row at %#x after a row ending at %#x", fn, r.Start, prev.End)
			}
			if r.OK != (r.Rule != x86_64.Rule{}) {
				t.Fatalf("%+v: row %+v: OK %v with rule %v", fn, r, r.OK, r.Rule)
			}
			if r.Start < r.End && r.Start < uint64(fn.Size) {
				pc := fn.Start + r.Start
				if got, ok := check(pc); got != r.Rule || ok != r.OK {
					t.Fatalf("Lookup(%#x) = %v, %v; its row says %v, %v", pc, got, ok, r.Rule, r.OK)
				}
			}
			prev, prevFn = r, fn
			seen++
		}
		if seen != rows {
			t.Fatalf("Rows gave %d rows, the FDEs count %d", seen, rows)
		}
		// pcs taken from the data itself, and the edges.
		for i := 0; i+8 <= len(data) && i < 512; i += 8 {
			check(binary.LittleEndian.Uint64(data[i:]))
			check(addr + binary.LittleEndian.Uint64(data[i:])&0xffff)
		}
		for _, pc := range []uint64{0, addr, 1 << 63, ^uint64(0)} {
			check(pc)
		}
	})
}

// fuzzSeeds are synthetic sections with what the fixtures lack.
func fuzzSeeds() []synth {
	row := func(start uint32, sp bool, wsize int, words ...int) synRow {
		return synRow{start: start, sp: sp, wsize: wsize, words: words}
	}
	return []synth{
		{version: 2, fixedFP: -16, fixedRA: -8, aux: 3, funcs: []synFunc{
			{start: 0x1000, size: 16, rows: []synRow{row(0, true, 1, 8), row(4, false, 2, 16)}},
			{start: 0x1010, size: 64, mask: true, rep: 16, rows: []synRow{row(0, true, 1, 8), row(11, true, 1, 16)}},
		}},
		{version: 2, flags: flagSorted, funcs: []synFunc{
			{start: 0x1000, size: 0x20000, freType: 2, rows: []synRow{row(0, true, 4, 8, -8, -16), row(0x10000, true, 1, 16, 0, -16), row(0x10001, true, 1)}},
		}},
		{version: 3, flags: flagSorted | flagPCRel, fixedRA: -8, addr: 0x3000, funcs: []synFunc{
			{start: 0x1000, size: 16, flex: true, signal: true, rows: []synRow{
				row(0, false, 2, ctl(regSP, true, true), 160, ctl(regSP, true, true), 168, ctl(regSP, true, true), 120),
				row(1, false, 1, ctl(10, false, true), 0, 0, ctl(regBP, true, true), 0),
				row(2, false, 1),
			}},
		}},
	}
}
