package main

import (
	"github.com/unwindd/unwindd/internal/testutil"

	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/unwindd/unwindd/arch/x86_64"
)

// oracleProgram: the main thread goes main → a → b → c → leaf, and two
// workers go worker → worker_mid → worker_leaf. Each leaf spins in a loop
// of its own (the pc stays inside the leaf for as long as the test looks);
// the main leaf writes "r" once both workers spin.
const oracleProgram = `#include <pthread.h>
#include <unistd.h>

static int ready;

void worker_leaf(void) {
	__atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);
	for (;;) __asm__ volatile("");
}
void worker_mid(void) { worker_leaf(); }
void *worker(void *arg) { worker_mid(); return arg; }

void leaf(void) {
	while (__atomic_load_n(&ready, __ATOMIC_SEQ_CST) < 2)
		;
	write(1, "r", 1);
	for (;;) __asm__ volatile("");
}
void c(void) { leaf(); }
void b(void) { c(); }
void a(void) { b(); }

int main(void) {
	pthread_t t;
	pthread_create(&t, 0, worker, 0);
	pthread_create(&t, 0, worker, 0);
	a();
	return 0;
}
`

// gdbFrame is one line of a gdb backtrace.
type gdbFrame struct {
	name string
	pc   uint64 // 0 when gdb did not print it (frame 0 at a line's start)
}

var (
	gdbThread = regexp.MustCompile(`^Thread \d+ \(.*LWP (\d+)\)`)
	gdbLine   = regexp.MustCompile(`^#(\d+)\s+(?:0x([0-9a-f]+) in )?(\S+) \(`)
)

// parseGDB reads `thread apply all bt` output into frames by tid.
func parseGDB(out string) map[int][]gdbFrame {
	bt := make(map[int][]gdbFrame)
	tid := 0
	for _, line := range strings.Split(out, "\n") {
		if m := gdbThread.FindStringSubmatch(line); m != nil {
			tid, _ = strconv.Atoi(m[1])
			continue
		}
		if m := gdbLine.FindStringSubmatch(line); m != nil && tid != 0 {
			f := gdbFrame{name: m[3]}
			if m[2] != "" {
				f.pc, _ = strconv.ParseUint(m[2], 16, 64)
			}
			bt[tid] = append(bt[tid], f)
		}
	}
	return bt
}

