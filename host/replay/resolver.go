package replay

import (
	"bytes"
	"encoding/hex"
	"os"
	"strings"
	"sync"

	"github.com/unwindd/unwindd/host/entry"
	"github.com/unwindd/unwindd/host/perfdata"
	"github.com/unwindd/unwindd/host/pluginhost"
	"github.com/unwindd/unwindd/host/procfs"
	"github.com/unwindd/unwindd/host/symbolize"
)

// Resolver describes the addresses of replayed stacks for the plugins
// ([pluginhost.Resolver]): the mapping an address falls in (from the
// recording's MMAP records, kept in an [entry.Spaces]) with its build-id
// (from the MMAP2 record, or from the file's build-id table by path), and
// the function, from the ELF symbols of the file at the mapping's path on
// this machine. A file whose local build-id differs from the recorded one
// is not the file that ran: its addresses get the mapping but no function.
// The [vdso] is named from unwindd's own vDSO, the one the kernel maps into
// every process, when its build-id is the recorded one (or none was
// recorded). Other pseudo-files ([stack], //anon) and anonymous memory get
// no function.
//
// # Return addresses
//
// A caller's frame holds a return address: the instruction after the call,
// which may already lie in the next function when the call was the last
// instruction of the caller (a call to a noreturn function). For a return
// address (ret), Resolve names the function that holds pc−1, the call, as
// perf and gdb do, with the offset of pc.
//
// It is safe for concurrent use.
type Resolver struct {
	spaces *entry.Spaces
	sym    *symbolize.Symbolizer
	byPath map[string][]byte // recorded build-ids by path, from HEADER_BUILD_ID

	mu    sync.Mutex
	local map[string]string // path → hex build-id of the local file ("" none or unreadable)
}

var _ pluginhost.Resolver = (*Resolver)(nil)

// NewResolver returns a Resolver over the mappings in spaces and the
// build-id table of f (which may be nil), naming functions with sym.
func NewResolver(spaces *entry.Spaces, f *perfdata.File, sym *symbolize.Symbolizer) *Resolver {
	r := &Resolver{spaces: spaces, sym: sym, byPath: map[string][]byte{}, local: map[string]string{}}
	if f != nil {
		for _, b := range f.Features.BuildIDs {
			if b.PID != -1 && len(b.ID) > 0 { // not the kernel's
				r.byPath[b.Filename] = b.ID
			}
		}
	}
	return r
}

// Resolve describes address pc of process pid; ret says pc is a return
// address (see the type's doc).
func (r *Resolver) Resolve(pid int32, pc uint64, ret bool) pluginhost.Location {
	at := pc
	if ret && pc > 0 {
		at-- // the call instruction, and the mapping that holds it
	}
	m, ok := r.spaces.Find(pid, at)
	if !ok {
		return pluginhost.Location{}
	}
	var loc pluginhost.Location
	loc.Mapping = pluginhost.Mapping{Start: m.Start, Limit: m.Limit, Offset: m.Offset, Path: m.Path, BuildID: m.BuildID}
	recorded := []byte(m.BuildID)
	if len(recorded) == 0 {
		recorded = r.byPath[m.Path]
		loc.Mapping.BuildID = string(recorded)
	}
	vdso := m.Path == procfs.VDSOPath
	if !vdso && (!strings.HasPrefix(m.Path, "/") || strings.HasPrefix(m.Path, "//")) || r.sym == nil {
		return loc
	}
	if len(recorded) > 0 && !sameBuildID(recorded, r.localBuildID(m.Path)) {
		return loc
	}
	pm := procfs.Mapping{Start: m.Start, End: m.Limit, Offset: m.Offset, Major: m.Major, Minor: m.Minor, Inode: m.Inode, Path: m.Path}
	if pm.Inode == 0 {
		// Not recorded (MMAP, or MMAP2 with a build-id): the symbolizer
		// needs a file mapping, and keys its cache by device, inode and path.
		pm.Inode = 1
	}
	if s, ok, _ := r.sym.Lookup(pm, at); ok {
		loc.Function, loc.FunctionOffset = s.Name, s.Offset+(pc-at)
	}
	return loc
}

// localBuildID returns the hex build-id of the local file at path, cached.
func (r *Resolver) localBuildID(path string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.local[path]; ok {
		return id
	}
	id := ""
	if path == procfs.VDSOPath {
		if img, err := procfs.VDSO(); err == nil {
			id, _ = symbolize.BuildID(bytes.NewReader(img))
		}
	} else if f, err := os.Open(path); err == nil {
		id, _ = symbolize.BuildID(f)
		f.Close()
	}
	r.local[path] = id
	return id
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
