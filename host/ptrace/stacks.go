package ptrace

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/procfs"
	"github.com/unwindd/unwindd/host/unwindinfo"
)

// Stacks are the user stacks of every thread of a process, walked while it
// was stopped.
type Stacks struct {
	PID     int
	Maps    procfs.Maps // read while the process was stopped
	Threads []Stack     // by tid
	Exited  []int       // threads that exited while the process was being stopped
}

// Stack is one thread's walk.
type Stack struct {
	TID   int
	Comm  string // "" if it could not be read
	Regs  x86_64.Regs
	Trace x86_64.Trace
	// Err says why the thread was not walked (it matches [ErrCompat]); its
	// Trace is then empty.
	Err error
}

// Stacks stops every thread of process pid ([Tracer.Stop]), reads its
// mappings, walks each thread's user stack with u from live memory
// (process_vm_readv through an [x86_64.ProcessMemory]), and detaches. A 32-bit
// thread is not walked: its Stack has Err set; a process with no 64-bit thread
// at all is an error matching [ErrCompat].
//
// files, if not nil, gives the walk the unwind tables (SFrame, CFI) of the
// files the process maps, from the maps read while it is stopped.
func (t *Tracer) Stacks(ctx context.Context, pid int, u *x86_64.Unwinder, files *unwindinfo.Files) (st *Stacks, err error) {
	p, err := t.Stop(ctx, pid)
	if err != nil {
		return nil, err
	}
	defer func() {
		if derr := p.Detach(); derr != nil {
			st, err = nil, errors.Join(err, derr)
		}
	}()
	maps, err := procfs.ReadMaps(p.PID)
	if err != nil {
		return nil, fmt.Errorf("ptrace: %w", err)
	}
	mem, err := x86_64.NewProcessMemory(p.PID, 0)
	if err != nil {
		return nil, fmt.Errorf("ptrace: %w", err)
	}
	var tab x86_64.Table
	if files != nil {
		tab = files.Process(MapsFinder(maps))
	}
	st = &Stacks{PID: p.PID, Maps: maps, Threads: make([]Stack, len(p.Threads)), Exited: p.Exited}
	walked := 0
	for i, th := range p.Threads {
		s := &st.Threads[i]
		s.TID, s.Regs = th.TID, th.Regs
		if s.Comm, err = procfs.Comm(p.PID, th.TID); err != nil {
			t.log.Debug("no comm", zap.Int("tid", th.TID), zap.Error(err))
		}
		// As the kernel's user_64bit_mode: anything but __USER_CS is not
		// 64-bit code.
		if th.Mode != x86_64.Mode64 {
			s.Err = fmt.Errorf("%w: task %d runs in %v mode", ErrCompat, th.TID, th.Mode)
			continue
		}
		// The process is stopped: memory read for one thread is still
		// valid for the next, so the window is kept across threads.
		u.UnwindTable(th.Regs, mem, tab, &s.Trace)
		walked++
	}
	if walked == 0 {
		return nil, fmt.Errorf("%w: pid %d has no 64-bit thread", ErrCompat, p.PID)
	}
	return st, nil
}

// MapsFinder finds addresses in maps, read from /proc/PID/maps, for
// [unwindinfo.Files.Process]: executable file mappings only.
func MapsFinder(maps procfs.Maps) unwindinfo.Finder {
	return func(addr uint64) (unwindinfo.Mapping, bool) {
		m, ok := maps.Find(addr)
		if !ok || !m.Perms.Exec || !m.File() {
			return unwindinfo.Mapping{}, false
		}
		return unwindinfo.Mapping{Start: m.Start, Limit: m.End, Offset: m.Offset, Path: m.Path,
			Major: m.Major, Minor: m.Minor, Inode: m.Inode}, true
	}
}
