package cfi

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/unwindd/unwindd/arch/x86_64"
)

var writeSeeds = flag.Bool("cfi.seeds", false, "rewrite testdata/fuzz/FuzzParse from the test programs' and libc's .eh_frame")

// FuzzParse parses any bytes as an .eh_frame: no panic, no loop; an error
// is a *FormatError inside the input; a table holds its invariants, has no
// more rows than the input has bytes to say them, and Lookup agrees with a
// linear scan of its rows.
func FuzzParse(f *testing.F) {
	f.Add(twoFDEs(), uint64(testAddr))
	f.Add(ehFrame(testCIE{aug: "zRS", init: []byte{}}, testFDE{begin: 0x1000, size: 0x10, ins: cat(
		op(cfaDefCFAExpression, block(breg(regRSP, 160), []byte{opDeref})),
		op(cfaExpression, uleb(regRBP), block(breg(regRSP, 120))),
		op(cfaExpression, uleb(regRA), block(breg(regRSP, 168))))}), uint64(testAddr))
	f.Add(ehFrame(testCIE{}, testFDE{begin: 0x1000, size: 0x40, ins: cat(
		op(cfaDefCFAExpression, pltExpr(11)), advance(5), []byte{cfaRememberState}, defCFA(10, 0),
		advance(3), []byte{cfaRestoreState}, op(cfaExpression, uleb(regRBP), block(breg(regRBP, 0))),
		op(cfaDefCFAExpression, block(breg(regRBP, -8), []byte{opDeref})))}), uint64(testAddr))
	f.Fuzz(func(t *testing.T, data []byte, addr uint64) {
		tab, err := Parse(data, addr)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || fe.Offset < 0 || fe.Offset > int64(len(data)) {
				t.Fatalf("error %v: want a *FormatError inside the %d bytes", err, len(data))
			}
			return
		}
		st := tab.Stats()
		if st.Skipped+st.Cut > st.FDEs || (st.Skipped+st.Cut > 0) != (st.Err != nil) {
			t.Fatalf("stats %+v do not add up", st)
		}
		if st.Err != nil && !errors.As(st.Err, new(*FormatError)) {
			t.Fatalf("Stats.Err %v is not a *FormatError", st.Err)
		}
		// A row needs an FDE (8 bytes at least) or an advance (1 byte).
		if tab.Len() > len(data)+2 {
			t.Fatalf("%d rows from %d bytes", tab.Len(), len(data))
		}
		checkRows(t, tab)
		for i := range tab.Len() {
			row := tab.Row(i)
			for _, pc := range []uint64{row.Start, row.Start + 1, row.Start - 1} {
				want, wantOK := scan(tab, pc)
				if got, ok := tab.Lookup(pc); got != want || ok != wantOK {
					t.Fatalf("Lookup(%#x) = %v, %v; a scan of the rows says %v, %v", pc, got, ok, want, wantOK)
				}
			}
			if r := row.Rule; r != (x86_64.Rule{}) && (r.CFA == x86_64.CFAUndefined || r.RA == x86_64.RegSame) {
				t.Fatalf("row %d has rule %v, which cannot step", i, r)
			}
		}
	})
}

// scan looks pc up by walking every row.
func scan(tab *Table, pc uint64) (x86_64.Rule, bool) {
	var r x86_64.Rule
	for row := range tab.All() {
		if row.Start > pc {
			break
		}
		r = row.Rule
	}
	return r, r != x86_64.Rule{}
}

// TestWriteSeeds rewrites the committed seed corpus with -cfi.seeds: the
// .eh_frame of test programs built with the flags whose CFI differs, and
// libc's first CIE with its .plt FDE beside its signal-frame CIE with
// __restore_rt's FDE.
func TestWriteSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("no -cfi.seeds")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte, addr uint64) {
		if len(data) > 4096 {
			t.Fatalf("seed %s: %d bytes, more than a few KB", name, len(data))
		}
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\nuint64(%d)\n", strconv.Quote(string(data)), addr)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range testPrograms(t) {
		switch p.name {
		case "O2", "ibt-plt", "O0":
			sec := openELF(t, p.path).Section(".eh_frame")
			data, err := sec.Data()
			if err != nil {
				t.Fatal(err)
			}
			write("program-"+p.name, data, sec.Addr)
		}
	}
	f := openELF(t, libcPath(t))
	sec := f.Section(".eh_frame")
	data, err := sec.Data()
	if err != nil {
		t.Fatal(err)
	}
	// The entries by offset: the zR CIE at 0 and the .plt FDE after it;
	// the zRS CIE and its FDE wherever they are.
	var signal []byte
	for off := 0; off+8 <= len(data); {
		n := 4 + int(uint32(data[off])|uint32(data[off+1])<<8|uint32(data[off+2])<<16|uint32(data[off+3])<<24)
		if n == 4 || off+n > len(data) {
			break
		}
		if string(data[off+8:off+13]) == "\x01zRS\x00" {
			next := off + n
			m := 4 + int(uint32(data[next])|uint32(data[next+1])<<8)
			signal = data[off : next+m]
			break
		}
		off += n
	}
	if signal == nil {
		t.Fatal("no zRS CIE in libc's .eh_frame")
	}
	plt := data[:0x18+4+int(data[0x18])]
	write("libc-plt-signal", append(append([]byte(nil), plt...), signal...), sec.Addr)
}
