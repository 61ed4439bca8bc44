// Package tracefs reads what the kernel's tracefs says about tracepoints:
// their format files (events/SYSTEM/NAME/format: a record's fields, with
// their C types, offsets and sizes), and the fields of a record by them.
//
// It exists so that the host (perf.data's tracing data, the live perf
// source) and plugins (the ftrace plugin's syscall argument names, the bpf
// plugin's tracepoint fields) parse format files one way, and so that a
// plugin finds tracefs where the host does. It imports nothing of the host.
package tracefs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

var le = binary.LittleEndian

// Dirs are where tracefs is looked for, in order.
var Dirs = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

// Open returns the first of [Dirs] in which sub (say "events" or
// "events/syscalls") can be listed, as an fs.FS, or nil: tracefs is not
// mounted, or not readable by this process's user (it is root's alone by
// default).
func Open(sub string) fs.FS {
	for _, d := range Dirs {
		if _, err := os.ReadDir(d + "/" + sub); err == nil {
			return os.DirFS(d)
		}
	}
	return nil
}

// cstring is b up to its first NUL.
func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Format is a tracepoint's record layout: the text of a tracefs
// events/SYSTEM/NAME/format file, parsed.
type Format struct {
	System string  // "raw_syscalls"; empty when the text did not say
	Name   string  // "sys_enter"
	ID     uint64  // the tracepoint id, perf_event_attr.config
	Fields []Field // common fields first, in the file's order
}

// Field is one field of a tracepoint record.
type Field struct {
	Name     string // "args"
	Type     string // the C type without the array suffix: "unsigned long"
	Offset   int    // from the start of the RAW payload
	Size     int    // bytes: of the whole array for an array
	Signed   bool
	ArrayLen int  // N for "name[N]", 0 for a scalar
	Dynamic  bool // __data_loc: a u32 (length<<16 | offset) locating the bytes
	Common   bool // one of the common_ fields every record has
}

// Field returns the field called name, or nil.
func (e *Format) Field(name string) *Field {
	for i := range e.Fields {
		if e.Fields[i].Name == name {
			return &e.Fields[i]
		}
	}
	return nil
}

// ParseFormat parses the text of a tracefs format file (name, ID, and the
// "field:TYPE NAME; offset:N; size:N; signed:N;" lines). System is left to
// the caller (it is the directory name in tracefs).
func ParseFormat(text []byte) (*Format, error) {
	e := &Format{}
	inFormat := false
	common := true
	for n, line := range strings.Split(string(text), "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "name:"):
			e.Name = strings.TrimSpace(t[5:])
		case strings.HasPrefix(t, "ID:"):
			id, err := strconv.ParseUint(strings.TrimSpace(t[3:]), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("tracefs: format line %d: bad ID %q", n+1, t[3:])
			}
			e.ID = id
		case t == "format:":
			inFormat = true
		case t == "" && inFormat:
			if len(e.Fields) > 0 {
				common = false
			}
		case strings.HasPrefix(t, "field:") && inFormat:
			f, err := parseField(t)
			if err != nil {
				return nil, fmt.Errorf("tracefs: format line %d: %v", n+1, err)
			}
			f.Common = common && strings.HasPrefix(f.Name, "common_")
			e.Fields = append(e.Fields, f)
		case strings.HasPrefix(t, "print fmt:"):
			inFormat = false
		}
	}
	if e.Name == "" {
		return nil, fmt.Errorf("tracefs: format has no name")
	}
	return e, nil
}

func parseField(t string) (Field, error) {
	var f Field
	haveOff, haveSize := false, false
	for _, part := range strings.Split(t, ";") {
		part = strings.TrimSpace(part)
		k, v, ok := strings.Cut(part, ":")
		if !ok {
			continue
		}
		switch k {
		case "field", "field special":
			decl := strings.TrimSpace(v)
			if strings.HasPrefix(decl, "__data_loc ") {
				f.Dynamic = true
				decl = strings.TrimSpace(strings.TrimPrefix(decl, "__data_loc "))
			}
			i := strings.LastIndexAny(decl, " \t*")
			if i < 0 || i == len(decl)-1 {
				return f, fmt.Errorf("bad field declaration %q", v)
			}
			f.Type, f.Name = strings.TrimSpace(decl[:i+1]), decl[i+1:]
			if j := strings.IndexByte(f.Name, '['); j >= 0 {
				dim := strings.TrimSuffix(f.Name[j+1:], "]")
				f.Name = f.Name[:j]
				if dim != "" {
					n, err := strconv.Atoi(dim)
					if err != nil || n < 0 {
						// A symbolic length (e.g. TASK_COMM_LEN): the size says it.
						n = -1
					}
					f.ArrayLen = n
				}
			}
			if f.Dynamic {
				f.Type = strings.TrimSuffix(f.Type, "[]")
			}
		case "offset", "size", "signed":
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 0 {
				return f, fmt.Errorf("bad %s %q", k, v)
			}
			switch k {
			case "offset":
				f.Offset, haveOff = n, true
			case "size":
				f.Size, haveSize = n, true
			case "signed":
				f.Signed = n != 0
			}
		}
	}
	if f.Name == "" || !haveOff || !haveSize {
		return f, fmt.Errorf("incomplete field %q", t)
	}
	if f.ArrayLen < 0 {
		f.ArrayLen = 0
		if es := elemSize(f.Type); es > 0 && f.Size%es == 0 {
			f.ArrayLen = f.Size / es
		}
	}
	return f, nil
}

