package main

import (
	"encoding/binary"
	"encoding/hex"

	"github.com/google/pprof/profile"

	"github.com/unwindd/unwindd/sdk"
)

// profileBuilder aggregates samples into a pprof profile: one Mapping per
// distinct mapped file, one Location per (mapping, address), one Function
// per name, and one Sample per distinct (stack, comm, pid, tid) with the
// values summed.
//
// Addresses: a stack's first frame is the interrupted instruction and is
// kept as is; every other frame's address is a return address, and is
// stored minus one so that it lies inside the call instruction. That is
// what the pprof format asks for ("a non-leaf address may be in the middle
// of a call instruction"), what Go's runtime/pprof writes (the PC of
// runtime.Frame is the call's) and what pprof's own legacy converters do;
// pprof's local symbolizer and its -lines and -addresses views then name
// the line of the call rather than the one after it.
type profileBuilder struct {
	p         *profile.Profile
	period    int64 // ns per sample when an event has no period
	mappings  map[mappingKey]*profile.Mapping
	byPtr     map[*sdk.Mapping]*profile.Mapping // the SDK shares Mapping values between frames
	locations map[locationKey]*profile.Location
	functions map[string]*profile.Function
	samples   map[sampleKey]*profile.Sample
	stacks    *stackTable       // shared with the other outputs by the tracer
	locStacks map[string]uint32 // distinct location sequences, numbered from 1
	firstTime uint64            // event clock of the first sample, 0 before it
	lastTime  uint64

	key []byte // scratch
}

// sampleKey is what makes a pprof Sample distinct: its locations (as the
// number of their sequence in locStacks, so that two stacks with the same
// locations are one Sample), task and comm.
type sampleKey struct {
	locs     uint32
	pid, tid int32
	comm     string
}

type mappingKey struct {
	start, limit, offset uint64
	path, buildID        string
}

type locationKey struct {
	mapping uint64 // Mapping.ID; 0 for none
	addr    uint64
}

func newProfileBuilder(hz uint32) *profileBuilder {
	period := int64(1e9) / int64(hz)
	return &profileBuilder{
		p: &profile.Profile{
			SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
			PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
			Period:     period,
		},
		period:    period,
		mappings:  make(map[mappingKey]*profile.Mapping),
		byPtr:     make(map[*sdk.Mapping]*profile.Mapping),
		locations: make(map[locationKey]*profile.Location),
		functions: make(map[string]*profile.Function),
		samples:   make(map[sampleKey]*profile.Sample),
		stacks:    newStackTable(),
		locStacks: make(map[string]uint32),
	}
}

// add counts samples with the stack st (nil: a sample without a stack,
// which gets no locations).
func (b *profileBuilder) add(samples []sample, st *sdk.Stack) {
	b.addStack(samples, b.stacks.lookupStack(st))
}

// addStack counts samples with the interned stack si. Its locations are
// found once per distinct stack; a sample costs one map lookup.
func (b *profileBuilder) addStack(samples []sample, si *stackInfo) {
	if !si.locsSet {
		si.locs = make([]*profile.Location, len(si.frames))
		key := b.key[:0]
		for i := range si.frames {
			si.locs[i] = b.location(&si.frames[i], i == 0)
			key = binary.AppendUvarint(key, si.locs[i].ID)
		}
		id := b.locStacks[string(key)]
		if id == 0 {
			id = uint32(len(b.locStacks) + 1)
			b.locStacks[string(key)] = id
		}
		si.pprofID, si.locsSet = id, true
		b.key = key
	}
	for i := range samples {
		s := &samples[i]
		if b.firstTime == 0 || s.Time < b.firstTime {
			b.firstTime = s.Time
		}
		b.lastTime = max(b.lastTime, s.Time)
		period := int64(s.Period)
		if period <= 0 {
			period = b.period
		}
		k := sampleKey{locs: si.pprofID, pid: s.PID, tid: s.TID, comm: s.Comm}
		if ps := b.samples[k]; ps != nil {
			ps.Value[0]++
			ps.Value[1] += period
		} else {
			ps = &profile.Sample{
				Location: si.locs,
				Value:    []int64{1, period},
				Label:    map[string][]string{"comm": {s.Comm}},
				NumLabel: map[string][]int64{"pid": {int64(s.PID)}, "tid": {int64(s.TID)}},
			}
			b.samples[k] = ps
			b.p.Sample = append(b.p.Sample, ps)
		}
	}
}

// location returns the Location of f, making it (and its Mapping and
// Function) on first use.
func (b *profileBuilder) location(f *sdk.Frame, leaf bool) *profile.Location {
	addr := f.Addr
	if !leaf && addr > 0 {
		addr-- // a return address: point into the call instruction
	}
	var m *profile.Mapping
	if f.Mapping != nil {
		m = b.mapping(f.Mapping)
	}
	k := locationKey{addr: addr}
	if m != nil {
		k.mapping = m.ID
	}
	if l := b.locations[k]; l != nil {
		return l
	}
	l := &profile.Location{ID: uint64(len(b.p.Location) + 1), Mapping: m, Address: addr}
	if f.Function != "" {
		fn := b.functions[f.Function]
		if fn == nil {
			fn = &profile.Function{ID: uint64(len(b.p.Function) + 1), Name: f.Function, SystemName: f.Function}
			if m != nil {
				fn.Filename = m.File // no source file is known; the object is the best hint
			}
			b.functions[f.Function] = fn
			b.p.Function = append(b.p.Function, fn)
		}
		l.Line = []profile.Line{{Function: fn}}
	}
	b.locations[k] = l
	b.p.Location = append(b.p.Location, l)
	return l
}

func (b *profileBuilder) mapping(sm *sdk.Mapping) *profile.Mapping {
	if m := b.byPtr[sm]; m != nil {
		return m
	}
	k := mappingKey{start: sm.Start, limit: sm.Limit, offset: sm.Offset, path: sm.Path, buildID: hex.EncodeToString(sm.BuildID)}
	m := b.mappings[k]
	if m == nil {
		m = &profile.Mapping{
			ID:      uint64(len(b.p.Mapping) + 1),
			Start:   sm.Start,
			Limit:   sm.Limit,
			Offset:  sm.Offset,
			File:    sm.Path,
			BuildID: k.buildID,
		}
		b.mappings[k] = m
		b.p.Mapping = append(b.p.Mapping, m)
	}
	b.byPtr[sm] = m
	return m
}

// profile finishes the profile: times, comments, and HasFunctions on the
// mappings whose every location was symbolized (so pprof does not try to
// symbolize them again). It is checked with CheckValid. now is the wall
// clock time of the end of the profile, in ns since the epoch.
func (b *profileBuilder) profile(now int64, comments []string) (*profile.Profile, error) {
	p := b.p
	if b.firstTime != 0 {
		p.DurationNanos = int64(b.lastTime - b.firstTime)
	}
	p.TimeNanos = now - p.DurationNanos
	p.Comments = comments
	unsymbolized := make(map[*profile.Mapping]bool)
	for _, l := range p.Location {
		if l.Mapping != nil && len(l.Line) == 0 {
			unsymbolized[l.Mapping] = true
		}
	}
	for _, m := range p.Mapping {
		m.HasFunctions = !unsymbolized[m]
	}
	if err := p.CheckValid(); err != nil {
		return nil, err
	}
	return p, nil
}
