package sframe

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/unwindd/unwindd/arch/x86_64"
)

// The format's constants (binutils include/sframe.h).
const (
	magic      = 0xdee2
	headerSize = 28 // sframe_header, without the auxiliary header
	abiAMD64LE = 3  // SFRAME_ABI_AMD64_ENDIAN_LITTLE

	flagSorted       = 0x1 // SFRAME_F_FDE_SORTED
	flagFramePointer = 0x2 // SFRAME_F_FRAME_POINTER (v1, v2)
	flagPCRel        = 0x4 // SFRAME_F_FDE_FUNC_START_PCREL (v2 errata, v3)

	fdeTypeDefault = 0 // v3 SFRAME_FDE_TYPE_DEFAULT
	fdeTypeFlex    = 1 // v3 SFRAME_FDE_TYPE_FLEX

	// v1 FDEs have no block-size field; binutils 2.40 wrote PC-mask FDEs
	// only for .plt, whose entries are 16 bytes on x86-64.
	v1RepSize = 16

	regBP = 6 // DWARF register numbers
	regSP = 7

	// SHT_GNU_SFRAME and PT_GNU_SFRAME, which debug/elf does not name.
	shtGNUSFrame = elf.SectionType(0x6ffffff4)
	ptGNUSFrame  = elf.ProgType(0x6474e554)
)

// knownFlags are the header flags each version defines; a section with
// others is refused, since a new flag may change how fields read (as
// SFRAME_F_FDE_FUNC_START_PCREL did).
var knownFlags = [4]uint8{
	1: flagSorted | flagFramePointer,
	2: flagSorted | flagFramePointer | flagPCRel,
	3: flagSorted | flagPCRel,
}

// fdeSize is the size of a function descriptor in the FDE sub-section: v3
// keeps only an index there (start, size, FRE offset) and puts the rest in
// front of the function's FREs.
var fdeSize = [4]uint64{1: 17, 2: 20, 3: 16}

// Func is one function descriptor entry (FDE) of a section.
type Func struct {
	Start uint64 // the function's first byte, a virtual address of the ELF file (not biased)
	Size  uint32 // bytes
	// PCMask says the rows repeat every RepSize bytes (SFRAME_FDE_TYPE_PCMASK,
	// the PLT stubs of .plt and .plt.got): a pc's row is found by its offset
	// modulo RepSize.
	PCMask  bool
	RepSize uint8 // block size of a PCMask function (v1 has no field: 16)
	Flex    bool  // a v3 flexible FDE: rows in control-word form
	Signal  bool  // a v3 signal frame: the caller's pc is exact
	NumRows int
}

// Loc says where a row finds one value: the CFA, the return address, or the
// caller's rbp. It is the form of v3's flexible FDEs, which every other row
// is a case of.
type Loc struct {
	// Defined says the row gives a location. An undefined rbp is unchanged
	// by the frame; an undefined return address is not tracked (an ABI
	// without a fixed RA offset), which x86-64 code never has.
	Defined bool
	// RegBased says the base is DWARF register Reg (7 rsp, 6 rbp, 10 r10,
	// ...); otherwise the base is the CFA. A CFA is always RegBased.
	RegBased bool
	Reg      uint32
	// Deref says the value is the word at base+Offset; otherwise it is
	// base+Offset itself.
	Deref  bool
	Offset int32
}

// String formats l as readelf --sframe does: sp+16, (fp-16) for the word at
// fp-16, c-8 for CFA-8, r10+0, and u when undefined.
func (l Loc) String() string {
	if !l.Defined {
		return "u"
	}
	base := "c"
	switch {
	case l.RegBased && l.Reg == regSP:
		base = "sp"
	case l.RegBased && l.Reg == regBP:
		base = "fp"
	case l.RegBased:
		base = fmt.Sprintf("r%d", l.Reg)
	}
	if l.Deref {
		return fmt.Sprintf("(%s%+d)", base, l.Offset)
	}
	return fmt.Sprintf("%s%+d", base, l.Offset)
}

