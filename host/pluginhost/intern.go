package pluginhost

import (
	"encoding/binary"
	"hash/maphash"
	"slices"
	"sync"

	"github.com/unwindd/unwindd/arch/x86_64"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// Resolver describes the addresses of a process for the wire: the mapping
// an address falls in and the function it belongs to. It is called from the
// plugins' sender goroutines, once per (pid, pc) per plugin connection (and
// again after the connection's tables, which are bounded, are reset), so it
// must be safe for concurrent use. The zero [Location] means "unknown".
//
// ret is true for a return address (every frame of a stack but the
// first): the call it returns from is the instruction before pc, which may
// lie in another function when the call was the caller's last instruction
// (a call to a noreturn function), so the function is the one holding
// pc−1; the offset stays that of pc.
type Resolver interface {
	Resolve(pid int32, pc uint64, ret bool) Location
}

// Location is what a [Resolver] knows of one address.
type Location struct {
	Mapping        Mapping // zero Path and Limit: unmapped
	Function       string  // "": no symbol
	FunctionOffset uint64  // pc - the function's start
}

// Mapping is one mapped file of a process.
type Mapping struct {
	Start, Limit, Offset uint64
	Path                 string
	BuildID              string // raw bytes of the build-id
}

type noResolver struct{}

func (noResolver) Resolve(int32, uint64, bool) Location { return Location{} }

// retBit marks a return address in the location table's key: no x86-64
// user address has bit 63 set.
const retBit = 1 << 63

// stack is one callback's trace, copied out of the engine's cache.
type stack struct {
	cookie   uint64
	pid, tid int32
	timeNS   uint64
	end      x86_64.EndReason
	pcs      []uint64
	types    []byte
}

// stackPool recycles stacks: the encoder copies what it needs of a stack
// (its key, its definition) and lets it go, so the callback's three
// allocations per stack become none in the steady state.
var stackPool = sync.Pool{New: func() any { return new(stack) }}

// newStack returns a stack with n frames, from the pool.
func newStack(n int) *stack {
	s := stackPool.Get().(*stack)
	if cap(s.pcs) < n {
		s.pcs, s.types = make([]uint64, n), make([]byte, n)
	}
	s.pcs, s.types = s.pcs[:n], s.types[:n]
	return s
}

// freeStack returns s to the pool; nothing may use it afterwards.
func freeStack(s *stack) {
	if cap(s.pcs) > 1024 {
		return // a huge stack: let the GC have it
	}
	stackPool.Put(s)
}

// stackTable maps stack keys (pid, end reason, pcs and frame types) to
// stack ids: open addressing like locTable, with the keys back to back in
// one arena, so that a new stack costs no allocation and the table is a few
// flat arrays for the GC.
type stackTable struct {
	seed  maphash.Seed
	slots []stackSlot // a power of two of them
	bits  uint
	keys  []byte
	n     int
}

type stackSlot struct {
	hash     uint64
	off, len uint32 // the key, in keys
	id       uint32 // 0: empty
}

func newStackTable() *stackTable {
	return &stackTable{seed: maphash.MakeSeed(), slots: make([]stackSlot, 1<<(stackBits+1)), bits: stackBits + 1}
}

// find returns the id of key, or 0 and the slot to put it in, and its hash.
func (t *stackTable) find(key []byte) (id uint32, slot int, h uint64) {
	h = maphash.Bytes(t.seed, key)
	mask := len(t.slots) - 1
	for i := int(h >> (64 - t.bits)); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.id == 0 || s.hash == h && string(t.keys[s.off:s.off+s.len]) == string(key) {
			return s.id, i, h
		}
	}
}

