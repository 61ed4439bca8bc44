package sframe

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/unwindd/unwindd/arch/x86_64"
)

// TestReadelf compares every FDE and FRE of each fixture with what readelf
// --sframe printed of it (the committed .sframe.txt files).
func TestReadelf(t *testing.T) {
	for _, tc := range fixtures {
		t.Run(tc.name, func(t *testing.T) {
			fx := loadFixture(t, tc.name)
			want := parseReadelf(t, tc.name)
			s := fx.sec
			if s.Version() != tc.version || s.PCRel() != tc.pcrel {
				t.Fatalf("Version() = %d, PCRel() = %v, want %d, %v", s.Version(), s.PCRel(), tc.version, tc.pcrel)
			}
			if got := "SFRAME_VERSION_" + string(rune('0'+tc.version)); want.version != got {
				t.Fatalf("readelf says %s, the test expects %s", want.version, got)
			}
			if pcrel := slices.Contains(want.flags, "SFRAME_F_FDE_FUNC_START_PCREL"); pcrel != s.PCRel() {
				t.Errorf("readelf flags %v, PCRel() = %v", want.flags, s.PCRel())
			}
			// binutils 2.40 does not print the fixed RA offset; every
			// version writes -8 on AMD64.
			if s.fixedRA != -8 || (tc.version > 1 && want.fixedRA != -8) {
				t.Errorf("fixed RA offset %d, readelf %d, want -8", s.fixedRA, want.fixedRA)
			}
			if s.NumFDEs() != want.numFDEs {
				t.Fatalf("NumFDEs() = %d, readelf %d", s.NumFDEs(), want.numFDEs)
			}

			rows := make([][]Row, s.NumFDEs())
			i, numRows := -1, 0
			for fn, r := range s.Rows {
				if i < 0 || fn.Start != s.Func(i).Start {
					i++
				}
				rows[i] = append(rows[i], r)
				numRows++
			}
			if numRows != want.numFREs {
				t.Errorf("Rows gave %d rows, readelf counts %d FREs", numRows, want.numFREs)
			}

			for i, wf := range want.fdes {
				f := s.Func(i)
				if f.Start != wf.pc || uint64(f.Size) != wf.size || f.PCMask != wf.mask ||
					f.Flex != (wf.attr == "F") || f.Signal != (wf.attr == "S") || f.NumRows != len(wf.rows) {
					t.Errorf("FDE %d = %+v, readelf pc %#x size %d mask %v attr %q with %d rows",
						i, f, wf.pc, wf.size, wf.mask, wf.attr, len(wf.rows))
					continue
				}
				if f.PCMask {
					// readelf does not print the block size: it is
					// the entry size of the PLT section the FDE
					// covers (v1 has no field, and 16 is .plt's).
					if want := pltEntSize(t, fx.elf, f.Start); uint64(f.RepSize) != want {
						t.Errorf("FDE %d at %#x: RepSize %d, want the section's entry size %d", i, f.Start, f.RepSize, want)
					}
				} else if f.RepSize != 0 {
					t.Errorf("FDE %d: RepSize %d without PCMask", i, f.RepSize)
				}
				limit := uint64(f.Size)
				if f.PCMask {
					limit = uint64(f.RepSize)
				}
				for j, wr := range wf.rows {
					r := rows[i][j]
					pc := f.Start + r.Start
					if f.PCMask {
						pc = r.Start
					}
					end := limit
					if j+1 < len(wf.rows) {
						end = wf.rows[j+1].pc - (wf.pc)
						if f.PCMask {
							end = wf.rows[j+1].pc
						}
					}
					got := readelfRow{pc: pc, raUndefined: r.RAUndefined}
					if !r.RAUndefined {
						got.cfa = r.CFA.String()
						got.fp = readelfLoc(r.FP)
						got.ra = readelfRA(r.RA, s.fixedRA)
					}
					wr.ra = readelfRAText(wr.ra, tc.version)
					if got != wr || r.End != end {
						t.Errorf("FDE %d (%#x) row %d = %+v end %#x, readelf %+v end %#x", i, f.Start, j, got, r.End, wr, end)
					}
				}
			}
		})
	}
}

// pltEntSize is sh_entsize of the section holding addr.
func pltEntSize(t *testing.T, f *elf.File, addr uint64) uint64 {
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC != 0 && addr >= s.Addr && addr < s.Addr+s.Size {
			return s.Entsize
		}
	}
	t.Fatalf("no section holds %#x", addr)
	return 0
}