// Row is one frame row entry (FRE) of a function: the rule for the pcs from
// its start up to the next row's.
type Row struct {
	// Start and End are offsets from Func.Start: the row covers
	// [Func.Start+Start, Func.Start+End). In a PCMask function they are
	// offsets within each RepSize-byte block instead. End is Start only
	// for a last row that starts at the function's (or block's) end and
	// covers nothing, as gas writes for CFI after a function's last
	// instruction.
	Start, End uint64
	// RAUndefined marks the outermost frame (an FRE without data words,
	// SFrame v2 and later: .cfi_undefined rip, as in _start). CFA, RA and
	// FP are then undefined.
	RAUndefined bool
	CFA, RA, FP Loc
	// Rule is the row as the unwinder applies it; OK is false when
	// [x86_64.Rule] cannot express the row, and Rule is then zero: a CFA
	// in a register other than rsp and rbp (DRAP's r10), a return address
	// in a register or not tracked, a register's value rather than a
	// saved word.
	Rule x86_64.Rule
	OK   bool
}

// fde is what Lookup needs of an FDE, decoded at Parse. Its start address is
// in Section.starts, apart, so that the binary search reads a dense array.
type fde struct {
	size uint32
	fres uint32 // offset in the section of the first FRE
	num  uint32 // FREs
	rep  uint8  // block size of a PC-mask FDE; 0 for PC-increment
	addr uint8  // bytes of an FRE's start offset: 1, 2 or 4
	flex bool
	sig  bool
}

// Section is a parsed .sframe section. The FDEs' start addresses and what
// locates their FREs are decoded at Parse (24 bytes per function,
// against the 17 to 21 bytes an FDE takes in the section): a lookup then
// binary-searches a dense []uint64 and touches one FDE. The FREs, most of
// the section, stay in the section bytes and are decoded on demand: a lookup
// reads the rows of one function only, and memory stays proportional to the
// section, whatever its shape.
type Section struct {
	data    []byte
	addr    uint64
	version uint8
	flags   uint8
	fixedFP int32 // 0: FREs carry rbp's offset, if saved
	fixedRA int32 // 0: FREs carry the return address's offset
	fpLoc   Loc   // where rbp is when an FRE does not say: fixedFP, or unchanged
	raLoc   Loc   // where the return address is when an FRE does not say
	starts  []uint64
	fdes    []fde
}

// Version reports the section's SFrame version: 1, 2 or 3.
func (s *Section) Version() int { return int(s.version) }

// PCRel reports whether FDE start addresses are relative to the field that
// holds them (SFRAME_F_FDE_FUNC_START_PCREL) rather than to the section.
func (s *Section) PCRel() bool { return s.flags&flagPCRel != 0 }

// NumFDEs reports the number of functions the section describes.
func (s *Section) NumFDEs() int { return len(s.fdes) }

// Func returns function i, 0 ≤ i < [Section.NumFDEs], in address order.
func (s *Section) Func(i int) Func {
	f := &s.fdes[i]
	rep := f.rep
	return Func{
		Start:   s.starts[i],
		Size:    f.size,
		PCMask:  rep != 0,
		RepSize: rep,
		Flex:    f.flex,
		Signal:  f.sig,
		NumRows: int(f.num),
	}
}

// FromELF parses the SFrame section of f: the section named .sframe, else
// one of type SHT_GNU_SFRAME, else the PT_GNU_SFRAME segment of a file
// without section headers. It returns [ErrNoSFrame] when there is none.
func FromELF(f *elf.File) (*Section, error) {
	sec := f.Section(".sframe")
	if sec == nil {
		for _, s := range f.Sections {
			if s.Type == shtGNUSFrame {
				sec = s
				break
			}
		}
	}
	if sec != nil {
		if sec.Type == elf.SHT_NOBITS {
			return nil, fmt.Errorf("sframe: section %s has no data (SHT_NOBITS): %w", sec.Name, ErrMalformed)
		}
		data, err := sec.Data()
		if err != nil {
			return nil, fmt.Errorf("sframe: read section %s: %w", sec.Name, err)
		}
		return Parse(data, sec.Addr)
	}
	for _, p := range f.Progs {
		if p.Type != ptGNUSFrame {
			continue
		}
		// ReadAll, not a make of Filesz: a corrupt header cannot make
		// it allocate more than the file holds.
		data, err := io.ReadAll(p.Open())
		if err != nil {
			return nil, fmt.Errorf("sframe: read PT_GNU_SFRAME segment: %w", err)
		}
		return Parse(data, p.Vaddr)
	}
	return nil, ErrNoSFrame
}

