// Package sdktest helps test unwindd plugins: [Encoder] turns sdk values
// into the host's batches, so that a test can drive a plugin's [sdk.Server]
// (or a whole plugin process) through the SDK's real decoder without
// knowing the wire format; [StartProcess] starts a plugin binary as the host
// does (go-plugin, mTLS) with a Host service that records its logs.
package sdktest

import (
	"encoding/binary"
	"fmt"

	"github.com/unwindd/unwindd/sdk"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// Encoder encodes the batches of one connection (one Deliver stream) as the
// host does: numbered 1, 2, 3…, with strings, event contexts, mappings,
// locations and stacks interned for the rest of the connection. Frames with
// the same Mapping pointer share a mapping. The zero value is not usable;
// call NewEncoder.
type Encoder struct {
	seq      uint64
	strs     map[string]uint64
	contexts map[context]uint64
	mappings map[*sdk.Mapping]uint64
	locs     map[loc]uint64
	stacks   map[string]uint64
}

// context is what events of one task on one cpu share.
type context struct {
	kind          sdk.EventKind
	name, comm    string
	cpu, pid, tid int32
	period        uint64
}

type loc struct {
	addr, off   uint64
	mapping, fn uint64
}

// NewEncoder returns the Encoder of a new connection.
func NewEncoder() *Encoder {
	return &Encoder{
		strs: map[string]uint64{}, contexts: map[context]uint64{}, mappings: map[*sdk.Mapping]uint64{},
		locs: map[loc]uint64{}, stacks: map[string]uint64{},
	}
}

type column []byte

func (c *column) u(v uint64) { *c = binary.AppendUvarint(*c, v) }
func (c *column) s(v int64)  { *c = binary.AppendVarint(*c, v) }

// Batch encodes items (sdk.Event, sdk.Stack or sdk.Lost values, in order)
// as the connection's next batch, events with their fields. It panics on an
// item of another type.
func (e *Encoder) Batch(items ...any) *pluginpb.Batch {
	e.seq++
	b := &pluginpb.Batch{Seq: e.seq}
	var (
		ctxKinds                                               []byte
		ctxNames, ctxCPUs, ctxPIDs, ctxTIDs, ctxComms, ctxPers column
		locAddrs, locMaps, locFns, locOffs                     column
		sdLens, sdDeltas                                       column
		sdTypes, sdEnds                                        []byte
		evCtx, evTimes, evCookies                              column
		refIDs, refCookies, refPIDs, refTIDs, refTimes         column
		nLoc, nEv, nRef                                        int
		evTime, evCookie, refTime, refCookie, prevLoc          uint64
		fieldCounts                                            column
		fields                                                 []*pluginpb.Field
		anyFields                                              bool
	)
	run := func(kind pluginpb.ItemKind) {
		if n := len(b.Runs); n > 0 && pluginpb.ItemKind(b.Runs[n-1]&3) == kind {
			b.Runs[n-1] += 1 << 2
			return
		}
		b.Runs = append(b.Runs, 1<<2|uint32(kind))
	}
	str := func(s string) uint64 {
		if s == "" {
			return 0
		}
		id, ok := e.strs[s]
		if !ok {
			b.Strings = append(b.Strings, []byte(s))
			id = uint64(len(e.strs) + 1)
			e.strs[s] = id
		}
		return id
	}
	for _, it := range items {
		switch x := it.(type) {
		case sdk.Event:
			fieldCounts.u(uint64(len(x.Fields)))
			for _, f := range x.Fields {
				fields, anyFields = append(fields, FieldPB(f)), true
			}
			k := context{x.Kind, x.Name, x.Comm, x.CPU, x.PID, x.TID, x.Period}
			id, ok := e.contexts[k]
			if !ok {
				id = uint64(len(e.contexts) + 1)
				e.contexts[k] = id
				ctxKinds = append(ctxKinds, byte(x.Kind))
				ctxNames.u(str(x.Name))
				ctxCPUs.s(int64(x.CPU))
				ctxPIDs.s(int64(x.PID))
				ctxTIDs.s(int64(x.TID))
				ctxComms.u(str(x.Comm))
				ctxPers.u(x.Period)
			}
			evCtx.u(id)
			evTimes.s(int64(x.Time - evTime))
			evCookies.s(int64(x.Cookie - evCookie))
			evTime, evCookie = x.Time, x.Cookie
			nEv++
			run(pluginpb.ItemKind_ITEM_KIND_EVENT)
		case sdk.Stack:
			var ids []uint64
			key := fmt.Sprint(x.End, ":")
			for _, f := range x.Frames {
				l := loc{addr: f.Addr, off: f.Offset, fn: str(f.Function)}
				if f.Mapping != nil {
					id, ok := e.mappings[f.Mapping]
					if !ok {
						id = uint64(len(e.mappings) + 1)
						e.mappings[f.Mapping] = id
						b.Mappings = append(b.Mappings, &pluginpb.Mapping{
							Start: f.Mapping.Start, Limit: f.Mapping.Limit, Offset: f.Mapping.Offset,
							Path: uint32(str(f.Mapping.Path)), BuildId: f.Mapping.BuildID,
						})
					}
					l.mapping = id
				}
				id, ok := e.locs[l]
				if !ok {
					id = uint64(len(e.locs) + 1)
					e.locs[l] = id
					locAddrs.u(l.addr)
					locMaps.u(l.mapping)
					locFns.u(l.fn)
					locOffs.u(l.off)
					nLoc++
				}
				ids = append(ids, id)
				key += fmt.Sprintf("%d/%d,", id, f.Type)
			}
			sid, ok := e.stacks[key]
			if !ok {
				sid = uint64(len(e.stacks) + 1)
				e.stacks[key] = sid
				sdLens.u(uint64(len(ids)))
				for i, id := range ids {
					sdDeltas.s(int64(id - prevLoc))
					prevLoc = id
					sdTypes = append(sdTypes, byte(x.Frames[i].Type))
				}
				sdEnds = append(sdEnds, byte(x.End))
			}
			refIDs.u(sid)
			refCookies.s(int64(x.Cookie - refCookie))
			refPIDs.s(int64(x.PID))
			refTIDs.s(int64(x.TID))
			refTimes.s(int64(x.Time - refTime))
			refCookie, refTime = x.Cookie, x.Time
			nRef++
			run(pluginpb.ItemKind_ITEM_KIND_STACK)
		case sdk.Lost:
			b.Lost = append(b.Lost, &pluginpb.Lost{Events: x.Events, Stacks: x.Stacks, Cookies: x.Cookies})
			run(pluginpb.ItemKind_ITEM_KIND_LOST)
		default:
			panic(fmt.Sprintf("sdktest: Encoder: item of type %T", it))
		}
	}
	// Every optional column is sent in full.
	if len(ctxKinds) > 0 {
		b.Contexts = &pluginpb.EventContexts{Kinds: ctxKinds, Names: ctxNames, Cpus: ctxCPUs, Pids: ctxPIDs, Tids: ctxTIDs, Comms: ctxComms, Periods: ctxPers}
	}
	if nLoc > 0 {
		b.Locations = &pluginpb.Locations{Count: uint32(nLoc), Addresses: locAddrs, MappingIds: locMaps, Functions: locFns, FunctionOffsets: locOffs}
	}
	if len(sdEnds) > 0 {
		b.Stacks = &pluginpb.StackDefs{Lengths: sdLens, LocationDeltas: sdDeltas, FrameTypes: sdTypes, Ends: sdEnds}
	}
	if nEv > 0 {
		b.Events = &pluginpb.Events{Count: uint32(nEv), Contexts: evCtx, TimeDeltas: evTimes, CookieDeltas: evCookies}
		if anyFields {
			b.Events.FieldCounts, b.Events.Fields = fieldCounts, fields
		}
	}
	if nRef > 0 {
		b.Refs = &pluginpb.StackRefs{Count: uint32(nRef), StackIds: refIDs, CookieDeltas: refCookies, Pids: refPIDs, Tids: refTIDs, TimeDeltas: refTimes}
	}
	return b
}

// FieldPB is f on the wire.
func FieldPB(f sdk.Field) *pluginpb.Field {
	pf := &pluginpb.Field{Name: f.Name}
	switch f.Kind {
	case sdk.FieldInt:
		pf.Value = &pluginpb.Field_Int{Int: f.Int}
	case sdk.FieldUint:
		pf.Value = &pluginpb.Field_Uint{Uint: f.Uint}
	case sdk.FieldString:
		pf.Value = &pluginpb.Field_Str{Str: []byte(f.Str)}
	case sdk.FieldBytes:
		pf.Value = &pluginpb.Field_Raw{Raw: f.Bytes}
	}
	return pf
}

// EventPB is ev as a Decide request carries it.
func EventPB(ev sdk.Event) *pluginpb.Event {
	pe := &pluginpb.Event{Kind: pluginpb.EventKind(ev.Kind), Name: []byte(ev.Name), TimeNs: ev.Time, Cpu: ev.CPU,
		Pid: ev.PID, Tid: ev.TID, Comm: []byte(ev.Comm), Cookie: ev.Cookie, Period: ev.Period}
	for _, f := range ev.Fields {
		pe.Fields = append(pe.Fields, FieldPB(f))
	}
	return pe
}

// Batches encodes each list of items as the next batch of one new
// connection, for [Deliver].
func Batches(items ...[]any) []*pluginpb.Batch {
	e := NewEncoder()
	out := make([]*pluginpb.Batch, len(items))
	for i, it := range items {
		out[i] = e.Batch(it...)
	}
	return out
}
