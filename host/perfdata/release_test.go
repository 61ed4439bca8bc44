package perfdata

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// rssFile is the process's resident file-backed memory, from
// /proc/self/status (RssFile, in KiB), in bytes.
func rssFile(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("RssFile %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Skip("no RssFile in /proc/self/status")
	return 0
}

// TestReleaseBehind reads a 96 MiB mapped file of samples with 8 KiB RAW
// payloads, a little out of time order between rounds, releasing pages
// every 2 MiB. The mapping's resident pages must stay near the ordering
// window instead of growing to the file's size, and every record must
// decode as it does from a buffer that is never released, its payload
// intact after the pages under it were released.
func TestReleaseBehind(t *testing.T) {
	const (
		payload = 8 << 10
		total   = 96 << 20
		perRnd  = 64 // records between FINISHED_ROUNDs: 0.5 MiB
		step    = 2 << 20
	)
	s := newStream()
	s.attr(EventAttr{Type: TypeSoftware, SampleType: SampleIP | SampleTime | SampleRaw, Flags: AttrSampleIDAll}, 1)
	raw := make([]byte, payload-4)
	n := 0
	for s.b.Len() < total {
		for i := range raw {
			raw[i] = byte(n + i/64)
		}
		// Pairs swapped in time: the queue has work to do.
		tm := uint64(1000 + 10*n)
		if n%2 == 0 {
			tm += 15
		}
		s.rec(RecordSample, MiscUser, uint64(n), tm, uint32(len(raw)), raw)
		n++
		if n%perRnd == 0 {
			s.rec(RecordFinishedRound, 0)
		}
	}
	path := filepath.Join(t.TempDir(), "big.data")
	if err := os.WriteFile(path, s.b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	want, _, err := readRecords(t, s.file(t)) // from a buffer
	if err != nil {
		t.Fatal(err)
	}
	s.b = bytes.Buffer{}

	base := rssFile(t)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.step = step
	rr, rec := f.Records(), new(Record)
	var got []Record
	var peak int64
	for i := 0; ; i++ {
		err := rr.ReadInto(rec)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, *rec)
		got[len(got)-1].Sample.Callchain = nil // reused by ReadInto
		if i%256 == 0 {
			peak = max(peak, rssFile(t)-base)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	if rr.released < total/2 {
		t.Errorf("released up to %d of %d bytes", rr.released, total)
	}
	// Bound: two steps, the ordering window (two rounds), and slack for
	// the test binary's own pages.
	if limit := int64(2*step + 4<<20 + 4<<20); peak > limit {
		t.Errorf("RssFile grew by %d MiB reading a %d MiB file, want at most %d MiB", peak>>20, total>>20, limit>>20)
	}
	t.Logf("%d records, RssFile peak growth %d KiB, released %d MiB", len(got), peak>>10, rr.released>>20)
	// Every record as from the buffer, its bytes read again (faulted back
	// in from the file where released).
	for i := range want {
		w, g := &want[i], &got[i]
		if w.Type != g.Type || w.Offset != g.Offset || w.Ident != g.Ident || w.Sample.IP != g.Sample.IP ||
			!bytes.Equal(w.Data, g.Data) || !bytes.Equal(w.Sample.Raw, g.Sample.Raw) {
			t.Fatalf("record %d: got type %v offset %d ip %d time %d, want type %v offset %d ip %d time %d, or different bytes",
				i, g.Type, g.Offset, g.Sample.IP, g.Ident.Time, w.Type, w.Offset, w.Sample.IP, w.Ident.Time)
		}
	}
}

// BenchmarkReadFile reads every record of the perf.data file named by
// $PERFDATA_BENCH_FILE (e.g. make bench-replay's large.data, kept with
// KEEP=1), reporting records/s and peak RssFile growth.
func BenchmarkReadFile(b *testing.B) {
	path := os.Getenv("PERFDATA_BENCH_FILE")
	if path == "" {
		b.Skip("PERFDATA_BENCH_FILE is not set")
	}
	var n int
	for range b.N {
		f, err := Open(path)
		if err != nil {
			b.Fatal(err)
		}
		rr, rec := f.Records(), new(Record)
		for {
			err := rr.ReadInto(rec)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		f.Close()
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
