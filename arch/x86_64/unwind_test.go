package x86_64

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"testing"
)

// stackImage lays out a synthetic user stack: little-endian words at
// addresses from base up.
type stackImage struct {
	base uint64
	data []byte
}

func newStackImage(base uint64, size int) *stackImage {
	return &stackImage{base: base, data: make([]byte, size)}
}

// put writes the word v at addr, which must lie inside the image.
func (s *stackImage) put(addr, v uint64) {
	binary.LittleEndian.PutUint64(s.data[addr-s.base:], v)
}

// frame writes a frame record at bp: the caller's saved bp at bp, the return
// address at bp+8 (CFA − 16 and CFA − 8).
func (s *stackImage) frame(bp, savedBP, ra uint64) {
	s.put(bp, savedBP)
	s.put(bp+8, ra)
}

// snapshot returns a Snapshot of a copy of the image, so that later writes
// to the image do not change it.
func (s *stackImage) snapshot() *Snapshot {
	return &Snapshot{Base: s.base, Data: slices.Clone(s.data)}
}

// chainFrameSize is the size of each frame chain lays out: 16 bytes of
// locals below the frame record (saved bp, return address).
const chainFrameSize = 32

// chain lays out a frame-pointer chain from base: one frame per return
// address in ras, leaf first, each record's saved bp pointing at the next
// one; the last record's saved bp is 0. The registers start at ip with sp at
// base and bp at the first record. The image ends right after the last
// record.
func chain(base, ip uint64, ras ...uint64) (Regs, *stackImage) {
	s := newStackImage(base, len(ras)*chainFrameSize)
	bp := func(i int) uint64 { return base + uint64(i)*chainFrameSize + 16 }
	for i, ra := range ras {
		saved := uint64(0)
		if i+1 < len(ras) {
			saved = bp(i + 1)
		}
		s.frame(bp(i), saved, ra)
	}
	return Regs{IP: ip, SP: base, BP: bp(0)}, s
}

// faultMemory is a Memory over a snapshot whose words in [lo, hi) fail with
// an error that is not ErrOutOfSnapshot, as a live task's unmapped page does.
type faultMemory struct {
	snap   *Snapshot
	lo, hi uint64
}

var errFault = fmt.Errorf("read user memory: %w", syscall.EFAULT)

func (m *faultMemory) ReadAt(p []byte, addr int64) (int, error) {
	a := uint64(addr)
	if a < m.hi && a+uint64(len(p)) > m.lo {
		return 0, errFault
	}
	return m.snap.ReadAt(p, addr)
}

// wrapMemory hides a *Snapshot behind another type, so that the Reader takes
// its generic path instead of the snapshot fast path.
type wrapMemory struct{ snap *Snapshot }

func (m wrapMemory) ReadAt(p []byte, addr int64) (int, error) { return m.snap.ReadAt(p, addr) }

