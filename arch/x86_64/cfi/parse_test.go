package cfi

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// twoFDEs is a CIE and two FDEs, [0x1000, 0x1040) and [0x1080, 0x1090).
func twoFDEs() []byte {
	return ehFrame(testCIE{},
		testFDE{begin: 0x1000, size: 0x40, ins: cat(advance(1), defCFAOffset(16))},
		testFDE{begin: 0x1080, size: 0x10})
}

// entryOffsets returns where each entry of sec starts.
func entryOffsets(sec []byte) []int {
	var offs []int
	for off := 0; off+4 <= len(sec); {
		offs = append(offs, off)
		off += 4 + int(binary.LittleEndian.Uint32(sec[off:]))
	}
	return offs
}

func mustParse(t *testing.T, sec []byte) *Table {
	t.Helper()
	tab, err := Parse(sec, testAddr)
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, tab)
	return tab
}

func wantFormatError(t *testing.T, err error, off int, msg string) {
	t.Helper()
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v, want a *FormatError", err)
	}
	if fe.Offset != int64(off) || !strings.Contains(fe.Msg, msg) || fe.Section != ".eh_frame" {
		t.Errorf("error %q (offset %#x), want offset %#x and %q", err, fe.Offset, off, msg)
	}
}

// TestTruncated parses every prefix of a section: one that ends between
// entries is a smaller table; one that ends inside an entry is an error
// at that entry.
func TestTruncated(t *testing.T) {
	sec := twoFDEs()
	offs := entryOffsets(sec)
	for n := range len(sec) + 1 {
		tab, err := Parse(sec[:n], testAddr)
		last := 0 // the entry n cuts, or n itself at a boundary
		for _, o := range offs {
			if o <= n {
				last = o
			}
		}
		if last == n || n == len(sec) {
			if err != nil {
				t.Errorf("Parse(%d bytes), ending between entries: %v", n, err)
			} else {
				checkRows(t, tab)
			}
			continue
		}
		msg := "runs past the end"
		if n-last < 4 {
			msg = "too few for an entry length"
		}
		if err == nil {
			t.Errorf("Parse(%d bytes), ending inside the entry at %#x: no error", n, last)
			continue
		}
		wantFormatError(t, err, last, msg)
	}
}

func TestBadLength(t *testing.T) {
	sec := twoFDEs()
	second := entryOffsets(sec)[2]
	for _, c := range []struct {
		name   string
		length uint32
		msg    string
	}{
		{"past the end", 0x1000, "runs past the end"},
		{"reserved", 0xfffffff0, "reserved entry length"},
		{"64-bit, truncated", 0xffffffff, "runs past the end"},
		{"shorter than its CIE pointer", 2, "too short for its CIE pointer"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := append([]byte(nil), sec...)
			binary.LittleEndian.PutUint32(bad[second:], c.length)
			_, err := Parse(bad, testAddr)
			wantFormatError(t, err, second, c.msg)
		})
	}
}

// TestTerminator: a zero length ends the section, as in libgcc (crtend.o's
// zero word); nothing after it is read.
func TestTerminator(t *testing.T) {
	sec := twoFDEs()
	second := entryOffsets(sec)[2]
	cut := append(append(append([]byte(nil), sec[:second]...), 0, 0, 0, 0), sec[second:]...)
	tab := mustParse(t, cut)
	if st := tab.Stats(); st.FDEs != 1 {
		t.Errorf("stats %+v, want the FDE before the terminator only", st)
	}
	if _, ok := tab.Lookup(0x1080); ok {
		t.Errorf("Lookup(0x1080), in the FDE after the terminator, has a rule")
	}
}

// Test64Bit reads entries with the 64-bit length escape.
func Test64Bit(t *testing.T) {
	var sec []byte
	put32 := func(v uint32) { sec = binary.LittleEndian.AppendUint32(sec, v) }
	put64 := func(v uint64) { sec = binary.LittleEndian.AppendUint64(sec, v) }
	cieBody := cat([]byte{1, 'z', 'R', 0, 1, 0x78, regRA, 1, peSdata4 | pePcrel}, defaultInit)
	put32(0xffffffff)
	put64(uint64(8 + len(cieBody)))
	put64(0)
	sec = append(sec, cieBody...)
	fde := len(sec)
	put32(0xffffffff)
	put64(8 + 4 + 4 + 1)
	put64(uint64(fde + 12)) // back to the CIE at 0 from the pointer at fde+12
	put32(uint32(0x1000 - (testAddr + fde + 20)))
	put32(0x10)
	sec = append(sec, 0)
	tab := mustParse(t, sec)
	if r, ok := tab.Lookup(0x1000); !ok || r != sp8 {
		t.Errorf("Lookup(0x1000) = %v, %v; want %v", r, ok, sp8)
	}
}

