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
type foldedBuilder struct {
	counts map[string]uint64
	buf    strings.Builder // scratch
}

func newFoldedBuilder() *foldedBuilder {
	return &foldedBuilder{counts: make(map[string]uint64)}
}

func (b *foldedBuilder) add(samples []sample, st *sdk.Stack) {
	var frames []sdk.Frame
	if st != nil {
		frames = st.Frames
	}
	b.buf.Reset()
	for i := len(frames) - 1; i >= 0; i-- {
		b.buf.WriteByte(';')
		b.buf.WriteString(foldedName(&frames[i]))
	}
	suffix := b.buf.String()
	for i := range samples {
		b.counts[foldedComm(&samples[i])+suffix]++
	}
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

// WriteTo writes the folded stacks sorted by stack, one per line.
func (b *foldedBuilder) WriteTo(w io.Writer) (int64, error) {
	keys := make([]string, 0, len(b.counts))
	for k := range b.counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	bw := bufio.NewWriter(w)
	var n int64
	var num []byte
	for _, k := range keys {
		num = strconv.AppendUint(append(num[:0], ' '), b.counts[k], 10)
		num = append(num, '\n')
		m, _ := bw.WriteString(k)
		n += int64(m)
		m, _ = bw.Write(num)
		n += int64(m)
	}
	return n, bw.Flush()
}
