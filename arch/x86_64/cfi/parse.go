package cfi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// ErrNoCFI is returned by [FromELF] for a file with no CFI to read: neither
// .eh_frame nor .debug_frame holds an FDE.
var ErrNoCFI = errors.New("cfi: no .eh_frame or .debug_frame FDEs")

// FormatError is malformed CFI: what is wrong, and where. [Parse] and
// [FromELF] return one when an entry's length cannot be trusted (nothing
// after it can be found); [Stats.Err] holds the first one behind an FDE
// that was left out or cut short.
type FormatError struct {
	Section string // ".eh_frame" or ".debug_frame"
	Offset  int64  // of the entry (CIE or FDE) at fault, from the start of the section
	Msg     string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("cfi: %s: %s (entry at offset %#x)", e.Section, e.Msg, e.Offset)
}

// section is one section of CFI to read: its bytes and the address it is
// loaded at (which pc-relative pointers are relative to; 0 for .debug_frame,
// which is not loaded and uses absolute pointers).
type section struct {
	name  string
	data  []byte
	addr  uint64
	debug bool // .debug_frame layout: CIE id ~0, CIE pointers are section offsets
	prio  int  // which of two overlapping FDEs wins: lower first
}

func (s *section) errorf(off int, format string, args ...any) *FormatError {
	return &FormatError{Section: s.name, Offset: int64(off), Msg: fmt.Sprintf(format, args...)}
}

// cie is a parsed Common Information Entry.
type cie struct {
	caf     uint64 // code alignment factor
	daf     int64  // data alignment factor
	fdeEnc  uint8  // how its FDEs' pc_begin and pc_range are encoded
	augData bool   // 'z': its FDEs carry augmentation data, with a length
	signal  bool   // 'S': its FDEs describe signal trampolines
	insAddr uint64 // address of init[0]
	init    []byte // initial instructions
	err     error  // why it cannot be used; nil if it can
	initial state  // the row its initial instructions leave
}

// fde is an FDE's header, and where its instructions are.
type fde struct {
	begin, end  uint64 // the pcs it covers: [begin, end)
	c           *cie
	sec         *section
	off         int32 // of the FDE in sec
	ins, insEnd int32 // its instructions: sec.data[ins:insEnd]
}

// entries reads the CIEs and FDEs of s and appends the FDEs it can use to
// fdes. An FDE that cannot be used is counted in st; an entry whose length
// is malformed ends the section with an error, since no later entry can be
// found.
func (s *section) entries(fdes []fde, st *Stats) ([]fde, error) {
	data := s.data
	if len(data) > math.MaxInt32 {
		return fdes, s.errorf(0, "%d bytes, more than 2 GiB", len(data))
	}
	cies := make(map[int]*cie)
	var later []pending // .debug_frame FDEs whose CIE comes after them
	fdes = slices.Grow(fdes, countEntries(data))
	for off := 0; off < len(data); {
		r := reader{b: data, off: off}
		length := uint64(r.u32())
		if r.bad {
			return fdes, s.errorf(off, "%d bytes left, too few for an entry length", len(data)-off)
		}
		if length == 0 {
			// The terminator libgcc and glibc stop at (crtend.o's
			// zero word); nothing after it belongs to the table.
			break
		}
		idSize := uint64(4)
		switch {
		case length == 0xffffffff:
			length, idSize = r.u64(), 8
			if r.bad {
				return fdes, s.errorf(off, "truncated 64-bit entry length")
			}
		case length >= 0xfffffff0:
			return fdes, s.errorf(off, "reserved entry length %#x", length)
		}
		body := r.off
		if length > uint64(len(data)-body) {
			return fdes, s.errorf(off, "entry length %#x runs past the end of the section (%#x bytes left)", length, len(data)-body)
		}
		if length < idSize {
			return fdes, s.errorf(off, "entry length %#x too short for its CIE pointer", length)
		}
		end := body + int(length)
		r.b = data[:end]
		var id uint64
		if idSize == 4 {
			id = uint64(r.u32())
		} else {
			id = r.u64()
		}
		p := pending{off: off, cie: -1, start: r.off, end: end}
		switch {
		case !s.debug && id == 0, s.debug && (id == 0xffffffff || id == ^uint64(0)):
			cies[off] = s.cie(&r, off)
		case s.debug:
			// An offset from the start of the section, to a CIE
			// before or after.
			if id < uint64(len(data)) {
				p.cie = int(id)
			}
			if p.cie > off {
				later = append(later, p)
				break
			}
			fdes = s.fde(fdes, p, cies, st)
		default:
			// .eh_frame: the pointer counts back from its own
			// offset, to a CIE already read.
			if id <= uint64(body) {
				p.cie = body - int(id)
			}
			fdes = s.fde(fdes, p, cies, st)
		}
		off = end
	}
	for _, p := range later {
		fdes = s.fde(fdes, p, cies, st)
	}
	return fdes, nil
}

