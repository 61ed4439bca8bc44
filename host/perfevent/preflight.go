package perfevent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/unwindd/unwindd/host/perfdata"
	"github.com/unwindd/unwindd/host/procfs"
)

// Capabilities that decide what perf_event_open allows (linux/capability.h).
const (
	capSysAdmin = 21
	capSysPtrce = 19
	capIPCLock  = 14
	capPerfmon  = 38
)

// system is what the kernel allows this process, read before opening.
type system struct {
	paranoid     int  // kernel.perf_event_paranoid
	haveParanoid bool // the sysctl exists (CONFIG_PERF_EVENTS)
	maxRate      int  // kernel.perf_event_max_sample_rate; 0 if unknown
	mlockKB      int  // kernel.perf_event_mlock_kb; 0 if unknown
	capEff       uint64
	uid          int
}

func (s *system) has(capability int) bool { return s.capEff&(1<<capability) != 0 }

// perfmon reports what the kernel's perfmon_capable() does.
func (s *system) perfmon() bool { return s.has(capPerfmon) || s.has(capSysAdmin) }

func readSystem() system {
	s := system{uid: os.Getuid()}
	if v, err := readInt("/proc/sys/kernel/perf_event_paranoid"); err == nil {
		s.paranoid, s.haveParanoid = v, true
	}
	s.maxRate, _ = readInt("/proc/sys/kernel/perf_event_max_sample_rate")
	s.mlockKB, _ = readInt("/proc/sys/kernel/perf_event_mlock_kb")
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
				s.capEff, _ = strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			}
		}
	}
	return s
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// needParanoid is the highest kernel.perf_event_paranoid at which an
// unprivileged process may open ev (kernel/events/core.c: perf_allow_kernel
// for events that do not exclude the kernel, perf_allow_tracepoint for the
// RAW data of tracepoints other than the syscall ones, which are
// TRACE_EVENT_FL_CAP_ANY), and why.
func needParanoid(ev *event) (int, string) {
	if ev.tp != nil && ev.tp.Group != "raw_syscalls" && ev.tp.Group != "syscalls" {
		return -1, "the raw data of a tracepoint"
	}
	if ev.attr.Flags&perfdata.AttrFlags(unix.PerfBitExcludeKernel) == 0 {
		if ev.tp != nil {
			return 1, "a tracepoint (an event in the kernel)"
		}
		return 1, "an event that samples kernel mode too"
	}
	return 2, "a user-mode event"
}

// paranoidWhy explains why the sysctl forbids ev, or returns "" if it does
// not (or the capabilities override it). Before opening (refused false) it
// speaks only of what every kernel forbids: a user-mode event at 3 and up
// is refused by Debian's kernels alone, so that case is left to the
// kernel, and explained once it has refused (refused true).
func (s *system) paranoidWhy(ev *event, refused bool) string {
	need, what := needParanoid(ev)
	if s.perfmon() || !s.haveParanoid || s.paranoid <= need || need >= 2 && !refused {
		return ""
	}
	extra := ""
	if s.paranoid >= 3 {
		extra = " (3 and up forbids perf_event_open to unprivileged users altogether on kernels patched as Debian's are)"
	}
	return fmt.Sprintf("kernel.perf_event_paranoid is %d%s and unwindd (uid %d) lacks CAP_PERFMON and CAP_SYS_ADMIN; "+
		"%s needs %d or less: run as root, give unwindd CAP_PERFMON (setcap cap_perfmon+ep), or sysctl kernel.perf_event_paranoid=%d",
		s.paranoid, extra, s.uid, what, need, need)
}

// checkTarget checks that pid is a live user process.
func checkTarget(pid int) error {
	st, err := procfs.ReadStat(pid)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return &Error{Op: "target", PID: pid, CPU: -1, Err: ErrNoProcess}
		}
		return &Error{Op: "target", PID: pid, CPU: -1, Err: err}
	}
	switch {
	case st.KernelThread():
		return &Error{Op: "target", PID: pid, CPU: -1, Err: ErrKernelThread, Why: fmt.Sprintf("%s has no user space to unwind", st.Comm)}
	case st.Dead():
		return &Error{Op: "target", PID: pid, CPU: -1, Err: ErrNoProcess, Why: fmt.Sprintf("%s has exited (state %c)", st.Comm, st.State)}
	}
	return nil
}

