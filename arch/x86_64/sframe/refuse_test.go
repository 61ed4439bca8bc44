package sframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// layout locates the fields of a fixture's section, for mutating them.
type layout struct {
	s    *Section
	data []byte
}

func (l layout) fdesStart() uint64 {
	return headerSize + uint64(l.data[7]) + uint64(binary.LittleEndian.Uint32(l.data[20:]))
}

func (l layout) fresStart() uint64 {
	return headerSize + uint64(l.data[7]) + uint64(binary.LittleEndian.Uint32(l.data[24:]))
}

func (l layout) fresEnd() uint64 {
	return l.fresStart() + uint64(binary.LittleEndian.Uint32(l.data[16:]))
}

// fde is the section offset of FDE i (in v3, of its index entry).
func (l layout) fde(i int) uint64 { return l.fdesStart() + uint64(i)*fdeSize[l.s.version] }

// attr is the section offset of v3 FDE i's attributes.
func (l layout) attr(i int) uint64 { return uint64(l.s.fdes[i].fres) - 5 }

// info is the section offset of FDE i's info byte.
func (l layout) info(i int) uint64 {
	if l.s.version == 3 {
		return l.attr(i) + 2
	}
	return l.fde(i) + 16
}

// fre is the section offset of FRE j of FDE i.
func (l layout) fre(i, j int) uint64 {
	f := &l.s.fdes[i]
	p := f.fres
	for range j {
		_, info := l.s.freHeader(f, p)
		p += uint32(f.addr) + 1 + uint32(wordCount(info)*wordSize(info))
	}
	return uint64(p)
}

// funcAt is the index of the FDE of the function named.
func funcAt(t *testing.T, fx *fixture, name string) int {
	t.Helper()
	pc := fx.sym(t, name)
	for i := range fx.sec.NumFDEs() {
		if fx.sec.Func(i).Start == pc {
			return i
		}
	}
	t.Fatalf("no FDE for %s", name)
	return 0
}