// countEntries counts the entries of a section by their lengths alone,
// stopping at the first that is not plain: a bound on its FDEs, to size
// their slice once.
func countEntries(data []byte) int {
	n := 0
	for off := 0; len(data)-off >= 4; n++ {
		length := binary.LittleEndian.Uint32(data[off:])
		if length == 0 || length >= 0xfffffff0 || int64(length) > int64(len(data)-off-4) {
			break
		}
		off += 4 + int(length)
	}
	return n
}

// pending is an FDE entry: its offset, its CIE's (-1: outside the
// section), where its header starts after the CIE pointer, and its end.
type pending struct{ off, cie, start, end int }

// fde reads the header of the FDE p and appends it to fdes, or counts it
// as skipped in st.
func (s *section) fde(fdes []fde, p pending, cies map[int]*cie, st *Stats) []fde {
	st.FDEs++
	c := cies[p.cie]
	switch {
	case p.cie < 0:
		st.skip(s.errorf(p.off, "CIE pointer outside the section"))
		return fdes
	case c == nil:
		st.skip(s.errorf(p.off, "CIE pointer to %#x, where no CIE starts", p.cie))
		return fdes
	case c.err != nil:
		st.skip(s.errorf(p.off, "CIE at %#x: %v", p.cie, c.err))
		return fdes
	}
	r := reader{b: s.data[:p.end], off: p.start}
	begin, ok := r.pointer(c.fdeEnc, s.addr)
	size, _ := r.value(c.fdeEnc)
	if c.augData {
		r.take(r.uleb())
	}
	switch {
	case r.bad || !ok:
		st.skip(s.errorf(p.off, "truncated FDE header"))
		return fdes
	case begin+size < begin:
		st.skip(s.errorf(p.off, "pc range %#x+%#x wraps around", begin, size))
		return fdes
	case size == 0:
		return fdes // covers nothing
	}
	return append(fdes, fde{
		begin: begin, end: begin + size, c: c, sec: s,
		off: int32(p.off), ins: int32(r.off), insEnd: int32(p.end),
	})
}

// cie parses the CIE at off, r positioned after its id. A CIE that cannot
// be used is returned with err set, so its FDEs are skipped with the reason.
func (s *section) cie(r *reader, off int) *cie {
	c := &cie{fdeEnc: peAbsptr}
	fail := func(format string, args ...any) *cie {
		c.err = fmt.Errorf(format, args...)
		return c
	}
	version := r.u8()
	switch {
	case version == 1 || version == 3:
	case version == 4 && s.debug:
	default:
		return fail("CIE version %d", version)
	}
	aug := r.cstring()
	if version == 4 {
		if size, seg := r.u8(), r.u8(); size != 8 || seg != 0 {
			return fail("address size %d, segment selector size %d", size, seg)
		}
	}
	c.caf = r.uleb()
	c.daf = r.sleb()
	ra := uint64(0)
	if version == 1 {
		ra = uint64(r.u8())
	} else {
		ra = r.uleb()
	}
	if r.bad {
		return fail("truncated CIE")
	}
	if ra != regRA {
		return fail("return address column %d, not 16 (rip)", ra)
	}
	augEnd := -1
	for i := 0; i < len(aug); i++ {
		switch ch := aug[i]; {
		case ch == 'z' && i == 0:
			n := r.uleb()
			if r.bad || n > uint64(r.left()) {
				return fail("augmentation data length past the end of the CIE")
			}
			augEnd = r.off + int(n)
			c.augData = true
		case ch == 'S':
			c.signal = true
		case ch == 'R' && c.augData:
			c.fdeEnc = r.u8()
		case ch == 'L' && c.augData:
			r.u8() // the LSDA pointer's encoding: FDEs' augmentation data is skipped by its length
		case ch == 'P' && c.augData:
			enc := r.u8()
			if !r.skipPointer(enc, s.addr) {
				return fail("personality pointer encoding %#x", enc)
			}
		default:
			return fail("augmentation %q", aug)
		}
	}
	if augEnd >= 0 {
		if r.bad || r.off > augEnd {
			return fail("augmentation data longer than its length")
		}
		r.off = augEnd
	}
	if r.bad {
		return fail("truncated CIE")
	}
	if f := c.fdeEnc; f == peOmit || f&peIndirect != 0 || f&0x70 != 0 && f&0x70 != pePcrel || !knownFormat(f) {
		return fail("FDE pointer encoding %#x", f)
	}
	c.init = r.b[r.off:]
	c.insAddr = s.addr + uint64(r.off)
	empty := state{cfa: cfaRule{reg: noReg}}
	m := machine{c: c, initial: &empty, st: empty, inCIE: true}
	if err := m.run(c.init, c.insAddr); err != nil {
		return fail("initial instructions: %v", err)
	}
	c.initial = m.st
	return c
}

// knownFormat reports whether the low nibble of enc is a value format.
func knownFormat(enc uint8) bool {
	switch enc & 0x0f {
	case peAbsptr, peUleb128, peUdata2, peUdata4, peUdata8, peSleb128, peSdata2, peSdata4, peSdata8:
		return true
	}
	return false
}
