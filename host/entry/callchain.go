package entry

import (
	"encoding/binary"
	"slices"

	"github.com/unwindd/unwindd/arch/x86_64"
)

// ChainBase is where a replayed callchain lives: a synthetic stack of return
// addresses at an address no x86-64 user stack can have (it is not canonical
// with 4- or 5-level paging), so that [CallchainStepper] can tell it from
// real memory by the stack pointer alone.
const ChainBase uint64 = 0x4000_0000_0000_0000

// chainLimit bounds the synthetic stack (far more than any callchain).
const chainLimit = ChainBase + 1<<32

// CallchainStepper replays a user callchain the kernel recorded (perf record
// -g): on the synthetic stack a [Tracker] builds for it (see [ChainBase]) one
// step pops the next recorded address, and the frame is marked
// [x86_64.TypeCallchain]. On any other stack it does not apply (EndNone), so
// the unwinder's other methods walk real memory as usual. A walk over a
// callchain ends with [x86_64.EndOutermost] when the kernel's chain was
// complete, [x86_64.EndSnapshot] when it was cut at the kernel's depth limit.
//
// The deferred engine has no way yet to take a precomputed trace for an
// entry; this stepper is how an entry whose only user stack is a recorded
// callchain goes through the engine's one walk, cache and callbacks
// unchanged.
type CallchainStepper struct{}

// Type reports [x86_64.TypeCallchain].
func (CallchainStepper) Type() x86_64.FrameType { return x86_64.TypeCallchain }

// Step pops the next recorded address off the synthetic stack.
func (CallchainStepper) Step(st *x86_64.State, r *x86_64.Reader) (bool, x86_64.EndReason) {
	if st.SP < ChainBase || st.SP >= chainLimit {
		return false, x86_64.EndNone
	}
	pc, why := r.Uint64(st.SP)
	if why != x86_64.EndNone {
		return false, why
	}
	st.IP, st.SP = pc, st.SP+8
	st.BP = chainLimit // any later method finds nothing here to read (EndSnapshot)
	return true, x86_64.EndNone
}

// NewUnwinder returns an unwinder for an engine whose entries may replay
// recorded callchains: [CallchainStepper] first, then opts.Steppers (frame
// pointers when nil).
func NewUnwinder(opts x86_64.Options) (*x86_64.Unwinder, error) {
	steppers := opts.Steppers
	if len(steppers) == 0 {
		steppers = []x86_64.Stepper{x86_64.FramePointer{}}
	}
	opts.Steppers = append([]x86_64.Stepper{CallchainStepper{}}, slices.Clone(steppers)...)
	return x86_64.New(opts)
}

// chainMemory lays out the user callchain pcs (leaf first) on a synthetic
// stack in buf: registers that start at pcs[0], and memory holding the
// callers, ended by a zero word (the outermost frame) unless truncated.
func chainMemory(pcs []uint64, truncated bool, buf []byte) (x86_64.Regs, []byte) {
	buf = buf[:0]
	for _, pc := range pcs[1:] {
		buf = binary.LittleEndian.AppendUint64(buf, pc)
	}
	if !truncated {
		buf = binary.LittleEndian.AppendUint64(buf, 0)
	}
	return x86_64.Regs{IP: pcs[0], SP: ChainBase, BP: chainLimit}, buf
}
