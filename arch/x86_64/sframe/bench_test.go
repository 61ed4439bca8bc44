package sframe

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// benchPCs are n pcs spread over the functions of s, in random order, so
// that lookups do not all hit the same cache lines.
func benchPCs(s *Section, n int) []uint64 {
	rng := rand.New(rand.NewPCG(1, 2))
	pcs := make([]uint64, n)
	for i := range pcs {
		f := s.Func(rng.IntN(s.NumFDEs()))
		pcs[i] = f.Start + rng.Uint64N(uint64(f.Size))
	}
	return pcs
}

// bigSection is a v3 section of n functions of 64 bytes, each with a
// prologue, a body and an epilogue row, as a -O2 build of a large program
// has.
func bigSection(n int) synth {
	s := synth{version: 3, flags: flagSorted | flagPCRel, fixedRA: -8, addr: 0x100_0000}
	row := func(start uint32, words ...int) synRow {
		return synRow{start: start, sp: true, wsize: 1, words: words}
	}
	for i := range n {
		s.funcs = append(s.funcs, synFunc{start: 0x1000 + uint64(i)*64, size: 60, rows: []synRow{
			row(0, 8), row(1, 16, -16), row(4, 48, -16), row(50, 16, -16), row(51, 8),
		}})
	}
	return s
}

// BenchmarkLookup looks pcs up in each fixture and in a section of 10,000
// functions ("lookup"), beside the baseline: a binary search of the same
// function start addresses with slices.BinarySearch, which finds the
// function but not its row ("baseline").
func BenchmarkLookup(b *testing.B) {
	type input struct {
		name string
		s    *Section
	}
	var inputs []input
	for _, tc := range fixtures {
		inputs = append(inputs, input{tc.name, loadFixture(b, tc.name).sec})
	}
	big := bigSection(10000)
	s, err := Parse(big.bytes(), big.addr)
	if err != nil {
		b.Fatal(err)
	}
	inputs = append(inputs, input{"10000-funcs", s})

	for _, in := range inputs {
		pcs := benchPCs(in.s, 4096)
		b.Run(in.name+"/lookup", func(b *testing.B) {
			b.ReportAllocs()
			i, found := 0, 0
			for b.Loop() {
				if _, ok := in.s.Lookup(pcs[i&4095]); ok {
					found++
				}
				i++
			}
			if found == 0 {
				b.Fatal("no pc found")
			}
		})
		b.Run(in.name+"/baseline", func(b *testing.B) {
			b.ReportAllocs()
			i, found := 0, 0
			for b.Loop() {
				if _, ok := slices.BinarySearch(in.s.starts, pcs[i&4095]); ok {
					found++
				}
				i++
			}
			_ = found
		})
	}
}

// TestLookupAllocs holds Lookup to no allocation.
func TestLookupAllocs(t *testing.T) {
	s := loadFixture(t, "prog.v3").sec
	pcs := benchPCs(s, 256)
	if n := testing.AllocsPerRun(100, func() {
		for _, pc := range pcs {
			s.Lookup(pc)
		}
	}); n != 0 {
		t.Errorf("Lookup allocates %v times per 256 calls", n)
	}
}
