package procfs

import (
	"errors"
	"os"
	"strings"
	"testing"
)

const sampleMaps = `5580e6b2a000-5580e6b2c000 r--p 00000000 fe:00 247026                     /usr/bin/cat
5580e6b2c000-5580e6b31000 r-xp 00002000 fe:00 247026                     /usr/bin/cat
55811a35d000-55811a37e000 rw-p 00000000 00:00 0                          [heap]
7f94c1ff2000-7f94c2014000 rw-p 00000000 00:00 0 
7f94c209d000-7f94c21f3000 r-xp 00026000 fe:00 326269                     /usr/lib/x86_64-linux-gnu/libc.so.6
7f94c225a000-7f94c2261000 r--s 00000000 fe:00 325737                     /usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache
7f94c2300000-7f94c2301000 r-xp 00001000 08:11 42                         /tmp/my prog (v2) (deleted)
7ffc1c6b4000-7ffc1c6d5000 rw-p 00000000 00:00 0                          [stack]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
`

func TestParseMaps(t *testing.T) {
	// Shuffled: ParseMaps sorts.
	lines := strings.Split(strings.TrimSuffix(sampleMaps, "\n"), "\n")
	lines[0], lines[5] = lines[5], lines[0]
	ms, err := ParseMaps(strings.NewReader(strings.Join(lines, "\n") + "\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Maps{
		{Start: 0x5580e6b2a000, End: 0x5580e6b2c000, Perms: Perms{Read: true}, Major: 0xfe, Inode: 247026, Path: "/usr/bin/cat"},
		{Start: 0x5580e6b2c000, End: 0x5580e6b31000, Perms: Perms{Read: true, Exec: true}, Offset: 0x2000, Major: 0xfe, Inode: 247026, Path: "/usr/bin/cat"},
		{Start: 0x55811a35d000, End: 0x55811a37e000, Perms: Perms{Read: true, Write: true}, Path: "[heap]"},
		{Start: 0x7f94c1ff2000, End: 0x7f94c2014000, Perms: Perms{Read: true, Write: true}},
		{Start: 0x7f94c209d000, End: 0x7f94c21f3000, Perms: Perms{Read: true, Exec: true}, Offset: 0x26000, Major: 0xfe, Inode: 326269, Path: "/usr/lib/x86_64-linux-gnu/libc.so.6"},
		{Start: 0x7f94c225a000, End: 0x7f94c2261000, Perms: Perms{Read: true, Shared: true}, Major: 0xfe, Inode: 325737, Path: "/usr/lib/x86_64-linux-gnu/gconv/gconv-modules.cache"},
		{Start: 0x7f94c2300000, End: 0x7f94c2301000, Perms: Perms{Read: true, Exec: true}, Offset: 0x1000, Major: 8, Minor: 0x11, Inode: 42, Path: "/tmp/my prog (v2)", Deleted: true},
		{Start: 0x7ffc1c6b4000, End: 0x7ffc1c6d5000, Perms: Perms{Read: true, Write: true}, Path: "[stack]"},
		{Start: 0xffffffffff600000, End: 0xffffffffff601000, Perms: Perms{Exec: true}, Path: "[vsyscall]"},
	}
	if len(ms) != len(want) {
		t.Fatalf("got %d mappings, want %d: %+v", len(ms), len(want), ms)
	}
	for i := range want {
		if ms[i] != want[i] {
			t.Errorf("mapping %d:\n got %+v\nwant %+v", i, ms[i], want[i])
		}
	}
	if got := ms[1].Perms.String(); got != "r-xp" {
		t.Errorf("Perms.String() = %q, want r-xp", got)
	}
	if got := ms[5].Perms.String(); got != "r--s" {
		t.Errorf("Perms.String() = %q, want r--s", got)
	}
	if !ms[1].File() || ms[2].File() || ms[3].File() || ms[8].File() {
		t.Errorf("File(): want true only for file-backed mappings")
	}
	if got := ms[1].FileOffset(0x5580e6b2c1a9); got != 0x21a9 {
		t.Errorf("FileOffset = %#x, want 0x21a9", got)
	}
}

func TestMapsFind(t *testing.T) {
	ms, err := ParseMaps(strings.NewReader(sampleMaps))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr uint64
		want string // path; "-" for no mapping
		off  uint64 // expected file offset
	}{
		{0, "-", 0},
		{0x5580e6b29fff, "-", 0},
		{0x5580e6b2a000, "/usr/bin/cat", 0},
		{0x5580e6b2bfff, "/usr/bin/cat", 0x1fff},
		{0x5580e6b2c000, "/usr/bin/cat", 0x2000}, // the next mapping of the same file
		{0x5580e6b2c1a9, "/usr/bin/cat", 0x21a9},
		{0x5580e6b31000, "-", 0}, // just past the end
		{0x55811a35d008, "[heap]", 8},
		{0x7f94c1ff2010, "", 0x10},
		{0x7f94c21f2fff, "/usr/lib/x86_64-linux-gnu/libc.so.6", 0x17bfff},
		{0x7ffc1c6d4ff8, "[stack]", 0x20ff8},
		{0xffffffffff600400, "[vsyscall]", 0x400},
		{^uint64(0), "-", 0},
	}
	for _, tt := range tests {
		m, ok := ms.Find(tt.addr)
		if tt.want == "-" {
			if ok {
				t.Errorf("Find(%#x) = %+v, want no mapping", tt.addr, m)
			}
			continue
		}
		if !ok || m.Path != tt.want || m.FileOffset(tt.addr) != tt.off {
			t.Errorf("Find(%#x) = %q+%#x (found %v), want %q+%#x", tt.addr, m.Path, m.FileOffset(tt.addr), ok, tt.want, tt.off)
		}
	}
	if _, ok := Maps(nil).Find(0x1000); ok {
		t.Error("Find on empty Maps found a mapping")
	}
}

