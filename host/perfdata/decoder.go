package perfdata

import (
	"errors"
	"fmt"
	"math/bits"
)

// ErrUnknownEvent means a kernel record's sample id matches none of the
// events a [Decoder] knows ([Decoder.Decode] wraps it in a [*FormatError]).
var ErrUnknownEvent = errors.New("perfdata: sample id of no known event")

// Decoder decodes kernel records — a perf_event_header and its body, as the
// kernel writes them into a perf ring buffer and perf record copies them into
// perf.data — per the events they belong to. It is the one decoding path of
// this package: [Reader] uses it for the records of a file, and a live source
// that reads the kernel's ring buffers uses it for theirs, so that both give
// the same [Record] values.
//
// A record's event is found by its sample id (PERF_SAMPLE_IDENTIFIER or
// PERF_SAMPLE_ID, in a SAMPLE's body or another record's sample_id_all
// trailer), as perf's evlist__event2evsel does: at the position of the first
// event's sample_type, which perf requires every event of a session to share
// (PERF_SAMPLE_IDENTIFIER puts it first in a sample and last in a trailer
// whatever the other bits). With a single event, or a record without an id
// (id 0, as perf's synthesized records have), the first event is taken.
//
// A Decoder is not safe for concurrent use (it interns the names of MMAP and
// COMM records); several Decoders may share one []Attr.
type Decoder struct {
	attrs    []Attr
	idToAttr map[uint64]int
	// Where the id is, per the first event (see calcIDPos): the idPos-th
	// u64 of a SAMPLE body, the isPos-th u64 from a trailer's end.
	idPos, isPos int
	// Where the time is: per event, the u64 index in a SAMPLE body and from
	// a trailer's end (-1: no time); same is whether every event agrees.
	timePos []timePos
	same    bool
	strs    map[string]string
}

type timePos struct{ sample, trailer int }

// NewDecoder returns a Decoder of the records of the events attrs (each with
// the ids the kernel gave its instances, [Attr.IDs]). It keeps attrs, not a
// copy: a decoded [Record.Attr] points into it, and attrs must not change
// while the Decoder is in use.
func NewDecoder(attrs []Attr) *Decoder {
	d := newDecoder(attrs)
	d.strs = make(map[string]string)
	return d
}

// newDecoder builds the tables of a Decoder without its string table (a
// File's template, copied by each Reader).
func newDecoder(attrs []Attr) *Decoder {
	d := &Decoder{attrs: attrs, idToAttr: make(map[uint64]int), idPos: -1, isPos: -1, same: true}
	d.timePos = make([]timePos, len(attrs))
	for i := range attrs {
		a := &attrs[i]
		if i == 0 {
			d.idPos, d.isPos = calcIDPos(a.SampleType)
		}
		for _, id := range a.IDs {
			d.idToAttr[id] = i
		}
		d.timePos[i] = calcTimePos(a.SampleType)
		if !a.SampleIDAll() {
			d.timePos[i].trailer = -1
		}
		if d.timePos[i] != d.timePos[0] {
			d.same = false
		}
	}
	return d
}

// Attrs returns the events the decoder knows (the slice given to
// [NewDecoder]).
func (d *Decoder) Attrs() []Attr { return d.attrs }

// Decode decodes the record raw (header included; bytes past the size its
// header gives are ignored) into rec, as [Reader.ReadInto] does with a
// file's records: rec.Attr is its event, rec.Ident its sample id, and the
// body's fields are filled per its Type; records of types this package does
// not decode (perf's own, or kernel types it does not know) get their Type,
// Misc, Data, and — for kernel types — their Attr and trailer's Ident. The
// byte slices of rec (Data, Sample.Stack, Sample.Raw…) alias raw; the
// integer slices (Sample.Regs, Sample.Callchain, Sample.RegsIntr) reuse
// rec's. rec.Offset is 0, and so are the offsets of errors: see
// [Decoder.DecodeAt].
//
// Bad data yields a [*FormatError]; a record whose sample id matches no
// event, one wrapping [ErrUnknownEvent].
func (d *Decoder) Decode(raw []byte, rec *Record) error { return d.DecodeAt(raw, 0, rec) }

