package perfdata

import (
	"fmt"
	"io"
	"math/bits"
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
// slices alias the file's memory; Callchain, Regs and RegsIntr are reused
// by the next [Reader.ReadInto].
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

// Record is one record of a perf.data file. [Reader.ReadInto] fills the
// fields for its Type and zeroes the others' scalars.
type Record struct {
	Type   RecordType
	Misc   uint16
	Offset int64  // file offset of the record's header
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

	scratch Record
	strs    map[string]string
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
	return &Reader{f: f, pos: f.start, strs: make(map[string]string), lastOff: -1, nextRelease: f.start + f.releaseStep()}
}

// Reset rewinds r to the first record, as if just returned by
// [File.Records], keeping its buffers (and its Stats, which keep counting).
func (r *Reader) Reset() {
	*r = Reader{f: r.f, pos: r.f.start, queue: r.queue[:0], scratch: r.scratch, strs: r.strs, stats: r.stats,
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
		if !h.typ.known() {
			r.stats.Unknown++
			continue
		}
		if h.typ >= recordUserTypeStart {
			if r.f.Pipe && (h.typ == RecordHeaderAttr || h.typ == RecordHeaderFeature ||
				h.typ == RecordHeaderTracingData || h.typ == RecordHeaderBuildID) {
				// The header of a pipe, read by Open: not a record.
				continue
			}
			r.fill(rec, off, h, -1)
			r.lastOff = off
			if h.typ == RecordFinishedRound {
				r.round()
			}
			r.stats.Records++
			r.stats.ByType[h.typ]++
			return nil
		}
		ai, ok := r.f.attrOf(off, h)
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

// attrOf finds the event of a kernel record by its sample id, as perf's
// evlist__event2evsel does; ok is false when the id matches no event.
func (f *File) attrOf(off int64, h frameHeader) (int, bool) {
	if len(f.Attrs) == 0 {
		return -1, true
	}
	first := &f.Attrs[0]
	if len(f.Attrs) == 1 {
		return 0, true
	}
	if !first.SampleIDAll() && h.typ != RecordSample {
		return 0, true
	}
	body := f.data[off+recordHeader : off+int64(h.size)]
	n := len(body) / 8
	var id uint64
	if h.typ == RecordSample {
		if first.idPos < 0 || first.idPos >= n {
			return 0, true
		}
		id = le.Uint64(body[8*first.idPos:])
	} else {
		if first.isPos < 0 || first.isPos > n {
			return 0, true
		}
		id = le.Uint64(body[8*(n-first.isPos):])
	}
	if id == 0 { // synthesized records
		return 0, true
	}
	ai, ok := f.idToAttr[id]
	return ai, ok
}

// fill sets the common fields of rec and clears the rest.
func (r *Reader) fill(rec *Record, off int64, h frameHeader, ai int) {
	s := &rec.Sample
	cc, regs, ri := s.Callchain[:0], s.Regs[:0], s.RegsIntr[:0]
	*rec = Record{
		Type:   h.typ,
		Misc:   h.misc,
		Offset: off,
		Data:   r.f.data[off : off+int64(h.size)],
	}
	s.Callchain, s.Regs, s.RegsIntr = cc, regs, ri
	if ai >= 0 {
		rec.Attr = &r.f.Attrs[ai]
	}
}

// cursor reads the fields of one record.
type cursor struct {
	b   []byte // the record, header included
	p   int
	off int64 // the record's file offset
	err *FormatError
}

func (c *cursor) fail(what string) {
	if c.err == nil {
		c.err = formatErr(c.off+int64(c.p), fmt.Sprintf("%s overruns its %v record of size", what, RecordType(le.Uint32(c.b))), len(c.b))
	}
	c.p = len(c.b)
}

func (c *cursor) u64(what string) uint64 {
	if len(c.b)-c.p < 8 {
		c.fail(what)
		return 0
	}
	v := le.Uint64(c.b[c.p:])
	c.p += 8
	return v
}

func (c *cursor) u32(what string) uint32 {
	if len(c.b)-c.p < 4 {
		c.fail(what)
		return 0
	}
	v := le.Uint32(c.b[c.p:])
	c.p += 4
	return v
}

func (c *cursor) bytes(n uint64, what string) []byte {
	if uint64(len(c.b)-c.p) < n {
		c.fail(what)
		return nil
	}
	v := c.b[c.p : c.p+int(n)]
	c.p += int(n)
	return v
}

// u64s appends n u64 values to dst.
func (c *cursor) u64s(dst []uint64, n uint64, what string) []uint64 {
	if uint64(len(c.b)-c.p)/8 < n {
		c.fail(what)
		return dst
	}
	for i := uint64(0); i < n; i++ {
		dst = append(dst, le.Uint64(c.b[c.p:]))
		c.p += 8
	}
	return dst
}

// decode decodes the kernel record at off (framed before) into rec.
func (r *Reader) decode(rec *Record, off int64, ai int) error {
	f := r.f
	b := f.data[off:]
	h := frameHeader{typ: RecordType(le.Uint32(b)), misc: le.Uint16(b[4:]), size: le.Uint16(b[6:])}
	r.fill(rec, off, h, ai)
	c := &cursor{b: rec.Data, p: recordHeader, off: off}
	var attr *Attr
	if ai >= 0 {
		attr = &f.Attrs[ai]
	}
	if h.typ == RecordSample {
		if attr == nil {
			return formatErr(off, "SAMPLE record in a file without events", nil)
		}
		r.decodeSample(rec, c, attr)
		if c.err != nil {
			return c.err
		}
		return nil
	}
	// The sample_id trailer, at the end of the record.
	if attr != nil && attr.SampleIDAll() {
		if err := r.trailer(rec, c, attr); err != nil {
			return err
		}
	}
	switch h.typ {
	case RecordMmap, RecordMmap2:
		m := &rec.Mmap
		m.PID, m.TID = c.u32("pid"), c.u32("tid")
		m.Addr, m.Len, m.Pgoff = c.u64("addr"), c.u64("len"), c.u64("pgoff")
		if h.typ == RecordMmap2 {
			if h.misc&MiscMmapBuildID != 0 {
				hdr := c.bytes(4, "build_id_size")
				id := c.bytes(20, "build_id")
				if c.err == nil {
					n := int(hdr[0])
					if n > len(id) {
						return formatErr(off+int64(c.p-24), "MMAP2 build-id size", n)
					}
					m.BuildID = id[:n]
				}
			} else {
				m.Maj, m.Min = c.u32("maj"), c.u32("min")
				m.Ino, m.InoGeneration = c.u64("ino"), c.u64("ino_generation")
			}
			m.Prot, m.Flags = c.u32("prot"), c.u32("flags")
		}
		m.Filename = r.str(c.b[min(c.p, len(c.b)):])
	case RecordComm:
		rec.Comm.PID, rec.Comm.TID = c.u32("pid"), c.u32("tid")
		rec.Comm.Comm = r.str(c.b[min(c.p, len(c.b)):])
		rec.Comm.Exec = h.misc&MiscCommExec != 0
	case RecordFork, RecordExit:
		t := &rec.Task
		t.PID, t.PPID, t.TID, t.PTID = c.u32("pid"), c.u32("ppid"), c.u32("tid"), c.u32("ptid")
		t.Time = c.u64("time")
	case RecordLost:
		rec.Lost.ID, rec.Lost.Lost = c.u64("id"), c.u64("lost")
	case RecordLostSamples:
		rec.Lost.Lost = c.u64("lost")
	case RecordThrottle, RecordUnthrottle:
		t := &rec.Throttle
		t.Time, t.ID, t.StreamID = c.u64("time"), c.u64("id"), c.u64("stream_id")
	}
	if c.err != nil {
		return c.err
	}
	return nil
}

// trailer decodes the sample_id trailer of a non-sample record and cuts it
// off the cursor's bytes.
func (r *Reader) trailer(rec *Record, c *cursor, attr *Attr) error {
	t := attr.SampleType
	n := 0
	for _, bit := range []SampleType{SampleTID, SampleTime, SampleID, SampleStreamID, SampleCPU, SampleIdentifier} {
		if t&bit != 0 {
			n += 8
		}
	}
	if len(c.b)-recordHeader < n {
		return formatErr(c.off+6, fmt.Sprintf("%v record size shorter than its %d-byte sample_id", rec.Type, n), len(c.b))
	}
	tc := cursor{b: c.b, p: len(c.b) - n, off: c.off}
	id := &rec.Ident
	if t&SampleTID != 0 {
		id.PID, id.TID = tc.u32("pid"), tc.u32("tid")
		id.Fields |= SampleTID
	}
	if t&SampleTime != 0 {
		id.Time = tc.u64("time")
		id.Fields |= SampleTime
	}
	if t&SampleID != 0 {
		id.ID = tc.u64("id")
		id.Fields |= SampleID
	}
	if t&SampleStreamID != 0 {
		id.StreamID = tc.u64("stream_id")
		id.Fields |= SampleStreamID
	}
	if t&SampleCPU != 0 {
		id.CPU = tc.u32("cpu")
		tc.u32("res")
		id.Fields |= SampleCPU
	}
	if t&SampleIdentifier != 0 {
		id.ID = tc.u64("identifier")
		id.Fields |= SampleIdentifier
	}
	c.b = c.b[:len(c.b)-n]
	return nil
}

// decodeSample decodes a SAMPLE body in perf's order (evsel__parse_sample).
func (r *Reader) decodeSample(rec *Record, c *cursor, attr *Attr) {
	t := attr.SampleType
	s, id := &rec.Sample, &rec.Ident
	if t&SampleIdentifier != 0 {
		id.ID = c.u64("IDENTIFIER")
		id.Fields |= SampleIdentifier
	}
	if t&SampleIP != 0 {
		s.IP = c.u64("IP")
	}
	if t&SampleTID != 0 {
		id.PID, id.TID = c.u32("TID"), c.u32("TID")
		id.Fields |= SampleTID
	}
	if t&SampleTime != 0 {
		id.Time = c.u64("TIME")
		id.Fields |= SampleTime
	}
	if t&SampleAddr != 0 {
		s.Addr = c.u64("ADDR")
	}
	if t&SampleID != 0 {
		id.ID = c.u64("ID")
		id.Fields |= SampleID
	}
	if t&SampleStreamID != 0 {
		id.StreamID = c.u64("STREAM_ID")
		id.Fields |= SampleStreamID
	}
	if t&SampleCPU != 0 {
		id.CPU = c.u32("CPU")
		c.u32("CPU")
		id.Fields |= SampleCPU
	}
	if t&SamplePeriod != 0 {
		s.Period = c.u64("PERIOD")
	}
	if t&SampleRead != 0 {
		start := c.p
		rf := attr.ReadFormat
		per := uint64(1) // u64s per value: value, [id], [lost]
		if rf&ReadID != 0 {
			per++
		}
		if rf&ReadLost != 0 {
			per++
		}
		times := uint64(bits.OnesCount64(uint64(rf & (ReadTotalTimeEnabled | ReadTotalTimeRunning))))
		if rf&ReadGroup != 0 {
			nr := c.u64("READ")
			c.bytes(8*times, "READ")
			if nr > uint64(len(c.b))/8/per {
				c.fail("READ")
			} else {
				c.bytes(8*per*nr, "READ")
			}
		} else {
			c.bytes(8*(per+times), "READ")
		}
		if c.err == nil {
			s.Read = c.b[start:c.p]
		}
	}
	if t&SampleCallchain != 0 {
		nr := c.u64("CALLCHAIN")
		s.Callchain = c.u64s(s.Callchain[:0], nr, "CALLCHAIN")
	}
	if t&SampleRaw != 0 {
		n := c.u32("RAW")
		s.Raw = c.bytes(uint64(n), "RAW")
	}
	if t&SampleBranchStack != 0 {
		nr := c.u64("BRANCH_STACK")
		if attr.BranchSampleType&branchHWIndex != 0 {
			c.u64("BRANCH_STACK")
		}
		if nr > uint64(len(c.b))/24 {
			c.fail("BRANCH_STACK")
		} else {
			s.Branches = c.bytes(24*nr, "BRANCH_STACK")
		}
	}
	if t&SampleRegsUser != 0 {
		s.RegsABI = c.u64("REGS_USER")
		if s.RegsABI != perfRegsABINone {
			s.Regs = c.u64s(s.Regs[:0], uint64(bits.OnesCount64(attr.SampleRegsUser)), "REGS_USER")
		}
	}
	if t&SampleStackUser != 0 {
		size := c.u64("STACK_USER")
		stack := c.bytes(size, "STACK_USER")
		s.StackSize = size
		if size != 0 {
			dyn := c.u64("STACK_USER dyn_size")
			if c.err == nil {
				if dyn > size {
					c.err = formatErr(c.off+int64(c.p-8), "STACK_USER dyn_size beyond its size", dyn)
				} else {
					s.Stack = stack[:dyn]
				}
			}
		}
	}
	if t&(SampleWeight|SampleWeightStruct) != 0 {
		s.Weight = c.u64("WEIGHT")
	}
	if t&SampleDataSrc != 0 {
		s.DataSrc = c.u64("DATA_SRC")
	}
	if t&SampleTransaction != 0 {
		s.Txn = c.u64("TRANSACTION")
	}
	if t&SampleRegsIntr != 0 {
		s.RegsIntrABI = c.u64("REGS_INTR")
		if s.RegsIntrABI != perfRegsABINone {
			s.RegsIntr = c.u64s(s.RegsIntr[:0], uint64(bits.OnesCount64(attr.SampleRegsIntr)), "REGS_INTR")
		}
	}
	if t&SamplePhysAddr != 0 {
		s.PhysAddr = c.u64("PHYS_ADDR")
	}
	if t&SampleCgroup != 0 {
		s.Cgroup = c.u64("CGROUP")
	}
	if t&SampleDataPageSize != 0 {
		s.DataPageSize = c.u64("DATA_PAGE_SIZE")
	}
	if t&SampleCodePageSize != 0 {
		s.CodePageSize = c.u64("CODE_PAGE_SIZE")
	}
	if t&SampleAux != 0 {
		n := c.u64("AUX")
		s.Aux = c.bytes(n, "AUX")
	}
}

// maxInterned bounds the strings a Reader keeps to hand out again.
const maxInterned = 1 << 14

// str returns the NUL-terminated string at the start of b, reusing an
// earlier equal string so that repeated names do not allocate.
func (r *Reader) str(b []byte) string {
	for i, c := range b {
		if c == 0 {
			b = b[:i]
			break
		}
	}
	if s, ok := r.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(r.strs) < maxInterned {
		r.strs[s] = s
	}
	return s
}