// Parse reads an SFrame section: data is the whole section, sectionAddr its
// virtual address (sh_addr, or the PT_GNU_SFRAME segment's p_vaddr), which
// function start addresses are relative to. It checks every FDE and FRE and
// refuses, with a [*FormatError], a section that is not SFrame v1, v2 or v3
// for AMD64 little-endian or that breaks the format anywhere. Bytes past the
// end of the FRE sub-section are ignored. The Section keeps data: do not
// modify it afterwards.
func Parse(data []byte, sectionAddr uint64) (*Section, error) {
	if len(data) < headerSize {
		return nil, malformed(0, "section of %d bytes shorter than the %d-byte header", len(data), headerSize)
	}
	if uint64(len(data)) > math.MaxUint32 {
		return nil, unsupported(0, "section of %d bytes larger than 4 GiB", len(data))
	}
	le := binary.LittleEndian
	switch m := le.Uint16(data); m {
	case magic:
	case magic>>8 | magic&0xff<<8:
		return nil, unsupported(0, "big-endian section")
	default:
		return nil, malformed(0, "bad magic %#04x", m)
	}
	s := &Section{data: data, addr: sectionAddr, version: data[2], flags: data[3]}
	if s.version < 1 || s.version > 3 {
		return nil, unsupported(2, "version %d", s.version)
	}
	if extra := s.flags &^ knownFlags[s.version]; extra != 0 {
		return nil, unsupported(3, "unknown flags %#x in a version %d header", extra, s.version)
	}
	if abi := data[4]; abi != abiAMD64LE {
		return nil, unsupported(4, "ABI/arch %d, not AMD64 little-endian (%d)", abi, abiAMD64LE)
	}
	s.fixedFP = int32(int8(data[5]))
	s.fixedRA = int32(int8(data[6]))
	s.fpLoc = Loc{Defined: s.fixedFP != 0, Deref: s.fixedFP != 0, Offset: s.fixedFP}
	s.raLoc = Loc{Defined: s.fixedRA != 0, Deref: s.fixedRA != 0, Offset: s.fixedRA}
	hdrEnd := uint64(headerSize) + uint64(data[7]) // the auxiliary header is skipped
	nfdes := uint64(le.Uint32(data[8:]))
	freLen := uint64(le.Uint32(data[16:]))
	fdesStart := hdrEnd + uint64(le.Uint32(data[20:]))
	fresStart := hdrEnd + uint64(le.Uint32(data[24:]))
	size := uint64(len(data))
	fdesEnd := fdesStart + nfdes*fdeSize[s.version]
	fresEnd := fresStart + freLen
	switch {
	case hdrEnd > size:
		return nil, malformed(7, "auxiliary header of %d bytes past the end %#x", data[7], size)
	case fdesEnd > size:
		return nil, malformed(20, "FDE sub-section [%#x, %#x) (%d FDEs) past the end %#x", fdesStart, fdesEnd, nfdes, size)
	case fresEnd > size:
		return nil, malformed(24, "FRE sub-section [%#x, %#x) past the end %#x", fresStart, fresEnd, size)
	case fresStart < fdesEnd:
		return nil, malformed(24, "FRE sub-section at %#x inside the FDE sub-section [%#x, %#x)", fresStart, fdesStart, fdesEnd)
	}

	s.fdes = make([]fde, nfdes)
	s.starts = make([]uint64, nfdes)
	var prevEnd uint64
	for i := range s.fdes {
		off := fdesStart + uint64(i)*fdeSize[s.version]
		f, start, err := s.parseFDE(i, off, fresStart, fresEnd)
		if err != nil {
			return nil, err
		}
		if i > 0 && start < prevEnd {
			return nil, malformed(off, "FDE %d: function at %#x starts before the end %#x of FDE %d (FDEs unsorted or overlapping)", i, start, prevEnd, i-1)
		}
		prevEnd = start + uint64(f.size)
		s.fdes[i] = f
		s.starts[i] = start
	}
	return s, nil
}

