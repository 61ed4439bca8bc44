package x86_64_test

import (
	"encoding/binary"
	"fmt"
	"log"

	"github.com/unwindd/unwindd/arch/x86_64"
)

// A stack snapshot as perf's PERF_SAMPLE_STACK_USER records it: the bytes
// from the sampled sp up. main called parse, which called the leaf where the
// sample hit; each frame record holds the caller's bp and the return address.
// main's caller left bp zero, as _start does, so the step out of main finds
// bp below sp and the walk ends there.
func ExampleUnwinder_Unwind() {
	const sp = 0x7ffd_1000
	stack := make([]byte, 64)
	put := func(addr, v uint64) { binary.LittleEndian.PutUint64(stack[addr-sp:], v) }
	put(sp+16, sp+48)     // leaf's record: parse's saved bp
	put(sp+24, 0x40_1234) // return address into parse
	put(sp+48, 0)         // parse's record: main's bp
	put(sp+56, 0x40_0567) // return address into main

	u, err := x86_64.New(x86_64.Options{})
	if err != nil {
		log.Fatal(err)
	}
	var t x86_64.Trace // reuse across walks: a walk then allocates nothing
	regs := x86_64.Regs{IP: 0x40_2000, SP: sp, BP: sp + 16}
	u.Unwind(regs, &x86_64.Snapshot{Base: sp, Data: stack}, &t)
	for _, f := range t.Frames {
		fmt.Printf("%#x %v\n", f.PC, f.Type)
	}
	fmt.Println("end:", t.End)
	// Output:
	// 0x402000 regs
	// 0x401234 fp
	// 0x400567 fp
	// end: invalid-frame
}
