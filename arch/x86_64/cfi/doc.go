// Package cfi turns an x86-64 ELF file's DWARF call frame information
// (.eh_frame, and .debug_frame where a file has it) into a compact table of
// unwind rows sorted by pc, and looks up the [x86_64.Rule] for a pc.
//
// Most binaries a distribution ships carry no .sframe, but every one gcc
// builds with its defaults carries .eh_frame: the unwind tables C++
// exceptions and glibc's backtrace use. This package gives the unwinder
// that information in the form SFrame and the kernel's ORC have: built once
// per file, then one binary search per frame. It is the approach of the
// opentelemetry-ebpf-profiler's "stack deltas".
//
// [FromELF] (or [Parse], for the bytes of an .eh_frame) reads every CIE and
// FDE, runs each FDE's CFA program once, and keeps what the unwinder can
// follow: the CFA (rsp or rbp plus an offset, *(rsp+off) of a signal frame,
// *(rbp+off) of a stack-realigning function's DRAP, the .plt entry's
// expression) and where the caller's return address and rbp are. A
// [Table] is then a base address, the start of each row as a 16-bit offset
// within its 64 KiB page (with a 4-byte bound per page, as the kernel's
// ORC lookup table groups its entries), and a uint16 index into the
// table's distinct rules, which a [Table.Lookup] returns. Adjacent rows
// with the same rule are merged; a pc between FDEs, or past the last, falls
// in a row with no rule. glibc's libc.so.6 (Debian 12) has 3713 FDEs, which
// make 28273 rows sharing 299 distinct rules: 117,984 bytes, 4.2 bytes a
// row (4 for each row, 16 for each rule), against 153,296 bytes of
// .eh_frame. Building that table from the section's bytes takes about
// 2.3 ms and 0.5 MB of transient allocation; a lookup takes about 37 ns
// and allocates nothing, where a slices.BinarySearch over the same starts
// as a []uint64 takes about 76 ns (BenchmarkBuild, BenchmarkLookup, on an
// AMD EPYC). The search is branch-free and runs over one page's 16-bit
// starts. A Table spans at most 4 GiB of pcs and 65535 distinct rules
// (libLLVM-15.so: 979,120 rows, 595 rules).
//
// # What is followed, and what gives no rule
//
// The interpreter knows every call frame instruction of DWARF 5 and GNU's
// DW_CFA_GNU_args_size and DW_CFA_GNU_negative_offset_extended, and CIEs
// with the augmentations gcc and binutils write ("zR", "zPLR", "zRS", "S":
// pc-relative or absolute FDE pointers, a personality routine it skips,
// signal frames). It keeps the rules of rip, rbp and rsp and drops the
// other registers'. DW_CFA_remember_state and DW_CFA_restore_state save
// and restore the CFA rule too, as libgcc and readelf do, and a
// DW_CFA_def_cfa_register after an expression uses the offset last set,
// as they do as well. The expressions it recognizes are the ones gcc, ld
// and glibc emit: "DW_OP_breg7 off" and "DW_OP_breg6 off" (a plain CFA or
// saved register), the same followed by DW_OP_deref (a CFA read from
// memory: __restore_rt's *(rsp+160), a DRAP's *(rbp-8)), and ld's lazy
// .plt expression with its threshold 11 ([x86_64.CFAPLT]), or 9 in an IBT
// .plt, where endbr64 comes first ([x86_64.CFAPLTIBT]).
//
// Whatever has no [x86_64.Rule] equivalent makes the pcs it covers give no
// rule (ok false), so that the unwinder tries its next method rather than
// follow a wrong rule: a CFA in another register (r10 in a DRAP
// prologue, rdi in __longjmp), a return address or rbp kept in another
// register (vfork) or given by a value rule, an rsp that is not the CFA,
// other expressions (OpenSSL's *(rsp+off)+8), an offset beyond int32.
//
// Checked against readelf --debug-dump=frames-interp over every file in
// /usr/bin and /usr/lib/x86_64-linux-gnu of a Debian 12 machine (1,968
// paths, 17.7 million rows; TestReadelf with -cfi.readelf), every row
// readelf prints whose rule a Rule can say is the same here, and the rest
// give no rule: 0.04% of the rows, nearly all a CFA in r10 (DRAP
// prologues), rax, rsi or r13 (hand-written assembly). 176 rows of FDEs
// with several CFA expressions could not be checked against readelf,
// which prints them all as "exp". In libc.so.6, 6 of 25,212 rows give no
// rule: __longjmp's and setcontext's CFA in rdi or rdx, vfork's return
// address in rdi.
//
// The rules are what the CFI says, mistakes included: gcc's DRAP
// epilogue keeps "rbp at *(rbp)" for the last instructions after
// "pop %rbp" restored it, so a leaf frame sampled on that final ret reads
// a wrong rbp (the return address and CFA are right).
//
// # Security
//
// Both sections are read as untrusted bytes: every length is checked
// against what is left, nothing is allocated from a size the input
// claims, and no input panics or loops (FuzzParse). An entry whose length
// runs past the end of the section is an error (a *[FormatError] naming
// the entry's offset), since nothing after it can be found. An FDE that
// cannot be used (its CIE has an unknown augmentation or version, its
// CIE pointer leads to no CIE, its header is truncated, its range wraps,
// overlaps an FDE that starts before it, or lies outside the file's
// executable segments) is skipped, and one whose instructions stop
// decoding partway gives no rule from there on: the rest of the file
// still unwinds. [Table.Stats] counts both and keeps the first reason.
// A zero length ends the section, as in libgcc. FromELF relies on
// debug/elf to find the sections, and debug/elf is not hardened against
// hostile files; Parse reads only the bytes it is given.
//
// .eh_frame_hdr, the binary-search index the linker adds, is not read:
// the table is sorted as it is built.
//
// # Why not an existing parser
//
// Delve's pkg/dwarf/frame runs an FDE's program from its CIE on every
// lookup (FrameDescriptionEntry.EstablishFrame), allocating a
// FrameContext with two maps each time, leaves expressions as bytes for
// the caller, and panics on a truncated instruction ("Could not read
// byte"). The opentelemetry-ebpf-profiler's nativeunwind/elfunwindinfo
// builds the same kind of sorted deltas, but in its eBPF unwinder's own
// format (support.UnwindInfo: signal frames become a command, a return
// address at sp+off is not expressible), it recognizes the .plt
// expression by its shape whatever its constants (so the IBT .plt's
// threshold 9 would become 11), and it comes in a module whose go.mod
// brings the AWS SDK and the OpenTelemetry collector. Our own parser is
// about 1,300 lines, comments included, checked against readelf row by
// row.
//
// A Table is immutable and safe for concurrent use.
package cfi
