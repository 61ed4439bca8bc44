package perfdata

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"os"

	"golang.org/x/sys/unix"
)

var le = binary.LittleEndian

const (
	magic          = 0x32454c4946524550 // "PERFILE2" read little-endian
	magicSwapped   = 0x50455246494c4532 // the same, written big-endian
	magicV1        = 0x454c494646524550 // "PERFFILE" (version 1)
	pipeHeaderSize = 16
	fileHeaderSize = 104  // sizeof(struct perf_file_header)
	fileHeaderV0   = 72   // the same without adds_features
	attrSizeVer0   = 64   // PERF_ATTR_SIZE_VER0
	attrSizeMax    = 136  // the attr fields this package knows (VER8)
	sectionSize    = 16   // sizeof(struct perf_file_section)
	recordHeader   = 8    // sizeof(struct perf_event_header)
	maxAttrSize    = 4096 // larger on-file attrs are refused
	archX86_64     = "x86_64"

	eventUpdateName = 2 // PERF_EVENT_UPDATE__NAME
)

// Section is a perf_file_section: where something lies in the file.
type Section struct {
	Offset, Size uint64
}

// Header is the perf.data file header (struct perf_file_header). A pipe-mode
// stream has only the magic and size (16): its other fields are zero.
type Header struct {
	Size       uint64    // size of this header: 104 (file), 16 (pipe)
	AttrSize   uint64    // size of one attr entry (attr and ids section)
	Attrs      Section   // the attr entries
	Data       Section   // the records
	EventTypes Section   // obsolete, unused
	Features   [4]uint64 // bitmap of the feature sections present (adds_features)
}

// HasFeature reports whether the header announces feature f.
func (h *Header) HasFeature(f Feature) bool {
	return f >= 0 && f < 256 && h.Features[f/64]&(1<<(f%64)) != 0
}

// EventAttr is the part of struct perf_event_attr perf.data readers use.
// Fields the file's attr is too short for are zero.
type EventAttr struct {
	Type             uint32 // TypeHardware, TypeSoftware, TypeTracepoint, …
	Size             uint32 // the attr's size in the file
	Config           uint64 // for a tracepoint, its id in tracefs
	SamplePeriod     uint64 // sample_period, or sample_freq with AttrFreq
	SampleType       SampleType
	ReadFormat       ReadFormat
	Flags            AttrFlags
	WakeupEvents     uint32
	BPType           uint32
	Config1          uint64
	Config2          uint64
	BranchSampleType uint64
	SampleRegsUser   uint64 // mask of the PERF_SAMPLE_REGS_USER registers (arch/x86_64.RegMask)
	SampleStackUser  uint32 // bytes of user stack each sample copies
	ClockID          int32
	SampleRegsIntr   uint64
	AuxWatermark     uint32
	SampleMaxStack   uint16
	AuxSampleSize    uint32
	SigData          uint64
	Config3          uint64
}

// SampleIDAll reports whether non-sample records carry a sample_id trailer.
func (a *EventAttr) SampleIDAll() bool { return a.Flags&AttrSampleIDAll != 0 }

// branchHWIndex is PERF_SAMPLE_BRANCH_HW_INDEX in branch_sample_type.
const branchHWIndex = 1 << 17

func decodeEventAttr(b []byte) EventAttr {
	var buf [attrSizeMax]byte
	copy(buf[:], b)
	return EventAttr{
		Type:             le.Uint32(buf[0:]),
		Size:             le.Uint32(buf[4:]),
		Config:           le.Uint64(buf[8:]),
		SamplePeriod:     le.Uint64(buf[16:]),
		SampleType:       SampleType(le.Uint64(buf[24:])),
		ReadFormat:       ReadFormat(le.Uint64(buf[32:])),
		Flags:            AttrFlags(le.Uint64(buf[40:])),
		WakeupEvents:     le.Uint32(buf[48:]),
		BPType:           le.Uint32(buf[52:]),
		Config1:          le.Uint64(buf[56:]),
		Config2:          le.Uint64(buf[64:]),
		BranchSampleType: le.Uint64(buf[72:]),
		SampleRegsUser:   le.Uint64(buf[80:]),
		SampleStackUser:  le.Uint32(buf[88:]),
		ClockID:          int32(le.Uint32(buf[92:])),
		SampleRegsIntr:   le.Uint64(buf[96:]),
		AuxWatermark:     le.Uint32(buf[104:]),
		SampleMaxStack:   le.Uint16(buf[108:]),
		AuxSampleSize:    le.Uint32(buf[112:]),
		SigData:          le.Uint64(buf[120:]),
		Config3:          le.Uint64(buf[128:]),
	}
}