// TestRefuse mutates the fixtures' sections and checks that Parse refuses
// each with the right error, at the right offset.
func TestRefuse(t *testing.T) {
	le := binary.LittleEndian
	// Each case mutates d (a copy of the section) and returns the offset
	// the error must name.
	type mutate func(t *testing.T, fx *fixture, l layout, d []byte) uint64
	tests := []struct {
		name    string
		fixture string
		mut     mutate
		err     error
		msg     string
	}{
		{"bad magic", "prog.v2", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			d[0] = 0
			return 0
		}, ErrMalformed, "bad magic"},
		{"big-endian", "prog.v2", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			d[0], d[1] = d[1], d[0]
			return 0
		}, ErrUnsupported, "big-endian"},
		{"version 0", "prog.v2", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			d[2] = 0
			return 2
		}, ErrUnsupported, "version 0"},
		{"version 4", "prog.v3", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			d[2] = 4
			return 2
		}, ErrUnsupported, "version 4"},
		{"unknown flag", "prog.v2", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			d[3] |= 0x8
			return 3
		}, ErrUnsupported, "unknown flags 0x8"},
		{"v1 PCREL", "prog.v1", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			d[3] |= flagPCRel
			return 3
		}, ErrUnsupported, "unknown flags 0x4 in a version 1"},
		{"v3 FRAME_POINTER", "prog.v3", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			d[3] |= flagFramePointer // removed in v3
			return 3
		}, ErrUnsupported, "unknown flags 0x2 in a version 3"},
		{"aarch64", "prog.v2", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			d[4] = 2
			return 4
		}, ErrUnsupported, "ABI/arch 2"},
		{"FDEs past the end", "prog.v2", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			le.PutUint32(d[8:], 1000)
			return 20
		}, ErrMalformed, "1000 FDEs) past the end"},
		{"FREs past the end", "prog.v3", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			le.PutUint32(d[16:], le.Uint32(d[16:])+uint32(len(d)))
			return 24
		}, ErrMalformed, "FRE sub-section"},
		{"FREs inside the FDEs", "prog.v2", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			le.PutUint32(d[24:], 4)
			return 24
		}, ErrMalformed, "inside the FDE sub-section"},
		{"unsorted", "prog.v2", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			a, b := l.fde(5), l.fde(6)
			x := bytes.Clone(d[a:b])
			copy(d[a:b], d[b:b+20])
			copy(d[b:b+20], x)
			return b
		}, ErrMalformed, "FDE 6: function at"},
		{"unsorted PCREL", "prog.v3", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			// Swap index entries 5 and 6, keeping each function's
			// address: the start fields are relative to themselves.
			a, b := l.fde(5), l.fde(6)
			sa, sb := int64(le.Uint64(d[a:])), int64(le.Uint64(d[b:]))
			x := bytes.Clone(d[a:b])
			copy(d[a:b], d[b:b+16])
			copy(d[b:b+16], x)
			le.PutUint64(d[a:], uint64(sb+16))
			le.PutUint64(d[b:], uint64(sa-16))
			return b
		}, ErrMalformed, "(FDEs unsorted or overlapping)"},
		{"overlapping", "prog.v2pcrel", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := funcAt(t, fx, "main")
			le.PutUint32(d[l.fde(i)+4:], le.Uint32(d[l.fde(i)+4:])+0x100)
			return l.fde(i + 1)
		}, ErrMalformed, "starts before the end"},
		{"size 0", "prog.v2", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := funcAt(t, fx, "vla")
			le.PutUint32(d[l.fde(i)+4:], 0)
			return l.fde(i) + 4
		}, ErrMalformed, "of size 0"},
		{"size 0 v3", "prog.v3", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := funcAt(t, fx, "vla")
			le.PutUint32(d[l.fde(i)+8:], 0)
			return l.fde(i) + 8
		}, ErrMalformed, "of size 0"},
		{"wraps", "prog.v3", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			last := fx.sec.NumFDEs() - 1
			start := fx.sec.Func(last).Start
			// Move the last function to the top of the address space.
			le.PutUint64(d[l.fde(last):], le.Uint64(d[l.fde(last):])+(^uint64(0)-start-8))
			return l.fde(last)
		}, ErrMalformed, "wraps around"},
		{"FRE offset past the end", "prog.v1", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := funcAt(t, fx, "vla")
			le.PutUint32(d[l.fde(i)+8:], 0x7fffffff)
			return l.fde(i) + 8
		}, ErrMalformed, "FDE 8: FREs at"},
		{"attributes past the end", "prog.v3", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := funcAt(t, fx, "vla")
			le.PutUint32(d[l.fde(i)+12:], uint32(l.fresEnd()-l.fresStart()-4))
			return l.fde(i) + 12
		}, ErrMalformed, "attributes at"},
		{"FRE count past the end", "prog.v2", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := lastFREs(fx.sec)
			n := le.Uint32(d[l.fde(i)+12:])
			le.PutUint32(d[l.fde(i)+12:], n+1)
			return l.fresEnd()
		}, ErrMalformed, "past the end"},
		{"FRE count past the end v3", "prog.v3", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := lastFREs(fx.sec)
			le.PutUint16(d[l.attr(i):], le.Uint16(d[l.attr(i):])+1)
			return l.fresEnd()
		}, ErrMalformed, "past the end"},
		{"empty row", "prog.v2", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := funcAt(t, fx, "main")
			d[l.fre(i, 1)] = d[l.fre(i, 0)] // row 1 starts where row 0 does
			return l.fre(i, 1)
		}, ErrMalformed, "FDE 3: FRE 1: start offset 0x0 not above the previous row's 0x0"},
		{"rows out of order", "prog.v3", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := funcAt(t, fx, "long_func") // 2-byte start offsets
			le.PutUint16(d[l.fre(i, 5):], 0x100)
			return l.fre(i, 5)
		}, ErrMalformed, "FRE 5: start offset 0x100 not above the previous row's 0x408"},
		{"row past the function end", "prog.v1", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := funcAt(t, fx, "main")
			d[l.fre(i, 2)] = byte(fx.sec.Func(i).Size) + 1
			return l.fre(i, 2)
		}, ErrMalformed, "start offset 0x67 past the function size 0x66"},
		{"row past the PLT block", "prog.v2", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := funcAt(t, fx, ".plt") + 1 // PLT0 has its own FDE
			d[l.fre(i, 1)] = 17
			return l.fre(i, 1)
		}, ErrMalformed, "past the PC-mask block size 0x10"},
		{"PLT block size 0", "prog.v2", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := funcAt(t, fx, ".plt") + 1
			d[l.fde(i)+17] = 0
			return l.fde(i) + 17
		}, ErrMalformed, "block size 0"},
		{"PLT block size 0 v3", "prog.v3", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := funcAt(t, fx, ".plt.got")
			d[l.attr(i)+4] = 0
			return l.attr(i) + 4
		}, ErrMalformed, "block size 0"},
		{"FRE type 3", "prog.v2", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := funcAt(t, fx, "leaf")
			d[l.info(i)] |= 3
			return l.info(i)
		}, ErrMalformed, "FRE type 3"},
		{"data word size 3", "prog.v3", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := funcAt(t, fx, "vla")
			d[l.fre(i, 2)+1] |= 3 << 5
			return l.fre(i, 2) + 1
		}, ErrMalformed, "FRE 2: data word size code 3"},
		{"too many data words", "prog.v2", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := funcAt(t, fx, "vla")
			d[l.fre(i, 0)+1] = 0x03 | 3<<1 // sp-based, 3 one-byte words
			return l.fre(i, 0) + 1
		}, ErrMalformed, "more data words than the header's fixed offsets leave room for (3 data words)"},
		{"v1 row without words", "prog.v1", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := funcAt(t, fx, "leaf")
			d[l.fre(i, 0)+1] = 0x01 // sp-based, no words
			return l.fre(i, 0) + 1
		}, ErrMalformed, "v1 has no RA-undefined rows"},
		{"FDE type 2", "prog.v3", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := funcAt(t, fx, "leaf")
			d[l.attr(i)+3] = 2
			return l.attr(i) + 3
		}, ErrUnsupported, "FDE type 2"},
		{"flex CFA from the CFA", "prog.v3", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := funcAt(t, fx, "realign")
			d[l.fre(i, 1)+2] &^= 1 // r10 → reg_p 0
			return l.fre(i, 1) + 1
		}, ErrMalformed, "CFA relative to itself"},
		{"flex one word", "prog.v3", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := funcAt(t, fx, "realign")
			d[l.fre(i, 1)+1] = 1 << 1
			return l.fre(i, 1) + 1
		}, ErrMalformed, "without a CFA control word"},
		{"flex control word alone", "prog.v3", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := funcAt(t, fx, "realign")
			// Row 2 is r10+0, RA padding, rbp at (fp+0): 5 words.
			// Four leave rbp's control word without its offset.
			if got := d[l.fre(i, 2)+1]; got != 5<<1 {
				t.Fatalf("realign row 2 info %#x, want 5 one-byte words", got)
			}
			d[l.fre(i, 2)+1] = 4 << 1
			return l.fre(i, 2) + 1
		}, ErrMalformed, "control word without its offset"},
		{"flex words left over", "prog.v3", func(t *testing.T, fx *fixture, l layout, d []byte) uint64 {
			i := funcAt(t, fx, "realign")
			d[l.fre(i, 2)+1] = 6 << 1 // the next row's start byte as a 6th word
			return l.fre(i, 2) + 1
		}, ErrMalformed, "left over"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := loadFixture(t, tt.fixture)
			d := bytes.Clone(fx.data)
			off := tt.mut(t, fx, layout{fx.sec, fx.data}, d)
			s, err := Parse(d, fx.addr)
			checkRefused(t, s, err, tt.err, int64(off), tt.msg)
		})
	}

	// Truncations of the header.
	d := loadFixture(t, "prog.v2").data
	s, err := Parse(d[:headerSize-1], 0)
	checkRefused(t, s, err, ErrMalformed, 0, "shorter than the 28-byte header")
	aux := bytes.Clone(d[:headerSize])
	aux[7] = 1
	s, err = Parse(aux, 0)
	checkRefused(t, s, err, ErrMalformed, 7, "auxiliary header of 1 bytes past the end 0x1c")
}

func checkRefused(t *testing.T, s *Section, err, sentinel error, off int64, msg string) {
	t.Helper()
	var fe *FormatError
	switch {
	case err == nil:
		t.Fatalf("Parse accepted the section (%d FDEs)", s.NumFDEs())
	case s != nil:
		t.Errorf("Parse returned a section with error %v", err)
	case !errors.As(err, &fe):
		t.Fatalf("error %v is not a *FormatError", err)
	case !errors.Is(err, sentinel):
		t.Errorf("error %v does not wrap %v", err, sentinel)
	case fe.Offset != off:
		t.Errorf("error %v at offset %#x, want %#x", err, fe.Offset, off)
	case !strings.Contains(err.Error(), msg):
		t.Errorf("error %q does not say %q", err, msg)
	}
}

// lastFREs is the FDE whose rows end the FRE sub-section.
func lastFREs(s *Section) int {
	last := 0
	for i, f := range s.fdes {
		if f.fres > s.fdes[last].fres {
			last = i
		}
	}
	return last
}