// DecodeAt is [Decoder.Decode] for a record at offset off of its stream (a
// file offset, or a position in a ring buffer): rec.Offset is off, and the
// offsets of errors count from it.
func (d *Decoder) DecodeAt(raw []byte, off int64, rec *Record) error {
	h, err := rawFrame(raw, off)
	if err != nil {
		return err
	}
	raw = raw[:h.size]
	if h.typ >= recordUserTypeStart {
		d.fill(rec, raw, off, h, -1)
		return nil
	}
	ai, ok := d.attrOf(raw, h)
	if !ok {
		return &FormatError{Offset: off, Msg: fmt.Sprintf("%v record of sample id", h.typ), Val: d.idOf(raw, h), Err: ErrUnknownEvent}
	}
	if !h.typ.Known() {
		d.fill(rec, raw, off, h, ai)
		if ai >= 0 && d.attrs[ai].SampleIDAll() {
			c := &cursor{b: rec.Data, p: recordHeader, off: off}
			return d.trailer(rec, c, &d.attrs[ai])
		}
		return nil
	}
	return d.decode(rec, raw, off, h, ai)
}

// Time returns the timestamp of the kernel record raw (PERF_SAMPLE_TIME of a
// SAMPLE or of another record's sample_id_all trailer) without decoding the
// rest, and whether it has one: what a reader needs to order records from
// several ring buffers before it decodes them.
func (d *Decoder) Time(raw []byte) (uint64, bool) {
	if len(raw) < recordHeader {
		return 0, false
	}
	h := frameHeader{typ: RecordType(le.Uint32(raw)), misc: le.Uint16(raw[4:]), size: le.Uint16(raw[6:])}
	if h.size < recordHeader || int(h.size) > len(raw) || h.typ >= recordUserTypeStart || len(d.attrs) == 0 {
		return 0, false
	}
	raw = raw[:h.size]
	var tp timePos
	if d.same {
		tp = d.timePos[0]
	} else {
		ai, ok := d.attrOf(raw, h)
		if !ok || ai < 0 {
			return 0, false
		}
		tp = d.timePos[ai]
	}
	body := raw[recordHeader:]
	n := len(body) / 8
	if h.typ == RecordSample {
		if tp.sample < 0 || tp.sample >= n {
			return 0, false
		}
		return le.Uint64(body[8*tp.sample:]), true
	}
	if tp.trailer < 0 || tp.trailer > n {
		return 0, false
	}
	return le.Uint64(body[len(body)-8*tp.trailer:]), true
}

// calcTimePos returns where PERF_SAMPLE_TIME is: as a u64 index in a SAMPLE
// body, and counted in u64s from the end of a sample_id trailer (-1, -1
// without it).
func calcTimePos(t SampleType) timePos {
	if t&SampleTime == 0 {
		return timePos{-1, -1}
	}
	var p timePos
	for _, b := range []SampleType{SampleIdentifier, SampleIP, SampleTID} {
		if t&b != 0 {
			p.sample++
		}
	}
	p.trailer = 1
	for _, b := range []SampleType{SampleID, SampleStreamID, SampleCPU, SampleIdentifier} {
		if t&b != 0 {
			p.trailer++
		}
	}
	return p
}

// rawFrame reads the header of the record raw at off.
func rawFrame(raw []byte, off int64) (frameHeader, error) {
	if len(raw) < recordHeader {
		return frameHeader{}, truncErr(off, "record header")
	}
	h := frameHeader{typ: RecordType(le.Uint32(raw)), misc: le.Uint16(raw[4:]), size: le.Uint16(raw[6:])}
	if h.size < recordHeader {
		return h, formatErr(off+6, fmt.Sprintf("%v record size", h.typ), h.size)
	}
	if int(h.size) > len(raw) {
		return h, truncErr(off, fmt.Sprintf("%v record of size %#x", h.typ, h.size))
	}
	return h, nil
}