func mustNew(t testing.TB, opts Options) *Unwinder {
	t.Helper()
	u, err := New(opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	return u
}

// fpFrames is the trace a frame-pointer walk gives: ip as TypeRegs, then
// each return address as TypeFramePointer.
func fpFrames(ip uint64, ras ...uint64) []Frame {
	f := []Frame{{PC: ip, Type: TypeRegs}}
	for _, ra := range ras {
		f = append(f, Frame{PC: ra, Type: TypeFramePointer})
	}
	return f
}

const testBase = 0x7ffc_0000_1000

func TestUnwindFramePointer(t *testing.T) {
	const ip = 0x40_1000
	type tc struct {
		name     string
		maxDepth int
		regs     Regs
		mem      Memory
		want     []Frame
		wantEnd  EndReason
	}
	var tests []tc
	add := func(c tc) { tests = append(tests, c) }

	{ // A good chain ending in a zero return address.
		regs, s := chain(testBase, ip, 0x40_2000, 0x40_3000, 0x40_4000, 0x40_5000, 0)
		add(tc{name: "chain/outermost", regs: regs, mem: s.snapshot(),
			want: fpFrames(ip, 0x40_2000, 0x40_3000, 0x40_4000, 0x40_5000), wantEnd: EndOutermost})
		add(tc{name: "chain/outermost/generic-memory", regs: regs, mem: wrapMemory{s.snapshot()},
			want: fpFrames(ip, 0x40_2000, 0x40_3000, 0x40_4000, 0x40_5000), wantEnd: EndOutermost})
		// Depth cap: exactly MaxDepth frames, whatever lies beyond.
		add(tc{name: "depth/1", maxDepth: 1, regs: regs, mem: s.snapshot(),
			want: fpFrames(ip), wantEnd: EndDepth})
		add(tc{name: "depth/3", maxDepth: 3, regs: regs, mem: s.snapshot(),
			want: fpFrames(ip, 0x40_2000, 0x40_3000), wantEnd: EndDepth})
		// The cap is checked before the step that would have found the zero.
		add(tc{name: "depth/equal-to-chain", maxDepth: 5, regs: regs, mem: s.snapshot(),
			want: fpFrames(ip, 0x40_2000, 0x40_3000, 0x40_4000, 0x40_5000), wantEnd: EndDepth})
		add(tc{name: "depth/one-more-than-chain", maxDepth: 6, regs: regs, mem: s.snapshot(),
			want: fpFrames(ip, 0x40_2000, 0x40_3000, 0x40_4000, 0x40_5000), wantEnd: EndOutermost})
	}
	{ // The first return address is zero: only ip, and the zero is not recorded.
		regs, s := chain(testBase, ip, 0)
		add(tc{name: "zero-ra/first", regs: regs, mem: s.snapshot(),
			want: fpFrames(ip), wantEnd: EndOutermost})
	}
	{ // A chain whose last saved bp is 0: the step after it has bp < sp.
		regs, s := chain(testBase, ip, 0x40_2000, 0x40_3000)
		add(tc{name: "bp-below-sp/after-chain", regs: regs, mem: s.snapshot(),
			want: fpFrames(ip, 0x40_2000, 0x40_3000), wantEnd: EndInvalid})
		// The walk runs off the snapshot's end when the chain points past it.
		s.put(testBase+chainFrameSize+16, testBase+4*chainFrameSize)
		add(tc{name: "snapshot/saved-bp-past-end", regs: regs, mem: s.snapshot(),
			want: fpFrames(ip, 0x40_2000, 0x40_3000), wantEnd: EndSnapshot})
	}
	{ // bp < sp at the start, with a valid record at bp that must not be used.
		s := newStackImage(testBase, 64)
		s.frame(testBase+8, 0, 0x40_2000)
		add(tc{name: "bp-below-sp/first", regs: Regs{IP: ip, SP: testBase + 16, BP: testBase + 8},
			mem: s.snapshot(), want: fpFrames(ip), wantEnd: EndInvalid})
		// bp == sp is allowed.
		add(tc{name: "bp-equals-sp", regs: Regs{IP: ip, SP: testBase + 8, BP: testBase + 8},
			mem: s.snapshot(), want: fpFrames(ip, 0x40_2000), wantEnd: EndInvalid})
	}
	{ // The CFA bp+16 wraps around and would not move up the stack.
		s := newStackImage(testBase, 64)
		for _, bp := range []uint64{1<<64 - 8, 1<<64 - 16} {
			add(tc{name: fmt.Sprintf("cfa-wraps/bp=%#x", bp), regs: Regs{IP: ip, SP: testBase, BP: bp},
				mem: s.snapshot(), want: fpFrames(ip), wantEnd: EndInvalid})
		}
	}
	{ // With sp below 16 a wrapped CFA is above sp, as in the kernel's rule;
		// the record then wraps and its return address at address 0 lies
		// outside a snapshot at the top of the address space.
		s := newStackImage(1<<64-8, 8)
		s.put(1<<64-8, 0x40_2000)
		wrapped := s.snapshot()
		wrapped.Data = append(wrapped.Data, 0x00, 0x10, 0x40, 0, 0, 0, 0, 0) // "address 0"
		add(tc{name: "record-wraps", regs: Regs{IP: ip, SP: 0, BP: 1<<64 - 8},
			mem: wrapped, want: fpFrames(ip), wantEnd: EndSnapshot})
	}
	{ // A misaligned CFA stops the walk even though the words are readable.
		s := newStackImage(testBase, 64)
		for _, off := range []uint64{1, 4, 7} {
			bp := testBase + 8 + off
			s.frame(bp, 0, 0x40_2000)
			add(tc{name: fmt.Sprintf("cfa-misaligned/+%d", off), regs: Regs{IP: ip, SP: testBase, BP: bp},
				mem: s.snapshot(), want: fpFrames(ip), wantEnd: EndInvalid})
		}
	}
	{ // The return address lies outside the snapshot, or fails to read.
		s := newStackImage(testBase, 64)
		s.put(testBase+56, testBase+64) // saved bp readable, ra one word past the end
		add(tc{name: "ra/outside-snapshot", regs: Regs{IP: ip, SP: testBase, BP: testBase + 56},
			mem: s.snapshot(), want: fpFrames(ip), wantEnd: EndSnapshot})
		add(tc{name: "ra/outside-snapshot/generic-memory", regs: Regs{IP: ip, SP: testBase, BP: testBase + 56},
			mem: wrapMemory{s.snapshot()}, want: fpFrames(ip), wantEnd: EndSnapshot})
		add(tc{name: "ra/far-above-snapshot", regs: Regs{IP: ip, SP: testBase, BP: testBase + 1<<20},
			mem: s.snapshot(), want: fpFrames(ip), wantEnd: EndSnapshot})

		s.frame(testBase+16, 0, 0x40_2000)
		add(tc{name: "ra/fault", regs: Regs{IP: ip, SP: testBase, BP: testBase + 16},
			mem:  &faultMemory{snap: s.snapshot(), lo: testBase + 24, hi: testBase + 32},
			want: fpFrames(ip), wantEnd: EndUnreadable})
		// An address beyond int64, which a generic Memory is not asked for:
		// unreadable (user space ends far below it).
		add(tc{name: "ra/above-int64", regs: Regs{IP: ip, SP: testBase, BP: 1<<63 - 8},
			mem: wrapMemory{s.snapshot()}, want: fpFrames(ip), wantEnd: EndUnreadable})
	}
	{ // The return address reads, the saved bp does not.
		s := newStackImage(testBase, 64)
		s.put(testBase, 0x40_2000) // ra at the snapshot's first word; saved bp just below it
		add(tc{name: "saved-bp/outside-snapshot", regs: Regs{IP: ip, SP: testBase - 16, BP: testBase - 8},
			mem: s.snapshot(), want: fpFrames(ip), wantEnd: EndSnapshot})

		s.frame(testBase+16, testBase+56, 0x40_2000) // the next ra would lie past the end
		add(tc{name: "saved-bp/fault", regs: Regs{IP: ip, SP: testBase, BP: testBase + 16},
			mem:  &faultMemory{snap: s.snapshot(), lo: testBase + 16, hi: testBase + 24},
			want: fpFrames(ip), wantEnd: EndUnreadable})
		// Control: the same memory without the fault steps.
		add(tc{name: "saved-bp/fault-control", regs: Regs{IP: ip, SP: testBase, BP: testBase + 16},
			mem: &faultMemory{snap: s.snapshot()}, want: fpFrames(ip, 0x40_2000), wantEnd: EndSnapshot})
	}
	{ // No registers.
		regs, s := chain(testBase, ip, 0x40_2000, 0)
		regs.IP = 0
		add(tc{name: "no-regs", regs: regs, mem: s.snapshot(), want: []Frame{}, wantEnd: EndNoRegs})
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := mustNew(t, Options{MaxDepth: tt.maxDepth})
			var tr Trace
			u.Unwind(tt.regs, tt.mem, &tr)
			if !slices.Equal(tr.Frames, tt.want) {
				t.Errorf("Frames = %v, want %v", tr.Frames, tt.want)
			}
			if tr.End != tt.wantEnd {
				t.Errorf("End = %v, want %v", tr.End, tt.wantEnd)
			}
			if maxD := u.MaxDepth(); len(tr.Frames) > maxD {
				t.Errorf("len(Frames) = %d > MaxDepth %d", len(tr.Frames), maxD)
			}
		})
	}
}

