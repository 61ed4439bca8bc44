package replay

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/unwindd/unwindd/internal/testutil"
)

// maxTVD bounds the distance of two distributions of folded stacks: the
// total variation distance (half the sum of the absolute differences of
// their fractions: the share of samples that would have to change stack)
// of the stacks above each leaf function, averaged over the leaves with
// weights the mean of their shares on the two sides ([stackDistance]).
//
// Two recordings are two runs: how their samples split between the leaves
// (leaf, memset, the clock) is the workload's, and moves between runs on a
// busy machine by more than sampling noise (64.5% against 58.9% memset in
// one run of three, at 2000 samples a side, where sampling alone gives a
// standard deviation of 0.015). The leaf is the sampled ip, not the
// unwinder's work; what is above it is. Given the leaf, a correct walk of
// these workloads gives one stack, so the distance is 0 but for the rare
// samples at a boundary (a PLT stub, the clock read). A systematic
// difference — a frame missing or added on every stack of a leaf, a leaf's
// stacks lost to "not reaching main" — moves it by that leaf's whole share:
// ≥ 0.2 for the memset leaf here, about 1 for the chain programs. 0.05 lies
// between the two. The plain distance is logged beside it.
const maxTVD = 0.05

// notTop is the folded stack of a sample whose stack does not reach top.
const notTop = "(not reaching main)"

// foldedDist returns the distribution of stacks (leaf first) cut at top,
// folded main-first as flame graphs fold them ("main;a;b;leaf"), as
// fractions of all; stacks that do not reach top share one entry.
func foldedDist(stacks [][]string, top string) map[string]float64 {
	d := map[string]float64{}
	for _, s := range stacks {
		cut, ok := upTo(s, top)
		if !ok {
			d[notTop]++
			continue
		}
		fs := make([]string, len(cut))
		for i, f := range cut {
			if f == "" {
				f = "[unknown]"
			}
			fs[len(cut)-1-i] = f
		}
		d[strings.Join(fs, ";")]++
	}
	for k := range d {
		d[k] /= float64(len(stacks))
	}
	return d
}

// tvd is the total variation distance of two distributions.
func tvd(p, q map[string]float64) float64 {
	sum := 0.0
	for k := range p {
		sum += math.Abs(p[k] - q[k])
	}
	for k := range q {
		if _, ok := p[k]; !ok {
			sum += q[k]
		}
	}
	return sum / 2
}

// checkDistribution compares the distribution of the replayed stacks rs
// with that of perf script's stacks ref, from another recording of the same
// workload, both cut at top.
func checkDistribution(t *testing.T, rs []record, ref map[string][]string, top string) {
	t.Helper()
	var ours, theirs [][]string
	for _, r := range rs {
		ours = append(ours, r.Funcs)
	}
	for _, s := range ref {
		theirs = append(theirs, s)
	}
	p, q := foldedDist(ours, top), foldedDist(theirs, top)
	d, plain := stackDistance(ours, theirs, top), tvd(p, q)
	keys := slices.Collect(maps.Keys(p))
	for k := range q {
		if _, ok := p[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(cmp.Compare(q[b]+p[b], q[a]+p[a]), strings.Compare(a, b)) })
	var tab strings.Builder
	for i, k := range keys {
		if i == 12 {
			fmt.Fprintf(&tab, "\t… %d more\n", len(keys)-i)
			break
		}
		fmt.Fprintf(&tab, "\t%5.1f%% %5.1f%%  %s\n", 100*p[k], 100*q[k], k)
	}
	if d > maxTVD {
		t.Errorf("stacks above each leaf differ by %.3f (total variation), want ≤ %.2f; whole stacks by %.3f; ours (%d samples), perf script's (%d):\n%s",
			d, maxTVD, plain, len(ours), len(theirs), tab.String())
		return
	}
	t.Logf("stacks above each leaf differ by %.3f (total variation, ≤ %.2f), whole stacks by %.3f; ours (%d samples), perf script's (%d):\n%s",
		d, maxTVD, plain, len(ours), len(theirs), tab.String())
}

