package perfevent

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Offsets in struct perf_event_mmap_page (include/uapi/linux/perf_event.h).
const (
	metaDataHead   = 1024
	metaDataTail   = 1032
	metaDataOffset = 1040
	metaDataSize   = 1048
)

// ring is one CPU's ring buffer: the kernel writes records at data_head,
// the reader reads them in place from its read position, and gives their
// space back by moving data_tail past them once they are delivered and the
// caller is done with them.
//
// Positions are the kernel's: byte counts since the ring was mapped, taken
// modulo the data size to index data. Records are 8-byte aligned, so a
// header never straddles the end of data; a record may, and is then copied
// whole into wrap. At most one record straddles the end between data_tail
// and data_head (they are less than a ring apart), and the next one can only
// be written once data_tail has passed this one, so one wrap buffer a ring
// is enough.
type ring struct {
	cpu  int
	fd   int    // the event that owns the mapping
	mem  []byte // the mapping: metadata page, then data
	data []byte
	mask uint64
	head *uint64 // &data_head: the kernel writes, the reader loads (acquire)
	tail *uint64 // &data_tail: the reader stores (release), the kernel loads

	read  uint64 // position up to which records have been queued
	given uint64 // data_tail as last stored: the kernel may write up to given+len(data)
	// held are the records queued or delivered whose space has not been
	// given back, in ring order: held[first] is the oldest, and has the
	// ring sequence number firstSeq.
	held     []held
	first    int
	firstSeq uint64
	wrap     []byte
}

type held struct {
	end  uint64 // position after the record
	done bool   // delivered, and the caller has moved on
}

// newRing maps the ring of event fd: one metadata page and pages data pages.
func newRing(fd, cpu, pages int) (*ring, error) {
	ps := unix.Getpagesize()
	mem, err := unix.Mmap(fd, 0, (pages+1)*ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	r := &ring{cpu: cpu, fd: fd, mem: mem}
	off, size := le64(mem[metaDataOffset:]), le64(mem[metaDataSize:])
	if off == 0 || size == 0 || off+size > uint64(len(mem)) { // kernels before 4.1
		off, size = uint64(ps), uint64(pages*ps)
	}
	r.data = mem[off : off+size]
	r.mask = size - 1
	r.head = (*uint64)(unsafe.Pointer(&mem[metaDataHead]))
	r.tail = (*uint64)(unsafe.Pointer(&mem[metaDataTail]))
	r.read = atomic.LoadUint64(r.tail)
	r.given = r.read
	return r, nil
}

func le64(b []byte) uint64 { return *(*uint64)(unsafe.Pointer(&b[0])) }

func (r *ring) close() error {
	if r.mem == nil {
		return nil
	}
	m := r.mem
	r.mem, r.data, r.head, r.tail = nil, nil, nil, nil
	return unix.Munmap(m)
}

// next returns the record at the read position if the kernel has published
// one before head, with its position and sequence number, and moves past
// it; ok is false when there is none. A record that straddles the end of
// data is copied into r.wrap. A header whose size is impossible (which the
// kernel never writes) ends the reading of the ring at head: bad is true.
func (r *ring) next(head uint64) (raw []byte, pos, seq uint64, ok, bad bool) {
	if r.read >= head || head-r.read < 8 {
		return nil, 0, 0, false, false
	}
	pos = r.read
	off := pos & r.mask
	size := uint64(*(*uint16)(unsafe.Pointer(&r.data[off+6])))
	if size < 8 || size > head-pos || size&7 != 0 {
		r.skip(head)
		return nil, 0, 0, false, true
	}
	if n := uint64(len(r.data)); off+size <= n {
		raw = r.data[off : off+size : off+size]
	} else {
		if uint64(cap(r.wrap)) < size {
			r.wrap = make([]byte, size, 1<<16)
		}
		raw = r.wrap[:size:size]
		copy(raw, r.data[off:])
		copy(raw[n-off:], r.data[:size-(n-off)])
	}
	r.read += size
	seq = r.firstSeq + uint64(len(r.held)-r.first)
	r.held = append(r.held, held{end: r.read})
	return raw, pos, seq, true, false
}

// skip drops what the ring holds up to head: its bytes are given back as
// soon as the records held before them are.
func (r *ring) skip(head uint64) {
	r.read = head
	r.held = append(r.held, held{end: head, done: true})
	r.advance()
}

// release marks record seq done and gives back to the kernel the space of
// the done records at the front.
func (r *ring) release(seq uint64) {
	i := r.first + int(seq-r.firstSeq)
	if i < r.first || i >= len(r.held) {
		return
	}
	r.held[i].done = true
	r.advance()
}

// advance gives back the space of the done records at the front of held.
func (r *ring) advance() {
	end, moved := uint64(0), false
	for r.first < len(r.held) && r.held[r.first].done {
		end, moved = r.held[r.first].end, true
		r.first++
		r.firstSeq++
	}
	if !moved {
		return
	}
	if r.first == len(r.held) {
		r.held, r.first = r.held[:0], 0
	} else if r.first > 1024 && r.first > len(r.held)/2 {
		n := copy(r.held, r.held[r.first:])
		r.held, r.first = r.held[:n], 0
	}
	atomic.StoreUint64(r.tail, end)
	r.given = end
}

// loadHead returns data_head. The atomic load orders the reads of the
// records before it after it, as the kernel's smp_rmb() pairing requires.
func (r *ring) loadHead() uint64 { return atomic.LoadUint64(r.head) }
