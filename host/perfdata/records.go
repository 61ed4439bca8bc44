package perfdata

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Ident is the identity of a record: the sample_id fields of a SAMPLE, or
// of another record's sample_id_all trailer. Fields says which are set; the
// others are zero.
type Ident struct {
	Fields   SampleType // of SampleTID, SampleTime, SampleID, SampleStreamID, SampleCPU, SampleIdentifier
	PID, TID uint32
	Time     uint64
	ID       uint64 // from PERF_SAMPLE_ID or PERF_SAMPLE_IDENTIFIER
	StreamID uint64
	CPU      uint32
}

// Sample is the body of a SAMPLE record, decoded per its event's
// sample_type. Fields the event does not sample are zero or empty. The byte
// slices alias the file's memory (or the bytes given to [Decoder.Decode]);
// Callchain, Regs and RegsIntr are reused by the next [Reader.ReadInto] or
// [Decoder.Decode] into the same Record.
type Sample struct {
	IP     uint64
	Addr   uint64
	Period uint64
	// Read holds the PERF_SAMPLE_READ values, undecoded (their layout is
	// per the event's ReadFormat).
	Read      []byte
	Callchain []uint64 // PERF_SAMPLE_CALLCHAIN, including perf's context markers
	Raw       []byte   // PERF_SAMPLE_RAW: a tracepoint's record (see [Attr.Format])
	// Branches holds the PERF_SAMPLE_BRANCH_STACK entries, undecoded
	// (24 bytes each: from, to, flags).
	Branches []byte
	// RegsABI is the ABI word of PERF_SAMPLE_REGS_USER (0 none, 1 32-bit,
	// 2 64-bit), Regs the values, one per bit of the event's
	// SampleRegsUser in increasing bit order (empty with ABI 0). Decode
	// them with arch/x86_64.DecodePerfRegs.
	RegsABI uint64
	Regs    []uint64
	// Stack is the valid part (dyn_size bytes) of the PERF_SAMPLE_STACK_USER
	// copy of the user stack, starting at the sampled sp. It aliases the
	// file's memory: see [File.Close].
	Stack     []byte
	StackSize uint64 // bytes the record reserves for the stack copy
	Weight    uint64 // PERF_SAMPLE_WEIGHT or PERF_SAMPLE_WEIGHT_STRUCT
	DataSrc   uint64
	Txn       uint64
	// RegsIntrABI and RegsIntr are PERF_SAMPLE_REGS_INTR, as Regs.
	RegsIntrABI  uint64
	RegsIntr     []uint64
	PhysAddr     uint64
	Cgroup       uint64
	DataPageSize uint64
	CodePageSize uint64
	Aux          []byte
}

// Mmap is the body of an MMAP or MMAP2 record.
type Mmap struct {
	PID, TID uint32
	Addr     uint64
	Len      uint64
	Pgoff    uint64
	// MMAP2 only: the device and inode of the file, or (with
	// MiscMmapBuildID in the record's Misc) its build-id.
	Maj, Min      uint32
	Ino           uint64
	InoGeneration uint64
	BuildID       []byte
	Prot, Flags   uint32
	Filename      string
}

// Comm is the body of a COMM record.
type Comm struct {
	PID, TID uint32
	Comm     string
	Exec     bool // the name changed by exec (MiscCommExec)
}

// Task is the body of a FORK or EXIT record.
type Task struct {
	PID, PPID uint32
	TID, PTID uint32
	Time      uint64
}

// Lost is the body of a LOST record (ID and Lost) or a LOST_SAMPLES record
// (Lost).
type Lost struct {
	ID   uint64
	Lost uint64
}

// Throttle is the body of a THROTTLE or UNTHROTTLE record.
type Throttle struct {
	Time     uint64
	ID       uint64
	StreamID uint64
}

// Record is one record of a perf.data file or a perf ring buffer.
// [Reader.ReadInto] and [Decoder.Decode] fill the fields for its Type and
// zero the others' scalars.
type Record struct {
	Type   RecordType
	Misc   uint16
	Offset int64  // file offset of the record's header (see [Decoder.DecodeAt])
	Data   []byte // the whole record, header included (aliases the file)
	// Attr is the event the record belongs to (by its sample id, or the
	// first event when there is no id); nil for records perf writes itself
	// and in a file without events.
	Attr  *Attr
	Ident Ident

	Sample   Sample   // SAMPLE
	Mmap     Mmap     // MMAP, MMAP2
	Comm     Comm     // COMM
	Task     Task     // FORK, EXIT
	Lost     Lost     // LOST, LOST_SAMPLES
	Throttle Throttle // THROTTLE, UNTHROTTLE
}

// Time returns the record's timestamp and whether it has one.
func (r *Record) Time() (uint64, bool) {
	return r.Ident.Time, r.Ident.Fields&SampleTime != 0
}