// put gives key the next id at slot, which find returned with h.
func (t *stackTable) put(slot int, h uint64, key []byte) uint32 {
	t.n++
	t.slots[slot] = stackSlot{h, uint32(len(t.keys)), uint32(len(key)), uint32(t.n)}
	t.keys = append(t.keys, key...)
	if t.n > len(t.slots)/4*3 {
		old := t.slots
		t.slots, t.bits = make([]stackSlot, 2*len(old)), t.bits+1
		mask := len(t.slots) - 1
		for _, s := range old {
			if s.id == 0 {
				continue
			}
			i := int(s.hash >> (64 - t.bits))
			for t.slots[i].id != 0 {
				i = (i + 1) & mask
			}
			t.slots[i] = s
		}
	}
	return uint32(t.n)
}

func (t *stackTable) clear() {
	clear(t.slots)
	t.keys, t.n = t.keys[:0], 0
}

// locTable maps (pid, pc) to location ids: an open-addressing hash table
// with linear probing, sized for maxLocations at most half full (a batch
// can take it past its bound; it grows at three quarters). It is what
// every frame of a new stack is looked up in, so it is a flat table rather
// than a Go map: a lookup is a multiply and, mostly, one cache line, where
// a map costs about 50ns a frame (BenchmarkRawGRPCStream/distinct's profile).
type locTable struct {
	slots []locSlot // a power of two of them
	bits  uint      // len(slots) is 1<<bits
	n     int
}

// locSlot is one entry: 16 bytes, so that a probe reads one cache line.
type locSlot struct {
	pc  uint64
	pid int32
	id  uint32 // 0: empty
}

func newLocTable() *locTable {
	return &locTable{slots: make([]locSlot, 1<<(locBits+1)), bits: locBits + 1}
}

// home is the slot where the probe for (pid, pc) starts.
func (t *locTable) home(pid int32, pc uint64) int {
	return int((pc ^ uint64(uint32(pid))<<47) * 0x9e3779b97f4a7c15 >> (64 - t.bits))
}

// touch reads the home slot of every pc of a stack, so that the cache
// misses of its lookups overlap rather than come one after another: the
// table is too big for the cache and a new stack's frames are mostly
// misses, each a dependent stall of the location loop otherwise. The loads
// are independent of one another, so the CPU has them all in flight at
// once. It returns what it read, for the caller to keep (so that the loads
// are not dropped as dead).
func (t *locTable) touch(pid int32, pcs []uint64) uint32 {
	var x uint32
	for i, pc := range pcs {
		if i > 0 {
			pc |= retBit // the key location uses for a return address
		}
		x |= t.slots[t.home(pid, pc)].id
	}
	return x
}

// find returns the id of (pid, pc), or 0 and the slot to put it in.
func (t *locTable) find(pid int32, pc uint64) (id uint32, slot int) {
	mask := len(t.slots) - 1
	for i := t.home(pid, pc); ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.id == 0 || s.pc == pc && s.pid == pid {
			return s.id, i
		}
	}
}

// put gives (pid, pc) the next id at slot, which find returned.
func (t *locTable) put(slot int, pid int32, pc uint64) uint32 {
	t.n++
	t.slots[slot] = locSlot{pc, pid, uint32(t.n)}
	if t.n > len(t.slots)/4*3 {
		old := t.slots
		t.slots, t.bits = make([]locSlot, 2*len(old)), t.bits+1
		for _, s := range old {
			if s.id != 0 {
				_, i := t.find(s.pid, s.pc)
				t.slots[i] = s
			}
		}
	}
	return uint32(t.n)
}

func (t *locTable) clear() {
	clear(t.slots)
	t.n = 0
}

// The bounds of one connection's tables. When one is passed, the next batch
// resets the tables on both sides (Batch.reset_tables), so neither the host's maps
// nor the plugin's grow without end with distinct stacks and stay small
// enough to be cheap.
const (
	maxStrings   = 1 << 14
	maxContexts  = 1 << 14
	maxMappings  = 1 << 12
	maxLocations = 1 << locBits
	locBits      = 14
	maxStacks    = 1 << stackBits
	stackBits    = 12
)