// findTracefs returns the tracefs directory: dir if given, else the first
// standard mount point with an events directory.
func findTracefs(dir string) (string, error) {
	cands := []string{dir}
	if dir == "" {
		cands = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}
	}
	var denied error
	for _, d := range cands {
		st, err := os.Stat(filepath.Join(d, "events"))
		if err == nil && st.IsDir() {
			return d, nil
		}
		if errors.Is(err, fs.ErrPermission) && denied == nil {
			denied = &Error{Op: "tracefs", CPU: -1, Err: fs.ErrPermission,
				Why: fmt.Sprintf("%s is not readable by uid %d: run as root (tracefs is root's by default)", d, os.Getuid())}
		}
	}
	if denied != nil {
		return "", denied
	}
	return "", &Error{Op: "tracefs", CPU: -1, Err: ErrNoTracefs,
		Why: fmt.Sprintf("no events directory in %s: mount it (mount -t tracefs nodev /sys/kernel/tracing) or set TracefsDir",
			strings.Join(cands, " or "))}
}

// readTracepoint reads the format (with its id) of tp from tracefs dir.
func readTracepoint(dir string, tp Tracepoint) (*perfdata.EventFormat, error) {
	path := filepath.Join(dir, "events", tp.Group, tp.Name, "format")
	text, err := os.ReadFile(path)
	if err != nil {
		e := &Error{Op: "tracepoint", Event: tp.String(), CPU: -1, Err: err}
		switch {
		case errors.Is(err, fs.ErrNotExist):
			e.Err = ErrNoTracepoint
			if _, gerr := os.Stat(filepath.Join(dir, "events", tp.Group)); gerr != nil {
				e.Why = fmt.Sprintf("%s has no group %s (see %s/available_events)", dir, tp.Group, dir)
			} else {
				e.Why = fmt.Sprintf("group %s in %s has no event %s (see %s/available_events)", tp.Group, dir, tp.Name, dir)
			}
		case errors.Is(err, fs.ErrPermission):
			e.Err = fs.ErrPermission
			e.Why = fmt.Sprintf("%s is not readable by uid %d: run as root (tracefs is root's by default)", path, os.Getuid())
		}
		return nil, e
	}
	f, err := perfdata.ParseFormat(text)
	if err != nil {
		return nil, &Error{Op: "tracepoint", Event: tp.String(), CPU: -1, Err: err, Why: "bad " + path}
	}
	f.System = tp.Group
	if f.ID == 0 { // no ID line: the id file has it
		id, err := readInt(filepath.Join(dir, "events", tp.Group, tp.Name, "id"))
		if err != nil {
			return nil, &Error{Op: "tracepoint", Event: tp.String(), CPU: -1, Err: err, Why: "no id in " + path}
		}
		f.ID = uint64(id)
	}
	return f, nil
}

// onlineCPUs lists the online CPUs (/sys/devices/system/cpu/online: "0-3,5").
func onlineCPUs() ([]int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, fmt.Errorf("perfevent: online CPUs: %w", err)
	}
	var cpus []int
	for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("perfevent: online CPUs %q", b)
		}
		c := a
		if isRange {
			if c, err = strconv.Atoi(hi); err != nil || c < a {
				return nil, fmt.Errorf("perfevent: online CPUs %q", b)
			}
		}
		for i := a; i <= c; i++ {
			cpus = append(cpus, i)
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("perfevent: no online CPUs in %q", b)
	}
	return cpus, nil
}

