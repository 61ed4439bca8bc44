package perfdata

import (
	"errors"
	"fmt"
)

// Errors a [*FormatError] may wrap (test with errors.Is).
var (
	// ErrBigEndian means the file was written on a big-endian machine
	// (its magic is "PERFILE2" byte-swapped): not supported.
	ErrBigEndian = errors.New("perfdata: big-endian perf.data is not supported")
	// ErrArch means the file's HEADER_ARCH names another architecture than
	// x86_64.
	ErrArch = errors.New("perfdata: perf.data of another architecture than x86_64")
	// ErrNotPerfData means the file does not start with perf's magic, or
	// with the magic of the old version-1 format, which is not supported.
	ErrNotPerfData = errors.New("perfdata: not a perf.data (PERFILE2) file")
	// ErrTruncated means the data ends inside a header, section or record.
	ErrTruncated = errors.New("perfdata: truncated")
)

// FormatError reports bad or unsupported data in a perf.data file.
type FormatError struct {
	Offset int64  // file offset of the record or field at fault
	Msg    string // what is wrong
	Val    any    // the bad value, if any
	Err    error  // one of the Err… sentinels, or nil
}

func (e *FormatError) Error() string {
	msg := e.Msg
	if e.Val != nil {
		switch v := e.Val.(type) {
		case string, []byte:
			msg = fmt.Sprintf("%s %q", msg, v)
		default:
			msg = fmt.Sprintf("%s %#x", msg, v)
		}
	}
	return fmt.Sprintf("perfdata: %s at offset %#x", msg, e.Offset)
}

// Unwrap returns the sentinel e wraps, if any.
func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(off int64, msg string, val any) *FormatError {
	return &FormatError{Offset: off, Msg: msg, Val: val}
}

func truncErr(off int64, what string) *FormatError {
	return &FormatError{Offset: off, Msg: what + " truncated", Err: ErrTruncated}
}