// maxBatchBytes bounds a batch in bytes, as BatchSize bounds it in items:
// events carry their fields (a syscall's buffer, a tracepoint's raw data),
// and a batch must stay well under what the plugin's gRPC server takes in
// one message (sdk.ServerOptions; gRPC's default is 4 MiB). A batch is cut
// once it passes the bound, so it ends at most one item past it.
const maxBatchBytes = 1 << 20

// The varint columns of a batch (see plugin.proto), indices into
// encoder.col. An optional column whose values are all zero is not sent.
const (
	cCtxName = iota
	cCtxCPU
	cCtxPID
	cCtxTID
	cCtxComm
	cCtxPeriod
	cEvCtx
	cEvTime
	cEvCookie
	cEvFields
	cRefID
	cRefCookie
	cRefPID
	cRefTID
	cRefTime
	cLocAddr
	cLocMapping
	cLocFunction
	cLocOffset
	cSdLength
	cSdDelta
	nCols
)

// ctxKey is an event context: what the events of one task on one cpu
// share.
type ctxKey struct {
	name, comm    string
	period        uint64
	cpu, pid, tid int32
	kind          EventKind
}

// encoder builds one connection's batches. It holds the connection's
// tables, interned as pprof interns a profile: strings (event names, comms,
// function names, paths), event contexts, mappings, locations and whole
// stacks are sent once with an implicit id (the n-th of its table is n) and
// referenced by id afterwards. It encodes the items into columns of varints
// as they come (one pass, no per-value protobuf field) and reuses one Batch
// and its columns: gRPC marshals a message before Send returns, so the
// sender clears and refills it. It is owned by the sender goroutine.
type encoder struct {
	res       Resolver
	strings   map[string]uint32
	contexts  map[ctxKey]uint32
	mappings  map[Mapping]uint32
	locations *locTable
	stacks    *stackTable
	key       []byte // scratch for stack keys
	touched   uint32 // what locTable.touch read, kept so that it is read

	defs, refs uint64 // in this batch: stacks defined, stacks referenced
	resets     uint64 // table resets on this connection

	// The batch being built.
	b                pluginpb.Batch
	ctxMsg           pluginpb.EventContexts
	locMsg           pluginpb.Locations
	sdMsg            pluginpb.StackDefs
	evMsg            pluginpb.Events
	refMsg           pluginpb.StackRefs
	col              [nCols][]byte
	nz               uint32 // 1<<c: column c holds a value other than 0
	ctxKinds         []byte
	sdTypes, sdEnds  []byte
	fields           []*pluginpb.Field
	nEv, nRef, nLoc  int
	items            int    // events and stacks
	bytes            int    // about what the batch marshals to, at least
	prevLoc          uint32 // the last location id in the stack definitions
	evTime, evCookie uint64 // the last event's
	refTime          uint64 // the last stack ref's
	refCookie        uint64
	lastStr          [2]string
	lastStrID        [2]uint32
	lastCtx          ctxKey // the last event's context, and its id (0: none)
	lastCtxID        uint32
}

// u and s append an unsigned and a signed value to column c.
func (e *encoder) u(c int, v uint64) {
	e.col[c] = binary.AppendUvarint(e.col[c], v)
	if v != 0 {
		e.nz |= 1 << c
	}
}

func (e *encoder) s(c int, v int64) {
	e.col[c] = binary.AppendVarint(e.col[c], v)
	if v != 0 {
		e.nz |= 1 << c
	}
}

// opt returns optional column c, or nil if its values are all zero.
func (e *encoder) opt(c int) []byte {
	if e.nz&(1<<c) == 0 {
		return nil
	}
	return e.col[c]
}

func newEncoder(res Resolver) *encoder {
	return &encoder{
		res: res, strings: map[string]uint32{}, contexts: map[ctxKey]uint32{}, mappings: map[Mapping]uint32{},
		locations: newLocTable(), stacks: newStackTable(),
	}
}

