package perfdata

import (
	"fmt"
	"math/bits"
	"strings"
)

// RecordType is the type of a perf.data record (perf_event_header.type):
// kernel records (enum perf_event_type, below 64) and the records perf
// itself writes (enum perf_user_event_type, 64 and up).
type RecordType uint32

// Kernel record types (include/uapi/linux/perf_event.h).
const (
	RecordMmap            RecordType = 1
	RecordLost            RecordType = 2
	RecordComm            RecordType = 3
	RecordExit            RecordType = 4
	RecordThrottle        RecordType = 5
	RecordUnthrottle      RecordType = 6
	RecordFork            RecordType = 7
	RecordRead            RecordType = 8
	RecordSample          RecordType = 9
	RecordMmap2           RecordType = 10
	RecordAux             RecordType = 11
	RecordItraceStart     RecordType = 12
	RecordLostSamples     RecordType = 13
	RecordSwitch          RecordType = 14
	RecordSwitchCPUWide   RecordType = 15
	RecordNamespaces      RecordType = 16
	RecordKsymbol         RecordType = 17
	RecordBPFEvent        RecordType = 18
	RecordCgroup          RecordType = 19
	RecordTextPoke        RecordType = 20
	RecordAuxOutputHWID   RecordType = 21
	recordKernelTypeLimit RecordType = 22
)

// Record types perf writes itself (tools/lib/perf/include/perf/event.h).
// In a file most of them live in the header instead; in pipe mode they carry
// it ([RecordHeaderAttr], [RecordHeaderFeature], [RecordHeaderTracingData]).
const (
	RecordHeaderAttr        RecordType = 64
	RecordHeaderEventType   RecordType = 65
	RecordHeaderTracingData RecordType = 66
	RecordHeaderBuildID     RecordType = 67
	RecordFinishedRound     RecordType = 68
	RecordIDIndex           RecordType = 69
	RecordAuxtraceInfo      RecordType = 70
	RecordAuxtrace          RecordType = 71
	RecordAuxtraceError     RecordType = 72
	RecordThreadMap         RecordType = 73
	RecordCPUMap            RecordType = 74
	RecordStatConfig        RecordType = 75
	RecordStat              RecordType = 76
	RecordStatRound         RecordType = 77
	RecordEventUpdate       RecordType = 78
	RecordTimeConv          RecordType = 79
	RecordHeaderFeature     RecordType = 80
	RecordCompressed        RecordType = 81
	RecordFinishedInit      RecordType = 82
	recordUserTypeLimit     RecordType = 83
	recordUserTypeStart     RecordType = 64
)

var recordNames = map[RecordType]string{
	RecordMmap: "MMAP", RecordLost: "LOST", RecordComm: "COMM", RecordExit: "EXIT",
	RecordThrottle: "THROTTLE", RecordUnthrottle: "UNTHROTTLE", RecordFork: "FORK",
	RecordRead: "READ", RecordSample: "SAMPLE", RecordMmap2: "MMAP2", RecordAux: "AUX",
	RecordItraceStart: "ITRACE_START", RecordLostSamples: "LOST_SAMPLES",
	RecordSwitch: "SWITCH", RecordSwitchCPUWide: "SWITCH_CPU_WIDE",
	RecordNamespaces: "NAMESPACES", RecordKsymbol: "KSYMBOL", RecordBPFEvent: "BPF_EVENT",
	RecordCgroup: "CGROUP", RecordTextPoke: "TEXT_POKE", RecordAuxOutputHWID: "AUX_OUTPUT_HW_ID",
	RecordHeaderAttr: "ATTR", RecordHeaderEventType: "EVENT_TYPE",
	RecordHeaderTracingData: "TRACING_DATA", RecordHeaderBuildID: "BUILD_ID",
	RecordFinishedRound: "FINISHED_ROUND", RecordIDIndex: "ID_INDEX",
	RecordAuxtraceInfo: "AUXTRACE_INFO", RecordAuxtrace: "AUXTRACE",
	RecordAuxtraceError: "AUXTRACE_ERROR", RecordThreadMap: "THREAD_MAP",
	RecordCPUMap: "CPU_MAP", RecordStatConfig: "STAT_CONFIG", RecordStat: "STAT",
	RecordStatRound: "STAT_ROUND", RecordEventUpdate: "EVENT_UPDATE",
	RecordTimeConv: "TIME_CONV", RecordHeaderFeature: "FEATURE",
	RecordCompressed: "COMPRESSED", RecordFinishedInit: "FINISHED_INIT",
}

