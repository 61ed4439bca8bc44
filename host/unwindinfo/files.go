package unwindinfo

import (
	"bytes"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/arch/x86_64/cfi"
	"github.com/unwindd/unwindd/arch/x86_64/sframe"
	"github.com/unwindd/unwindd/host/symbolize"
)

// Mapping is the part of a process mapping this package needs: [Start,
// Limit) maps the file Path from file offset Offset.
type Mapping struct {
	Start, Limit, Offset uint64
	Path                 string
	// BuildID is the raw build-id the source recorded for the file, if any.
	// When set, a local file with another build-id is not used.
	BuildID string
	// Major, Minor and Inode identify the file when the source knows them.
	Major, Minor uint32
	Inode        uint64
}

// Options configure [Files]. The zero value reads both kinds of tables.
type Options struct {
	// NoSFrame and NoCFI turn a kind of table off: its lookups find
	// nothing and its sections are never read.
	NoSFrame, NoCFI bool
	// NoMemo turns off each Process's rule memo: every frame is then
	// looked up in the file's table (what a first sight of a pc costs).
	NoMemo bool
}

// Files caches the unwind tables of mapped files, one [Object] per file.
type Files struct {
	opts Options
	log  *zap.Logger

	mu   sync.RWMutex
	objs map[fileKey]*Object
}

type fileKey struct {
	path         string
	buildID      string
	major, minor uint32
	inode        uint64
}

// NewFiles returns an empty cache that logs through log (nil: no logging).
func NewFiles(opts Options, log *zap.Logger) *Files {
	if log == nil {
		log = zap.NewNop()
	}
	return &Files{opts: opts, log: log, objs: map[fileKey]*Object{}}
}

// Object is the unwind information of one file: its tables and the
// segments that map file offsets to the file's virtual addresses. A file
// without a kind of table has a nil one; an unreadable file has neither.
// It is immutable and safe for concurrent use.
type Object struct {
	Path   string
	SFrame *sframe.Section // nil: none, unreadable or refused
	CFI    *cfi.Table      // nil: none, unreadable or refused
	segs   []segment
}

type segment struct{ off, size, vaddr uint64 }

// Vaddr returns the file's virtual address for file offset off.
func (o *Object) Vaddr(off uint64) (uint64, bool) {
	for _, s := range o.segs {
		if s.off <= off && off-s.off < s.size {
			return s.vaddr + (off - s.off), true
		}
	}
	return 0, false
}

// Rule looks vaddr, a virtual address of the file, up in the table of
// method typ.
func (o *Object) Rule(typ x86_64.FrameType, vaddr uint64) (x86_64.Rule, bool) {
	switch typ {
	case x86_64.TypeSFrame:
		if o.SFrame != nil {
			return o.SFrame.Lookup(vaddr)
		}
	case x86_64.TypeCFI:
		if o.CFI != nil {
			return o.CFI.Lookup(vaddr)
		}
	}
	return x86_64.Rule{}, false
}

// Object returns the cached object of m's file, reading it on first use; nil
// when m is not a file mapping or the file cannot be used.
func (f *Files) Object(m *Mapping) *Object {
	if m.Path != VDSOPath && (!strings.HasPrefix(m.Path, "/") || strings.HasPrefix(m.Path, "//")) {
		return nil // [stack], //anon, anonymous memory
	}
	key := fileKey{path: m.Path, buildID: m.BuildID, major: m.Major, minor: m.Minor, inode: m.Inode}
	f.mu.RLock()
	o, ok := f.objs[key]
	f.mu.RUnlock()
	if ok {
		return o
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if o, ok := f.objs[key]; ok {
		return o
	}
	o, err := f.read(m.Path, m.BuildID)
	if err != nil {
		f.log.Info("no unwind tables for file", zap.String("path", m.Path), zap.Error(err))
	}
	f.objs[key] = o
	return o
}

// errOtherFile says the local file is not the one the source saw.
var errOtherFile = errors.New("local file has another build-id than the recorded one")

func (f *Files) read(path, buildID string) (*Object, error) {
	var fh io.ReaderAt
	if path == VDSOPath {
		img, err := readVDSO()
		if err != nil {
			return nil, fmt.Errorf("unwindinfo: %w", err)
		}
		fh = bytes.NewReader(img)
	} else {
		osf, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("unwindinfo: %w", err)
		}
		defer osf.Close()
		fh = osf
	}
	if buildID != "" {
		local, err := symbolize.BuildID(fh)
		if err != nil || !sameBuildID([]byte(buildID), local) {
			return nil, fmt.Errorf("unwindinfo: %s: %w", path, errOtherFile)
		}
	}
	ef, err := elf.NewFile(fh)
	if err != nil {
		return nil, fmt.Errorf("unwindinfo: %s: %w", path, err)
	}
	defer ef.Close()
	if ef.Machine != elf.EM_X86_64 || ef.Class != elf.ELFCLASS64 {
		return nil, fmt.Errorf("unwindinfo: %s: not an x86-64 ELF file (%v, %v)", path, ef.Machine, ef.Class)
	}
	o := &Object{Path: path}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD {
			o.segs = append(o.segs, segment{off: p.Off, size: p.Filesz, vaddr: p.Vaddr})
		}
	}
	if !f.opts.NoSFrame {
		s, err := sframe.FromELF(ef)
		switch {
		case err == nil:
			o.SFrame = s
		case !errors.Is(err, sframe.ErrNoSFrame):
			f.log.Warn("refused .sframe section", zap.String("path", path), zap.Error(err))
		}
	}
	if !f.opts.NoCFI {
		t, err := cfi.FromELF(ef)
		switch {
		case err == nil:
			o.CFI = t
		case !errors.Is(err, cfi.ErrNoCFI):
			f.log.Warn("refused .eh_frame", zap.String("path", path), zap.Error(err))
		}
	}
	f.log.Debug("unwind tables read", zap.String("path", path), zap.Bool("sframe", o.SFrame != nil), zap.Bool("cfi", o.CFI != nil))
	return o, nil
}

