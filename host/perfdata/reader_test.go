package perfdata

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/unwindd/unwindd/arch/x86_64"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var testFiles = []string{"testdata/dwarf.perf.data", "testdata/syscalls-pipe.perf.data"}

func readTestFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// describe prints everything the reader decodes from rec, for golden files.
func describe(w io.Writer, rec *Record) {
	l := ourLine(rec, false)
	fmt.Fprintf(w, "%s %s [%s] %s%s", l.time, l.offset, l.size, l.name, l.rest)
	id := &rec.Ident
	if id.Fields&(SampleCPU|SampleID|SampleIdentifier) != 0 {
		fmt.Fprintf(w, " cpu=%d id=%d", id.CPU, id.ID)
	}
	if rec.Type == RecordSample {
		s := &rec.Sample
		fmt.Fprintf(w, " event=%s callchain=%d regs=%d/%d stack=%d/%d raw=%d", rec.Attr.Name, len(s.Callchain), s.RegsABI, len(s.Regs), len(s.Stack), s.StackSize, len(s.Raw))
		if f := rec.Attr.Format; f != nil {
			for _, fl := range f.Fields {
				if fl.Common {
					continue
				}
				fmt.Fprintf(w, " %s=", fl.Name)
				n := max(fl.ArrayLen, 1)
				for i := range n {
					v, err := fl.Uint(s.Raw, i)
					if err != nil {
						fmt.Fprintf(w, "(%v)", err)
						break
					}
					if i > 0 {
						w.Write([]byte(","))
					}
					fmt.Fprintf(w, "%#x", v)
				}
			}
		}
	}
	fmt.Fprintln(w)
}

func TestGolden(t *testing.T) {
	for _, name := range testFiles {
		t.Run(filepath.Base(name), func(t *testing.T) {
			f, err := Open(name)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var b bytes.Buffer
			fmt.Fprintf(&b, "pipe=%v hostname=%q osrelease=%q arch=%q version=%q nrcpus=%d/%d cmdline=%q\n",
				f.Pipe, f.Features.Hostname, f.Features.OSRelease, f.Features.Arch, f.Features.Version,
				f.Features.NrCPUsOnline, f.Features.NrCPUsAvail, f.Features.Cmdline)
			for _, a := range f.Attrs {
				fmt.Fprintf(&b, "attr %q type=%d config=%d sample_type=%v read_format=%v sample_id_all=%v regs=%#x stack=%d ids=%v format=%v\n",
					a.Name, a.Type, a.Config, a.SampleType, a.ReadFormat, a.SampleIDAll(), a.SampleRegsUser, a.SampleStackUser, a.IDs, a.Format != nil)
			}
			for _, id := range f.Features.BuildIDs {
				fmt.Fprintf(&b, "build-id %d %x %s\n", id.PID, id.ID, id.Filename)
			}
			st := eachRecord(t, f, func(rec *Record) { describe(&b, rec) })
			fmt.Fprintf(&b, "stats %s\n", statsBrief(st))
			golden := strings.TrimSuffix(name, ".perf.data") + ".golden"
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				got := strings.Split(b.String(), "\n")
				wl := strings.Split(string(want), "\n")
				for i := range min(len(got), len(wl)) {
					if got[i] != wl[i] {
						t.Fatalf("differs from %s at line %d:\n got %s\nwant %s", golden, i+1, got[i], wl[i])
					}
				}
				t.Fatalf("differs from %s: %d lines, want %d", golden, len(got), len(wl))
			}
		})
	}
}

// TestTestdataAgainstPerf checks the committed files against perf report -D.
func TestTestdataAgainstPerf(t *testing.T) {
	for _, name := range testFiles {
		t.Run(filepath.Base(name), func(t *testing.T) {
			compareDump(t, name, strings.Contains(name, "pipe"))
		})
	}
}

