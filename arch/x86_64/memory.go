package x86_64

import (
	"fmt"
	"io"
)

// Snapshot is a copy of user memory that starts at Base: what perf's
// PERF_SAMPLE_STACK_USER records, beginning at the sample's user sp. Reads
// outside it fail with [ErrOutOfSnapshot]. Data is not copied; the caller
// keeps it alive and unchanged while the Snapshot is in use.
type Snapshot struct {
	Base uint64
	Data []byte
}

// ReadAt copies memory at addr into p. It reads all of p or fails.
func (s *Snapshot) ReadAt(p []byte, addr int64) (int, error) {
	a := uint64(addr)
	if addr < 0 || a < s.Base || a-s.Base > uint64(len(s.Data)) || uint64(len(s.Data))-(a-s.Base) < uint64(len(p)) {
		return 0, fmt.Errorf("read %d bytes at %#x: %w", len(p), a, ErrOutOfSnapshot)
	}
	return copy(p, s.Data[a-s.Base:]), nil
}

var _ io.ReaderAt = (*Snapshot)(nil)
