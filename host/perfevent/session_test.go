package perfevent

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/entry"
	"github.com/unwindd/unwindd/host/perfdata"
	"github.com/unwindd/unwindd/internal/testutil"
)

// progSrc is the target: with "wait" it says it is ready, blocks reading
// stdin until released, then execs itself with "run" (so the kernel writes
// the exec's COMM and the new image's MMAP2 records). With "run" it forks a
// child that makes 7 writes and spins a little, makes 100 writes itself and
// spins in spin (called from work, called from main) for about 150 ms, so
// that cpu-clock samples land in spin with frame pointers up to main. With
// "spin" it spins until killed; with "flood" it calls getppid until killed.
const progSrc = `
#include <fcntl.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile unsigned long sink;

__attribute__((noinline)) void spin(long n) { for (long i = 0; i < n; i++) sink += i * 7; }
__attribute__((noinline)) void work(int ms) { spin(ms * 800000L); sink++; /* no tail call */ }

int main(int argc, char **argv) {
	if (argc > 1 && strcmp(argv[1], "wait") == 0) {
		char c;
		if (write(1, "r", 1) != 1 || read(0, &c, 1) != 1) return 2;
		execl(argv[0], argv[0], "run", (char *)0);
		return 3;
	}
	if (argc > 1 && strcmp(argv[1], "spin") == 0) {
		if (write(1, "r", 1) != 1) return 2;
		for (;;) work(100);
	}
	if (argc > 1 && strcmp(argv[1], "flood") == 0) {
		if (write(1, "r", 1) != 1) return 2;
		for (;;) getppid();
	}
	int fd = open("/dev/null", O_WRONLY);
	pid_t pid = fork();
	if (pid == 0) {
		for (int i = 0; i < 7; i++) write(fd, "child\n", 6);
		work(30);
		_exit(0);
	}
	for (int i = 0; i < 100; i++) write(fd, "parent\n", 7);
	work(150);
	waitpid(pid, 0, 0);
	return 0;
}
`

var progOnce struct {
	sync.Once
	path string
	err  error
}

// buildProg builds progSrc once per test binary run, with frame pointers in
// every function: -O0, since GCC 12 leaves them out of leaf functions at -O1
// even with -mno-omit-leaf-frame-pointer.
func buildProg(t testing.TB) string {
	t.Helper()
	progOnce.Do(func() {
		dir, err := os.MkdirTemp("", "perfevent-prog")
		if err != nil {
			progOnce.err = err
			return
		}
		// Readable by anyone: TestPermission runs it as nobody.
		os.Chmod(dir, 0o755)
		progOnce.path = testutil.BuildC(t, dir, "prog", progSrc, "-O0", "-g", "-fno-omit-frame-pointer")
	})
	if progOnce.err != nil {
		t.Fatal(progOnce.err)
	}
	if progOnce.path == "" {
		t.Fatal("test program did not build")
	}
	return progOnce.path
}

// startProg starts exe with mode and waits for its ready byte. release
// writes to its stdin (the "wait" mode's go-ahead). The process is killed
// and reaped when the test ends.
func startProg(t testing.TB, exe, mode string) (cmd *exec.Cmd, release func()) {
	t.Helper()
	cmd = exec.Command(exe, mode)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	var b [1]byte
	if _, err := io.ReadFull(out, b[:]); err != nil {
		t.Fatalf("%s %s did not get ready: %v", exe, mode, err)
	}
	return cmd, func() {
		if _, err := in.Write([]byte("go")); err != nil {
			t.Errorf("release: %v", err)
		}
		in.Close()
	}
}

// openOrSkip opens a session, skipping t when the kernel does not allow or
// support perf_event_open here (an error Open found, not a guess).
func openOrSkip(t testing.TB, ctx context.Context, opts Options) *Session {
	t.Helper()
	s, err := Open(ctx, opts)
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, ErrNotSupported) || errors.Is(err, ErrNoTracefs) {
		testutil.Need(t, "perf", err.Error())
	}
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// liveRecord is a record read from a session, kept: its bytes copied, its
// event by index.
type liveRecord struct {
	rec  perfdata.Record // decoded; its slices alias data
	data []byte
	attr int
}

