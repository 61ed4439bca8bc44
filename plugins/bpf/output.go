package main

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The files the plugin writes into its out directory.
const (
	textFile = "bpf.txt"
	jsonFile = "bpf.json"
)

// histWidth is the width of a histogram's bars, as bpftrace draws them.
const histWidth = 52

// sorted returns m's entries in bpftrace's order: by value (histograms:
// by count) ascending, and, for equal values, by key.
func (m *bpfMap) sorted() []*mapEntry {
	es := make([]*mapEntry, 0, len(m.entries))
	keys := make(map[*mapEntry]string, len(m.entries))
	for _, e := range m.entries {
		es = append(es, e)
		keys[e] = keyText(e.key)
	}
	agg := &m.prog.agg
	slices.SortFunc(es, func(a, b *mapEntry) int {
		if c := cmp.Compare(agg.value(a), agg.value(b)); c != 0 {
			return c
		}
		return strings.Compare(keys[a], keys[b])
	})
	return es
}

// keyText is a key as bpftrace prints it inside the brackets: its parts
// joined by ", "; a ustack part is a newline, then a tab-indented frame per
// line.
func keyText(key []keyVal) string {
	var b strings.Builder
	for i := range key {
		if i > 0 {
			b.WriteString(", ")
		}
		k := &key[i]
		switch k.t {
		case vInt:
			b.WriteString(strconv.FormatInt(k.i, 10))
		case vUint:
			b.WriteString(strconv.FormatUint(k.u, 10))
		case vBool:
			b.WriteString(strconv.FormatBool(k.i != 0))
		case vString:
			b.WriteString(k.s)
		case vBytes:
			b.WriteString(hex.EncodeToString([]byte(k.s)))
		case vStack:
			b.WriteByte('\n')
			for _, f := range strings.Split(k.s, "\n") {
				b.WriteByte('\t')
				b.WriteString(f)
				b.WriteByte('\n')
			}
		}
	}
	return b.String()
}

// writeText writes m as bpftrace prints a map: "@name[key]: value" lines
// sorted by value, then an empty line; a histogram per key as
// "@name[key]:", its bucket lines and an empty line. An empty map writes
// nothing.
func (m *bpfMap) writeText(w *bytes.Buffer) {
	es := m.sorted()
	if len(es) == 0 {
		return
	}
	agg := &m.prog.agg
	hist := agg.kind == aggHist || agg.kind == aggLhist
	for _, e := range es {
		w.WriteString(m.prog.name)
		if len(m.prog.keys) > 0 {
			w.WriteByte('[')
			w.WriteString(keyText(e.key))
			w.WriteByte(']')
		}
		if !hist {
			fmt.Fprintf(w, ": %d\n", agg.value(e))
			continue
		}
		w.WriteString(":\n")
		if agg.kind == aggHist {
			writeHist(w, e.buckets)
		} else {
			writeLhist(w, e.buckets, agg.min, agg.max, agg.step)
		}
		w.WriteByte('\n')
	}
	if !hist {
		w.WriteByte('\n')
	}
}

// span returns the first and last non-zero bucket and the largest count;
// first is -1 when every bucket is zero.
func span(buckets []uint64) (first, last int, top uint64) {
	first, last = -1, -1
	for i, v := range buckets {
		if v > 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
		top = max(top, v)
	}
	return first, last, top
}

// writeBucket writes one histogram line as bpftrace does: the range left
// in 16 columns, the count right in 8, and a bar of @ scaled to the largest
// count.
func writeBucket(w *bytes.Buffer, header string, v, top uint64) {
	bar := int(float32(v) / float32(top) * histWidth)
	fmt.Fprintf(w, "%-16s%8d |%-*s|\n", header, v, histWidth, strings.Repeat("@", bar))
}

// writeHist writes hist() buckets from the first non-zero one to the last.
func writeHist(w *bytes.Buffer, buckets []uint64) {
	first, last, top := span(buckets)
	for i := first; first >= 0 && i <= last; i++ {
		var h string
		switch i {
		case 0:
			h = "(..., 0)"
		case 1:
			h = "[0]"
		case 2:
			h = "[1]"
		default:
			h = "[" + histLabel(i-2) + ", " + histLabel(i-1) + ")"
		}
		writeBucket(w, h, buckets[i], top)
	}
}

// histLabel is 2^power as bpftrace labels it: with K, M, G or T for powers
// of 1024.
func histLabel(power int) string {
	suffix := ""
	switch {
	case power >= 40:
		suffix, power = "T", power-40
	case power >= 30:
		suffix, power = "G", power-30
	case power >= 20:
		suffix, power = "M", power-20
	case power >= 10:
		suffix, power = "K", power-10
	}
	return strconv.FormatUint(1<<power, 10) + suffix
}

// writeLhist writes lhist() buckets from the first non-zero one to the
// last.
func writeLhist(w *bytes.Buffer, buckets []uint64, min, max, step int64) {
	first, last, top := span(buckets)
	n := len(buckets) - 2
	for i := first; first >= 0 && i <= last; i++ {
		var h string
		switch {
		case i == 0:
			h = "(..., " + lhistLabel(min) + ")"
		case i == n+1:
			h = "[" + lhistLabel(max) + ", ...)"
		default:
			h = "[" + lhistLabel(min+int64(i-1)*step) + ", " + lhistLabel(min+int64(i)*step) + ")"
		}
		writeBucket(w, h, buckets[i], top)
	}
}