func TestUnwindReusedTraceIsReset(t *testing.T) {
	u := mustNew(t, Options{})
	long, ls := chain(testBase, 0x1000, 0x2000, 0x3000, 0x4000, 0)
	short, ss := chain(testBase, 0x1100, 0)
	var tr Trace
	u.Unwind(long, ls.snapshot(), &tr)
	if got, want := tr.PCs(nil), []uint64{0x1000, 0x2000, 0x3000, 0x4000}; !slices.Equal(got, want) {
		t.Fatalf("first walk PCs = %#x, want %#x", got, want)
	}
	u.Unwind(short, ss.snapshot(), &tr)
	if got, want := tr.PCs(nil), []uint64{0x1100}; !slices.Equal(got, want) {
		t.Errorf("second walk PCs = %#x, want %#x", got, want)
	}
	if tr.End != EndOutermost {
		t.Errorf("second walk End = %v, want %v", tr.End, EndOutermost)
	}
	u.Unwind(Regs{}, ss.snapshot(), &tr)
	if len(tr.Frames) != 0 || tr.End != EndNoRegs {
		t.Errorf("third walk = %v %v, want no frames, %v", tr.Frames, tr.End, EndNoRegs)
	}
	if tr.rd.mem != nil {
		t.Errorf("trace still references the memory of its last walk")
	}
	tr.Reset()
	if len(tr.Frames) != 0 || tr.End != EndNone {
		t.Errorf("after Reset: %v %v, want no frames, %v", tr.Frames, tr.End, EndNone)
	}
}