// Preflight checks, without opening any event, what [Open] with opts needs:
// options that make sense, a target that is a live user process, perf
// events in the kernel, a sampling rate the kernel accepts,
// kernel.perf_event_paranoid or the capabilities that allow every event,
// and tracefs with every tracepoint. It returns nil or an [*Error] saying
// precisely what is missing. Open runs it first; what it cannot foresee
// (a security module's refusal, the limit on open files) Open reports as
// it meets it, explained the same way.
func Preflight(opts Options) error {
	_, err := newPlan(opts)
	return err
}

// openErr explains errno err from perf_event_open of ev for tid on cpu.
func (s *system) openErr(ev *event, tid, cpu, nfds int, err error) error {
	e := &Error{Op: "perf_event_open", Event: ev.name, PID: tid, CPU: cpu, Err: err}
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return e
	}
	switch errno {
	case unix.EACCES, unix.EPERM:
		e.Why = s.paranoidWhy(ev, true)
		if e.Why != "" {
			break
		}
		if owner, ok := ownerOf(tid); ok && owner != s.uid && !s.has(capSysPtrce) {
			e.Why = fmt.Sprintf("task %d belongs to uid %d and unwindd runs as uid %d without CAP_SYS_PTRACE: "+
				"tracing another user's process needs it (run as root or as that user)", tid, owner, s.uid)
			break
		}
		e.Why = fmt.Sprintf("refused although kernel.perf_event_paranoid is %d and unwindd has the capabilities it asks for: "+
			"a security module (SELinux, AppArmor, kernel lockdown) or a seccomp filter forbids perf_event_open", s.paranoid)
	case unix.ESRCH:
		e.Err = ErrNoProcess
		e.Why = "the task exited before its events were opened (ESRCH)"
	case unix.ENOENT:
		if ev.tp != nil {
			e.Why = fmt.Sprintf("the kernel knows no tracepoint with id %d", ev.attr.Config)
		} else {
			e.Why = "the kernel does not support this event"
		}
	case unix.EMFILE:
		var lim unix.Rlimit
		unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
		e.Why = fmt.Sprintf("out of file descriptors: the session needs %d (events × CPUs × threads) and RLIMIT_NOFILE is %d: "+
			"raise it (ulimit -n) or trace fewer tracepoints", nfds, lim.Cur)
	case unix.ENFILE:
		e.Why = "the system is out of file descriptors (fs.file-max)"
	case unix.EINVAL:
		e.Why = "the kernel rejected the event's attributes"
		if ev.attr.Flags&perfdata.AttrFreq != 0 && s.maxRate > 0 && ev.attr.SamplePeriod > uint64(s.maxRate) {
			e.Why = fmt.Sprintf("sampling frequency %d Hz is above kernel.perf_event_max_sample_rate %d", ev.attr.SamplePeriod, s.maxRate)
		}
	case unix.EOPNOTSUPP, unix.ENODEV, unix.ENOSYS:
		e.Err = ErrNotSupported
		e.Why = fmt.Sprintf("this kernel cannot record this event as asked (%v)", errno)
	case unix.EBUSY:
		e.Why = "the event's hardware is in use by someone else"
	}
	return e
}

// ownerOf returns the real uid of task tid.
func ownerOf(tid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				uid, err := strconv.Atoi(f[0])
				return uid, err == nil
			}
		}
	}
	return 0, false
}

// mmapErr explains errno err from mapping a ring of size bytes on cpu.
func (s *system) mmapErr(cpu, size, ncpu int, err error) error {
	e := &Error{Op: "mmap", Event: "ring buffer", CPU: cpu, Err: err}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOMEM) {
		if s.mlockKB > 0 && !s.has(capIPCLock) {
			e.Why = fmt.Sprintf("%d rings of %d KiB exceed kernel.perf_event_mlock_kb (%d KiB per user) plus RLIMIT_MEMLOCK: "+
				"use fewer RingPages, raise the sysctl or ulimit -l, or run with CAP_IPC_LOCK", ncpu, size>>10, s.mlockKB)
		} else {
			e.Why = fmt.Sprintf("cannot lock %d KiB of ring buffer", size>>10)
		}
	}
	return e
}