// The rules the fixtures' rows come to. RA is at CFA-8 in every row of the
// fixtures but the outermost one.
func spRule(off int32) x86_64.Rule {
	return x86_64.Rule{CFA: x86_64.CFASP, CFAOffset: off, RA: x86_64.RegAtCFA, RAOffset: -8, FP: x86_64.RegSame}
}

func withFP(r x86_64.Rule, kind x86_64.RegKind, off int32) x86_64.Rule {
	r.FP, r.FPOffset = kind, off
	return r
}

var (
	bp16     = withFP(x86_64.Rule{CFA: x86_64.CFABP, CFAOffset: 16, RA: x86_64.RegAtCFA, RAOffset: -8}, x86_64.RegAtCFA, -16)
	noRule   = x86_64.Rule{}
	outerOne = x86_64.Rule{CFA: x86_64.CFASP, CFAOffset: 8, RA: x86_64.RegUndefined, FP: x86_64.RegSame}
	sigRule  = func(signal bool) x86_64.Rule {
		r := withFP(spRule(160), x86_64.RegAtCFA, -40)
		r.Signal = signal
		return r
	}
	// realign at 0x22 on (v3): CFA = *(rbp-16), rbp saved at *(rbp+0).
	drap = x86_64.Rule{CFA: x86_64.CFADerefBP, CFAOffset: -16, RA: x86_64.RegAtCFA, RAOffset: -8, FP: x86_64.RegAtBP}
)

