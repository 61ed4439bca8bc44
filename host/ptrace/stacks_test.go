package ptrace

import (
	"github.com/unwindd/unwindd/internal/testutil"

	"context"
	"errors"
	"io/fs"
	"testing"
	"time"

	"github.com/unwindd/unwindd/arch/x86_64"
)

// TestStacks walks every thread of a running program: each trace starts at
// the thread's ip and says why it ended, each thread is named, and the
// process runs on afterwards. Frame-by-frame correctness is the oracle test's
// (cmd/unwindd, against gdb).
func TestStacks(t *testing.T) {
	exe := testutil.BuildC(t, "", "threads", threadsProgram, "-O0", "-fno-omit-frame-pointer", "-pthread")
	cmd := testutil.Start(t, exe, "2")
	pid := cmd.Process.Pid
	tr := newTracer(t)
	u, err := x86_64.New(x86_64.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := tr.Stacks(ctx, pid, u, nil)
	if errors.Is(err, fs.ErrPermission) {
		testutil.Need(t, "ptrace", err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != pid || len(st.Threads) != 3 || len(st.Maps) == 0 {
		t.Fatalf("Stacks = pid %d, %d threads, %d maps; want pid %d, 3 threads, maps", st.PID, len(st.Threads), len(st.Maps), pid)
	}
	spinners := 0
	for _, s := range st.Threads {
		if s.Err != nil || s.Comm != "threads" {
			t.Errorf("thread %d: comm %q, err %v; want comm threads, no error", s.TID, s.Comm, s.Err)
		}
		if len(s.Trace.Frames) == 0 || s.Trace.Frames[0] != (x86_64.Frame{PC: s.Regs.IP, Type: x86_64.TypeRegs}) {
			t.Errorf("thread %d: frames %+v, want the ip %#x first", s.TID, s.Trace.Frames, s.Regs.IP)
		}
		if s.Trace.End == x86_64.EndNone {
			t.Errorf("thread %d: walk without an end reason", s.TID)
		}
		if m, ok := st.Maps.Find(s.Regs.IP); ok && m.Path == exe {
			spinners++
			// spin was called by start_thread in libc: the second frame
			// is a return address into libc's code.
			if len(s.Trace.Frames) < 2 {
				t.Errorf("spinning thread %d: %d frames, want spin and its caller", s.TID, len(s.Trace.Frames))
			} else if m, ok := st.Maps.Find(s.Trace.Frames[1].PC); !ok || !m.Perms.Exec || m.Path == exe {
				t.Errorf("spinning thread %d: caller %#x in %+v, want libc's code", s.TID, s.Trace.Frames[1].PC, m)
			}
		}
	}
	if spinners != 2 {
		t.Errorf("%d threads with ip in the program, want the 2 spinners", spinners)
	}
	// Detached: it can be stopped again.
	p := stopOrSkip(t, tr, pid)
	if err := p.Detach(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Stacks(ctx, 1<<30, u, nil); !errors.Is(err, ErrNoProcess) {
		t.Errorf("Stacks(no such pid) = %v, want ErrNoProcess", err)
	}
}
