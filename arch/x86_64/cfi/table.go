package cfi

import (
	"cmp"
	"debug/elf"
	"fmt"
	"iter"
	"math"
	"slices"
	"sort"
	"unsafe"

	"github.com/unwindd/unwindd/arch/x86_64"
)

// Table is the unwind rows of one ELF file, sorted by pc: what its CFI says
// for every pc its FDEs cover. It is immutable and safe for concurrent use.
type Table struct {
	// Row i covers the pcs [base+start(i), base+start(i+1)); the last
	// row, which marks where the last FDE ends, has no rule. Adjacent rows
	// never repeat a rule.
	//
	// A row's start offset is split in two, as the kernel's ORC lookup
	// table does: rows are grouped by the 64 KiB page of their start, the
	// rows of page p are lows[pages[p]:pages[p+1]], and each keeps only its
	// low 16 bits. A row costs 4 bytes (2 for the start, 2 for its rule's
	// index), a page 4: libc's table is smaller than its .eh_frame.
	base  uint64
	lows  []uint16
	pages []uint32      // len(pages) = pages spanned + 1
	ids   []uint16      // row i's rule is rules[ids[i]]
	rules []x86_64.Rule // each distinct rule once; rules[0] is the zero Rule: no rule
	stats Stats

	starts []uint32 // the row starts while the table is built; nil after
}

// Stats counts what building a [Table] found besides its rows.
type Stats struct {
	FDEs int // FDEs read
	// Skipped counts the FDEs left out whole, whose pcs give no rule: a
	// CIE that cannot be used (an augmentation or pointer encoding other
	// than gcc's), a pointer to no CIE, a truncated header, a pc range
	// that overlaps one starting before it (two rules for a pc: the first
	// is kept), or that lies outside the file's executable segments.
	Skipped int
	// Cut counts the FDEs whose instructions stopped decoding partway (an
	// unknown opcode, operands past the end, DW_CFA_restore_state with
	// nothing remembered): their pcs from there on give no rule.
	Cut int
	// Overflow counts rows left without a rule because the table
	// already held the 65535 distinct rules a row's uint16 index can
	// name. No real file comes near: libLLVM-15.so has 595.
	Overflow int
	// Err is the reason for the first FDE skipped or cut, a *FormatError
	// naming it; nil if none was.
	Err error
}

func (s *Stats) skip(err error) {
	s.Skipped++
	if s.Err == nil {
		s.Err = err
	}
}

// Row is one row of a [Table]: Rule applies from Start up to the next row's
// Start. The zero Rule (CFA [x86_64.CFAUndefined]) marks pcs with no rule:
// between FDEs, after the last one, and where the CFI says something the
// unwinder cannot follow.
type Row struct {
	Start uint64
	Rule  x86_64.Rule
}

// Lookup returns the rule for pc, a virtual address in the ELF file's
// address space (the caller takes off the load bias, and for a frame above
// the first looks up ra−1: [x86_64.State.LookupPC]). ok is false when no FDE
// covers pc, or when its CFI says something the unwinder cannot follow
// there. It does not allocate.
func (t *Table) Lookup(pc uint64) (r x86_64.Rule, ok bool) {
	off := pc - t.base
	if pc < t.base || off > math.MaxUint32 || len(t.lows) == 0 {
		return r, false
	}
	o := uint32(off)
	p := int(o >> 16)
	var i int
	if p+1 >= len(t.pages) {
		i = len(t.lows) - 1 // past the last page: the last row (no rule)
	} else {
		// The last row of page p at or below o's low bits; if none, the
		// last row before the page.
		lo, n := int(t.pages[p]), int(t.pages[p+1]-t.pages[p])
		low := int64(o & 0xffff)
		if n == 0 || int64(t.lows[lo]) > low {
			i = lo - 1
		} else {
			// A branch-free binary search (a sign mask, not a branch the
			// predictor misses half the time).
			s := t.lows[lo : lo+n]
			b := 0
			for n > 1 {
				half := n / 2
				mask := int((low - int64(s[b+half])) >> 63)
				b += half &^ mask
				n -= half
			}
			i = lo + b
		}
	}
	if i < 0 {
		return r, false
	}
	id := t.ids[i]
	return t.rules[id], id != 0
}