// Finder finds the mapping of one process that holds addr.
type Finder func(addr uint64) (Mapping, bool)

// Process returns the unwind table of the process whose mappings find
// finds: for a pc, the mapping that holds it, the file's object, and the
// rule for the file's address of pc.
func (f *Files) Process(find Finder) *Process {
	return &Process{files: f, find: find}
}

// Process is the unwind table ([x86_64.Table]) of one process. It caches
// each mapping it resolved (the range, the file's object, the offset from a
// pc to the file's address), and each rule it looked up by pc in a small
// direct-mapped memo: a profile walks the same return addresses again and
// again, and a memo hit costs one atomic load and a compare instead of a
// table search. [Process.Invalidate] drops both when the process's mappings
// change. It is safe for concurrent use; a memo miss allocates one small
// entry.
type Process struct {
	files *Files
	find  Finder
	cache atomic.Pointer[[]resolved] // immutable once stored
	memo  atomic.Pointer[[memoSlots]atomic.Pointer[memoEntry]]
}

// memoSlots is the size of a Process's rule memo (8 KiB of pointers).
const memoSlots = 1 << 10

// memoEntry is a rule looked up for one (method, pc); immutable.
type memoEntry struct {
	key  uint64 // pc<<2 | method
	rule x86_64.Rule
	ok   bool
}

// resolved is one mapping a Process looked up: pcs in [start, limit) are
// file addresses pc+adj of obj (nil: the mapping has no tables).
type resolved struct {
	start, limit, adj uint64
	obj               *Object
}

// maxResolved bounds a Process's cache; past it, the cache starts over.
const maxResolved = 64

var _ x86_64.Table = (*Process)(nil)

// Invalidate drops what p resolved and memoized: the process's mappings
// changed (mmap, munmap, exec).
func (p *Process) Invalidate() {
	// The cache before the memo: a Rule that sees the new (empty) memo
	// loads the cache after this, and cannot memoize a stale rule in it.
	p.cache.Store(nil)
	p.memo.Store(nil)
}

// Rule returns the rule of method typ for pc.
func (p *Process) Rule(typ x86_64.FrameType, pc uint64) (x86_64.Rule, bool) {
	key := pc<<2 | uint64(typ&3)
	slot := (key * 0x9e3779b97f4a7c15) >> (64 - 10) // Fibonacci hashing onto memoSlots
	if p.files.opts.NoMemo {
		return p.lookup(typ, pc)
	}
	memo := p.memo.Load()
	if memo != nil {
		if e := memo[slot].Load(); e != nil && e.key == key {
			return e.rule, e.ok
		}
	}
	r, ok := p.lookup(typ, pc)
	if pc>>62 == 0 && typ <= 3 { // the key is exact
		if memo == nil {
			memo = new([memoSlots]atomic.Pointer[memoEntry])
			if !p.memo.CompareAndSwap(nil, memo) {
				return r, ok // invalidated meanwhile, or another walk made one
			}
		}
		memo[slot].Store(&memoEntry{key: key, rule: r, ok: ok})
	}
	return r, ok
}

// lookup is Rule without the memo.
func (p *Process) lookup(typ x86_64.FrameType, pc uint64) (x86_64.Rule, bool) {
	var r resolved
	found := false
	if c := p.cache.Load(); c != nil {
		for i := range *c {
			if e := &(*c)[i]; pc >= e.start && pc < e.limit {
				r, found = *e, true
				break
			}
		}
	}
	if !found {
		var ok bool
		if r, ok = p.resolve(pc); !ok {
			return x86_64.Rule{}, false
		}
	}
	if r.obj == nil {
		return x86_64.Rule{}, false
	}
	return r.obj.Rule(typ, pc+r.adj)
}

// resolve finds pc's mapping, its object and the PT_LOAD segment that maps
// it, and adds the result to the cache.
func (p *Process) resolve(pc uint64) (resolved, bool) {
	m, ok := p.find(pc)
	if !ok {
		return resolved{}, false
	}
	r := resolved{start: m.Start, limit: m.Limit}
	if o := p.files.Object(&m); o != nil {
		off := pc - m.Start + m.Offset
		for _, s := range o.segs {
			if s.off <= off && off-s.off < s.size {
				// The part of the mapping this segment covers.
				lo, hi := m.Start, m.Limit
				if s.off > m.Offset {
					lo = max(lo, m.Start+(s.off-m.Offset))
				}
				if end := s.off + s.size; end >= m.Offset {
					hi = min(hi, m.Start+(end-m.Offset))
				}
				r = resolved{start: lo, limit: hi, adj: m.Offset - m.Start + s.vaddr - s.off, obj: o}
				break
			}
		}
		if r.obj == nil { // pc in a part no segment maps
			return resolved{}, false
		}
	}
	for {
		old := p.cache.Load()
		var next []resolved
		if old != nil && len(*old) < maxResolved {
			next = append(make([]resolved, 0, len(*old)+1), *old...)
		}
		next = append(next, r)
		if p.cache.CompareAndSwap(old, &next) {
			return r, true
		}
	}
}

// sameBuildID compares a recorded build-id (perf pads it with zeros to 20
// bytes) with a local one in hex.
func sameBuildID(recorded []byte, localHex string) bool {
	local, err := hex.DecodeString(localHex)
	if err != nil || len(local) == 0 || len(local) > len(recorded) {
		return false
	}
	return bytes.Equal(recorded[:len(local)], local) && len(bytes.Trim(recorded[len(local):], "\x00")) == 0
}
