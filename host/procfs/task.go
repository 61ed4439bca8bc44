package procfs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// pfKthread is PF_KTHREAD from include/linux/sched.h: "I am a kernel
// thread".
const pfKthread = 0x00200000

func taskPath(pid int, name string) string {
	return "/proc/" + strconv.Itoa(pid) + "/" + name
}

// Threads lists the thread ids of process pid (/proc/pid/task), sorted.
// Threads come and go while it reads: a caller that needs every thread
// re-lists until the list is stable.
func Threads(pid int) ([]int, error) {
	ents, err := os.ReadDir(taskPath(pid, "task"))
	if err != nil {
		return nil, fmt.Errorf("procfs: threads of pid %d: %w", pid, err)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue // not a task directory
		}
		tids = append(tids, tid)
	}
	slices.Sort(tids)
	return tids, nil
}

// Comm returns the name of thread tid of process pid (/proc/pid/task/tid/comm:
// at most 15 bytes, set by prctl(PR_SET_NAME) or pthread_setname_np).
func Comm(pid, tid int) (string, error) {
	b, err := os.ReadFile(taskPath(pid, "task/"+strconv.Itoa(tid)+"/comm"))
	if err != nil {
		return "", fmt.Errorf("procfs: comm of task %d/%d: %w", pid, tid, err)
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// Stat holds the fields unwindd uses from /proc/PID/stat.
type Stat struct {
	PID   int
	Comm  string
	State byte   // R, S, D, T, t, Z, X, ...
	PPID  int    //
	Flags uint32 // PF_* bits (field 9)
}

// KernelThread reports whether the task is a kernel thread (PF_KTHREAD).
func (s Stat) KernelThread() bool { return s.Flags&pfKthread != 0 }

// Dead reports whether the task has exited (zombie or dead), even if it has
// not been reaped yet.
func (s Stat) Dead() bool { return s.State == 'Z' || s.State == 'X' || s.State == 'x' }

// ReadStat reads /proc/pid/stat (pid may be any task id).
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(taskPath(pid, "stat"))
	if err != nil {
		return Stat{}, fmt.Errorf("procfs: stat of pid %d: %w", pid, err)
	}
	s, err := ParseStat(b)
	if err != nil {
		return Stat{}, fmt.Errorf("procfs: stat of pid %d: %w", pid, err)
	}
	return s, nil
}

// ParseStat parses the text of /proc/PID/stat. The comm field is the text
// between the first '(' and the last ')', since a name may hold both.
func ParseStat(b []byte) (Stat, error) {
	var s Stat
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return s, fmt.Errorf("stat %q: no (comm)", b)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:open])))
	if err != nil {
		return s, fmt.Errorf("stat %q: bad pid", b)
	}
	s.PID, s.Comm = pid, string(b[open+1:closing])
	// Fields 3.. follow the comm: state ppid pgrp session tty_nr tpgid flags.
	f := strings.Fields(string(b[closing+1:]))
	if len(f) < 7 || len(f[0]) != 1 {
		return s, fmt.Errorf("stat %q: too few fields after comm", b)
	}
	s.State = f[0][0]
	if s.PPID, err = strconv.Atoi(f[1]); err != nil {
		return s, fmt.Errorf("stat %q: bad ppid", b)
	}
	flags, err := strconv.ParseUint(f[6], 10, 32)
	if err != nil {
		return s, fmt.Errorf("stat %q: bad flags", b)
	}
	s.Flags = uint32(flags)
	return s, nil
}

// Status holds the fields unwindd uses from /proc/PID/status.
type Status struct {
	Name      string
	Tgid      int // the process the task belongs to
	TracerPid int // 0 when not traced
}

// ReadStatus reads /proc/pid/status (pid may be any task id).
func ReadStatus(pid int) (Status, error) {
	b, err := os.ReadFile(taskPath(pid, "status"))
	if err != nil {
		return Status{}, fmt.Errorf("procfs: status of pid %d: %w", pid, err)
	}
	var s Status
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "Name":
			s.Name = val
			seen++
		case "Tgid":
			if s.Tgid, err = strconv.Atoi(val); err != nil {
				return Status{}, fmt.Errorf("procfs: status of pid %d: bad Tgid %q", pid, val)
			}
			seen++
		case "TracerPid":
			if s.TracerPid, err = strconv.Atoi(val); err != nil {
				return Status{}, fmt.Errorf("procfs: status of pid %d: bad TracerPid %q", pid, val)
			}
			seen++
		}
	}
	if seen != 3 {
		return Status{}, fmt.Errorf("procfs: status of pid %d: Name, Tgid or TracerPid missing", pid)
	}
	return s, nil
}
