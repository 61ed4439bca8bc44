package main

import (
	"io/fs"
	"strings"

	"github.com/unwindd/unwindd/sdk/tracefs"
)

// openTracefs returns tracefs, if its events can be listed by the plugin's
// user (it is root's alone by default), or nil.
func openTracefs() fs.FS { return tracefs.Open("events") }

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
// (events/GROUP/NAME/format) other than the common ones, as CEL sees them,
// and whether the file could be parsed.
func parseTracepointFormat(b []byte) ([]tpField, bool) {
	f, err := tracefs.ParseFormat(b)
	if err != nil {
		return nil, false
	}
	var out []tpField
	for i := range f.Fields {
		fd := &f.Fields[i]
		if fd.Common {
			continue
		}
		char := strings.HasSuffix(fd.Type, "char")
		t := fieldInt
		switch {
		case fd.Dynamic && char:
			t = fieldString
		case fd.Dynamic:
			t = fieldBytes
		case fd.ArrayLen > 0 && char:
			t = fieldString
		case fd.ArrayLen > 0:
			t = fieldSkip
		}
		out = append(out, tpField{Name: fd.Name, Type: t})
	}
	return out, true
}
