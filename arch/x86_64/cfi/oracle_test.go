package cfi

import (
	"bufio"
	"bytes"
	"cmp"
	"debug/elf"
	"flag"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/internal/testutil"
)

var readelfFiles = flag.String("cfi.readelf", "", "glob of more ELF files for TestReadelf to compare with readelf (e.g. '/usr/bin/*')")

// The readelf oracle: readelf --debug-dump=frames-interp prints, for every
// FDE, the row table its CFA program builds (LOC, CFA, and a column per
// register it mentions). For every row we check Lookup at the row's first
// and last pc: where readelf's rule is one x86_64.Rule can say, ours must be
// the same; where it is not (a CFA in r10, rip kept in rdx), ours must be no
// rule. readelf -wF prints "exp" for an expression without saying which,
// so the expressions come from the plain --debug-dump=frames listing of the
// same FDE (when an FDE has more than one, its "exp" rows are not checked).

// rdRow is one row readelf printed.
type rdRow struct {
	loc  uint64
	cfa  string
	regs map[string]string // by register name ("rbp", "rsp", "ra")
}

// rdEntry is a CIE or an FDE as readelf printed it.
type rdEntry struct {
	sec        string // ".eh_frame" or ".debug_frame"
	off        uint64
	cie        uint64 // an FDE's CIE
	fde        bool
	aug        string // a CIE's augmentation
	begin, end uint64
	rows       []rdRow
	cfaExprs   []string            // DW_CFA_def_cfa_expression texts, from the plain listing
	regExprs   map[string][]string // DW_CFA_expression texts, by register name
}

func (e *rdEntry) key() string { return fmt.Sprintf("%s@%x", e.sec, e.off) }

var (
	rdSection = regexp.MustCompile(`^Contents of the (\.\w+) section`)
	rdCIE     = regexp.MustCompile(`^([0-9a-f]+) [0-9a-f]+ [0-9a-f]+ CIE "([^"]*)"`)
	rdFDE     = regexp.MustCompile(`^([0-9a-f]+) [0-9a-f]+ [0-9a-f]+ FDE cie=([0-9a-f]+) pc=([0-9a-f]+)\.\.([0-9a-f]+)`)
	rdHeader  = regexp.MustCompile(`^\s+LOC\s+CFA\s*(.*)$`)
	rdCFAExpr = regexp.MustCompile(`^\s+DW_CFA_def_cfa_expression \((.*)\)$`)
	rdRegExpr = regexp.MustCompile(`^\s+DW_CFA_expression: r\d+ \((\w+)\) \((.*)\)$`)
)

