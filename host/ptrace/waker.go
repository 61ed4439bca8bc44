package ptrace

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// waker lets other goroutines wake the tracer thread out of its blocking
// wait4. The thread must block there, as strace does: a stopping tracee
// wakes its tracer synchronously, on its own CPU, and the pair ping-pong
// without cross-CPU wakeups; a polling tracer keeps the tracee on another
// CPU and pays an inter-processor wakeup at every resume (many times the
// cost of a stop in a VM). But wait4 has no timeout, and Go restarts it
// after every signal (SA_RESTART). So the thread also traces a waker: a
// child process that sleeps in pause(2). A signal sent to it from any
// goroutine ([waker.kick]) makes it stop, which the thread's wait4 reports;
// the thread lets it sleep again and looks at what the other goroutines
// asked for (sampling ticks, the end of the context, requests). Signals do
// not queue, but none is lost: each kick stops the waker after it was sent.
//
// The waker is a 129-byte static x86-64 program, written to a memfd and
// executed from there, killed if the tracer thread ends (PR_SET_PDEATHSIG,
// PTRACE_O_EXITKILL). Kicks go through its [os.Process], whose pidfd cannot
// reach another process once the waker is reaped and its pid reused.
type waker struct {
	pid int
	p   *os.Process
}

// wakerSignal is what a kick sends: a signal the waker never acts on.
const wakerSignal = syscall.SIGUSR1

// startWaker starts the waker, traced by the calling (tracer) thread.
func startWaker() (*waker, error) {
	fd, err := unix.MemfdCreate("unwindd-waker", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("ptrace: waker: memfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "unwindd-waker")
	defer f.Close()
	if _, err := f.Write(wakerProgram()); err != nil {
		return nil, fmt.Errorf("ptrace: waker: %w", err)
	}
	p, err := os.StartProcess(fmt.Sprintf("/proc/self/fd/%d", fd), []string{"unwindd-waker"}, &os.ProcAttr{
		Files: []*os.File{nil, nil, nil},
		Sys:   &syscall.SysProcAttr{Ptrace: true, Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		return nil, fmt.Errorf("ptrace: waker: %w", err)
	}
	w := &waker{pid: p.Pid, p: p}
	ws, err := waitPID(context.Background(), w.pid)
	if err != nil || !ws.Stopped() {
		w.stop()
		return nil, fmt.Errorf("ptrace: waker did not stop at its exec: %v, %v", describe(ws), err)
	}
	if err := ptrace(unix.PTRACE_SETOPTIONS, w.pid, 0, unix.PTRACE_O_EXITKILL); err != nil {
		w.stop()
		return nil, fmt.Errorf("ptrace: waker: %w", err)
	}
	if err := ptrace(unix.PTRACE_CONT, w.pid, 0, 0); err != nil {
		w.stop()
		return nil, fmt.Errorf("ptrace: waker: %w", err)
	}
	return w, nil
}

// kick wakes the tracer thread; any goroutine may call it, at any time.
func (w *waker) kick() { w.p.Signal(wakerSignal) }

// stopped takes a stop of the waker (on the tracer thread): it sleeps on,
// the signal dropped.
func (w *waker) stopped(ws unix.WaitStatus) {
	if ws.Stopped() {
		ptrace(unix.PTRACE_CONT, w.pid, 0, 0)
	}
}

// stop kills and reaps the waker (on the tracer thread).
func (w *waker) stop() {
	w.p.Kill()
	for {
		ws, err := waitPID(context.Background(), w.pid)
		if err != nil || ws.Exited() || ws.Signaled() {
			break
		}
	}
	w.p.Release()
}

// wakerProgram is a static x86-64 ELF executable of one PT_LOAD segment
// whose code is: loop: mov $34, %eax (pause); syscall; jmp loop.
func wakerProgram() []byte {
	code := []byte{0xb8, 34, 0, 0, 0, 0x0f, 0x05, 0xeb, 0xf7}
	const base, off = 0x400000, 64 + 56 // load address; ELF header + one program header
	b := make([]byte, off, off+len(code))
	copy(b, []byte{0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* little-endian */, 1 /* version */})
	le := binary.LittleEndian
	le.PutUint16(b[16:], 2)        // e_type: ET_EXEC
	le.PutUint16(b[18:], 0x3e)     // e_machine: EM_X86_64
	le.PutUint32(b[20:], 1)        // e_version
	le.PutUint64(b[24:], base+off) // e_entry: the code
	le.PutUint64(b[32:], 64)       // e_phoff
	le.PutUint16(b[52:], 64)       // e_ehsize
	le.PutUint16(b[54:], 56)       // e_phentsize
	le.PutUint16(b[56:], 1)        // e_phnum
	ph := b[64:]
	le.PutUint32(ph[0:], 1) // PT_LOAD
	le.PutUint32(ph[4:], 5) // PF_R|PF_X
	le.PutUint64(ph[16:], base)
	le.PutUint64(ph[24:], base)
	le.PutUint64(ph[32:], uint64(off+len(code))) // p_filesz
	le.PutUint64(ph[40:], uint64(off+len(code))) // p_memsz
	le.PutUint64(ph[48:], 0x1000)
	return append(b, code...)
}