// String returns perf's name for t without its PERF_RECORD_ prefix
// ("SAMPLE", "MMAP2", "FINISHED_ROUND"), as perf report -D prints it after
// that prefix; unknown types print as "RecordType(N)".
func (t RecordType) String() string {
	if s, ok := recordNames[t]; ok {
		return s
	}
	return fmt.Sprintf("RecordType(%d)", uint32(t))
}

// Known reports whether perf knows t: one of the kernel's record types
// (RecordMmap to RecordAuxOutputHWID) or of perf's own (RecordHeaderAttr to
// RecordFinishedInit). A [Reader] skips and counts the rest.
func (t RecordType) Known() bool {
	return t > 0 && t < recordKernelTypeLimit || t >= recordUserTypeStart && t < recordUserTypeLimit
}

// SampleType is perf_event_attr.sample_type: the fields of a SAMPLE record,
// and (with sample_id_all) of the sample_id trailer of the other records.
type SampleType uint64

// The bits of [SampleType] (enum perf_event_sample_format).
const (
	SampleIP           SampleType = 1 << 0
	SampleTID          SampleType = 1 << 1
	SampleTime         SampleType = 1 << 2
	SampleAddr         SampleType = 1 << 3
	SampleRead         SampleType = 1 << 4
	SampleCallchain    SampleType = 1 << 5
	SampleID           SampleType = 1 << 6
	SampleCPU          SampleType = 1 << 7
	SamplePeriod       SampleType = 1 << 8
	SampleStreamID     SampleType = 1 << 9
	SampleRaw          SampleType = 1 << 10
	SampleBranchStack  SampleType = 1 << 11
	SampleRegsUser     SampleType = 1 << 12
	SampleStackUser    SampleType = 1 << 13
	SampleWeight       SampleType = 1 << 14
	SampleDataSrc      SampleType = 1 << 15
	SampleIdentifier   SampleType = 1 << 16
	SampleTransaction  SampleType = 1 << 17
	SampleRegsIntr     SampleType = 1 << 18
	SamplePhysAddr     SampleType = 1 << 19
	SampleAux          SampleType = 1 << 20
	SampleCgroup       SampleType = 1 << 21
	SampleDataPageSize SampleType = 1 << 22
	SampleCodePageSize SampleType = 1 << 23
	SampleWeightStruct SampleType = 1 << 24
	sampleTypeMax      SampleType = 1 << 25
)

var sampleTypeNames = [...]string{
	"IP", "TID", "TIME", "ADDR", "READ", "CALLCHAIN", "ID", "CPU", "PERIOD",
	"STREAM_ID", "RAW", "BRANCH_STACK", "REGS_USER", "STACK_USER", "WEIGHT",
	"DATA_SRC", "IDENTIFIER", "TRANSACTION", "REGS_INTR", "PHYS_ADDR", "AUX",
	"CGROUP", "DATA_PAGE_SIZE", "CODE_PAGE_SIZE", "WEIGHT_STRUCT",
}

// String lists the bits of t by perf's names joined by "|", as perf report
// --header prints sample_type ("IP|TID|TIME").
func (t SampleType) String() string { return bitNames(uint64(t), sampleTypeNames[:]) }

// ReadFormat is perf_event_attr.read_format: the layout of PERF_SAMPLE_READ
// values.
type ReadFormat uint64

// The bits of [ReadFormat] (enum perf_event_read_format).
const (
	ReadTotalTimeEnabled ReadFormat = 1 << 0
	ReadTotalTimeRunning ReadFormat = 1 << 1
	ReadID               ReadFormat = 1 << 2
	ReadGroup            ReadFormat = 1 << 3
	ReadLost             ReadFormat = 1 << 4
)

var readFormatNames = [...]string{"TOTAL_TIME_ENABLED", "TOTAL_TIME_RUNNING", "ID", "GROUP", "LOST"}

// String lists the bits of f by perf's names ("ID|LOST").
func (f ReadFormat) String() string { return bitNames(uint64(f), readFormatNames[:]) }

func bitNames(v uint64, names []string) string {
	if v == 0 {
		return "0"
	}
	var b strings.Builder
	for ; v != 0; v &= v - 1 {
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		i := bits.TrailingZeros64(v)
		if i < len(names) {
			b.WriteString(names[i])
		} else {
			fmt.Fprintf(&b, "bit%d", i)
		}
	}
	return b.String()
}

// AttrFlags are the single-bit fields of perf_event_attr (disabled, inherit,
// …, sample_id_all, …), in the kernel's bit order.
type AttrFlags uint64

