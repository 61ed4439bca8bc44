package x86_64

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strings"
)

// PerfReg is the index of an x86 register in perf's register masks
// (perf_event_attr.sample_regs_user) and in the values of a sample's
// PERF_SAMPLE_REGS_USER block (linux arch/x86/include/uapi/asm/perf_regs.h).
type PerfReg uint8

// The perf register indexes for x86 (enum perf_event_x86_regs). Their names
// follow the kernel's so that they can be looked up in perf_regs.h.
const (
	PERF_REG_X86_AX    PerfReg = 0
	PERF_REG_X86_BX    PerfReg = 1
	PERF_REG_X86_CX    PerfReg = 2
	PERF_REG_X86_DX    PerfReg = 3
	PERF_REG_X86_SI    PerfReg = 4
	PERF_REG_X86_DI    PerfReg = 5
	PERF_REG_X86_BP    PerfReg = 6
	PERF_REG_X86_SP    PerfReg = 7
	PERF_REG_X86_IP    PerfReg = 8
	PERF_REG_X86_FLAGS PerfReg = 9
	PERF_REG_X86_CS    PerfReg = 10
	PERF_REG_X86_SS    PerfReg = 11
	PERF_REG_X86_DS    PerfReg = 12
	PERF_REG_X86_ES    PerfReg = 13
	PERF_REG_X86_FS    PerfReg = 14
	PERF_REG_X86_GS    PerfReg = 15
	PERF_REG_X86_R8    PerfReg = 16
	PERF_REG_X86_R9    PerfReg = 17
	PERF_REG_X86_R10   PerfReg = 18
	PERF_REG_X86_R11   PerfReg = 19
	PERF_REG_X86_R12   PerfReg = 20
	PERF_REG_X86_R13   PerfReg = 21
	PERF_REG_X86_R14   PerfReg = 22
	PERF_REG_X86_R15   PerfReg = 23

	// PERF_REG_X86_32_MAX is the number of registers of a 32-bit kernel.
	PERF_REG_X86_32_MAX = PERF_REG_X86_GS + 1
	// PERF_REG_X86_64_MAX is the number of general registers of a 64-bit
	// kernel; higher bits of a mask (XMM registers, reserved bits) are not
	// general registers.
	PERF_REG_X86_64_MAX = PERF_REG_X86_R15 + 1
)

// perfRegNames are perf's names for the registers (tools/perf
// arch/x86/util/perf_regs.c), as perf script prints them.
var perfRegNames = [PERF_REG_X86_64_MAX]string{
	"AX", "BX", "CX", "DX", "SI", "DI", "BP", "SP",
	"IP", "FLAGS", "CS", "SS", "DS", "ES", "FS", "GS",
	"R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15",
}

// String returns perf's name for r ("AX", "IP", "R15").
func (r PerfReg) String() string {
	if r < PERF_REG_X86_64_MAX {
		return perfRegNames[r]
	}
	return fmt.Sprintf("PerfReg(%d)", uint8(r))
}

// RegMask is a set of perf registers, bit i standing for [PerfReg] i: the
// shape of perf_event_attr.sample_regs_user.
type RegMask uint64

// Masks of perf registers.
const (
	// RegsNoSupport64 are the segment registers the kernel rejects in a
	// 64-bit kernel's register mask (perf_reg_validate: EINVAL).
	RegsNoSupport64 RegMask = 1<<PERF_REG_X86_DS | 1<<PERF_REG_X86_ES |
		1<<PERF_REG_X86_FS | 1<<PERF_REG_X86_GS

	// SampleRegsUserMask is the sample_regs_user mask perf record uses on
	// x86-64 (perf's PERF_REGS_MASK, 0xff0fff): every general register
	// except [RegsNoSupport64].
	SampleRegsUserMask RegMask = (1<<PERF_REG_X86_64_MAX - 1) &^ RegsNoSupport64

	// UnwindRegsMask is the smallest mask the frame-pointer walk needs:
	// ip, sp and bp.
	UnwindRegsMask RegMask = 1<<PERF_REG_X86_IP | 1<<PERF_REG_X86_SP | 1<<PERF_REG_X86_BP
)

// Has reports whether r is in m.
func (m RegMask) Has(r PerfReg) bool { return r < 64 && m&(1<<r) != 0 }

// Count is the number of registers in m: the number of values a sample with
// this mask carries.
func (m RegMask) Count() int { return bits.OnesCount64(uint64(m)) }

// String lists the registers of m by perf's names, joined by "|" ("IP|SP");
// bits that are not general registers print as their bit number.
func (m RegMask) String() string {
	if m == 0 {
		return "none"
	}
	var b strings.Builder
	for v := uint64(m); v != 0; v &= v - 1 {
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		i := bits.TrailingZeros64(v)
		if i < int(PERF_REG_X86_64_MAX) {
			b.WriteString(perfRegNames[i])
		} else {
			fmt.Fprintf(&b, "bit%d", i)
		}
	}
	return b.String()
}

