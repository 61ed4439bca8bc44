package x86_64

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// DefaultMaxDepth is the most frames a walk records unless [Options] say
// otherwise: the kernel's deferred-unwind cache holds 511 return addresses (a
// 4 KiB page less its header; SEMANTICS R15).
const DefaultMaxDepth = 511

// Regs are the user registers a walk starts from (U1).
type Regs struct {
	IP uint64 // instruction pointer: the first frame
	SP uint64 // stack pointer
	BP uint64 // frame pointer (rbp)
}

// Memory reads user memory at virtual addresses, as an io.ReaderAt whose
// offsets are addresses. A read that returns fewer bytes than asked is a
// failed read. An error that matches [ErrOutOfSnapshot] ends the walk with
// [EndSnapshot]; any other error with [EndUnreadable].
type Memory interface {
	ReadAt(p []byte, addr int64) (int, error)
}

// ErrOutOfSnapshot is returned by a [Memory] when the address lies outside the
// bytes it holds (a stack snapshot ends where the kernel stopped copying).
var ErrOutOfSnapshot = errors.New("x86_64: address outside the stack snapshot")

// FrameType says which unwind method produced a frame (U5).
type FrameType uint8

// The unwind methods, in the order SEMANTICS U3 tries them.
const (
	TypeNone         FrameType = iota // not produced by a step (unset)
	TypeSFrame                        // .sframe section
	TypeCFI                           // DWARF CFI from .eh_frame
	TypeFramePointer                  // rbp chain
	TypeRegs                          // the first frame: the live ip (U1)
	TypeCallchain                     // recorded by the kernel (perf -g), not unwound here
)

var frameTypeNames = [...]string{"none", "sframe", "cfi", "fp", "regs", "callchain"}

func (t FrameType) String() string {
	if int(t) < len(frameTypeNames) {
		return frameTypeNames[t]
	}
	return fmt.Sprintf("FrameType(%d)", uint8(t))
}

// EndReason says why a walk stopped (U5).
type EndReason uint8

// The reasons a walk ends.
const (
	EndNone       EndReason = iota // the walk has not run, or a step succeeded
	EndOutermost                   // a zero return address: the outermost frame was reached
	EndUnreadable                  // memory a step needed could not be read
	EndSnapshot                    // a step needed memory beyond the stack snapshot
	EndInvalid                     // the frame broke a rule: bp < sp, CFA not above sp, misaligned CFA
	EndDepth                       // MaxDepth frames were recorded
	EndNoRegs                      // no registers to start from (ip 0)
)

var endReasonNames = [...]string{"none", "outermost", "unreadable", "end-of-snapshot", "invalid-frame", "depth-limit", "no-regs"}

func (r EndReason) String() string {
	if int(r) < len(endReasonNames) {
		return endReasonNames[r]
	}
	return fmt.Sprintf("EndReason(%d)", uint8(r))
}

// Frame is one entry of a trace.
type Frame struct {
	PC   uint64    // return address (the first frame: the ip itself)
	Type FrameType // the method that produced it
}

// Trace is the result of a walk: its frames, leaf first, and why it ended.
// Reuse one Trace across walks: Unwind resets it and allocates only when
// Frames has less capacity than MaxDepth.
type Trace struct {
	Frames []Frame
	End    EndReason

	// The walk's state lives here rather than on Unwind's stack: Unwind
	// hands pointers to it to Steppers through an interface, which would
	// move stack copies to the heap on every walk.
	st      State
	rd      Reader
	scratch [16]byte // read buffer; lives here so that reads do not allocate
}

// Reset empties the trace, keeping its capacity.
func (t *Trace) Reset() {
	t.Frames = t.Frames[:0]
	t.End = EndNone
}

// PCs appends the frames' addresses to dst and returns it.
func (t *Trace) PCs(dst []uint64) []uint64 {
	for _, f := range t.Frames {
		dst = append(dst, f.PC)
	}
	return dst
}