// TestSkippedFDEs: an FDE that cannot be used is left out, counted, and
// the others are kept.
func TestSkippedFDEs(t *testing.T) {
	good := testFDE{begin: 0x1000, size: 0x10}
	other := testFDE{begin: 0x2000, size: 0x10}
	cieWith := func(version byte, aug string, ra byte, augData ...byte) []byte {
		return cat([]byte{version}, []byte(aug), []byte{0, 1, 0x78, ra}, augData, defaultInit)
	}
	rawCIE := func(body []byte) []byte {
		var s sectionAsm
		ci := s.cie(testCIE{})
		s.fde(ci, good, true, []byte{0})
		bad := s.entry(0, body)
		s.fde(bad, other, true, []byte{0})
		return s.b
	}
	cases := []struct {
		name string
		sec  []byte
		msg  string
	}{
		{"CIE version 2", rawCIE(cieWith(2, "zR", regRA, 1, 0x1b)), "CIE version 2"},
		{"unknown augmentation", rawCIE(cieWith(1, "zX", regRA, 0)), `augmentation "zX"`},
		{"eh augmentation", rawCIE(cieWith(1, "eh", regRA)), `augmentation "eh"`},
		{"return address column 15", rawCIE(cieWith(1, "zR", 15, 1, 0x1b)), "return address column 15"},
		{"datarel FDE pointers", rawCIE(cieWith(1, "zR", regRA, 1, 0x3b)), "FDE pointer encoding 0x3b"},
		{"indirect FDE pointers", rawCIE(cieWith(1, "zR", regRA, 1, 0x9b)), "FDE pointer encoding 0x9b"},
		{"unknown pointer format", rawCIE(cieWith(1, "zR", regRA, 1, 0x17)), "FDE pointer encoding 0x17"},
		{"augmentation data past the CIE", rawCIE(cieWith(1, "zR", regRA, 0x40, 0x1b)), "augmentation data length"},
		{"augmentation longer than its length", rawCIE(cieWith(1, "zPR", regRA, 1, 0x03, 0, 0, 0, 0, 0x1b)), "augmentation data longer"},
		{"bad personality encoding", rawCIE(cieWith(1, "zPR", regRA, 6, 0x07, 0, 0, 0, 0, 0x1b)), "personality pointer encoding"},
		{"truncated CIE", rawCIE([]byte{1, 'z', 'R', 0, 1}), "truncated CIE"},
		{"bad initial instructions", rawCIE(cat(cieWith(1, "zR", regRA, 1, 0x1b), []byte{0x3f})), "initial instructions"},
		{"location change in a CIE", rawCIE(cat(cieWith(1, "zR", regRA, 1, 0x1b), advance(1))), "location change"},
		{"CIE pointer before the section", func() []byte {
			var s sectionAsm
			ci := s.cie(testCIE{})
			s.fde(ci, good, true, []byte{0})
			s.fde(-100, other, true, []byte{0})
			return s.b
		}(), "CIE pointer outside the section"},
		{"CIE pointer to an FDE", func() []byte {
			var s sectionAsm
			ci := s.cie(testCIE{})
			f := s.fde(ci, good, true, []byte{0})
			s.fde(f, other, true, []byte{0})
			return s.b
		}(), "where no CIE starts"},
		{"CIE pointer into a CIE", func() []byte {
			var s sectionAsm
			ci := s.cie(testCIE{})
			s.fde(ci, good, true, []byte{0})
			s.fde(ci+4, other, true, []byte{0})
			return s.b
		}(), "where no CIE starts"},
		{"truncated FDE header", func() []byte {
			var s sectionAsm
			ci := s.cie(testCIE{})
			s.fde(ci, good, true, []byte{0})
			s.entry(uint32(len(s.b)+4-ci), []byte{1, 2, 3})
			return s.b
		}(), "truncated FDE header"},
		{"FDE augmentation data past the end", func() []byte {
			var s sectionAsm
			ci := s.cie(testCIE{})
			s.fde(ci, good, true, []byte{0})
			s.fde(ci, other, true, []byte{9})
			return s.b
		}(), "truncated FDE header"},
		{"pc range wraps", func() []byte {
			var s sectionAsm
			ci := s.cie(testCIE{aug: "z"})
			s.fde(ci, good, false, []byte{0})
			s.fde(ci, testFDE{begin: ^uint64(0) - 4, size: 0x10}, false, []byte{0})
			return s.b
		}(), "wraps around"},
		{"overlap", ehFrame(testCIE{}, good, testFDE{begin: 0x1008, size: 0x10}), "overlaps an FDE that ends at 0x1010"},
		{"duplicate", ehFrame(testCIE{}, good, good), "overlaps"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tab := mustParse(t, c.sec)
			st := tab.Stats()
			if st.Skipped != 1 || st.FDEs != 2 || st.Cut != 0 {
				t.Errorf("stats %+v, want 2 FDEs, 1 skipped", st)
			}
			var fe *FormatError
			if !errors.As(st.Err, &fe) || !strings.Contains(fe.Msg, c.msg) || fe.Offset <= 0 || fe.Offset >= int64(len(c.sec)) {
				t.Errorf("Stats.Err = %v, want a *FormatError at an FDE, with %q", st.Err, c.msg)
			}
			if r, ok := tab.Lookup(good.begin); !ok || r != sp8 {
				t.Errorf("Lookup(%#x), in the good FDE, = %v, %v; want %v", good.begin, r, ok, sp8)
			}
			if r, ok := tab.Lookup(good.begin + good.size); ok {
				t.Errorf("Lookup(%#x), past the good FDE, = %v; want no rule", good.begin+good.size, r)
			}
		})
	}
}