// TestRegsAndStack checks the user registers and stacks of the dwarf file
// with arch/x86_64: user-mode samples have 64-bit registers whose ip is the
// sample's, and a stack copy no larger than asked.
func TestRegsAndStack(t *testing.T) {
	f, err := Open(testFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	user := 0
	eachRecord(t, f, func(rec *Record) {
		if rec.Type != RecordSample {
			return
		}
		s := &rec.Sample
		p, err := x86_64.DecodePerfRegs(x86_64.RegsABI(s.RegsABI), x86_64.RegMask(rec.Attr.SampleRegsUser), s.Regs)
		if err != nil {
			t.Fatalf("sample at %#x: %v", rec.Offset, err)
		}
		if uint64(len(s.Stack)) > s.StackSize || s.StackSize != uint64(rec.Attr.SampleStackUser) {
			t.Errorf("sample at %#x: stack %d of %d, attr asks %d", rec.Offset, len(s.Stack), s.StackSize, rec.Attr.SampleStackUser)
		}
		if rec.Misc&MiscCPUModeMask != MiscUser {
			return
		}
		user++
		regs, err := p.Regs()
		if err != nil {
			t.Fatalf("sample at %#x: %v", rec.Offset, err)
		}
		if regs.IP != s.IP || len(s.Stack) == 0 {
			t.Errorf("sample at %#x: regs ip %#x, sample ip %#x, stack %d bytes", rec.Offset, regs.IP, s.IP, len(s.Stack))
		}
		// Stack aliases the file's memory: no copy was made.
		if !aliases(s.Stack, rec.Data) {
			t.Errorf("sample at %#x: Stack does not alias the record", rec.Offset)
		}
	})
	if user == 0 {
		t.Fatal("no user-mode samples")
	}
}

func aliases(sub, whole []byte) bool {
	if len(sub) == 0 {
		return true
	}
	// Slices of one array end their capacity at the same element.
	return &whole[:cap(whole)][cap(whole)-1] == &sub[:cap(sub)][cap(sub)-1]
}

// readOffsets reads f to its end and returns the offsets of the records
// delivered and the error that ended them (nil for io.EOF).
func readOffsets(t testing.TB, f *File, size int) ([]int64, error) {
	t.Helper()
	rr := f.Records()
	var rec Record
	var offs []int64
	for {
		err := rr.ReadInto(&rec)
		if err == io.EOF {
			return offs, nil
		}
		if err != nil {
			checkFormatError(t, err, size)
			// sticky
			if err2 := rr.ReadInto(&rec); err2 != err {
				t.Fatalf("error not sticky: %v, then %v", err, err2)
			}
			return offs, err
		}
		if rec.Type == RecordSample {
			decodeAll(&rec)
		}
		offs = append(offs, rec.Offset)
	}
}

func checkFormatError(t testing.TB, err error, size int) {
	t.Helper()
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *FormatError", err, err)
	}
	if fe.Offset < 0 || fe.Offset > int64(size) {
		t.Fatalf("error %v: offset %d outside [0, %d]", err, fe.Offset, size)
	}
}

// decodeAll touches every decoded part of a sample, as a caller would.
func decodeAll(rec *Record) {
	s := &rec.Sample
	if rec.Attr != nil {
		x86_64.DecodePerfRegs(x86_64.RegsABI(s.RegsABI), x86_64.RegMask(rec.Attr.SampleRegsUser), s.Regs)
		if f := rec.Attr.Format; f != nil {
			for i := range f.Fields {
				fl := &f.Fields[i]
				fl.Bytes(s.Raw)
				fl.Text(s.Raw)
				for j := range max(fl.ArrayLen, 1) {
					fl.Uint(s.Raw, j)
				}
			}
		}
	}
	var sum byte
	for _, b := range s.Stack {
		sum += b
	}
	_ = sum
}

// recordEnds returns the end offset of each record of the intact file, by
// its offset, for the records Records delivers.
func recordEnds(t testing.TB, data []byte) map[int64]int64 {
	f, err := NewFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	offs, err := readOffsets(t, f, len(data))
	if err != nil {
		t.Fatal(err)
	}
	ends := make(map[int64]int64)
	for _, o := range offs {
		h, err := f.frame(o)
		if err != nil {
			t.Fatal(err)
		}
		ends[o] = o + int64(h.size) + h.extra
	}
	return ends
}