// Len reports the table's rows, counting those that mark gaps and the end
// of the last FDE.
func (t *Table) Len() int { return len(t.lows) }

// Row returns row i, 0 <= i < [Table.Len].
func (t *Table) Row(i int) Row {
	// The page of row i: the last p with pages[p] <= i.
	p := sort.Search(len(t.pages), func(p int) bool { return int(t.pages[p]) > i }) - 1
	return Row{Start: t.base + uint64(p)<<16 + uint64(t.lows[i]), Rule: t.rules[t.ids[i]]}
}

// All yields the rows in pc order.
func (t *Table) All() iter.Seq[Row] {
	return func(yield func(Row) bool) {
		for i := range t.lows {
			if !yield(t.Row(i)) {
				return
			}
		}
	}
}

// Rules reports how many distinct rules the rows share.
func (t *Table) Rules() int { return max(len(t.rules)-1, 0) }

// Size reports the bytes the table holds in its rows and rules.
func (t *Table) Size() int {
	return len(t.lows)*2 + len(t.pages)*4 + len(t.ids)*2 + len(t.rules)*int(unsafe.Sizeof(x86_64.Rule{}))
}

// Stats reports what building the table skipped.
func (t *Table) Stats() Stats { return t.stats }

// Parse builds the Table of an .eh_frame section's bytes, loaded at
// ehFrameAddr (the section's sh_addr, which pc-relative pointers count
// from). It returns a *[FormatError] when an entry's length runs past the
// end of the section, or when the FDEs span more than the 4 GiB of pcs a
// Table holds; FDEs it cannot use are skipped and counted in [Table.Stats].
func Parse(ehFrame []byte, ehFrameAddr uint64) (*Table, error) {
	return build([]*section{{name: ".eh_frame", data: ehFrame, addr: ehFrameAddr}}, nil)
}

// FromELF builds the Table of an x86-64 ELF file from its .eh_frame and,
// where it has one, its .debug_frame (which only a file built without
// unwind tables keeps in place of .eh_frame, or beside it for crt files'
// and the linker's FDEs). Where both cover a pc, .eh_frame wins. An FDE
// outside the file's executable PT_LOAD segments is skipped. It returns
// [ErrNoCFI] when neither section holds an FDE.
func FromELF(f *elf.File) (*Table, error) {
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("cfi: %v %v file, not x86-64", f.Class, f.Machine)
	}
	var secs []*section
	for i, name := range []string{".eh_frame", ".debug_frame"} {
		s := f.Section(name)
		if s == nil || s.Type == elf.SHT_NOBITS {
			continue
		}
		data, err := s.Data()
		if err != nil {
			return nil, fmt.Errorf("cfi: read %s: %w", name, err)
		}
		secs = append(secs, &section{name: name, data: data, addr: s.Addr, debug: name == ".debug_frame", prio: i})
	}
	var code []span
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && p.Vaddr+p.Memsz >= p.Vaddr {
			code = append(code, span{p.Vaddr, p.Vaddr + p.Memsz})
		}
	}
	t, err := build(secs, code)
	if err != nil {
		return nil, err
	}
	if t.stats.FDEs == 0 {
		return nil, ErrNoCFI
	}
	return t, nil
}

// span is a range of addresses [start, end).
type span struct{ start, end uint64 }