// parseFDE reads and checks FDE i, at section offset off, and its FREs. It
// returns the FDE and its function's start address.
func (s *Section) parseFDE(i int, off, fresStart, fresEnd uint64) (f fde, start uint64, err error) {
	le := binary.LittleEndian
	d := s.data
	var (
		rel         int64 // function start, relative to the section or to the field
		freOff      uint64
		info, info2 byte
		rep         uint8
		// Section offsets of fields, for error messages.
		sizeOff, infoOff, repOff uint64
	)
	switch s.version {
	case 1, 2:
		rel = int64(int32(le.Uint32(d[off:])))
		f.size = le.Uint32(d[off+4:])
		freOff = uint64(le.Uint32(d[off+8:]))
		f.num = le.Uint32(d[off+12:])
		info = d[off+16]
		sizeOff, infoOff, repOff = off+4, off+16, off+17
		if s.version == 2 {
			rep = d[off+17]
		} else {
			rep = v1RepSize
		}
		f.fres = uint32(fresStart + freOff)
		if fresStart+freOff > fresEnd {
			return f, start, malformed(off+8, "FDE %d: FREs at %#x past the end %#x of the FRE sub-section", i, fresStart+freOff, fresEnd)
		}
	case 3:
		rel = int64(le.Uint64(d[off:]))
		f.size = le.Uint32(d[off+8:])
		freOff = uint64(le.Uint32(d[off+12:]))
		attr := fresStart + freOff
		if attr+5 > fresEnd {
			return f, start, malformed(off+12, "FDE %d: attributes at %#x past the end %#x of the FRE sub-section", i, attr, fresEnd)
		}
		f.num = uint32(le.Uint16(d[attr:]))
		info = d[attr+2]
		info2 = d[attr+3]
		sizeOff, infoOff, repOff = off+8, attr+2, attr+4
		rep = d[attr+4]
		f.fres = uint32(attr + 5)
		switch t := info2 & 0x1f; t {
		case fdeTypeDefault:
		case fdeTypeFlex:
			f.flex = true
		default:
			return f, start, unsupported(attr+3, "FDE %d: FDE type %d", i, t)
		}
		f.sig = info&0x80 != 0
	}
	// The start address: relative to the field itself (PCREL, which v1
	// never has), else to the section's start. Verified against readelf
	// of binutils 2.40 (v1), 2.44 (v2) and the 2.47 snapshot (v2+PCREL,
	// v3) on this package's fixtures.
	start = s.addr + uint64(rel)
	if s.flags&flagPCRel != 0 {
		start += off
	}
	if f.size == 0 {
		return f, start, malformed(sizeOff, "FDE %d: function at %#x of size 0", i, start)
	}
	if start+uint64(f.size) < start {
		return f, start, malformed(off, "FDE %d: function at %#x of size %#x wraps around the address space", i, start, f.size)
	}
	switch t := info & 0xf; t {
	case 0, 1:
		f.addr = 1 << t
	case 2:
		f.addr = 4
	default:
		return f, start, malformed(infoOff, "FDE %d: FRE type %d", i, t)
	}
	limit := uint64(f.size)
	if info&0x10 != 0 { // SFRAME_FDE_TYPE_PCMASK (v3: SFRAME_V3_FDE_PCTYPE_MASK)
		if rep == 0 {
			return f, start, malformed(repOff, "FDE %d: PC-mask function at %#x with block size 0", i, start)
		}
		f.rep = rep
		limit = uint64(rep)
	}

	p := uint64(f.fres)
	var prev uint64
	for j := uint32(0); j < f.num; j++ {
		if p+uint64(f.addr)+1 > fresEnd {
			return f, start, malformed(p, "FDE %d: FRE %d of %d: past the end %#x of the FRE sub-section", i, j, f.num, fresEnd)
		}
		rs, fi := s.freHeader(&f, uint32(p))
		n, w := wordCount(fi), wordSize(fi)
		if w == 0 {
			return f, start, malformed(p+uint64(f.addr), "FDE %d: FRE %d: data word size code 3", i, j)
		}
		next := p + uint64(f.addr) + 1 + uint64(n*w)
		if next > fresEnd {
			return f, start, malformed(p, "FDE %d: FRE %d: %d data words past the end %#x of the FRE sub-section", i, j, n, fresEnd)
		}
		if j > 0 && uint64(rs) <= prev {
			return f, start, malformed(p, "FDE %d: FRE %d: start offset %#x not above the previous row's %#x (FREs out of order, empty or overlapping)", i, j, rs, prev)
		}
		// A row may start at the very end (and then covers nothing):
		// gas writes one for CFI after a function's last instruction,
		// and the kernel accepts it.
		if uint64(rs) > limit {
			what := "function size"
			if f.rep != 0 {
				what = "PC-mask block size"
			}
			return f, start, malformed(p, "FDE %d: FRE %d: start offset %#x past the %s %#x", i, j, rs, what, limit)
		}
		var r rowLocs
		if msg := s.words(&f, fi, uint32(p)+uint32(f.addr)+1, &r); msg != "" {
			return f, start, malformed(p+uint64(f.addr), "FDE %d: FRE %d: %s (%d data words)", i, j, msg, n)
		}
		prev = uint64(rs)
		p = next
	}
	return f, start, nil
}