// Stats counts what a [Reader] has read so far.
type Stats struct {
	Records   uint64                      // records delivered
	Unknown   uint64                      // records of a type perf does not know, skipped
	UnknownID uint64                      // records whose sample id matches no event, skipped
	Unordered uint64                      // records older than an earlier flush (perf's "out of order")
	ByType    [recordUserTypeLimit]uint64 // records read, indexed by RecordType
	MaxQueued int                         // most records held at once for time ordering
}

// Reader reads the records of a [File] in perf's time order. It is not safe
// for concurrent use; several Readers of one File may run at once.
type Reader struct {
	f     *File
	pos   int64
	err   error // the error to return once the queue is drained
	final bool  // no more records to read: drain the queue

	// perf's ordered_events state (tools/perf/util/ordered-events.c).
	queue     []queued
	flushing  bool
	limit     uint64 // deliver queued records up to this time while flushing
	nextFlush uint64
	maxTime   uint64
	lastFlush uint64

	dec     Decoder // this reader's: it interns names
	scratch Record
	stats   Stats

	// Releasing the mapping behind the reader (see release).
	lastOff     int64 // offset of the record delivered last; -1 before the first
	released    int64 // the mapping's pages below this offset were released
	nextRelease int64 // pos at which to try again
}

// releaseStep is how far a [Reader] reads between two releases of the
// mapped pages it has left behind: large, so that madvise calls are rare.
const releaseStep = 16 << 20

type queued struct {
	time uint64
	off  int64 // file offset: orders records of equal time as perf does
	attr int32
}

// Records returns a reader of f's records from the first. Kernel records
// with a timestamp come out in time order across CPUs, by perf's rule: they
// are held until a FINISHED_ROUND record lets through those no later than
// the newest timestamp seen before the previous round, and at the end of
// the data all are let through. Records without a timestamp (or with 0,
// which perf's synthesized records have) and perf's own records come out
// when they are read, as perf delivers them.
func (f *File) Records() *Reader {
	dec := *f.dec
	dec.strs = make(map[string]string)
	return &Reader{f: f, pos: f.start, dec: dec, lastOff: -1, nextRelease: f.start + f.releaseStep()}
}

// Reset rewinds r to the first record, as if just returned by
// [File.Records], keeping its buffers (and its Stats, which keep counting).
func (r *Reader) Reset() {
	*r = Reader{f: r.f, pos: r.f.start, queue: r.queue[:0], dec: r.dec, scratch: r.scratch, stats: r.stats,
		lastOff: -1, nextRelease: r.f.start + r.f.releaseStep()}
}

// Stats returns the counts so far.
func (r *Reader) Stats() Stats { return r.stats }

// ReadInto reads the next record into rec. It returns io.EOF after the
// last record, and a [*FormatError] for bad data after all records that
// precede it in the file; errors are sticky. The byte slices of rec alias
// the file's memory and stay valid after the next call (until
// [File.Close], after which ReadInto returns os.ErrClosed; for a mapped
// file, the reader releases the pages it has passed, and a slice kept past
// them is read back from the file when touched); the slices of integers
// (Sample.Callchain, Sample.Regs, Sample.RegsIntr) are overwritten by it.
func (r *Reader) ReadInto(rec *Record) error {
	if r.f.closed {
		return os.ErrClosed
	}
	for {
		if r.final || r.flushing {
			if len(r.queue) > 0 && (r.final || r.queue[0].time <= r.limit) {
				q := r.pop()
				if err := r.decode(rec, q.off, int(q.attr)); err != nil {
					// Cannot happen: it decoded when it was queued.
					return err
				}
				r.lastFlush = q.time
				r.lastOff = q.off
				r.stats.Records++
				return nil
			}
			r.flushing = false
			if r.final {
				if r.err != nil {
					return r.err
				}
				return io.EOF
			}
		}
		if r.pos >= r.f.end {
			r.final = true
			continue
		}
		h, err := r.f.frame(r.pos)
		if err != nil {
			r.err, r.final = err, true
			continue
		}
		off := r.pos
		r.pos += int64(h.size) + h.extra
		if r.pos >= r.nextRelease {
			r.release()
		}
		if !h.typ.Known() {
			r.stats.Unknown++
			continue
		}
		if h.typ >= recordUserTypeStart {
			if r.f.Pipe && (h.typ == RecordHeaderAttr || h.typ == RecordHeaderFeature ||
				h.typ == RecordHeaderTracingData || h.typ == RecordHeaderBuildID) {
				// The header of a pipe, read by Open: not a record.
				continue
			}
			r.dec.fill(rec, r.f.data[off:off+int64(h.size)], off, h, -1)
			r.lastOff = off
			if h.typ == RecordFinishedRound {
				r.round()
			}
			r.stats.Records++
			r.stats.ByType[h.typ]++
			return nil
		}
		ai, ok := r.dec.attrOf(r.f.data[off:off+int64(h.size)], h)
		if !ok {
			r.stats.UnknownID++
			continue
		}
		if err := r.decode(&r.scratch, off, ai); err != nil {
			r.err, r.final = err, true
			continue
		}
		r.stats.ByType[h.typ]++
		t, hasTime := r.scratch.Time()
		if !hasTime || t == 0 || t == ^uint64(0) {
			r.decode(rec, off, ai)
			r.lastOff = off
			r.stats.Records++
			return nil
		}
		r.push(queued{time: t, off: off, attr: int32(ai)})
	}
}

