package perfdata

import (
	"bytes"
	"fmt"
)

// Features holds the feature sections of a file (or the FEATURE records of
// a pipe) that this package decodes. Absent ones are zero.
type Features struct {
	Hostname  string   // HEADER_HOSTNAME
	OSRelease string   // HEADER_OSRELEASE (uname -r)
	Version   string   // HEADER_VERSION: perf's version
	Arch      string   // HEADER_ARCH (uname -m): "x86_64"
	CPUDesc   string   // HEADER_CPUDESC
	CPUID     string   // HEADER_CPUID
	TotalMem  uint64   // HEADER_TOTAL_MEM, in kB
	Cmdline   []string // HEADER_CMDLINE: perf's argv

	// HEADER_NRCPUS: the CPUs the recording machine has and had online.
	NrCPUsAvail, NrCPUsOnline uint32

	BuildIDs  []BuildID   // HEADER_BUILD_ID
	EventDesc []EventDesc // HEADER_EVENT_DESC, in attr order

	// HEADER_SAMPLE_TIME: the times of the first and last samples.
	FirstSampleTime, LastSampleTime uint64

	Tracing *TracingData // HEADER_TRACING_DATA, nil when absent

	eventNames map[uint64]string // EVENT_UPDATE names by sample id (pipe)
}

// BuildID is one entry of HEADER_BUILD_ID: the build-id of a file that
// samples hit (struct perf_record_header_build_id).
type BuildID struct {
	PID      int32  // -1 for the kernel
	Misc     uint16 // cpu mode (MiscKernel, MiscUser…)
	ID       []byte // 20 bytes, or the size the record gives
	Filename string
}

// EventDesc is one entry of HEADER_EVENT_DESC.
type EventDesc struct {
	Attr EventAttr
	Name string
	IDs  []uint64
}

// fr reads a feature section, failing with its offset.
type fr struct {
	b    []byte
	p    int
	base int64
	feat Feature
	err  error
}

func (r *fr) fail(what string) {
	if r.err == nil {
		r.err = truncErr(r.base+int64(r.p), fmt.Sprintf("%v %s", r.feat, what))
	}
	r.p = len(r.b)
}

func (r *fr) u32() uint32 {
	if len(r.b)-r.p < 4 {
		r.fail("u32")
		return 0
	}
	v := le.Uint32(r.b[r.p:])
	r.p += 4
	return v
}

func (r *fr) u64() uint64 {
	if len(r.b)-r.p < 8 {
		r.fail("u64")
		return 0
	}
	v := le.Uint64(r.b[r.p:])
	r.p += 8
	return v
}

func (r *fr) bytes(n uint64) []byte {
	if uint64(len(r.b)-r.p) < n {
		r.fail("bytes")
		return nil
	}
	v := r.b[r.p : r.p+int(n)]
	r.p += int(n)
	return v
}

// str reads perf's do_write_string layout: u32 length (padding included),
// then the NUL-padded bytes.
func (r *fr) str() string {
	n := r.u32()
	return cstring(r.bytes(uint64(n)))
}

func (r *fr) left() int { return len(r.b) - r.p }

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// parse decodes feature feat from b, which starts at file offset base.
func (fs *Features) parse(feat Feature, b []byte, base int64) error {
	r := &fr{b: b, base: base, feat: feat}
	switch feat {
	case FeatHostname:
		fs.Hostname = r.str()
	case FeatOSRelease:
		fs.OSRelease = r.str()
	case FeatVersion:
		fs.Version = r.str()
	case FeatArch:
		fs.Arch = r.str()
	case FeatCPUDesc:
		fs.CPUDesc = r.str()
	case FeatCPUID:
		fs.CPUID = r.str()
	case FeatTotalMem:
		fs.TotalMem = r.u64()
	case FeatNrCPUs:
		fs.NrCPUsAvail = r.u32()
		fs.NrCPUsOnline = r.u32()
	case FeatCmdline:
		n := r.u32()
		if uint64(n) > uint64(r.left()/4) {
			return formatErr(base, "CMDLINE count", n)
		}
		fs.Cmdline = make([]string, 0, n)
		for i := uint32(0); i < n && r.err == nil; i++ {
			fs.Cmdline = append(fs.Cmdline, r.str())
		}
	case FeatSampleTime:
		fs.FirstSampleTime = r.u64()
		fs.LastSampleTime = r.u64()
	case FeatEventDesc:
		n, sz := r.u32(), r.u32()
		if r.err == nil && (sz < attrSizeVer0 || sz > maxAttrSize) {
			return formatErr(base+4, "EVENT_DESC attr size", sz)
		}
		if r.err == nil && uint64(n) > uint64(r.left())/uint64(sz) {
			return formatErr(base, "EVENT_DESC count", n)
		}
		fs.EventDesc = make([]EventDesc, 0, n)
		for i := uint32(0); i < n && r.err == nil; i++ {
			var d EventDesc
			d.Attr = decodeEventAttr(r.bytes(uint64(sz)))
			nid := r.u32()
			d.Name = r.str()
			if uint64(nid) > uint64(r.left()/8) {
				r.fail("ids")
				break
			}
			d.IDs = make([]uint64, nid)
			for j := range d.IDs {
				d.IDs[j] = r.u64()
			}
			fs.EventDesc = append(fs.EventDesc, d)
		}
	case FeatBuildID:
		return fs.parseBuildIDs(b, base)
	case FeatTracingData:
		td, err := parseTracingData(b, base)
		if err != nil {
			return err
		}
		fs.Tracing = td
	}
	return r.err
}

// build-id record: header (8), pid (4), build_id[24] (data[20], size, pad).
const buildIDRecordSize = 36

func (fs *Features) parseBuildIDs(b []byte, base int64) error {
	for p := 0; p < len(b); {
		if len(b)-p < buildIDRecordSize {
			return truncErr(base+int64(p), "BUILD_ID entry")
		}
		misc := le.Uint16(b[p+4:])
		size := int(le.Uint16(b[p+6:]))
		if size < buildIDRecordSize || size > len(b)-p {
			return formatErr(base+int64(p)+6, "BUILD_ID entry size", size)
		}
		e := b[p : p+size]
		n := buildIDMaxSize
		if misc&MiscBuildIDSize != 0 && int(e[12+20]) <= buildIDMaxSize {
			n = int(e[12+20])
		}
		fs.BuildIDs = append(fs.BuildIDs, BuildID{
			PID:      int32(le.Uint32(e[8:])),
			Misc:     misc &^ MiscBuildIDSize,
			ID:       bytes.Clone(e[12 : 12+n]),
			Filename: cstring(e[buildIDRecordSize:]),
		})
		p += size
	}
	return nil
}
