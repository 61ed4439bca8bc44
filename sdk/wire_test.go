package sdk

import (
	"encoding/binary"

	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// WireBatch builds a pluginpb.Batch for tests in the protocol's logical
// terms: definitions get their implicit ids in the order they are added,
// items are added in order. Build encodes the columns and drops all-zero
// optional ones, as the host does. It is exported for the sdk_test package
// (test builds only).
type WireBatch struct {
	b *pluginpb.Batch

	ctxKinds                  []byte
	ctxNames, ctxComms        []uint64
	ctxCPUs, ctxPIDs, ctxTIDs []int64
	ctxPeriods                []uint64
	ctxIDs                    map[wireContext]uint64
	ctxBase                   uint64

	locAddrs, locMaps, locFuncs, locOffs []uint64

	sdLengths []uint64
	sdDeltas  []int64
	sdTypes   []byte
	sdEnds    []byte
	prevLoc   uint64

	evCtx, evCounts              []uint64
	evTimes, evCookies           []int64
	noCounts                     bool
	fields                       []*pluginpb.Field
	evTime, evCookie             uint64
	refIDs                       []uint64
	refCookies, refPIDs, refTIDs []int64
	refTimes                     []int64
	stackTime, stackCookie       uint64
}

// WireEvent is one event of a WireBatch; Name and Comm are string ids.
type WireEvent struct {
	Kind         pluginpb.EventKind
	Name, Comm   uint64
	Time         uint64
	CPU, PID     int32
	TID          int32
	Cookie       uint64
	Period       uint64
	Fields       []*pluginpb.Field
	NoFieldCount bool // leave the field counts out of the batch (a malformed batch)
}

type wireContext struct {
	kind          pluginpb.EventKind
	name, comm    uint64
	cpu, pid, tid int32
	period        uint64
}

// WireLoc is one location definition; Function is a string id.
type WireLoc struct {
	Addr     uint64
	Mapping  uint64
	Function uint64
	Offset   uint64
}

func NewWireBatch(seq uint64) *WireBatch { return &WireBatch{b: &pluginpb.Batch{Seq: seq}} }

func (w *WireBatch) ResetTables() *WireBatch { w.b.ResetTables = true; return w }

// ContextsDefined says how many event contexts the connection has defined
// before this batch: the batch's own get the ids after them.
func (w *WireBatch) ContextsDefined(n uint64) *WireBatch { w.ctxBase = n; return w }

func (w *WireBatch) Strings(s ...string) *WireBatch {
	for _, x := range s {
		w.b.Strings = append(w.b.Strings, []byte(x))
	}
	return w
}

func (w *WireBatch) Mapping(m *pluginpb.Mapping) *WireBatch {
	w.b.Mappings = append(w.b.Mappings, m)
	return w
}

func (w *WireBatch) Locs(ls ...WireLoc) *WireBatch {
	for _, l := range ls {
		w.locAddrs = append(w.locAddrs, l.Addr)
		w.locMaps = append(w.locMaps, l.Mapping)
		w.locFuncs = append(w.locFuncs, l.Function)
		w.locOffs = append(w.locOffs, l.Offset)
	}
	return w
}

// StackDef defines a stack of locs (ids), one frame type each.
func (w *WireBatch) StackDef(end byte, types []byte, locs ...uint64) *WireBatch {
	w.sdLengths = append(w.sdLengths, uint64(len(locs)))
	for _, l := range locs {
		w.sdDeltas = append(w.sdDeltas, int64(l-w.prevLoc))
		w.prevLoc = l
	}
	w.sdTypes = append(w.sdTypes, types...)
	w.sdEnds = append(w.sdEnds, end)
	return w
}

func (w *WireBatch) run(k pluginpb.ItemKind) {
	if n := len(w.b.Runs); n > 0 && pluginpb.ItemKind(w.b.Runs[n-1]&3) == k {
		w.b.Runs[n-1] += 4
		return
	}
	w.b.Runs = append(w.b.Runs, 1<<2|uint32(k))
}

// Event adds an event, defining its context if this batch has not yet.
func (w *WireBatch) Event(e WireEvent) *WireBatch {
	key := wireContext{e.Kind, e.Name, e.Comm, e.CPU, e.PID, e.TID, e.Period}
	id, ok := w.ctxIDs[key]
	if !ok {
		if w.ctxIDs == nil {
			w.ctxIDs = map[wireContext]uint64{}
		}
		id = w.ctxBase + uint64(len(w.ctxIDs)) + 1
		w.ctxIDs[key] = id
		w.ctxKinds = append(w.ctxKinds, byte(e.Kind))
		w.ctxNames = append(w.ctxNames, e.Name)
		w.ctxCPUs = append(w.ctxCPUs, int64(e.CPU))
		w.ctxPIDs = append(w.ctxPIDs, int64(e.PID))
		w.ctxTIDs = append(w.ctxTIDs, int64(e.TID))
		w.ctxComms = append(w.ctxComms, e.Comm)
		w.ctxPeriods = append(w.ctxPeriods, e.Period)
	}
	w.evCtx = append(w.evCtx, id)
	w.evTimes = append(w.evTimes, int64(e.Time-w.evTime))
	w.evTime = e.Time
	w.evCookies = append(w.evCookies, int64(e.Cookie-w.evCookie))
	w.evCookie = e.Cookie
	w.evCounts = append(w.evCounts, uint64(len(e.Fields)))
	w.noCounts = w.noCounts || e.NoFieldCount
	w.fields = append(w.fields, e.Fields...)
	w.run(pluginpb.ItemKind_ITEM_KIND_EVENT)
	return w
}

func (w *WireBatch) Stack(cookie, id uint64, pid, tid int32, time uint64) *WireBatch {
	w.refIDs = append(w.refIDs, id)
	w.refCookies = append(w.refCookies, int64(cookie-w.stackCookie))
	w.stackCookie = cookie
	w.refPIDs = append(w.refPIDs, int64(pid))
	w.refTIDs = append(w.refTIDs, int64(tid))
	w.refTimes = append(w.refTimes, int64(time-w.stackTime))
	w.stackTime = time
	w.run(pluginpb.ItemKind_ITEM_KIND_STACK)
	return w
}

func (w *WireBatch) Lost(l *pluginpb.Lost) *WireBatch {
	w.b.Lost = append(w.b.Lost, l)
	w.run(pluginpb.ItemKind_ITEM_KIND_LOST)
	return w
}

// U and S encode a column of uvarints and of svarints.
func U(vs ...uint64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

func S(vs ...int64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.AppendVarint(b, v)
	}
	return b
}

// optU and optS encode an optional column: nil if every value is zero.
func optU(vs []uint64) []byte {
	for _, v := range vs {
		if v != 0 {
			return U(vs...)
		}
	}
	return nil
}

func optS(vs []int64) []byte {
	for _, v := range vs {
		if v != 0 {
			return S(vs...)
		}
	}
	return nil
}

// Build returns the batch.
func (w *WireBatch) Build() *pluginpb.Batch {
	b := w.b
	if len(w.ctxKinds) > 0 {
		b.Contexts = &pluginpb.EventContexts{
			Kinds: w.ctxKinds, Names: optU(w.ctxNames), Cpus: optS(w.ctxCPUs), Pids: optS(w.ctxPIDs),
			Tids: optS(w.ctxTIDs), Comms: optU(w.ctxComms), Periods: optU(w.ctxPeriods),
		}
	}
	if len(w.locAddrs) > 0 {
		b.Locations = &pluginpb.Locations{
			Count: uint32(len(w.locAddrs)), Addresses: U(w.locAddrs...), MappingIds: optU(w.locMaps),
			Functions: optU(w.locFuncs), FunctionOffsets: optU(w.locOffs),
		}
	}
	if len(w.sdEnds) > 0 {
		b.Stacks = &pluginpb.StackDefs{Lengths: U(w.sdLengths...), LocationDeltas: S(w.sdDeltas...), FrameTypes: w.sdTypes, Ends: w.sdEnds}
	}
	if len(w.evCtx) > 0 {
		b.Events = &pluginpb.Events{
			Count: uint32(len(w.evCtx)), Contexts: U(w.evCtx...), TimeDeltas: optS(w.evTimes),
			CookieDeltas: optS(w.evCookies), FieldCounts: optU(w.evCounts), Fields: w.fields,
		}
		if w.noCounts {
			b.Events.FieldCounts = nil
		}
	}
	if len(w.refIDs) > 0 {
		b.Refs = &pluginpb.StackRefs{
			Count: uint32(len(w.refIDs)), StackIds: U(w.refIDs...), CookieDeltas: S(w.refCookies...),
			Pids: optS(w.refPIDs), Tids: optS(w.refTIDs), TimeDeltas: optS(w.refTimes),
		}
	}
	return b
}
