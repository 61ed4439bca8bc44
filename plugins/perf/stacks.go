package main

import (
	"bytes"

	"github.com/google/pprof/profile"

	"github.com/unwindd/unwindd/sdk"
)

// stackInfo is one distinct stack and what each output derived from it
// once: the frames are formatted, named and located on first use and the
// result is reused for every later sample with the same stack.
type stackInfo struct {
	frames []sdk.Frame // the first stack seen with this content (the SDK lets it be retained)
	hash   uint64
	next   *stackInfo // the next stack of the same hash

	// Filled by the outputs on first use.
	script    []byte              // perf script frame lines
	scriptSet bool                // script is set (it may be empty)
	folded    string              // ";root;…;leaf"
	foldedSet bool                // folded is set
	locs      []*profile.Location // pprof locations, leaf first
	locsSet   bool                // locs and pprofID are set
	pprofID   uint32              // the number of locs' sequence (profileBuilder.locStacks)
	foldedID  uint32              // the number of folded (foldedBuilder.ids)
}

// stackTable interns stacks by content, so that the outputs aggregate and
// format per distinct stack rather than per sample. Lookup hashes the
// frames' addresses; a hit whose frames are the very slice seen before (the
// SDK hands out one backing array per interned stack within a connection)
// needs no further comparison, any other hit is compared frame by frame.
//
// A stackTable is not safe for concurrent use. Its memory grows with
// distinct stacks.
type stackTable struct {
	byHash map[uint64]*stackInfo
	empty  stackInfo // the stack of no frames (and a sample without one)
}

func newStackTable() *stackTable {
	return &stackTable{byHash: make(map[uint64]*stackInfo, 256)}
}

// lookup returns the stackInfo of frames, making it on first use.
func (t *stackTable) lookup(frames []sdk.Frame) *stackInfo {
	if len(frames) == 0 {
		return &t.empty
	}
	h := hashFrames(frames)
	head := t.byHash[h]
	for s := head; s != nil; s = s.next {
		if sameFrames(s.frames, frames) {
			return s
		}
	}
	s := &stackInfo{frames: frames, hash: h, next: head}
	t.byHash[h] = s
	return s
}

// lookupStack is lookup of st's frames; st nil is the empty stack.
func (t *stackTable) lookupStack(st *sdk.Stack) *stackInfo {
	if st == nil {
		return &t.empty
	}
	return t.lookup(st.Frames)
}

// hashFrames mixes the frames' addresses and their count (FNV-1a over
// 64-bit words, then a finalizer).
func hashFrames(frames []sdk.Frame) uint64 {
	h := uint64(14695981039346656037) ^ uint64(len(frames))
	for i := range frames {
		h ^= frames[i].Addr
		h *= 1099511628211
		h ^= h >> 29
	}
	h ^= h >> 32
	h *= 0xd6e8feb86659fd93
	h ^= h >> 32
	return h
}

// sameFrames reports whether a and b have the same content for every
// output: address, function and offset, and mapping.
func sameFrames(a, b []sdk.Frame) bool {
	if len(a) != len(b) {
		return false
	}
	if &a[0] == &b[0] {
		return true // the same interned stack
	}
	for i := range a {
		x, y := &a[i], &b[i]
		if x.Addr != y.Addr || x.Offset != y.Offset || x.Function != y.Function || !sameMapping(x.Mapping, y.Mapping) {
			return false
		}
	}
	return true
}

func sameMapping(a, b *sdk.Mapping) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	return a.Start == b.Start && a.Limit == b.Limit && a.Offset == b.Offset && a.Path == b.Path && bytes.Equal(a.BuildID, b.BuildID)
}
