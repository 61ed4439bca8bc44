package procfs

import (
	"github.com/unwindd/unwindd/internal/testutil"

	"errors"
	"os"
	"reflect"
	"runtime"
	"slices"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func pcOfSelf() uint64 { return uint64(reflect.ValueOf(TestReadMapsSelf).Pointer()) }

// setName names the calling thread (prctl PR_SET_NAME).
func setName(t *testing.T, name string) {
	t.Helper()
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(p)), 0, 0, 0); err != nil {
		t.Fatal(err)
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, text string
		want       Stat
		kthread    bool
		dead       bool
	}{
		{
			name:    "kthreadd",
			text:    "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 1 0 0 20 0 1 0 31 0 0 18446744073709551615 0 0 0",
			want:    Stat{PID: 2, Comm: "kthreadd", State: 'S', Flags: 2129984},
			kthread: true,
		},
		{
			name: "user process",
			text: "6953 (cat) R 6948 6948 3362 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 1 0 65313 3133440 388",
			want: Stat{PID: 6953, Comm: "cat", State: 'R', PPID: 6948, Flags: 4194304},
		},
		{
			name: "comm with blanks and parentheses",
			text: "77 (a) b (c)) Z 1 77 77 0 -1 4194316 0 0 0 0\n",
			want: Stat{PID: 77, Comm: "a) b (c)", State: 'Z', PPID: 1, Flags: 4194316},
			dead: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseStat([]byte(tt.text))
			if err != nil {
				t.Fatal(err)
			}
			if s != tt.want {
				t.Errorf("ParseStat = %+v, want %+v", s, tt.want)
			}
			if s.KernelThread() != tt.kthread {
				t.Errorf("KernelThread() = %v, want %v", s.KernelThread(), tt.kthread)
			}
			if s.Dead() != tt.dead {
				t.Errorf("Dead() = %v, want %v", s.Dead(), tt.dead)
			}
		})
	}
	for _, bad := range []string{"", "12 cat R 1 1 1 0 -1 0", "x (cat) R 1 1 1 0 -1 0", "1 (cat) R 1 1", "1 (cat) R 1 1 1 0 -1 flags"} {
		if s, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q) = %+v, want an error", bad, s)
		}
	}
}

func TestReadStat(t *testing.T) {
	self, err := ReadStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if self.PID != os.Getpid() || self.KernelThread() || self.Dead() {
		t.Errorf("ReadStat(self) = %+v: want own pid, not a kernel thread, alive", self)
	}
	// pid 2 is kthreadd, the parent of kernel threads, unless this runs in a
	// pid namespace where it is not.
	if st, err := ReadStat(2); err == nil && st.Comm == "kthreadd" && !st.KernelThread() {
		t.Errorf("ReadStat(2) = %+v: kthreadd without PF_KTHREAD", st)
	}
	if _, err := ReadStat(1 << 30); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadStat(no such pid) = %v, want ErrNotExist", err)
	}
}

func TestReadStatus(t *testing.T) {
	st, err := ReadStatus(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.Tgid != os.Getpid() {
		t.Errorf("Tgid = %d, want %d", st.Tgid, os.Getpid())
	}
	// A thread of this process reports the process as its Tgid.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tst, err := ReadStatus(unix.Gettid())
	if err != nil {
		t.Fatal(err)
	}
	if tst.Tgid != os.Getpid() {
		t.Errorf("thread %d: Tgid = %d, want %d", unix.Gettid(), tst.Tgid, os.Getpid())
	}
}

func TestThreadsAndComm(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	tids, err := Threads(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(tids, os.Getpid()) || !slices.Contains(tids, tid) || !slices.IsSorted(tids) {
		t.Errorf("Threads = %v: want sorted, with the leader %d and this thread %d", tids, os.Getpid(), tid)
	}

	const name = "procfs-test"
	setName(t, name)
	comm, err := Comm(os.Getpid(), tid)
	if err != nil {
		t.Fatal(err)
	}
	if comm != name {
		t.Errorf("Comm = %q, want %q", comm, name)
	}
	old, err := Comm(os.Getpid(), os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer setName(t, old) // leave the name as it was for the thread's next user

	if _, err := Threads(1 << 30); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Threads(no such pid) = %v, want ErrNotExist", err)
	}
	if _, err := Comm(os.Getpid(), 1<<30); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Comm(no such thread) = %v, want ErrNotExist", err)
	}
}

// TestThreadsChild lists the threads of a child that is not this process:
// a single-threaded sleep(1).
func TestThreadsChild(t *testing.T) {
	cmd := testutil.Sleeper(t)
	tids, err := Threads(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tids, []int{cmd.Process.Pid}) {
		t.Errorf("Threads(sleep) = %v, want [%d]", tids, cmd.Process.Pid)
	}
	comm, err := Comm(cmd.Process.Pid, cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if comm != "sleep" {
		t.Errorf("Comm(sleep) = %q, want sleep", comm)
	}
}