// TestTruncated cuts the test files at many offsets: every record that ends
// before the cut comes out, then a *FormatError, never a panic.
func TestTruncated(t *testing.T) {
	for _, name := range testFiles {
		t.Run(filepath.Base(name), func(t *testing.T) {
			data := readTestFile(t, name)
			ends := recordEnds(t, data)
			full, err := NewFile(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			cuts := []int{0, 1, 7, 8, 15, 16, 17, 103, 104}
			for o, e := range ends {
				cuts = append(cuts, int(o), int(o)+1, int(o)+8, int(e)-1)
			}
			step := 37
			if testing.Short() {
				step = 997
			}
			for c := 0; c < len(data); c += step {
				cuts = append(cuts, c)
			}
			opened, errs := 0, 0
			for _, cut := range cuts {
				if cut < 0 || cut > len(data) {
					continue
				}
				d := data[:cut]
				f, err := NewFile(bytes.NewReader(d), int64(len(d)))
				if err != nil {
					checkFormatError(t, err, len(d))
					if !full.Pipe && int64(cut) >= int64(full.Header.Data.Offset) {
						t.Fatalf("cut at %d (after the header): Open: %v", cut, err)
					}
					continue
				}
				opened++
				offs, err := readOffsets(t, f, len(d))
				dataEnd := int64(len(d))
				if !f.Pipe {
					dataEnd = min(dataEnd, f.end)
				}
				var want []int64
				for o, e := range ends {
					if e <= dataEnd {
						want = append(want, o)
					}
				}
				slices.Sort(want)
				got := slices.Clone(offs)
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Fatalf("cut at %d: delivered %d records, want the %d that end before it", cut, len(got), len(want))
				}
				if err != nil {
					errs++
					if fe := err.(*FormatError); fe.Offset > dataEnd {
						t.Fatalf("cut at %d: error offset %#x beyond", cut, fe.Offset)
					}
				} else if len(want) != len(ends) && !f.Pipe {
					t.Fatalf("cut at %d: no error after %d of %d records", cut, len(want), len(ends))
				}
			}
			t.Logf("%d cuts, %d opened, %d record errors", len(cuts), opened, errs)
		})
	}
}

// TestCorrupt flips bytes of the test files: no panic, errors are
// *FormatErrors, and records that end before the first damaged byte still
// come out.
func TestCorrupt(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 200
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, name := range testFiles {
		t.Run(filepath.Base(name), func(t *testing.T) {
			data := readTestFile(t, name)
			ends := recordEnds(t, data)
			full, _ := NewFile(bytes.NewReader(data), int64(len(data)))
			for range n {
				d := slices.Clone(data)
				first := len(d)
				for range 1 + rng.IntN(4) {
					p := rng.IntN(len(d))
					d[p] ^= byte(1 + rng.IntN(255))
					first = min(first, p)
				}
				f, err := NewFile(bytes.NewReader(d), int64(len(d)))
				if err != nil {
					checkFormatError(t, err, len(d))
					continue
				}
				offs, _ := readOffsets(t, f, len(d))
				if full.Pipe || int64(first) < full.start {
					continue // the header or the events changed: anything goes
				}
				got := make(map[int64]bool)
				for _, o := range offs {
					got[o] = true
				}
				for o, e := range ends {
					if e <= int64(first) && !got[o] {
						t.Fatalf("damage at %#x: record at %#x (ends %#x) not delivered", first, o, e)
					}
				}
			}
		})
	}
}

// featureSection returns the file offset of feature feat's section.
func featureSection(t testing.TB, data []byte, feat Feature) Section {
	f, err := NewFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	off := f.Header.Data.Offset + f.Header.Data.Size
	for i := Feature(0); i < feat; i++ {
		if f.Header.HasFeature(i) {
			off += sectionSize
		}
	}
	if !f.Header.HasFeature(feat) {
		t.Fatalf("no %v", feat)
	}
	return Section{le.Uint64(data[off:]), le.Uint64(data[off+8:])}
}