// readelf runs readelf on path with the frames-interp and the plain frames
// dump and returns the entries, keyed by section and offset.
func readelf(t *testing.T, path string) map[string]*rdEntry {
	t.Helper()
	bin, err := exec.LookPath("readelf")
	if err != nil {
		testutil.Need(t, "readelf", "the oracle for CFI rows (binutils): "+err.Error())
	}
	run := func(arg string) []byte {
		// -wN: not the separate debug file's sections too.
		out, err := exec.Command(bin, "--debug-dump=no-follow-links", arg, path).Output()
		if err != nil {
			t.Fatalf("readelf %s %s: %v", arg, path, err)
		}
		return out
	}
	entries := map[string]*rdEntry{}
	var sec string
	var cur *rdEntry
	var cols []string
	parse := func(out []byte, interp bool) {
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			// Cheap tests first: most lines are rows or instructions.
			switch {
			case strings.HasPrefix(line, "Contents of"):
				if m := rdSection.FindStringSubmatch(line); m != nil {
					sec, cur = m[1], nil
				}
				continue
			case strings.Contains(line, " CIE"):
				if m := rdCIE.FindStringSubmatch(line); m != nil {
					cur = entry(entries, sec, m[1])
					cur.aug, cols = m[2], nil
					continue
				}
			case strings.Contains(line, " FDE "):
				if m := rdFDE.FindStringSubmatch(line); m != nil {
					cur = entry(entries, sec, m[1])
					cur.fde, cols = true, nil
					cur.cie = parseHex(t, m[2])
					cur.begin, cur.end = parseHex(t, m[3]), parseHex(t, m[4])
					continue
				}
			}
			if cur == nil {
				continue
			}
			if !interp {
				if !strings.Contains(line, "expression") {
					continue
				}
				if m := rdCFAExpr.FindStringSubmatch(line); m != nil && !slices.Contains(cur.cfaExprs, m[1]) {
					cur.cfaExprs = append(cur.cfaExprs, m[1])
				}
				if m := rdRegExpr.FindStringSubmatch(line); m != nil && !slices.Contains(cur.regExprs[m[1]], m[2]) {
					if cur.regExprs == nil {
						cur.regExprs = map[string][]string{}
					}
					cur.regExprs[m[1]] = append(cur.regExprs[m[1]], m[2])
				}
				continue
			}
			if strings.HasPrefix(line, "   LOC") {
				if m := rdHeader.FindStringSubmatch(line); m != nil {
					cols = strings.Fields(m[1])
				}
				continue
			}
			fields := strings.Fields(line)
			if len(fields) < 2 || cols == nil || len(fields[0]) < 8 || fields[1] == "ZERO" {
				continue
			}
			loc, err := strconv.ParseUint(fields[0], 16, 64)
			if err != nil {
				continue
			}
			// A register column reads "r1 (rdx)": one value.
			var vals []string
			for _, v := range fields[2:] {
				if strings.HasPrefix(v, "(") && len(vals) > 0 {
					vals[len(vals)-1] += " " + v
					continue
				}
				vals = append(vals, v)
			}
			if len(vals) != len(cols) {
				t.Fatalf("readelf row %q has %d columns, header %d", line, len(vals), len(cols))
			}
			row := rdRow{loc: loc, cfa: fields[1], regs: make(map[string]string, len(cols))}
			for i, c := range cols {
				row.regs[c] = vals[i]
			}
			cur.rows = append(cur.rows, row)
		}
	}
	parse(run("--debug-dump=frames-interp"), true)
	parse(run("--debug-dump=frames"), false)
	return entries
}

func entry(m map[string]*rdEntry, sec, off string) *rdEntry {
	e := &rdEntry{sec: sec}
	e.off, _ = strconv.ParseUint(off, 16, 64)
	if old, ok := m[e.key()]; ok {
		return old
	}
	m[e.key()] = e
	return e
}

func parseHex(t *testing.T, s string) uint64 {
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		t.Fatalf("readelf printed %q, not a hex number", s)
	}
	return v
}

var (
	rdRegOff = regexp.MustCompile(`^(\w+)\+(-?\d+)$`)
	rdAtCFA  = regexp.MustCompile(`^c([+-]\d+)$`)
	rdBreg   = regexp.MustCompile(`^DW_OP_breg([67]) \(r[sb]p\): (-?\d+)$`)
	rdDeref  = regexp.MustCompile(`^DW_OP_breg([67]) \(r[sb]p\): (-?\d+); DW_OP_deref$`)
	rdPLT    = regexp.MustCompile(`^DW_OP_breg7 \(rsp\): (-?\d+); DW_OP_breg16 \(rip\): 0; DW_OP_lit15; DW_OP_and; DW_OP_lit(11|9); DW_OP_ge; DW_OP_lit3; DW_OP_shl; DW_OP_plus$`)
)

// expectation is what Lookup must say for a readelf row.
type expectation struct {
	rule x86_64.Rule
	ok   bool
	// why names what readelf says that no Rule can (when !ok), or why the
	// row cannot be checked (skip).
	why     string
	skip    bool
	fpLoose bool // readelf's "u" for rbp: not yet saved (same) or undefined
}

