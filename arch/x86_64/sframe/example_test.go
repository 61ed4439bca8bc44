package sframe_test

import (
	"debug/elf"
	"fmt"
	"log"

	"github.com/unwindd/unwindd/arch/x86_64/sframe"
)

// Look up the unwind rules of a few pcs of a program built with SFrame v3.
func ExampleFromELF() {
	f, err := elf.Open("testdata/prog.v3")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	s, err := sframe.FromELF(f)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("SFrame v%d, %d functions\n", s.Version(), s.NumFDEs())
	for _, pc := range []uint64{
		0x740, // main: its first instruction
		0x741, // main, after push %rbx
		0x921, // vla, after mov %rsp,%rbp
		0xaa2, // realign, its frame set up through the DRAP register
		0x6cb, // the first .plt entry, after its push
		0x8a0, // outermost: .cfi_undefined rip
		0xa85, // realign, with the CFA in r10: no Rule
	} {
		r, ok := s.Lookup(pc)
		fmt.Printf("%#x: %v %v\n", pc, r, ok)
	}
	// Output:
	// SFrame v3, 15 functions
	// 0x740: cfa=sp+8 ra=c-8 fp=same true
	// 0x741: cfa=sp+16 ra=c-8 fp=same true
	// 0x921: cfa=bp+16 ra=c-8 fp=c-16 true
	// 0xaa2: cfa=*bp-16 ra=c-8 fp=bp+0 true
	// 0x6cb: cfa=sp+16 ra=c-8 fp=same true
	// 0x8a0: cfa=sp+8 ra=undefined fp=same true
	// 0xa85: cfa=undefined+0 ra=same fp=same false
}