// attrOf finds the event of the kernel record raw (framed) by its sample
// id, as perf's evlist__event2evsel does; ok is false when the id matches
// no event. It returns -1, true when there are no events.
func (d *Decoder) attrOf(raw []byte, h frameHeader) (int, bool) {
	if len(d.attrs) == 0 {
		return -1, true
	}
	if len(d.attrs) == 1 {
		return 0, true
	}
	id := d.idOf(raw, h)
	if id == 0 { // no id, or a synthesized record
		return 0, true
	}
	ai, ok := d.idToAttr[id]
	return ai, ok
}

// idOf returns the sample id of the kernel record raw, 0 if it has none.
func (d *Decoder) idOf(raw []byte, h frameHeader) uint64 {
	if len(d.attrs) == 0 || !d.attrs[0].SampleIDAll() && h.typ != RecordSample {
		return 0
	}
	body := raw[recordHeader:h.size]
	n := len(body) / 8
	if h.typ == RecordSample {
		if d.idPos < 0 || d.idPos >= n {
			return 0
		}
		return le.Uint64(body[8*d.idPos:])
	}
	if d.isPos < 0 || d.isPos > n {
		return 0
	}
	return le.Uint64(body[8*(n-d.isPos):])
}

// fill sets the common fields of rec from the record raw and clears the
// rest, keeping the integer slices' memory.
func (d *Decoder) fill(rec *Record, raw []byte, off int64, h frameHeader, ai int) {
	s := &rec.Sample
	cc, regs, ri := s.Callchain[:0], s.Regs[:0], s.RegsIntr[:0]
	*rec = Record{
		Type:   h.typ,
		Misc:   h.misc,
		Offset: off,
		Data:   raw[:h.size],
	}
	s.Callchain, s.Regs, s.RegsIntr = cc, regs, ri
	if ai >= 0 {
		rec.Attr = &d.attrs[ai]
	}
}

// cursor reads the fields of one record.
type cursor struct {
	b   []byte // the record, header included
	p   int
	off int64 // the record's offset in its stream
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

// decode decodes the known kernel record raw at off (framed) into rec, as
// a record of event ai (-1: none).
func (d *Decoder) decode(rec *Record, raw []byte, off int64, h frameHeader, ai int) error {
	d.fill(rec, raw, off, h, ai)
	c := &cursor{b: rec.Data, p: recordHeader, off: off}
	var attr *Attr
	if ai >= 0 {
		attr = &d.attrs[ai]
	}
	if h.typ == RecordSample {
		if attr == nil {
			return formatErr(off, "SAMPLE record in a file without events", nil)
		}
		d.decodeSample(rec, c, attr)
		if c.err != nil {
			return c.err
		}
		return nil
	}
	// The sample_id trailer, at the end of the record.
	if attr != nil && attr.SampleIDAll() {
		if err := d.trailer(rec, c, attr); err != nil {
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
		m.Filename = d.str(c.b[min(c.p, len(c.b)):])
	case RecordComm:
		rec.Comm.PID, rec.Comm.TID = c.u32("pid"), c.u32("tid")
		rec.Comm.Comm = d.str(c.b[min(c.p, len(c.b)):])
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
func (d *Decoder) trailer(rec *Record, c *cursor, attr *Attr) error {
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
func (d *Decoder) decodeSample(rec *Record, c *cursor, attr *Attr) {
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

// maxInterned bounds the strings a Decoder keeps to hand out again.
const maxInterned = 1 << 14

// str returns the NUL-terminated string at the start of b, reusing an
// earlier equal string so that repeated names do not allocate.
func (d *Decoder) str(b []byte) string {
	for i, c := range b {
		if c == 0 {
			b = b[:i]
			break
		}
	}
	if s, ok := d.strs[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(d.strs) < maxInterned {
		d.strs[s] = s
	}
	return s
}