// full reports whether a table has passed its bound.
func (e *encoder) full() bool {
	return len(e.strings) > maxStrings || len(e.contexts) > maxContexts || len(e.mappings) > maxMappings ||
		e.locations.n > maxLocations || e.stacks.n > maxStacks
}

// begin starts a batch, resetting the tables first if one is full.
func (e *encoder) begin() {
	if e.full() {
		clear(e.strings)
		clear(e.contexts)
		e.lastCtxID = 0
		clear(e.mappings)
		e.locations.clear()
		e.stacks.clear()
		e.lastStr = [2]string{}
		e.b.ResetTables = true
		e.resets++
	}
}

// len is the number of events and stacks in the batch.
func (e *encoder) len() int { return e.items }

// batchFull reports whether the batch holds what one batch may: maxItems items,
// or about maxBatchBytes.
func (e *encoder) batchFull(maxItems int) bool {
	return e.items >= maxItems || e.bytes >= maxBatchBytes
}

// empty reports whether the batch carries nothing.
func (e *encoder) empty() bool { return len(e.b.Runs) == 0 && !e.b.ResetTables }

func (e *encoder) run(kind pluginpb.ItemKind) {
	if n := len(e.b.Runs); n > 0 && pluginpb.ItemKind(e.b.Runs[n-1]&3) == kind {
		e.b.Runs[n-1] += 4
		return
	}
	e.b.Runs = append(e.b.Runs, 1<<2|uint32(kind))
}

// str interns s. slot caches the last string of one column (0: names, 1:
// comms), which repeats from one event to the next.
func (e *encoder) str(s string, slot int) uint32 {
	if s == "" {
		return 0
	}
	if s == e.lastStr[slot] && e.lastStrID[slot] != 0 {
		return e.lastStrID[slot]
	}
	id, ok := e.strings[s]
	if !ok {
		id = uint32(len(e.strings) + 1)
		e.strings[s] = id
		e.b.Strings = append(e.b.Strings, []byte(s))
		e.bytes += len(s) + 4
	}
	e.lastStr[slot], e.lastStrID[slot] = s, id
	return id
}

// event adds an event, with the task and cookie it was stamped with.
func (e *encoder) event(ev *Event, pid, tid int32, cookie uint64) {
	k := ctxKey{ev.Name, ev.Comm, ev.Period, ev.CPU, pid, tid, ev.Kind}
	id := e.lastCtxID
	if id == 0 || k != e.lastCtx {
		id = e.context(&k)
	}
	e.u(cEvCtx, uint64(id))
	e.s(cEvTime, int64(ev.TimeNS-e.evTime))
	e.s(cEvCookie, int64(cookie-e.evCookie))
	e.u(cEvFields, uint64(len(ev.Fields)))
	e.evTime, e.evCookie = ev.TimeNS, cookie
	for i := range ev.Fields {
		f := &ev.Fields[i]
		e.fields = append(e.fields, fieldToPB(f))
		e.bytes += len(f.Name) + len(f.Str) + len(f.Bytes) + 16
	}
	e.bytes += 12
	e.nEv++
	e.run(pluginpb.ItemKind_ITEM_KIND_EVENT)
	e.items++
}

// context interns an event context.
func (e *encoder) context(k *ctxKey) uint32 {
	id, ok := e.contexts[*k]
	if !ok {
		name, comm := e.str(k.name, 0), e.str(k.comm, 1)
		id = uint32(len(e.contexts) + 1)
		e.contexts[*k] = id
		e.ctxKinds = append(e.ctxKinds, byte(k.kind))
		e.bytes += 16
		e.u(cCtxName, uint64(name))
		e.s(cCtxCPU, int64(k.cpu))
		e.s(cCtxPID, int64(k.pid))
		e.s(cCtxTID, int64(k.tid))
		e.u(cCtxComm, uint64(comm))
		e.u(cCtxPeriod, k.period)
	}
	e.lastCtx, e.lastCtxID = *k, id
	return id
}