// TestOrder: FDEs in any order make the same sorted table; adjacent FDEs
// with the same rule share a row; a gap between FDEs has none; an empty
// FDE covers nothing.
func TestOrder(t *testing.T) {
	a := testFDE{begin: 0x1000, size: 0x10}
	b := testFDE{begin: 0x1010, size: 0x10}                                         // adjacent to a, same rule
	c := testFDE{begin: 0x1040, size: 0x10, ins: cat(advance(4), defCFAOffset(16))} // after a gap
	empty := testFDE{begin: 0x1030, size: 0}
	want := []Row{{0x1000, sp8}, {0x1020, noRule}, {0x1040, sp8}, {0x1044, sp16}, {0x1050, noRule}}
	for _, order := range [][]testFDE{{a, b, c, empty}, {c, empty, b, a}, {b, c, a, empty}} {
		tab := mustParse(t, ehFrame(testCIE{}, order...))
		var got []Row
		for r := range tab.All() {
			got = append(got, r)
		}
		if len(got) != len(want) {
			t.Fatalf("rows %+v, want %+v", got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("row %d = %+v, want %+v", i, got[i], want[i])
			}
		}
		if st := tab.Stats(); st.Skipped != 0 || st.FDEs != 4 {
			t.Errorf("stats %+v, want 4 FDEs, none skipped", st)
		}
		if tab.Rules() != 2 {
			t.Errorf("%d distinct rules, want 2", tab.Rules())
		}
	}
}

func TestEmpty(t *testing.T) {
	for _, sec := range [][]byte{nil, {0, 0, 0, 0}, ehFrame(testCIE{})} {
		tab := mustParse(t, sec)
		if tab.Len() != 0 || tab.Size() != 0 {
			t.Errorf("Parse(%x): %d rows, %d bytes; want none", sec, tab.Len(), tab.Size())
		}
		if _, ok := tab.Lookup(0); ok {
			t.Errorf("Lookup(0) in an empty table has a rule")
		}
	}
}

// TestSpan: a table holds pcs within 4 GiB of its first.
func TestSpan(t *testing.T) {
	sec := func(hi uint64) []byte {
		var s sectionAsm
		ci := s.cie(testCIE{aug: "z"})
		s.fde(ci, testFDE{begin: 0x1000, size: 0x10}, false, []byte{0})
		s.fde(ci, testFDE{begin: hi, size: 0x10}, false, []byte{0})
		return s.b
	}
	// The gap row after the last FDE starts at most 4 GiB - 1 above the
	// first.
	tab := mustParse(t, sec(0x1000+1<<32-0x11))
	if r, ok := tab.Lookup(0x1000 + 1<<32 - 2); !ok || r != sp8 {
		t.Errorf("Lookup(last pc) = %v, %v; want %v", r, ok, sp8)
	}
	_, err := Parse(sec(0x1000+1<<32-0x10), testAddr)
	var fe *FormatError
	if !errors.As(err, &fe) || !strings.Contains(fe.Msg, "4 GiB") {
		t.Errorf("Parse of FDEs 4 GiB apart: %v, want a *FormatError", err)
	}
}

