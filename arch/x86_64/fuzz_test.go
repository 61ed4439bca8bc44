package x86_64

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"
)

// modelWalk is U1–U4 written out plainly from SEMANTICS.md, as the oracle
// FuzzUnwind holds Unwind to. generic selects the end reasons of a Memory
// that is not a *Snapshot: an address beyond int64 cannot be asked for and is
// unreadable.
func modelWalk(regs Regs, snap *Snapshot, maxDepth int, generic bool) ([]Frame, EndReason) {
	if regs.IP == 0 {
		return []Frame{}, EndNoRegs
	}
	read := func(addr uint64) (uint64, EndReason) {
		if generic && addr > 1<<63-8 {
			return 0, EndUnreadable
		}
		n := uint64(len(snap.Data))
		if addr < snap.Base || n < 8 || addr-snap.Base > n-8 {
			return 0, EndSnapshot
		}
		return binary.LittleEndian.Uint64(snap.Data[addr-snap.Base:]), EndNone
	}
	frames := []Frame{{PC: regs.IP, Type: TypeRegs}}
	sp, bp := regs.SP, regs.BP
	for len(frames) < maxDepth {
		if bp < sp {
			return frames, EndInvalid
		}
		cfa := bp + 16
		if cfa <= sp || cfa%8 != 0 {
			return frames, EndInvalid
		}
		ra, why := read(cfa - 8)
		if why != EndNone {
			return frames, why
		}
		savedBP, why := read(cfa - 16)
		if why != EndNone {
			return frames, why
		}
		if ra == 0 {
			return frames, EndOutermost
		}
		frames = append(frames, Frame{PC: ra, Type: TypeFramePointer})
		sp, bp = cfa, savedBP
	}
	return frames, EndDepth
}

// spRecorder wraps the frame-pointer rule and checks, for every step, that a
// successful one moves sp strictly up from every sp before it and that a
// failed one leaves the state alone.
type spRecorder struct {
	sps  []uint64 // sp after each successful step
	errs []string
}

func (r *spRecorder) Type() FrameType { return TypeFramePointer }

func (r *spRecorder) Step(st *State, rd *Reader) (bool, EndReason) {
	before := *st
	ok, why := FramePointer{}.Step(st, rd)
	switch {
	case ok && why != EndNone:
		r.errs = append(r.errs, fmt.Sprintf("step from %+v: ok with reason %v", before, why))
	case ok && st.SP <= before.SP:
		r.errs = append(r.errs, fmt.Sprintf("step from %+v: sp %#x did not move up", before, st.SP))
	case ok && len(r.sps) > 0 && st.SP <= r.sps[len(r.sps)-1]:
		r.errs = append(r.errs, fmt.Sprintf("step from %+v: sp %#x not above the previous %#x", before, st.SP, r.sps[len(r.sps)-1]))
	case !ok && *st != before:
		r.errs = append(r.errs, fmt.Sprintf("failed step from %+v changed the state to %+v", before, *st))
	case !ok && why == EndNone:
		r.errs = append(r.errs, fmt.Sprintf("frame-pointer step from %+v failed without a reason", before))
	}
	if ok {
		r.sps = append(r.sps, st.SP)
	}
	return ok, why
}

// fuzzMaxDepth bounds the fuzzed MaxDepth: a walk never records more than
// len(mem)/16+1 frames, so larger caps only cost a bigger Frames allocation
// per input.
const fuzzMaxDepth = 1024

