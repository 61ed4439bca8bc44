package main

import (
	"bufio"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/unwindd/unwindd/sdk"
)

// foldedBuilder counts samples per folded stack, the input of
// flamegraph.pl and inferno: "comm;root;…;leaf count", root first. Names
// are what stackcollapse-perf.pl makes of the same samples in perf script
// form: the function, or for an unsymbolized frame the mapped file's base
// name in brackets ("[libc.so.6]"), or "[unknown]" outside any file. A
// comm's spaces become underscores, as stackcollapse-perf.pl does, and ";"
// inside a name becomes ":" so that it cannot split a frame. A sample
// without a stack is the comm alone.
//
// Counts are kept per (distinct folded stack, comm) and joined into lines
// when written; the folded form of a stack is made once per distinct stack.
type foldedBuilder struct {
	counts  map[foldedKey]uint64
	ids     map[string]uint32 // distinct folded stacks, numbered from 1
	suffix  []string          // suffix[id-1] is the folded stack of id
	comms   map[string]string // comm → its folded form
	stacks  *stackTable       // shared with the other outputs by the tracer
	lastRaw string            // the comm folded last, and its folded form
	lastOut string
	buf     strings.Builder // scratch
}

// foldedKey is one line of the output before its comm is folded.
type foldedKey struct {
	stack uint32 // in ids
	comm  string // folded
}

func newFoldedBuilder() *foldedBuilder {
	return &foldedBuilder{counts: make(map[foldedKey]uint64), ids: make(map[string]uint32), comms: make(map[string]string), stacks: newStackTable()}
}

func (b *foldedBuilder) add(samples []sample, st *sdk.Stack) {
	b.addStack(samples, b.stacks.lookupStack(st))
}

// addStack counts samples with the interned stack si.
func (b *foldedBuilder) addStack(samples []sample, si *stackInfo) {
	if !si.foldedSet {
		b.buf.Reset()
		for i := len(si.frames) - 1; i >= 0; i-- {
			b.buf.WriteByte(';')
			b.buf.WriteString(foldedName(&si.frames[i]))
		}
		suffix := b.buf.String()
		id := b.ids[suffix]
		if id == 0 {
			b.suffix = append(b.suffix, suffix)
			id = uint32(len(b.suffix))
			b.ids[suffix] = id
		}
		si.foldedID, si.foldedSet = id, true
	}
	for i := range samples {
		b.counts[foldedKey{stack: si.foldedID, comm: b.comm(&samples[i])}]++
	}
}

// comm is foldedComm(s), remembered per comm.
func (b *foldedBuilder) comm(s *sample) string {
	if s.Comm == "" {
		return foldedComm(s) // ":tid"
	}
	if s.Comm == b.lastRaw && b.lastOut != "" {
		return b.lastOut
	}
	out, ok := b.comms[s.Comm]
	if !ok {
		out = foldedComm(s)
		b.comms[s.Comm] = out
	}
	b.lastRaw, b.lastOut = s.Comm, out
	return out
}

// The replacements that keep names from breaking a folded line.
var (
	foldedFunc     = strings.NewReplacer(";", ":", "\n", " ")
	foldedCommName = strings.NewReplacer(" ", "_", ";", ":", "\n", "_")
)

// foldedName is a frame's name in a folded stack.
func foldedName(f *sdk.Frame) string {
	switch {
	case f.Function != "":
		return foldedFunc.Replace(f.Function)
	case f.Mapping != nil && f.Mapping.Path != "":
		return "[" + strings.ReplaceAll(filepath.Base(f.Mapping.Path), ";", ":") + "]"
	}
	return "[unknown]"
}

// foldedComm is a sample's process name in a folded stack.
func foldedComm(s *sample) string {
	return foldedCommName.Replace(scriptComm(s))
}

// foldedLine is one line of stacks.folded: the stack "comm;root;…;leaf"
// and its count of samples.
type foldedLine struct {
	stack string
	count uint64
}

// lines returns the folded stacks and their counts, one per line of the
// output (keys whose comms fold to the same name are one line), in no
// particular order. WriteTo and the flame graph both start from it.
func (b *foldedBuilder) lines() []foldedLine {
	merged := make(map[string]uint64, len(b.counts))
	for k, n := range b.counts {
		merged[k.comm+b.suffix[k.stack-1]] += n
	}
	lines := make([]foldedLine, 0, len(merged))
	for s, n := range merged {
		lines = append(lines, foldedLine{stack: s, count: n})
	}
	return lines
}

// WriteTo writes the folded stacks sorted by stack, one per line.
func (b *foldedBuilder) WriteTo(w io.Writer) (int64, error) {
	lines := b.lines()
	slices.SortFunc(lines, func(x, y foldedLine) int { return strings.Compare(x.stack, y.stack) })
	bw := bufio.NewWriter(w)
	var n int64
	var num []byte
	for i := range lines {
		num = strconv.AppendUint(append(num[:0], ' '), lines[i].count, 10)
		num = append(num, '\n')
		m, _ := bw.WriteString(lines[i].stack)
		n += int64(m)
		m, _ = bw.Write(num)
		n += int64(m)
	}
	return n, bw.Flush()
}
