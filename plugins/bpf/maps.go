package main

import (
	"encoding/binary"
	"math/bits"
	"slices"
)

// histBuckets is the number of log2 buckets: (…, 0), [0], [1], then
// [2^k, 2^(k+1)) for k from 1 to 62.
const histBuckets = 65

// bpfMap is one program's map: its entries by encoded key, aggregated as
// the program says. It is not safe for concurrent use.
type bpfMap struct {
	prog    *program
	entries map[string]*mapEntry // by encodeKey
	maxKeys int
	buf     []byte // scratch for encodeKey

	// Counts, for the summary and bpf.json.
	Matched uint64 // events that passed the probe and the filter
	Errors  uint64 // events whose filter, value or key failed to evaluate
	Full    uint64 // updates dropped: the map had maxKeys keys
}

// mapEntry is the aggregate of one key.
type mapEntry struct {
	key     []keyVal
	count   uint64 // the events aggregated
	sum     int64  // sum, avg
	min     int64  // min
	max     int64  // max
	buckets []uint64
}

func newMap(p *program, maxKeys int) *bpfMap {
	return &bpfMap{prog: p, entries: make(map[string]*mapEntry), maxKeys: maxKeys}
}

// add aggregates value v under key; it reports whether the map had room.
func (m *bpfMap) add(key []keyVal, v int64) bool {
	m.buf = encodeKey(m.buf[:0], key)
	e, ok := m.entries[string(m.buf)]
	if !ok {
		if len(m.entries) >= m.maxKeys {
			m.Full++
			return false
		}
		e = &mapEntry{key: slices.Clone(key)}
		m.entries[string(m.buf)] = e
	}
	m.prog.agg.update(e, v)
	return true
}

// update adds the value v to e.
func (a *aggregate) update(e *mapEntry, v int64) {
	switch a.kind {
	case aggSum, aggAvg:
		e.sum += v
	case aggMin:
		if e.count == 0 || v < e.min {
			e.min = v
		}
	case aggMax:
		if e.count == 0 || v > e.max {
			e.max = v
		}
	case aggHist:
		if e.buckets == nil {
			e.buckets = make([]uint64, histBuckets)
		}
		e.buckets[histBucket(v)]++
	case aggLhist:
		if e.buckets == nil {
			e.buckets = make([]uint64, a.lhistBuckets()+2)
		}
		e.buckets[a.lhistBucket(v)]++
	}
	e.count++
}

// histBucket is bpftrace's hist() bucket of v: 0 for a negative value, 1
// for 0, 2 for 1, and k+2 for [2^k, 2^(k+1)).
func histBucket(v int64) int {
	if v < 0 {
		return 0
	}
	if v == 0 {
		return 1
	}
	return 1 + bits.Len64(uint64(v))
}

// lhistBuckets is the number of lhist buckets between min and max, not
// counting the two for values below min and at or above max.
func (a *aggregate) lhistBuckets() int { return int(lhistSpan(a.min, a.max) / uint64(a.step)) }

// lhistBucket is bpftrace's lhist() bucket of v: 0 below min, then one per
// step from min, and the last for max and above.
func (a *aggregate) lhistBucket(v int64) int {
	switch {
	case v < a.min:
		return 0
	case v >= a.max:
		return a.lhistBuckets() + 1
	}
	return 1 + int((uint64(v)-uint64(a.min))/uint64(a.step))
}

// value is e's scalar value for sorting and printing: the count, sum,
// minimum, maximum or integer average; for histograms, the count.
func (a *aggregate) value(e *mapEntry) int64 {
	switch a.kind {
	case aggSum:
		return e.sum
	case aggMin:
		return e.min
	case aggMax:
		return e.max
	case aggAvg:
		if e.count == 0 {
			return 0
		}
		return e.sum / int64(e.count)
	}
	return int64(e.count)
}

// encodeKey appends key's encoding to b: a map key that is equal exactly
// when the keys are.
func encodeKey(b []byte, key []keyVal) []byte {
	for i := range key {
		k := &key[i]
		b = append(b, byte(k.t))
		switch k.t {
		case vInt, vBool:
			b = binary.LittleEndian.AppendUint64(b, uint64(k.i))
		case vUint:
			b = binary.LittleEndian.AppendUint64(b, k.u)
		default:
			b = binary.AppendUvarint(b, uint64(len(k.s)))
			b = append(b, k.s...)
		}
	}
	return b
}
