package entry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/deferred"
	"github.com/unwindd/unwindd/host/pluginhost"
)

// recorder is a Sink that behaves as one plugin in mode always: it requests
// the task's stack on every event, and logs what happens in order.
type recorder struct {
	t      *testing.T
	tracer *deferred.Tracer
	log    []string
	stacks []gotStack
	events []gotEvent
}

type gotEvent struct {
	tid    int32
	name   string
	comm   string
	cookie deferred.Cookie
	err    error
}

type gotStack struct {
	tid    int32
	cookie deferred.Cookie
	frames []x86_64.Frame
	end    x86_64.EndReason
}

func (r *recorder) Event(t *deferred.Task, ev pluginhost.Event) {
	_, c, err := t.Request(r.tracer)
	r.events = append(r.events, gotEvent{tid: t.TID(), name: ev.Name, comm: ev.Comm, cookie: c, err: err})
	r.log = append(r.log, fmt.Sprintf("event %d %s", t.TID(), ev.Name))
}

func (r *recorder) EndEntry(t *deferred.Task) {
	r.log = append(r.log, fmt.Sprintf("end %d", t.TID()))
}

func (r *recorder) callback(t *deferred.Task, tr *x86_64.Trace, c deferred.Cookie) {
	r.stacks = append(r.stacks, gotStack{tid: t.TID(), cookie: c, frames: slices.Clone(tr.Frames), end: tr.End})
	r.log = append(r.log, fmt.Sprintf("stack %d", t.TID()))
}

func newTracker(t *testing.T) (*Tracker, *recorder, *deferred.Engine) {
	t.Helper()
	return newTrackerWith(t, Options{})
}