// State is the register state between steps: what a [Stepper] reads and
// updates. IP is the pc of the frame being stepped out of.
type State struct {
	IP, SP, BP uint64
	// First is true for the first (leaf) frame, whose registers are the
	// live ones rather than recovered ones.
	First bool
	// Exact is true when IP is the address of an instruction that was
	// interrupted rather than a return address: the first frame, and the
	// frame a signal interrupted (after a step out of a signal trampoline,
	// see [State.MarkSignal]).
	Exact bool
	// Table is the walk's unwind table ([Unwinder.UnwindTable]), nil when
	// the walk has none.
	Table Table

	signal bool // set by a step out of a signal trampoline
}

// Reader reads words of user memory for a [Stepper]; it keeps a failed read
// apart from a zero word.
type Reader struct {
	mem     Memory
	snap    *Snapshot // fast path when mem is a *Snapshot
	scratch *[16]byte
}

// Uint64 reads the little-endian word at addr. On failure it returns the
// reason the walk would end with: [EndSnapshot] or [EndUnreadable].
func (r *Reader) Uint64(addr uint64) (uint64, EndReason) {
	if s := r.snap; s != nil {
		off := addr - s.Base
		if addr < s.Base || off > uint64(len(s.Data)) || uint64(len(s.Data))-off < 8 {
			return 0, EndSnapshot
		}
		return binary.LittleEndian.Uint64(s.Data[off:]), EndNone
	}
	if addr > 1<<63-8 {
		return 0, EndUnreadable
	}
	b := r.scratch[:8]
	n, err := r.mem.ReadAt(b, int64(addr))
	if n == len(b) {
		return binary.LittleEndian.Uint64(b), EndNone
	}
	if errors.Is(err, ErrOutOfSnapshot) {
		return 0, EndSnapshot
	}
	return 0, EndUnreadable
}

// Stepper is one unwind method (U3). Step recovers the caller's registers
// from st and memory. It returns ok when it stepped (st now holds the caller's
// IP, SP and BP); otherwise why is the reason the walk would end, or
// [EndNone] when the method does not apply to st.IP at all (no unwind info
// for that pc), so that the next method is tried without blaming this one.
// Type names the method; [New] reads it once.
type Stepper interface {
	Type() FrameType
	Step(st *State, r *Reader) (ok bool, why EndReason)
}

// Options configure an [Unwinder]. The zero value means the defaults.
type Options struct {
	// MaxDepth caps the frames of a trace; 0 means [DefaultMaxDepth].
	MaxDepth int
	// Steppers are the unwind methods in priority order; nil means frame
	// pointers alone.
	Steppers []Stepper
}

// Unwinder walks user stacks. It is immutable and safe for concurrent use.
type Unwinder struct {
	max      int
	steppers []Stepper
	types    []FrameType // steppers[i].Type(), read once by New
}

// New returns an Unwinder for opts.
func New(opts Options) (*Unwinder, error) {
	if opts.MaxDepth < 0 {
		return nil, fmt.Errorf("x86_64: MaxDepth %d must be >= 0", opts.MaxDepth)
	}
	// Copy the steppers: the caller may reuse its slice, and u is immutable.
	u := &Unwinder{max: opts.MaxDepth, steppers: slices.Clone(opts.Steppers)}
	if u.max == 0 {
		u.max = DefaultMaxDepth
	}
	if len(u.steppers) == 0 {
		u.steppers = []Stepper{FramePointer{}}
	}
	u.types = make([]FrameType, len(u.steppers))
	for i, s := range u.steppers {
		if s == nil {
			return nil, fmt.Errorf("x86_64: Steppers[%d] is nil", i)
		}
		u.types[i] = s.Type()
	}
	return u, nil
}

// MaxDepth reports the most frames a trace from u holds.
func (u *Unwinder) MaxDepth() int { return u.max }