// The bits of [AttrFlags] this package and its callers look at.
const (
	AttrDisabled    AttrFlags = 1 << 0
	AttrInherit     AttrFlags = 1 << 1
	AttrMmap        AttrFlags = 1 << 8
	AttrComm        AttrFlags = 1 << 9
	AttrFreq        AttrFlags = 1 << 10
	AttrTask        AttrFlags = 1 << 13
	AttrMmapData    AttrFlags = 1 << 17
	AttrSampleIDAll AttrFlags = 1 << 18
	AttrMmap2       AttrFlags = 1 << 23
	AttrCommExec    AttrFlags = 1 << 24
	AttrUseClockID  AttrFlags = 1 << 25
	AttrBuildID     AttrFlags = 1 << 34
)

// Event types (perf_event_attr.type, enum perf_type_id).
const (
	TypeHardware   = 0
	TypeSoftware   = 1
	TypeTracepoint = 2
	TypeHWCache    = 3
	TypeRaw        = 4
	TypeBreakpoint = 5
)

// Feature is a perf.data header feature: a bit of [Header.Features] and the
// section it announces (enum HEADER_*, tools/perf/util/header.h).
type Feature int

// The features perf 6.x writes.
const (
	FeatTracingData    Feature = 1
	FeatBuildID        Feature = 2
	FeatHostname       Feature = 3
	FeatOSRelease      Feature = 4
	FeatVersion        Feature = 5
	FeatArch           Feature = 6
	FeatNrCPUs         Feature = 7
	FeatCPUDesc        Feature = 8
	FeatCPUID          Feature = 9
	FeatTotalMem       Feature = 10
	FeatCmdline        Feature = 11
	FeatEventDesc      Feature = 12
	FeatCPUTopology    Feature = 13
	FeatNUMATopology   Feature = 14
	FeatBranchStack    Feature = 15
	FeatPMUMappings    Feature = 16
	FeatGroupDesc      Feature = 17
	FeatAuxtrace       Feature = 18
	FeatStat           Feature = 19
	FeatCache          Feature = 20
	FeatSampleTime     Feature = 21
	FeatMemTopology    Feature = 22
	FeatClockID        Feature = 23
	FeatDirFormat      Feature = 24
	FeatBPFProgInfo    Feature = 25
	FeatBPFBTF         Feature = 26
	FeatCompressed     Feature = 27
	FeatCPUPMUCaps     Feature = 28
	FeatClockData      Feature = 29
	FeatHybridTopology Feature = 30
	FeatPMUCaps        Feature = 31
)

var featureNames = [...]string{
	"RESERVED", "TRACING_DATA", "BUILD_ID", "HOSTNAME", "OSRELEASE", "VERSION",
	"ARCH", "NRCPUS", "CPUDESC", "CPUID", "TOTAL_MEM", "CMDLINE", "EVENT_DESC",
	"CPU_TOPOLOGY", "NUMA_TOPOLOGY", "BRANCH_STACK", "PMU_MAPPINGS", "GROUP_DESC",
	"AUXTRACE", "STAT", "CACHE", "SAMPLE_TIME", "MEM_TOPOLOGY", "CLOCKID",
	"DIR_FORMAT", "BPF_PROG_INFO", "BPF_BTF", "COMPRESSED", "CPU_PMU_CAPS",
	"CLOCK_DATA", "HYBRID_TOPOLOGY", "PMU_CAPS",
}

// String returns perf's name of f without HEADER_ ("BUILD_ID").
func (f Feature) String() string {
	if f >= 0 && int(f) < len(featureNames) {
		return featureNames[f]
	}
	return fmt.Sprintf("Feature(%d)", int(f))
}

// Record misc bits (perf_event_header.misc) that change a record's layout or
// meaning.
const (
	MiscCPUModeMask = 0x7
	MiscKernel      = 1
	MiscUser        = 2
	MiscMmapData    = 1 << 13 // MMAP/MMAP2 of a data (non-exec) mapping
	MiscCommExec    = 1 << 13 // COMM caused by exec
	MiscMmapBuildID = 1 << 14 // MMAP2 carries a build-id instead of device and inode
	MiscBuildIDSize = 1 << 15 // a build-id record carries its size
	MiscSwitchOut   = 1 << 13 // SWITCH: switching out
	MiscExactIP     = 1 << 14 // SAMPLE: the ip is exact

	buildIDMaxSize  = 20
	perfRegsABINone = 0
)
