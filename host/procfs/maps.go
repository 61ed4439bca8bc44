package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Perms are the permission bits of a mapping ("r-xp").
type Perms struct {
	Read, Write, Exec bool
	Shared            bool // 's' rather than 'p' (private, copy-on-write)
}

func (p Perms) String() string {
	b := []byte("---p")
	if p.Read {
		b[0] = 'r'
	}
	if p.Write {
		b[1] = 'w'
	}
	if p.Exec {
		b[2] = 'x'
	}
	if p.Shared {
		b[3] = 's'
	}
	return string(b)
}

// Mapping is one line of /proc/PID/maps: the virtual range [Start, End), and
// what is mapped there.
type Mapping struct {
	Start, End   uint64
	Perms        Perms
	Offset       uint64 // file offset of Start
	Major, Minor uint32 // device of the file (0:0 when anonymous)
	Inode        uint64 // 0 when anonymous
	// Path is the mapped file, or a pseudo-path such as "[stack]", "[heap]"
	// or "[vdso]", or "" for an anonymous mapping. A file that was deleted
	// after mapping has Deleted set and the kernel's " (deleted)" suffix
	// removed.
	Path    string
	Deleted bool
}

// File reports whether the mapping is backed by a file (rather than anonymous
// memory or a pseudo-path like "[vdso]").
func (m Mapping) File() bool { return m.Inode != 0 && m.Path != "" && m.Path[0] == '/' }

// FileOffset returns the offset in the mapped file of addr, which must lie in
// the mapping.
func (m Mapping) FileOffset(addr uint64) uint64 { return addr - m.Start + m.Offset }

// Maps are a process's mappings sorted by start address; they do not overlap.
type Maps []Mapping

// Find returns the mapping that holds addr, by binary search.
func (ms Maps) Find(addr uint64) (Mapping, bool) {
	// The first mapping that starts above addr; the one before it may hold it.
	i, _ := slices.BinarySearchFunc(ms, addr, func(m Mapping, a uint64) int {
		if m.Start <= a {
			return -1
		}
		return 1
	})
	if i == 0 || addr >= ms[i-1].End {
		return Mapping{}, false
	}
	return ms[i-1], true
}

// FormatError is a line of maps text that does not parse.
type FormatError struct {
	Line int    // 1-based
	Text string // the line
	Msg  string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("procfs: maps line %d: %s: %q", e.Line, e.Msg, e.Text)
}

// ReadMaps reads /proc/pid/maps.
func ReadMaps(pid int) (Maps, error) {
	f, err := os.Open(taskPath(pid, "maps"))
	if err != nil {
		return nil, fmt.Errorf("procfs: maps of pid %d: %w", pid, err)
	}
	defer f.Close()
	ms, err := ParseMaps(f)
	if err != nil {
		return nil, fmt.Errorf("procfs: maps of pid %d: %w", pid, err)
	}
	return ms, nil
}

// ParseMaps parses the text of /proc/PID/maps. The result is sorted by start
// address; overlapping or empty ranges are errors.
func ParseMaps(r io.Reader) (Maps, error) {
	var ms Maps
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20) // paths can be up to PATH_MAX and more
	for line := 1; sc.Scan(); line++ {
		text := sc.Bytes()
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		m, msg := parseMapping(string(text))
		if msg != "" {
			return nil, &FormatError{Line: line, Text: string(text), Msg: msg}
		}
		ms = append(ms, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("procfs: read maps: %w", err)
	}
	slices.SortFunc(ms, func(a, b Mapping) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	for i := 1; i < len(ms); i++ {
		if ms[i].Start < ms[i-1].End {
			return nil, fmt.Errorf("procfs: maps: %#x-%#x overlaps %#x-%#x", ms[i].Start, ms[i].End, ms[i-1].Start, ms[i-1].End)
		}
	}
	return ms, nil
}

// parseMapping parses one maps line:
//
//	55d0c5c00000-55d0c5c02000 r--p 00000000 fd:01 1234      /usr/bin/cat
//
// The path, the sixth field, is the rest of the line after the blanks that
// follow the inode, and may itself hold blanks. It returns a message when the
// line does not parse.
func parseMapping(s string) (Mapping, string) {
	var m Mapping
	var f [5]string
	rest := s
	for i := range f {
		rest = strings.TrimLeft(rest, " \t")
		j := strings.IndexAny(rest, " \t")
		if j < 0 {
			j = len(rest)
		}
		f[i], rest = rest[:j], rest[j:]
		if f[i] == "" {
			return m, fmt.Sprintf("%d fields, want at least 5", i)
		}
	}
	lo, hi, ok := strings.Cut(f[0], "-")
	if !ok {
		return m, "address range without '-'"
	}
	var err error
	if m.Start, err = strconv.ParseUint(lo, 16, 64); err != nil {
		return m, "bad start address"
	}
	if m.End, err = strconv.ParseUint(hi, 16, 64); err != nil {
		return m, "bad end address"
	}
	if m.End <= m.Start {
		return m, "empty address range"
	}
	if len(f[1]) != 4 {
		return m, "permissions are not 4 characters"
	}
	for i, want := range "rwx" {
		switch c := rune(f[1][i]); c {
		case want:
			switch i {
			case 0:
				m.Perms.Read = true
			case 1:
				m.Perms.Write = true
			case 2:
				m.Perms.Exec = true
			}
		case '-':
		default:
			return m, fmt.Sprintf("bad permission %q", c)
		}
	}
	switch f[1][3] {
	case 's':
		m.Perms.Shared = true
	case 'p':
	default:
		return m, fmt.Sprintf("bad sharing %q", f[1][3])
	}
	if m.Offset, err = strconv.ParseUint(f[2], 16, 64); err != nil {
		return m, "bad offset"
	}
	maj, mnr, ok := strings.Cut(f[3], ":")
	if !ok {
		return m, "device without ':'"
	}
	major, err := strconv.ParseUint(maj, 16, 32)
	if err != nil {
		return m, "bad device major"
	}
	minor, err := strconv.ParseUint(mnr, 16, 32)
	if err != nil {
		return m, "bad device minor"
	}
	m.Major, m.Minor = uint32(major), uint32(minor)
	if m.Inode, err = strconv.ParseUint(f[4], 10, 64); err != nil {
		return m, "bad inode"
	}
	m.Path = strings.TrimLeft(rest, " \t")
	if p, ok := strings.CutSuffix(m.Path, " (deleted)"); ok && m.Inode != 0 {
		m.Path, m.Deleted = p, true
	}
	return m, ""
}
