package symbolize

import (
	"cmp"
	"debug/elf"
	"debug/gosym"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Symbol is a function symbol, and where in it an address lies.
type Symbol struct {
	Name   string
	Addr   uint64 // ELF virtual address of the function's first byte
	Size   uint64 // bytes; 0 when the symbol table does not say
	Offset uint64 // of the looked-up address from Addr
}

// String formats the symbol as name+0xoffset.
func (s Symbol) String() string { return fmt.Sprintf("%s+%#x", s.Name, s.Offset) }

// sym is a Table entry: the function [addr, end).
type sym struct {
	name      string
	addr, end uint64
}

// segment is a PT_LOAD program header: file bytes [off, off+size) are mapped
// at virtual address vaddr.
type segment struct {
	off, size, vaddr uint64
}

// Table holds the function symbols and loadable segments of one ELF file.
// It is immutable and safe for concurrent use.
type Table struct {
	syms []sym // sorted by addr, one per address
	segs []segment
}

// NewTable reads the function symbols (STT_FUNC and STT_GNU_IFUNC, defined)
// of .symtab and .dynsym, and the PT_LOAD segments, of the ELF file r, and
// the symbols of its separate debug files, if given (the .debug files that
// distributions ship apart, with the .symtab that r was stripped of). When
// neither r nor a debug file has a .symtab but r has a .gopclntab (a Go
// binary linked with -s), the functions of the Go pclntab are read too
// (debug/gosym), under the names the Go linker gives them in .symtab. A file
// with no symbol table at all gives an empty Table, not an error.
func NewTable(r io.ReaderAt, debug ...io.ReaderAt) (*Table, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("symbolize: %w", err)
	}
	t := &Table{}
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Filesz > 0 {
			t.segs = append(t.segs, segment{off: p.Off, size: p.Filesz, vaddr: p.Vaddr})
		}
	}
	cands, err := functions(f)
	if err != nil {
		return nil, err
	}
	hasSymtab := f.Section(".symtab") != nil
	for i, d := range debug {
		df, err := elf.NewFile(d)
		if err != nil {
			return nil, fmt.Errorf("symbolize: debug file %d: %w", i, err)
		}
		more, err := functions(df)
		if err != nil {
			return nil, fmt.Errorf("symbolize: debug file %d: %w", i, err)
		}
		cands = append(cands, more...)
		hasSymtab = hasSymtab || df.Section(".symtab") != nil
	}
	if !hasSymtab {
		more, err := goFunctions(f)
		if err != nil {
			return nil, err
		}
		cands = append(cands, more...)
	}
	// One name per address: the best-ranked alias (write over __write over
	// __libc_write), ties broken by name so the choice does not depend on
	// table order.
	slices.SortFunc(cands, func(a, b cand) int {
		return cmp.Or(cmp.Compare(a.Value, b.Value), cmp.Compare(a.rank, b.rank), strings.Compare(a.Name, b.Name))
	})
	var secEnds []uint64 // of t.syms
	for i, c := range cands {
		if i > 0 && c.Value == cands[i-1].Value {
			last := &t.syms[len(t.syms)-1]
			last.end = max(last.end, c.Value+c.Size)
			continue
		}
		t.syms = append(t.syms, sym{name: c.Name, addr: c.Value, end: c.Value + c.Size})
		secEnds = append(secEnds, c.secEnd)
	}
	// A symbol without a size reaches to the next symbol, within its section.
	for i := range t.syms {
		s := &t.syms[i]
		if s.end > s.addr {
			continue
		}
		s.end = max(secEnds[i], s.addr+1)
		if i+1 < len(t.syms) {
			s.end = min(s.end, t.syms[i+1].addr)
		}
	}
	return t, nil
}

// cand is a function symbol that may go into a Table.
type cand struct {
	elf.Symbol
	rank   int
	secEnd uint64 // end address of its section, for a symbol without a size
}

// functions returns the defined function symbols of f's .symtab and .dynsym.
func functions(f *elf.File) ([]cand, error) {
	var cands []cand
	for _, load := range []func() ([]elf.Symbol, error){f.Symbols, f.DynamicSymbols} {
		syms, err := load()
		if errors.Is(err, elf.ErrNoSymbols) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("symbolize: read symbols: %w", err)
		}
		for _, s := range syms {
			typ := elf.ST_TYPE(s.Info)
			if typ != elf.STT_FUNC && typ != elf.STT_GNU_IFUNC || s.Section == elf.SHN_UNDEF || s.Value == 0 || s.Name == "" {
				continue
			}
			c := cand{Symbol: s, rank: rank(s)}
			if s.Size == 0 {
				if sec := sectionAt(f, s.Value); sec != nil {
					c.secEnd = sec.Addr + sec.Size
				}
			}
			cands = append(cands, c)
		}
	}
	return cands, nil
}