// TestLookup looks up pcs inside functions, at row boundaries, around
// function ends, in PLT stubs and outside everything. Offsets are the same in
// every fixture: the code is the same, only the unwind tables differ.
func TestLookup(t *testing.T) {
	type want struct {
		r  x86_64.Rule
		ok bool
	}
	yes := func(r x86_64.Rule) want { return want{r, true} }
	no := want{noRule, false}
	// byVersion gives the expected result per fixture: v1, v2, v2+PCREL, v3.
	byVersion := func(v1, v2, v3 want) [4]want { return [4]want{v1, v2, v2, v3} }
	all := func(w want) [4]want { return [4]want{w, w, w, w} }

	tests := []struct {
		at   string // symbol or section
		off  uint64
		want [4]want
	}{
		{"leaf", 0, all(yes(spRule(8)))},
		{"leaf", 4, all(yes(spRule(8)))},
		{"leaf", 5, all(no)}, // past leaf's end, in the padding before pushes
		{"main", 0, all(yes(spRule(8)))},
		{"main", 1, all(yes(spRule(16)))},    // after push %rbx
		{"main", 0x61, all(yes(spRule(16)))}, // the last byte of that row
		{"main", 0x62, all(yes(spRule(8)))},  // after pop %rbx
		{"main", 0x65, all(yes(spRule(8)))},  // main's last byte
		{"main", 0x66, all(no)},              // just after main: padding, then _start
		{"_start", 0, all(no)},               // crt code has no SFrame
		{"vla", 0x10, all(yes(withFP(spRule(16), x86_64.RegAtCFA, -16)))},
		{"vla", 0x11, all(yes(bp16))}, // after mov %rsp,%rbp
		{"vla", 0x54, all(yes(bp16))},
		{"vla", 0x55, all(yes(withFP(spRule(8), x86_64.RegAtCFA, -16)))},
		{"use_alloca", 0x9, all(yes(bp16))},
		{"big_frame", 0x7, all(yes(spRule(16)))},
		{"big_frame", 0x8, all(yes(spRule(4016)))},   // 2-byte offsets
		{"huge_frame", 0x8, all(yes(spRule(70016)))}, // 4-byte offsets
		{"huge_frame", 0x58, all(yes(spRule(8)))},
		// 2-byte FRE start offsets.
		{"long_func", 0x407, all(yes(withFP(spRule(48), x86_64.RegAtCFA, -16)))},
		{"long_func", 0x408, all(yes(withFP(spRule(24), x86_64.RegAtCFA, -16)))},
		{"long_func", 0x410, all(yes(withFP(spRule(48), x86_64.RegAtCFA, -16)))},
		{"long_func", 0x441, all(yes(withFP(spRule(8), x86_64.RegAtCFA, -16)))},
		{"long_func", 0x442, all(no)},
		// PLT0 (push; jmp), then the 16-byte entries (jmp; push; jmp):
		// CFA sp+8 up to the push at 0xb of each, sp+16 after it.
		{".plt", 0, all(yes(spRule(16)))},
		{".plt", 6, all(yes(spRule(24)))},
		{".plt", 0x10, all(yes(spRule(8)))},
		{".plt", 0x1a, all(yes(spRule(8)))},
		{".plt", 0x1b, all(yes(spRule(16)))},
		{".plt", 0x20, all(yes(spRule(8)))},
		{".plt", 0x7a, all(yes(spRule(8)))},
		{".plt", 0x7b, all(yes(spRule(16)))},
		{".plt", 0x7f, all(yes(spRule(16)))},
		// .plt.got (8-byte entries, a jmp): ld 2.40 gives it no FDE.
		{".plt.got", 0, byVersion(no, yes(spRule(16)), yes(spRule(16)))},
		{".plt.got", 7, byVersion(no, yes(spRule(16)), yes(spRule(16)))},
		// .cfi_undefined rip: only v3's gas marks the outermost frame.
		{"outermost", 0, byVersion(yes(spRule(8)), yes(spRule(8)), yes(outerOne))},
		{"outermost", 7, byVersion(yes(spRule(8)), yes(spRule(8)), yes(outerOne))},
		// CFA in r10: gas 2.40 wrongly writes sp+0, gas 2.44 skips the
		// function, v3 has a flexible FDE whose r10 rows are not a Rule.
		{"flexfp", 0, byVersion(yes(spRule(8)), no, yes(spRule(8)))},
		{"flexfp", 5, byVersion(yes(spRule(0)), no, no)},
		{"flexfp", 6, byVersion(yes(withFP(spRule(0), x86_64.RegAtCFA, -16)), no, no)},
		{"flexfp", 7, byVersion(yes(withFP(spRule(16), x86_64.RegAtCFA, -16)), no, yes(withFP(spRule(16), x86_64.RegAtCFA, -16)))},
		{"flexfp", 8, byVersion(yes(spRule(8)), no, yes(spRule(8)))},
		{"sigtramp", 0, byVersion(yes(sigRule(false)), yes(sigRule(false)), yes(sigRule(true)))},
		{"sigtramp", 2, byVersion(yes(sigRule(false)), yes(sigRule(false)), yes(sigRule(true)))},
		// gcc's DRAP: only v3 describes it.
		{"realign", 0, byVersion(no, no, yes(spRule(8)))},
		{"realign", 5, byVersion(no, no, no)},    // CFA = r10
		{"realign", 0x1e, byVersion(no, no, no)}, // CFA = r10, rbp at *(rbp+0)
		{"realign", 0x22, byVersion(no, no, yes(drap))},
		{"realign", 0x52, byVersion(no, no, yes(drap))},
		{"realign", 0x53, byVersion(no, no, no)},
		{"realign", 0x5a, byVersion(no, no, yes(withFP(spRule(8), x86_64.RegAtBP, 0)))},
	}
	for vi, tc := range fixtures {
		t.Run(tc.name, func(t *testing.T) {
			fx := loadFixture(t, tc.name)
			for _, tt := range tests {
				pc := fx.sym(t, tt.at) + tt.off
				w := tt.want[vi]
				if r, ok := fx.sec.Lookup(pc); r != w.r || ok != w.ok {
					t.Errorf("Lookup(%s+%#x = %#x) = %v, %v; want %v, %v", tt.at, tt.off, pc, r, ok, w.r, w.ok)
				}
			}
			// Outside every function.
			first, last := fx.sec.Func(0), fx.sec.Func(fx.sec.NumFDEs()-1)
			for _, pc := range []uint64{0, first.Start - 1, last.Start + uint64(last.Size), fx.addr, 1 << 63, ^uint64(0)} {
				if r, ok := fx.sec.Lookup(pc); ok || r != noRule {
					t.Errorf("Lookup(%#x) = %v, %v outside every function", pc, r, ok)
				}
			}
		})
	}
}

// TestLookupEveryPC checks Lookup against Rows at every byte of every
// function of the fixtures and of the gaps between them.
func TestLookupEveryPC(t *testing.T) {
	for _, tc := range fixtures {
		t.Run(tc.name, func(t *testing.T) {
			if n := checkEveryPC(t, loadFixture(t, tc.name).sec); n == 0 {
				t.Error("no pc has a rule")
			}
		})
	}
}

