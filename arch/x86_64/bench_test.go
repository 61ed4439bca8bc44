package x86_64

import (
	"encoding/binary"
	"slices"
	"testing"
)

// benchFrames is the depth of the benchmark stack: ip and 15 return
// addresses, then a record whose return address is zero.
const benchFrames = 16

// benchStack lays out the benchmark stack: 16 frame records.
func benchStack() (Regs, *Snapshot) {
	ras := make([]uint64, benchFrames)
	for i := range benchFrames - 1 {
		ras[i] = 0x40_2000 + uint64(i)*0x40
	}
	regs, s := chain(testBase, 0x40_1000, ras...)
	return regs, s.snapshot()
}

// baselineWalk is the least work that walks the benchmark stack: follow the
// saved-bp/return-address pairs out of the bytes, no checks but Go's bounds
// checks, until the zero return address.
func baselineWalk(data []byte, base uint64, regs Regs, pcs []uint64) []uint64 {
	pcs = append(pcs[:0], regs.IP)
	bp := regs.BP
	for {
		rec := data[bp-base:]
		ra := binary.LittleEndian.Uint64(rec[8:])
		if ra == 0 {
			return pcs
		}
		pcs = append(pcs, ra)
		bp = binary.LittleEndian.Uint64(rec)
	}
}

func BenchmarkUnwind(b *testing.B) {
	regs, snap := benchStack()
	u := mustNew(b, Options{})
	tr := new(Trace)
	u.Unwind(regs, snap, tr)
	want := tr.PCs(nil)
	if len(want) != benchFrames || tr.End != EndOutermost {
		b.Fatalf("walk = %#x %v, want %d frames, %v", want, tr.End, benchFrames, EndOutermost)
	}
	if got := baselineWalk(snap.Data, snap.Base, regs, nil); !slices.Equal(got, want) {
		b.Fatalf("baseline walk = %#x, want %#x", got, want)
	}
	reportFrames := func(b *testing.B) {
		b.ReportMetric(float64(benchFrames)*float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	}

	b.Run("fp", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			u.Unwind(regs, snap, tr)
		}
		reportFrames(b)
		if len(tr.Frames) != benchFrames {
			b.Fatalf("walk has %d frames, want %d", len(tr.Frames), benchFrames)
		}
	})
	b.Run("baseline", func(b *testing.B) {
		b.ReportAllocs()
		pcs := make([]uint64, 0, benchFrames)
		for b.Loop() {
			pcs = baselineWalk(snap.Data, snap.Base, regs, pcs)
		}
		reportFrames(b)
		if len(pcs) != benchFrames {
			b.Fatalf("baseline walk has %d frames, want %d", len(pcs), benchFrames)
		}
	})
}
