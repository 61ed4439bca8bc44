package perfdata

import (
	"bytes"
	"fmt"

	"github.com/unwindd/unwindd/sdk/tracefs"
)

// EventFormat is a tracepoint's record layout: the text of a tracefs
// events/SYSTEM/NAME/format file, parsed (sdk/tracefs, which plugins share).
type EventFormat = tracefs.Format

// Field is one field of a tracepoint record (sdk/tracefs).
type Field = tracefs.Field

// ParseFormat parses the text of a tracefs format file (sdk/tracefs).
func ParseFormat(text []byte) (*EventFormat, error) { return tracefs.ParseFormat(text) }

// TracingData is the HEADER_TRACING_DATA feature: the tracefs formats of
// the tracepoints the file records, and what came with them.
type TracingData struct {
	Version  string // "0.6"
	LongSize int    // of the recording kernel
	PageSize uint32
	Formats  []*EventFormat // the events' formats (ftrace's own ones are not kept)
}

// Format returns the format of tracepoint id, or nil.
func (t *TracingData) Format(id uint64) *EventFormat {
	for _, f := range t.Formats {
		if f.ID == id {
			return f
		}
	}
	return nil
}

var tracingMagic = []byte("\x17\x08\x44tracing")

// parseTracingData reads perf's tracing data (tools/perf/util/
// trace-event-read.c: trace_report).
func parseTracingData(b []byte, base int64) (*TracingData, error) {
	r := &fr{b: b, base: base, feat: FeatTracingData}
	if !bytes.HasPrefix(b, tracingMagic) {
		return nil, formatErr(base, "TRACING_DATA magic", b[:min(len(b), len(tracingMagic))])
	}
	r.p = len(tracingMagic)
	i := bytes.IndexByte(b[r.p:], 0)
	if i < 0 {
		return nil, truncErr(base+int64(r.p), "TRACING_DATA version")
	}
	td := &TracingData{Version: string(b[r.p : r.p+i])}
	r.p += i + 1
	endian := r.bytes(1)
	ls := r.bytes(1)
	td.PageSize = r.u32()
	if r.err != nil {
		return nil, r.err
	}
	if endian[0] != 0 {
		return nil, &FormatError{Offset: base + int64(len(tracingMagic)+i+1), Msg: "big-endian TRACING_DATA", Err: ErrBigEndian}
	}
	td.LongSize = int(ls[0])
	// header_page and header_event: a NUL-terminated tag, a u64 size, text.
	for _, tag := range []string{"header_page", "header_event"} {
		at := r.p
		if string(r.bytes(uint64(len(tag)+1))) != tag+"\x00" {
			if r.err != nil {
				return nil, r.err
			}
			return nil, formatErr(base+int64(at), "TRACING_DATA expected "+tag, nil)
		}
		r.bytes(r.u64())
	}
	// ftrace formats: count, then size and text each.
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		r.bytes(r.u64())
	}
	// event formats by system.
	for ns := r.u32(); ns > 0 && r.err == nil; ns-- {
		i := bytes.IndexByte(b[r.p:], 0)
		if i < 0 {
			r.fail("system name")
			break
		}
		sys := string(b[r.p : r.p+i])
		r.p += i + 1
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			at := r.p
			text := r.bytes(r.u64())
			if r.err != nil {
				break
			}
			ef, err := ParseFormat(text)
			if err != nil {
				return nil, formatErr(base+int64(at), fmt.Sprintf("TRACING_DATA format of %s: %v", sys, err), nil)
			}
			ef.System = sys
			td.Formats = append(td.Formats, ef)
		}
	}
	// kallsyms (u32 size), printk formats (u32 size), saved cmdlines (u64,
	// from version 0.6): skipped, but they must be there.
	r.bytes(uint64(r.u32()))
	r.bytes(uint64(r.u32()))
	if td.Version >= "0.6" && r.left() > 0 {
		r.bytes(r.u64())
	}
	if r.err != nil {
		return nil, r.err
	}
	return td, nil
}
