package ptrace

import (
	"github.com/unwindd/unwindd/internal/testutil"

	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/procfs"
)

// threads: argv[1] spinning threads; with a second argument, one more thread
// that creates short-lived threads without end, so that threads appear and
// exit while the process is being stopped. It writes "r" once every spinner
// spins, then the main thread waits in pause(2), a blocking system call.
const threadsProgram = `#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static int started;
static void *spin(void *arg) {
	(void)arg;
	__atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
	for (;;) __asm__ volatile("");
	return 0;
}
static void *quick(void *arg) { return arg; }
static void *churn(void *arg) {
	(void)arg;
	for (;;) {
		pthread_t t;
		if (pthread_create(&t, 0, quick, 0) == 0)
			pthread_detach(t);
	}
	return 0;
}

int main(int argc, char **argv) {
	int n = atoi(argv[1]);
	pthread_t t;
	for (int i = 0; i < n; i++)
		pthread_create(&t, 0, spin, 0);
	while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < n)
		;
	if (argc > 2)
		pthread_create(&t, 0, churn, 0);
	write(1, "r", 1);
	for (;;) pause();
}
`

func newTracer(t testing.TB) *Tracer {
	t.Helper()
	tr := New(nil)
	t.Cleanup(func() { tr.Close() })
	return tr
}

// taskState returns the state letter of thread tid of pid.
func taskState(t *testing.T, pid, tid int) byte {
	t.Helper()
	st, err := procfs.ReadStat(tid)
	if err != nil {
		t.Fatalf("stat of task %d of pid %d: %v", tid, pid, err)
	}
	return st.State
}

