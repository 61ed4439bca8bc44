package main

import (
	"context"
	"fmt"
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
