// Package sframe reads the .sframe sections of x86-64 ELF files and looks up
// the unwind rule of a pc in them.
//
// SFrame is the compact unwind format that the Linux kernel's deferred
// user-stack unwinder reads (kernel/unwind/sframe.c): for every function, a
// few rows that say where the canonical frame address (CFA), the return
// address and the caller's rbp are, from sp or rbp plus a constant. It is the
// first method SEMANTICS U3 tries, before DWARF CFI and frame pointers; this
// package turns a section into the [x86_64.Rule] that [x86_64.TableStepper]
// applies.
//
// Every version binutils writes is read: v1 (binutils 2.40), v2 (2.41–2.44),
// v2 with SFRAME_F_FDE_FUNC_START_PCREL (2.45) and v3 (2.46 on), including
// v3's flexible FDEs (stack-realigning functions, whose CFA may be in a
// register other than sp and bp, or in memory) and its outermost-frame and
// signal-frame markers. Only the AMD64 little-endian ABI is accepted.
//
// [Parse] checks the whole section once: header, every function descriptor
// (FDE) and every frame row entry (FRE). A section it accepts cannot make
// [Section.Lookup] panic, loop or read out of bounds; a section it refuses
// gives a [*FormatError] with the byte offset at fault. Lookup is a binary
// search over the function start addresses decoded at Parse, then a scan of
// that one function's rows, which are decoded from the section bytes on
// demand; it allocates nothing.
//
// A [Section] is immutable after Parse and safe for concurrent use.
package sframe
