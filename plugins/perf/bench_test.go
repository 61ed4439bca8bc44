package main

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/unwindd/unwindd/sdk"
)

// benchStacks makes n distinct 16-frame stacks through two mappings, as
// the SDK would decode them: each interned stack is one []Frame.
func benchStacks(n int) [][]sdk.Frame {
	stacks := make([][]sdk.Frame, n)
	for i := range stacks {
		fr := make([]sdk.Frame, 16)
		for j := range fr {
			m := demoMap
			if j >= 12 {
				m = libcMap
			}
			fr[j] = sdk.Frame{Addr: m.Start + uint64(0x100*j+i*7), Mapping: m, Function: fmt.Sprintf("fn_%d_%d", j, i%5), Offset: uint64(i % 64), Type: sdk.TypeCFI}
		}
		fr[0].Type = sdk.TypeRegs
		stacks[i] = fr
	}
	return stacks
}

// benchPlugin feeds b.N samples, each in its own kernel entry with its
// stack, through the tracer's delivery methods in batches of 64, then
// closes it. With joinOnly the outputs are left out: what is left is the
// join.
func benchPlugin(b *testing.B, joinOnly bool) {
	stacks := benchStacks(32)
	tr := newTracer()
	tr.now = func() time.Time { return closeTime }
	if _, err := tr.Describe(context.Background(), sdk.DescribeInfo{Config: scenarioConfig(b.TempDir()), Host: sdk.NewHost(nil)}); err != nil {
		b.Fatal(err)
	}
	if joinOnly {
		tr.joiner.out = func([]sample, *sdk.Stack) {}
	}
	ctx := context.Background()
	evs := make([]sdk.Event, 0, 64)
	sts := make([]sdk.Stack, 0, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cookie := uint64(i + 1)
		tid := int32(100 + i%4)
		t := uint64(1e12) + uint64(i)*100_000
		evs = append(evs, sdk.Event{Kind: sdk.KindSample, Name: "cpu-clock", Time: t, CPU: int32(i % 2), PID: 100, TID: tid, Comm: "demo", Cookie: cookie, Period: 100_000})
		sts = append(sts, sdk.Stack{Cookie: cookie, PID: 100, TID: tid, Time: t + 1000, Frames: stacks[(i*7)%len(stacks)], End: sdk.EndOutermost})
		if len(evs) == cap(evs) || i == b.N-1 {
			tr.Events(ctx, evs)
			for j := range sts {
				tr.Stack(ctx, sts[j])
			}
			evs, sts = evs[:0], sts[:0]
		}
	}
	if err := tr.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}

func BenchmarkPlugin(b *testing.B)     { benchPlugin(b, false) }
func BenchmarkPluginJoin(b *testing.B) { benchPlugin(b, true) }

// benchFolded makes a foldedBuilder of n distinct folded stacks of two
// comms, 16 frames each, shaped like a profile: three shared outer frames,
// then base-4 digits of the stack's number (so stacks share prefixes, as
// call trees do), then a leaf of its own; 1 to 7 samples each.
func benchFolded(n int) *foldedBuilder {
	fb := newFoldedBuilder()
	for i := range n {
		fr := make([]sdk.Frame, 16)
		for j := range fr { // leaf first
			depth := 15 - j
			var name string
			switch {
			case depth < 3:
				name = [...]string{"_start", "__libc_start_main", "main"}[depth]
			case depth < 15:
				name = fmt.Sprintf("pkg.fn%d_%d", depth, i>>(2*(15-depth))&3)
			default:
				name = fmt.Sprintf("leaf_%d", i)
			}
			fr[j] = sdk.Frame{Addr: demoMap.Start + uint64(i)<<4 + uint64(j), Mapping: demoMap, Function: name}
		}
		s := sample{Comm: "demo", PID: 100, TID: 100}
		if i%3 == 0 {
			s.Comm = "worker"
		}
		samples := make([]sample, 1+i%7)
		for k := range samples {
			samples[k] = s
		}
		fb.add(samples, &sdk.Stack{Frames: fr})
	}
	return fb
}

// benchWrite measures write on 100k distinct stacks, and reports the
// output's size.
func benchWrite(b *testing.B, write func(fb *foldedBuilder, w io.Writer) error) {
	fb := benchFolded(100_000)
	var cw countWriter
	b.ReportAllocs()
	for b.Loop() {
		cw = 0
		if err := write(fb, &cw); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cw), "bytes/file")
}

// countWriter counts what is written to it.
type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// BenchmarkFoldedWrite is the baseline of BenchmarkFlameWrite: the same
// aggregation written as stacks.folded.
func BenchmarkFoldedWrite(b *testing.B) {
	benchWrite(b, func(fb *foldedBuilder, w io.Writer) error { _, err := fb.WriteTo(w); return err })
}

// BenchmarkFlameWrite writes flame.svg of 100k distinct stacks.
func BenchmarkFlameWrite(b *testing.B) {
	benchWrite(b, func(fb *foldedBuilder, w io.Writer) error { return fb.writeFlame(w) })
}
