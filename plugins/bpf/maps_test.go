package main

import (
	"bytes"
	"math"
	"testing"
)

// TestHistBuckets: hist() buckets as bpftrace defines them: (…, 0), [0],
// [1], then [2^k, 2^(k+1)), with K, M, G, T labels.
func TestHistBuckets(t *testing.T) {
	for _, c := range []struct {
		v      int64
		bucket int
		label  string
	}{
		{math.MinInt64, 0, "(..., 0)"},
		{-1, 0, "(..., 0)"},
		{0, 1, "[0]"},
		{1, 2, "[1]"},
		{2, 3, "[2, 4)"},
		{3, 3, "[2, 4)"},
		{4, 4, "[4, 8)"},
		{7, 4, "[4, 8)"},
		{8, 5, "[8, 16)"},
		{1023, 11, "[512, 1K)"},
		{1024, 12, "[1K, 2K)"},
		{1<<20 - 1, 21, "[512K, 1M)"},
		{1 << 20, 22, "[1M, 2M)"},
		{1 << 30, 32, "[1G, 2G)"},
		{1 << 40, 42, "[1T, 2T)"},
		{math.MaxInt64, 64, "[4194304T, 8388608T)"},
	} {
		b := histBucket(c.v)
		if b != c.bucket {
			t.Errorf("histBucket(%d) = %d, want %d", c.v, b, c.bucket)
			continue
		}
		buckets := make([]uint64, histBuckets)
		buckets[b] = 1
		var w bytes.Buffer
		writeHist(&w, buckets)
		want := c.label
		for len(want) < 16 {
			want += " "
		}
		want += "       1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
		if w.String() != want {
			t.Errorf("hist of %d:\n%q\nwant\n%q", c.v, w.String(), want)
		}
	}
}

// TestLhistBuckets: lhist() buckets as bpftrace defines them: (…, MIN),
// [MIN + i*STEP, MIN + (i+1)*STEP), [MAX, …).
func TestLhistBuckets(t *testing.T) {
	for _, c := range []struct {
		min, max, step int64
		v              int64
		bucket         int
		label          string
	}{
		{0, 100, 10, -1, 0, "(..., 0)"},
		{0, 100, 10, 0, 1, "[0, 10)"},
		{0, 100, 10, 9, 1, "[0, 10)"},
		{0, 100, 10, 10, 2, "[10, 20)"},
		{0, 100, 10, 99, 10, "[90, 100)"},
		{0, 100, 10, 100, 11, "[100, ...)"},
		{0, 100, 10, math.MaxInt64, 11, "[100, ...)"},
		{-10, 10, 5, math.MinInt64, 0, "(..., -10)"},
		{-10, 10, 5, -10, 1, "[-10, -5)"},
		{-10, 10, 5, -1, 2, "[-5, 0)"},
		{-10, 10, 5, 9, 4, "[5, 10)"},
		{0, 4096, 1024, 2048, 3, "[2K, 3K)"},
		{0, 4 << 20, 1 << 20, 3 << 20, 4, "[3M, 4M)"},
		{0, 4 << 20, 1 << 20, 4 << 20, 5, "[4M, ...)"},
		{math.MinInt64, math.MaxInt64 - 1, 1 << 54, 0, 513, "[0, 17179869184M)"},
	} {
		a := aggregate{kind: aggLhist, min: c.min, max: c.max, step: c.step}
		b := a.lhistBucket(c.v)
		if b != c.bucket {
			t.Errorf("lhist(%d, %d, %d, %d) bucket %d, want %d", c.v, c.min, c.max, c.step, b, c.bucket)
			continue
		}
		buckets := make([]uint64, a.lhistBuckets()+2)
		buckets[b] = 3
		var w bytes.Buffer
		writeLhist(&w, buckets, c.min, c.max, c.step)
		want := c.label
		for len(want) < 16 {
			want += " "
		}
		want += "       3 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
		if w.String() != want {
			t.Errorf("lhist(%d, %d, %d, %d):\n%q\nwant\n%q", c.v, c.min, c.max, c.step, w.String(), want)
		}
	}
}

// TestAggregations: the value of each aggregation over the same values,
// as bpftrace computes it (avg is an integer division, truncated).
func TestAggregations(t *testing.T) {
	values := []int64{5, -7, 12, 0, -3}
	for _, c := range []struct {
		kind aggKind
		want int64
	}{
		{aggCount, 5},
		{aggSum, 7},
		{aggMin, -7},
		{aggMax, 12},
		{aggAvg, 1},
		{aggHist, 5},
	} {
		a := aggregate{kind: c.kind}
		var e mapEntry
		for _, v := range values {
			a.update(&e, v)
		}
		if got := a.value(&e); got != c.want || e.count != 5 {
			t.Errorf("%v of %v = %d (count %d), want %d", c.kind, values, got, e.count, c.want)
		}
	}
	a := aggregate{kind: aggAvg}
	var e mapEntry
	a.update(&e, -7)
	a.update(&e, -8)
	if got := a.value(&e); got != -7 {
		t.Errorf("avg(-7, -8) = %d, want -7 (C's truncation)", got)
	}
	h := aggregate{kind: aggHist}
	var he mapEntry
	for _, v := range values {
		h.update(&he, v)
	}
	if want := []uint64{2, 1, 0, 0, 1, 1}; !equalPrefix(he.buckets, want) {
		t.Errorf("hist buckets %v, want %v then zeros", he.buckets, want)
	}
}

func equalPrefix(got, want []uint64) bool {
	for i, v := range got {
		if i < len(want) && v != want[i] || i >= len(want) && v != 0 {
			return false
		}
	}
	return true
}

// TestMapKeys: keys are equal exactly when their parts are, and a full map
// drops new keys but keeps aggregating old ones.
func TestMapKeys(t *testing.T) {
	p := &program{name: "@m", agg: aggregate{kind: aggCount}}
	m := newMap(p, 3)
	keys := [][]keyVal{
		{{t: vInt, i: 1}, {t: vString, s: "a"}},
		{{t: vInt, i: 1}, {t: vString, s: "a\x00"}},
		{{t: vUint, u: 1}, {t: vString, s: "a"}},
		{{t: vInt, i: 2}, {t: vString, s: "a"}},
	}
	for i, k := range keys {
		if ok := m.add(k, 0); ok != (i < 3) {
			t.Errorf("add key %d: %v", i, ok)
		}
	}
	m.add(keys[0], 0)
	if len(m.entries) != 3 || m.Full != 1 {
		t.Errorf("%d entries, %d dropped; want 3 and 1", len(m.entries), m.Full)
	}
	if e := m.entries[string(encodeKey(nil, keys[0]))]; e == nil || e.count != 2 {
		t.Errorf("entry of key 0: %+v, want count 2", e)
	}
}
