package x86_64

import (
	"fmt"
	"io"
	"unsafe"

	"golang.org/x/sys/unix"
)

// DefaultWindow is the number of bytes a [ProcessMemory] reads in one
// process_vm_readv call unless told otherwise: 32 KiB, page-aligned, from the
// page of the address upward (stacks are walked toward higher addresses).
const DefaultWindow = 32 << 10

const pageSize = 4096

// ProcessMemory is a [Memory] that reads a live task's memory with
// process_vm_readv(2). It does not make one system call per word: a read that
// misses its cache fetches a whole window (the page holding the address and
// the pages above it, [DefaultWindow] bytes in all) in one call, and later
// reads inside that window are served from it.
//
// The cache is only as fresh as the task: call [ProcessMemory.Reset] whenever
// the task may have run since the last read (between two stops of a traced
// task, say). A read that fails (unmapped memory: EFAULT; the task is gone:
// ESRCH; no permission: EPERM; only part of the bytes readable) returns an
// error wrapping the errno, never [ErrOutOfSnapshot], so that a walk over it
// ends with [EndUnreadable].
//
// Reading another process needs the right to ptrace it
// (PTRACE_MODE_ATTACH_REALCREDS); a tracer that has stopped the task has it.
// A ProcessMemory is not safe for concurrent use.
type ProcessMemory struct {
	pid    int
	window int

	buf   []byte // the window; buf[:n] holds memory at base
	base  uint64
	n     int
	calls int // process_vm_readv calls made, for tests

	local  [1]unix.Iovec       // reused so that a read does not allocate
	remote [1]unix.RemoteIovec // idem
}

// NewProcessMemory returns a reader of the memory of task pid (a process id
// or a thread id: threads of a process share its memory) that reads window
// bytes per system call; window 0 means [DefaultWindow]. The window is rounded
// up to whole pages.
func NewProcessMemory(pid, window int) (*ProcessMemory, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("x86_64: process memory: pid %d must be > 0", pid)
	}
	if window < 0 {
		return nil, fmt.Errorf("x86_64: process memory: window %d must be >= 0", window)
	}
	if window == 0 {
		window = DefaultWindow
	}
	window = (window + pageSize - 1) &^ (pageSize - 1)
	return &ProcessMemory{pid: pid, window: window}, nil
}

// PID reports the task whose memory m reads.
func (m *ProcessMemory) PID() int { return m.pid }

// Reset drops the cached window, so that the next read fetches memory anew.
func (m *ProcessMemory) Reset() { m.n = 0 }

// ReadAt copies len(p) bytes of the task's memory at addr into p. It reads all
// of p or returns an error; on error n counts the bytes that were readable.
func (m *ProcessMemory) ReadAt(p []byte, addr int64) (int, error) {
	if addr < 0 {
		return 0, fmt.Errorf("x86_64: read %d bytes at %#x of pid %d: negative address: %w", len(p), uint64(addr), m.pid, unix.EFAULT)
	}
	a := uint64(addr)
	if len(p) == 0 {
		return 0, nil
	}
	if n, ok := m.cached(p, a); ok {
		return n, nil
	}
	if len(p) > m.window/2 {
		// Larger than a window is useful for: read it alone, uncached.
		n, err := m.readv(p, a)
		if err != nil {
			return n, fmt.Errorf("x86_64: read %d bytes at %#x of pid %d: %w", len(p), a, m.pid, err)
		}
		if n < len(p) {
			return n, fmt.Errorf("x86_64: read %d bytes at %#x of pid %d: only %d readable: %w", len(p), a, m.pid, n, unix.EFAULT)
		}
		return n, nil
	}
	if m.buf == nil {
		m.buf = make([]byte, m.window)
	}
	m.n = 0
	base := a &^ (pageSize - 1)
	if a+uint64(len(p)) > base+uint64(m.window) || base+uint64(m.window) < base {
		base = a // the read would straddle the window's end: start it at a
	}
	n, err := m.readv(m.buf, base)
	if err != nil {
		return 0, fmt.Errorf("x86_64: read %d bytes at %#x of pid %d: %w", len(p), a, m.pid, err)
	}
	m.base, m.n = base, n
	if n, ok := m.cached(p, a); ok {
		return n, nil
	}
	// The window ended (at an unmapped page) before the bytes asked for.
	k := 0
	if end := m.base + uint64(m.n); a < end {
		k = copy(p, m.buf[a-m.base:m.n])
	}
	return k, fmt.Errorf("x86_64: read %d bytes at %#x of pid %d: only %d readable: %w", len(p), a, m.pid, k, unix.EFAULT)
}

// cached serves p from the window when the window holds all of it.
func (m *ProcessMemory) cached(p []byte, a uint64) (int, bool) {
	if m.n == 0 || a < m.base {
		return 0, false
	}
	off := a - m.base
	if off > uint64(m.n) || uint64(m.n)-off < uint64(len(p)) {
		return 0, false
	}
	return copy(p, m.buf[off:m.n]), true
}

// readv reads len(p) bytes at a in one process_vm_readv call. It returns the
// bytes read, which are fewer than asked when a page in the range is not
// mapped; a fault on the first page is an error.
func (m *ProcessMemory) readv(p []byte, a uint64) (int, error) {
	m.local[0] = unix.Iovec{Base: unsafe.SliceData(p)}
	m.local[0].SetLen(len(p))
	m.remote[0] = unix.RemoteIovec{Base: uintptr(a), Len: len(p)}
	m.calls++
	for {
		n, err := unix.ProcessVMReadv(m.pid, m.local[:], m.remote[:], 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("process_vm_readv: %w", err)
		}
		return n, nil
	}
}

var _ io.ReaderAt = (*ProcessMemory)(nil)
