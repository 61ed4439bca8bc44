package x86_64

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPerfRegConstants(t *testing.T) {
	// perf_regs.h numbers the registers in this order from 0.
	order := []PerfReg{
		PERF_REG_X86_AX, PERF_REG_X86_BX, PERF_REG_X86_CX, PERF_REG_X86_DX,
		PERF_REG_X86_SI, PERF_REG_X86_DI, PERF_REG_X86_BP, PERF_REG_X86_SP,
		PERF_REG_X86_IP, PERF_REG_X86_FLAGS, PERF_REG_X86_CS, PERF_REG_X86_SS,
		PERF_REG_X86_DS, PERF_REG_X86_ES, PERF_REG_X86_FS, PERF_REG_X86_GS,
		PERF_REG_X86_R8, PERF_REG_X86_R9, PERF_REG_X86_R10, PERF_REG_X86_R11,
		PERF_REG_X86_R12, PERF_REG_X86_R13, PERF_REG_X86_R14, PERF_REG_X86_R15,
	}
	for i, r := range order {
		if int(r) != i {
			t.Errorf("register %v = %d, want %d", r, r, i)
		}
	}
	if PERF_REG_X86_32_MAX != 16 || PERF_REG_X86_64_MAX != 24 {
		t.Errorf("PERF_REG_X86_32_MAX, _64_MAX = %d, %d; want 16, 24", PERF_REG_X86_32_MAX, PERF_REG_X86_64_MAX)
	}
	if got, want := uint64(SampleRegsUserMask), uint64(0xff0fff); got != want {
		t.Errorf("SampleRegsUserMask = %#x, want %#x", got, want)
	}
	abis := []struct {
		got  RegsABI
		want uint64
	}{
		{PERF_SAMPLE_REGS_ABI_NONE, unix.PERF_SAMPLE_REGS_ABI_NONE},
		{PERF_SAMPLE_REGS_ABI_32, unix.PERF_SAMPLE_REGS_ABI_32},
		{PERF_SAMPLE_REGS_ABI_64, unix.PERF_SAMPLE_REGS_ABI_64},
	}
	for _, a := range abis {
		if uint64(a.got) != a.want {
			t.Errorf("%v = %d, want %d (x/sys/unix)", a.got, uint64(a.got), a.want)
		}
	}
}

