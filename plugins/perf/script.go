package main

import (
	"bufio"
	"container/heap"
	"io"
	"strconv"

	"github.com/unwindd/unwindd/sdk"
)

// scriptWriter writes samples in the layout of `perf script` with
// callchains (perf record -a -g; see appendScript), in sample time order.
//
// Samples come out of the joiner in the order their stacks arrive, which is
// nearly but not exactly time order, so records wait in a small heap: a
// record is written once the newest sample time seen is more than window
// past it, or when more than maxHeld records wait (then the oldest goes).
// The joiner releases every sample within its max_wait of sample time, so
// with window equal to it the file is in time order unless maxHeld forced a
// record out early.
//
// A scriptWriter is not safe for concurrent use. Write errors are sticky:
// the first one is returned by flush.
type scriptWriter struct {
	w       *bufio.Writer
	window  uint64
	maxHeld int
	held    recordHeap
	seq     uint64
	newest  uint64
	buf     []byte
	err     error
}

// record is one sample and its stack's frames (shared, read-only).
type record struct {
	sample
	frames []sdk.Frame
	seq    uint64 // ties on time keep arrival order
}

func newScriptWriter(w io.Writer, window uint64, maxHeld int) *scriptWriter {
	return &scriptWriter{w: bufio.NewWriterSize(w, 64<<10), window: window, maxHeld: maxHeld}
}

func (sw *scriptWriter) add(samples []sample, st *sdk.Stack) {
	var frames []sdk.Frame
	if st != nil {
		frames = st.Frames
	}
	for i := range samples {
		sw.seq++
		heap.Push(&sw.held, record{sample: samples[i], frames: frames, seq: sw.seq})
		sw.newest = max(sw.newest, samples[i].Time)
	}
	for len(sw.held) > 0 && (len(sw.held) > sw.maxHeld || sw.held[0].Time+sw.window < sw.newest) {
		sw.write(heap.Pop(&sw.held).(record))
	}
}

func (sw *scriptWriter) write(r record) {
	if sw.err != nil {
		return
	}
	sw.buf = appendScript(sw.buf[:0], &r)
	_, sw.err = sw.w.Write(sw.buf)
}

// flush writes every held record and flushes the buffer.
func (sw *scriptWriter) flush() error {
	for len(sw.held) > 0 {
		sw.write(heap.Pop(&sw.held).(record))
	}
	if sw.err != nil {
		return sw.err
	}
	sw.err = sw.w.Flush()
	return sw.err
}

// appendScript formats one sample as perf script prints a sample with its
// callchain (perf 6.x, builtin-script.c and evsel_fprintf.c):
//
//	comm %5d(tid) [%03d](cpu) %5d.%06d(time): %10d(period) event: \n
//	\t%16x(addr) sym+0xoff (dso)\n   … one line per frame, leaf first
//	\n
//
// An unsymbolized frame is "[unknown]", a frame outside any mapped file has
// dso "[unknown]", and a sample without a stack has no frame lines. Frame
// addresses are the virtual addresses the host unwound (perf 6.1's own
// output shows map-relative ones for user frames; older perf and the issue's
// example show virtual ones).
func appendScript(b []byte, r *record) []byte {
	b = append(b, scriptComm(&r.sample)...)
	b = append(b, ' ')
	b = appendPadded(b, strconv.AppendInt(nil, int64(r.TID), 10), 5)
	b = append(b, " ["...)
	cpu := strconv.AppendInt(nil, int64(r.CPU), 10)
	for n := len(cpu); n < 3; n++ {
		b = append(b, '0')
	}
	b = append(b, cpu...)
	b = append(b, "] "...)
	b = appendPadded(b, strconv.AppendUint(nil, r.Time/1e9, 10), 5)
	b = append(b, '.')
	us := strconv.AppendUint(nil, r.Time%1e9/1e3, 10)
	for n := len(us); n < 6; n++ {
		b = append(b, '0')
	}
	b = append(b, us...)
	b = append(b, ": "...)
	b = appendPadded(b, strconv.AppendUint(nil, r.Period, 10), 10)
	b = append(b, ' ')
	name := r.Name
	if name == "" {
		name = "cpu-clock"
	}
	b = append(b, name...)
	b = append(b, ": \n"...)
	for i := range r.frames {
		f := &r.frames[i]
		b = append(b, '\t')
		b = appendPadded(b, strconv.AppendUint(nil, f.Addr, 16), 16)
		b = append(b, ' ')
		if f.Function != "" {
			b = append(b, f.Function...)
			b = append(b, "+0x"...)
			b = strconv.AppendUint(b, f.Offset, 16)
		} else {
			b = append(b, "[unknown]"...)
		}
		b = append(b, " ("...)
		if f.Mapping != nil && f.Mapping.Path != "" {
			b = append(b, f.Mapping.Path...)
		} else {
			b = append(b, "[unknown]"...)
		}
		b = append(b, ")\n"...)
	}
	return append(b, '\n')
}

// appendPadded appends s right-aligned in a field of width bytes.
func appendPadded(b, s []byte, width int) []byte {
	for n := len(s); n < width; n++ {
		b = append(b, ' ')
	}
	return append(b, s...)
}

// scriptComm is a sample's command name, or ":tid" as perf names a thread
// whose comm it never saw.
func scriptComm(s *sample) string {
	if s.Comm != "" {
		return s.Comm
	}
	return ":" + strconv.Itoa(int(s.TID))
}

// recordHeap orders records by time, then arrival.
type recordHeap []record

func (h recordHeap) Len() int { return len(h) }
func (h recordHeap) Less(i, j int) bool {
	if h[i].Time != h[j].Time {
		return h[i].Time < h[j].Time
	}
	return h[i].seq < h[j].seq
}
func (h recordHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *recordHeap) Push(x any)   { *h = append(*h, x.(record)) }
func (h *recordHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = record{}
	*h = old[:len(old)-1]
	return r
}
