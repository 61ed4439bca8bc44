package perfdata

import (
	"bytes"
	"encoding/binary"
	"io"
	"slices"
	"testing"
)

// stream builds a pipe-mode perf.data stream in memory.
type stream struct{ b bytes.Buffer }

func newStream() *stream {
	s := &stream{}
	s.b.WriteString("PERFILE2")
	s.u64(pipeHeaderSize)
	return s
}

func (s *stream) u64(v ...uint64) {
	for _, x := range v {
		binary.Write(&s.b, le, x)
	}
}

// rec appends a record of type t whose body is made of body's values:
// uint64, uint32, uint16, []byte (written as is).
func (s *stream) rec(t RecordType, misc uint16, body ...any) {
	var b bytes.Buffer
	for _, v := range body {
		switch v := v.(type) {
		case []byte:
			b.Write(v)
		case string:
			b.WriteString(v)
		default:
			binary.Write(&b, le, v)
		}
	}
	binary.Write(&s.b, le, uint32(t))
	binary.Write(&s.b, le, misc)
	binary.Write(&s.b, le, uint16(recordHeader+b.Len()))
	s.b.Write(b.Bytes())
}

// attr appends a HEADER_ATTR record.
func (s *stream) attr(a EventAttr, ids ...uint64) {
	var b [attrSizeMax]byte
	le.PutUint32(b[0:], a.Type)
	le.PutUint32(b[4:], attrSizeMax)
	le.PutUint64(b[8:], a.Config)
	le.PutUint64(b[24:], uint64(a.SampleType))
	le.PutUint64(b[32:], uint64(a.ReadFormat))
	le.PutUint64(b[40:], uint64(a.Flags))
	le.PutUint64(b[72:], a.BranchSampleType)
	le.PutUint64(b[80:], a.SampleRegsUser)
	le.PutUint32(b[88:], a.SampleStackUser)
	le.PutUint64(b[96:], a.SampleRegsIntr)
	body := []any{b[:]}
	for _, id := range ids {
		body = append(body, id)
	}
	s.rec(RecordHeaderAttr, 0, body...)
}

