package x86_64

import "fmt"

// CFAKind says how a frame's canonical frame address is computed. The CFA is
// the value sp had in the caller just before its call instruction pushed the
// return address; stepping out of a frame sets the caller's sp to it.
type CFAKind uint8

// The CFA rules unwind tables on x86-64 use: SFrame's two (sp or fp plus an
// offset), and what gcc and glibc emit as DWARF CFI expressions.
const (
	CFAUndefined CFAKind = iota // no rule for this pc: the method does not apply
	CFASP                       // sp + CFAOffset
	CFABP                       // bp + CFAOffset
	CFADerefSP                  // the word at sp + CFAOffset (a signal frame: glibc's __restore_rt)
	CFADerefBP                  // the word at bp + CFAOffset (a stack-realigning function's DRAP: DW_OP_breg6 -8; DW_OP_deref)
	CFAPLT                      // sp + CFAOffset, plus 8 when (ip & 15) >= 11: a 16-byte .plt entry after its push
	CFAPLTIBT                   // sp + CFAOffset, plus 8 when (ip & 15) >= 9: the same in an IBT .plt entry (endbr64 first)
)

var cfaKindNames = [...]string{"undefined", "sp", "bp", "*sp", "*bp", "plt", "plt-ibt"}

func (k CFAKind) String() string {
	if int(k) < len(cfaKindNames) {
		return cfaKindNames[k]
	}
	return fmt.Sprintf("CFAKind(%d)", uint8(k))
}

// RegKind says where a frame keeps the caller's value of a register (the
// return address or bp).
type RegKind uint8

// Where a register of the caller is found.
const (
	RegSame      RegKind = iota // unchanged by this frame (bp not saved); never valid for the return address
	RegUndefined                // no value: for the return address, this is the outermost frame
	RegAtCFA                    // saved at CFA + offset
	RegAtSP                     // saved at sp + offset (DW_CFA_expression with DW_OP_breg7: signal frames)
	RegAtBP                     // saved at bp + offset (DW_CFA_expression with DW_OP_breg6: DRAP)
)

var regKindNames = [...]string{"same", "undefined", "cfa", "sp", "bp"}

func (k RegKind) String() string {
	if int(k) < len(regKindNames) {
		return regKindNames[k]
	}
	return fmt.Sprintf("RegKind(%d)", uint8(k))
}

// Rule is how to step out of a frame at one pc: where the CFA is, and where
// the caller's return address and bp are. It is what an unwind table
// (SFrame, DWARF CFI) says for that pc, reduced to the three registers the
// kernel's user unwinder tracks (ip, sp, bp). The zero Rule is undefined.
type Rule struct {
	CFA CFAKind
	RA  RegKind
	FP  RegKind
	// Signal marks a signal trampoline's frame: the caller's ip is the
	// interrupted instruction itself, not a return address, so the next
	// lookup uses it unchanged ([State.LookupPC]).
	Signal bool

	CFAOffset int32
	RAOffset  int32 // where RA says, relative to its base
	FPOffset  int32 // where FP says, relative to its base
}

func (r Rule) String() string {
	reg := func(k RegKind, off int32) string {
		switch k {
		case RegAtCFA:
			return fmt.Sprintf("c%+d", off)
		case RegAtSP:
			return fmt.Sprintf("sp%+d", off)
		case RegAtBP:
			return fmt.Sprintf("bp%+d", off)
		}
		return k.String()
	}
	s := fmt.Sprintf("cfa=%s%+d ra=%s fp=%s", r.CFA, r.CFAOffset, reg(r.RA, r.RAOffset), reg(r.FP, r.FPOffset))
	if r.Signal {
		s += " signal"
	}
	return s
}