// build reads the FDEs of secs, keeps those within code (all, when code is
// empty) that overlap no FDE starting before them, and runs their programs
// in pc order into the table's rows.
func build(secs []*section, code []span) (*Table, error) {
	t := &Table{}
	st := &t.stats
	var fdes []fde
	for _, s := range secs {
		var err error
		if fdes, err = s.entries(fdes, st); err != nil {
			return nil, err
		}
	}
	if len(code) > 0 {
		fdes = slices.DeleteFunc(fdes, func(f fde) bool {
			for _, c := range code {
				if f.begin >= c.start && f.end <= c.end {
					return false
				}
			}
			st.skip(f.sec.errorf(int(f.off), "pc range [%#x, %#x) outside the executable segments", f.begin, f.end))
			return true
		})
	}
	order := func(a, b fde) int {
		return cmp.Or(cmp.Compare(a.begin, b.begin), cmp.Compare(a.sec.prio, b.sec.prio), cmp.Compare(a.off, b.off))
	}
	if !slices.IsSortedFunc(fdes, order) { // ld sorts .eh_frame for .eh_frame_hdr's sake
		slices.SortFunc(fdes, order)
	}
	var end uint64
	fdes = slices.DeleteFunc(fdes, func(f fde) bool {
		if f.begin < end {
			st.skip(f.sec.errorf(int(f.off), "pc range [%#x, %#x) overlaps an FDE that ends at %#x", f.begin, f.end, end))
			return true
		}
		end = f.end
		return false
	})
	if len(fdes) == 0 {
		return t, nil
	}
	t.base = fdes[0].begin
	if last := fdes[len(fdes)-1]; last.end-t.base > math.MaxUint32 {
		return nil, last.sec.errorf(int(last.off), "FDEs span [%#x, %#x), more than the 4 GiB a table holds", t.base, last.end)
	}
	b := builder{t: t, index: map[x86_64.Rule]uint16{{}: 0}}
	t.rules = []x86_64.Rule{{}}
	// About 8 rows an FDE in glibc and gcc's output; the table is copied
	// to its exact size at the end.
	t.starts = make([]uint32, 0, 8*len(fdes))
	t.ids = make([]uint16, 0, 8*len(fdes))
	m := &b.m
	m.row = b.row
	for i := range fdes {
		f := &fdes[i]
		m.c, m.initial, m.st = f.c, &f.c.initial, f.c.initial
		m.stack, m.loc, m.end = m.stack[:0], f.begin, f.end
		b.signal = f.c.signal
		if err := m.run(f.sec.data[f.ins:f.insEnd], f.sec.addr+uint64(f.ins)); err != nil {
			if st.Cut++; st.Err == nil {
				st.Err = f.sec.errorf(int(f.off), "%v", err)
			}
			b.add(m.loc, 0)
		} else if m.loc < f.end {
			b.row(m.loc, &m.st)
		}
		b.add(f.end, 0)
	}
	// The two-level form of the starts, and exact-size copies: the table
	// lives long, the append slack need not.
	t.lows = make([]uint16, len(t.starts))
	t.pages = make([]uint32, int(t.starts[len(t.starts)-1]>>16)+2)
	for i, st := range t.starts {
		t.lows[i] = uint16(st)
	}
	p := 0
	for i, st := range t.starts {
		for ; p <= int(st>>16); p++ {
			t.pages[p] = uint32(i)
		}
	}
	for ; p < len(t.pages); p++ {
		t.pages[p] = uint32(len(t.starts))
	}
	t.starts = nil
	t.ids = slices.Clone(t.ids)
	t.rules = slices.Clone(t.rules)
	return t, nil
}

// builder appends rows to a Table, in pc order.
type builder struct {
	t      *Table
	index  map[x86_64.Rule]uint16 // of t.rules
	m      machine
	signal bool // the FDE being run is a signal frame's
}

// row adds the row of state st starting at start.
func (b *builder) row(start uint64, st *state) {
	r, ok := st.rule(b.signal)
	if !ok {
		b.add(start, 0)
		return
	}
	id, seen := b.index[r]
	if !seen {
		if len(b.t.rules) > math.MaxUint16 {
			b.t.stats.Overflow++
			b.add(start, 0)
			return
		}
		id = uint16(len(b.t.rules))
		b.t.rules = append(b.t.rules, r)
		b.index[r] = id
	}
	b.add(start, id)
}

// add appends a row, merging it into the one before when the rule is the
// same, and replacing a row that starts at the same pc (the gap row after
// an FDE that the next FDE starts right at).
func (b *builder) add(start uint64, id uint16) {
	t := b.t
	s := uint32(start - t.base)
	n := len(t.starts)
	switch {
	case n > 0 && t.starts[n-1] == s:
		t.ids[n-1] = id
		if n > 1 && t.ids[n-2] == id {
			t.starts, t.ids = t.starts[:n-1], t.ids[:n-1]
		}
	case n > 0 && t.ids[n-1] == id:
	default:
		t.starts = append(t.starts, s)
		t.ids = append(t.ids, id)
	}
}