// expect derives the expectation for row of FDE f (with CIE c).
func expect(f, c *rdEntry, row rdRow) expectation {
	var e expectation
	no := func(why string) expectation { return expectation{why: why} }
	exprOf := func(list []string) (string, bool) {
		if len(list) == 1 {
			return list[0], true
		}
		return "", false
	}
	atoi := func(s string) int32 { n, _ := strconv.Atoi(s); return int32(n) }
	e.rule.Signal = strings.Contains(c.aug, "S")
	switch m := rdRegOff.FindStringSubmatch(row.cfa); {
	case m != nil && m[1] == "rsp":
		e.rule.CFA, e.rule.CFAOffset = x86_64.CFASP, atoi(m[2])
	case m != nil && m[1] == "rbp":
		e.rule.CFA, e.rule.CFAOffset = x86_64.CFABP, atoi(m[2])
	case m != nil:
		return no("cfa in " + m[1])
	case row.cfa == "exp":
		x, ok := exprOf(append(slices.Clone(c.cfaExprs), f.cfaExprs...))
		if !ok {
			return expectation{skip: true, why: "several CFA expressions"}
		}
		if m := rdPLT.FindStringSubmatch(x); m != nil {
			e.rule.CFA, e.rule.CFAOffset = map[string]x86_64.CFAKind{"11": x86_64.CFAPLT, "9": x86_64.CFAPLTIBT}[m[2]], atoi(m[1])
		} else if m := rdDeref.FindStringSubmatch(x); m != nil {
			e.rule.CFA, e.rule.CFAOffset = map[string]x86_64.CFAKind{"7": x86_64.CFADerefSP, "6": x86_64.CFADerefBP}[m[1]], atoi(m[2])
		} else if m := rdBreg.FindStringSubmatch(x); m != nil {
			e.rule.CFA, e.rule.CFAOffset = map[string]x86_64.CFAKind{"7": x86_64.CFASP, "6": x86_64.CFABP}[m[1]], atoi(m[2])
		} else {
			return no("cfa expression " + x)
		}
	default:
		return no("cfa " + row.cfa)
	}
	// reg reads readelf's column for a register (name "ra" or "rbp").
	reg := func(name, col string) (x86_64.RegKind, int32, string) {
		v, mentioned := row.regs[col]
		switch {
		case !mentioned && name == "rip":
			return 0, 0, "ra not set"
		case !mentioned:
			return x86_64.RegSame, 0, ""
		case v == "u":
			return x86_64.RegUndefined, 0, ""
		case v == "s" && name != "rip":
			return x86_64.RegSame, 0, ""
		case v == "exp":
			x, ok := exprOf(append(slices.Clone(c.regExprs[name]), f.regExprs[name]...))
			if !ok {
				return 0, 0, "several expressions"
			}
			if m := rdBreg.FindStringSubmatch(x); m != nil {
				return map[string]x86_64.RegKind{"7": x86_64.RegAtSP, "6": x86_64.RegAtBP}[m[1]], atoi(m[2]), ""
			}
			return 0, 0, name + " expression " + x
		}
		if m := rdAtCFA.FindStringSubmatch(v); m != nil {
			return x86_64.RegAtCFA, atoi(m[1]), ""
		}
		return 0, 0, name + " " + v
	}
	var why string
	if e.rule.RA, e.rule.RAOffset, why = reg("rip", "ra"); why != "" {
		return no(why)
	}
	if e.rule.FP, e.rule.FPOffset, why = reg("rbp", "rbp"); why != "" {
		return no(why)
	}
	e.fpLoose = row.regs["rbp"] == "u"
	// rsp: unset, or saying what the CFA says.
	switch v := row.regs["rsp"]; v {
	case "", "u", "s", "v+0":
	case "exp":
		x, _ := exprOf(append(slices.Clone(c.regExprs["rsp"]), f.regExprs["rsp"]...))
		m := rdBreg.FindStringSubmatch(x)
		want := map[string]x86_64.CFAKind{"7": x86_64.CFADerefSP, "6": x86_64.CFADerefBP}
		if m == nil || e.rule.CFA != want[m[1]] || e.rule.CFAOffset != atoi(m[2]) {
			return no("rsp expression " + x)
		}
	default:
		return no("rsp " + v)
	}
	e.ok = true
	return e
}

