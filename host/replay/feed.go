package replay

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/entry"
	"github.com/unwindd/unwindd/host/perfdata"
	"github.com/unwindd/unwindd/host/pluginhost"
)

// FeedOptions configure [Feed]. The zero value means the defaults.
type FeedOptions struct {
	// Progress, if set, is called now and then with the bytes of the data
	// section read so far, its size and the records read so far, and once
	// at the end.
	Progress func(done, total int64, records uint64)
	// Pace, if set, is called every PaceEvery events before the next one:
	// it may wait (for plugins to catch up); an error stops the feed.
	Pace      func(ctx context.Context) error
	PaceEvery int // 0 means 256
}

// FeedStats count what [Feed] read.
type FeedStats struct {
	Records     uint64 // records read
	Samples     uint64 // SAMPLE records handed to the tracker
	Skipped     uint64 // SAMPLE records without a tid or an event, not handed over
	LostRecords uint64 // LOST and LOST_SAMPLES records
	LostEvents  uint64 // events they say were lost
}

// perf's callchain context markers (enum perf_callchain_context).
const (
	contextMax  = ^uint64(4095 - 1) // PERF_CONTEXT_MAX: every marker is at or above it
	contextUser = ^uint64(512 - 1)  // PERF_CONTEXT_USER
	// defaultMaxStack is the kernel's default perf_event_max_stack.
	defaultMaxStack = 127
)

// Feed reads f's records in time order into tr until the end of the file,
// an error in the file, or ctx's end, then ends every open entry
// ([entry.Tracker.Flush]). It returns what it read and why it stopped early.
func Feed(ctx context.Context, f *perfdata.File, tr *entry.Tracker, opts FeedOptions) (FeedStats, error) {
	start, total := f.Header.Data.Offset, int64(f.Header.Data.Size)
	if opts.Progress == nil {
		return feed(ctx, f.Records(), tr, opts, nil)
	}
	progress := func(rec *perfdata.Record, records uint64) {
		opts.Progress(clamp(rec.Offset-int64(start), total), total, records)
	}
	st, err := feed(ctx, f.Records(), tr, opts, progress)
	opts.Progress(total, total, st.Records)
	return st, err
}

// RecordReader gives records in time order, as a perf.data file's
// [perfdata.Reader] and a live perf_event_open session do; io.EOF ends them.
type RecordReader interface {
	ReadInto(rec *perfdata.Record) error
}

// FeedRecords is [Feed] for any source of records: a live session's, for
// one. opts.Progress is not called (there is no size to measure against).
func FeedRecords(ctx context.Context, rr RecordReader, tr *entry.Tracker, opts FeedOptions) (FeedStats, error) {
	return feed(ctx, rr, tr, opts, nil)
}

func feed(ctx context.Context, rr RecordReader, tr *entry.Tracker, opts FeedOptions, progress func(*perfdata.Record, uint64)) (FeedStats, error) {
	every := opts.PaceEvery
	if every <= 0 {
		every = 256
	}
	var st FeedStats
	defer tr.Flush()
	rec := new(perfdata.Record)
	var s entry.Sample
	var ev eventDecoder
	for n := 0; ; n++ {
		if n&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			if progress != nil && n&(1<<16-1) == 0 {
				progress(rec, st.Records)
			}
		}
		err := rr.ReadInto(rec)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, err
		}
		st.Records++
		switch rec.Type {
		case perfdata.RecordSample:
			if !sampleOf(rec, &s, &ev) {
				st.Skipped++
				continue
			}
			st.Samples++
			if opts.Pace != nil && st.Samples%uint64(every) == 0 {
				if err := opts.Pace(ctx); err != nil {
					return st, err
				}
			}
			tr.Sample(&s)
		case perfdata.RecordMmap, perfdata.RecordMmap2:
			tr.Mmap(int32(rec.Mmap.PID), mappingOf(rec))
		case perfdata.RecordComm:
			tr.SetComm(int32(rec.Comm.PID), int32(rec.Comm.TID), rec.Comm.Comm, rec.Comm.Exec)
		case perfdata.RecordFork:
			t := &rec.Task
			tr.Fork(int32(t.PID), int32(t.PPID), int32(t.TID), int32(t.PTID))
		case perfdata.RecordExit:
			tr.Exit(int32(rec.Task.PID), int32(rec.Task.TID))
		case perfdata.RecordLost, perfdata.RecordLostSamples:
			st.LostRecords++
			st.LostEvents += rec.Lost.Lost
			tr.Lost() // the record does not say whose events were lost: end all
		}
	}
	return st, nil
}

func clamp(v, total int64) int64 { return max(0, min(v, total)) }

