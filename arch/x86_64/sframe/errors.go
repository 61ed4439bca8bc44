package sframe

import (
	"errors"
	"fmt"
)

// Errors of this package (test with errors.Is). A [*FormatError] wraps
// ErrMalformed or ErrUnsupported.
var (
	// ErrNoSFrame means the ELF file has neither a .sframe section nor a
	// PT_GNU_SFRAME segment.
	ErrNoSFrame = errors.New("sframe: no .sframe section")
	// ErrMalformed means the section breaks the format: a bad magic, an
	// offset or count past its end, unsorted functions, rows out of order.
	ErrMalformed = errors.New("sframe: malformed section")
	// ErrUnsupported means a well-formed section this package does not
	// read: another version, ABI or endianness, or flags or FDE types
	// newer than it knows.
	ErrUnsupported = errors.New("sframe: unsupported section")
)

// FormatError reports a section that [Parse] refuses.
type FormatError struct {
	Offset int64  // byte offset in the section of the field at fault
	Msg    string // what is wrong, and in which FDE and FRE
	Err    error  // ErrMalformed or ErrUnsupported
}

// Error says what is wrong and at which offset of the section.
func (e *FormatError) Error() string {
	return fmt.Sprintf("sframe: %s at offset %#x", e.Msg, e.Offset)
}

// Unwrap returns the sentinel e wraps.
func (e *FormatError) Unwrap() error { return e.Err }

func malformed(off uint64, format string, args ...any) *FormatError {
	return &FormatError{Offset: int64(off), Msg: fmt.Sprintf(format, args...), Err: ErrMalformed}
}

func unsupported(off uint64, format string, args ...any) *FormatError {
	return &FormatError{Offset: int64(off), Msg: fmt.Sprintf(format, args...), Err: ErrUnsupported}
}