// readAll reads s until io.EOF (or a 20 s timeout, which fails t) and
// returns every record, copied.
func readAll(t *testing.T, s *Session) []liveRecord {
	t.Helper()
	deadline := time.AfterFunc(20*time.Second, func() { s.Close() })
	defer deadline.Stop()
	attrs := s.Attrs()
	var out []liveRecord
	var rec perfdata.Record
	for {
		err := s.ReadInto(&rec)
		if err == io.EOF {
			return out
		}
		if errors.Is(err, os.ErrClosed) {
			t.Fatal("no io.EOF 20 s after the target was released")
		}
		if err != nil {
			t.Fatal(err)
		}
		data := bytes.Clone(rec.Data)
		var again perfdata.Record
		// Decode the copy, so that the kept record does not alias the ring.
		d := perfdata.NewDecoder(attrs)
		if err := d.DecodeAt(data, rec.Offset, &again); err != nil {
			t.Fatal(err)
		}
		ai := -1
		for i := range attrs {
			if rec.Attr == &attrs[i] {
				ai = i
			}
		}
		out = append(out, liveRecord{rec: again, data: data, attr: ai})
	}
}

// TestSession records the test program from its release to its exit and
// checks what the records say against what it does.
func TestSession(t *testing.T) {
	exe := buildProg(t)
	cmd, release := startProg(t, exe, "wait")
	pid := cmd.Process.Pid
	s := openOrSkip(t, context.Background(), Options{
		PID: pid, Frequency: 999, RingPages: 1024,
		Tracepoints: []Tracepoint{{"raw_syscalls", "sys_enter", true}, {"raw_syscalls", "sys_exit", false}},
	})
	release()
	recs := readAll(t, s)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("test program: %v", err)
	}
	st := s.Stats()
	t.Logf("%d records, %d synthesized, %d bytes read, %d samples of %d bytes on average, %d wrapped, %d spilled, %d passes, %d waits, most queued %d",
		len(recs), st.Synthesized, st.Bytes, st.ByType[perfdata.RecordSample],
		st.BytesByType[perfdata.RecordSample]/max(1, st.ByType[perfdata.RecordSample]), st.Wrapped, st.Spilled, st.Passes, st.Waits, st.MaxQueued)
	if st.Lost != 0 {
		t.Fatalf("the kernel lost %d events (in %d LOST records): the counts below cannot be checked", st.Lost, st.LostRecords)
	}
	if st.Records != uint64(len(recs)) || st.Unordered != 0 || st.BadRecords != 0 || st.Corrupt != 0 {
		t.Errorf("stats: %+v", st)
	}
	attrs := s.Attrs()
	if len(attrs) != 4 || attrs[0].Name != "dummy" || attrs[1].Name != "cpu-clock" ||
		attrs[2].Name != "raw_syscalls:sys_enter" || attrs[3].Name != "raw_syscalls:sys_exit" ||
		attrs[2].Format == nil || attrs[2].Format.Field("id") == nil {
		t.Fatalf("attrs: %+v", attrs)
	}

	t.Run("order", func(t *testing.T) {
		var last uint64
		for i, r := range recs {
			tm, ok := r.rec.Time()
			if !ok {
				t.Fatalf("record %d (%v) has no time", i, r.rec.Type)
			}
			if tm < last {
				t.Errorf("record %d (%v) at %d after one at %d", i, r.rec.Type, tm, last)
			}
			last = tm
		}
		if s.Stats().Unordered != 0 {
			t.Errorf("%d records out of order", s.Stats().Unordered)
		}
	})

	// The records of the exec and after: the kernel's, not synthesized.
	execAt := -1
	for i, r := range recs {
		if r.rec.Type == perfdata.RecordComm && r.rec.Comm.Exec && r.rec.Comm.PID == uint32(pid) {
			execAt = i
			break
		}
	}
	t.Run("comm and mmap2", func(t *testing.T) {
		if execAt < 0 {
			t.Fatal("no exec COMM record")
		}
		if c := recs[execAt].rec.Comm.Comm; c != "prog" {
			t.Errorf("exec COMM %q, want prog", c)
		}
		if recs[0].rec.Type != perfdata.RecordComm || recs[0].rec.Comm.Comm != "prog" || recs[0].rec.Comm.Exec {
			t.Errorf("first record %+v, want the synthesized COMM", recs[0].rec)
		}
		var synthExe, kernExe, kernLibc bool
		for i, r := range recs {
			if r.rec.Type != perfdata.RecordMmap2 || r.rec.Mmap.PID != uint32(pid) {
				continue
			}
			m := &r.rec.Mmap
			if m.Prot&4 == 0 || m.Maj == 0 && m.Ino == 0 && m.Filename[0] == '/' {
				t.Errorf("MMAP2 %+v: not executable, or no device and inode", m)
			}
			switch {
			case m.Filename == exe && i < execAt:
				synthExe = true
			case m.Filename == exe:
				kernExe = true
			case strings.Contains(m.Filename, "/libc.so") && i > execAt:
				kernLibc = true
			}
		}
		if !synthExe || !kernExe || !kernLibc {
			t.Errorf("MMAP2 of the executable before the exec %v, after %v; of libc after %v", synthExe, kernExe, kernLibc)
		}
	})

	var child uint32
	t.Run("fork and exit", func(t *testing.T) {
		exits := map[uint32]bool{}
		for _, r := range recs {
			switch r.rec.Type {
			case perfdata.RecordFork:
				if r.rec.Task.PPID == uint32(pid) && r.rec.Task.PID != uint32(pid) {
					child = r.rec.Task.PID
				}
			case perfdata.RecordExit:
				exits[r.rec.Task.PID] = true
			}
		}
		if child == 0 || !exits[child] || !exits[uint32(pid)] {
			t.Errorf("fork of a child %d, exits %v", child, exits)
		}
	})

	t.Run("syscalls", func(t *testing.T) {
		writes := map[uint32]int{}
		enters, exits := 0, 0
		for _, r := range recs[max(execAt, 0):] {
			if r.rec.Type != perfdata.RecordSample || r.attr < 2 {
				continue
			}
			nr := syscallNr(t, &r.rec)
			if r.attr == 2 {
				enters++
				if nr == 1 {
					writes[r.rec.Ident.PID]++
				}
				if len(r.rec.Sample.Stack) == 0 || r.rec.Sample.StackSize != 8192 || len(r.rec.Sample.Regs) != x86_64.SampleRegsUserMask.Count() {
					t.Fatalf("sys_enter without user regs and stack: %d regs, stack %d/%d", len(r.rec.Sample.Regs), len(r.rec.Sample.Stack), r.rec.Sample.StackSize)
				}
			} else {
				exits++
				if r.rec.Sample.StackSize != 0 || r.rec.Sample.Regs != nil {
					t.Fatal("sys_exit with a user stack, which it did not ask for")
				}
			}
		}
		if writes[uint32(pid)] != 100 || writes[child] != 7 {
			t.Errorf("writes by pid: %v, want 100 by %d, 7 by %d", writes, pid, child)
		}
		t.Logf("%d sys_enter, %d sys_exit after the exec", enters, exits)
	})

	t.Run("strace", func(t *testing.T) {
		want := straceCounts(t, exe)
		got := map[string]int{}
		for _, r := range recs[max(execAt-1, 0):] {
			if r.rec.Type == perfdata.RecordSample && r.attr == 2 {
				got[entry.SyscallName(int64(syscallNr(t, &r.rec)))]++
			}
		}
		// strace -c counts a syscall when it returns: exit_group does not.
		delete(got, "exit_group")
		// The execve's own sys_enter and its COMM record come in either
		// order (they are stamped within a microsecond on one CPU, and a
		// loaded machine can reorder the two rings' views): compare it apart.
		execs := 0
		for _, r := range recs {
			if r.rec.Type == perfdata.RecordSample && r.attr == 2 && entry.SyscallName(int64(syscallNr(t, &r.rec))) == "execve" {
				execs++
			}
		}
		if execs < want["execve"] {
			t.Errorf("%d execve sys_enter, strace counts %d", execs, want["execve"])
		}
		delete(got, "execve")
		delete(want, "execve")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("sys_enter counts after the exec\n got %v\nwant %v (strace -f -c)", got, want)
		}
	})

	t.Run("unwind", func(t *testing.T) { checkUnwind(t, exe, pid, recs) })

	t.Run("perf.data round trip", func(t *testing.T) { roundTrip(t, attrs, recs) })
}