// fakeStep is one scripted answer of a fakeStepper.
type fakeStep struct {
	ok   bool
	why  EndReason
	ip   uint64 // the caller's ip when ok
	move uint64 // added to sp when ok (0: sp does not move)
}

// fakeStepper answers Step from a script, one entry per call, repeating the
// last entry once the script runs out, and records what it saw.
type fakeStepper struct {
	typ    FrameType
	script []fakeStep
	calls  int
	first  []bool // st.First at each call
}

func (f *fakeStepper) Type() FrameType { return f.typ }

func (f *fakeStepper) Step(st *State, _ *Reader) (bool, EndReason) {
	s := f.script[min(f.calls, len(f.script)-1)]
	f.calls++
	f.first = append(f.first, st.First)
	if !s.ok {
		return false, s.why
	}
	st.IP, st.SP = s.ip, st.SP+s.move
	return true, EndNone
}

func TestRule_U3_PriorityOrder(t *testing.T) {
	notApplicable := fakeStep{ok: false, why: EndNone}
	step := func(ip uint64) fakeStep { return fakeStep{ok: true, ip: ip, move: 16} }
	fail := func(why EndReason) fakeStep { return fakeStep{ok: false, why: why} }
	const ip = 0x1000

	tests := []struct {
		name      string
		steppers  []*fakeStepper
		want      []Frame
		wantEnd   EndReason
		wantCalls []int
	}{{
		name: "first-successful-wins",
		steppers: []*fakeStepper{
			{typ: TypeSFrame, script: []fakeStep{notApplicable}},
			{typ: TypeCFI, script: []fakeStep{step(0x2000), step(0x3000), fail(EndSnapshot)}},
			{typ: TypeFramePointer, script: []fakeStep{fail(EndUnreadable)}},
		},
		want:      []Frame{{ip, TypeRegs}, {0x2000, TypeCFI}, {0x3000, TypeCFI}},
		wantEnd:   EndUnreadable, // the last reason given wins when all fail
		wantCalls: []int{3, 3, 1},
	}, {
		name: "method-per-frame",
		steppers: []*fakeStepper{
			{typ: TypeSFrame, script: []fakeStep{step(0x2000), notApplicable, step(0x4000), fail(EndInvalid)}},
			{typ: TypeFramePointer, script: []fakeStep{step(0x3000), fail(EndNone)}},
		},
		want:      []Frame{{ip, TypeRegs}, {0x2000, TypeSFrame}, {0x3000, TypeFramePointer}, {0x4000, TypeSFrame}},
		wantEnd:   EndInvalid,
		wantCalls: []int{4, 2},
	}, {
		name: "not-applicable-does-not-set-reason",
		steppers: []*fakeStepper{
			{typ: TypeSFrame, script: []fakeStep{fail(EndSnapshot)}},
			{typ: TypeCFI, script: []fakeStep{notApplicable}},
		},
		want:      []Frame{{ip, TypeRegs}},
		wantEnd:   EndSnapshot,
		wantCalls: []int{1, 1},
	}, {
		name: "last-reason-wins",
		steppers: []*fakeStepper{
			{typ: TypeSFrame, script: []fakeStep{fail(EndSnapshot)}},
			{typ: TypeCFI, script: []fakeStep{notApplicable}},
			{typ: TypeFramePointer, script: []fakeStep{fail(EndUnreadable)}},
		},
		want:      []Frame{{ip, TypeRegs}},
		wantEnd:   EndUnreadable,
		wantCalls: []int{1, 1, 1},
	}, {
		name: "last-reason-wins/reversed",
		steppers: []*fakeStepper{
			{typ: TypeSFrame, script: []fakeStep{fail(EndUnreadable)}},
			{typ: TypeFramePointer, script: []fakeStep{fail(EndSnapshot)}},
		},
		want:      []Frame{{ip, TypeRegs}},
		wantEnd:   EndSnapshot,
		wantCalls: []int{1, 1},
	}, {
		name: "none-applicable",
		steppers: []*fakeStepper{
			{typ: TypeSFrame, script: []fakeStep{notApplicable}},
			{typ: TypeCFI, script: []fakeStep{notApplicable}},
		},
		want:      []Frame{{ip, TypeRegs}},
		wantEnd:   EndInvalid,
		wantCalls: []int{1, 1},
	}, {
		name: "ok-without-moving-sp",
		steppers: []*fakeStepper{
			{typ: TypeCFI, script: []fakeStep{step(0x2000), {ok: true, ip: 0x3000, move: 0}}},
			{typ: TypeFramePointer, script: []fakeStep{step(0xbad)}},
		},
		want:      []Frame{{ip, TypeRegs}, {0x2000, TypeCFI}},
		wantEnd:   EndInvalid,
		wantCalls: []int{2, 0}, // the bad step won its frame: no fallback
	}, {
		name: "ok-moving-sp-down",
		steppers: []*fakeStepper{
			{typ: TypeCFI, script: []fakeStep{{ok: true, ip: 0x2000, move: 1<<64 - 8}}},
		},
		want:      []Frame{{ip, TypeRegs}},
		wantEnd:   EndInvalid,
		wantCalls: []int{1},
	}, {
		name: "ok-with-zero-ip",
		steppers: []*fakeStepper{
			{typ: TypeCFI, script: []fakeStep{step(0x2000), step(0)}},
		},
		want:      []Frame{{ip, TypeRegs}, {0x2000, TypeCFI}},
		wantEnd:   EndOutermost,
		wantCalls: []int{2},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var steppers []Stepper
			for _, s := range tt.steppers {
				steppers = append(steppers, s)
			}
			u := mustNew(t, Options{Steppers: steppers})
			var tr Trace
			u.Unwind(Regs{IP: ip, SP: testBase, BP: testBase}, &Snapshot{Base: testBase}, &tr)
			if !slices.Equal(tr.Frames, tt.want) {
				t.Errorf("Frames = %v, want %v", tr.Frames, tt.want)
			}
			if tr.End != tt.wantEnd {
				t.Errorf("End = %v, want %v", tr.End, tt.wantEnd)
			}
			for i, s := range tt.steppers {
				if s.calls != tt.wantCalls[i] {
					t.Errorf("stepper %d (%v) called %d times, want %d", i, s.typ, s.calls, tt.wantCalls[i])
				}
			}
		})
	}
}

