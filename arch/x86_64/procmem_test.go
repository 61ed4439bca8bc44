package x86_64

import (
	"github.com/unwindd/unwindd/internal/testutil"

	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pattern returns n bytes whose every 8-byte word holds its own index plus
// tag, so that a read from the wrong place cannot look right.
func pattern(n int, tag uint64) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], uint64(i/8)+tag)
	}
	return b
}

func addrOf(b []byte) int64 { return int64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

func TestProcessMemorySelf(t *testing.T) {
	data := pattern(256<<10, 0xabc0000)
	base := addrOf(data)
	m, err := NewProcessMemory(os.Getpid(), 0)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		off  int
		n    int
	}{
		{"word", 0, 8},
		{"unaligned", 13, 8},
		{"next word in window", 64, 8},
		{"crosses window end", DefaultWindow - 3, 16},
		{"far above", 200 << 10, 8},
		{"large, uncached", 1 << 10, 3 * DefaultWindow / 4},
		{"last bytes", len(data) - 5, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := make([]byte, tt.n)
			n, err := m.ReadAt(p, base+int64(tt.off))
			if err != nil || n != tt.n {
				t.Fatalf("ReadAt(%d bytes at +%d) = %d, %v; want %d, nil", tt.n, tt.off, n, err, tt.n)
			}
			if !bytes.Equal(p, data[tt.off:tt.off+tt.n]) {
				t.Errorf("ReadAt(+%d) = %x, want %x", tt.off, p, data[tt.off:tt.off+tt.n])
			}
		})
	}
}

// TestProcessMemoryWindow checks that a walk's worth of word reads upward
// costs one system call per window, not one per word, and that Reset is what
// makes a change in the task visible.
func TestProcessMemoryWindow(t *testing.T) {
	data := pattern(64<<10, 0x5000)
	base := addrOf(data)
	m, err := NewProcessMemory(os.Getpid(), 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	var w [8]byte
	const words = 512 // 4 KiB, inside the first 16 KiB window whatever the alignment
	for i := range words {
		if _, err := m.ReadAt(w[:], base+int64(8*i)); err != nil {
			t.Fatal(err)
		}
		if got := binary.LittleEndian.Uint64(w[:]); got != uint64(i)+0x5000 {
			t.Fatalf("word %d = %#x, want %#x", i, got, uint64(i)+0x5000)
		}
	}
	if m.calls != 1 {
		t.Errorf("%d word reads made %d process_vm_readv calls, want 1", words, m.calls)
	}

	binary.LittleEndian.PutUint64(data[8:], 0xdead)
	if _, err := m.ReadAt(w[:], base+8); err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint64(w[:]); got != 0x5001 {
		t.Errorf("before Reset: read %#x, want the cached %#x", got, 0x5001)
	}
	m.Reset()
	if _, err := m.ReadAt(w[:], base+8); err != nil {
		t.Fatal(err)
	}
	if got := binary.LittleEndian.Uint64(w[:]); got != 0xdead {
		t.Errorf("after Reset: read %#x, want %#x", got, 0xdead)
	}
	if m.calls != 2 {
		t.Errorf("calls = %d after Reset and one read, want 2", m.calls)
	}
}

// TestProcessMemoryUnreadable checks that unmapped memory is a failed read
// (EFAULT, not ErrOutOfSnapshot), including a read that runs off the end of a
// mapping, and that the walk ends with EndUnreadable over it.
func TestProcessMemoryUnreadable(t *testing.T) {
	ptr, err := unix.MmapPtr(-1, 0, nil, 2*pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.MunmapPtr(ptr, 2*pageSize) })
	// Make the second page inaccessible (rather than unmapping it, which
	// would let another mapping land there): the first page is followed by
	// memory that cannot be read.
	if err := unix.Mprotect(unsafe.Slice((*byte)(unsafe.Add(ptr, pageSize)), pageSize), unix.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	mem := unsafe.Slice((*byte)(ptr), pageSize)
	copy(mem, pattern(pageSize, 7))
	base := addrOf(mem)

	tests := []struct {
		name  string
		addr  int64
		n     int
		wantN int
	}{
		{"null page", 0, 8, 0},
		{"hole", base + pageSize, 8, 0},
		{"straddles into the hole", base + pageSize - 4, 8, 4},
		{"negative", -8, 8, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewProcessMemory(os.Getpid(), 0)
			if err != nil {
				t.Fatal(err)
			}
			p := make([]byte, tt.n)
			n, err := m.ReadAt(p, tt.addr)
			if err == nil {
				t.Fatalf("ReadAt(%#x) succeeded, want an error", tt.addr)
			}
			if !errors.Is(err, unix.EFAULT) {
				t.Errorf("ReadAt(%#x) = %v, want EFAULT", tt.addr, err)
			}
			if errors.Is(err, ErrOutOfSnapshot) {
				t.Errorf("ReadAt(%#x) = %v, must not be ErrOutOfSnapshot", tt.addr, err)
			}
			if n != tt.wantN {
				t.Errorf("ReadAt(%#x) n = %d, want %d", tt.addr, n, tt.wantN)
			}
		})
	}

	// A frame chain whose next frame pointer points into the hole.
	binary.LittleEndian.PutUint64(mem[pageSize-32:], uint64(base)+pageSize+64) // saved bp
	binary.LittleEndian.PutUint64(mem[pageSize-24:], 0x401000)                 // return address
	m, err := NewProcessMemory(os.Getpid(), 0)
	if err != nil {
		t.Fatal(err)
	}
	u, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	var tr Trace
	u.Unwind(Regs{IP: 0x401234, SP: uint64(base) + pageSize - 64, BP: uint64(base) + pageSize - 32}, m, &tr)
	if tr.End != EndUnreadable || len(tr.Frames) != 2 || tr.Frames[1].PC != 0x401000 {
		t.Errorf("walk = %+v, end %v; want 2 frames (0x401234, 0x401000), end %v", tr.Frames, tr.End, EndUnreadable)
	}
}