// Attr is one event of the file: its perf_event_attr, the sample ids the
// kernel gave its per-CPU (or per-thread) instances, and what the feature
// sections say about it.
type Attr struct {
	EventAttr
	IDs    []uint64
	Name   string       // from HEADER_EVENT_DESC or an EVENT_UPDATE record ("cpu-clock")
	Format *EventFormat // a tracepoint's format, from HEADER_TRACING_DATA; else nil
}

// File is an open perf.data file or stream: its header, events and feature
// sections as plain data, and [File.Records] to read its records.
type File struct {
	Header   Header
	Pipe     bool // pipe-mode data (perf record -o -)
	Attrs    []Attr
	Features Features
	// FeatureErr is the first error met while reading the feature sections
	// (a *FormatError), which do not keep the records from being read: a
	// file cut short loses its feature sections first. Features holds what
	// was read before it.
	FeatureErr error

	data   []byte
	unmap  []byte   // the mapping to release on Close, if mmapped
	closed bool     // the mapping was released
	start  int64    // first record
	end    int64    // end of the records (data section end, or len(data))
	dec    *Decoder // the template of its Readers' decoders
	step   int64    // bytes between releases of the mapping's pages; 0: releaseStep
}

func (f *File) releaseStep() int64 {
	if f.step > 0 {
		return f.step
	}
	return releaseStep
}

// Open opens the perf.data file (or pipe-mode stream saved to a file) at
// path. A regular file is mapped into memory; anything else (a FIFO) is
// read whole.
func Open(path string) (*File, error) {
	fd, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fd.Close()
	st, err := fd.Stat()
	if err != nil {
		return nil, err
	}
	var data, mapped []byte
	if st.Mode().IsRegular() && st.Size() > 0 && int64(int(st.Size())) == st.Size() {
		mapped, err = unix.Mmap(int(fd.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			return nil, &os.PathError{Op: "mmap", Path: path, Err: err}
		}
		data = mapped
	} else if data, err = io.ReadAll(fd); err != nil {
		return nil, err
	}
	f, err := newFile(data)
	if err != nil {
		if mapped != nil {
			unix.Munmap(mapped)
		}
		return nil, err
	}
	f.unmap = mapped
	if f.Pipe && mapped != nil {
		// Reading a pipe-mode header walked every record: give the pages
		// back, to be read again as the records are (see Reader.release).
		unix.Madvise(mapped, unix.MADV_DONTNEED)
	}
	return f, nil
}

// NewFile reads a perf.data file (or a pipe-mode stream) of size bytes from
// r. It reads it into one buffer, which records alias.
func NewFile(r io.ReaderAt, size int64) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("perfdata: negative size %d", size)
	}
	buf := make([]byte, size)
	n, err := r.ReadAt(buf, 0)
	if n < len(buf) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("perfdata: read %d bytes: %w", size, err)
	}
	return newFile(buf)
}

// NewPipeReader reads a pipe-mode stream (perf record -o -) from r to its
// end and returns it as a File. The whole stream is read before the first
// record is returned: records are kept in memory to be ordered by time.
func NewPipeReader(r io.Reader) (*File, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("perfdata: read pipe: %w", err)
	}
	return newFile(data)
}

// Close releases the file's memory mapping: the byte slices of records
// (Record.Data, Sample.Stack, Sample.Raw…) must not be used afterwards.
// It is a no-op for a File from NewFile or NewPipeReader, and harmless to
// call twice.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	m := f.unmap
	f.unmap, f.data, f.closed = nil, nil, true
	return unix.Munmap(m)
}

