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

// openTracefs returns the first tracefs directory whose events can be
// listed, or nil: tracefs not mounted, or not readable by the plugin's
// user (it is root's alone by default).
func openTracefs() fs.FS {
	for _, d := range tracefsDirs {
		if _, err := os.ReadDir(d + "/events"); err == nil {
			return os.DirFS(d)
		}
	}
	return nil
}

// fieldType is what a tracepoint field is to a CEL expression.
type fieldType uint8

const (
	fieldSkip   fieldType = iota // an array of numbers: not available (the host sends one field per element)
	fieldInt                     // an integer of any width and sign: a CEL int
	fieldString                  // a char array or a __data_loc char[]: a CEL string
	fieldBytes                   // another __data_loc: CEL bytes
)

// tpField is one field of a tracepoint's format.
type tpField struct {
	Name string
	Type fieldType
}

// parseTracepointFormat returns the fields of a tracefs format file
// (events/GROUP/NAME/format) other than the common_ ones, and whether it
// had any "field:" line at all.
func parseTracepointFormat(b []byte) ([]tpField, bool) {
	var out []tpField
	found := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		decl, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "field:")
		if !ok {
			continue
		}
		found = true
		decl, _, _ = strings.Cut(decl, ";")
		decl = strings.TrimSpace(decl)
		i := strings.LastIndexAny(decl, " *")
		if i < 0 {
			continue
		}
		name, ctype := decl[i+1:], strings.TrimSpace(decl[:i+1])
		array := false
		if j := strings.IndexByte(name, '['); j >= 0 {
			name, array = name[:j], true
		}
		if name == "" || strings.HasPrefix(name, "common_") {
			continue
		}
		char := strings.HasSuffix(strings.TrimSuffix(ctype, "[]"), "char")
		f := tpField{Name: name, Type: fieldInt}
		switch {
		case strings.HasPrefix(ctype, "__data_loc"):
			f.Type = fieldBytes
			if char {
				f.Type = fieldString
			}
		case array && char:
			f.Type = fieldString
		case array:
			f.Type = fieldSkip
		}
		out = append(out, f)
	}
	return out, found
}
