package main

import (
	"bufio"
	"io"
	"strconv"

	"github.com/unwindd/unwindd/sdk"
)

// scriptWriter writes samples in the layout of `perf script` with
// callchains (perf record -a -g; see appendScript), in sample time order.
//
// Samples come out of the joiner in the order their stacks arrive, which is
// nearly but not exactly time order, so records wait: a record is written
// once the newest sample time seen is more than window past it, or when
// more than maxHeld records wait (then the oldest goes). The joiner releases
// every sample within its max_wait of sample time, so with window equal to
// it the file is in time order unless maxHeld forced a record out early.
//
// Records that arrive in order (no earlier than the last one queued in
// order), which is nearly all of them, wait in a FIFO; the others in a
// heap; the next record out is the older of the two heads (time, then
// arrival). A stack's frame lines are formatted once per distinct stack.
//
// A scriptWriter is not safe for concurrent use. Write errors are sticky:
// the first one is returned by flush.
type scriptWriter struct {
	w       *bufio.Writer
	window  uint64
	maxHeld int
	fifo    []record // in order from fifo[head]
	head    int
	held    recordHeap // the records that came out of order
	seq     uint64
	newest  uint64
	stacks  *stackTable // shared with the other outputs by the tracer
	err     error
}

// record is one sample and its stack: si's cached frame lines, or (si nil)
// frames, formatted when written.
type record struct {
	sample
	frames []sdk.Frame
	si     *stackInfo
	seq    uint64 // ties on time keep arrival order
}

func (r *record) before(o *record) bool {
	return r.Time < o.Time || r.Time == o.Time && r.seq < o.seq
}

func newScriptWriter(w io.Writer, window uint64, maxHeld int) *scriptWriter {
	return &scriptWriter{w: bufio.NewWriterSize(w, 256<<10), window: window, maxHeld: maxHeld, stacks: newStackTable()}
}

func (sw *scriptWriter) add(samples []sample, st *sdk.Stack) {
	sw.addStack(samples, sw.stacks.lookupStack(st))
}

// addStack queues samples with the interned stack si and writes what is
// due.
func (sw *scriptWriter) addStack(samples []sample, si *stackInfo) {
	if !si.scriptSet {
		si.script = appendFrames(nil, si.frames)
		si.scriptSet = true
	}
	for i := range samples {
		sw.seq++
		r := record{sample: samples[i], si: si, seq: sw.seq}
		if n := len(sw.fifo); n == sw.head || sw.fifo[n-1].Time <= r.Time {
			sw.fifo = append(sw.fifo, r)
		} else {
			sw.held.push(r)
		}
		sw.newest = max(sw.newest, samples[i].Time)
	}
	for {
		r := sw.oldest()
		if r == nil || sw.len() <= sw.maxHeld && r.Time+sw.window >= sw.newest {
			break
		}
		sw.writeOldest()
	}
	// Keep the FIFO's consumed prefix from growing without bound.
	if sw.head > 4096 && sw.head > len(sw.fifo)/2 {
		n := copy(sw.fifo, sw.fifo[sw.head:])
		clear(sw.fifo[n:])
		sw.fifo, sw.head = sw.fifo[:n], 0
	}
}

func (sw *scriptWriter) len() int { return len(sw.fifo) - sw.head + len(sw.held) }

// oldest is the next record to write, or nil.
func (sw *scriptWriter) oldest() *record {
	var r *record
	if sw.head < len(sw.fifo) {
		r = &sw.fifo[sw.head]
	}
	if len(sw.held) > 0 && (r == nil || sw.held[0].before(r)) {
		r = &sw.held[0]
	}
	return r
}

// writeOldest writes and removes the oldest record; there is one.
func (sw *scriptWriter) writeOldest() {
	if sw.head < len(sw.fifo) && (len(sw.held) == 0 || !sw.held[0].before(&sw.fifo[sw.head])) {
		sw.write(&sw.fifo[sw.head])
		sw.fifo[sw.head] = record{}
		sw.head++
		return
	}
	sw.write(&sw.held[0])
	sw.held.pop()
}

func (sw *scriptWriter) write(r *record) {
	if sw.err != nil {
		return
	}
	_, sw.err = sw.w.Write(appendScript(sw.w.AvailableBuffer(), r))
}

// flush writes every held record and flushes the buffer.
func (sw *scriptWriter) flush() error {
	for sw.len() > 0 {
		sw.writeOldest()
	}
	sw.fifo, sw.head = sw.fifo[:0], 0
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
	if r.Comm != "" {
		b = append(b, r.Comm...)
	} else {
		b = append(b, ':')
		b = appendUint(b, absInt(r.TID), r.TID < 0, 0, ' ')
	}
	b = append(b, ' ')
	b = appendUint(b, absInt(r.TID), r.TID < 0, 5, ' ')
	b = append(b, " ["...)
	b = appendUint(b, absInt(r.CPU), r.CPU < 0, 3, '0')
	b = append(b, "] "...)
	b = appendUint(b, r.Time/1e9, false, 5, ' ')
	b = append(b, '.')
	b = appendUint(b, r.Time%1e9/1e3, false, 6, '0')
	b = append(b, ": "...)
	b = appendUint(b, r.Period, false, 10, ' ')
	b = append(b, ' ')
	name := r.Name
	if name == "" {
		name = "cpu-clock"
	}
	b = append(b, name...)
	b = append(b, ": \n"...)
	if r.si != nil {
		b = append(b, r.si.script...)
	} else {
		b = appendFrames(b, r.frames)
	}
	return append(b, '\n')
}

// appendFrames appends the frame lines of appendScript.
func appendFrames(b []byte, frames []sdk.Frame) []byte {
	for i := range frames {
		f := &frames[i]
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
	return b
}

func absInt(v int32) uint64 {
	if v < 0 {
		return uint64(-int64(v))
	}
	return uint64(v)
}

// appendUint appends v in decimal (after a '-' if neg), right-aligned in a
// field of width bytes filled with pad, which goes before the sign (as the
// padding of strconv's output did: a cpu of -1 is "0-1").
func appendUint(b []byte, v uint64, neg bool, width int, pad byte) []byte {
	var d [21]byte
	i := len(d)
	for v >= 10 {
		i--
		d[i] = byte('0' + v%10)
		v /= 10
	}
	i--
	d[i] = byte('0' + v)
	n := len(d) - i
	if neg {
		n++
	}
	for ; n < width; n++ {
		b = append(b, pad)
	}
	if neg {
		b = append(b, '-')
	}
	return append(b, d[i:]...)
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

func (h *recordHeap) push(r record) {
	*h = append(*h, r)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q[i].before(&q[p]) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

// pop removes the oldest record.
func (h *recordHeap) pop() {
	q := *h
	n := len(q) - 1
	q[0] = q[n]
	q[n] = record{}
	q = q[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && q[r].before(&q[l]) {
			m = r
		}
		if !q[m].before(&q[i]) {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
}