// checkEveryPC holds Lookup to Rows (Lookup has a fast path of its own for
// default FDEs) at every pc from 32 bytes below the first function to 32
// above the last, and returns how many pcs have a rule.
func checkEveryPC(t *testing.T, s *Section) int {
	t.Helper()
	type res struct {
		r  x86_64.Rule
		ok bool
	}
	want := map[uint64]res{}
	for fn, row := range s.Rows {
		if !fn.PCMask {
			for off := row.Start; off < row.End; off++ {
				want[fn.Start+off] = res{row.Rule, row.OK}
			}
			continue
		}
		for block := uint64(0); block < uint64(fn.Size); block += uint64(fn.RepSize) {
			for off := row.Start; off < row.End && block+off < uint64(fn.Size); off++ {
				want[fn.Start+block+off] = res{row.Rule, row.OK}
			}
		}
	}
	if s.NumFDEs() == 0 {
		return 0
	}
	first, last := s.Func(0), s.Func(s.NumFDEs()-1)
	n := 0
	for pc := first.Start - 32; pc < last.Start+uint64(last.Size)+32; pc++ {
		w := want[pc]
		r, ok := s.Lookup(pc)
		if r != w.r || ok != w.ok {
			t.Errorf("Lookup(%#x) = %v, %v; Rows say %v, %v", pc, r, ok, w.r, w.ok)
		}
		if ok {
			n++
		}
	}
	return n
}

// TestFromELF finds the section by name, by type, and by program header in a
// file without section headers.
func TestFromELF(t *testing.T) {
	for _, tc := range fixtures {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", tc.name))
			if err != nil {
				t.Fatal(err)
			}
			want := loadFixture(t, tc.name).sec

			// Renamed: found by type SHT_GNU_SFRAME (v2+PCREL, v3), else
			// by program header.
			renamed := bytes.Clone(raw)
			i := bytes.Index(renamed, []byte(".sframe\x00"))
			if i < 0 {
				t.Fatal("no .sframe name")
			}
			renamed[i+1] = 'x'
			f, err := elf.NewFile(bytes.NewReader(renamed))
			if err != nil {
				t.Fatal(err)
			}
			if byType := f.SectionByType(shtGNUSFrame) != nil; byType != tc.pcrel {
				t.Fatalf("SHT_GNU_SFRAME section: %v, want %v", byType, tc.pcrel)
			}
			sameSection(t, "renamed", fromBytes(t, renamed), want)

			// No section headers: PT_GNU_SFRAME.
			noSH := bytes.Clone(raw)
			le := binary.LittleEndian
			le.PutUint64(noSH[0x28:], 0) // e_shoff
			le.PutUint16(noSH[0x3c:], 0) // e_shnum
			le.PutUint16(noSH[0x3e:], 0) // e_shstrndx
			sameSection(t, "no section headers", fromBytes(t, noSH), want)

			// Nor a PT_GNU_SFRAME: ErrNoSFrame.
			phoff, phentsize, phnum := le.Uint64(noSH[0x20:]), uint64(le.Uint16(noSH[0x36:])), uint64(le.Uint16(noSH[0x38:]))
			found := false
			for i := range phnum {
				ph := noSH[phoff+i*phentsize:]
				if elf.ProgType(le.Uint32(ph)) == ptGNUSFrame {
					le.PutUint32(ph, uint32(elf.PT_NULL))
					found = true
				}
			}
			if !found {
				t.Fatal("no PT_GNU_SFRAME")
			}
			f, err = elf.NewFile(bytes.NewReader(noSH))
			if err != nil {
				t.Fatal(err)
			}
			if s, err := FromELF(f); !errors.Is(err, ErrNoSFrame) {
				t.Errorf("FromELF without SFrame = %v, %v; want ErrNoSFrame", s, err)
			}
		})
	}
}

func fromBytes(t *testing.T, b []byte) *Section {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	s, err := FromELF(f)
	if err != nil {
		t.Fatalf("FromELF: %v", err)
	}
	return s
}

// sameSection fails unless got and want have the same functions and rows.
func sameSection(t *testing.T, what string, got, want *Section) {
	t.Helper()
	if got.Version() != want.Version() || got.NumFDEs() != want.NumFDEs() {
		t.Fatalf("%s: version %d with %d FDEs, want %d with %d", what, got.Version(), got.NumFDEs(), want.Version(), want.NumFDEs())
	}
	type fr struct {
		f Func
		r Row
	}
	var g, w []fr
	for f, r := range got.Rows {
		g = append(g, fr{f, r})
	}
	for f, r := range want.Rows {
		w = append(w, fr{f, r})
	}
	if !slices.Equal(g, w) {
		t.Errorf("%s: rows differ:\n%v\nwant\n%v", what, g, w)
	}
}