func syscallNr(t *testing.T, rec *perfdata.Record) int64 {
	t.Helper()
	nr, err := rec.Attr.Format.Field("id").Int(rec.Sample.Raw, 0)
	if err != nil {
		t.Fatal(err)
	}
	return nr
}

var straceLine = regexp.MustCompile(`^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$`)

// straceCounts runs exe run under strace -f -c and returns the calls of
// each syscall.
func straceCounts(t *testing.T, exe string) map[string]int {
	strace, err := exec.LookPath("strace")
	if err != nil {
		testutil.Need(t, "strace", "counts the test program's syscalls: "+err.Error())
	}
	out := t.TempDir() + "/strace.txt"
	if b, err := exec.Command(strace, "-f", "-c", "-o", out, exe, "run").CombinedOutput(); err != nil {
		if bytes.Contains(b, []byte("Operation not permitted")) {
			testutil.Need(t, "strace", "strace may not ptrace here: "+strings.TrimSpace(string(b)))
		}
		t.Fatalf("strace: %v\n%s", err, b)
	}
	text, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, line := range strings.Split(string(text), "\n") {
		if m := straceLine.FindStringSubmatch(line); m != nil && m[2] != "total" {
			counts[m[2]], _ = strconv.Atoi(m[1])
		}
	}
	if counts["write"] != 107 {
		t.Fatalf("strace counts %v: no 107 writes\n%s", counts, text)
	}
	return counts
}