// RegsABI is the ABI word that heads a sample's PERF_SAMPLE_REGS_USER block
// (enum perf_sample_regs_abi): whether registers follow, and whether the task
// ran in 32- or 64-bit mode when it was sampled.
type RegsABI uint64

// The register ABIs of a perf sample.
const (
	PERF_SAMPLE_REGS_ABI_NONE RegsABI = 0 // no user registers (kernel thread, or unavailable)
	PERF_SAMPLE_REGS_ABI_32   RegsABI = 1 // a 32-bit (compat) task
	PERF_SAMPLE_REGS_ABI_64   RegsABI = 2 // a 64-bit task
)

// String returns "none", "32" or "64".
func (a RegsABI) String() string {
	switch a {
	case PERF_SAMPLE_REGS_ABI_NONE:
		return "none"
	case PERF_SAMPLE_REGS_ABI_32:
		return "32"
	case PERF_SAMPLE_REGS_ABI_64:
		return "64"
	}
	return fmt.Sprintf("RegsABI(%d)", uint64(a))
}

// Mode returns the task mode a stands for: [ModeCompat] for ABI 32, [Mode64]
// for ABI 64, [ModeUnknown] for none or a value the kernel does not write.
func (a RegsABI) Mode() Mode {
	switch a {
	case PERF_SAMPLE_REGS_ABI_32:
		return ModeCompat
	case PERF_SAMPLE_REGS_ABI_64:
		return Mode64
	}
	return ModeUnknown
}

// Errors about registers and task modes.
var (
	// ErrNoUserRegs means a sample carries no user registers
	// (PERF_SAMPLE_REGS_ABI_NONE, or a mask without ip, sp and bp).
	ErrNoUserRegs = errors.New("x86_64: no user registers")
	// ErrCompat means the task runs in 32-bit (compat) mode, which the
	// unwinder does not walk (SEMANTICS R5).
	ErrCompat = errors.New("x86_64: 32-bit (compat) task")
	// ErrNotX86 means an ELF file is not for x86.
	ErrNotX86 = errors.New("x86_64: not an x86 ELF file")
)

// PerfRegs are the user registers of one perf sample, indexed by [PerfReg].
// Only the registers in Mask were sampled; the others are zero.
type PerfRegs struct {
	ABI  RegsABI
	Mask RegMask // the general registers present in Vals
	Vals [PERF_REG_X86_64_MAX]uint64
}

// DecodePerfRegs decodes a sample's PERF_SAMPLE_REGS_USER block: its ABI
// word, the event's sample_regs_user mask and the values that follow, one
// per bit of mask in increasing bit order. With ABI none the sample holds no
// values (vals must be empty) and the result has an empty Mask. Values of
// bits that are not general registers (bit 24 and up) are skipped.
func DecodePerfRegs(abi RegsABI, mask RegMask, vals []uint64) (PerfRegs, error) {
	p := PerfRegs{ABI: abi}
	switch abi {
	case PERF_SAMPLE_REGS_ABI_NONE:
		if len(vals) != 0 {
			return PerfRegs{}, fmt.Errorf("x86_64: decode perf regs: ABI %v with %d values", abi, len(vals))
		}
		return p, nil
	case PERF_SAMPLE_REGS_ABI_32, PERF_SAMPLE_REGS_ABI_64:
	default:
		return PerfRegs{}, fmt.Errorf("x86_64: decode perf regs: unknown ABI %d", uint64(abi))
	}
	if n := mask.Count(); len(vals) != n {
		return PerfRegs{}, fmt.Errorf("x86_64: decode perf regs: mask %#x has %d registers, sample has %d values", uint64(mask), n, len(vals))
	}
	i := 0
	for v := uint64(mask); v != 0; v &= v - 1 {
		r := bits.TrailingZeros64(v)
		if r < int(PERF_REG_X86_64_MAX) {
			p.Vals[r] = vals[i]
			p.Mask |= 1 << r
		}
		i++
	}
	return p, nil
}

// Get returns register r and whether the sample holds it.
func (p *PerfRegs) Get(r PerfReg) (uint64, bool) {
	if r >= PERF_REG_X86_64_MAX || !p.Mask.Has(r) {
		return 0, false
	}
	return p.Vals[r], true
}

// Mode is the task's mode at the sample, from its ABI word.
func (p *PerfRegs) Mode() Mode { return p.ABI.Mode() }