// freHeader reads the start offset and info byte of the FRE at section
// offset p.
func (s *Section) freHeader(f *fde, p uint32) (start uint32, info byte) {
	d := s.data
	switch f.addr {
	case 1:
		start = uint32(d[p])
	case 2:
		start = uint32(binary.LittleEndian.Uint16(d[p:]))
	default:
		start = binary.LittleEndian.Uint32(d[p:])
	}
	return start, d[p+uint32(f.addr)]
}

func wordCount(info byte) int { return int(info>>1) & 0xf }

// wordSize is the size of an FRE's data words; 0 for the invalid code 3.
func wordSize(info byte) int { return int(0x00040201 >> ((info >> 5 & 3) * 8) & 0xff) }

// wordBytes is the number of bytes of data words that follow an FRE's info
// byte, by info byte.
var wordBytes = func() (t [256]uint8) {
	for i := range t {
		t[i] = uint8(wordCount(byte(i)) * wordSize(byte(i)))
	}
	return t
}()

// rowLocs is an FRE's data words, decoded.
type rowLocs struct {
	cfa, ra, fp Loc
	raUndefined bool
}

// words decodes into r the data words, at section offset p, of an FRE with
// info byte info. It returns what is wrong, a constant so that Lookup does
// not allocate, or "".
func (s *Section) words(f *fde, info byte, p uint32, r *rowLocs) string {
	*r = rowLocs{}
	n, w := wordCount(info), wordSize(info)
	if n == 0 {
		if s.version == 1 {
			return "no data words (v1 has no RA-undefined rows)"
		}
		r.raUndefined = true
		return ""
	}
	// The words, unsigned; signed(i) sign-extends word i from its size.
	var u [15]uint32
	d := s.data[p : p+uint32(n*w)]
	switch w {
	case 1:
		for i := range n {
			u[i] = uint32(d[i])
		}
	case 2:
		for i := range n {
			u[i] = uint32(binary.LittleEndian.Uint16(d[2*i:]))
		}
	default:
		for i := range n {
			u[i] = binary.LittleEndian.Uint32(d[4*i:])
		}
	}
	sh := uint(32 - 8*w)
	signed := func(i int) int32 { return int32(u[i]<<sh) >> sh }

	r.ra, r.fp = s.raLoc, s.fpLoc
	k := 1 // the next word
	if !f.flex {
		// CFA = sp or fp (the FRE's base register bit) + word 0; then
		// RA = *(CFA + word) unless the header fixes it; then FP =
		// *(CFA + word) unless the header fixes it.
		reg := uint32(regBP)
		if info&1 != 0 {
			reg = regSP
		}
		r.cfa = Loc{Defined: true, RegBased: true, Reg: reg, Offset: signed(0)}
		if !s.raLoc.Defined && k < n {
			// An offset of 0 is padding (s390x: fp saved, ra not).
			if off := signed(k); off != 0 {
				r.ra = Loc{Defined: true, Deref: true, Offset: off}
			}
			k++
		}
		if !s.fpLoc.Defined && k < n {
			r.fp = Loc{Defined: true, Deref: true, Offset: signed(k)}
			k++
		}
		if k < n {
			return "more data words than the header's fixed offsets leave room for"
		}
		return ""
	}
	// A flexible FDE (v3): a control word and an offset for the CFA, then
	// for RA and FP either a control word and an offset or a padding word
	// of 0 (the default location). A control word holds reg_p (bit 0),
	// deref_p (bit 1) and the DWARF register number (bits 3 and up).
	if n < 2 {
		return "flexible FRE without a CFA control word and offset"
	}
	if u[0]&1 == 0 {
		return "flexible FRE with a CFA relative to itself"
	}
	r.cfa = ctlLoc(u[0], signed(1))
	k = 2
	if k < n {
		if ctl := u[k]; ctl == 0 {
			k++ // padding: the default location
		} else if k+1 < n {
			r.ra = ctlLoc(ctl, signed(k+1))
			k += 2
		} else {
			return "flexible FRE control word without its offset"
		}
	}
	if k < n {
		if ctl := u[k]; ctl == 0 {
			k++
		} else if k+1 < n {
			r.fp = ctlLoc(ctl, signed(k+1))
			k += 2
		} else {
			return "flexible FRE control word without its offset"
		}
	}
	if k < n {
		return "flexible FRE with data words left over"
	}
	return ""
}