// goFunctions returns the functions of the Go pclntab of f (section
// .gopclntab), or none when f has no such section or its functions cannot
// be placed. Their entries and ends are virtual addresses, as ELF symbols'
// are.
//
// The pclntab gives function entries as offsets from runtime.text, which
// only the Go linker's own layout puts at the start of .text; an external
// linker (cgo) puts C code first, and runtime.text is then known only from
// .symtab, or from the moduledata at run time. So the table is used only if
// it places a function exactly at the ELF entry point, as it does for
// executables the Go linker links itself (_rt0_amd64_linux), PIE or not:
// no names are better than names shifted onto the wrong functions.
//
// debug/gosym, like debug/elf, trusts its input: a damaged pclntab may
// make it panic. Only local, mapped files are read (see the package doc).
func goFunctions(f *elf.File) ([]cand, error) {
	pcln, text := f.Section(".gopclntab"), f.Section(".text")
	if pcln == nil || text == nil || pcln.Type == elf.SHT_NOBITS || f.Entry == 0 {
		return nil, nil
	}
	data, err := pcln.Data()
	if err != nil {
		return nil, fmt.Errorf("symbolize: read .gopclntab: %w", err)
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		return nil, fmt.Errorf("symbolize: parse .gopclntab: %w", err)
	}
	if fn := tab.PCToFunc(f.Entry); fn == nil || fn.Entry != f.Entry {
		return nil, nil // runtime.text is not where .text starts
	}
	cands := make([]cand, 0, len(tab.Funcs))
	for _, fn := range tab.Funcs {
		if fn.Sym == nil || fn.Name == "" || fn.Entry == 0 || fn.End <= fn.Entry {
			continue
		}
		s := elf.Symbol{Name: fn.Name, Info: elf.ST_INFO(elf.STB_GLOBAL, elf.STT_FUNC), Value: fn.Entry, Size: fn.End - fn.Entry}
		cands = append(cands, cand{Symbol: s, rank: rank(s)})
	}
	return cands, nil
}

// BuildID returns the GNU build-id of the ELF file r in hex, or "" if it has
// none.
func BuildID(r io.ReaderAt) (string, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return "", fmt.Errorf("symbolize: %w", err)
	}
	sec := f.Section(".note.gnu.build-id")
	if sec == nil {
		return "", nil
	}
	b, err := sec.Data()
	if err != nil {
		return "", fmt.Errorf("symbolize: build-id note: %w", err)
	}
	// Notes: namesz, descsz, type, then name and desc, each 4-byte aligned.
	for len(b) >= 12 {
		namesz, descsz, typ := f.ByteOrder.Uint32(b), f.ByteOrder.Uint32(b[4:]), f.ByteOrder.Uint32(b[8:])
		name := (uint64(namesz) + 3) &^ 3
		desc := (uint64(descsz) + 3) &^ 3
		if uint64(len(b)-12) < name+desc {
			break
		}
		if typ == 3 && namesz == 4 && string(b[12:15]) == "GNU" { // NT_GNU_BUILD_ID
			return hex.EncodeToString(b[12+name : 12+name+uint64(descsz)]), nil
		}
		b = b[12+name+desc:]
	}
	return "", nil
}

// rank orders aliases at one address: fewer leading underscores first, then
// global before weak before local.
func rank(s elf.Symbol) int {
	r := 4 * (len(s.Name) - len(strings.TrimLeft(s.Name, "_")))
	switch elf.ST_BIND(s.Info) {
	case elf.STB_GLOBAL:
	case elf.STB_WEAK:
		r++
	default:
		r += 2
	}
	return r
}

func sectionAt(f *elf.File, addr uint64) *elf.Section {
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC != 0 && s.Addr <= addr && addr-s.Addr < s.Size {
			return s
		}
	}
	return nil
}

// Len reports the number of function addresses in t.
func (t *Table) Len() int { return len(t.syms) }

// Vaddr returns the ELF virtual address that file offset off is loaded at,
// from the PT_LOAD segment that holds it; ok is false when none does.
func (t *Table) Vaddr(off uint64) (vaddr uint64, ok bool) {
	for _, s := range t.segs {
		if s.off <= off && off-s.off < s.size {
			return s.vaddr + (off - s.off), true
		}
	}
	return 0, false
}

// Lookup returns the function that holds ELF virtual address vaddr; ok is
// false when no symbol does.
func (t *Table) Lookup(vaddr uint64) (Symbol, bool) {
	i, found := slices.BinarySearchFunc(t.syms, vaddr, func(s sym, a uint64) int { return cmp.Compare(s.addr, a) })
	if !found {
		i-- // the last symbol that starts below vaddr
	}
	if i < 0 || vaddr >= t.syms[i].end {
		return Symbol{}, false
	}
	s := t.syms[i]
	return Symbol{Name: s.name, Addr: s.addr, Size: s.end - s.addr, Offset: vaddr - s.addr}, true
}
