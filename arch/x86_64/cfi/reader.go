package cfi

import (
	"encoding/binary"
	"math"
)

// reader reads little-endian fields from b at off. A read past the end sets
// bad and returns 0, so a parser checks once after a group of reads instead
// of after each one; off never moves past len(b).
type reader struct {
	b   []byte
	off int
	bad bool
}

func (r *reader) left() int { return len(r.b) - r.off }

// take returns the next n bytes, or nil (and bad set) when fewer are left.
func (r *reader) take(n uint64) []byte {
	if r.bad || n > uint64(r.left()) {
		r.bad = true
		return nil
	}
	p := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return p
}

func (r *reader) u8() uint8 {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if p := r.take(2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if p := r.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if p := r.take(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

// uleb reads an unsigned LEB128 number. Bits beyond 64 are dropped; a number
// longer than the bytes left sets bad.
func (r *reader) uleb() uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if r.bad || r.off >= len(r.b) {
			r.bad = true
			return 0
		}
		c := r.b[r.off]
		r.off++
		if shift < 64 {
			v |= uint64(c&0x7f) << shift
		}
		if c&0x80 == 0 {
			return v
		}
	}
}

// ulebInt reads an unsigned LEB128 number as an int64, MaxInt64 when it is
// larger: an offset that large is bad wherever it is used.
func (r *reader) ulebInt() int64 {
	return int64(min(r.uleb(), math.MaxInt64))
}

// sleb reads a signed LEB128 number, as uleb does.
func (r *reader) sleb() int64 {
	var v int64
	shift := uint(0)
	for {
		if r.bad || r.off >= len(r.b) {
			r.bad = true
			return 0
		}
		c := r.b[r.off]
		r.off++
		if shift < 64 {
			v |= int64(c&0x7f) << shift
		}
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return v
		}
	}
}

// cstring reads a NUL-terminated string, without the NUL.
func (r *reader) cstring() string {
	for i := r.off; i < len(r.b); i++ {
		if r.b[i] == 0 {
			s := string(r.b[r.off:i])
			r.off = i + 1
			return s
		}
	}
	r.bad = true
	return ""
}

// Pointer encodings (DW_EH_PE_*, LSB 5.0 §10.5.1): the low nibble is the
// format, the next three bits how the value applies, the top bit indirection.
const (
	peAbsptr  = 0x00
	peUleb128 = 0x01
	peUdata2  = 0x02
	peUdata4  = 0x03
	peUdata8  = 0x04
	peSleb128 = 0x09
	peSdata2  = 0x0a
	peSdata4  = 0x0b
	peSdata8  = 0x0c

	pePcrel    = 0x10
	peTextrel  = 0x20
	peDatarel  = 0x30
	peFuncrel  = 0x40
	peAligned  = 0x50
	peIndirect = 0x80
	peOmit     = 0xff
)

// value reads a number in the format (low nibble) of enc; ok is false for a
// format that does not exist.
func (r *reader) value(enc uint8) (v uint64, ok bool) {
	switch enc & 0x0f {
	case peAbsptr, peUdata8, peSdata8:
		return r.u64(), true
	case peUleb128:
		return r.uleb(), true
	case peUdata2:
		return uint64(r.u16()), true
	case peUdata4:
		return uint64(r.u32()), true
	case peSleb128:
		return uint64(r.sleb()), true
	case peSdata2:
		return uint64(int64(int16(r.u16()))), true
	case peSdata4:
		return uint64(int64(int32(r.u32()))), true
	}
	return 0, false
}

// pointer reads a pointer encoded as enc, with secAddr the address the
// section is loaded at (for pcrel: the address of the field itself). Only
// absolute and pc-relative pointers can be resolved from the section alone;
// ok is false for others, and for indirect ones (the pointer would have to be
// read from memory).
func (r *reader) pointer(enc uint8, secAddr uint64) (v uint64, ok bool) {
	if enc == peOmit || enc&peIndirect != 0 {
		return 0, false
	}
	at := secAddr + uint64(r.off)
	v, ok = r.value(enc)
	switch enc & 0x70 {
	case 0:
	case pePcrel:
		v += at
	default:
		return 0, false
	}
	return v, ok
}

// skipPointer moves past a pointer encoded as enc without resolving it (a
// personality routine's address, which unwinding does not need).
func (r *reader) skipPointer(enc uint8, secAddr uint64) bool {
	if enc == peOmit {
		return true
	}
	if enc&0x70 == peAligned {
		at := secAddr + uint64(r.off)
		r.take((8 - at%8) % 8)
	}
	_, ok := r.value(enc)
	return ok && !r.bad
}