func TestPerfRegStrings(t *testing.T) {
	tests := []struct{ got, want string }{
		{PERF_REG_X86_AX.String(), "AX"},
		{PERF_REG_X86_FLAGS.String(), "FLAGS"},
		{PERF_REG_X86_R15.String(), "R15"},
		{PerfReg(24).String(), "PerfReg(24)"},
		{RegMask(0).String(), "none"},
		{UnwindRegsMask.String(), "BP|SP|IP"},
		{RegsNoSupport64.String(), "DS|ES|FS|GS"},
		{RegMask(1<<PERF_REG_X86_R15 | 1<<32).String(), "R15|bit32"},
		{PERF_SAMPLE_REGS_ABI_64.String(), "64"},
		{RegsABI(7).String(), "RegsABI(7)"},
		{ModeCompat.String(), "compat"},
		{Mode(9).String(), "Mode(9)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
}

func TestDecodePerfRegs(t *testing.T) {
	// A full x86-64 sample: values in mask-bit order, each its own register
	// number plus 100, so that a misplaced value shows.
	var full []uint64
	for r := PerfReg(0); r < PERF_REG_X86_64_MAX; r++ {
		if SampleRegsUserMask.Has(r) {
			full = append(full, 100+uint64(r))
		}
	}
	p, err := DecodePerfRegs(PERF_SAMPLE_REGS_ABI_64, SampleRegsUserMask, full)
	if err != nil {
		t.Fatalf("DecodePerfRegs(full sample): %v", err)
	}
	if p.Mask != SampleRegsUserMask {
		t.Errorf("Mask = %v, want %v", p.Mask, SampleRegsUserMask)
	}
	for r := PerfReg(0); r < PERF_REG_X86_64_MAX; r++ {
		v, ok := p.Get(r)
		if want := SampleRegsUserMask.Has(r); ok != want {
			t.Errorf("Get(%v) present = %v, want %v", r, ok, want)
			continue
		}
		if ok && v != 100+uint64(r) {
			t.Errorf("Get(%v) = %d, want %d", r, v, 100+uint64(r))
		}
	}
	regs, err := p.Regs()
	if err != nil {
		t.Fatalf("Regs(): %v", err)
	}
	if want := (Regs{IP: 108, SP: 107, BP: 106}); regs != want {
		t.Errorf("Regs() = %+v, want %+v", regs, want)
	}
	if p.Mode() != Mode64 {
		t.Errorf("Mode() = %v, want %v", p.Mode(), Mode64)
	}

	// Only ip, sp, bp, and a bit above the general registers whose value is
	// skipped.
	p, err = DecodePerfRegs(PERF_SAMPLE_REGS_ABI_64, UnwindRegsMask|1<<40, []uint64{6, 7, 8, 0xdead})
	if err != nil {
		t.Fatalf("DecodePerfRegs(ip|sp|bp|bit40): %v", err)
	}
	if p.Mask != UnwindRegsMask {
		t.Errorf("Mask = %v, want %v", p.Mask, UnwindRegsMask)
	}
	if regs, err := p.Regs(); err != nil || regs != (Regs{IP: 8, SP: 7, BP: 6}) {
		t.Errorf("Regs() = %+v, %v; want {IP:8 SP:7 BP:6}, nil", regs, err)
	}

	errTests := []struct {
		name string
		abi  RegsABI
		mask RegMask
		vals []uint64
	}{
		{"too-few-values", PERF_SAMPLE_REGS_ABI_64, UnwindRegsMask, []uint64{1, 2}},
		{"too-many-values", PERF_SAMPLE_REGS_ABI_64, UnwindRegsMask, []uint64{1, 2, 3, 4}},
		{"unknown-abi", 3, UnwindRegsMask, []uint64{1, 2, 3}},
		{"none-with-values", PERF_SAMPLE_REGS_ABI_NONE, UnwindRegsMask, []uint64{1, 2, 3}},
	}
	for _, tt := range errTests {
		if _, err := DecodePerfRegs(tt.abi, tt.mask, tt.vals); err == nil {
			t.Errorf("%s: DecodePerfRegs(%v, %v, %d values) succeeded, want an error", tt.name, tt.abi, tt.mask, len(tt.vals))
		}
	}
}

func TestRegsFromSample(t *testing.T) {
	tests := []struct {
		name    string
		abi     RegsABI
		mask    RegMask
		vals    []uint64
		want    Regs
		wantErr error
	}{
		{"64", PERF_SAMPLE_REGS_ABI_64, UnwindRegsMask, []uint64{0x30, 0x20, 0x10}, Regs{IP: 0x10, SP: 0x20, BP: 0x30}, nil},
		{"compat", PERF_SAMPLE_REGS_ABI_32, UnwindRegsMask, []uint64{0x30, 0x20, 0x10}, Regs{}, ErrCompat},
		{"none", PERF_SAMPLE_REGS_ABI_NONE, UnwindRegsMask, nil, Regs{}, ErrNoUserRegs},
		{"no-bp", PERF_SAMPLE_REGS_ABI_64, 1<<PERF_REG_X86_IP | 1<<PERF_REG_X86_SP, []uint64{0x20, 0x10}, Regs{}, ErrNoUserRegs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RegsFromSample(tt.abi, tt.mask, tt.vals)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("RegsFromSample error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("RegsFromSample = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestModeFromABIAndCS(t *testing.T) {
	abis := []struct {
		abi  RegsABI
		want Mode
	}{
		{PERF_SAMPLE_REGS_ABI_NONE, ModeUnknown},
		{PERF_SAMPLE_REGS_ABI_32, ModeCompat},
		{PERF_SAMPLE_REGS_ABI_64, Mode64},
		{5, ModeUnknown},
	}
	for _, tt := range abis {
		if got := tt.abi.Mode(); got != tt.want {
			t.Errorf("%v.Mode() = %v, want %v", tt.abi, got, tt.want)
		}
	}
	css := []struct {
		cs   uint64
		want Mode
	}{
		{0x33, Mode64},
		{0x23, ModeCompat},
		{0x2b, ModeUnknown}, // __USER_DS
		{0x10, ModeUnknown}, // __KERNEL_CS
		{0, ModeUnknown},
		{0x0001_0000_0000_0033, Mode64}, // FRED's extended CS slot
	}
	for _, tt := range css {
		if got := ModeFromCS(tt.cs); got != tt.want {
			t.Errorf("ModeFromCS(%#x) = %v, want %v", tt.cs, got, tt.want)
		}
	}
}

// elfHeader returns the first bytes of an ELF header of the given shape.
func elfHeader(class elf.Class, data elf.Data, machine elf.Machine) []byte {
	h := make([]byte, 64)
	copy(h, elf.ELFMAG)
	h[elf.EI_CLASS] = byte(class)
	h[elf.EI_DATA] = byte(data)
	h[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.LittleEndian.PutUint16(h[16:], uint16(elf.ET_EXEC))
	binary.LittleEndian.PutUint16(h[18:], uint16(machine))
	return h
}

func TestModeFromELF(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		want    Mode
		wantErr error // nil: success
	}{
		{"i386", elfHeader(elf.ELFCLASS32, elf.ELFDATA2LSB, elf.EM_386), ModeCompat, nil},
		{"x86-64", elfHeader(elf.ELFCLASS64, elf.ELFDATA2LSB, elf.EM_X86_64), Mode64, nil},
		{"x32", elfHeader(elf.ELFCLASS32, elf.ELFDATA2LSB, elf.EM_X86_64), Mode64, nil},
		{"header-prefix-only", elfHeader(elf.ELFCLASS32, elf.ELFDATA2LSB, elf.EM_386)[:20], ModeCompat, nil},
		{"aarch64", elfHeader(elf.ELFCLASS64, elf.ELFDATA2LSB, elf.EM_AARCH64), ModeUnknown, ErrNotX86},
		{"i386-class64", elfHeader(elf.ELFCLASS64, elf.ELFDATA2LSB, elf.EM_386), ModeUnknown, ErrNotX86},
		{"big-endian", elfHeader(elf.ELFCLASS64, elf.ELFDATA2MSB, elf.EM_X86_64), ModeUnknown, ErrNotX86},
		{"not-elf", []byte("#!/bin/sh\necho hello world\n"), ModeUnknown, ErrNotX86},
		{"truncated", elfHeader(elf.ELFCLASS64, elf.ELFDATA2LSB, elf.EM_X86_64)[:19], ModeUnknown, io.ErrUnexpectedEOF},
		{"empty", nil, ModeUnknown, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ModeFromELF(bytes.NewReader(tt.data))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ModeFromELF error = %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ModeFromELF = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestModeFromELFSelf(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("the test binary is %s, not amd64", runtime.GOARCH)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("os.Executable: %v", err)
	}
	f, err := os.Open(exe)
	if err != nil {
		t.Fatalf("open test binary: %v", err)
	}
	defer f.Close()
	got, err := ModeFromELF(f)
	if err != nil || got != Mode64 {
		t.Errorf("ModeFromELF(%s) = %v, %v; want %v, nil", exe, got, err, Mode64)
	}
}
