package perfdata

import (
	"bytes"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
)

// normalized returns a copy of rec with empty slices made nil, so that
// records decoded by different paths compare equal with reflect.DeepEqual
// whatever the reused slices held before.
func normalized(rec Record) Record {
	s := &rec.Sample
	for _, p := range []*[]uint64{&s.Callchain, &s.Regs, &s.RegsIntr} {
		if len(*p) == 0 {
			*p = nil
		}
	}
	for _, p := range []*[]byte{&s.Read, &s.Raw, &s.Branches, &s.Stack, &s.Aux, &rec.Mmap.BuildID} {
		if len(*p) == 0 {
			*p = nil
		}
	}
	return rec
}

// decodersAgree decodes every record of f again from its bytes with a
// Decoder of f's events and checks both decodings are equal, and that
// Decoder.Time finds every kernel record's time. It returns how many records
// it compared.
func decodersAgree(t *testing.T, f *File) int {
	t.Helper()
	d := NewDecoder(f.Attrs)
	var again Record
	n, bad := 0, 0
	eachRecord(t, f, func(rec *Record) {
		n++
		if err := d.DecodeAt(rec.Data, rec.Offset, &again); err != nil {
			t.Fatalf("%v record at %#x: Decoder: %v", rec.Type, rec.Offset, err)
		}
		if a, b := normalized(*rec), normalized(again); !reflect.DeepEqual(a, b) {
			if bad++; bad <= 5 {
				t.Errorf("%v record at %#x decodes differently:\nReader  %+v\nDecoder %+v", rec.Type, rec.Offset, a, b)
			}
		}
		want, hasTime := rec.Time()
		if rec.Type >= recordUserTypeStart {
			want, hasTime = 0, false
		}
		if got, ok := d.Time(rec.Data); got != want || ok != hasTime {
			if bad++; bad <= 5 {
				t.Errorf("%v record at %#x: Decoder.Time %d %v, Reader %d %v", rec.Type, rec.Offset, got, ok, want, hasTime)
			}
		}
	})
	return n
}

// TestDecoderAgrees checks that a Decoder built from a file's events decodes
// every record of the testdata files exactly as the file's Reader does.
func TestDecoderAgrees(t *testing.T) {
	for _, name := range testFiles {
		t.Run(filepath.Base(name), func(t *testing.T) {
			f := openTestFile(t, name)
			if n := decodersAgree(t, f); n == 0 {
				t.Fatal("no records")
			}
		})
	}
}

// TestDecoderAgreesLive does the same on a fresh recording with several
// events (cpu-clock with user registers and stack, two tracepoints), each
// of whose records the Decoder must attribute by its sample id.
func TestDecoderAgreesLive(t *testing.T) {
	prog := buildTestProg(t)
	path := record(t, filepath.Join(t.TempDir(), "perf.data"), "-e", "cpu-clock", "-e", "raw_syscalls:sys_enter",
		"-e", "raw_syscalls:sys_exit", "-F", "999", "--call-graph", "dwarf,1024", "--", prog)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(f.Attrs) < 3 {
		t.Fatalf("%d events, want 3", len(f.Attrs))
	}
	n := decodersAgree(t, f)
	t.Logf("%d records decoded both ways", n)
}

func openTestFile(t *testing.T, name string) *File {
	t.Helper()
	f, err := Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestDecoderErrors checks what Decode says of records it cannot decode:
// an unknown sample id, a record shorter than its header or its size, a
// body overrunning its record; and that error offsets count from DecodeAt's.
func TestDecoderErrors(t *testing.T) {
	st := SampleIdentifier | SampleTID | SampleTime
	attrs := []Attr{
		{EventAttr: EventAttr{Type: TypeSoftware, SampleType: st, Flags: AttrSampleIDAll}, IDs: []uint64{7}},
		{EventAttr: EventAttr{Type: TypeSoftware, SampleType: st, Flags: AttrSampleIDAll}, IDs: []uint64{8}},
	}
	d := NewDecoder(attrs)
	rec := func(typ RecordType, body ...uint64) []byte {
		b := make([]byte, recordHeader+8*len(body))
		le.PutUint32(b, uint32(typ))
		le.PutUint16(b[6:], uint16(len(b)))
		for i, v := range body {
			le.PutUint64(b[recordHeader+8*i:], v)
		}
		return b
	}
	var r Record
	// A good sample and a good trailer.
	if err := d.Decode(rec(RecordSample, 8, 5|6<<32, 1000), &r); err != nil || r.Attr != &attrs[1] || r.Ident.Time != 1000 || r.Ident.TID != 6 {
		t.Errorf("sample: %v, attr %p (want %p), ident %+v", err, r.Attr, &attrs[1], r.Ident)
	}
	if err := d.Decode(rec(RecordLost, 3, 99, 5|5<<32, 2000, 7), &r); err != nil || r.Attr != &attrs[0] || r.Lost.Lost != 99 || r.Ident.Time != 2000 {
		t.Errorf("lost: %v, attr %p, %+v %+v", err, r.Attr, r.Lost, r.Ident)
	}
	if tm, ok := d.Time(rec(RecordLost, 3, 99, 5|5<<32, 2000, 7)); tm != 2000 || !ok {
		t.Errorf("Time of lost record: %d %v", tm, ok)
	}
	for _, c := range []struct {
		name string
		raw  []byte
		off  int64
		want string
		is   error
	}{
		{"unknown id", rec(RecordSample, 9, 5|6<<32, 1000), 0x100, "perfdata: SAMPLE record of sample id 0x9 at offset 0x100", ErrUnknownEvent},
		{"short", []byte{9, 0, 0, 0}, 0x10, "perfdata: record header truncated at offset 0x10", ErrTruncated},
		{"size beyond", rec(RecordSample, 8, 5|6<<32, 1000)[:16], 0, "perfdata: SAMPLE record of size 0x20 truncated at offset 0x0", ErrTruncated},
		{"overrun", rec(RecordComm, 1, 8), 0x40, "perfdata: COMM record size shorter than its 24-byte sample_id 0x18 at offset 0x46", nil},
	} {
		err := d.DecodeAt(c.raw, c.off, &r)
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Errorf("%s: %T is no *FormatError", c.name, err)
		}
		if c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("%s: %v does not wrap %v", c.name, err, c.is)
		}
	}
}

// FuzzDecoder decodes arbitrary bytes as one record of the events of the
// testdata file with several events: Decode and Time never panic, Decode
// fails only with a *FormatError, and Time finds a time only in a record
// Decode accepts with the same time.
func FuzzDecoder(f *testing.F) {
	tf, err := Open("testdata/syscalls-pipe.perf.data")
	if err != nil {
		f.Fatal(err)
	}
	defer tf.Close()
	attrs := tf.Attrs
	n := 0
	eachRecord(f, tf, func(rec *Record) {
		if n++; n%7 == 0 || rec.Type != RecordSample {
			f.Add(bytes.Clone(rec.Data))
		}
	})
	d := NewDecoder(attrs)
	f.Fuzz(func(t *testing.T, raw []byte) {
		var rec Record
		err := d.Decode(raw, &rec)
		tm, ok := d.Time(raw)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("%T is no *FormatError: %v", err, err)
			}
			return
		}
		if want, has := rec.Time(); ok && (!has || want != tm) {
			t.Fatalf("Time %d, Decode's %d %v", tm, want, has)
		}
	})
}