func TestParseMapsErrors(t *testing.T) {
	tests := []struct {
		name, text string
		line       int // 0: not a FormatError
	}{
		{"no dash", "5580e6b2a000 r--p 00000000 fe:00 1 /x\n", 1},
		{"bad start", "zz-5580e6b2c000 r--p 00000000 fe:00 1 /x\n", 1},
		{"empty range", "2000-2000 r--p 00000000 fe:00 1 /x\n", 1},
		{"short perms", "1000-2000 r-p 00000000 fe:00 1 /x\n", 1},
		{"bad perm", "1000-2000 rwzp 00000000 fe:00 1 /x\n", 1},
		{"bad sharing", "1000-2000 r-xq 00000000 fe:00 1 /x\n", 1},
		{"bad offset", "1000-2000 r-xp 0000g000 fe:00 1 /x\n", 1},
		{"bad device", "1000-2000 r-xp 00000000 fe00 1 /x\n", 1},
		{"bad inode", "1000-2000 r-xp 00000000 fe:00 x1 /x\n", 1},
		{"too few fields", "1000-2000 r-xp 00000000\n", 1},
		{"second line", "1000-2000 r-xp 0 fe:00 1 /x\n3000-2000 r-xp 0 fe:00 1 /x\n", 2},
		{"overlap", "1000-3000 r-xp 0 fe:00 1 /x\n2000-4000 r-xp 0 fe:00 1 /y\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := ParseMaps(strings.NewReader(tt.text))
			if err == nil {
				t.Fatalf("ParseMaps succeeded with %+v, want an error", ms)
			}
			var fe *FormatError
			if tt.line == 0 {
				if errors.As(err, &fe) {
					t.Errorf("error %v is a FormatError, want another error", err)
				}
				return
			}
			if !errors.As(err, &fe) || fe.Line != tt.line {
				t.Errorf("error %v, want a FormatError at line %d", err, tt.line)
			}
		})
	}
}

func TestReadMapsSelf(t *testing.T) {
	ms, err := ReadMaps(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// This function's code is mapped from the test binary.
	m, ok := ms.Find(pcOfSelf())
	if !ok || m.Path != exe || !m.Perms.Exec {
		t.Errorf("Find(own pc) = %+v (found %v), want an executable mapping of %s", m, ok, exe)
	}
	if _, err := ReadMaps(1 << 30); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadMaps(no such pid) = %v, want ErrNotExist", err)
	}
}