// ctlLoc is the location a flexible FDE's control word and offset give.
func ctlLoc(ctl uint32, off int32) Loc {
	return Loc{Defined: true, RegBased: ctl&1 != 0, Reg: ctl >> 3, Deref: ctl&2 != 0, Offset: off}
}

// rule turns a row into an [x86_64.Rule], if the Rule can express it.
func rule(f *fde, r *rowLocs) (x86_64.Rule, bool) {
	if r.raUndefined {
		return outermost(f), true
	}
	out := x86_64.Rule{CFAOffset: r.cfa.Offset, Signal: f.sig}
	switch {
	case r.cfa.Reg == regSP && !r.cfa.Deref:
		out.CFA = x86_64.CFASP
	case r.cfa.Reg == regBP && !r.cfa.Deref:
		out.CFA = x86_64.CFABP
	case r.cfa.Reg == regSP:
		out.CFA = x86_64.CFADerefSP
	case r.cfa.Reg == regBP:
		out.CFA = x86_64.CFADerefBP
	default:
		return x86_64.Rule{}, false // a CFA in another register (DRAP's r10)
	}
	var ok bool
	if out.RA, out.RAOffset, ok = saved(r.ra); !ok || out.RA == x86_64.RegSame {
		return x86_64.Rule{}, false // a return address in a register, or not tracked
	}
	if !r.fp.Defined {
		out.FP = x86_64.RegSame
	} else if r.fp.RegBased && r.fp.Reg == regBP && !r.fp.Deref && r.fp.Offset == 0 {
		out.FP = x86_64.RegSame // rbp = rbp + 0
	} else if out.FP, out.FPOffset, ok = saved(r.fp); !ok {
		return x86_64.Rule{}, false
	}
	return out, true
}

// saved maps the location of a saved register to a RegKind: only a word in
// memory at the CFA, rsp or rbp plus an offset is expressible.
func saved(l Loc) (x86_64.RegKind, int32, bool) {
	switch {
	case !l.Defined:
		return x86_64.RegSame, 0, true
	case !l.Deref:
		return 0, 0, false
	case !l.RegBased:
		return x86_64.RegAtCFA, l.Offset, true
	case l.Reg == regSP:
		return x86_64.RegAtSP, l.Offset, true
	case l.Reg == regBP:
		return x86_64.RegAtBP, l.Offset, true
	}
	return 0, 0, false
}