// TestOracleGDB is the real oracle of the frame-pointer walk (--unwind fp;
// TestOracleGDBWholeStack is the CFI walk's): the stacks `unwindd stack`
// takes (takeStacks, the function the command calls) of a C program built
// with frame pointers, stopped in its spinning leaves, against gdb's backtrace of
// the same process at the same point. Function names must match frame by
// frame from the leaf up to the program's outermost function (main, or the
// thread function worker), and so must the return addresses (gdb prints
// them for every frame but the first, whose pc moves on as the leaf spins).
//
// Beyond that, the tools part ways, as they should: the return address one
// frame past main (into __libc_start_call_main) or past worker (into
// start_thread) is still found from that function's frame pointer, and must
// match gdb's; but Debian builds libc without frame pointers, so the next
// step reads a register libc used for something else and the walk ends
// (invalid-frame, or unreadable), while gdb goes on with libc's CFI
// (__libc_start_main_impl, _start; clone3).
func TestOracleGDB(t *testing.T) {
	gdb, err := exec.LookPath("gdb")
	if err != nil {
		testutil.Need(t, "gdb", "the oracle: "+err.Error())
	}
	exe := testutil.BuildC(t, t.TempDir(), "oracle", oracleProgram, "-O0", "-fno-omit-frame-pointer", "-g", "-pthread")
	cmd := startSpinning(t, exe)
	pid := cmd.Process.Pid

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := takeStacks(ctx, zaptest.NewLogger(t), stackOptions{timeout: 10 * time.Second, maxDepth: x86_64.DefaultMaxDepth, unwind: "fp"}, pid)
	if errors.Is(err, fs.ErrPermission) {
		testutil.Need(t, "ptrace", err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	if err := r.write(&text); err != nil {
		t.Fatal(err)
	}
	t.Logf("unwindd stack -p %d:\n%s", pid, text.String())

	// gdb attaches after takeStacks detached: the leaves spin on, every
	// other frame is where it was.
	out, err := exec.CommandContext(ctx, gdb, "-batch", "-nx", "-p", strconv.Itoa(pid),
		"-ex", "set backtrace past-main on", "-ex", "thread apply all bt").CombinedOutput()
	if err != nil {
		t.Fatalf("gdb: %v\n%s", err, out)
	}
	bt := parseGDB(string(out))
	if len(bt) != 3 || len(r.Threads) != 3 {
		t.Fatalf("gdb saw %d threads, unwindd %d; want 3 each\n%s", len(bt), len(r.Threads), out)
	}

	for _, th := range r.Threads {
		g, ok := bt[th.TID]
		if !ok {
			t.Errorf("thread %d: no gdb backtrace", th.TID)
			continue
		}
		outer := "worker"
		if th.TID == pid {
			outer = "main"
		}
		var cmp strings.Builder
		fmt.Fprintf(&cmp, "thread %d: %-4s %-18s %-28s | %-18s %s\n", th.TID, "#", "unwindd pc", "unwindd function", "gdb pc", "gdb function")
		n := max(len(th.Frames), len(g))
		top := -1 // index of the outermost function of the program
		for i := range n {
			var u frame
			var gf gdbFrame
			ucol, gcol := fmt.Sprintf("%-18s %-28s", "-", "(walk ended)"), "-"
			if i < len(th.Frames) {
				u = th.Frames[i]
				ucol = fmt.Sprintf("0x%016x %-28s", u.PC, u.funcText())
			}
			if i < len(g) {
				gf = g[i]
				gcol = fmt.Sprintf("%-18s %s", "(moving)", gf.name)
				if gf.pc != 0 {
					gcol = fmt.Sprintf("0x%016x %s", gf.pc, gf.name)
				}
			}
			fmt.Fprintf(&cmp, "%-12s #%-3d %s | %s\n", "", i, ucol, gcol)
			if top >= 0 && i > top+1 {
				continue // beyond the first libc frame: see the doc comment
			}
			switch {
			case i >= len(th.Frames):
				t.Errorf("thread %d frame #%d: unwindd ended (%v) where gdb has %s", th.TID, i, th.End, gf.name)
			case i >= len(g):
				t.Errorf("thread %d frame #%d: gdb ended where unwindd has %s", th.TID, i, u.funcText())
			case top < 0 && u.Func != gf.name:
				t.Errorf("thread %d frame #%d: unwindd %s, gdb %s", th.TID, i, u.funcText(), gf.name)
			case i > 0 && u.PC != gf.pc:
				t.Errorf("thread %d frame #%d: unwindd pc %#x, gdb %#x", th.TID, i, u.PC, gf.pc)
			case top >= 0 && u.Func != "" && u.Func != gf.name:
				// Past the program, in libc: a name only if libc's symbols
				// (a separate debug file) are there; if so it must agree.
				t.Errorf("thread %d frame #%d: unwindd %s, gdb %s", th.TID, i, u.funcText(), gf.name)
			}
			if top < 0 && i < len(g) && gf.name == outer {
				top = i
			}
		}
		if top < 0 {
			t.Errorf("thread %d: gdb's backtrace has no %s", th.TID, outer)
		}
		want := []string{"leaf", "c", "b", "a", "main"}
		if outer == "worker" {
			want = []string{"worker_leaf", "worker_mid", "worker"}
		}
		if top != len(want)-1 {
			t.Errorf("thread %d: %s at gdb frame #%d, want #%d (%v)", th.TID, outer, top, len(want)-1, want)
		}
		if th.End == x86_64.EndNone || th.End == x86_64.EndDepth {
			t.Errorf("thread %d: walk ended with %v", th.TID, th.End)
		}
		fmt.Fprintf(&cmp, "%-12s unwindd: end %v after %d frames; gdb: %d frames", "", th.End, len(th.Frames), len(g))
		t.Logf("\n%s", cmp.String())
	}
}