// checkUnwind walks the frame pointers of the cpu-clock samples of the
// parent that hit spin, from their user registers and stack copies, and
// checks that the walks reach main through work.
func checkUnwind(t *testing.T, exe string, pid int, recs []liveRecord) {
	f, err := elf.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	// The executable's code mapping after the exec (the kernel's MMAP2).
	var code *perfdata.Mmap
	for i := range recs {
		m := &recs[i].rec.Mmap
		if recs[i].rec.Type == perfdata.RecordMmap2 && m.PID == uint32(pid) && m.Filename == exe && m.Prot&4 != 0 {
			code = m
		}
	}
	if code == nil {
		t.Fatal("no MMAP2 of the executable's code")
	}
	// symbol names the function of pc in the executable, "" if none.
	symbol := func(pc uint64) string {
		if pc < code.Addr || pc >= code.Addr+code.Len {
			return ""
		}
		off := pc - code.Addr + code.Pgoff
		for _, p := range f.Progs {
			if p.Type == elf.PT_LOAD && off >= p.Off && off < p.Off+p.Filesz {
				v := off - p.Off + p.Vaddr
				for _, s := range syms {
					if elf.ST_TYPE(s.Info) == elf.STT_FUNC && v >= s.Value && v < s.Value+s.Size {
						return s.Name
					}
				}
			}
		}
		return ""
	}
	u, err := x86_64.New(x86_64.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var tr x86_64.Trace
	inSpin, reached := 0, 0
	for _, r := range recs {
		if r.rec.Type != perfdata.RecordSample || r.attr != 1 || r.rec.Ident.PID != uint32(pid) {
			continue
		}
		smp := &r.rec.Sample
		regs, err := x86_64.RegsFromSample(x86_64.RegsABI(smp.RegsABI), x86_64.RegMask(r.rec.Attr.SampleRegsUser), smp.Regs)
		if err != nil || symbol(regs.IP) != "spin" {
			continue
		}
		inSpin++
		if smp.StackSize != 8192 || len(smp.Stack) == 0 {
			t.Fatalf("sample in spin with a stack copy of %d/%d bytes", len(smp.Stack), smp.StackSize)
		}
		u.Unwind(regs, &x86_64.Snapshot{Base: regs.SP, Data: smp.Stack}, &tr)
		var names []string
		for i, fr := range tr.Frames {
			pc := fr.PC
			if i > 0 {
				pc-- // a return address: the call is before it
			}
			names = append(names, symbol(pc))
		}
		if len(names) >= 3 && names[0] == "spin" && names[1] == "work" && names[2] == "main" {
			reached++
		} else if inSpin-reached <= 3 {
			t.Logf("walk %v, end %v", names, tr.End)
		}
	}
	t.Logf("%d samples in spin, %d walked to main", inSpin, reached)
	if inSpin < 50 || reached < inSpin*9/10 {
		t.Errorf("%d of %d samples in spin walk spin, work, main", reached, inSpin)
	}
}

// roundTrip writes the attrs and records as a pipe-mode perf.data stream
// and checks that perfdata's file reader decodes every record as the
// session did.
func roundTrip(t *testing.T, attrs []perfdata.Attr, recs []liveRecord) {
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString("PERFILE2")
	binary.Write(&b, le, uint64(16))
	for _, a := range attrs {
		attr := make([]byte, 128)
		le.PutUint32(attr[0:], a.Type)
		le.PutUint32(attr[4:], 128)
		le.PutUint64(attr[8:], a.Config)
		le.PutUint64(attr[16:], a.SamplePeriod)
		le.PutUint64(attr[24:], uint64(a.SampleType))
		le.PutUint64(attr[32:], uint64(a.ReadFormat))
		le.PutUint64(attr[40:], uint64(a.Flags))
		le.PutUint32(attr[48:], a.WakeupEvents)
		le.PutUint64(attr[80:], a.SampleRegsUser)
		le.PutUint32(attr[88:], a.SampleStackUser)
		le.PutUint32(attr[92:], uint32(a.ClockID))
		binary.Write(&b, le, uint32(perfdata.RecordHeaderAttr))
		binary.Write(&b, le, uint16(0))
		binary.Write(&b, le, uint16(8+len(attr)+8*len(a.IDs)))
		b.Write(attr)
		binary.Write(&b, le, a.IDs)
	}
	for _, r := range recs {
		b.Write(r.data)
	}
	f, err := perfdata.NewFile(bytes.NewReader(b.Bytes()), int64(b.Len()))
	if err != nil {
		t.Fatal(err)
	}
	rr := f.Records()
	var rec perfdata.Record
	bad := 0
	for i := range recs {
		if err := rr.ReadInto(&rec); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		ai := -1
		for j := range f.Attrs {
			if rec.Attr == &f.Attrs[j] {
				ai = j
			}
		}
		got, want := normalized(rec), normalized(recs[i].rec)
		got.Attr, want.Attr, got.Offset, want.Offset = nil, nil, 0, 0
		if ai != recs[i].attr || !reflect.DeepEqual(got, want) {
			if bad++; bad <= 3 {
				t.Errorf("record %d: the file reader decodes (event %d)\n%+v\nthe session decoded (event %d)\n%+v", i, ai, got, recs[i].attr, want)
			}
		}
	}
	if err := rr.ReadInto(&rec); err != io.EOF {
		t.Errorf("after the last record: %v, want io.EOF", err)
	}
}

// normalized returns rec with empty slices nil, for reflect.DeepEqual.
func normalized(rec perfdata.Record) perfdata.Record {
	s := &rec.Sample
	for _, p := range []*[]uint64{&s.Callchain, &s.Regs, &s.RegsIntr} {
		if len(*p) == 0 {
			*p = nil
		}
	}
	for _, p := range []*[]byte{&s.Read, &s.Raw, &s.Branches, &s.Stack, &s.Aux, &rec.Mmap.BuildID} {
		if len(*p) == 0 {
			*p = nil
		}
	}
	return rec
}

// TestContextEnd checks that the end of the context ends a session on a
// target that runs on: the records the rings hold, then io.EOF, promptly;
// also when the target writes records faster than they can be read.
func TestContextEnd(t *testing.T) {
	exe := buildProg(t)
	for _, c := range []struct {
		mode string
		opts Options
	}{
		{"spin", Options{Frequency: 999, RingPages: 64}},
		{"flood", Options{Tracepoints: []Tracepoint{{"raw_syscalls", "sys_enter", true}}, RingPages: 64}},
	} {
		t.Run(c.mode, func(t *testing.T) {
			cmd, _ := startProg(t, exe, c.mode)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			opts := c.opts
			opts.PID = cmd.Process.Pid
			s := openOrSkip(t, ctx, opts)
			time.AfterFunc(200*time.Millisecond, cancel)
			deadline := time.AfterFunc(10*time.Second, func() { s.Close() })
			defer deadline.Stop()
			start := time.Now()
			var rec perfdata.Record
			var last uint64
			samples := 0
			for {
				err := s.ReadInto(&rec)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("ReadInto: %v (os.ErrClosed: no io.EOF 10 s after the context's end)", err)
				}
				if tm, _ := rec.Time(); tm < last {
					t.Errorf("%v record at %d after one at %d", rec.Type, tm, last)
				} else {
					last = tm
				}
				if rec.Type == perfdata.RecordSample {
					samples++
				}
			}
			took := time.Since(start)
			st := s.Stats()
			t.Logf("%d records, %d samples in %v; %d records straddled the ring's end, %d spilled, %d lost",
				st.Records, samples, took, st.Wrapped, st.Spilled, st.Lost)
			if samples < 20 || took > 2*time.Second {
				t.Errorf("%d samples in %v: want more, in about 200 ms", samples, took)
			}
			// 256 KiB rings and 8 KiB samples: the ring's end is crossed
			// every 30 samples or so, and a record straddles it most times.
			if st.ByType[perfdata.RecordSample]*8192 > 4*64*4096 && st.Wrapped == 0 {
				t.Errorf("no record straddled a ring's end in %d bytes", st.Bytes)
			}
			if err := s.ReadInto(&rec); err != io.EOF {
				t.Errorf("ReadInto after io.EOF: %v", err)
			}
		})
	}
}