// mappingOf converts an MMAP or MMAP2 record.
func mappingOf(rec *perfdata.Record) entry.Mapping {
	m := &rec.Mmap
	e := entry.Mapping{Start: m.Addr, Limit: m.Addr + m.Len, Offset: m.Pgoff, Path: m.Filename}
	if e.Limit < e.Start {
		e.Limit = e.Start // wrapped: an empty mapping, ignored
	}
	switch {
	case rec.Type == perfdata.RecordMmap:
		e.Exec = rec.Misc&perfdata.MiscMmapData == 0
	case rec.Misc&perfdata.MiscMmapBuildID != 0:
		e.BuildID = string(m.BuildID)
		e.Exec = m.Prot&0x4 != 0 // PROT_EXEC
	default:
		e.Major, e.Minor, e.Inode = m.Maj, m.Min, m.Ino
		e.Exec = m.Prot&0x4 != 0
	}
	return e
}

// sampleOf fills s from a SAMPLE record; false if it cannot be placed.
func sampleOf(rec *perfdata.Record, s *entry.Sample, ev *eventDecoder) bool {
	attr, id, smp := rec.Attr, &rec.Ident, &rec.Sample
	if attr == nil || id.Fields&perfdata.SampleTID == 0 {
		return false
	}
	*s = entry.Sample{PID: int32(id.PID), TID: int32(id.TID), CPU: -1}
	if id.Fields&perfdata.SampleCPU != 0 {
		s.CPU = int32(id.CPU)
	}
	switch rec.Misc & perfdata.MiscCPUModeMask {
	case perfdata.MiscUser:
		s.Mode = entry.ModeUser
	case perfdata.MiscKernel:
		s.Mode = entry.ModeKernel
	}
	// The task's kind, from the ABI of its user registers: the kernel
	// writes none only for tasks without a user side.
	if attr.SampleType&perfdata.SampleRegsUser != 0 {
		switch x86_64.RegsABI(smp.RegsABI) {
		case x86_64.PERF_SAMPLE_REGS_ABI_NONE:
			s.Kind = entry.KindKernelThread
		case x86_64.PERF_SAMPLE_REGS_ABI_32:
			s.Kind = entry.KindCompat
		case x86_64.PERF_SAMPLE_REGS_ABI_64:
			s.Kind = entry.KindUser
		}
		if regs, err := x86_64.RegsFromSample(x86_64.RegsABI(smp.RegsABI), x86_64.RegMask(attr.SampleRegsUser), smp.Regs); err == nil {
			s.Regs, s.HaveRegs = regs, true
			if attr.SampleType&perfdata.SampleStackUser != 0 && len(smp.Stack) > 0 {
				s.Stack = smp.Stack
			}
		}
	} else if s.PID == 0 {
		s.Kind = entry.KindKernelThread // the idle task
	}
	if s.Stack == nil && attr.SampleType&perfdata.SampleCallchain != 0 {
		s.Callchain, s.CallchainTruncated = userChain(smp.Callchain, attr.SampleMaxStack)
	}
	s.Event, s.Boundary = ev.decode(rec, s.Kind)
	return true
}

// userChain returns the user part of a perf callchain (after
// PERF_CONTEXT_USER, up to the next marker) and whether the kernel cut the
// chain at its depth limit (max_stack entries, markers not counted).
func userChain(cc []uint64, maxStack uint16) ([]uint64, bool) {
	limit := int(maxStack)
	if limit == 0 {
		limit = defaultMaxStack
	}
	n, user, start, end := 0, false, -1, -1
	for i, v := range cc {
		if v >= contextMax {
			if user && end < 0 {
				end = i
			}
			user = v == contextUser
			if user && start < 0 {
				start = i + 1
			}
			continue
		}
		n++
	}
	if start < 0 {
		return nil, false
	}
	if end < 0 || end < start {
		end = len(cc)
	}
	return cc[start:end], n >= limit
}

// eventDecoder turns a sample into the plugins' event, caching per event
// (attr) what its name and kind are.
type eventDecoder struct {
	attrs map[*perfdata.Attr]*eventKind
}

type eventKind struct {
	kind     pluginhost.EventKind
	name     string // the event's name; for syscalls the per-syscall tracepoint's syscall
	boundary entry.Boundary
	raw      bool // raw_syscalls: the syscall's name comes from the id field
	idField  *perfdata.Field
	fields   []*perfdata.Field // the payload fields, common ones left out
}