// Unwind walks the user stack from regs through mem into t, which it resets
// first. It records regs.IP, then one frame per successful step, until a step
// fails, a zero return address is found, or MaxDepth frames are recorded
// (U1–U5). t.End always says why it stopped.
func (u *Unwinder) Unwind(regs Regs, mem Memory, t *Trace) {
	u.UnwindTable(regs, mem, nil, t)
}

// UnwindTable is [Unwinder.Unwind] with the unwind table of the walked
// process, which table-driven methods ([TableStepper]) look frames up in;
// tab may be nil.
func (u *Unwinder) UnwindTable(regs Regs, mem Memory, tab Table, t *Trace) {
	t.Reset()
	if cap(t.Frames) < u.max {
		t.Frames = make([]Frame, 0, u.max)
	}
	if regs.IP == 0 {
		t.End = EndNoRegs
		return
	}
	r := &t.rd
	*r = Reader{mem: mem, scratch: &t.scratch}
	if s, ok := mem.(*Snapshot); ok {
		r.snap = s
	}
	st := &t.st
	*st = State{IP: regs.IP, SP: regs.SP, BP: regs.BP, First: true, Exact: true, Table: tab}
	frames := t.Frames[:0]
	frames = append(frames, Frame{PC: st.IP, Type: TypeRegs})
	for {
		if len(frames) >= u.max {
			t.End = EndDepth
			break
		}
		sp := st.SP
		why := EndInvalid
		var typ FrameType
		st.signal = false
		for i, s := range u.steppers {
			var ok bool
			var w EndReason
			if _, isFP := s.(FramePointer); isFP {
				ok, w = FramePointer{}.Step(st, r) // a direct call for the default method
			} else {
				ok, w = s.Step(st, r)
			}
			if ok {
				typ = u.types[i]
				break
			}
			if w != EndNone {
				why = w
			}
		}
		if typ == TypeNone {
			t.End = why
			break
		}
		// U4: every step strictly increases sp, whatever the method said.
		if st.SP <= sp {
			t.End = EndInvalid
			break
		}
		if st.IP == 0 {
			t.End = EndOutermost
			break
		}
		st.First = false
		st.Exact = st.signal
		frames = append(frames, Frame{PC: st.IP, Type: typ})
	}
	t.Frames = frames
	t.rd = Reader{} // keep no reference to mem after the walk
	st.Table = nil
}

// FramePointer is the x86-64 frame-pointer rule, as the kernel's
// unwind_user_next_fp (U2): CFA = bp + 16, the return address at CFA − 8, the
// caller's bp at CFA − 16.
type FramePointer struct{}

// Type reports [TypeFramePointer].
func (FramePointer) Type() FrameType { return TypeFramePointer }

// Step applies the frame rule to st.
func (FramePointer) Step(st *State, r *Reader) (bool, EndReason) {
	if st.BP < st.SP {
		return false, EndInvalid
	}
	cfa := st.BP + 16
	if cfa <= st.SP { // wrapped: the stack must move up
		return false, EndInvalid
	}
	if cfa&7 != 0 {
		return false, EndInvalid
	}
	if s := r.snap; s != nil && cfa > st.BP {
		// Both words with one bounds check: the record [bp, bp+16), which
		// does not wrap, lies in the snapshot, or one of the two reads would
		// fail with EndSnapshot.
		off, n := st.BP-s.Base, uint64(len(s.Data))
		if st.BP < s.Base || off > n || n-off < 16 {
			return false, EndSnapshot
		}
		rec := s.Data[off : off+16]
		st.IP, st.SP, st.BP = binary.LittleEndian.Uint64(rec[8:]), cfa, binary.LittleEndian.Uint64(rec)
		return true, EndNone
	}
	ra, why := r.Uint64(cfa - 8)
	if why != EndNone {
		return false, why
	}
	bp, why := r.Uint64(cfa - 16)
	if why != EndNone {
		return false, why
	}
	st.IP, st.SP, st.BP = ra, cfa, bp
	return true, EndNone
}