// add encodes an item of the outbox.
func (e *encoder) add(it *item) {
	switch it.kind {
	case itemEvent:
		e.event(&it.ev, it.pid, it.tid, it.cookie)
	case itemStack:
		e.stack(it.st)
		freeStack(it.st)
	}
}

// lostFirst puts a lost notice before every other item of the batch.
func (e *encoder) lostFirst(l *pluginpb.Lost) {
	e.bytes += 24 + 10*len(l.Cookies)
	e.b.Lost = slices.Insert(e.b.Lost, 0, l)
	if len(e.b.Runs) > 0 && pluginpb.ItemKind(e.b.Runs[0]&3) == pluginpb.ItemKind_ITEM_KIND_LOST {
		e.b.Runs[0] += 4
		return
	}
	e.b.Runs = slices.Insert(e.b.Runs, 0, 1<<2|uint32(pluginpb.ItemKind_ITEM_KIND_LOST))
}

// stack interns s, adding the definitions it needs, and adds a reference
// to it.
func (e *encoder) stack(s *stack) {
	sanitize(s)
	k := e.key[:0]
	k = binary.LittleEndian.AppendUint32(k, uint32(s.pid))
	k = append(k, byte(s.end))
	for i, pc := range s.pcs {
		k = binary.LittleEndian.AppendUint64(k, pc)
		k = append(k, s.types[i])
	}
	e.key = k
	sid, slot, h := e.stacks.find(k)
	if sid != 0 {
		e.refs++
	} else {
		e.touched |= e.locations.touch(s.pid, s.pcs)
		for i, pc := range s.pcs {
			lid := e.location(s.pid, pc, i > 0)
			e.s(cSdDelta, int64(lid)-int64(e.prevLoc))
			e.prevLoc = lid
		}
		e.u(cSdLength, uint64(len(s.pcs)))
		e.sdTypes = append(e.sdTypes, s.types...)
		e.sdEnds = append(e.sdEnds, byte(s.end))
		e.bytes += 2 * len(s.pcs)
		sid = e.stacks.put(slot, h, k)
		e.defs++
	}
	e.u(cRefID, uint64(sid))
	e.s(cRefCookie, int64(s.cookie-e.refCookie))
	e.s(cRefPID, int64(s.pid))
	e.s(cRefTID, int64(s.tid))
	e.s(cRefTime, int64(s.timeNS-e.refTime))
	e.refTime, e.refCookie = s.timeNS, s.cookie
	e.bytes += 16
	e.nRef++
	e.run(pluginpb.ItemKind_ITEM_KIND_STACK)
	e.items++
}

func (e *encoder) location(pid int32, pc uint64, ret bool) uint32 {
	key := pc
	if ret {
		key |= retBit
	}
	id, slot := e.locations.find(pid, key)
	if id != 0 {
		return id
	}
	l := e.res.Resolve(pid, pc, ret)
	var mid, fid uint32
	if l.Mapping.Limit != 0 || l.Mapping.Path != "" { // else unmapped
		var ok bool
		if mid, ok = e.mappings[l.Mapping]; !ok {
			m := l.Mapping
			path := e.str(m.Path, 0)
			mid = uint32(len(e.mappings) + 1)
			e.mappings[m] = mid
			e.b.Mappings = append(e.b.Mappings, &pluginpb.Mapping{
				Start: m.Start, Limit: m.Limit, Offset: m.Offset, Path: path, BuildId: []byte(m.BuildID),
			})
		}
	}
	if l.Function != "" {
		fid = e.str(l.Function, 0)
	}
	id = e.locations.put(slot, pid, key)
	e.u(cLocAddr, pc)
	e.u(cLocMapping, uint64(mid))
	e.u(cLocFunction, uint64(fid))
	e.u(cLocOffset, l.FunctionOffset)
	e.bytes += 8 + len(l.Mapping.BuildID)
	e.nLoc++
	return id
}