// TestStopDetach stops a process of four threads (three spinning, one in a
// system call), checks each is in a tracing stop with its registers inside
// the program, then detaches and checks they all run on, untraced.
func TestStopDetach(t *testing.T) {
	exe := testutil.BuildC(t, "", "threads", threadsProgram, "-O0", "-pthread")
	cmd := testutil.Start(t, exe, "3")
	pid := cmd.Process.Pid
	tr := newTracer(t)

	p := stopOrSkip(t, tr, pid)
	want, err := procfs.Threads(pid)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, th := range p.Threads {
		got = append(got, th.TID)
		if s := taskState(t, pid, th.TID); s != 't' {
			t.Errorf("task %d state %q while stopped, want 't' (tracing stop)", th.TID, s)
		}
		if th.Mode != x86_64.Mode64 || th.Regs.IP == 0 || th.Regs.SP == 0 {
			t.Errorf("task %d: regs %+v mode %v: want 64-bit, ip and sp set", th.TID, th.Regs, th.Mode)
		}
	}
	if !slices.Equal(got, want) || len(got) != 4 || p.PID != pid {
		t.Errorf("stopped pid %d threads %v, want pid %d threads %v (4)", p.PID, got, pid, want)
	}
	// TracerPid names the tracer thread: one of this process's.
	if st, err := procfs.ReadStatus(pid); err != nil || st.TracerPid == 0 {
		t.Errorf("TracerPid = %d (%v) while stopped, want a thread of this process", st.TracerPid, err)
	} else if tst, err := procfs.ReadStatus(st.TracerPid); err != nil || tst.Tgid != os.Getpid() {
		t.Errorf("TracerPid %d is in process %d (%v), want %d", st.TracerPid, tst.Tgid, err, os.Getpid())
	}
	// The spinning threads' ip lies in the program's own code.
	maps, err := procfs.ReadMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	inProgram := 0
	for _, th := range p.Threads {
		if m, ok := maps.Find(th.Regs.IP); ok && m.Path == exe && m.Perms.Exec {
			inProgram++
		}
	}
	if inProgram != 3 {
		t.Errorf("%d threads stopped with ip in %s, want the 3 spinning ones", inProgram, exe)
	}

	if err := p.Detach(); err != nil {
		t.Fatal(err)
	}
	if err := p.Detach(); err != nil {
		t.Errorf("second Detach: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		running := 0
		for _, th := range p.Threads {
			if taskState(t, pid, th.TID) == 'R' {
				running++
			}
		}
		if running == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of 3 spinning threads running 5s after Detach", running)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st, err := procfs.ReadStatus(pid); err != nil || st.TracerPid != 0 {
		t.Errorf("TracerPid = %d (%v) after Detach, want 0", st.TracerPid, err)
	}
	// It can be stopped again (nothing was left attached).
	p2 := stopOrSkip(t, tr, pid)
	if len(p2.Threads) != 4 {
		t.Errorf("second stop: %d threads, want 4", len(p2.Threads))
	}
	if err := p2.Detach(); err != nil {
		t.Fatal(err)
	}
}

// TestStopChurn stops a process that creates and ends threads without
// pause, many times: every thread alive while it is stopped must be one of
// those stopped, and the process must survive.
func TestStopChurn(t *testing.T) {
	exe := testutil.BuildC(t, "", "threads", threadsProgram, "-O0", "-pthread")
	cmd := testutil.Start(t, exe, "2", "churn")
	pid := cmd.Process.Pid
	tr := newTracer(t)
	exited := 0
	for i := range 30 {
		p := stopOrSkip(t, tr, pid)
		live, err := procfs.Threads(pid)
		if err != nil {
			t.Fatal(err)
		}
		var stopped []int
		for _, th := range p.Threads {
			stopped = append(stopped, th.TID)
		}
		for _, tid := range live {
			if !slices.Contains(stopped, tid) && !slices.Contains(p.Exited, tid) {
				st, _ := procfs.ReadStat(tid)
				t.Errorf("round %d: thread %d (state %q) alive while the process is stopped, but neither stopped nor exited", i, tid, st.State)
			}
		}
		if len(p.Threads) < 4 {
			t.Errorf("round %d: %d threads stopped, want at least main, 2 spinners and the churner", i, len(p.Threads))
		}
		exited += len(p.Exited)
		if err := p.Detach(); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	t.Logf("threads that exited while being stopped, over 30 stops: %d", exited)
	if err := syscall.Kill(pid, 0); err != nil {
		t.Errorf("the process did not survive 30 stops: %v", err)
	}
}

func TestStopErrors(t *testing.T) {
	tr := newTracer(t)
	// A zombie: exited, not reaped.
	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	defer zombie.Wait()
	for deadline := time.Now().Add(5 * time.Second); ; {
		st, err := procfs.ReadStat(zombie.Process.Pid)
		if err == nil && st.Dead() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d did not become a zombie: %+v, %v", zombie.Process.Pid, st, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	kthreadd, err := procfs.ReadStat(2)
	if err != nil || kthreadd.Comm != "kthreadd" {
		t.Fatalf("pid 2 is %+v (%v), want kthreadd: is this a pid namespace?", kthreadd, err)
	}

	tests := []struct {
		name string
		pid  int
		want error
	}{
		{"no such pid", 1 << 30, ErrNoProcess},
		{"pid 0", 0, ErrNoProcess},
		{"negative pid", -1, ErrNoProcess},
		{"kthreadd", 2, ErrKernelThread},
		{"self", os.Getpid(), ErrSelf},
		{"zombie", zombie.Process.Pid, ErrExited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := tr.Stop(context.Background(), tt.pid)
			if !errors.Is(err, tt.want) {
				t.Errorf("Stop(%d) = %+v, %v; want %v", tt.pid, p, err, tt.want)
			}
		})
	}
	// Kernel threads other than kthreadd, found by the same flag.
	kthreads := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == 2 {
			continue
		}
		if st, err := procfs.ReadStat(pid); err == nil && st.KernelThread() && st.PPID == 2 {
			if _, err := tr.Stop(context.Background(), pid); !errors.Is(err, ErrKernelThread) {
				t.Errorf("Stop(kernel thread %d %s) = %v, want ErrKernelThread", pid, st.Comm, err)
			}
			if kthreads++; kthreads == 3 {
				break
			}
		}
	}
}

// TestStopTraced: a task another tracer holds is refused with ErrTraced.
func TestStopTraced(t *testing.T) {
	exe := testutil.BuildC(t, "", "threads", threadsProgram, "-O0", "-pthread")
	cmd := testutil.Start(t, exe, "1")
	other := newTracer(t)
	p := stopOrSkip(t, other, cmd.Process.Pid)
	defer p.Detach()

	tr := newTracer(t)
	_, err := tr.Stop(context.Background(), cmd.Process.Pid)
	if !errors.Is(err, ErrTraced) {
		t.Errorf("Stop of a traced process = %v, want ErrTraced", err)
	}
	if errors.Is(err, fs.ErrPermission) {
		t.Errorf("Stop of a traced process = %v: must not look like a permission error", err)
	}
}

// TestStopCompat stops a 32-bit program (built without libc, since 32-bit
// libraries need not be installed): the thread is in compat mode and Stacks
// refuses it with ErrCompat.
func TestStopCompat(t *testing.T) {
	const src = `void _start(void) { __asm__ volatile("int $0x80" :: "a"(4), "b"(1), "c"("r"), "d"(1)); for (;;) __asm__ volatile(""); }`
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		testutil.Need(t, "gcc", err.Error())
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, "compat")
	if err := os.WriteFile(exe+".c", []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-m32", "-nostdlib", "-static", "-O0", "-o", exe, exe+".c").CombinedOutput(); err != nil {
		testutil.Need(t, "gcc-m32", "gcc -m32 cannot build a 32-bit program here: "+strings.TrimSpace(string(out)))
	}
	cmd := testutil.Start(t, exe)
	tr := newTracer(t)
	p := stopOrSkip(t, tr, cmd.Process.Pid)
	if len(p.Threads) != 1 || p.Threads[0].Mode != x86_64.ModeCompat {
		t.Fatalf("stopped %+v, want one compat thread", p.Threads)
	}
	if ip := p.Threads[0].Regs.IP; ip >= 1<<32 || ip == 0 {
		t.Errorf("32-bit ip %#x, want a 32-bit address", ip)
	}
	if err := p.Detach(); err != nil {
		t.Fatal(err)
	}
	u, err := x86_64.New(x86_64.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := tr.Stacks(context.Background(), cmd.Process.Pid, u, nil)
	if !errors.Is(err, ErrCompat) {
		t.Errorf("Stacks of a 32-bit process = %+v, %v; want ErrCompat", st, err)
	}
	// Detached again: another tracer can take it.
	if p := stopOrSkip(t, newTracer(t), cmd.Process.Pid); p.Detach() != nil {
		t.Error("detach")
	}
}

// TestPermission runs this test binary as user nobody, without
// capabilities, against a process of ours: the kernel refuses the seize, and
// the error must match fs.ErrPermission and name CAP_SYS_PTRACE.
func TestPermission(t *testing.T) {
	exe := testutil.BuildC(t, "", "threads", threadsProgram, "-O0", "-pthread")
	cmd := testutil.Start(t, exe, "1")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A copy nobody can run: the test binary's own directory is private.
	dir, err := os.MkdirTemp("", "ptrace-perm")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "helper")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	h := exec.Command(bin)
	h.Env = append(os.Environ(), helperEnv+"="+strconv.Itoa(cmd.Process.Pid))
	h.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := h.CombinedOutput()
	if errors.Is(err, fs.ErrPermission) {
		testutil.Need(t, "setuid", "cannot run a helper as another user: "+err.Error())
	}
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	got := strings.TrimSpace(string(out))
	if !strings.HasPrefix(got, "permission=true ") || !strings.Contains(got, "CAP_SYS_PTRACE") {
		t.Errorf("unprivileged Stop of another user's process: %q; want an fs.ErrPermission error naming CAP_SYS_PTRACE", got)
	}
}

