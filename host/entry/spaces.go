package entry

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/unwindd/unwindd/sdk/syscalls"
)

// Mapping is one mapped range of a process: [Start, Limit) maps the file
// Path from file offset Offset.
type Mapping struct {
	Start, Limit, Offset uint64
	Path                 string
	// BuildID is the file's raw build-id when the source knows it (MMAP2
	// with a build-id), else empty.
	BuildID string
	// Major, Minor and Inode identify the file when the source knows them
	// (MMAP2 without a build-id, /proc/PID/maps); 0 otherwise.
	Major, Minor uint32
	Inode        uint64
	Exec         bool // an executable mapping (PROT_EXEC, or an MMAP record without MiscMmapData)
}

// Contains reports whether addr lies in m.
func (m *Mapping) Contains(addr uint64) bool { return addr >= m.Start && addr < m.Limit }

// Spaces holds the address spaces (mappings) of the processes a tracker has
// seen, keyed by pid. The zero value is empty and ready to use. Writers (one
// tracker) replace a process's mapping list copy-on-write; [Spaces.Find]
// reads it without a lock and is safe for concurrent use.
type Spaces struct {
	m sync.Map // int32 pid → *space
}

type space struct {
	maps atomic.Pointer[[]Mapping] // sorted by Start, non-overlapping; never modified in place
}

func (s *Spaces) get(pid int32) *space {
	if v, ok := s.m.Load(pid); ok {
		return v.(*space)
	}
	v, _ := s.m.LoadOrStore(pid, new(space))
	return v.(*space)
}

// Find returns the mapping of process pid that holds addr.
func (s *Spaces) Find(pid int32, addr uint64) (Mapping, bool) {
	v, ok := s.m.Load(pid)
	if !ok {
		return Mapping{}, false
	}
	p := v.(*space).maps.Load()
	if p == nil {
		return Mapping{}, false
	}
	ms := *p
	// The last mapping that starts at or below addr.
	i, _ := slices.BinarySearchFunc(ms, addr, func(m Mapping, a uint64) int {
		if m.Start <= a {
			return -1
		}
		return 1
	})
	if i == 0 || !ms[i-1].Contains(addr) {
		return Mapping{}, false
	}
	return ms[i-1], true
}

// Mappings returns a copy of process pid's mappings, sorted by address.
func (s *Spaces) Mappings(pid int32) []Mapping {
	v, ok := s.m.Load(pid)
	if !ok {
		return nil
	}
	if p := v.(*space).maps.Load(); p != nil {
		return slices.Clone(*p)
	}
	return nil
}

// insert adds m to pid's space; the parts of older mappings it overlaps are
// cut away, as mmap over an existing range replaces it.
func (s *Spaces) insert(pid int32, m Mapping) {
	if m.Limit <= m.Start {
		return
	}
	sp := s.get(pid)
	var old []Mapping
	if p := sp.maps.Load(); p != nil {
		old = *p
	}
	ms := make([]Mapping, 0, len(old)+2)
	added := false
	for _, o := range old {
		if o.Limit <= m.Start || o.Start >= m.Limit { // no overlap
			if !added && o.Start >= m.Limit {
				ms, added = append(ms, m), true
			}
			ms = append(ms, o)
			continue
		}
		if o.Start < m.Start { // the part below m
			lo := o
			lo.Limit = m.Start
			ms = append(ms, lo)
		}
		if !added {
			ms, added = append(ms, m), true
		}
		if o.Limit > m.Limit { // the part above m
			hi := o
			hi.Offset += m.Limit - o.Start
			hi.Start = m.Limit
			ms = append(ms, hi)
		}
	}
	if !added {
		ms = append(ms, m)
	}
	sp.maps.Store(&ms)
}

// fork gives process child a copy of parent's mappings (shared: lists are
// never modified in place). A child pid that had a space (a reused pid)
// starts afresh.
func (s *Spaces) fork(parent, child int32) {
	sp := new(space)
	if v, ok := s.m.Load(parent); ok {
		sp.maps.Store(v.(*space).maps.Load())
	}
	s.m.Store(child, sp)
}

// SyscallName returns the name of x86-64 system call nr ("read"), or "" for
// a number it does not know.
func SyscallName(nr int64) string { return syscalls.Name(nr) }

// SyscallNameOf names system call nr of a task of kind k: by the i386
// table for a 32-bit (compat) task, whose raw_syscalls id is an i386
// number (4 is write there, stat on x86-64), else by the x86-64 one. ""
// for a number it does not know.
func SyscallNameOf(k Kind, nr int64) string {
	if k != KindCompat {
		return syscalls.Name(nr)
	}
	return syscalls.Name32(nr)
}
