package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/internal/testutil"
)

// libcProgram is built -O2 -fomit-frame-pointer: no frame pointer anywhere,
// neither in the program nor in Debian's libc. Three threads are stopped
// inside libc or under it: the main thread spins in main_leaf; a sorter
// thread spins in the comparison function qsort calls (cmp ← libc's
// msort_with_tmp… ← qsort ← sort_mid ← sorter ← start_thread ← clone3); a
// reader thread blocks in read(2) on a pipe nobody writes (libc's read ←
// reader_mid ← reader ← start_thread ← clone3).
const libcProgram = `#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static int ready;
static int fds[2];
volatile int sink;

__attribute__((noinline)) static int cmp(const void *a, const void *b) {
	__atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);
	for (;;) __asm__ volatile("");
	return *(const int *)a - *(const int *)b;
}
__attribute__((noinline)) void sort_mid(int *v, int n) { qsort(v, n, sizeof *v, cmp); sink++; }
void *sorter(void *arg) {
	int v[64];
	for (int i = 0; i < 64; i++) v[i] = 64 - i;
	sort_mid(v, 64);
	return arg;
}
__attribute__((noinline)) void reader_mid(void) {
	char c;
	__atomic_add_fetch(&ready, 1, __ATOMIC_SEQ_CST);
	sink += read(fds[0], &c, 1);
}
void *reader(void *arg) { reader_mid(); sink++; return arg; }
__attribute__((noinline)) void main_leaf(void) {
	while (__atomic_load_n(&ready, __ATOMIC_SEQ_CST) < 2)
		;
	write(1, "r", 1);
	for (;;) __asm__ volatile("");
}
int main(void) {
	pthread_t t;
	if (pipe(fds)) return 1;
	pthread_create(&t, 0, sorter, 0);
	pthread_create(&t, 0, reader, 0);
	main_leaf();
	return 0;
}
`

// TestOracleGDBWholeStack checks the CFI unwinder live against gdb: the
// stacks `unwindd stack` takes of libcProgram (no frame pointers at all)
// must be gdb's, whole: the same return addresses frame by frame from the
// leaf to _start or clone3, and the same function names for the program's
// own frames. gdb runs without separate debug files, so that it does not
// add frames for functions libc inlined (with libc6-dbg it shows them,
// at the same pc); libc's frames are compared by address, which is what
// the unwinding decides.
func TestOracleGDBWholeStack(t *testing.T) {
	gdb, err := exec.LookPath("gdb")
	if err != nil {
		testutil.Need(t, "gdb", "the oracle: "+err.Error())
	}
	exe := testutil.BuildC(t, t.TempDir(), "libcwalk", libcProgram, "-O2", "-fomit-frame-pointer", "-pthread")
	cmd := testutil.Start(t, exe)
	pid := cmd.Process.Pid
	waitInRead(t, pid)
	// The main thread wrote its "r" and then only spins: once it has run
	// in user mode since, it is out of write(2), and stays where gdb will
	// find it. (/proc's syscall file cannot tell: a thread preempted
	// inside write is "running" there.)
	for u, deadline := utime(t, pid, pid), time.Now().Add(10*time.Second); utime(t, pid, pid) < u+2; {
		if time.Now().After(deadline) {
			t.Fatalf("the main thread of pid %d did not run in user mode for 10s", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := takeStacks(ctx, zaptest.NewLogger(t), stackOptions{timeout: 10 * time.Second, maxDepth: x86_64.DefaultMaxDepth, unwind: "sframe,cfi,fp"}, pid)
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

	out, err := exec.CommandContext(ctx, gdb, "-batch", "-nx", "-iex", "set debug-file-directory "+t.TempDir(),
		"-p", strconv.Itoa(pid), "-ex", "set backtrace past-main on", "-ex", "thread apply all bt").CombinedOutput()
	if err != nil {
		t.Fatalf("gdb: %v\n%s", err, out)
	}
	bt := parseGDB(string(out))
	if len(bt) != 3 || len(r.Threads) != 3 {
		t.Fatalf("gdb saw %d threads, unwindd %d; want 3 each\n%s", len(bt), len(r.Threads), out)
	}
	outer := map[string]bool{"_start": true, "clone3": true}
	for _, th := range r.Threads {
		g := bt[th.TID]
		var cmp strings.Builder
		ok := len(th.Frames) == len(g)
		for i := range max(len(th.Frames), len(g)) {
			ucol, gcol := "-", "-"
			if i < len(th.Frames) {
				f := th.Frames[i]
				ucol = fmt.Sprintf("%#x %s [%s]", f.PC, f.funcText(), f.Type)
			}
			if i < len(g) {
				gcol = fmt.Sprintf("%#x %s", g[i].pc, g[i].name)
			}
			if i > 0 && i < len(th.Frames) && i < len(g) {
				f := th.Frames[i]
				switch {
				case f.PC != g[i].pc:
					ok = false
				case strings.HasSuffix(f.Path, "/libcwalk") && f.Func != g[i].name:
					ok = false
				}
			}
			fmt.Fprintf(&cmp, "  #%-3d %-50s | %s\n", i, ucol, gcol)
		}
		// Without debug files gdb cannot name clone3 (it is not in
		// libc's .dynsym); our symbolizer reads libc6-dbg's symbols.
		if !ok || len(th.Frames) == 0 || !outer[th.Frames[len(th.Frames)-1].Func] {
			t.Errorf("thread %d (%s): unwindd (end %v) and gdb differ, or the walk did not reach _start/clone3:\n%s", th.TID, th.Comm, th.End, cmp.String())
			continue
		}
		if th.End != x86_64.EndOutermost && th.End != x86_64.EndInvalid {
			// Past _start or clone3 there is nothing: CFI says the return
			// address is undefined (outermost), or the frame is garbage.
			t.Errorf("thread %d: walk ended with %v", th.TID, th.End)
		}
		t.Logf("thread %d: %d frames, same as gdb's, end %v\n%s", th.TID, len(th.Frames), th.End, cmp.String())
	}
}

// waitInRead waits until some thread of pid is blocked in read(2): its
// /proc/PID/task/TID/syscall starts with syscall number 0.
func waitInRead(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, e.Name()))
			if err == nil && strings.HasPrefix(string(b), "0 ") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no thread of pid %d blocked in read(2) after 10s", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