func TestClose(t *testing.T) {
	exe := testutil.BuildC(t, "", "threads", threadsProgram, "-O0", "-pthread")
	cmd := testutil.Start(t, exe, "1")
	tr := New(nil)
	p := stopOrSkip(t, tr, cmd.Process.Pid)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// Close detached it.
	if st, err := procfs.ReadStatus(cmd.Process.Pid); err != nil || st.TracerPid != 0 {
		t.Errorf("TracerPid = %d (%v) after Close, want 0", st.TracerPid, err)
	}
	if err := p.Detach(); err != nil {
		t.Errorf("Detach after Close = %v, want nil", err)
	}
	if _, err := tr.Stop(context.Background(), cmd.Process.Pid); !errors.Is(err, ErrClosed) {
		t.Errorf("Stop after Close = %v, want ErrClosed", err)
	}
}

// TestStopContext: a context that has already ended stops nothing.
func TestStopContext(t *testing.T) {
	exe := testutil.BuildC(t, "", "threads", threadsProgram, "-O0", "-pthread")
	cmd := testutil.Start(t, exe, "1")
	tr := newTracer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tr.Stop(ctx, cmd.Process.Pid); !errors.Is(err, context.Canceled) {
		t.Errorf("Stop with a cancelled context = %v, want context.Canceled", err)
	}
	if st, err := procfs.ReadStatus(cmd.Process.Pid); err != nil || st.TracerPid != 0 {
		t.Errorf("TracerPid = %d (%v) after a cancelled Stop, want 0", st.TracerPid, err)
	}
}

// TestStopZombieLeader stops a process whose main thread has exited
// (pthread_exit) while a worker runs on: the leader is a zombie, reported as
// exited; the worker is stopped. Asked by the worker's tid, Stop stops the
// same process.
func TestStopZombieLeader(t *testing.T) {
	const src = `#include <pthread.h>
#include <unistd.h>
static void *spin(void *arg) { write(1, "r", 1); for (;;) __asm__ volatile(""); return arg; }
int main(void) { pthread_t t; pthread_create(&t, 0, spin, 0); pthread_exit(0); }
`
	exe := testutil.BuildC(t, "", "zombie", src, "-O0", "-pthread")
	cmd := testutil.Start(t, exe)
	pid := cmd.Process.Pid
	for deadline := time.Now().Add(5 * time.Second); ; {
		if st, err := procfs.ReadStat(pid); err == nil && st.Dead() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the main thread did not exit")
		}
		time.Sleep(5 * time.Millisecond)
	}
	tids, err := procfs.Threads(pid)
	if err != nil || len(tids) != 2 {
		t.Fatalf("threads %v (%v), want the zombie leader and the worker", tids, err)
	}
	worker := tids[1]
	tr := newTracer(t)
	for _, asked := range []int{pid, worker} {
		p := stopOrSkip(t, tr, asked)
		if p.PID != pid || len(p.Threads) != 1 || p.Threads[0].TID != worker || !slices.Equal(p.Exited, []int{pid}) {
			t.Errorf("Stop(%d) = pid %d threads %+v exited %v; want pid %d, thread %d, exited [%d]", asked, p.PID, p.Threads, p.Exited, pid, worker, pid)
		}
		if err := p.Detach(); err != nil {
			t.Fatal(err)
		}
	}
}
