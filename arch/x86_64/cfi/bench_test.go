package cfi

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// ehFrameOf reads the .eh_frame of the ELF file at path.
func ehFrameOf(b *testing.B, path string) ([]byte, uint64) {
	b.Helper()
	sec := openELF(b, path).Section(".eh_frame")
	if sec == nil {
		b.Fatalf("%s: no .eh_frame", path)
	}
	data, err := sec.Data()
	if err != nil {
		b.Fatal(err)
	}
	return data, sec.Addr
}

// BenchmarkBuild parses an .eh_frame already in memory into a Table, and
// reports the table's rows and bytes.
func BenchmarkBuild(b *testing.B) {
	for _, c := range []struct{ name, path string }{{"libc", libc}, {"ls", "/usr/bin/ls"}} {
		b.Run(c.name, func(b *testing.B) {
			if c.name == "libc" {
				libcPath(b)
			}
			data, addr := ehFrameOf(b, c.path)
			b.ReportAllocs()
			var tab *Table
			for b.Loop() {
				var err error
				if tab, err = Parse(data, addr); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(tab.Stats().FDEs), "FDEs")
			b.ReportMetric(float64(tab.Len()), "rows")
			b.ReportMetric(float64(tab.Size()), "table-B")
			b.ReportMetric(float64(tab.Size())/float64(tab.Len()), "B/row")
		})
	}
}

// BenchmarkLookup looks up pcs spread over libc's FDEs, beside the
// baseline: slices.BinarySearch over the same rows' starts as a []uint64,
// which finds the row and no more.
func BenchmarkLookup(b *testing.B) {
	data, addr := ehFrameOf(b, libcPath(b))
	tab, err := Parse(data, addr)
	if err != nil {
		b.Fatal(err)
	}
	starts := make([]uint64, 0, tab.Len())
	var covered []int // rows with a rule
	for r := range tab.All() {
		if r.Rule.CFA != 0 {
			covered = append(covered, len(starts))
		}
		starts = append(starts, r.Start)
	}
	// 4096 pcs: a random row with a rule, a random pc in it.
	rng := rand.New(rand.NewPCG(1, 2))
	pcs := make([]uint64, 4096)
	for i := range pcs {
		j := covered[rng.IntN(len(covered))]
		pcs[i] = starts[j] + rng.Uint64N(starts[j+1]-starts[j])
	}
	b.Run("table", func(b *testing.B) {
		b.ReportAllocs()
		i, n := 0, 0
		for b.Loop() {
			if _, ok := tab.Lookup(pcs[i&4095]); ok {
				n++
			}
			i++
		}
		if n != i {
			b.Fatalf("%d of %d lookups found no rule", i-n, i)
		}
	})
	b.Run("baseline", func(b *testing.B) {
		b.ReportAllocs()
		i, n := 0, 0
		for b.Loop() {
			j, found := slices.BinarySearch(starts, pcs[i&4095])
			if !found {
				j--
			}
			n += j
			i++
		}
		if n < 0 {
			b.Fatal("no row")
		}
	})
}
