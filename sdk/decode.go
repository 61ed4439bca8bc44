package sdk

import (
	"context"
	"fmt"

	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// decoder is the plugin side of one Deliver stream: the interned tables the
// host has defined on this connection and the last batch seen. A new stream
// gets a new decoder, so a restarted host connection starts fresh.
type decoder struct {
	seq       uint64 // last batch delivered; 0 before the first
	mappings  map[uint64]*Mapping
	functions map[uint64]string
	locations map[uint64]Frame // Type unset: it belongs to the stack
	stacks    map[uint64]stackDef
	doing     string // the Tracer method being called, for panic reports
}

// stackDef is one interned stack, decoded once: every StackRef to it shares
// frames.
type stackDef struct {
	frames []Frame
	end    EndReason
}

func newDecoder() *decoder {
	return &decoder{
		mappings:  make(map[uint64]*Mapping),
		functions: make(map[uint64]string),
		locations: make(map[uint64]Frame),
		stacks:    make(map[uint64]stackDef),
	}
}

// protoErr is a protocol error in batch seq.
func protoErr(seq uint64, format string, args ...any) error {
	return fmt.Errorf("%w: batch %d: %s", ErrProtocol, seq, fmt.Sprintf(format, args...))
}

// define adds b's interned definitions to the tables, in dependency order
// (mappings and functions, then locations, then stacks), so a batch may use
// what it defines.
func (d *decoder) define(b *pluginpb.Batch) error {
	seq := b.GetSeq()
	for _, m := range b.GetMappings() {
		id := m.GetId()
		if id == 0 {
			return protoErr(seq, "mapping with id 0")
		}
		if _, dup := d.mappings[id]; dup {
			return protoErr(seq, "mapping id %d defined twice", id)
		}
		d.mappings[id] = &Mapping{
			Start:   m.GetStart(),
			Limit:   m.GetLimit(),
			Offset:  m.GetOffset(),
			Path:    m.GetPath(),
			BuildID: m.GetBuildId(),
		}
	}
	for _, f := range b.GetFunctions() {
		id := f.GetId()
		if id == 0 {
			return protoErr(seq, "function with id 0")
		}
		if _, dup := d.functions[id]; dup {
			return protoErr(seq, "function id %d defined twice", id)
		}
		d.functions[id] = f.GetName()
	}
	for _, l := range b.GetLocations() {
		id := l.GetId()
		if id == 0 {
			return protoErr(seq, "location with id 0")
		}
		if _, dup := d.locations[id]; dup {
			return protoErr(seq, "location id %d defined twice", id)
		}
		fr := Frame{Addr: l.GetAddress(), Offset: l.GetFunctionOffset()}
		if mid := l.GetMappingId(); mid != 0 {
			m, ok := d.mappings[mid]
			if !ok {
				return protoErr(seq, "location %d: unknown mapping id %d", id, mid)
			}
			fr.Mapping = m
		}
		if fid := l.GetFunctionId(); fid != 0 {
			name, ok := d.functions[fid]
			if !ok {
				return protoErr(seq, "location %d: unknown function id %d", id, fid)
			}
			fr.Function = name
		}
		d.locations[id] = fr
	}
	for _, s := range b.GetStacks() {
		id := s.GetId()
		if id == 0 {
			return protoErr(seq, "stack with id 0")
		}
		if _, dup := d.stacks[id]; dup {
			return protoErr(seq, "stack id %d defined twice", id)
		}
		locs, types := s.GetLocationIds(), s.GetFrameTypes()
		if len(locs) != len(types) {
			return protoErr(seq, "stack %d: %d locations but %d frame types", id, len(locs), len(types))
		}
		if e := s.GetEnd(); e <= 0 || e >= pluginpb.EndReason(numEndReasons) {
			return protoErr(seq, "stack %d: invalid end reason %d", id, e)
		}
		end := EndReason(s.GetEnd())
		frames := make([]Frame, len(locs))
		for i, lid := range locs {
			fr, ok := d.locations[lid]
			if !ok {
				return protoErr(seq, "stack %d: frame %d: unknown location id %d", id, i, lid)
			}
			fr.Type = FrameType(types[i])
			if !fr.Type.Valid() {
				return protoErr(seq, "stack %d: frame %d: invalid frame type %d", id, i, types[i])
			}
			frames[i] = fr
		}
		d.stacks[id] = stackDef{frames: frames, end: end}
	}
	return nil
}

// check validates b's items against the tables before any is delivered, so
// that a bad batch delivers nothing.
func (d *decoder) check(b *pluginpb.Batch) error {
	seq := b.GetSeq()
	for i, it := range b.GetItems() {
		switch x := it.GetItem().(type) {
		case *pluginpb.Item_Event:
			if x.Event == nil {
				return protoErr(seq, "item %d: empty event", i)
			}
		case *pluginpb.Item_Stack:
			ref := x.Stack
			if ref == nil {
				return protoErr(seq, "item %d: empty stack", i)
			}
			if _, ok := d.stacks[ref.GetStackId()]; !ok {
				return protoErr(seq, "item %d: unknown stack id %d", i, ref.GetStackId())
			}
			if ref.GetCookie() == 0 {
				return protoErr(seq, "item %d: stack %d with cookie 0", i, ref.GetStackId())
			}
		case *pluginpb.Item_Lost:
			if x.Lost == nil {
				return protoErr(seq, "item %d: empty lost notice", i)
			}
		default:
			return protoErr(seq, "item %d: no event, stack or lost notice", i)
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
	items := b.GetItems()
	for i := 0; i < len(items); {
		switch x := items[i].GetItem().(type) {
		case *pluginpb.Item_Event:
			j := i
			for j < len(items) && items[j].GetEvent() != nil {
				j++
			}
			pe := make([]*pluginpb.Event, j-i)
			for k := range pe {
				pe[k] = items[i+k].GetEvent()
			}
			events := eventsFromProto(pe)
			d.doing = "Tracer.Events"
			if err := t.Events(ctx, events); err != nil {
				return fmt.Errorf("sdk: batch %d: Tracer.Events (items %d–%d): %w", seq, i, j-1, err)
			}
			i = j
			continue
		case *pluginpb.Item_Stack:
			ref := x.Stack
			def := d.stacks[ref.GetStackId()]
			s := Stack{
				Cookie: ref.GetCookie(),
				PID:    ref.GetPid(),
				TID:    ref.GetTid(),
				Time:   ref.GetTimeNs(),
				Frames: def.frames,
				End:    def.end,
			}
			d.doing = "Tracer.Stack"
			if err := t.Stack(ctx, s); err != nil {
				return fmt.Errorf("sdk: batch %d: Tracer.Stack (item %d, cookie %#x): %w", seq, i, s.Cookie, err)
			}
		case *pluginpb.Item_Lost:
			l := Lost{Events: x.Lost.GetEvents(), Stacks: x.Lost.GetStacks(), Cookies: x.Lost.GetCookies()}
			d.doing = "Tracer.Lost"
			if err := t.Lost(ctx, l); err != nil {
				return fmt.Errorf("sdk: batch %d: Tracer.Lost (item %d): %w", seq, i, err)
			}
		}
		i++
	}
	d.doing = ""
	return nil
}

// eventsFromProto converts a run of events; their fields share one backing
// array, each event's capped so that an append cannot reach a neighbour's.
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
		Name:   e.GetName(),
		Time:   e.GetTimeNs(),
		CPU:    e.GetCpu(),
		PID:    e.GetPid(),
		TID:    e.GetTid(),
		Comm:   e.GetComm(),
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
			fd.Kind, fd.Str = FieldString, v.Str
		case *pluginpb.Field_Raw:
			fd.Kind, fd.Bytes = FieldBytes, v.Raw
		}
		dst = append(dst, fd)
	}
	return dst
}