func FuzzUnwind(f *testing.F) {
	regs, s := chain(testBase, 0x40_1000, 0x40_2000, 0x40_3000, 0x40_4000, 0)
	f.Add(regs.IP, regs.SP, regs.BP, s.base, s.data, uint16(0))
	f.Add(regs.IP, regs.SP, regs.BP, s.base, s.data, uint16(2))
	f.Add(regs.IP, regs.SP, regs.BP, s.base, s.data[:len(s.data)-4], uint16(0))
	f.Add(regs.IP, regs.SP+8, regs.BP+1, s.base, s.data, uint16(0))
	f.Add(uint64(0), regs.SP, regs.BP, s.base, s.data, uint16(0))
	// A frame that points at itself, and garbage.
	self := make([]byte, 32)
	binary.LittleEndian.PutUint64(self[0:], testBase)
	binary.LittleEndian.PutUint64(self[8:], 0x40_1000)
	f.Add(uint64(0x40_1000), uint64(testBase), uint64(testBase), uint64(testBase), self, uint16(0))
	f.Add(uint64(0xdeadbeef), uint64(0x1234), uint64(0x5678), uint64(0x1000), []byte("\xff\x00\x13\x37 garbage, not a stack \x80\x7f"), uint16(7))
	// Edge values: wrapping CFAs, snapshots at the ends of the address space.
	f.Add(uint64(1), uint64(0), uint64(1<<64-8), uint64(0), make([]byte, 64), uint16(1))
	f.Add(uint64(1), uint64(1<<64-32), uint64(1<<64-24), uint64(1<<64-32), make([]byte, 32), uint16(0))
	f.Add(uint64(1), uint64(1<<63-32), uint64(1<<63-24), uint64(1<<63-32), make([]byte, 64), uint16(0))
	f.Add(uint64(1<<64-1), uint64(1<<64-1), uint64(1<<64-1), uint64(1<<64-1), []byte{}, uint16(1<<16-1))
	// A frame record that wraps around the top of the address space, in a
	// snapshot that wraps too: the return address would be at address 0.
	wrap := make([]byte, 16)
	binary.LittleEndian.PutUint64(wrap[8:], 0x40_1000)
	f.Add(uint64(1), uint64(0), uint64(1<<64-8), uint64(1<<64-8), wrap, uint16(0))

	f.Fuzz(func(t *testing.T, ip, sp, bp, base uint64, mem []byte, maxDepth uint16) {
		depth := int(maxDepth) % fuzzMaxDepth
		regs := Regs{IP: ip, SP: sp, BP: bp}
		snap := &Snapshot{Base: base, Data: mem}
		rec := &spRecorder{}
		u, err := New(Options{MaxDepth: depth, Steppers: []Stepper{rec}})
		if err != nil {
			t.Fatalf("New(MaxDepth %d): %v", depth, err)
		}
		maxD := u.MaxDepth()
		var tr Trace
		u.Unwind(regs, snap, &tr)

		if tr.End == EndNone {
			t.Fatalf("End = %v, want a reason", tr.End)
		}
		if len(tr.Frames) > maxD {
			t.Fatalf("len(Frames) = %d > MaxDepth %d", len(tr.Frames), maxD)
		}
		if (tr.End == EndDepth) != (len(tr.Frames) == maxD) {
			t.Errorf("End = %v with %d frames of MaxDepth %d", tr.End, len(tr.Frames), maxD)
		}
		if tr.End == EndNoRegs {
			if ip != 0 || len(tr.Frames) != 0 {
				t.Errorf("End = %v with ip %#x and %d frames, want ip 0 and none", tr.End, ip, len(tr.Frames))
			}
		} else {
			if len(tr.Frames) < 1 {
				t.Fatalf("End = %v with no frames", tr.End)
			}
			if got, want := tr.Frames[0], (Frame{PC: ip, Type: TypeRegs}); got != want {
				t.Errorf("Frames[0] = %v, want %v", got, want)
			}
		}
		for i, fr := range tr.Frames[min(1, len(tr.Frames)):] {
			if fr.PC == 0 || fr.Type != TypeFramePointer {
				t.Errorf("Frames[%d] = %v, want a non-zero pc of type %v", i+1, fr, TypeFramePointer)
			}
		}
		for _, e := range rec.errs {
			t.Error(e)
		}
		// Every recorded frame past the first is one successful step; a walk
		// that ended at a zero return address took one more.
		wantSteps := max(len(tr.Frames)-1, 0)
		if tr.End == EndOutermost {
			wantSteps++
		}
		if len(rec.sps) != wantSteps {
			t.Errorf("%d successful steps for %d frames ending %v, want %d", len(rec.sps), len(tr.Frames), tr.End, wantSteps)
		}

		wantFrames, wantEnd := modelWalk(regs, snap, maxD, false)
		if !slices.Equal(tr.Frames, wantFrames) || tr.End != wantEnd {
			t.Errorf("Unwind = %v %v, model = %v %v", tr.Frames, tr.End, wantFrames, wantEnd)
		}

		// The generic Memory path, the default steppers and a reused Trace
		// agree with the model too.
		fp, err := New(Options{MaxDepth: depth})
		if err != nil {
			t.Fatalf("New(MaxDepth %d): %v", depth, err)
		}
		fp.Unwind(regs, wrapMemory{snap}, &tr)
		wantFrames, wantEnd = modelWalk(regs, snap, maxD, true)
		if !slices.Equal(tr.Frames, wantFrames) || tr.End != wantEnd {
			t.Errorf("Unwind on a generic Memory = %v %v, model = %v %v", tr.Frames, tr.End, wantFrames, wantEnd)
		}
	})
}