// Regs returns the registers the unwinder starts from. It fails with
// [ErrNoUserRegs] when the sample has none or lacks ip, sp or bp, and with
// [ErrCompat] for a 32-bit task.
func (p *PerfRegs) Regs() (Regs, error) {
	switch p.ABI {
	case PERF_SAMPLE_REGS_ABI_64:
	case PERF_SAMPLE_REGS_ABI_32:
		return Regs{}, fmt.Errorf("x86_64: perf regs: ABI %v: %w", p.ABI, ErrCompat)
	default:
		return Regs{}, fmt.Errorf("x86_64: perf regs: ABI %v: %w", p.ABI, ErrNoUserRegs)
	}
	if missing := UnwindRegsMask &^ p.Mask; missing != 0 {
		return Regs{}, fmt.Errorf("x86_64: perf regs: mask lacks %v: %w", missing, ErrNoUserRegs)
	}
	return Regs{IP: p.Vals[PERF_REG_X86_IP], SP: p.Vals[PERF_REG_X86_SP], BP: p.Vals[PERF_REG_X86_BP]}, nil
}

// RegsFromSample turns a sample's PERF_SAMPLE_REGS_USER block (see
// [DecodePerfRegs]) into the registers the unwinder starts from, failing as
// [PerfRegs.Regs] does.
func RegsFromSample(abi RegsABI, mask RegMask, vals []uint64) (Regs, error) {
	p, err := DecodePerfRegs(abi, mask, vals)
	if err != nil {
		return Regs{}, err
	}
	return p.Regs()
}

// Mode is whether a task runs 64-bit code or 32-bit (compat) code.
type Mode uint8

// The task modes.
const (
	ModeUnknown Mode = iota // not known: no registers, or an unexpected value
	Mode64                  // 64-bit mode (x86-64, including x32 programs)
	ModeCompat              // 32-bit mode (i386 programs): not unwound (R5)
)

var modeNames = [...]string{"unknown", "64-bit", "compat"}

// String returns "unknown", "64-bit" or "compat".
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// The user code-segment selectors of x86-64 Linux (arch/x86/include/asm/
// segment.h): what CS holds while a task runs in user space.
const (
	UserCS64 = 0x33 // __USER_CS: 64-bit mode
	UserCS32 = 0x23 // __USER32_CS: 32-bit (compat) mode
)

// ModeFromCS returns the mode a user CS selector (perf's CS register, or
// ptrace's regs.cs) stands for: [Mode64] for [UserCS64], [ModeCompat] for
// [UserCS32], [ModeUnknown] for any other value. Only the low 16 bits are the
// selector; higher bits (FRED's extended CS slot) are ignored. The kernel
// itself treats every selector other than __USER_CS as not 64-bit
// (user_64bit_mode); callers that need its answer test for != [Mode64].
func ModeFromCS(cs uint64) Mode {
	switch cs & 0xffff {
	case UserCS64:
		return Mode64
	case UserCS32:
		return ModeCompat
	}
	return ModeUnknown
}

// elfHeaderPrefix is how much of an ELF header ModeFromELF reads: e_ident,
// e_type and e_machine, at the same offsets in 32- and 64-bit files.
const elfHeaderPrefix = elf.EI_NIDENT + 4

// ModeFromELF returns the mode an x86 executable runs in, from its ELF
// header read through r at offset 0: [ModeCompat] for ELFCLASS32 EM_386 (an
// i386 program), [Mode64] for EM_X86_64 in either class (ELFCLASS32 is an
// x32 program, which runs in 64-bit mode). Other machines fail with
// [ErrNotX86]; a file that is not ELF fails too. Only the header is read,
// so truncated or damaged section tables do not matter.
func ModeFromELF(r io.ReaderAt) (Mode, error) {
	var h [elfHeaderPrefix]byte
	if n, err := r.ReadAt(h[:], 0); n < len(h) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return ModeUnknown, fmt.Errorf("x86_64: read ELF header: %w", err)
	}
	if string(h[:4]) != elf.ELFMAG {
		return ModeUnknown, fmt.Errorf("x86_64: ELF header: bad magic %q: %w", h[:4], ErrNotX86)
	}
	class, data := elf.Class(h[elf.EI_CLASS]), elf.Data(h[elf.EI_DATA])
	if data != elf.ELFDATA2LSB {
		return ModeUnknown, fmt.Errorf("x86_64: ELF header: %v: %w", data, ErrNotX86)
	}
	machine := elf.Machine(uint16(h[elf.EI_NIDENT+2]) | uint16(h[elf.EI_NIDENT+3])<<8)
	switch {
	case class == elf.ELFCLASS32 && machine == elf.EM_386:
		return ModeCompat, nil
	case (class == elf.ELFCLASS64 || class == elf.ELFCLASS32) && machine == elf.EM_X86_64:
		return Mode64, nil
	}
	return ModeUnknown, fmt.Errorf("x86_64: ELF header: %v %v: %w", class, machine, ErrNotX86)
}
