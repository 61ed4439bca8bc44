package main

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"strings"
)

// tracefsDirs are where tracefs is looked for, in order.
var tracefsDirs = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}

// openTracefs returns the first tracefs directory whose syscall events can
// be listed, or nil: tracefs not mounted, or not readable by the plugin's
// user (it is root's alone by default).
func openTracefs() fs.FS {
	for _, d := range tracefsDirs {
		if _, err := os.ReadDir(d + "/events/syscalls"); err == nil {
			return os.DirFS(d)
		}
	}
	return nil
}

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
// strings arguments point to, are not arguments). The result is non-nil (a syscall without arguments
// gives an empty slice) when the file has a __syscall_nr field, else nil.
func parseFormatArgs(b []byte) []string {
	var names []string
	seenNR := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		decl, ok := strings.CutPrefix(line, "field:")
		if !ok {
			continue
		}
		decl, _, _ = strings.Cut(decl, ";")
		f := strings.Fields(decl)
		if len(f) == 0 {
			continue
		}
		name := strings.TrimLeft(f[len(f)-1], "*")
		if i := strings.IndexByte(name, '['); i >= 0 {
			name = name[:i]
		}
		switch {
		case name == "__syscall_nr":
			seenNR = true
			names = []string{}
		case seenNR && !strings.HasPrefix(name, "common_") && !strings.HasPrefix(name, "__"):
			names = append(names, name)
		}
	}
	if !seenNR {
		return nil
	}
	return names
}
