// Package perfdata reads the files Linux perf record writes (perf.data, the
// PERFILE2 format, in file and in pipe mode): their header, their events
// ([Attr]: perf_event_attr, sample ids, name, tracepoint format), the
// feature sections unwindd uses ([Features]: build-ids, command line,
// hostname, OS release, CPUs, tracing data) and their records, decoded.
//
// [Open] maps a file into memory; [NewFile] reads one from an io.ReaderAt
// into a buffer; [NewPipeReader] reads a pipe-mode stream to its end.
// [File.Records] returns a [Reader] whose [Reader.ReadInto] fills a reused
// [Record]: kernel records come out in time order across CPUs by perf's
// finished-round rule (tools/perf/util/ordered-events.c), so that the
// sequence is the one perf report and perf script process. SAMPLE records
// are decoded per their event's sample_type; MMAP, MMAP2, COMM, FORK, EXIT,
// LOST, LOST_SAMPLES, THROTTLE and UNTHROTTLE have their fields; every other
// record perf knows comes out with its type, sample_id trailer and bytes;
// record types perf does not know are skipped and counted ([Reader.Stats]).
//
// A [Decoder] is that decoding without a file: built from a set of events
// ([NewDecoder]: perf_event_attr and sample ids), its [Decoder.Decode] fills
// a [Record] from one raw kernel record exactly as [Reader.ReadInto] does,
// and [Decoder.Time] reads a record's timestamp alone. Readers decode with
// it, and so does a live source (host/perfevent) for the records it reads
// from the kernel's ring buffers, so both give the same Records.
//
// A sample's user stack copy ([Sample.Stack]), RAW payload and the record
// bytes are not copied: they alias the file's memory, which stays valid
// until [File.Close]. A [Reader] of a mapped file gives the pages it has
// read past back to the kernel as it goes (every 16 MiB, below the oldest
// record it still holds or delivered last), so that resident memory does
// not grow with the file; a released page that is touched again is read
// back from the file. Registers are kept as perf wrote them (ABI word and
// values in mask order) for arch/x86_64.DecodePerfRegs. Tracepoint payloads
// are decoded with the event's [EventFormat] ([Field.Uint], [Field.Text]),
// taken from the file's tracing data, or parsed by [ParseFormat] from a
// tracefs format file.
//
// # Errors
//
// Bad data yields a [*FormatError] with the file offset at fault. Open
// fails only when the header or the events cannot be read, for a big-endian
// file ([ErrBigEndian]) and for a file of another architecture than x86_64
// ([ErrArch]); a damaged or missing feature section is [File.FeatureErr].
// A file cut short or damaged in its records yields every record before the
// damage, then the error (errors are sticky).
//
// # Security
//
// The input is untrusted: every length in the file is checked against what
// is left before it is used or allocated, nothing panics on bad input, and
// FuzzPerfData checks this. Memory use is bounded by the input's size plus
// the records held for time ordering; for a mapped file, resident memory is
// bounded by the span of the records held for time ordering plus 32 MiB.
//
// # Concurrency
//
// A File is read-only after Open and may be read by several Readers at once;
// a Reader, and a Decoder, is for one goroutine. This package does not read
// /proc or tracefs, and imports nothing of unwindd's host packages.
package perfdata