// oracleCounts are what a comparison found.
type oracleCounts struct {
	rows, checked, noRule, unchecked, gaps int
	why                                    map[string]int // rows with no rule, by readelf's rule
}

// compareReadelf checks tab, built from path, against readelf's rows.
func compareReadelf(t *testing.T, path string, tab *Table) oracleCounts {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var code []span
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 {
			code = append(code, span{p.Vaddr, p.Vaddr + p.Memsz})
		}
	}
	entries := readelf(t, path)
	var fdes []*rdEntry
	for _, e := range entries {
		inCode := len(code) == 0
		for _, c := range code {
			inCode = inCode || e.begin >= c.start && e.end <= c.end
		}
		if e.fde && e.end > e.begin && inCode {
			fdes = append(fdes, e)
		}
	}
	prio := func(sec string) int { return map[string]int{".eh_frame": 0, ".debug_frame": 1}[sec] }
	slices.SortFunc(fdes, func(a, b *rdEntry) int {
		return cmp.Or(cmp.Compare(a.begin, b.begin), cmp.Compare(prio(a.sec), prio(b.sec)), cmp.Compare(a.off, b.off))
	})
	n := oracleCounts{why: map[string]int{}}
	errs := 0
	fail := func(format string, args ...any) {
		if errs++; errs <= 20 {
			t.Errorf(format, args...)
		}
	}
	var end uint64
	starts := map[uint64]bool{}
	for _, f := range fdes {
		starts[f.begin] = true
	}
	for _, f := range fdes {
		if f.begin < end {
			continue // overlaps: the FDE before it wins
		}
		end = f.end
		c := entries[(&rdEntry{sec: f.sec, off: f.cie}).key()]
		if c == nil {
			t.Fatalf("readelf: %s FDE %#x names CIE %#x, which it did not print", f.sec, f.off, f.cie)
		}
		rows := f.rows
		if len(rows) == 0 {
			// readelf prints no rows for an FDE of only nops: the
			// CIE's last row holds.
			rows = []rdRow{{loc: f.begin, cfa: "undefined", regs: map[string]string{}}}
			if len(c.rows) > 0 {
				rows[0] = c.rows[len(c.rows)-1]
				rows[0].loc = f.begin
			}
		}
		for i, row := range rows {
			lo, hi := max(row.loc, f.begin), f.end
			if i+1 < len(rows) {
				hi = min(rows[i+1].loc, f.end)
			}
			if lo >= hi {
				continue
			}
			n.rows++
			e := expect(f, c, row)
			if e.skip {
				n.unchecked++
				continue
			}
			if !e.ok {
				n.noRule++
				n.why[e.why]++
			} else {
				n.checked++
			}
			for _, pc := range []uint64{lo, hi - 1} {
				got, ok := tab.Lookup(pc)
				if e.fpLoose && ok && (got.FP == x86_64.RegSame || got.FP == x86_64.RegUndefined) {
					got.FP = e.rule.FP
				}
				switch {
				case ok != e.ok:
					fail("%s: Lookup(%#x) = %v, %v; readelf (%s FDE %#x): cfa %s %v, want ok %v (%s)", filepath.Base(path), pc, got, ok, f.sec, f.off, row.cfa, row.regs, e.ok, e.why)
				case ok && got != e.rule:
					fail("%s: Lookup(%#x) = %v; readelf (%s FDE %#x): cfa %s %v, want %v", filepath.Base(path), pc, got, f.sec, f.off, row.cfa, row.regs, e.rule)
				}
			}
		}
		if !starts[f.end] {
			n.gaps++
			if r, ok := tab.Lookup(f.end); ok {
				fail("%s: Lookup(%#x), just past FDE %#x and in no FDE, = %v, want no rule", filepath.Base(path), f.end, f.off, r)
			}
		}
	}
	if len(fdes) > 0 {
		if r, ok := tab.Lookup(fdes[0].begin - 1); ok {
			fail("%s: Lookup(%#x), below every FDE, = %v, want no rule", filepath.Base(path), fdes[0].begin-1, r)
		}
	}
	if errs > 20 {
		t.Errorf("%s: %d more mismatches", filepath.Base(path), errs-20)
	}
	reasons := slices.Sorted(maps.Keys(n.why))
	var b strings.Builder
	for _, r := range reasons {
		fmt.Fprintf(&b, "\n\t%5d  %s", n.why[r], r)
	}
	t.Logf("%s: %d FDEs, %d readelf rows: %d same rule, %d no rule (%.2f%%), %d unchecked (ambiguous exp); %d gaps after FDEs checked; no rule for:%s",
		filepath.Base(path), len(fdes), n.rows, n.checked, n.noRule, 100*float64(n.noRule)/float64(max(n.rows, 1)), n.unchecked, n.gaps, b.String())
	return n
}