func (d *eventDecoder) kindOf(a *perfdata.Attr) *eventKind {
	if k, ok := d.attrs[a]; ok {
		return k
	}
	if d.attrs == nil {
		d.attrs = make(map[*perfdata.Attr]*eventKind)
	}
	k := &eventKind{kind: pluginhost.KindSample, name: a.Name}
	if k.name == "" {
		k.name = "cpu-clock"
	}
	if a.Type == perfdata.TypeTracepoint && a.Format != nil {
		fm := a.Format
		k.kind, k.name = pluginhost.KindTracepoint, fm.System+":"+fm.Name
		for i := range fm.Fields {
			if !fm.Fields[i].Common {
				k.fields = append(k.fields, &fm.Fields[i])
			}
		}
		switch {
		case fm.System == "raw_syscalls" && (fm.Name == "sys_enter" || fm.Name == "sys_exit"):
			k.raw, k.idField = true, fm.Field("id")
			k.kind, k.boundary = pluginhost.KindSyscallEnter, entry.BoundaryEnter
			if fm.Name == "sys_exit" {
				k.kind, k.boundary = pluginhost.KindSyscallExit, entry.BoundaryExit
			}
		case fm.System == "syscalls" && strings.HasPrefix(fm.Name, "sys_enter_"):
			k.kind, k.boundary, k.name = pluginhost.KindSyscallEnter, entry.BoundaryEnter, strings.TrimPrefix(fm.Name, "sys_enter_")
		case fm.System == "syscalls" && strings.HasPrefix(fm.Name, "sys_exit_"):
			k.kind, k.boundary, k.name = pluginhost.KindSyscallExit, entry.BoundaryExit, strings.TrimPrefix(fm.Name, "sys_exit_")
		}
	}
	d.attrs[a] = k
	return k
}

// decode makes rec's event; kind is its task's (a 32-bit task's syscalls
// are named by the i386 table).
func (d *eventDecoder) decode(rec *perfdata.Record, kind entry.Kind) (pluginhost.Event, entry.Boundary) {
	k := d.kindOf(rec.Attr)
	ev := pluginhost.Event{Kind: k.kind, Name: k.name, TimeNS: rec.Ident.Time, CPU: int32(rec.Ident.CPU), Period: rec.Sample.Period}
	if rec.Ident.Fields&perfdata.SampleCPU == 0 {
		ev.CPU = -1
	}
	raw := rec.Sample.Raw
	if k.raw {
		ev.Name = "unknown"
		if k.idField != nil {
			if nr, err := k.idField.Int(raw, 0); err == nil {
				if ev.Name = entry.SyscallNameOf(kind, nr); ev.Name == "" {
					ev.Name = "syscall_" + strconv.FormatInt(nr, 10)
				}
			}
		}
	}
	if len(k.fields) > 0 && len(raw) > 0 {
		ev.Fields = fieldsOf(k.fields, raw)
	}
	return ev, k.boundary
}

// fieldsOf decodes a tracepoint payload: integers as Int or Uint, char
// arrays and __data_loc strings as strings, other arrays one field per
// element ("args[0]"), anything else as bytes. The result is the plugins'
// (a fresh slice per event); byte values are copied out of the file.
func fieldsOf(fs []*perfdata.Field, raw []byte) []pluginhost.Field {
	out := make([]pluginhost.Field, 0, len(fs))
	for _, f := range fs {
		isChar := strings.HasSuffix(f.Type, "char")
		switch {
		case isChar && (f.ArrayLen > 0 || f.Dynamic):
			if s, err := f.Text(raw); err == nil {
				out = append(out, pluginhost.Field{Name: f.Name, Kind: pluginhost.FieldString, Str: s})
			}
		case f.Dynamic:
			if b, err := f.Bytes(raw); err == nil {
				out = append(out, pluginhost.Field{Name: f.Name, Kind: pluginhost.FieldBytes, Bytes: append([]byte(nil), b...)})
			}
		case f.ArrayLen > 0:
			for i := range f.ArrayLen {
				if v, err := f.Uint(raw, i); err == nil {
					out = append(out, intField(f.Name+"["+strconv.Itoa(i)+"]", v, f.Signed))
				}
			}
		default:
			if v, err := f.Uint(raw, 0); err == nil {
				out = append(out, intField(f.Name, v, f.Signed))
			} else if b, err := f.Bytes(raw); err == nil {
				out = append(out, pluginhost.Field{Name: f.Name, Kind: pluginhost.FieldBytes, Bytes: append([]byte(nil), b...)})
			}
		}
	}
	return out
}

func intField(name string, v uint64, signed bool) pluginhost.Field {
	if signed {
		return pluginhost.Field{Name: name, Kind: pluginhost.FieldInt, Int: int64(v)}
	}
	return pluginhost.Field{Name: name, Kind: pluginhost.FieldUint, Uint: v}
}