func TestUnwindStateFirst(t *testing.T) {
	f := &fakeStepper{typ: TypeCFI, script: []fakeStep{{ok: true, ip: 0x2000, move: 16}, {ok: true, ip: 0x3000, move: 16}, {ok: false, why: EndSnapshot}}}
	u := mustNew(t, Options{Steppers: []Stepper{f}})
	var tr Trace
	u.Unwind(Regs{IP: 0x1000, SP: testBase}, &Snapshot{Base: testBase}, &tr)
	if want := []bool{true, false, false}; !slices.Equal(f.first, want) {
		t.Errorf("State.First at each step = %v, want %v", f.first, want)
	}
}

func TestNew(t *testing.T) {
	u, err := New(Options{})
	if err != nil {
		t.Fatalf("New(Options{}): %v", err)
	}
	if got := u.MaxDepth(); got != DefaultMaxDepth {
		t.Errorf("default MaxDepth = %d, want %d", got, DefaultMaxDepth)
	}
	if _, err := New(Options{MaxDepth: -1}); err == nil {
		t.Errorf("New(MaxDepth: -1) succeeded, want an error")
	}
	if _, err := New(Options{Steppers: []Stepper{FramePointer{}, nil}}); err == nil {
		t.Errorf("New with a nil stepper succeeded, want an error")
	}

	// The Unwinder keeps its own copy of the steppers.
	steppers := []Stepper{FramePointer{}}
	u = mustNew(t, Options{Steppers: steppers})
	steppers[0] = &fakeStepper{typ: TypeCFI, script: []fakeStep{{ok: true, ip: 0x2000, move: 16}}}
	regs, s := chain(testBase, 0x1000, 0x3000, 0)
	var tr Trace
	u.Unwind(regs, s.snapshot(), &tr)
	if want := fpFrames(0x1000, 0x3000); !slices.Equal(tr.Frames, want) {
		t.Errorf("after the caller changed its Steppers slice: Frames = %v, want %v", tr.Frames, want)
	}
}

