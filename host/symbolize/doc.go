// Package symbolize names the function that holds an address of a live
// process, from the ELF symbol tables of the file mapped there.
//
// A [Table] holds one ELF file's function symbols (.symtab, then .dynsym for
// what .symtab lacks, so stripped libraries still resolve their exported
// functions), sorted for binary search, and its PT_LOAD segments, which turn
// a file offset into the ELF virtual address the symbols use. That one rule
// serves position-independent executables, shared objects and fixed-address
// executables alike: address → file offset (from the mapping) → virtual
// address (from the segment holding that offset) → symbol.
//
// A Go executable linked with -s (no .symtab) still carries its pclntab,
// the table the Go runtime names its own functions from: when no .symtab is
// found, neither in the file nor in a debug file, the functions of its
// .gopclntab section are read with debug/gosym. .symtab stays first where
// there is one, because the two name the same functions at the same
// addresses (closures as main.main.func1, methods as main.(*T).M; for an
// inlined call, both name only the function it was inlined into) and
// .symtab's spelling is the one perf and other ELF tools print: assembly
// functions end in ".abi0" there, and not in the pclntab, as in Go's own
// tracebacks. Only executables the Go linker links itself are read
// this way: in one linked externally (cgo), stripped, nothing tells where
// the pclntab's function offsets start (see [NewTable]).
//
// A [Symbolizer] also reads the separate debug file of a mapped file when one
// is installed under /usr/lib/debug/.build-id/ (found by the GNU build-id,
// [BuildID]), as gdb does: that is where Debian keeps the .symtab of its
// stripped libraries (libc6-dbg), so local functions such as start_thread
// get their names. It caches one Table per file, keyed by device, inode and
// path, for the life of the Symbolizer (no eviction); a file that cannot be
// read or is not ELF is remembered as such too. It is safe for concurrent
// use; a first lookup in a file holds the others up while it reads it.
//
// Not finding a symbol is a normal result (ok false, nil error): anonymous
// memory, [vdso], an address between symbols. Errors mean the file could not
// be opened or parsed. Files are opened by the path in the mapping, in the
// caller's mount namespace; debug/elf trusts its input, so only local,
// mapped files are meant to be read. DWARF line tables (and so inlined
// frames) and debuginfod are left for later.
package symbolize