// Step applies r to st, the state of the frame r was looked up for, as the
// kernel's unwind_user_next_common does: the caller's sp is the CFA, which
// must lie above sp and be 8-byte aligned; its ip is the saved return
// address (0, the outermost frame, when RA is [RegUndefined]); its bp is the
// saved one, or bp unchanged. It reads memory only through rd.
func (r Rule) Step(st *State, rd *Reader) (bool, EndReason) {
	var cfa uint64
	switch r.CFA {
	case CFASP:
		cfa = st.SP + uint64(int64(r.CFAOffset))
	case CFABP:
		cfa = st.BP + uint64(int64(r.CFAOffset))
	case CFAPLT, CFAPLTIBT:
		cfa = st.SP + uint64(int64(r.CFAOffset))
		if st.IP&15 >= 11 || r.CFA == CFAPLTIBT && st.IP&15 >= 9 {
			cfa += 8
		}
	case CFADerefSP, CFADerefBP:
		base := st.SP
		if r.CFA == CFADerefBP {
			base = st.BP
		}
		v, why := rd.Uint64(base + uint64(int64(r.CFAOffset)))
		if why != EndNone {
			return false, why
		}
		cfa = v
	default:
		return false, EndNone
	}
	if cfa <= st.SP || cfa&7 != 0 {
		return false, EndInvalid
	}
	var ra uint64
	switch r.RA {
	case RegUndefined:
		ra = 0
	case RegAtCFA, RegAtSP, RegAtBP:
		v, why := rd.Uint64(r.addr(r.RA, r.RAOffset, cfa, st))
		if why != EndNone {
			return false, why
		}
		ra = v
	default:
		return false, EndInvalid
	}
	bp := st.BP
	switch r.FP {
	case RegSame:
	case RegUndefined:
		bp = 0
	case RegAtCFA, RegAtSP, RegAtBP:
		v, why := rd.Uint64(r.addr(r.FP, r.FPOffset, cfa, st))
		if why != EndNone {
			return false, why
		}
		bp = v
	default:
		return false, EndInvalid
	}
	st.IP, st.SP, st.BP = ra, cfa, bp
	st.signal = r.Signal
	return true, EndNone
}

func (r Rule) addr(k RegKind, off int32, cfa uint64, st *State) uint64 {
	base := cfa
	switch k {
	case RegAtSP:
		base = st.SP
	case RegAtBP:
		base = st.BP
	}
	return base + uint64(int64(off))
}

// LookupPC is the address to look st's frame up by in an unwind table: IP
// itself for the first frame and for a frame a signal interrupted, IP−1 for
// every other frame, whose IP is a return address and may already lie past
// the end of the calling function (a call to a noreturn function).
func (st *State) LookupPC() uint64 {
	if st.First || st.Exact {
		return st.IP
	}
	return st.IP - 1
}

// MarkSignal is for a [Stepper] outside this package whose step went out of a
// signal trampoline: the caller's IP it produced is exact ([State.Exact]).
func (st *State) MarkSignal() { st.signal = true }

// Table gives the unwind [Rule] for a pc of a walked process. A table-driven
// [Stepper] ([TableStepper]) asks it for each frame.
type Table interface {
	// Rule returns the rule of method typ for pc (a virtual address of
	// the walked process, already adjusted by [State.LookupPC]), or ok
	// false when that method has no rule for pc.
	Rule(typ FrameType, pc uint64) (r Rule, ok bool)
}

// TableStepper is a table-driven unwind method ([TypeSFrame] or [TypeCFI]):
// it looks the frame up in the walk's [Table] ([Unwinder.UnwindTable]) and
// applies the [Rule] found. A walk without a table, or a pc the table has no
// rule for, makes it not apply (EndNone), so the next method is tried.
type TableStepper FrameType

// Type reports the method.
func (s TableStepper) Type() FrameType { return FrameType(s) }

// Step looks st up and steps.
func (s TableStepper) Step(st *State, rd *Reader) (bool, EndReason) {
	if st.Table == nil {
		return false, EndNone
	}
	r, ok := st.Table.Rule(FrameType(s), st.LookupPC())
	if !ok {
		return false, EndNone
	}
	return r.Step(st, rd)
}