// TestClose checks that Close wakes a blocked ReadInto, which returns
// os.ErrClosed, and that a second Close is harmless.
func TestClose(t *testing.T) {
	sleeper := testutil.Sleeper(t)
	s := openOrSkip(t, context.Background(), Options{PID: sleeper.Process.Pid, RingPages: 8})
	var rec perfdata.Record
	errc := make(chan error)
	go func() {
		for {
			if err := s.ReadInto(&rec); err != nil {
				errc <- err
				return
			}
		}
	}()
	time.Sleep(200 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("ReadInto: %v, want os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not wake ReadInto")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.ReadInto(&rec); !errors.Is(err, os.ErrClosed) {
		t.Errorf("ReadInto after Close: %v", err)
	}
}

// TestErrors checks the messages of what Open refuses.
func TestErrors(t *testing.T) {
	// A pid that existed and does not any more.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	sleeper := testutil.Sleeper(t)
	live := sleeper.Process.Pid
	tracefs, err := findTracefs("")
	if err != nil {
		testutil.Need(t, "tracefs", err.Error())
	}
	empty := t.TempDir()
	maxRate, err := readInt("/proc/sys/kernel/perf_event_max_sample_rate")
	if err != nil {
		testutil.Need(t, "perf", "no kernel.perf_event_max_sample_rate: "+err.Error())
	}
	for _, c := range []struct {
		name string
		opts Options
		is   error
		want string
	}{
		{"no pid", Options{}, nil, "perfevent: PID 0 must be > 0"},
		{"stack size", Options{PID: live, StackSize: 100}, nil, "perfevent: StackSize 100 must be a multiple of 8 between 8 and 65016"},
		{"ring pages", Options{PID: live, RingPages: 3}, nil, "perfevent: RingPages 3 must be a power of two"},
		{"bad tracepoint", Options{PID: live, Tracepoints: []Tracepoint{{"raw_syscalls", "../x", false}}}, nil, `perfevent: bad tracepoint "raw_syscalls:../x"`},
		{"nonexistent pid", Options{PID: gone.Process.Pid, Frequency: 99}, ErrNoProcess,
			"perfevent: target(pid " + strconv.Itoa(gone.Process.Pid) + "): no such process"},
		{"kernel thread", Options{PID: 2, Frequency: 99}, ErrKernelThread,
			"perfevent: target(pid 2): target is a kernel thread: kthreadd has no user space to unwind"},
		{"frequency", Options{PID: live, Frequency: maxRate + 1}, unix.EINVAL,
			"perfevent: perf_event_open(cpu-clock, pid " + strconv.Itoa(live) + "): invalid argument: sampling frequency " +
				strconv.Itoa(maxRate+1) + " Hz is above kernel.perf_event_max_sample_rate " + strconv.Itoa(maxRate) + ": lower Frequency or raise the sysctl"},
		{"nonexistent tracepoint", Options{PID: live, Tracepoints: []Tracepoint{{"raw_syscalls", "sys_nope", false}}}, ErrNoTracepoint,
			"perfevent: tracepoint(raw_syscalls:sys_nope): no such tracepoint: group raw_syscalls in " + tracefs +
				" has no event sys_nope (see " + tracefs + "/available_events)"},
		{"nonexistent group", Options{PID: live, Tracepoints: []Tracepoint{{"nope", "sys_enter", false}}}, ErrNoTracepoint,
			"perfevent: tracepoint(nope:sys_enter): no such tracepoint: " + tracefs + " has no group nope (see " + tracefs + "/available_events)"},
		{"no tracefs", Options{PID: live, TracefsDir: empty, Tracepoints: []Tracepoint{{"raw_syscalls", "sys_enter", false}}}, ErrNoTracefs,
			"perfevent: tracefs: tracefs not found: no events directory in " + empty +
				": mount it (mount -t tracefs nodev /sys/kernel/tracing) or set TracefsDir"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(context.Background(), c.opts)
			if err == nil {
				s.Close()
				t.Fatal("no error")
			}
			if err.Error() != c.want {
				t.Errorf("got  %s\nwant %s", err, c.want)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("%v does not wrap %v", err, c.is)
			}
			if err2 := Preflight(c.opts); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("Preflight: %v", err2)
			}
		})
	}
}

