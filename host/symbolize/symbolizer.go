package symbolize

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"go.uber.org/zap"

	"github.com/unwindd/unwindd/host/procfs"
)

// fileKey identifies a mapped file.
type fileKey struct {
	major, minor uint32
	inode        uint64
	path         string
}

type entry struct {
	tab *Table
	err error
}

// Symbolizer looks up addresses of mapped files, caching one [Table] per file.
// It is safe for concurrent use.
type Symbolizer struct {
	log      *zap.Logger
	debugDir string

	mu     sync.Mutex // guards tables
	tables map[fileKey]entry
}

// DefaultDebugDir is where separate debug files are looked for by build-id
// (Debian's -dbg and -dbgsym packages install them there).
const DefaultDebugDir = "/usr/lib/debug"

// Options configure a [Symbolizer]. The zero value means the defaults.
type Options struct {
	// DebugDir is searched for separate debug files by build-id; "" means
	// [DefaultDebugDir]. Set NoDebugFiles to search nowhere.
	DebugDir     string
	NoDebugFiles bool
}

// New returns an empty Symbolizer that logs the files it reads to log (nil
// means no logging).
func New(opts Options, log *zap.Logger) *Symbolizer {
	if log == nil {
		log = zap.NewNop()
	}
	dir := opts.DebugDir
	if dir == "" {
		dir = DefaultDebugDir
	}
	if opts.NoDebugFiles {
		dir = ""
	}
	return &Symbolizer{log: log, debugDir: dir, tables: make(map[fileKey]entry)}
}

// Lookup returns the function symbol that holds addr, an address inside the
// mapping m. ok is false, with a nil error, when m is not a file mapping or
// no symbol of the file holds the address. The error says why the file
// could not be read; it is remembered, and returned again for later lookups
// in the same file.
//
// The [vdso] mapping is named from unwindd's own vDSO (procfs.VDSO): the
// kernel maps the same one into every process.
func (s *Symbolizer) Lookup(m procfs.Mapping, addr uint64) (sym Symbol, ok bool, err error) {
	if !m.File() && m.Path != procfs.VDSOPath || addr < m.Start || addr >= m.End {
		return Symbol{}, false, nil
	}
	tab, err := s.table(m)
	if err != nil {
		return Symbol{}, false, err
	}
	vaddr, ok := tab.Vaddr(m.FileOffset(addr))
	if !ok {
		return Symbol{}, false, nil
	}
	sym, ok = tab.Lookup(vaddr)
	return sym, ok, nil
}

// table returns the cached Table of m's file, reading it on first use.
func (s *Symbolizer) table(m procfs.Mapping) (*Table, error) {
	key := fileKey{major: m.Major, minor: m.Minor, inode: m.Inode, path: m.Path}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.tables[key]; ok {
		return e.tab, e.err
	}
	var (
		tab *Table
		err error
	)
	if m.Path == procfs.VDSOPath {
		tab, err = readVDSOTable()
	} else {
		tab, err = s.readTable(m.Path)
	}
	if err != nil {
		s.log.Debug("symbol table unreadable", zap.String("path", m.Path), zap.Error(err))
	} else {
		s.log.Debug("symbol table read", zap.String("path", m.Path), zap.Int("functions", tab.Len()))
	}
	s.tables[key] = entry{tab: tab, err: err}
	return tab, err
}

// readVDSOTable reads the Table of this process's vDSO image.
func readVDSOTable() (*Table, error) {
	img, err := procfs.VDSO()
	if err != nil {
		return nil, fmt.Errorf("symbolize: %w", err)
	}
	return NewTable(bytes.NewReader(img))
}

// readTable reads the Table of the file at path, with the symbols of its
// separate debug file if one is installed under debugDir by build-id
// (debugDir/.build-id/ab/cdef….debug, as gdb and eu-stack look for it).
func (s *Symbolizer) readTable(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("symbolize: %w", err)
	}
	defer f.Close()
	var debug []io.ReaderAt
	if id, err := BuildID(f); err == nil && len(id) > 2 && s.debugDir != "" {
		dpath := filepath.Join(s.debugDir, ".build-id", id[:2], id[2:]+".debug")
		if df, err := os.Open(dpath); err == nil {
			defer df.Close()
			debug = append(debug, df)
			s.log.Debug("separate debug file", zap.String("path", path), zap.String("debug", dpath))
		}
	}
	tab, err := NewTable(f, debug...)
	if err != nil {
		return nil, fmt.Errorf("symbolize: %s: %w", path, err)
	}
	return tab, nil
}
