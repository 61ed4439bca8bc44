package unwindinfo_test

import (
	"context"
	"errors"
	"io/fs"
	"testing"
	"time"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/procfs"
	"github.com/unwindd/unwindd/host/ptrace"
	"github.com/unwindd/unwindd/host/unwindinfo"
	"github.com/unwindd/unwindd/internal/testutil"
)

// deepSrc spins at the bottom of 30 recursive calls under main. Built -O2
// with frame pointers and .sframe, each of its frames can be walked by all
// three methods; libc's (__libc_start_call_main, __libc_start_main) only by
// CFI.
const deepSrc = `#include <unistd.h>
volatile int sink;
__attribute__((noinline)) void spin(void) { write(1, "r", 1); for (;;) sink++; }
__attribute__((noinline)) int rec(int n) { if (n == 0) spin(); return rec(n - 1) + sink; }
int main(void) { return rec(30); }
`

// snapshot is a stopped thread's registers and a copy of its stack.
type snapshot struct {
	regs x86_64.Regs
	snap *x86_64.Snapshot
	maps procfs.Maps
}

// takeSnapshot runs deepSrc built with flags, stops it in spin, and copies
// 16 KiB of its stack from sp, as perf's STACK_USER would.
func takeSnapshot(b *testing.B, flags ...string) snapshot {
	b.Helper()
	exe := testutil.BuildC(b, "", "deep", deepSrc, flags...)
	cmd := testutil.Start(b, exe)
	time.Sleep(20 * time.Millisecond) // past the write, spinning
	tr := ptrace.New(nil)
	defer tr.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := tr.Stop(ctx, cmd.Process.Pid)
	if errors.Is(err, fs.ErrPermission) {
		testutil.Need(b, "ptrace", err.Error())
	}
	if err != nil {
		b.Fatal(err)
	}
	defer p.Detach()
	maps, err := procfs.ReadMaps(p.PID)
	if err != nil {
		b.Fatal(err)
	}
	regs := p.Threads[0].Regs
	mem, err := x86_64.NewProcessMemory(p.PID, 0)
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 16<<10)
	n, _ := mem.ReadAt(data, int64(regs.SP))
	return snapshot{regs: regs, snap: &x86_64.Snapshot{Base: regs.SP, Data: data[:n]}, maps: maps}
}

// BenchmarkWalk walks one real stack snapshot (deepSrc stopped in spin:
// 33 frames, libc's included) with each method alone and all together,
// beside the frame-pointer walk of the same snapshot; frames/s counts the
// frames each walk records. The plain variants walk pcs the process's rule
// memo has seen (as a profile does, sample after sample); the nomemo ones
// look every frame up in the file's table.
func BenchmarkWalk(b *testing.B) {
	s := takeSnapshot(b, "-O2", "-fno-omit-frame-pointer", "-Wa,--gsframe")
	memo := unwindinfo.NewFiles(unwindinfo.Options{}, nil).Process(ptrace.MapsFinder(s.maps))
	nomemo := unwindinfo.NewFiles(unwindinfo.Options{NoMemo: true}, nil).Process(ptrace.MapsFinder(s.maps))
	for _, bc := range []struct {
		name    string
		methods []x86_64.FrameType
		tab     *unwindinfo.Process
	}{
		{"fp", []x86_64.FrameType{x86_64.TypeFramePointer}, memo},
		{"sframe", []x86_64.FrameType{x86_64.TypeSFrame}, memo},
		{"cfi", []x86_64.FrameType{x86_64.TypeCFI}, memo},
		{"sframe,cfi,fp", nil, memo},
		{"sframe-nomemo", []x86_64.FrameType{x86_64.TypeSFrame}, nomemo},
		{"cfi-nomemo", []x86_64.FrameType{x86_64.TypeCFI}, nomemo},
		{"sframe,cfi,fp-nomemo", nil, nomemo},
	} {
		tab := bc.tab
		b.Run(bc.name, func(b *testing.B) {
			st, _, err := unwindinfo.Steppers(bc.methods)
			if err != nil {
				b.Fatal(err)
			}
			u, err := x86_64.New(x86_64.Options{Steppers: st})
			if err != nil {
				b.Fatal(err)
			}
			var tr x86_64.Trace
			u.UnwindTable(s.regs, s.snap, tab, &tr) // warm the file cache
			frames := len(tr.Frames)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				u.UnwindTable(s.regs, s.snap, tab, &tr)
			}
			b.ReportMetric(float64(frames)*float64(b.N)/b.Elapsed().Seconds(), "frames/s")
			b.ReportMetric(float64(frames), "frames/walk")
			b.Logf("%s: %d frames, end %v", bc.name, frames, tr.End)
		})
	}
}