func (s *stream) file(t *testing.T) *File {
	t.Helper()
	f, err := NewFile(bytes.NewReader(s.b.Bytes()), int64(s.b.Len()))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// eachRecord calls fn with every record of f, in order, failing t on a read
// error, and returns the reader's counts. rec is reused between calls.
func eachRecord(t testing.TB, f *File, fn func(rec *Record)) Stats {
	t.Helper()
	rr := f.Records()
	var rec Record
	for n := 0; ; n++ {
		err := rr.ReadInto(&rec)
		if err == io.EOF {
			return rr.Stats()
		}
		if err != nil {
			t.Fatalf("record %d: %v", n, err)
		}
		fn(&rec)
	}
}

func readRecords(t *testing.T, f *File) ([]Record, Stats, error) {
	t.Helper()
	rr := f.Records()
	var out []Record
	for {
		var rec Record
		err := rr.ReadInto(&rec)
		if err == io.EOF {
			return out, rr.Stats(), nil
		}
		if err != nil {
			return out, rr.Stats(), err
		}
		out = append(out, rec)
	}
}

// TestOrdering checks perf's finished-round rule on a made-up stream.
func TestOrdering(t *testing.T) {
	s := newStream()
	s.attr(EventAttr{Type: TypeSoftware, SampleType: SampleIP | SampleTime, Flags: AttrSampleIDAll}, 1)
	sample := func(ip, time uint64) { s.rec(RecordSample, MiscUser, ip, time) }
	sample(1, 50)
	sample(2, 30)
	s.rec(RecordComm, 0, uint32(1), uint32(1), "untimed\x00", uint64(0)) // time 0: out at once
	s.rec(RecordFinishedRound, 0)                                        // limit 0: nothing; next 50
	sample(3, 40)
	sample(4, 10)
	sample(5, 100)
	s.rec(RecordFinishedRound, 0) // up to 50: 10 30 40 50; next 100
	sample(6, 20)                 // older than the flush: held to the next one
	sample(7, 70)
	sample(8, 70)                 // same time: file order
	s.rec(RecordFinishedRound, 0) // up to 100: 20 70 70 100
	sample(9, 5)
	recs, st, err := readRecords(t, s.file(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, r := range recs {
		switch r.Type {
		case RecordSample:
			got = append(got, r.Sample.IP)
		case RecordComm:
			got = append(got, 1000)
		case RecordFinishedRound:
			got = append(got, 0)
		}
	}
	want := []uint64{1000, 0, 0, 4, 2, 3, 1, 0, 6, 7, 8, 5, 9}
	if !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	if st.Unordered != 2 || st.Records != uint64(len(want)) {
		t.Errorf("stats %+v", st)
	}
}

// allTypes is a stream with one record of each type this package decodes
// (and every sample field), and some it skips.
func allTypes() *stream {
	all := SampleIdentifier | SampleIP | SampleTID | SampleTime | SampleAddr | SampleID |
		SampleStreamID | SampleCPU | SamplePeriod | SampleRead | SampleCallchain | SampleRaw |
		SampleBranchStack | SampleRegsUser | SampleStackUser | SampleWeight | SampleDataSrc |
		SampleTransaction | SampleRegsIntr | SamplePhysAddr | SampleCgroup |
		SampleDataPageSize | SampleCodePageSize | SampleAux
	s := newStream()
	s.attr(EventAttr{
		Type: TypeSoftware, SampleType: all, Flags: AttrSampleIDAll,
		ReadFormat: ReadGroup | ReadID | ReadTotalTimeEnabled, BranchSampleType: branchHWIndex,
		SampleRegsUser: 0b1011, SampleStackUser: 16, SampleRegsIntr: 0b11,
	}, 7, 8)
	s.attr(EventAttr{Type: TypeSoftware, SampleType: all}, 9)
	// sample_id trailer: TID, TIME, ID, STREAM_ID, CPU, IDENTIFIER.
	trailer := func(time uint64) []any {
		return []any{uint32(10), uint32(11), time, uint64(8), uint64(77), uint32(1), uint32(0), uint64(8)}
	}
	with := func(body []any, time uint64) []any { return append(body, trailer(time)...) }
	s.rec(RecordMmap, 0, with([]any{uint32(10), uint32(11), uint64(0x1000), uint64(0x2000), uint64(0), "/bin/x\x00\x00"}, 1)...)
	s.rec(RecordMmap2, MiscMmapBuildID, with([]any{uint32(10), uint32(11), uint64(0x3000), uint64(0x1000), uint64(0x10),
		[]byte{4, 0, 0, 0}, []byte{0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		uint32(5), uint32(2), "/lib/y.so\x00\x00\x00\x00\x00\x00\x00"}, 2)...)
	s.rec(RecordComm, MiscCommExec, with([]any{uint32(10), uint32(11), "prog\x00\x00\x00\x00"}, 3)...)
	s.rec(RecordFork, 0, with([]any{uint32(10), uint32(1), uint32(12), uint32(1), uint64(4)}, 4)...)
	s.rec(RecordExit, 0, with([]any{uint32(10), uint32(1), uint32(12), uint32(1), uint64(5)}, 5)...)
	s.rec(RecordLost, 0, with([]any{uint64(8), uint64(42)}, 6)...)
	s.rec(RecordLostSamples, 0, with([]any{uint64(43)}, 7)...)
	s.rec(RecordThrottle, 0, with([]any{uint64(8), uint64(8), uint64(77)}, 8)...)
	s.rec(RecordUnthrottle, 0, with([]any{uint64(9), uint64(8), uint64(77)}, 9)...)
	s.rec(RecordType(50), 0, uint64(1))  // unknown kernel type
	s.rec(RecordType(200), 0, uint64(1)) // unknown user type
	// AUXTRACE: its payload follows the record, outside its size.
	s.rec(RecordAuxtrace, 0, uint64(16), uint64(0), uint64(0), uint32(0), uint32(0), uint32(0), uint32(0))
	s.b.Write(make([]byte, 16))
	stack := []byte("0123456789abcdef")
	s.rec(RecordSample, MiscUser,
		uint64(8),              // IDENTIFIER
		uint64(0x401000),       // IP
		uint32(10), uint32(11), // TID
		uint64(10),           // TIME
		uint64(0xadd),        // ADDR
		uint64(8),            // ID
		uint64(77),           // STREAM_ID
		uint32(1), uint32(0), // CPU
		uint64(1000),           // PERIOD
		uint64(2), uint64(123), // READ: nr, time_enabled
		uint64(1), uint64(7), //   value, id
		uint64(2), uint64(8), //   value, id
		uint64(3), uint64(1), uint64(2), uint64(3), // CALLCHAIN
		uint32(4), []byte{1, 2, 3, 4}, // RAW (not padded here)
		uint64(1), uint64(99), uint64(0xa), uint64(0xb), uint64(0xc), // BRANCH_STACK with hw_idx
		uint64(2), uint64(0xa0), uint64(0xb0), uint64(0xc0), // REGS_USER: 3 of mask 0b1011
		uint64(16), stack, uint64(12), // STACK_USER: size, data, dyn_size
		uint64(0x77),                    // WEIGHT
		uint64(0x88),                    // DATA_SRC
		uint64(0x99),                    // TRANSACTION
		uint64(2), uint64(1), uint64(2), // REGS_INTR
		uint64(0xaa), uint64(0xbb), uint64(4096), uint64(8192), // PHYS_ADDR CGROUP DATA/CODE_PAGE_SIZE
		uint64(3), []byte("aux"), // AUX
	)
	return s
}

// TestRecordTypes decodes one of each record type this package decodes,
// with every sample field, and skips unknown types.
func TestRecordTypes(t *testing.T) {
	f := allTypes().file(t)
	recs, st, err := readRecords(t, f)
	if err != nil {
		t.Fatal(err)
	}
	if st.Unknown != 2 || len(recs) != 11 {
		t.Fatalf("%d records, stats %+v", len(recs), st)
	}
	byType := make(map[RecordType]*Record)
	for i := range recs {
		byType[recs[i].Type] = &recs[i]
		if r := &recs[i]; r.Type != RecordAuxtrace && (r.Attr != &f.Attrs[0] || r.Ident.ID != 8 || r.Ident.TID != 11 || r.Ident.CPU != 1 || r.Ident.StreamID != 77) {
			t.Errorf("%v: attr %p ident %+v", r.Type, r.Attr, r.Ident)
		}
	}
	if m := byType[RecordMmap].Mmap; m.Filename != "/bin/x" || m.Addr != 0x1000 || m.Len != 0x2000 {
		t.Errorf("MMAP %+v", m)
	}
	if m := byType[RecordMmap2].Mmap; m.Filename != "/lib/y.so" || !bytes.Equal(m.BuildID, []byte{0xde, 0xad, 0xbe, 0xef}) || m.Prot != 5 || m.Flags != 2 || m.Pgoff != 0x10 {
		t.Errorf("MMAP2 %+v", m)
	}
	if c := byType[RecordComm].Comm; c.Comm != "prog" || !c.Exec || c.TID != 11 {
		t.Errorf("COMM %+v", c)
	}
	if k := byType[RecordFork].Task; k != (Task{PID: 10, PPID: 1, TID: 12, PTID: 1, Time: 4}) {
		t.Errorf("FORK %+v", k)
	}
	if k := byType[RecordExit].Task; k.Time != 5 {
		t.Errorf("EXIT %+v", k)
	}
	if l := byType[RecordLost].Lost; l != (Lost{ID: 8, Lost: 42}) {
		t.Errorf("LOST %+v", l)
	}
	if l := byType[RecordLostSamples].Lost; l.Lost != 43 {
		t.Errorf("LOST_SAMPLES %+v", l)
	}
	if th := byType[RecordThrottle].Throttle; th != (Throttle{Time: 8, ID: 8, StreamID: 77}) {
		t.Errorf("THROTTLE %+v", th)
	}
	if th := byType[RecordUnthrottle].Throttle; th.Time != 9 {
		t.Errorf("UNTHROTTLE %+v", th)
	}
	r := byType[RecordSample]
	sm := &r.Sample
	if r.Ident.Time != 10 || sm.IP != 0x401000 || sm.Addr != 0xadd || sm.Period != 1000 ||
		len(sm.Read) != 6*8 || !slices.Equal(sm.Callchain, []uint64{1, 2, 3}) ||
		!bytes.Equal(sm.Raw, []byte{1, 2, 3, 4}) || len(sm.Branches) != 24 ||
		sm.RegsABI != 2 || !slices.Equal(sm.Regs, []uint64{0xa0, 0xb0, 0xc0}) ||
		string(sm.Stack) != "0123456789ab" || sm.StackSize != 16 ||
		sm.Weight != 0x77 || sm.DataSrc != 0x88 || sm.Txn != 0x99 ||
		!slices.Equal(sm.RegsIntr, []uint64{1, 2}) || sm.PhysAddr != 0xaa || sm.Cgroup != 0xbb ||
		sm.DataPageSize != 4096 || sm.CodePageSize != 8192 || string(sm.Aux) != "aux" {
		t.Errorf("SAMPLE %+v ident %+v", sm, r.Ident)
	}
	if len(sm.Branches) > 0 && le.Uint64(sm.Branches) != 0xa {
		t.Errorf("branch from %#x", le.Uint64(sm.Branches))
	}
}

// TestBadRecords checks errors for records whose fields do not fit.
func TestBadRecords(t *testing.T) {
	for _, tt := range []struct {
		name string
		rec  func(s *stream)
		msg  string
	}{
		{"callchain", func(s *stream) { s.rec(RecordSample, 0, uint64(1), uint64(1000)) }, "CALLCHAIN overruns its SAMPLE record of size 0x18 at offset 0xd8"},
		{"zero size", func(s *stream) { s.b.Write([]byte{9, 0, 0, 0, 0, 0, 0, 0}) }, "SAMPLE record size 0x0 at offset 0xc6"},
		{"short", func(s *stream) { s.b.Write([]byte{9, 0, 0, 0, 0, 0, 0x40, 0, 1, 2}) }, "SAMPLE record of size 0x40 truncated at offset 0xc0"},
		{"stack dyn_size", func(s *stream) { s.rec(RecordSample, 0, uint64(1), uint64(0), uint64(8), uint64(0), uint64(9)) }, "STACK_USER dyn_size beyond its size 0x9"},
		{"trailer", func(s *stream) { s.rec(RecordExit, 0, uint32(1)) }, "EXIT record size shorter than its 8-byte sample_id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStream()
			s.attr(EventAttr{Type: TypeSoftware, SampleType: SampleTime | SampleCallchain | SampleStackUser, Flags: AttrSampleIDAll})
			s.rec(RecordComm, 0, uint32(1), uint32(1), "ok\x00\x00\x00\x00\x00\x00", uint64(0))
			tt.rec(s)
			data := s.b.Bytes()
			recs, _, err := readRecords(t, s.file(t))
			if len(recs) != 1 || recs[0].Type != RecordComm {
				t.Errorf("records before the bad one: %d", len(recs))
			}
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.msg)) {
				t.Fatalf("error %v, want %q", err, tt.msg)
			}
			checkFormatError(t, err, len(data))
		})
	}
}