func newFile(data []byte) (*File, error) {
	f := &File{data: data}
	if len(data) < pipeHeaderSize {
		return nil, truncErr(int64(len(data)), "file header")
	}
	switch m := le.Uint64(data); m {
	case magic:
	case magicSwapped:
		return nil, &FormatError{Offset: 0, Msg: "big-endian magic", Val: string(data[:8]), Err: ErrBigEndian}
	case magicV1:
		return nil, &FormatError{Offset: 0, Msg: "version 1 magic", Val: string(data[:8]), Err: ErrNotPerfData}
	default:
		return nil, &FormatError{Offset: 0, Msg: "bad magic", Val: string(data[:8]), Err: ErrNotPerfData}
	}
	f.Header.Size = le.Uint64(data[8:])
	var err error
	if f.Header.Size == pipeHeaderSize {
		f.Pipe = true
		err = f.readPipeHeader()
	} else {
		err = f.readFileHeader()
	}
	if err != nil {
		return nil, err
	}
	if err := f.link(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *File) readFileHeader() error {
	d := f.data
	h := &f.Header
	if h.Size != fileHeaderSize && h.Size != fileHeaderV0 {
		return formatErr(8, "file header size", h.Size)
	}
	if uint64(len(d)) < h.Size {
		return truncErr(int64(len(d)), "file header")
	}
	h.AttrSize = le.Uint64(d[16:])
	h.Attrs = Section{le.Uint64(d[24:]), le.Uint64(d[32:])}
	h.Data = Section{le.Uint64(d[40:]), le.Uint64(d[48:])}
	h.EventTypes = Section{le.Uint64(d[56:]), le.Uint64(d[64:])}
	if h.Size == fileHeaderSize {
		for i := range h.Features {
			h.Features[i] = le.Uint64(d[72+8*i:])
		}
	}
	// Attrs: perf reads each attr's own size, then its ids section.
	if h.AttrSize < attrSizeVer0+sectionSize || h.AttrSize > maxAttrSize {
		return formatErr(16, "attr entry size", h.AttrSize)
	}
	if err := f.checkSection(h.Attrs, 24, "attrs section"); err != nil {
		return err
	}
	n := h.Attrs.Size / h.AttrSize
	off := h.Attrs.Offset
	end := h.Attrs.Offset + h.Attrs.Size
	f.Attrs = make([]Attr, 0, n)
	for i := uint64(0); i < n; i++ {
		if off+attrSizeVer0 > end {
			return truncErr(int64(off), fmt.Sprintf("attr %d", i))
		}
		sz := uint64(le.Uint32(d[off+4:]))
		if sz == 0 {
			sz = attrSizeVer0
		}
		if sz < attrSizeVer0 || sz > maxAttrSize {
			return formatErr(int64(off+4), fmt.Sprintf("attr %d size", i), sz)
		}
		if off+sz+sectionSize > end {
			return truncErr(int64(off), fmt.Sprintf("attr %d", i))
		}
		a := Attr{EventAttr: decodeEventAttr(d[off : off+sz])}
		a.Size = uint32(sz)
		ids := Section{le.Uint64(d[off+sz:]), le.Uint64(d[off+sz+8:])}
		if err := f.checkSection(ids, int64(off+sz), fmt.Sprintf("attr %d ids", i)); err != nil {
			return err
		}
		a.IDs = make([]uint64, ids.Size/8)
		for j := range a.IDs {
			a.IDs[j] = le.Uint64(d[ids.Offset+8*uint64(j):])
		}
		f.Attrs = append(f.Attrs, a)
		off += sz + sectionSize
	}
	if h.Data.Offset > 1<<62 || h.Data.Size > 1<<62 {
		return formatErr(40, "data section", h.Data.Offset)
	}
	// A file cut short ends inside its data: Records reports where.
	f.start, f.end = int64(h.Data.Offset), int64(h.Data.Offset+h.Data.Size)
	f.readFeatures()
	return nil
}

// checkSection checks that s lies inside the file; at is where s is
// described.
func (f *File) checkSection(s Section, at int64, what string) error {
	if s.Offset > uint64(len(f.data)) || s.Size > uint64(len(f.data))-s.Offset {
		if s.Offset <= uint64(len(f.data)) && s.Size < 1<<62 {
			return truncErr(int64(len(f.data)), what)
		}
		return formatErr(at, what+" out of the file", s.Offset)
	}
	return nil
}

// readFeatures reads the feature sections of a file (not a pipe).
func (f *File) readFeatures() {
	h := &f.Header
	n := 0
	for _, w := range h.Features {
		n += bits.OnesCount64(w)
	}
	if n == 0 {
		return
	}
	table := Section{h.Data.Offset + h.Data.Size, uint64(n) * sectionSize}
	if table.Offset < h.Data.Offset { // overflow
		f.FeatureErr = formatErr(48, "data section size", h.Data.Size)
		return
	}
	if err := f.checkSection(table, 48, "feature section table"); err != nil {
		f.FeatureErr = err
		return
	}
	off := table.Offset
	for feat := Feature(0); feat < 256; feat++ {
		if !h.HasFeature(feat) {
			continue
		}
		s := Section{le.Uint64(f.data[off:]), le.Uint64(f.data[off+8:])}
		if err := f.checkSection(s, int64(off), "feature "+feat.String()); err != nil {
			f.setFeatureErr(err)
		} else if err := f.Features.parse(feat, f.data[s.Offset:s.Offset+s.Size], int64(s.Offset)); err != nil {
			f.setFeatureErr(err)
		}
		off += sectionSize
	}
}

func (f *File) setFeatureErr(err error) {
	if f.FeatureErr == nil {
		f.FeatureErr = err
	}
}

// readPipeHeader collects what a pipe-mode stream carries in records: attrs,
// features and tracing data. It stops at the first bad record, which
// Records reports in its place.
func (f *File) readPipeHeader() error {
	f.start, f.end = pipeHeaderSize, int64(len(f.data))
	for off := f.start; off < f.end; {
		h, err := f.frame(off)
		if err != nil {
			break
		}
		rec := f.data[off : off+int64(h.size)]
		switch h.typ {
		case RecordHeaderAttr:
			if err := f.pipeAttr(rec, off); err != nil {
				return err
			}
		case RecordHeaderFeature:
			if len(rec) >= 16 {
				feat := le.Uint64(rec[8:])
				if feat < 256 {
					f.Header.Features[feat/64] |= 1 << (feat % 64)
					if err := f.Features.parse(Feature(feat), rec[16:], off+16); err != nil {
						f.setFeatureErr(err)
					}
				}
			}
		case RecordHeaderTracingData:
			p := off + int64(h.size)
			f.Header.Features[0] |= 1 << FeatTracingData
			if err := f.Features.parse(FeatTracingData, f.data[p:p+h.extra], p); err != nil {
				f.setFeatureErr(err)
			}
		case RecordEventUpdate:
			// struct perf_record_event_update: type, id, then for
			// PERF_EVENT_UPDATE__NAME (2) the event's name.
			if len(rec) >= 24 && le.Uint64(rec[8:]) == eventUpdateName {
				if f.Features.eventNames == nil {
					f.Features.eventNames = make(map[uint64]string)
				}
				f.Features.eventNames[le.Uint64(rec[16:])] = cstring(rec[24:])
			}
		case RecordHeaderBuildID:
			if err := f.Features.parse(FeatBuildID, rec, off); err != nil {
				f.setFeatureErr(err)
			}
		}
		off += int64(h.size) + h.extra
	}
	return nil
}

func (f *File) pipeAttr(rec []byte, off int64) error {
	if len(rec) < recordHeader+attrSizeVer0 {
		return formatErr(off, "ATTR record size", len(rec))
	}
	sz := uint64(le.Uint32(rec[recordHeader+4:]))
	if sz == 0 {
		sz = attrSizeVer0
	}
	if sz < attrSizeVer0 || sz > uint64(len(rec)-recordHeader) {
		return formatErr(off+recordHeader+4, "ATTR record attr size", sz)
	}
	a := Attr{EventAttr: decodeEventAttr(rec[recordHeader : recordHeader+sz])}
	a.Size = uint32(sz)
	ids := rec[recordHeader+sz:]
	a.IDs = make([]uint64, len(ids)/8)
	for i := range a.IDs {
		a.IDs[i] = le.Uint64(ids[8*i:])
	}
	f.Attrs = append(f.Attrs, a)
	return nil
}

// link checks the architecture and ties attrs to ids, names and formats.
func (f *File) link() error {
	if f.Features.Arch != "" && f.Features.Arch != archX86_64 {
		return &FormatError{Offset: 0, Msg: "HEADER_ARCH", Val: f.Features.Arch, Err: ErrArch}
	}
	for i := range f.Attrs {
		a := &f.Attrs[i]
		if i < len(f.Features.EventDesc) && a.Name == "" {
			a.Name = f.Features.EventDesc[i].Name
		}
		for _, id := range a.IDs {
			if a.Name != "" {
				break
			}
			a.Name = f.Features.eventNames[id]
		}
		if a.Type == TypeTracepoint && f.Features.Tracing != nil {
			a.Format = f.Features.Tracing.Format(a.Config)
			if a.Name == "" && a.Format != nil {
				a.Name = a.Format.System + ":" + a.Format.Name
			}
		}
	}
	f.dec = newDecoder(f.Attrs)
	return nil
}

// calcIDPos returns where the sample id is: as the idPos-th u64 of a SAMPLE
// record's body, and as the isPos-th u64 from the end of another record's
// sample_id trailer; -1 if there is none (perf's __evsel__calc_id_pos and
// __evsel__calc_is_pos).
func calcIDPos(t SampleType) (idPos, isPos int) {
	if t&SampleIdentifier != 0 {
		return 0, 1
	}
	if t&SampleID == 0 {
		return -1, -1
	}
	idPos, isPos = 0, 1
	for _, b := range []SampleType{SampleIP, SampleTID, SampleTime, SampleAddr} {
		if t&b != 0 {
			idPos++
		}
	}
	for _, b := range []SampleType{SampleCPU, SampleStreamID} {
		if t&b != 0 {
			isPos++
		}
	}
	return idPos, isPos
}