// TestCode: FromELF's filter; an FDE outside the executable segments is
// skipped.
func TestCode(t *testing.T) {
	sec := &section{name: ".eh_frame", data: ehFrame(testCIE{}, testFDE{begin: 0x1000, size: 0x10}, testFDE{begin: 0x5000, size: 0x10}), addr: testAddr}
	tab, err := build([]*section{sec}, []span{{0x1000, 0x2000}})
	if err != nil {
		t.Fatal(err)
	}
	if st := tab.Stats(); st.Skipped != 1 || !strings.Contains(st.Err.Error(), "outside the executable segments") {
		t.Errorf("stats %+v, want the FDE at 0x5000 skipped", st)
	}
	if _, ok := tab.Lookup(0x5000); ok {
		t.Errorf("Lookup(0x5000) has a rule")
	}
}

// debugFrame is a .debug_frame (version 4 CIE, absolute pointers and CIE
// offsets) with one FDE per range.
func debugFrame(version byte, fdes ...testFDE) []byte {
	var b []byte
	body := []byte{version, 0}
	if version == 4 {
		body = append(body, 8, 0)
	}
	body = cat(body, []byte{1, 0x78}, uleb(regRA), defaultInit)
	b = binary.LittleEndian.AppendUint32(b, uint32(4+len(body)))
	b = binary.LittleEndian.AppendUint32(b, 0xffffffff)
	b = append(b, body...)
	for _, f := range fdes {
		b = binary.LittleEndian.AppendUint32(b, uint32(4+16+len(f.ins)))
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = binary.LittleEndian.AppendUint64(b, f.begin)
		b = binary.LittleEndian.AppendUint64(b, f.size)
		b = append(b, f.ins...)
	}
	return b
}

// TestDebugFrame reads .debug_frame beside .eh_frame: .eh_frame wins
// where both cover a pc.
func TestDebugFrame(t *testing.T) {
	for _, version := range []byte{1, 3, 4} {
		eh := &section{name: ".eh_frame", data: ehFrame(testCIE{}, testFDE{begin: 0x1000, size: 0x10}), addr: testAddr}
		debug := &section{name: ".debug_frame", debug: true, prio: 1, data: debugFrame(version,
			testFDE{begin: 0x1000, size: 0x10, ins: cat(defCFAOffset(16))},
			testFDE{begin: 0x1010, size: 0x10, ins: cat(advance(1), defCFAOffset(16))})}
		tab, err := build([]*section{eh, debug}, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkRows(t, tab)
		for _, w := range []at{{0, sp8}, {0xf, sp8}, {0x10, sp8}, {0x11, sp16}, {0x1f, sp16}, {0x20, noRule}} {
			if r, ok := tab.Lookup(fdeBase + w.pc); r != w.rule || ok != (w.rule != noRule) {
				t.Errorf("version %d: Lookup(%#x) = %v, %v; want %v", version, fdeBase+w.pc, r, ok, w.rule)
			}
		}
		if st := tab.Stats(); st.FDEs != 3 || st.Skipped != 1 {
			t.Errorf("version %d: stats %+v, want 3 FDEs, the .debug_frame one under .eh_frame's skipped", version, st)
		}
	}
}

// TestRuleSize pins the size Table.Size counts per distinct rule.
func TestRuleSize(t *testing.T) {
	tab := mustParse(t, twoFDEs())
	// One 64 KiB page: two page bounds.
	if want := tab.Len()*4 + 2*4 + (tab.Rules()+1)*16; tab.Size() != want {
		t.Errorf("Size() = %d, want %d (4 bytes a row, 4 a page bound, 16 a rule)", tab.Size(), want)
	}
}

// TestOverflow: past 65535 distinct rules, rows get no rule, counted.
func TestOverflow(t *testing.T) {
	var ins []byte
	const n = 1<<16 + 10
	for i := range n {
		ins = append(ins, advance(1)...)
		ins = append(ins, defCFAOffset(uint64(8+i))...)
	}
	tab := mustParse(t, ehFrame(testCIE{}, testFDE{begin: 0x1000, size: n + 1, ins: ins}))
	// n distinct CFA offsets, 8 … 8+n-1.
	if st := tab.Stats(); st.Overflow != n-(1<<16-1) || tab.Rules() != 1<<16-1 {
		t.Errorf("stats %+v, %d rules; want %d rows over the 65535 rules", st, tab.Rules(), n-(1<<16-1))
	}
	if r, ok := tab.Lookup(0x1000 + n); ok {
		t.Errorf("Lookup(last row) = %v, want no rule", r)
	}
	if r, ok := tab.Lookup(0x1000 + 100); !ok || r.CFAOffset != 8+99 {
		t.Errorf("Lookup(0x1064) = %v, %v; want cfa=sp+107", r, ok)
	}
}