func TestUnwindAllocs(t *testing.T) {
	regs, s := chain(testBase, 0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 0)
	u := mustNew(t, Options{})
	for _, mem := range []Memory{s.snapshot(), wrapMemory{s.snapshot()}} {
		t.Run(fmt.Sprintf("%T", mem), func(t *testing.T) {
			tr := new(Trace)
			u.Unwind(regs, mem, tr) // sizes Frames
			allocs := testing.AllocsPerRun(100, func() { u.Unwind(regs, mem, tr) })
			if allocs != 0 {
				t.Errorf("Unwind with a reused Trace: %v allocs per walk, want 0", allocs)
			}
			if len(tr.Frames) != 5 || tr.End != EndOutermost {
				t.Errorf("walk = %v %v, want 5 frames, %v", tr.Frames, tr.End, EndOutermost)
			}
		})
	}
}

func TestSnapshotReadAt(t *testing.T) {
	data := make([]byte, 32)
	for i := range data {
		data[i] = byte(i + 1)
	}
	s := &Snapshot{Base: 0x1000, Data: data}
	tests := []struct {
		name string
		addr int64
		n    int
		want []byte // nil: the read must fail with ErrOutOfSnapshot
	}{
		{"negative", -8, 8, nil},
		{"min-int64", -1 << 63, 8, nil},
		{"zero", 0, 8, nil},
		{"before-base", 0x1000 - 8, 8, nil},
		{"straddles-base", 0x1000 - 4, 8, nil},
		{"at-base", 0x1000, 8, data[:8]},
		{"last-word", 0x1000 + 24, 8, data[24:]},
		{"whole", 0x1000, 32, data},
		{"longer-than-data", 0x1000, 33, nil},
		{"straddles-end", 0x1000 + 28, 8, nil},
		{"exact-end", 0x1000 + 32, 8, nil},
		{"exact-end/empty", 0x1000 + 32, 0, []byte{}},
		{"past-end/empty", 0x1000 + 33, 0, nil},
		{"far-past-end", 1<<63 - 1, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := make([]byte, tt.n)
			n, err := s.ReadAt(p, tt.addr)
			if tt.want == nil {
				if !errors.Is(err, ErrOutOfSnapshot) {
					t.Errorf("ReadAt(%d bytes at %#x) = %d, %v; want an error matching ErrOutOfSnapshot", tt.n, tt.addr, n, err)
				}
				if n != 0 {
					t.Errorf("ReadAt(%d bytes at %#x) read %d bytes on failure, want 0", tt.n, tt.addr, n)
				}
				return
			}
			if err != nil || n != len(tt.want) {
				t.Fatalf("ReadAt(%d bytes at %#x) = %d, %v; want %d, nil", tt.n, tt.addr, n, err, len(tt.want))
			}
			if !slices.Equal(p, tt.want) {
				t.Errorf("ReadAt(%d bytes at %#x) read %v, want %v", tt.n, tt.addr, p, tt.want)
			}
		})
	}
}

func TestTracePCs(t *testing.T) {
	tr := Trace{Frames: []Frame{{0x10, TypeRegs}, {0x20, TypeFramePointer}}}
	got := tr.PCs([]uint64{0x1})
	if want := []uint64{0x1, 0x10, 0x20}; !slices.Equal(got, want) {
		t.Errorf("PCs = %#x, want %#x", got, want)
	}
}

func TestEnumStrings(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{TypeFramePointer.String(), "fp"},
		{TypeRegs.String(), "regs"},
		{FrameType(200).String(), "FrameType(200)"},
		{EndSnapshot.String(), "end-of-snapshot"},
		{EndNoRegs.String(), "no-regs"},
		{EndReason(200).String(), "EndReason(200)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
}