// TestProcessMemoryChild reads another process: the ELF header its
// executable is mapped with, then, once the child is reaped, fails with ESRCH.
func TestProcessMemoryChild(t *testing.T) {
	cmd := testutil.Sleeper(t)
	pid := cmd.Process.Pid
	start := firstMapping(t, pid)

	m, err := NewProcessMemory(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	var hdr [16]byte
	if _, err := m.ReadAt(hdr[:], int64(start)); err != nil {
		t.Fatalf("read the child's ELF header at %#x: %v", start, err)
	}
	if want := "\x7fELF\x02\x01\x01"; string(hdr[:7]) != want {
		t.Errorf("child memory at %#x = %q, want an ELF64 little-endian header %q", start, hdr[:7], want)
	}

	cmd.Process.Kill()
	cmd.Wait()
	m.Reset()
	_, err = m.ReadAt(hdr[:], int64(start))
	if !errors.Is(err, unix.ESRCH) {
		t.Errorf("read of a reaped child = %v, want ESRCH", err)
	}
	if errors.Is(err, ErrOutOfSnapshot) {
		t.Errorf("read of a reaped child = %v, must not be ErrOutOfSnapshot", err)
	}
}

func TestNewProcessMemoryErrors(t *testing.T) {
	for _, tt := range []struct{ pid, window int }{{0, 0}, {-1, 0}, {1, -4096}} {
		if _, err := NewProcessMemory(tt.pid, tt.window); err == nil {
			t.Errorf("NewProcessMemory(%d, %d) succeeded, want an error", tt.pid, tt.window)
		}
	}
	m, err := NewProcessMemory(1, 5000)
	if err != nil {
		t.Fatal(err)
	}
	if m.window != 8192 {
		t.Errorf("window 5000 rounded to %d, want 8192", m.window)
	}
}

// firstMapping returns the start of the mapping of file offset 0 of pid's
// executable, from /proc/pid/maps (parsed here: arch/x86_64 imports nothing
// from host/).
func firstMapping(t *testing.T, pid int) uint64 {
	t.Helper()
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || fields[2] != "00000000" {
			continue
		}
		lo, _, _ := strings.Cut(fields[0], "-")
		start, err := strconv.ParseUint(lo, 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		return start
	}
	t.Fatalf("no mapping of %s at offset 0 in /proc/%d/maps", exe, pid)
	return 0
}