func elemSize(typ string) int {
	switch {
	case strings.HasSuffix(typ, "char"), strings.HasSuffix(typ, "u8"), strings.HasSuffix(typ, "s8"), typ == "bool":
		return 1
	case strings.HasSuffix(typ, "short"), strings.HasSuffix(typ, "16"):
		return 2
	case strings.HasSuffix(typ, "long"), strings.HasSuffix(typ, "64"), strings.HasSuffix(typ, "*"):
		return 8
	case strings.HasSuffix(typ, "int"), strings.HasSuffix(typ, "32"):
		return 4
	}
	return 0
}

// ElemSize is the size of one element: Size/ArrayLen for an array, Size
// for a scalar.
func (f *Field) ElemSize() int {
	if f.ArrayLen > 0 && f.Size%f.ArrayLen == 0 {
		return f.Size / f.ArrayLen
	}
	return f.Size
}

// Bytes returns the bytes of f in the RAW payload raw (for a __data_loc
// field, the bytes it locates), aliasing raw.
func (f *Field) Bytes(raw []byte) ([]byte, error) {
	if f.Offset > len(raw) || f.Size > len(raw)-f.Offset {
		return nil, fmt.Errorf("tracefs: field %s [%d:+%d] beyond %d-byte payload", f.Name, f.Offset, f.Size, len(raw))
	}
	b := raw[f.Offset : f.Offset+f.Size]
	if !f.Dynamic {
		return b, nil
	}
	if len(b) < 4 {
		return nil, fmt.Errorf("tracefs: __data_loc field %s of size %d", f.Name, len(b))
	}
	loc := le.Uint32(b)
	off, n := int(loc&0xffff), int(loc>>16)
	if off > len(raw) || n > len(raw)-off {
		return nil, fmt.Errorf("tracefs: __data_loc field %s [%d:+%d] beyond %d-byte payload", f.Name, off, n, len(raw))
	}
	return raw[off : off+n], nil
}

// Uint returns element i of f (0 for a scalar) from raw, sign-extended to
// 64 bits when the field is signed (then convert to int64).
func (f *Field) Uint(raw []byte, i int) (uint64, error) {
	if f.Dynamic {
		return 0, fmt.Errorf("tracefs: field %s is __data_loc", f.Name)
	}
	b, err := f.Bytes(raw)
	if err != nil {
		return 0, err
	}
	es := f.ElemSize()
	if i < 0 || (i+1)*es > len(b) {
		return 0, fmt.Errorf("tracefs: field %s has no element %d", f.Name, i)
	}
	b = b[i*es : (i+1)*es]
	var v uint64
	switch es {
	case 1:
		v = uint64(b[0])
		if f.Signed {
			v = uint64(int64(int8(b[0])))
		}
	case 2:
		v = uint64(le.Uint16(b))
		if f.Signed {
			v = uint64(int64(int16(v)))
		}
	case 4:
		v = uint64(le.Uint32(b))
		if f.Signed {
			v = uint64(int64(int32(v)))
		}
	case 8:
		v = le.Uint64(b)
	default:
		return 0, fmt.Errorf("tracefs: field %s of element size %d is not an integer", f.Name, es)
	}
	return v, nil
}

// Int is Uint as a signed value.
func (f *Field) Int(raw []byte, i int) (int64, error) {
	v, err := f.Uint(raw, i)
	return int64(v), err
}

// Text returns a char array or __data_loc string field up to its first NUL.
func (f *Field) Text(raw []byte) (string, error) {
	b, err := f.Bytes(raw)
	if err != nil {
		return "", err
	}
	return cstring(b), nil
}
