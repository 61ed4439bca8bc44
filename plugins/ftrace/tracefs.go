package main

import (
	"io/fs"
	"strings"

	"github.com/unwindd/unwindd/sdk/tracefs"
)

// openTracefs returns tracefs, if its syscall events can be listed by the
// plugin's user (it is root's alone by default), or nil.
func openTracefs() fs.FS { return tracefs.Open("events/syscalls") }

// argNames gives the argument names of syscalls, read from tracefs's
// events/syscalls/sys_enter_<name>/format on first use and cached (a
// missing or unreadable format too). It is not safe for concurrent use.
type argNames struct {
	fsys  fs.FS // nil: no tracefs
	cache map[string][]string
}

func newArgNames(fsys fs.FS) *argNames {
	return &argNames{fsys: fsys, cache: make(map[string][]string)}
}

// lookup returns the argument names of the syscall the kernel calls name
// ("newfstat"), in order, and whether its format could be read.
func (a *argNames) lookup(name string) ([]string, bool) {
	if a == nil || a.fsys == nil {
		return nil, false
	}
	if names, ok := a.cache[name]; ok {
		return names, names != nil
	}
	var names []string
	if b, err := fs.ReadFile(a.fsys, "events/syscalls/sys_enter_"+name+"/format"); err == nil {
		names = parseFormatArgs(b)
	}
	a.cache[name] = names
	return names, names != nil
}

// parseFormatArgs returns the names of the non-common fields of a tracefs
// format file after __syscall_nr, in order ("dfd", "filename", …): a
// syscall's arguments (fields named "__…", which newer kernels add for the
// strings arguments point to, are not arguments). The result is non-nil (a
// syscall without arguments gives an empty slice) when the file parses and
// has a __syscall_nr field, else nil.
func parseFormatArgs(b []byte) []string {
	f, err := tracefs.ParseFormat(b)
	if err != nil {
		return nil
	}
	var names []string
	for _, fd := range f.Fields {
		switch {
		case fd.Name == "__syscall_nr":
			names = []string{}
		case names != nil && !fd.Common && !strings.HasPrefix(fd.Name, "__"):
			names = append(names, fd.Name)
		}
	}
	return names
}