// lhistLabel is an lhist bound as bpftrace labels it: with M or K when it
// is a multiple of 1024² or 1024.
func lhistLabel(n int64) string {
	switch {
	case n == 0:
		return "0"
	case n%(1<<20) == 0:
		return strconv.FormatInt(n/(1<<20), 10) + "M"
	case n%(1<<10) == 0:
		return strconv.FormatInt(n/(1<<10), 10) + "K"
	}
	return strconv.FormatInt(n, 10)
}

// jsonDoc is bpf.json: the maps at one moment.
type jsonDoc struct {
	Time     string    `json:"time"`               // RFC 3339, UTC
	Section  string    `json:"section"`            // "interval" or "exit"
	Interval int       `json:"interval,omitempty"` // the interval's number, from 1
	Maps     []jsonMap `json:"maps"`
	Stats    stats     `json:"stats"`
}

// jsonMap is one map: its program and its entries, in bpf.txt's order.
type jsonMap struct {
	Name      string      `json:"name"`
	Probe     string      `json:"probe"`
	Filter    string      `json:"filter,omitempty"`
	Aggregate string      `json:"aggregate"`
	By        []string    `json:"by"`
	Matched   uint64      `json:"matched"` // events that passed the probe and the filter
	Errors    uint64      `json:"errors"`  // events whose expressions failed
	Full      uint64      `json:"full"`    // updates dropped: the map had max_keys keys
	Entries   []jsonEntry `json:"entries"`
}

// jsonEntry is one key's aggregate.
type jsonEntry struct {
	// Key holds one element per item of by: a number, string or bool (bytes
	// in hex); a ustack is an array of frames, leaf first.
	Key     []any        `json:"key"`
	Value   int64        `json:"value"`         // count, sum, min, max or avg; for histograms the count
	Count   uint64       `json:"count"`         // the events aggregated
	Sum     *int64       `json:"sum,omitempty"` // avg: the sum it divides
	Buckets []jsonBucket `json:"buckets,omitempty"`
}

// jsonBucket is a histogram bucket with its inclusive bounds, as bpftrace's
// JSON output has them: no min below the lowest bound, no max at the top.
type jsonBucket struct {
	Min   *int64 `json:"min,omitempty"`
	Max   *int64 `json:"max,omitempty"`
	Count uint64 `json:"count"`
}

// jsonOf converts m.
func (m *bpfMap) jsonOf() jsonMap {
	p := m.prog
	jm := jsonMap{
		Name: p.name, Probe: p.cfg.Probe, Filter: p.cfg.Filter, Aggregate: p.cfg.Aggregate, By: make([]string, len(p.keys)),
		Matched: m.Matched, Errors: m.Errors, Full: m.Full, Entries: []jsonEntry{},
	}
	for i, k := range p.keys {
		jm.By[i] = k.text
	}
	for _, e := range m.sorted() {
		je := jsonEntry{Key: make([]any, len(e.key)), Value: p.agg.value(e), Count: e.count}
		for i, k := range e.key {
			je.Key[i] = k.jsonValue()
		}
		switch p.agg.kind {
		case aggAvg:
			je.Sum = ptr(e.sum)
		case aggHist:
			je.Buckets = histJSON(e.buckets)
		case aggLhist:
			je.Buckets = lhistJSON(e.buckets, p.agg.min, p.agg.max, p.agg.step)
		}
		jm.Entries = append(jm.Entries, je)
	}
	return jm
}

func ptr(v int64) *int64 { return &v }

// jsonValue is k in bpf.json.
func (k *keyVal) jsonValue() any {
	switch k.t {
	case vInt:
		return k.i
	case vUint:
		return k.u
	case vBool:
		return k.i != 0
	case vBytes:
		return hex.EncodeToString([]byte(k.s))
	case vStack:
		return strings.Split(k.s, "\n")
	}
	return k.s
}

// histJSON lists hist() buckets from the first non-zero one to the last.
func histJSON(buckets []uint64) []jsonBucket {
	first, last, _ := span(buckets)
	var out []jsonBucket
	for i := first; first >= 0 && i <= last; i++ {
		b := jsonBucket{Count: buckets[i]}
		switch i {
		case 0:
			b.Max = ptr(-1)
		case 1:
			b.Min, b.Max = ptr(0), ptr(0)
		default:
			lo := uint64(1) << (i - 2)
			b.Min, b.Max = ptr(int64(lo)), ptr(int64(2*lo-1))
		}
		out = append(out, b)
	}
	return out
}

// lhistJSON lists lhist() buckets from the first non-zero one to the last.
func lhistJSON(buckets []uint64, min, max, step int64) []jsonBucket {
	first, last, _ := span(buckets)
	n := len(buckets) - 2
	var out []jsonBucket
	for i := first; first >= 0 && i <= last; i++ {
		b := jsonBucket{Count: buckets[i]}
		switch {
		case i == 0:
			b.Max = ptr(min - 1)
		case i == n+1:
			b.Min = ptr(max)
		default:
			b.Min, b.Max = ptr(min+int64(i-1)*step), ptr(min+int64(i)*step-1)
		}
		out = append(out, b)
	}
	return out
}

// marshalDoc encodes d as bpf.json's bytes.
func marshalDoc(d *jsonDoc) ([]byte, error) {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", jsonFile, err)
	}
	return append(b, '\n'), nil
}