// release gives back to the kernel the pages of a mapped file below the
// lowest offset the reader may still use: the record delivered last, the
// records queued for time ordering, and what it has not read yet. Pages
// are released a step (releaseStep) at a time, with
// madvise(MADV_DONTNEED): resident set size stays bounded by the step and
// the ordering window instead of growing to the file's size. The mapping
// is read-only and backed by the file, so a released page that is touched
// again (a record slice the caller kept, another Reader of the same File)
// is read back from the file: released memory stays valid, as ReadInto
// promises, until File.Close.
func (r *Reader) release() {
	step := r.f.releaseStep()
	r.nextRelease = r.pos + step
	m := r.f.unmap
	if m == nil {
		return
	}
	low := r.pos
	if r.lastOff >= 0 {
		low = min(low, r.lastOff)
	}
	for i := range r.queue {
		low = min(low, r.queue[i].off)
	}
	if end := low &^ int64(pageSize-1); end-r.released >= step && end <= int64(len(m)) {
		if unix.Madvise(m[r.released:end], unix.MADV_DONTNEED) == nil {
			r.released = end
		}
	}
}

var pageSize = unix.Getpagesize()

// round applies FINISHED_ROUND: deliver up to the previous round's newest
// time, and remember this round's.
func (r *Reader) round() {
	if len(r.queue) == 0 {
		return // perf leaves its state alone on an empty queue
	}
	r.limit = r.nextFlush
	r.flushing = r.limit != 0
	r.nextFlush = r.maxTime
}

func (r *Reader) push(q queued) {
	if q.time < r.lastFlush {
		r.stats.Unordered++
	}
	if len(r.queue) == 0 || q.time >= r.maxTime {
		r.maxTime = q.time
	}
	r.queue = append(r.queue, q)
	if len(r.queue) > r.stats.MaxQueued {
		r.stats.MaxQueued = len(r.queue)
	}
	// sift up
	h := r.queue
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h[i].less(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (a queued) less(b queued) bool {
	return a.time < b.time || a.time == b.time && a.off < b.off
}

func (r *Reader) pop() queued {
	h := r.queue
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if rr := l + 1; rr < n && h[rr].less(h[l]) {
			m = rr
		}
		if !h[m].less(h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	r.queue = h
	return top
}

// frameHeader is a record's perf_event_header, and the payload that follows
// some records outside their size (AUXTRACE data, pipe tracing data).
type frameHeader struct {
	typ   RecordType
	misc  uint16
	size  uint16
	extra int64
}

// frame reads the record header at off and checks that the record (and its
// trailing payload) lies inside the data.
func (f *File) frame(off int64) (frameHeader, error) {
	end := f.end
	if end > int64(len(f.data)) {
		end = int64(len(f.data))
	}
	if off > end || end-off < recordHeader {
		return frameHeader{}, truncErr(min(off, int64(len(f.data))), "record header")
	}
	b := f.data[off:]
	h := frameHeader{typ: RecordType(le.Uint32(b)), misc: le.Uint16(b[4:]), size: le.Uint16(b[6:])}
	if h.size < recordHeader {
		return h, formatErr(off+6, fmt.Sprintf("%v record size", h.typ), h.size)
	}
	if int64(h.size) > end-off {
		return h, truncErr(off, fmt.Sprintf("%v record of size %#x", h.typ, h.size))
	}
	switch h.typ {
	case RecordAuxtrace:
		if h.size < 16 {
			return h, formatErr(off+6, "AUXTRACE record size", h.size)
		}
		h.extra = int64(le.Uint64(b[8:]))
	case RecordHeaderTracingData:
		if h.size < 12 {
			return h, formatErr(off+6, "TRACING_DATA record size", h.size)
		}
		h.extra = int64(le.Uint32(b[8:]))
	}
	if h.extra < 0 || h.extra > end-off-int64(h.size) {
		return h, truncErr(off, fmt.Sprintf("%v payload of size %#x", h.typ, uint64(h.extra)))
	}
	return h, nil
}

// decode decodes the kernel record at off (framed before) into rec, as a
// record of event ai.
func (r *Reader) decode(rec *Record, off int64, ai int) error {
	b := r.f.data[off:]
	h := frameHeader{typ: RecordType(le.Uint32(b)), misc: le.Uint16(b[4:]), size: le.Uint16(b[6:])}
	return r.dec.decode(rec, b[:h.size], off, h, ai)
}