// TestPermission runs Open as an unprivileged user (nobody, without
// capabilities) and checks that the refusals name what is missing: the
// paranoid sysctl for kernel-mode sampling, the right to trace another
// user's process.
func TestPermission(t *testing.T) {
	sys := readSystem()
	if !sys.haveParanoid {
		testutil.Need(t, "perf", "no kernel.perf_event_paranoid")
	}
	const nobody = 65534
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "perfevent-helper")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	helperBin := dir + "/perfevent.test"
	if err := os.WriteFile(helperBin, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(pid, freq int) string {
		cmd := exec.Command(helperBin)
		cmd.Env = append(os.Environ(), helperEnv+"="+strconv.Itoa(pid)+" "+strconv.Itoa(freq))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		out, err := cmd.CombinedOutput()
		if errors.Is(err, fs.ErrPermission) {
			testutil.Need(t, "setuid", "cannot run a helper as another user: "+err.Error())
		}
		if err != nil {
			t.Fatalf("helper: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// A target of nobody's own, sampled in kernel mode too.
	own := exec.Command("sleep", "60")
	own.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if err := own.Start(); errors.Is(err, fs.ErrPermission) {
		testutil.Need(t, "setuid", "cannot start a target as another user: "+err.Error())
	} else if err != nil {
		t.Fatal(err)
	}
	defer func() { own.Process.Kill(); own.Wait() }()
	want := "ok"
	if sys.paranoid > 1 {
		extra := ""
		if sys.paranoid >= 3 {
			extra = " (3 and up forbids perf_event_open to unprivileged users altogether on kernels patched as Debian's are)"
		}
		want = "permission=true perfevent: perf_event_open(cpu-clock, pid " + strconv.Itoa(own.Process.Pid) + "): permission denied: " +
			"kernel.perf_event_paranoid is " + strconv.Itoa(sys.paranoid) + extra + " and unwindd (uid 65534) lacks CAP_PERFMON and CAP_SYS_ADMIN; " +
			"an event that samples kernel mode too needs 1 or less: run as root, give unwindd CAP_PERFMON (setcap cap_perfmon+ep), " +
			"or sysctl kernel.perf_event_paranoid=1"
	}
	if got := run(own.Process.Pid, 99); got != want {
		t.Errorf("own target, sampling:\n got %s\nwant %s", got, want)
	}
	// root's process, with the tracking event alone (user mode).
	if sys.paranoid <= 2 {
		sleeper := testutil.Sleeper(t)
		pid := sleeper.Process.Pid
		want := "permission=true perfevent: perf_event_open(dummy, pid " + strconv.Itoa(pid) + ", cpu 0): permission denied: " +
			"task " + strconv.Itoa(pid) + " belongs to uid 0 and unwindd runs as uid 65534 without CAP_SYS_PTRACE: " +
			"tracing another user's process needs it (run as root or as that user)"
		if got := run(pid, 0); got != want {
			t.Errorf("root's target:\n got %s\nwant %s", got, want)
		}
	}
}