// Lookup returns the rule for pc, a virtual address in the ELF file's
// address space (the caller subtracts the load bias). It is false when no
// function covers pc, when pc lies before the function's first row, and when
// the row cannot be expressed as an [x86_64.Rule] (v3 flexible rows with the
// CFA or the return address in a register other than rsp and rbp: the
// unwinder then tries its next method). It allocates nothing.
func (s *Section) Lookup(pc uint64) (x86_64.Rule, bool) {
	starts := s.starts
	lo, hi := 0, len(starts)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if starts[m] <= pc {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return x86_64.Rule{}, false
	}
	f := &s.fdes[lo-1]
	off := pc - starts[lo-1]
	if off >= uint64(f.size) {
		return x86_64.Rule{}, false
	}
	if f.rep != 0 {
		off %= uint64(f.rep)
	}
	// FRE start offsets ascend (Parse checked): the row is the last one
	// that starts at or below off.
	d := s.data[f.fres:]
	a := int(f.addr)
	at, p := -1, 0
	for range f.num {
		var start uint32
		switch a {
		case 1:
			start = uint32(d[p])
		case 2:
			start = uint32(binary.LittleEndian.Uint16(d[p:]))
		default:
			start = binary.LittleEndian.Uint32(d[p:])
		}
		if uint64(start) > off {
			break
		}
		at = p
		p += a + 1 + int(wordBytes[d[p+a]])
	}
	if at < 0 {
		return x86_64.Rule{}, false
	}
	if !f.flex {
		return s.defaultRule(f, d[at+a], d[at+a+1:])
	}
	var r rowLocs
	s.words(f, d[at+a], f.fres+uint32(at+a+1), &r)
	return rule(f, &r)
}

// defaultRule is words and rule in one, for the rows of default FDEs (all
// but v3's flexible ones): Lookup's fast path. w holds the row's data words.
// Tests and FuzzParse hold it to words and rule through Rows.
func (s *Section) defaultRule(f *fde, info byte, w []byte) (x86_64.Rule, bool) {
	n := wordCount(info)
	if n == 0 {
		return outermost(f), true
	}
	sz := wordSize(info)
	word := func(i int) int32 {
		switch sz {
		case 1:
			return int32(int8(w[i]))
		case 2:
			return int32(int16(binary.LittleEndian.Uint16(w[2*i:])))
		}
		return int32(binary.LittleEndian.Uint32(w[4*i:]))
	}
	out := x86_64.Rule{CFA: x86_64.CFABP, CFAOffset: word(0), RA: x86_64.RegAtCFA, RAOffset: s.fixedRA, FP: x86_64.RegSame, Signal: f.sig}
	if info&1 != 0 {
		out.CFA = x86_64.CFASP
	}
	k := 1
	if s.fixedRA == 0 {
		if k == n {
			return x86_64.Rule{}, false // the return address is not tracked
		}
		if out.RAOffset = word(k); out.RAOffset == 0 {
			return x86_64.Rule{}, false // padding: not saved
		}
		k++
	}
	if s.fixedFP != 0 {
		out.FP, out.FPOffset = x86_64.RegAtCFA, s.fixedFP
	} else if k < n {
		out.FP, out.FPOffset = x86_64.RegAtCFA, word(k)
	}
	return out, true
}

// outermost is the rule of an RA-undefined row.
func outermost(f *fde) x86_64.Rule {
	// The row gives no CFA: sp+8 (the CFA at a function's entry) lets the
	// step succeed, and the walk then ends on the zero return address, as
	// the kernel's ends on the outermost frame.
	return x86_64.Rule{CFA: x86_64.CFASP, CFAOffset: 8, RA: x86_64.RegUndefined, FP: x86_64.RegSame, Signal: f.sig}
}

// Rows calls yield for every row of every function, in address order, until
// yield returns false. Its signature is an iter.Seq2: range over s.Rows.
func (s *Section) Rows(yield func(Func, Row) bool) {
	for i := range s.fdes {
		f := &s.fdes[i]
		fn := s.Func(i)
		limit := uint64(f.size)
		if f.rep != 0 {
			limit = uint64(f.rep)
		}
		p := f.fres
		for j := uint32(0); j < f.num; j++ {
			start, info := s.freHeader(f, p)
			var locs rowLocs
			s.words(f, info, p+uint32(f.addr)+1, &locs)
			p += uint32(f.addr) + 1 + uint32(wordCount(info)*wordSize(info))
			end := limit
			if j+1 < f.num {
				next, _ := s.freHeader(f, p)
				end = uint64(next)
			}
			row := Row{Start: uint64(start), End: end, RAUndefined: locs.raUndefined, CFA: locs.cfa, RA: locs.ra, FP: locs.fp}
			row.Rule, row.OK = rule(f, &locs)
			if !yield(fn, row) {
				return
			}
		}
	}
}