// stackDistance is the total variation distance of the distributions of
// folded stacks (cut at top) of the samples with each leaf function,
// averaged over the leaves weighted by the mean of their shares in a and b.
func stackDistance(a, b [][]string, top string) float64 {
	byLeaf := func(stacks [][]string) map[string][][]string {
		m := map[string][][]string{}
		for _, s := range stacks {
			leaf := "[unknown]"
			if len(s) > 0 && s[0] != "" {
				leaf = s[0]
			}
			m[leaf] = append(m[leaf], s)
		}
		return m
	}
	la, lb := byLeaf(a), byLeaf(b)
	leaves := map[string]bool{}
	for l := range la {
		leaves[l] = true
	}
	for l := range lb {
		leaves[l] = true
	}
	d := 0.0
	for l := range leaves {
		w := (float64(len(la[l]))/float64(len(a)) + float64(len(lb[l]))/float64(len(b))) / 2
		switch {
		case len(la[l]) == 0 || len(lb[l]) == 0:
			d += w // a leaf on one side only: nothing to compare its stacks with
		default:
			d += w * tvd(foldedDist(la[l], top), foldedDist(lb[l], top))
		}
	}
	return d
}

// TestO2Distribution records an -O2 frame-pointer build twice, with
// --call-graph dwarf (replayed) and with -g (the kernel's frame-pointer walk,
// read with perf script), and requires the two distributions of stacks, leaf
// to main, to agree within [maxTVD]; samples in memset, a frameless leaf of
// libc, are a large share of both.
func TestO2Distribution(t *testing.T) {
	perf := needPerf(t)
	exe := testutil.BuildC(t, "", "chain", testutil.MemsetChainSrc, "-O2", "-g", "-fno-omit-frame-pointer")
	rs, _ := replayFileWith(t, perfRecord(t, perf, exe, "dwarf"), fpOnly)
	checkDistribution(t, rs, perfScript(t, perf, perfRecord(t, perf, exe, "fp")), "main")
}

// TestStackDistance: the distance ignores how samples split between leaves
// and counts the stacks above a leaf that differ.
func TestStackDistance(t *testing.T) {
	rep := func(n int, s ...string) [][]string {
		var out [][]string
		for range n {
			out = append(out, s)
		}
		return out
	}
	chain := []string{"leaf", "b", "a", "main"}
	memset := []string{"memset", "b", "a", "main"}
	withLeaf := []string{"memset", "leaf", "b", "a", "main"}
	for _, tt := range []struct {
		name        string
		a, b        [][]string
		dist, plain float64
	}{
		{"same", append(rep(60, chain...), rep(40, memset...)...), append(rep(60, chain...), rep(40, memset...)...), 0, 0},
		{"other mix", append(rep(70, chain...), rep(30, memset...)...), append(rep(50, chain...), rep(50, memset...)...), 0, 0.2},
		{"frame added above a leaf", append(rep(60, chain...), rep(40, withLeaf...)...), append(rep(60, chain...), rep(40, memset...)...), 0.4, 0.4},
		{"not reaching main", append(rep(60, chain...), rep(40, "memset", "b")...), append(rep(60, chain...), rep(40, memset...)...), 0.4, 0.4},
		{"leaf on one side", append(rep(90, chain...), rep(10, "x", "main")...), rep(100, chain...), 0.05, 0.1},
	} {
		d, plain := stackDistance(tt.a, tt.b, "main"), tvd(foldedDist(tt.a, "main"), foldedDist(tt.b, "main"))
		if math.Abs(d-tt.dist) > 1e-9 || math.Abs(plain-tt.plain) > 1e-9 {
			t.Errorf("%s: distance %v, plain %v; want %v, %v", tt.name, d, plain, tt.dist, tt.plain)
		}
	}
}
