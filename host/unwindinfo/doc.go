// Package unwindinfo gives the unwinder the unwind tables of the files a
// process has mapped: each file's .sframe section (package sframe) and its
// .eh_frame CFI (package cfi), read once per file and cached, and a
// per-process [x86_64.Table] that turns a pc of the process into the file's
// own address (through the mapping and the file's PT_LOAD segments) and
// looks it up.
//
// This is what the kernel's deferred unwinder does with a task's mm: it finds
// the vma that holds the pc, the .sframe of the file behind it (registered
// when the file was mapped), and applies the row for the pc. Here the
// mappings come from the source (perf.data MMAP2 records, /proc/PID/maps),
// and the files are read from the local filesystem; a file whose build-id
// differs from the one the source recorded is not the file that ran, and
// gets no tables (the walk falls back to frame pointers).
//
// A file that cannot be read or whose tables are corrupt is logged once,
// with the reason, and remembered as having no tables of that kind.
//
// # Concurrency
//
// A [Files] and the tables from [Files.Process] are safe for concurrent use:
// several tasks of one process may be unwound at once.
package unwindinfo
