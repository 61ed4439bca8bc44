package unwindinfo

import "github.com/unwindd/unwindd/host/procfs"

// VDSOPath is the pseudo-path of the vDSO mapping in /proc/PID/maps and perf
// records.
const VDSOPath = procfs.VDSOPath

// readVDSO returns a copy of this process's vDSO image: the kernel maps the
// same vDSO into every 64-bit process it runs, so its unwind tables are
// those of every traced process's [vdso] on this machine (a recording made
// on another kernel is told apart by the vDSO's build-id).
func readVDSO() ([]byte, error) { return procfs.VDSO() }