// finish numbers the batch and returns it, valid until clear.
func (e *encoder) finish(seq uint64) *pluginpb.Batch {
	b := &e.b
	b.Seq = seq
	b.Contexts, b.Locations, b.Stacks, b.Events, b.Refs = nil, nil, nil, nil, nil
	if len(e.ctxKinds) > 0 {
		e.ctxMsg = pluginpb.EventContexts{
			Kinds: e.ctxKinds, Names: e.opt(cCtxName), Cpus: e.opt(cCtxCPU), Pids: e.opt(cCtxPID),
			Tids: e.opt(cCtxTID), Comms: e.opt(cCtxComm), Periods: e.opt(cCtxPeriod),
		}
		b.Contexts = &e.ctxMsg
	}
	if e.nLoc > 0 {
		e.locMsg = pluginpb.Locations{
			Count: uint32(e.nLoc), Addresses: e.col[cLocAddr], MappingIds: e.opt(cLocMapping),
			Functions: e.opt(cLocFunction), FunctionOffsets: e.opt(cLocOffset),
		}
		b.Locations = &e.locMsg
	}
	if len(e.sdEnds) > 0 {
		e.sdMsg = pluginpb.StackDefs{Lengths: e.col[cSdLength], LocationDeltas: e.col[cSdDelta], FrameTypes: e.sdTypes, Ends: e.sdEnds}
		b.Stacks = &e.sdMsg
	}
	if e.nEv > 0 {
		e.evMsg = pluginpb.Events{
			Count: uint32(e.nEv), Contexts: e.col[cEvCtx], TimeDeltas: e.opt(cEvTime),
			CookieDeltas: e.opt(cEvCookie), FieldCounts: e.opt(cEvFields), Fields: e.fields,
		}
		b.Events = &e.evMsg
	}
	if e.nRef > 0 {
		e.refMsg = pluginpb.StackRefs{
			Count: uint32(e.nRef), StackIds: e.col[cRefID], CookieDeltas: e.col[cRefCookie],
			Pids: e.opt(cRefPID), Tids: e.opt(cRefTID), TimeDeltas: e.opt(cRefTime),
		}
		b.Refs = &e.refMsg
	}
	return b
}

// clear empties the batch for the next one, keeping its arrays.
func (e *encoder) clear() {
	b := &e.b
	clear(b.Strings)
	clear(b.Mappings)
	clear(b.Lost)
	clear(e.fields)
	*b = pluginpb.Batch{
		Strings: b.Strings[:0], Mappings: b.Mappings[:0], Lost: b.Lost[:0], Runs: b.Runs[:0],
	}
	for i := range e.col {
		e.col[i] = e.col[i][:0]
	}
	e.ctxKinds, e.sdTypes, e.sdEnds, e.fields = e.ctxKinds[:0], e.sdTypes[:0], e.sdEnds[:0], e.fields[:0]
	e.nz, e.items, e.bytes, e.nEv, e.nRef, e.nLoc, e.prevLoc, e.defs, e.refs = 0, 0, 0, 0, 0, 0, 0, 0, 0
	e.evTime, e.evCookie, e.refTime, e.refCookie = 0, 0, 0, 0
}

// sanitize holds s to the protocol's rules (sdk.Stack.CheckValid): every
// frame has a type and the walk has an end reason. A trace the engine left
// without one (no memory to walk: the cache was never filled) ends with
// "no-regs"; frames without a type are cut, ending the stack as invalid.
func sanitize(s *stack) {
	for i, t := range s.types {
		if t == byte(x86_64.TypeNone) || t > byte(x86_64.TypeCallchain) {
			s.pcs, s.types, s.end = s.pcs[:i], s.types[:i], x86_64.EndInvalid
			break
		}
	}
	if s.end == x86_64.EndNone || s.end > x86_64.EndNoRegs {
		if len(s.pcs) == 0 {
			s.end = x86_64.EndNoRegs
		} else {
			s.end = x86_64.EndUnreadable
		}
	}
}
