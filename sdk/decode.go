package sdk

import (
	"context"
	"fmt"

	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// decoder is the plugin side of one Deliver stream: the interned tables the
// host has defined on this connection and the last batch seen. A new stream
// gets a new decoder, so a restarted host connection starts fresh. Ids are
// implicit (the n-th definition has id n), so the tables are slices indexed
// by id, with a placeholder at 0.
type decoder struct {
	seq       uint64 // last batch delivered; 0 before the first
	strings   []string
	contexts  []Event // the shared part of events: Kind, Name, CPU, PID, TID, Comm, Period
	mappings  []*Mapping
	locations []location
	stacks    []stackDef
	doing     string // the Tracer method being called, for panic reports

	// Scratch for the columns of the batch at hand, reused from batch to
	// batch (nothing delivered points into them).
	u1, u2, u3, u4 []uint64
	s1, s2, s3     []int64
	i1, i2, i3     []int32
	// The batch's items, decoded by check for batch.
	evCtx, evCount     []uint64
	evTime, evCookie   []int64
	refIDs             []uint64
	refCookie, refTime []int64
	refPID, refTID     []int32

	// reuse: the Tracer is an EventCopier, so evBuf and fieldBuf, the
	// events and fields handed to it, are reused from batch to batch.
	reuse    bool
	evBuf    []Event
	fieldBuf []Field
}

// location is one interned location. It holds ids rather than the Frame's
// pointer and string, so that the table is not scanned by the GC nor
// written with write barriers; defineStacks makes the Frames.
type location struct {
	addr, offset      uint64
	mapping, function uint32 // ids; validated when defined
}

// stackDef is one interned stack, decoded once: every StackRef to it shares
// frames.
type stackDef struct {
	frames []Frame
	end    EndReason
}

func newDecoder() *decoder {
	d := &decoder{}
	d.reset()
	return d
}

// reset forgets every definition. What was delivered keeps its values: the
// tables hold copies and slice headers, and only their slots are reused.
func (d *decoder) reset() {
	d.strings = append(d.strings[:0], "")
	d.contexts = append(d.contexts[:0], Event{})
	d.mappings = append(d.mappings[:0], nil)
	d.locations = append(d.locations[:0], location{})
	d.stacks = append(d.stacks[:0], stackDef{})
}

// protoErr is a protocol error in batch seq.
func protoErr(seq uint64, format string, args ...any) error {
	return fmt.Errorf("%w: batch %d: %s", ErrProtocol, seq, fmt.Sprintf(format, args...))
}

// at returns col[i], or 0 for an empty (all-zero) optional column.
func at[T any](col []T, i int) T {
	if len(col) == 0 {
		var z T
		return z
	}
	return col[i]
}

// define adds b's interned definitions to the tables, in dependency order
// (strings, mappings, locations, stacks), so a batch may use what it
// defines.
func (d *decoder) define(b *pluginpb.Batch) error {
	seq := b.GetSeq()
	if b.GetResetTables() {
		d.reset()
	}
	for _, s := range b.GetStrings() {
		d.strings = append(d.strings, string(s))
	}
	if err := d.defineContexts(seq, b.GetContexts()); err != nil {
		return err
	}
	for _, m := range b.GetMappings() {
		p := m.GetPath()
		if int(p) >= len(d.strings) {
			return protoErr(seq, "mapping %d: unknown path string id %d", len(d.mappings), p)
		}
		d.mappings = append(d.mappings, &Mapping{
			Start:   m.GetStart(),
			Limit:   m.GetLimit(),
			Offset:  m.GetOffset(),
			Path:    d.strings[p],
			BuildID: m.GetBuildId(),
		})
	}
	if err := d.defineLocations(seq, b.GetLocations()); err != nil {
		return err
	}
	return d.defineStacks(seq, b.GetStacks())
}

func (d *decoder) defineContexts(seq uint64, c *pluginpb.EventContexts) error {
	kinds := c.GetKinds()
	n := len(kinds)
	var ok [6]bool
	d.u1, ok[0] = uvarints(d.u1, c.GetNames(), n, true)
	d.i1, ok[1] = int32s(d.i1, c.GetCpus(), n)
	d.i2, ok[2] = int32s(d.i2, c.GetPids(), n)
	d.i3, ok[3] = int32s(d.i3, c.GetTids(), n)
	d.u2, ok[4] = uvarints(d.u2, c.GetComms(), n, true)
	d.u3, ok[5] = uvarints(d.u3, c.GetPeriods(), n, true)
	for i, what := range []string{"names", "cpus", "pids", "tids", "comms", "periods"} {
		if !ok[i] {
			return protoErr(seq, "event contexts: column %s does not hold %d values", what, n)
		}
	}
	names, cpus, pids, tids, comms, periods := d.u1, d.i1, d.i2, d.i3, d.u2, d.u3
	nstr := uint64(len(d.strings))
	for i, k := range kinds {
		id := len(d.contexts)
		name, comm := at(names, i), at(comms, i)
		if name >= nstr {
			return protoErr(seq, "event context %d: unknown name string id %d", id, name)
		}
		if comm >= nstr {
			return protoErr(seq, "event context %d: unknown comm string id %d", id, comm)
		}
		kind := KindUnknown
		if k > 0 && k <= byte(pluginpb.EventKind_EVENT_KIND_SYSCALL_EXIT) {
			kind = EventKind(k)
		}
		d.contexts = append(d.contexts, Event{
			Kind:   kind,
			Name:   d.strings[name],
			CPU:    at(cpus, i),
			PID:    at(pids, i),
			TID:    at(tids, i),
			Comm:   d.strings[comm],
			Period: at(periods, i),
		})
	}
	return nil
}

func (d *decoder) defineLocations(seq uint64, l *pluginpb.Locations) error {
	n := int(l.GetCount())
	var ok [4]bool
	d.u1, ok[0] = uvarints(d.u1, l.GetAddresses(), n, false)
	d.u2, ok[1] = uvarints(d.u2, l.GetMappingIds(), n, true)
	d.u3, ok[2] = uvarints(d.u3, l.GetFunctions(), n, true)
	d.u4, ok[3] = uvarints(d.u4, l.GetFunctionOffsets(), n, true)
	for i, what := range []string{"addresses", "mapping ids", "functions", "function offsets"} {
		if !ok[i] {
			return protoErr(seq, "locations: column %s does not hold %d values", what, n)
		}
	}
	addrs, mids, fids, offs := d.u1, d.u2, d.u3, d.u4
	for i, a := range addrs {
		id := len(d.locations)
		mid, fid := at(mids, i), at(fids, i)
		if mid >= uint64(len(d.mappings)) {
			return protoErr(seq, "location %d: unknown mapping id %d", id, mid)
		}
		if fid >= uint64(len(d.strings)) {
			return protoErr(seq, "location %d: unknown function string id %d", id, fid)
		}
		d.locations = append(d.locations, location{addr: a, offset: at(offs, i), mapping: uint32(mid), function: uint32(fid)})
	}
	return nil
}

func (d *decoder) defineStacks(seq uint64, s *pluginpb.StackDefs) error {
	types, ends := s.GetFrameTypes(), s.GetEnds()
	var ok bool
	if d.u1, ok = uvarints(d.u1, s.GetLengths(), len(ends), false); !ok {
		return protoErr(seq, "stacks: lengths do not hold %d values, one per end reason", len(ends))
	}
	lengths := d.u1
	total := uint64(0)
	for _, n := range lengths {
		total = min(total+min(n, 1<<32), 1<<40) // neither can wrap around
	}
	if total != uint64(len(types)) {
		return protoErr(seq, "stacks: the lengths do not add up to the %d frame types", len(types))
	}
	if d.s1, ok = svarints(d.s1, s.GetLocationDeltas(), len(types), false); !ok {
		return protoErr(seq, "stacks: location deltas do not hold %d values, one per frame", len(types))
	}
	deltas := d.s1
	// One array holds the frames of every stack of the batch; each stack's
	// slice of it is capped, so an append cannot reach a neighbour's.
	frames := make([]Frame, total)
	var loc int64
	k := 0
	for j, n := range lengths {
		id := len(d.stacks)
		if e := EndReason(ends[j]); !e.Valid() {
			return protoErr(seq, "stack %d: invalid end reason %d", id, ends[j])
		}
		start := k
		for i := range int(n) {
			loc += deltas[k]
			if loc <= 0 || loc >= int64(len(d.locations)) {
				return protoErr(seq, "stack %d: frame %d: unknown location id %d", id, i, loc)
			}
			l := &d.locations[loc]
			ft := FrameType(types[k])
			if !ft.Valid() {
				return protoErr(seq, "stack %d: frame %d: invalid frame type %d", id, i, types[k])
			}
			// Field by field: a composite literal of this size is built
			// aside and copied in with typedmemmove, whose bulk write
			// barrier (while the GC runs, which this allocation makes
			// frequent) cost as much as the rest of the loop.
			f := &frames[k]
			f.Addr, f.Offset, f.Type = l.addr, l.offset, ft
			f.Mapping = d.mappings[l.mapping]
			f.Function = d.strings[l.function]
			k++
		}
		def := stackDef{end: EndReason(ends[j])}
		if k > start {
			def.frames = frames[start:k:k]
		}
		d.stacks = append(d.stacks, def)
	}
	return nil
}

// check validates b's items against the tables before any is delivered, so
// that a bad batch delivers nothing. It decodes the items' columns for
// batch.
func (d *decoder) check(b *pluginpb.Batch) error {
	seq := b.GetSeq()
	ev, refs := b.GetEvents(), b.GetRefs()
	nev, nref, nlost := int(ev.GetCount()), int(refs.GetCount()), len(b.GetLost())
	var runs [4]int
	for i, r := range b.GetRuns() {
		k, n := r&3, int(r>>2)
		if k == 0 || n == 0 {
			return protoErr(seq, "run %d: kind %d, count %d", i, k, n)
		}
		runs[k] += n
	}
	if runs[pluginpb.ItemKind_ITEM_KIND_EVENT] != nev || runs[pluginpb.ItemKind_ITEM_KIND_STACK] != nref || runs[pluginpb.ItemKind_ITEM_KIND_LOST] != nlost {
		return protoErr(seq, "runs cover %d events, %d stacks, %d lost notices; the batch has %d, %d, %d",
			runs[1], runs[2], runs[3], nev, nref, nlost)
	}
	var ok [9]bool
	d.evCtx, ok[0] = uvarints(d.evCtx, ev.GetContexts(), nev, false)
	d.evTime, ok[1] = svarints(d.evTime, ev.GetTimeDeltas(), nev, true)
	d.evCookie, ok[2] = svarints(d.evCookie, ev.GetCookieDeltas(), nev, true)
	d.evCount, ok[3] = uvarints(d.evCount, ev.GetFieldCounts(), nev, true)
	d.refIDs, ok[4] = uvarints(d.refIDs, refs.GetStackIds(), nref, false)
	d.refCookie, ok[5] = svarints(d.refCookie, refs.GetCookieDeltas(), nref, false)
	d.refPID, ok[6] = int32s(d.refPID, refs.GetPids(), nref)
	d.refTID, ok[7] = int32s(d.refTID, refs.GetTids(), nref)
	d.refTime, ok[8] = svarints(d.refTime, refs.GetTimeDeltas(), nref, true)
	for i, what := range []string{
		"event contexts", "event times", "event cookies", "event field counts",
		"stack ids", "stack cookies", "stack pids", "stack tids", "stack times",
	} {
		if !ok[i] {
			n := nev
			if i >= 4 {
				n = nref
			}
			return protoErr(seq, "column %s does not hold %d values", what, n)
		}
	}
	for i, id := range d.evCtx {
		if id == 0 || id >= uint64(len(d.contexts)) {
			return protoErr(seq, "event %d: unknown context id %d", i, id)
		}
	}
	nf := uint64(0)
	for _, c := range d.evCount {
		nf += min(c, 1<<32) // a count past any batch cannot wrap the sum around
	}
	if nf != uint64(len(ev.GetFields())) {
		return protoErr(seq, "events: %d fields by their counts, %d sent", nf, len(ev.GetFields()))
	}
	var cookie uint64
	for i, id := range d.refIDs {
		cookie += uint64(d.refCookie[i])
		if id == 0 || id >= uint64(len(d.stacks)) {
			return protoErr(seq, "stack ref %d: unknown stack id %d", i, id)
		}
		if cookie == 0 {
			return protoErr(seq, "stack ref %d: stack %d with cookie 0", i, id)
		}
	}
	for i, l := range b.GetLost() {
		if l == nil {
			return protoErr(seq, "lost notice %d: empty", i)
		}
	}
	return nil
}

// batch checks and delivers one batch to t, in order: each run of
// consecutive events is one Events call, each stack one Stack call, each
// lost notice one Lost call. A protocol error delivers nothing; an error
// from t stops the batch.
func (d *decoder) batch(ctx context.Context, b *pluginpb.Batch, t Tracer) error {
	seq := b.GetSeq()
	if seq <= d.seq {
		return fmt.Errorf("%w: batch %d after batch %d: sequence numbers must increase", ErrProtocol, seq, d.seq)
	}
	if err := d.define(b); err != nil {
		return err
	}
	if err := d.check(b); err != nil {
		return err
	}
	d.seq = seq
	events := d.events(b.GetEvents().GetFields())
	lost := b.GetLost()
	var ie, ir, il, item int
	var refTime, refCookie uint64
	for _, r := range b.GetRuns() {
		n := int(r >> 2)
		switch pluginpb.ItemKind(r & 3) {
		case pluginpb.ItemKind_ITEM_KIND_EVENT:
			d.doing = "Tracer.Events"
			if err := t.Events(ctx, events[ie:ie+n:ie+n]); err != nil {
				return fmt.Errorf("sdk: batch %d: Tracer.Events (items %d–%d): %w", seq, item, item+n-1, err)
			}
			ie += n
		case pluginpb.ItemKind_ITEM_KIND_STACK:
			d.doing = "Tracer.Stack"
			for k := range n {
				refTime += uint64(at(d.refTime, ir))
				refCookie += uint64(d.refCookie[ir])
				def := d.stacks[d.refIDs[ir]]
				s := Stack{
					Cookie: refCookie,
					PID:    at(d.refPID, ir),
					TID:    at(d.refTID, ir),
					Time:   refTime,
					Frames: def.frames,
					End:    def.end,
				}
				ir++
				if err := t.Stack(ctx, s); err != nil {
					return fmt.Errorf("sdk: batch %d: Tracer.Stack (item %d, cookie %#x): %w", seq, item+k, s.Cookie, err)
				}
			}
		case pluginpb.ItemKind_ITEM_KIND_LOST:
			d.doing = "Tracer.Lost"
			for k := range n {
				pl := lost[il]
				il++
				l := Lost{Events: pl.GetEvents(), Stacks: pl.GetStacks(), Cookies: pl.GetCookies()}
				if err := t.Lost(ctx, l); err != nil {
					return fmt.Errorf("sdk: batch %d: Tracer.Lost (item %d): %w", seq, item+k, err)
				}
			}
		}
		item += n
	}
	d.doing = ""
	return nil
}

// events decodes a batch's events (checked) into one array; each run is
// handed over as a capped slice of it, and their fields share one backing
// array, each event's capped, so that an append cannot reach a neighbour's.
func (d *decoder) events(pf []*pluginpb.Field) []Event {
	if len(d.evCtx) == 0 {
		return nil
	}
	var fields []Field
	var events []Event
	if d.reuse {
		// Every field of every event is set below, Fields included, so
		// nothing of the previous batch's shows through.
		if len(pf) > 0 {
			d.fieldBuf = appendFields(d.fieldBuf[:0], pf)
			fields = d.fieldBuf
		}
		if cap(d.evBuf) < len(d.evCtx) {
			d.evBuf = make([]Event, len(d.evCtx))
		}
		events = d.evBuf[:len(d.evCtx)]
	} else {
		if len(pf) > 0 {
			fields = appendFields(make([]Field, 0, len(pf)), pf)
		}
		events = make([]Event, len(d.evCtx))
	}
	var t, cookie uint64
	nf := 0
	for i, c := range d.evCtx {
		t += uint64(at(d.evTime, i))
		cookie += uint64(at(d.evCookie, i))
		// Field by field, as defineStacks writes frames: copying the
		// whole context is a typedmemmove with a bulk write barrier.
		// A context's Time, Cookie and Fields are zero.
		e, x := &events[i], &d.contexts[c]
		e.Kind, e.CPU, e.PID, e.TID, e.Period = x.Kind, x.CPU, x.PID, x.TID, x.Period
		e.Name, e.Comm = x.Name, x.Comm
		e.Time, e.Cookie = t, cookie
		if n := int(at(d.evCount, i)); n > 0 {
			e.Fields = fields[nf : nf+n : nf+n]
			nf += n
		} else {
			e.Fields = nil
		}
	}
	return events
}

// eventsFromProto converts the events of a DecideEntry; their fields share
// one backing array, each event's capped.
func eventsFromProto(pe []*pluginpb.Event) []Event {
	n := 0
	for _, e := range pe {
		n += len(e.GetFields())
	}
	fields := make([]Field, 0, n)
	events := make([]Event, len(pe))
	for i, e := range pe {
		start := len(fields)
		fields = appendFields(fields, e.GetFields())
		events[i] = eventFromProto(e, fields[start:len(fields):len(fields)])
	}
	return events
}

func eventFromProto(e *pluginpb.Event, fields []Field) Event {
	if len(fields) == 0 {
		fields = nil
	}
	kind := KindUnknown
	if k := e.GetKind(); k > 0 && k <= pluginpb.EventKind_EVENT_KIND_SYSCALL_EXIT {
		kind = EventKind(k)
	}
	return Event{
		Kind:   kind,
		Name:   string(e.GetName()),
		Time:   e.GetTimeNs(),
		CPU:    e.GetCpu(),
		PID:    e.GetPid(),
		TID:    e.GetTid(),
		Comm:   string(e.GetComm()),
		Cookie: e.GetCookie(),
		Period: e.GetPeriod(),
		Fields: fields,
	}
}

func appendFields(dst []Field, fs []*pluginpb.Field) []Field {
	for _, f := range fs {
		fd := Field{Name: f.GetName()}
		switch v := f.GetValue().(type) {
		case *pluginpb.Field_Int:
			fd.Kind, fd.Int = FieldInt, v.Int
		case *pluginpb.Field_Uint:
			fd.Kind, fd.Uint = FieldUint, v.Uint
		case *pluginpb.Field_Str:
			fd.Kind, fd.Str = FieldString, string(v.Str)
		case *pluginpb.Field_Raw:
			fd.Kind, fd.Bytes = FieldBytes, v.Raw
		}
		dst = append(dst, fd)
	}
	return dst
}