func TestRefused(t *testing.T) {
	data := readTestFile(t, testFiles[0])
	bigEndian := slices.Clone(data)
	slices.Reverse(bigEndian[:8])
	arm := slices.Clone(data)
	s := featureSection(t, arm, FeatArch)
	copy(arm[s.Offset+4:], "aarch64\x00")
	v1 := slices.Clone(data)
	copy(v1, "PERFFILE")
	for _, tt := range []struct {
		name string
		data []byte
		is   error
		msg  string
	}{
		{"big-endian", bigEndian, ErrBigEndian, `big-endian magic "2ELIFREP" at offset 0x0`},
		{"aarch64", arm, ErrArch, `HEADER_ARCH "aarch64"`},
		{"v1", v1, ErrNotPerfData, "version 1 magic"},
		{"elf", []byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00"), ErrNotPerfData, "bad magic"},
		{"empty", nil, ErrTruncated, "file header truncated at offset 0x0"},
		{"short header", data[:50], ErrTruncated, "file header truncated at offset 0x32"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewFile(bytes.NewReader(tt.data), int64(len(tt.data)))
			if !errors.Is(err, tt.is) || !strings.Contains(fmt.Sprint(err), tt.msg) {
				t.Fatalf("error %v, want %v containing %q", err, tt.is, tt.msg)
			}
			checkFormatError(t, err, len(tt.data))
		})
	}
}

func TestFormatErrorMessage(t *testing.T) {
	data := readTestFile(t, testFiles[0])
	cut := data[:len(data)/2]
	f, err := NewFile(bytes.NewReader(cut), int64(len(cut)))
	if err != nil {
		t.Fatal(err)
	}
	if f.FeatureErr == nil {
		t.Error("no FeatureErr for a file without its feature sections")
	}
	_, err = readOffsets(t, f, len(cut))
	if !errors.Is(err, ErrTruncated) || !strings.HasPrefix(err.Error(), "perfdata: SAMPLE record of size 0x") {
		t.Fatalf("error %q", err)
	}
}

func TestReadIntoAllocs(t *testing.T) {
	f, err := Open(testFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rr := f.Records()
	var rec Record
	n := 0
	pass := func() {
		rr.Reset()
		for {
			if err := rr.ReadInto(&rec); err != nil {
				if err != io.EOF {
					t.Fatal(err)
				}
				return
			}
			n++
		}
	}
	pass()
	if a := testing.AllocsPerRun(20, pass); a != 0 {
		t.Errorf("%v allocs per pass of %d records, want 0", a, n/21)
	}
}

var benchFile = flag.String("perfdata", "", "perf.data file for BenchmarkReadInto (default testdata/dwarf.perf.data)")

func BenchmarkReadInto(b *testing.B) {
	name := testFiles[0]
	if *benchFile != "" {
		name = *benchFile
	}
	f, err := Open(name)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	size := f.end - f.start
	if f.end > int64(len(f.data)) {
		size = int64(len(f.data)) - f.start
	}
	// framing: walking the record headers only, the floor for any reader.
	b.Run("framing", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			for off := f.start; off < f.end; {
				h, err := f.frame(off)
				if err != nil {
					b.Fatal(err)
				}
				off += int64(h.size) + h.extra
				n++
			}
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("ReadInto", func(b *testing.B) {
		rr := f.Records()
		var rec Record
		b.SetBytes(size)
		b.ReportAllocs()
		n := 0
		for b.Loop() {
			rr.Reset()
			for {
				if err := rr.ReadInto(&rec); err != nil {
					if err != io.EOF {
						b.Fatal(err)
					}
					break
				}
				n++
			}
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
	})
}

func FuzzPerfData(f *testing.F) {
	for _, name := range testFiles {
		f.Add(readTestFile(f, name))
	}
	f.Add([]byte("PERFILE2\x10\x00\x00\x00\x00\x00\x00\x00"))
	f.Add(allTypes().b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		pf, err := NewFile(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			checkFormatError(t, err, len(data))
			return
		}
		if pf.FeatureErr != nil {
			checkFormatError(t, pf.FeatureErr, len(data))
		}
		readOffsets(t, pf, len(data))
		runtime.ReadMemStats(&ms)
		// Bounded by the input: the copy NewFile makes, decoded header
		// data, the time-ordering queue and interned names.
		if used := ms.TotalAlloc - before; used > 64*uint64(len(data))+1<<20 {
			t.Fatalf("%d bytes allocated for %d bytes of input", used, len(data))
		}
	})
}

func TestClosed(t *testing.T) {
	f, err := Open(testFiles[0])
	if err != nil {
		t.Fatal(err)
	}
	rr := f.Records()
	var rec Record
	if err := rr.ReadInto(&rec); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := rr.ReadInto(&rec); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("ReadInto after Close: %v", err)
	}
}