func newTrackerWith(t *testing.T, opts Options) (*Tracker, *recorder, *deferred.Engine) {
	t.Helper()
	u, err := NewUnwinder(x86_64.Options{})
	if err != nil {
		t.Fatal(err)
	}
	eng, err := deferred.New(deferred.Options{Shards: 2, Unwinder: u})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{t: t}
	if rec.tracer, err = eng.Register("test", rec.callback); err != nil {
		t.Fatal(err)
	}
	tr, err := New(eng, rec, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tr, rec, eng
}

// TestCopyStacks: with CopyStacks, a sys_enter's stack bytes may be reused
// by the source (a live ring) before the entry closes; the walk at sys_exit
// is of the copy.
func TestCopyStacks(t *testing.T) {
	for _, copyStacks := range []bool{true, false} {
		tr, rec, _ := newTrackerWith(t, Options{CopyStacks: copyStacks})
		s := withStack(sample(10, 11, ModeKernel, BoundaryEnter, "read"), 0x7ff000, 0x401010, 0x401020)
		tr.Sample(s)
		clear(s.Stack) // the ring's space, reused
		tr.Sample(sample(10, 11, ModeKernel, BoundaryExit, "read"))
		got := pcsOf(rec.stacks[0].frames)
		if want := []uint64{0x401010, 0x401020}; copyStacks && !slices.Equal(got, want) {
			t.Errorf("with CopyStacks: stack %#x, want %#x", got, want)
		} else if !copyStacks && slices.Equal(got, want) {
			t.Errorf("without CopyStacks the walk still saw the cleared bytes' old frames: the test does not test")
		}
	}
}

// fpStack builds a frame-pointer stack snapshot at base whose walk from the
// returned registers gives pcs (leaf first) and ends at the outermost frame.
func fpStack(base uint64, pcs ...uint64) (x86_64.Regs, []byte) {
	// Frame records at base+16, base+48, …: [saved bp, return address].
	mem := make([]byte, 16+32*len(pcs))
	bp := base + 16
	for i := 1; i <= len(pcs); i++ {
		off := bp - base
		next, ret := bp+32, uint64(0)
		if i < len(pcs) {
			ret = pcs[i]
		} else {
			next = 0
		}
		binary.LittleEndian.PutUint64(mem[off:], next)
		binary.LittleEndian.PutUint64(mem[off+8:], ret)
		bp += 32
	}
	return x86_64.Regs{IP: pcs[0], SP: base, BP: base + 16}, mem
}

func pcsOf(fs []x86_64.Frame) []uint64 {
	var out []uint64
	for _, f := range fs {
		out = append(out, f.PC)
	}
	return out
}

func sample(pid, tid int32, mode CPUMode, b Boundary, name string) *Sample {
	return &Sample{PID: pid, TID: tid, CPU: 1, Mode: mode, Boundary: b, Event: pluginhost.Event{Kind: pluginhost.KindSample, Name: name}}
}

func withStack(s *Sample, base uint64, pcs ...uint64) *Sample {
	s.Regs, s.Stack = fpStack(base, pcs...)
	s.HaveRegs = true
	return s
}

func TestUserSampleIsOneEntry(t *testing.T) {
	tr, rec, _ := newTracker(t)
	tr.SetComm(10, 10, "prog", true)
	tr.Sample(withStack(sample(10, 10, ModeUser, BoundaryNone, "cpu-clock"), 0x7ff000, 0x401010, 0x401020, 0x401030))
	tr.Sample(withStack(sample(10, 10, ModeUser, BoundaryNone, "cpu-clock"), 0x7ff000, 0x401011, 0x401020, 0x401030))
	want := []string{"event 10 cpu-clock", "end 10", "stack 10", "event 10 cpu-clock", "end 10", "stack 10"}
	if !slices.Equal(rec.log, want) {
		t.Fatalf("log %q, want %q", rec.log, want)
	}
	if len(rec.stacks) != 2 || rec.events[0].cookie == 0 || rec.events[0].cookie == rec.events[1].cookie {
		t.Fatalf("two entries with two cookies wanted: events %+v", rec.events)
	}
	for i, s := range rec.stacks {
		if s.cookie != rec.events[i].cookie {
			t.Errorf("stack %d cookie %v, event's %v", i, s.cookie, rec.events[i].cookie)
		}
		want := []uint64{0x401010 + uint64(i), 0x401020, 0x401030}
		if !slices.Equal(pcsOf(s.frames), want) || s.end != x86_64.EndOutermost {
			t.Errorf("stack %d: %#x end %v, want %#x outermost", i, pcsOf(s.frames), s.end, want)
		}
	}
	if rec.events[0].comm != "prog" {
		t.Errorf("comm %q, want prog", rec.events[0].comm)
	}
	if s := tr.Stats(); s.Entries != 2 || s.Unwinds != 2 || s.Events != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestSyscallIsOneEntry(t *testing.T) {
	tr, rec, _ := newTracker(t)
	tr.Sample(withStack(sample(10, 11, ModeKernel, BoundaryEnter, "read"), 0x7ff000, 0x401010, 0x401020))
	// Kernel-mode events of the tid: inside the entry, whatever they carry.
	tr.Sample(withStack(sample(10, 11, ModeKernel, BoundaryNone, "cpu-clock"), 0x7fe000, 0x999999))
	tr.Sample(sample(10, 11, ModeKernel, BoundaryNone, "sched:sched_switch"))
	// Another tid's user sample is its own entry in between.
	tr.Sample(withStack(sample(10, 12, ModeUser, BoundaryNone, "cpu-clock"), 0x7fd000, 0x402000))
	tr.Sample(sample(10, 11, ModeKernel, BoundaryExit, "read"))
	want := []string{
		"event 11 read", "event 11 cpu-clock", "event 11 sched:sched_switch",
		"event 12 cpu-clock", "end 12", "stack 12",
		"event 11 read", "end 11", "stack 11",
	}
	if !slices.Equal(rec.log, want) {
		t.Fatalf("log %q\nwant %q", rec.log, want)
	}
	var c deferred.Cookie
	for _, e := range rec.events {
		if e.tid != 11 {
			continue
		}
		if c == 0 {
			c = e.cookie
		}
		if e.cookie == 0 || e.cookie != c {
			t.Errorf("event %s cookie %v, want the entry's %v", e.name, e.cookie, c)
		}
	}
	st := rec.stacks[1]
	if st.cookie != c || !slices.Equal(pcsOf(st.frames), []uint64{0x401010, 0x401020}) {
		t.Errorf("syscall stack %#x cookie %v, want sys_enter's stack and cookie %v", pcsOf(st.frames), st.cookie, c)
	}
}

func TestUnmatchedBoundaries(t *testing.T) {
	tests := []struct {
		name      string
		samples   []*Sample
		wantLog   []string
		wantStale uint64
	}{{
		name: "sys_exit without sys_enter is an entry of its own",
		samples: []*Sample{
			withStack(sample(1, 1, ModeKernel, BoundaryExit, "write"), 0x1000, 0x10),
		},
		wantLog: []string{"event 1 write", "end 1", "stack 1"},
	}, {
		name: "kernel sample without an open entry is an entry of its own",
		samples: []*Sample{
			withStack(sample(1, 1, ModeKernel, BoundaryNone, "cpu-clock"), 0x1000, 0x10),
		},
		wantLog: []string{"event 1 cpu-clock", "end 1", "stack 1"},
	}, {
		name: "a user sample ends a stale syscall entry",
		samples: []*Sample{
			withStack(sample(1, 1, ModeKernel, BoundaryEnter, "read"), 0x1000, 0x10),
			withStack(sample(1, 1, ModeUser, BoundaryNone, "cpu-clock"), 0x1000, 0x20),
		},
		wantLog:   []string{"event 1 read", "end 1", "stack 1", "event 1 cpu-clock", "end 1", "stack 1"},
		wantStale: 1,
	}, {
		name: "a second sys_enter ends the first",
		samples: []*Sample{
			withStack(sample(1, 1, ModeKernel, BoundaryEnter, "read"), 0x1000, 0x10),
			withStack(sample(1, 1, ModeKernel, BoundaryEnter, "write"), 0x1000, 0x20),
		},
		wantLog:   []string{"event 1 read", "end 1", "stack 1", "event 1 write"},
		wantStale: 1,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, rec, _ := newTracker(t)
			for _, s := range tt.samples {
				tr.Sample(s)
			}
			if !slices.Equal(rec.log, tt.wantLog) {
				t.Errorf("log %q\nwant %q", rec.log, tt.wantLog)
			}
			if got := tr.Stats().Stale; got != tt.wantStale {
				t.Errorf("stale %d, want %d", got, tt.wantStale)
			}
		})
	}
}

func TestLostEndsOpenEntries(t *testing.T) {
	t.Run("all", func(t *testing.T) {
		tr, rec, _ := newTracker(t)
		tr.Sample(withStack(sample(1, 1, ModeKernel, BoundaryEnter, "read"), 0x1000, 0x10))
		tr.Sample(withStack(sample(1, 2, ModeKernel, BoundaryEnter, "read"), 0x2000, 0x20))
		tr.Lost()
		if len(rec.stacks) != 2 {
			t.Fatalf("%d stacks after Lost, want both entries ended", len(rec.stacks))
		}
		before := rec.events[0].cookie
		// After the gap: a kernel sample and the sys_exit are entries of their own.
		tr.Sample(sample(1, 1, ModeKernel, BoundaryNone, "cpu-clock"))
		tr.Sample(sample(1, 1, ModeKernel, BoundaryExit, "read"))
		if n := len(rec.events); rec.events[n-1].cookie == before || rec.events[n-2].cookie == before || rec.events[n-1].cookie == rec.events[n-2].cookie {
			t.Errorf("events after the gap joined an earlier entry: %+v", rec.events)
		}
		if s := tr.Stats(); s.Lost != 1 || s.LostEnds != 2 || s.Entries != 4 {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("named tids", func(t *testing.T) {
		tr, rec, _ := newTracker(t)
		tr.Sample(withStack(sample(1, 1, ModeKernel, BoundaryEnter, "read"), 0x1000, 0x10))
		tr.Sample(withStack(sample(1, 2, ModeKernel, BoundaryEnter, "read"), 0x2000, 0x20))
		tr.Lost(2, 99)
		if len(rec.stacks) != 1 || rec.stacks[0].tid != 2 {
			t.Fatalf("stacks %+v, want tid 2's only", rec.stacks)
		}
		tr.Sample(sample(1, 1, ModeKernel, BoundaryExit, "read"))
		if len(rec.stacks) != 2 || rec.events[2].cookie != rec.events[0].cookie {
			t.Errorf("tid 1's entry should have stayed open: %+v", rec.events)
		}
	})
}

func TestLifetimes(t *testing.T) {
	tr, rec, eng := newTracker(t)
	tr.SetComm(100, 100, "sh", false)
	tr.Mmap(100, Mapping{Start: 0x1000, Limit: 0x2000, Path: "/bin/sh"})
	// A thread of the same process inherits the comm; a new process the
	// mappings too.
	tr.Fork(100, 100, 101, 100)
	tr.Fork(200, 100, 200, 100)
	if got := tr.Comm(101); got != "sh" {
		t.Errorf("thread comm %q, want sh", got)
	}
	if m, ok := tr.Spaces().Find(200, 0x1800); !ok || m.Path != "/bin/sh" {
		t.Errorf("child mapping %+v %v, want the parent's", m, ok)
	}
	tr.SetComm(200, 200, "prog", true)
	tr.Mmap(200, Mapping{Start: 0x1000, Limit: 0x1800, Path: "/usr/bin/prog"})
	if m, _ := tr.Spaces().Find(100, 0x1100); m.Path != "/bin/sh" {
		t.Errorf("parent mapping changed by the child's mmap: %+v", m)
	}
	if m, _ := tr.Spaces().Find(200, 0x1100); m.Path != "/usr/bin/prog" {
		t.Errorf("child's new mapping not found: %+v", m)
	}
	// Exit with an open entry: the callbacks still come (R16), the task is gone.
	tr.Sample(withStack(sample(200, 200, ModeKernel, BoundaryEnter, "exit_group"), 0x1000, 0x10))
	if rec.events[0].comm != "prog" {
		t.Errorf("event comm %q, want prog", rec.events[0].comm)
	}
	tr.Exit(200, 200)
	want := []string{"event 200 exit_group", "end 200", "stack 200"}
	if !slices.Equal(rec.log, want) {
		t.Errorf("log %q, want %q", rec.log, want)
	}
	if eng.Task(200) != nil {
		t.Error("engine still knows the exited task")
	}
	if _, ok := tr.Spaces().Find(200, 0x1100); !ok {
		t.Error("an exited process's mappings must stay for stacks in flight")
	}
	// A reused tid is a new task with a new name.
	tr.Fork(300, 100, 200, 100)
	if got := tr.Comm(200); got != "sh" {
		t.Errorf("reused tid comm %q, want sh", got)
	}
	if s := tr.Stats(); s.Exits != 1 || s.Unwinds != 1 {
		t.Errorf("stats %+v", s)
	}
	// Unknown tasks are named as perf script names them.
	tr.Sample(sample(7, 7, ModeUser, BoundaryNone, "cpu-clock"))
	if got := rec.events[len(rec.events)-1].comm; got != ":7" {
		t.Errorf("unknown task comm %q, want :7", got)
	}
}

func TestRefusedKindsStillGetEvents(t *testing.T) {
	tests := []struct {
		kind Kind
		err  error
	}{{KindCompat, deferred.ErrCompat}, {KindKernelThread, deferred.ErrKernelThread}}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.kind), func(t *testing.T) {
			tr, rec, _ := newTracker(t)
			s := withStack(sample(5, 5, ModeUser, BoundaryNone, "cpu-clock"), 0x1000, 0x10)
			s.Kind = tt.kind
			tr.Sample(s)
			s = withStack(sample(5, 5, ModeKernel, BoundaryEnter, "read"), 0x1000, 0x10)
			s.Kind = tt.kind
			tr.Sample(s)
			tr.Sample(sample(5, 5, ModeKernel, BoundaryExit, "read"))
			if len(rec.events) != 3 || len(rec.stacks) != 0 {
				t.Fatalf("events %+v stacks %+v: want 3 events, no stack", rec.events, rec.stacks)
			}
			for _, e := range rec.events {
				if e.cookie != 0 || !errors.Is(e.err, tt.err) {
					t.Errorf("event %s: cookie %v err %v, want 0 and %v", e.name, e.cookie, e.err, tt.err)
				}
			}
			// The same tid later in 64-bit mode (an exec): stacks again.
			s = withStack(sample(5, 5, ModeUser, BoundaryNone, "cpu-clock"), 0x1000, 0x10)
			s.Kind = KindUser
			tr.Sample(s)
			if len(rec.stacks) != 1 {
				t.Errorf("no stack after the task became 64-bit")
			}
		})
	}
}

func TestCallchainReplay(t *testing.T) {
	chain := []uint64{0x401010, 0x401020, 0x401030, 0x7f0000001234}
	tests := []struct {
		name      string
		truncated bool
		end       x86_64.EndReason
	}{{"complete", false, x86_64.EndOutermost}, {"cut at the kernel's limit", true, x86_64.EndSnapshot}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, rec, _ := newTracker(t)
			s := sample(1, 1, ModeUser, BoundaryNone, "cpu-clock")
			s.Callchain, s.CallchainTruncated = slices.Clone(chain), tt.truncated
			tr.Sample(s)
			clear(s.Callchain) // the tracker copies it
			if len(rec.stacks) != 1 {
				t.Fatalf("%d stacks", len(rec.stacks))
			}
			st := rec.stacks[0]
			if !slices.Equal(pcsOf(st.frames), chain) || st.end != tt.end {
				t.Fatalf("frames %#x end %v, want %#x %v", pcsOf(st.frames), st.end, chain, tt.end)
			}
			for i, f := range st.frames {
				if want := x86_64.TypeCallchain; i > 0 && f.Type != want {
					t.Errorf("frame %d type %v, want %v", i, f.Type, want)
				}
			}
		})
	}
	// A snapshot walk through the same unwinder is untouched by the stepper.
	tr, rec, _ := newTracker(t)
	tr.Sample(withStack(sample(1, 1, ModeUser, BoundaryNone, "cpu-clock"), 0x7ff000, 0x10, 0x20))
	if fs := rec.stacks[0].frames; len(fs) != 2 || fs[1].Type != x86_64.TypeFramePointer {
		t.Errorf("snapshot walk %+v, want two frames, the second by frame pointer", fs)
	}
}

