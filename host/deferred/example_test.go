package deferred_test

import (
	"encoding/binary"
	"fmt"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/deferred"
)

// A profiler and a syscall tracer both ask for the user stack of the same
// kernel entry; the stack is walked once when the entry ends, and each is
// called once, with the same cookie.
func Example() {
	eng, err := deferred.New(deferred.Options{Shards: 1})
	if err != nil {
		panic(err)
	}
	show := func(name string) deferred.Callback {
		return func(t *deferred.Task, tr *x86_64.Trace, c deferred.Cookie) {
			fmt.Printf("%s: task %d cookie %v %d frames, end %v, pcs %#x\n", name, t.TID(), c, len(tr.Frames), tr.End, tr.PCs(nil))
		}
	}
	prof, _ := eng.Register("profiler", show("profiler"))
	sys, _ := eng.Register("syscalls", show("syscalls"))

	// A two-frame user stack: the leaf's frame record at 0x7000 (saved rbp
	// 0x7010, return address 0x401234), then its caller's (rbp 0, ra 0).
	mem := make([]byte, 32)
	binary.LittleEndian.PutUint64(mem[0:], 0x7010)
	binary.LittleEndian.PutUint64(mem[8:], 0x401234)
	snap := &x86_64.Snapshot{Base: 0x7000, Data: mem}

	task, _ := eng.AddTask(42, 42, deferred.KindUser)
	task.Open(eng.Shard(0), x86_64.Regs{IP: 0x401100, SP: 0x7000, BP: 0x7000}, snap)
	r1, c1, _ := task.Request(sys)
	r2, c2, _ := task.Request(prof)
	r3, _, _ := task.Request(sys)
	fmt.Println("requests:", r1, r2, r3, "same cookie:", c1 == c2)
	task.Close() // the return to user space: walk once, call both
	// Output:
	// requests: 0 0 1 same cookie: true
	// profiler: task 42 cookie 0x0000000300000001 2 frames, end outermost, pcs [0x401100 0x401234]
	// syscalls: task 42 cookie 0x0000000300000001 2 frames, end outermost, pcs [0x401100 0x401234]
}
