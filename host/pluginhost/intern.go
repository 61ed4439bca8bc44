package pluginhost

import (
	"encoding/binary"

	"github.com/unwindd/unwindd/arch/x86_64"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// Resolver describes the addresses of a process for the wire: the mapping
// an address falls in and the function it belongs to. It is called from the
// plugins' sender goroutines, at most once per (pid, pc) per plugin
// connection, so it must be safe for concurrent use. The zero [Location]
// means "unknown".
type Resolver interface {
	Resolve(pid int32, pc uint64) Location
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

func (noResolver) Resolve(int32, uint64) Location { return Location{} }

// stack is one callback's trace, copied out of the engine's cache.
type stack struct {
	cookie   uint64
	pid, tid int32
	timeNS   uint64
	end      x86_64.EndReason
	pcs      []uint64
	types    []byte
}

type locKey struct {
	pid int32
	pc  uint64
}

// interner holds one connection's tables, as pprof interns a profile:
// mappings, functions, locations and whole stacks are sent once with an id
// and referenced by id afterwards. It is owned by the sender goroutine.
type interner struct {
	res       Resolver
	mappings  map[Mapping]uint64
	functions map[string]uint64
	locations map[locKey]uint64
	stacks    map[string]uint64
	key       []byte // scratch for stack keys
	ids       []uint64

	defs, refs uint64 // stacks defined, stacks referenced
}

func newInterner(res Resolver) *interner {
	return &interner{
		res: res, mappings: map[Mapping]uint64{}, functions: map[string]uint64{},
		locations: map[locKey]uint64{}, stacks: map[string]uint64{},
	}
}

// stackRef interns s, appending the definitions it needs to b, and returns
// the item that references it.
func (in *interner) stackRef(b *pluginpb.Batch, s *stack) *pluginpb.Item {
	sanitize(s)
	k := in.key[:0]
	k = binary.LittleEndian.AppendUint32(k, uint32(s.pid))
	k = append(k, byte(s.end))
	for i, pc := range s.pcs {
		k = binary.LittleEndian.AppendUint64(k, pc)
		k = append(k, s.types[i])
	}
	in.key = k
	id, ok := in.stacks[string(k)]
	if ok {
		in.refs++
	} else {
		ids := make([]uint64, len(s.pcs))
		for i, pc := range s.pcs {
			ids[i] = in.location(b, s.pid, pc)
		}
		id = uint64(len(in.stacks) + 1)
		in.stacks[string(k)] = id
		in.defs++
		b.Stacks = append(b.Stacks, &pluginpb.StackDef{
			Id: id, LocationIds: ids, FrameTypes: append([]byte(nil), s.types...), End: pluginpb.EndReason(s.end),
		})
	}
	return &pluginpb.Item{Item: &pluginpb.Item_Stack{Stack: &pluginpb.StackRef{
		Cookie: s.cookie, Pid: s.pid, Tid: s.tid, StackId: id, TimeNs: s.timeNS,
	}}}
}

func (in *interner) location(b *pluginpb.Batch, pid int32, pc uint64) uint64 {
	lk := locKey{pid, pc}
	if id, ok := in.locations[lk]; ok {
		return id
	}
	l := in.res.Resolve(pid, pc)
	var mid, fid uint64
	if l.Mapping != (Mapping{}) {
		var ok bool
		if mid, ok = in.mappings[l.Mapping]; !ok {
			mid = uint64(len(in.mappings) + 1)
			in.mappings[l.Mapping] = mid
			m := l.Mapping
			b.Mappings = append(b.Mappings, &pluginpb.Mapping{
				Id: mid, Start: m.Start, Limit: m.Limit, Offset: m.Offset, Path: m.Path, BuildId: []byte(m.BuildID),
			})
		}
	}
	if l.Function != "" {
		var ok bool
		if fid, ok = in.functions[l.Function]; !ok {
			fid = uint64(len(in.functions) + 1)
			in.functions[l.Function] = fid
			b.Functions = append(b.Functions, &pluginpb.Function{Id: fid, Name: l.Function})
		}
	}
	id := uint64(len(in.locations) + 1)
	in.locations[lk] = id
	b.Locations = append(b.Locations, &pluginpb.Location{
		Id: id, Address: pc, MappingId: mid, FunctionId: fid, FunctionOffset: l.FunctionOffset,
	})
	return id
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
