package perfevent

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/unwindd/unwindd/host/perfdata"
)

// fakeRing is a ring over Go memory and the kernel's side of it: write
// puts a record at data_head, as perf_output_begin/end do, if data_tail
// leaves room.
type fakeRing struct {
	*ring
	whead uint64
}

func newFakeRing(t testing.TB, size int) *fakeRing {
	t.Helper()
	ps := 4096
	mem := make([]byte, ps+size) // large: page-aligned, so the u64s are aligned
	binary.LittleEndian.PutUint64(mem[metaDataOffset:], uint64(ps))
	binary.LittleEndian.PutUint64(mem[metaDataSize:], uint64(size))
	r := &ring{mem: mem, data: mem[ps:], mask: uint64(size - 1)}
	r.head = (*uint64)(unsafe.Pointer(&mem[metaDataHead]))
	r.tail = (*uint64)(unsafe.Pointer(&mem[metaDataTail]))
	return &fakeRing{ring: r}
}

// write writes rec if there is room, and reports whether there was.
func (f *fakeRing) write(rec []byte) bool {
	size := uint64(len(f.data))
	if f.whead+uint64(len(rec))-atomic.LoadUint64(f.tail) > size {
		return false
	}
	for i, b := range rec {
		f.data[(f.whead+uint64(i))&f.mask] = b
	}
	f.whead += uint64(len(rec))
	atomic.StoreUint64(f.head, f.whead)
	return true
}

// sample returns a SAMPLE record of the test attr (TID, TIME) of n bytes,
// its body filled from seq.
func sample(seq, tm uint64, n int) []byte {
	b := make([]byte, n)
	le := binary.LittleEndian
	le.PutUint32(b, uint32(perfdata.RecordSample))
	le.PutUint16(b[6:], uint16(n))
	le.PutUint32(b[8:], uint32(seq))
	le.PutUint32(b[12:], uint32(seq))
	le.PutUint64(b[16:], tm)
	for i := 24; i < n; i++ {
		b[i] = byte(seq + uint64(i))
	}
	return b
}

// TestRingWrap writes records of random sizes through a small ring and
// reads them back, releasing them in random order: every record comes back
// whole (also those straddling the end), and the kernel side never
// overwrites a record not yet released.
func TestRingWrap(t *testing.T) {
	f := newFakeRing(t, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	var want [][]byte
	type got struct {
		seq uint64
		raw []byte
	}
	var pending []got
	wrote, read, wrapped := 0, 0, 0
	for wrote < 20000 {
		// The kernel writes as long as there is room.
		for {
			rec := sample(uint64(wrote), uint64(wrote), 24+8*rng.IntN(100))
			if !f.write(rec) {
				break
			}
			want = append(want, rec)
			wrote++
		}
		// The reader takes what is there, checks it, and releases a random
		// part of what it holds.
		head := f.loadHead()
		for {
			pos := f.read
			raw, p, seq, ok, bad := f.next(head)
			if bad {
				t.Fatal("bad record")
			}
			if !ok {
				break
			}
			if p != pos {
				t.Fatalf("position %d, want %d", p, pos)
			}
			if pos&f.mask+uint64(len(raw)) > uint64(len(f.data)) {
				wrapped++
			}
			if string(raw) != string(want[read]) {
				t.Fatalf("record %d differs", read)
			}
			pending = append(pending, got{seq, raw})
			read++
		}
		rng.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })
		keep := rng.IntN(len(pending) + 1)
		for _, g := range pending[keep:] {
			// Still intact: the kernel has not overwritten it.
			if le := binary.LittleEndian; string(g.raw) != string(want[le.Uint32(g.raw[8:])]) {
				t.Fatalf("record %d overwritten before its release", le.Uint32(g.raw[8:]))
			}
			f.release(g.seq)
		}
		pending = pending[:keep]
	}
	if wrapped == 0 {
		t.Error("no record straddled the ring's end")
	}
	t.Logf("%d records, %d straddled the end", read, wrapped)
}

// TestOrderAndSpill fills two rings with records whose times interleave
// across them and are out of order within them, as interrupts make them:
// the session delivers them in time order, and a ring more than half full
// of queued records is spilled, its space given back at once.
func TestOrderAndSpill(t *testing.T) {
	attrs := []perfdata.Attr{{EventAttr: perfdata.EventAttr{Type: perfdata.TypeSoftware,
		SampleType: perfdata.SampleTID | perfdata.SampleTime, Flags: perfdata.AttrSampleIDAll}}}
	a, b := newFakeRing(t, 8192), newFakeRing(t, 8192)
	s := &Session{dec: perfdata.NewDecoder(attrs), rings: []*ring{a.ring, b.ring}, epfd: -1, evfd: -1}
	rng := rand.New(rand.NewPCG(3, 4))
	var times []uint64
	for i := range 120 {
		tm := uint64(1000 + 10*i + rng.IntN(25)) // jitter: out of order in a ring
		r := a
		if rng.IntN(2) == 0 {
			r = b
		}
		if !r.write(sample(uint64(i), tm, 96)) {
			t.Fatal("ring full")
		}
		times = append(times, tm)
	}
	s.pass()
	if s.stats.Spilled == 0 {
		t.Errorf("rings of %d and %d of 8192 bytes not spilled", a.read-a.given, b.read-b.given)
	}
	if a.given != a.read || b.given != b.read {
		t.Errorf("spilled rings gave back %d of %d and %d of %d bytes", a.given, a.read, b.given, b.read)
	}
	s.state = draining
	var rec perfdata.Record
	var last uint64
	n := 0
	for {
		err := s.ReadInto(&rec)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		tm, _ := rec.Time()
		if tm < last {
			t.Errorf("record at %d after one at %d", tm, last)
		}
		if want := byte(rec.Ident.PID + 30); rec.Data[30] != want {
			t.Errorf("record %d: byte 30 is %d, want %d", rec.Ident.PID, rec.Data[30], want)
		}
		last = tm
		n++
	}
	if n != len(times) || s.stats.Unordered != 0 {
		t.Errorf("%d records delivered of %d, %d out of order", n, len(times), s.stats.Unordered)
	}
}