func fromFile(t testing.TB, path string) *Table {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tab, err := FromELF(f)
	if err != nil {
		t.Fatalf("FromELF(%s): %v", path, err)
	}
	if st := tab.Stats(); st.Skipped+st.Cut > 0 {
		t.Logf("%s: %+v", path, st)
	}
	return tab
}

// TestReadelfLibc compares glibc's table with readelf's, and requires
// almost every row to have a rule.
func TestReadelfLibc(t *testing.T) {
	path := libcPath(t)
	n := compareReadelf(t, path, fromFile(t, path))
	if n.rows < 10000 || n.checked == 0 {
		t.Errorf("only %d rows compared (%d with a rule)", n.rows, n.checked)
	}
	if frac := float64(n.noRule+n.unchecked) / float64(n.rows); frac >= 0.01 {
		t.Errorf("%d of %d rows have no rule or were not checked: %.2f%%, want < 1%%", n.noRule+n.unchecked, n.rows, 100*frac)
	}
}

// TestReadelfPrograms compares the tables of test programs built with the
// flags gcc users build with, and of /usr/bin/ls.
func TestReadelfPrograms(t *testing.T) {
	for _, p := range testPrograms(t) {
		t.Run(p.name, func(t *testing.T) {
			n := compareReadelf(t, p.path, fromFile(t, p.path))
			if n.checked == 0 {
				t.Errorf("no row compared")
			}
			for why, k := range n.why {
				if !slices.Contains(p.noRule, why) {
					t.Errorf("%d rows with no rule for %q, which this build should not have", k, why)
				}
			}
		})
	}
	t.Run("ls", func(t *testing.T) {
		const ls = "/usr/bin/ls"
		if _, err := elf.Open(ls); err != nil {
			testutil.Need(t, "ls", err.Error())
		}
		n := compareReadelf(t, ls, fromFile(t, ls))
		if n.checked == 0 {
			t.Errorf("no row compared")
		}
	})
}

// TestReadelf compares the files -cfi.readelf names, if any.
func TestReadelf(t *testing.T) {
	if *readelfFiles == "" {
		t.Skip("no -cfi.readelf files")
	}
	paths, err := filepath.Glob(*readelfFiles)
	if err != nil {
		t.Fatal(err)
	}
	var total oracleCounts
	for _, p := range paths {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		tab, err := FromELF(f)
		f.Close()
		if err != nil {
			t.Logf("%s: %v", p, err)
			continue
		}
		n := compareReadelf(t, p, tab)
		total.rows += n.rows
		total.checked += n.checked
		total.noRule += n.noRule
		total.unchecked += n.unchecked
	}
	t.Logf("%d files: %d rows, %d same rule, %d no rule, %d unchecked", len(paths), total.rows, total.checked, total.noRule, total.unchecked)
}