func TestNoRegsNoStack(t *testing.T) {
	tr, rec, _ := newTracker(t)
	tr.Sample(sample(1, 1, ModeUser, BoundaryNone, "cpu-clock"))
	if len(rec.stacks) != 1 || len(rec.stacks[0].frames) != 0 {
		t.Fatalf("stacks %+v, want one empty stack (callbacks are made even when the walk fails, R12)", rec.stacks)
	}
}

func TestFlush(t *testing.T) {
	tr, rec, _ := newTracker(t)
	tr.Sample(withStack(sample(1, 1, ModeKernel, BoundaryEnter, "read"), 0x1000, 0x10))
	tr.Flush()
	if len(rec.stacks) != 1 {
		t.Fatalf("Flush left the entry open")
	}
}

func TestSpacesInsert(t *testing.T) {
	m := func(s, l, off uint64, p string) Mapping { return Mapping{Start: s, Limit: l, Offset: off, Path: p} }
	tests := []struct {
		name string
		in   []Mapping
		want []Mapping
	}{
		{"disjoint, sorted", []Mapping{m(0x3000, 0x4000, 0, "b"), m(0x1000, 0x2000, 0, "a")},
			[]Mapping{m(0x1000, 0x2000, 0, "a"), m(0x3000, 0x4000, 0, "b")}},
		{"replaces the middle", []Mapping{m(0x1000, 0x4000, 0, "a"), m(0x2000, 0x3000, 0, "b")},
			[]Mapping{m(0x1000, 0x2000, 0, "a"), m(0x2000, 0x3000, 0, "b"), m(0x3000, 0x4000, 0x2000, "a")}},
		{"covers several", []Mapping{m(0x1000, 0x2000, 0, "a"), m(0x2000, 0x3000, 0, "b"), m(0x1800, 0x2800, 0, "c")},
			[]Mapping{m(0x1000, 0x1800, 0, "a"), m(0x1800, 0x2800, 0, "c"), m(0x2800, 0x3000, 0x800, "b")}},
		{"same range", []Mapping{m(0x1000, 0x2000, 0, "a"), m(0x1000, 0x2000, 0, "b")},
			[]Mapping{m(0x1000, 0x2000, 0, "b")}},
		{"empty is ignored", []Mapping{m(0x1000, 0x1000, 0, "a")}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sp Spaces
			for _, x := range tt.in {
				sp.insert(1, x)
			}
			if got := sp.Mappings(1); !slices.Equal(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
			for _, w := range tt.want {
				if got, ok := sp.Find(1, w.Start); !ok || got != w {
					t.Errorf("Find(%#x) = %+v %v, want %+v", w.Start, got, ok, w)
				}
				if got, ok := sp.Find(1, w.Limit-1); !ok || got != w {
					t.Errorf("Find(%#x) = %+v %v, want %+v", w.Limit-1, got, ok, w)
				}
			}
			if _, ok := sp.Find(1, 0x10); ok {
				t.Error("Find below every mapping found one")
			}
			if _, ok := sp.Find(2, 0x1000); ok {
				t.Error("Find in an unknown process found one")
			}
		})
	}
}
