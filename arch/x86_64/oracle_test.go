//go:build linux && amd64

package x86_64

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// callerRegs returns its caller's ip (the return address), sp and bp; it is
// in regs_amd64.s.
func callerRegs() (ip, sp, bp uint64)

// ownStack is a walk's input taken from this goroutine's live stack, and
// what the runtime's own unwinder says about the same frames.
type ownStack struct {
	regs Regs
	snap Snapshot
	// pcs are runtime.Callers from the leaf: pcs[0] is in the leaf, pcs[i]
	// the return address into its i-th caller.
	pcs []uintptr
	// moved counts copies thrown away because the stack moved under them.
	moved int
}

// ownStackWindow is how many bytes above the leaf's sp are copied: far more
// than the frames from the leaf up to the goroutine's start need. A shorter
// read (the window runs into an unmapped page) is kept as it is.
const ownStackWindow = 64 << 10

//go:noinline
func ownStackOuter(o *ownStack) { ownStackMiddle(o) }

//go:noinline
func ownStackMiddle(o *ownStack) { ownStackLeaf(o) }

// ownStackLeaf takes its own registers and copies the stack above its sp
// into o.snap with process_vm_readv on this process. A goroutine stack moves
// when it grows or shrinks, which can happen at any call between taking the
// registers and the copy; the leaf then finds its sp changed and copies
// again.
//
//go:noinline
func ownStackLeaf(o *ownStack) {
	pid := os.Getpid()
	buf := make([]byte, ownStackWindow)
	local := []unix.Iovec{{Base: &buf[0], Len: uint64(len(buf))}}
	remote := []unix.RemoteIovec{{Len: len(buf)}}
	for range 20 {
		ip, sp, bp := callerRegs()
		remote[0].Base = uintptr(sp)
		n, err := unix.ProcessVMReadv(pid, local, remote, 0)
		if _, sp2, _ := callerRegs(); sp2 != sp {
			o.moved++
			continue
		}
		if err != nil {
			n = 0
		}
		o.regs = Regs{IP: ip, SP: sp, BP: bp}
		o.snap = Snapshot{Base: sp, Data: buf[:n]}
		break
	}
	o.pcs = make([]uintptr, 64)
	o.pcs = o.pcs[:runtime.Callers(1, o.pcs)]
}

func funcName(pc uint64) string {
	if f := runtime.FuncForPC(uintptr(pc)); f != nil {
		return f.Name()
	}
	return "?"
}

// retName names a return address by the function it returns into.
func retName(pc uint64) string { return funcName(pc - 1) }

// checkAgainstCallers compares a walk of o with o.pcs, from the leaf's
// caller up to the test's caller (testing.tRunner), and returns what
// differs.
func checkAgainstCallers(tr *Trace, o *ownStack, testName string) []string {
	var errs []string
	top := -1
	for i, pc := range o.pcs {
		if retName(uint64(pc)) == testName {
			top = i
			break
		}
	}
	if top < 3 {
		return []string{fmt.Sprintf("runtime.Callers = %s: %s not found 3 or more frames above the leaf", pcNames(o.pcs), testName)}
	}
	// One more: the return address into testing.tRunner. Above it the walk
	// and runtime.Callers part ways on purpose: Callers hides wrapper
	// frames such as testing.(*T).Run.gowrap1, which the walk reports.
	if top+1 < len(o.pcs) {
		top++
	}
	if len(tr.Frames) <= top {
		errs = append(errs, fmt.Sprintf("walk has %d frames (end %v), want at least %d", len(tr.Frames), tr.End, top+1))
	}
	for i := 1; i <= top && i < len(tr.Frames); i++ {
		got, want := tr.Frames[i], uint64(o.pcs[i])
		if got.PC != want || got.Type != TypeFramePointer {
			errs = append(errs, fmt.Sprintf("frame %d = %#x (%s) %v, want %#x (%s) fp", i, got.PC, retName(got.PC), got.Type, want, retName(want)))
		}
	}
	return errs
}

func pcNames(pcs []uintptr) string {
	var b strings.Builder
	for i, pc := range pcs {
		if i > 0 {
			b.WriteString(" ← ")
		}
		fmt.Fprintf(&b, "%#x %s", pc, retName(uint64(pc)))
	}
	return b.String()
}

func TestUnwindOwnStackMatchesRuntimeCallers(t *testing.T) {
	var o ownStack
	ownStackOuter(&o)
	if len(o.snap.Data) == 0 {
		t.Fatalf("could not copy the stack (moved %d times)", o.moved)
	}
	if o.moved > 0 {
		t.Logf("the stack moved %d times while being copied", o.moved)
	}
	const leaf = "github.com/unwindd/unwindd/arch/x86_64.ownStackLeaf"
	testName := "github.com/unwindd/unwindd/arch/x86_64.TestUnwindOwnStackMatchesRuntimeCallers"

	u := mustNew(t, Options{})
	var tr Trace
	u.Unwind(o.regs, &o.snap, &tr)
	if len(tr.Frames) == 0 || tr.Frames[0] != (Frame{PC: o.regs.IP, Type: TypeRegs}) {
		t.Fatalf("first frame of %v, want {%#x regs}", tr.Frames, o.regs.IP)
	}
	if got := funcName(tr.Frames[0].PC); got != leaf {
		t.Errorf("frame 0 %#x is in %s, want %s", tr.Frames[0].PC, got, leaf)
	}
	if got := funcName(uint64(o.pcs[0])); got != leaf {
		t.Errorf("runtime.Callers pc 0 %#x is in %s, want %s", o.pcs[0], got, leaf)
	}
	for _, e := range checkAgainstCallers(&tr, &o, testName) {
		t.Error(e)
	}
	if t.Failed() {
		var walk []uintptr
		for _, f := range tr.Frames {
			walk = append(walk, uintptr(f.PC))
		}
		t.Logf("walk (end %v): %s", tr.End, pcNames(walk))
		t.Logf("runtime.Callers: %s", pcNames(o.pcs))
	}

	// The comparison must be able to fail: a rule that reads the return
	// address one word too high walks the same memory to other values.
	wrong := mustNew(t, Options{Steppers: []Stepper{offByOneFP{}}})
	wrong.Unwind(o.regs, &o.snap, &tr)
	if len(checkAgainstCallers(&tr, &o, testName)) == 0 {
		t.Errorf("a wrong frame rule matched runtime.Callers too: the comparison proves nothing")
	}
}

// offByOneFP is the frame-pointer rule with the return address taken from
// CFA instead of CFA − 8: wrong on purpose.
type offByOneFP struct{}

func (offByOneFP) Type() FrameType { return TypeFramePointer }

func (offByOneFP) Step(st *State, r *Reader) (bool, EndReason) {
	if st.BP < st.SP {
		return false, EndInvalid
	}
	cfa := st.BP + 16
	ra, why := r.Uint64(cfa)
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
