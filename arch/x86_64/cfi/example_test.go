package cfi_test

import (
	"debug/elf"
	"fmt"
	"log"

	"github.com/unwindd/unwindd/arch/x86_64/cfi"
)

// The .eh_frame gcc writes for a function at 0x1000 that sets up a frame
// pointer: "push %rbp; mov %rsp,%rbp; …; pop %rbp; ret", the section loaded
// at 0x2000.
func ExampleParse() {
	ehFrame := []byte{
		// CIE: length 20, id 0, version 1, augmentation "zR", code
		// alignment 1, data alignment -8, return address column 16,
		// augmentation data: FDE pointers pc-relative sdata4 (0x1b).
		0x14, 0, 0, 0, 0, 0, 0, 0, 1, 'z', 'R', 0, 1, 0x78, 16, 1, 0x1b,
		// def_cfa rsp+8; rip at cfa-8; nop, nop.
		0x0c, 7, 8, 0x90, 1, 0, 0,
		// FDE: length 28, CIE 28 bytes back, pc_begin 0x1000 (as
		// -0x1020 from the field at 0x2020), pc_range 0x20, no
		// augmentation data.
		0x1c, 0, 0, 0, 0x1c, 0, 0, 0, 0xe0, 0xef, 0xff, 0xff, 0x20, 0, 0, 0, 0,
		// advance 1; def_cfa_offset 16; rbp at cfa-16 (push %rbp)
		0x41, 0x0e, 16, 0x86, 2,
		// advance 3; def_cfa_register rbp (mov %rsp,%rbp)
		0x43, 0x0d, 6,
		// advance 24; def_cfa rsp+8 (pop %rbp); nop, nop, nop.
		0x58, 0x0c, 7, 8, 0, 0, 0,
		// The terminator.
		0, 0, 0, 0,
	}
	tab, err := cfi.Parse(ehFrame, 0x2000)
	if err != nil {
		log.Fatal(err)
	}
	for row := range tab.All() {
		fmt.Printf("%#x %v\n", row.Start, row.Rule)
	}
	r, ok := tab.Lookup(0x1010)
	fmt.Println("0x1010:", r, ok)
	_, ok = tab.Lookup(0x1020)
	fmt.Println("0x1020:", ok)
	// Output:
	// 0x1000 cfa=sp+8 ra=c-8 fp=same
	// 0x1001 cfa=sp+16 ra=c-8 fp=c-16
	// 0x1004 cfa=bp+16 ra=c-8 fp=c-16
	// 0x101c cfa=sp+8 ra=c-8 fp=c-16
	// 0x1020 cfa=undefined+0 ra=same fp=same
	// 0x1010: cfa=bp+16 ra=c-8 fp=c-16 true
	// 0x1020: false
}

// A table for a mapped library; Lookup takes the pc less the load bias.
func ExampleFromELF() {
	f, err := elf.Open("/lib/x86_64-linux-gnu/libc.so.6")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	tab, err := cfi.FromELF(f)
	if err != nil {
		log.Fatal(err) // cfi.ErrNoCFI for a file without .eh_frame
	}
	const bias = 0x7f0000000000 // mapping start less the segment's vaddr, from /proc/pid/maps
	var ip uint64 = 0x7f0000029d90
	if r, ok := tab.Lookup(ip - bias); ok {
		fmt.Println(r)
	}
}
