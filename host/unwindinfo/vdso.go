package unwindinfo

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/unwindd/unwindd/host/procfs"
)

// VDSOPath is the pseudo-path of the vDSO mapping in /proc/PID/maps and perf
// records.
const VDSOPath = "[vdso]"

// readVDSO returns a copy of this process's vDSO image. The kernel maps the
// same vDSO into every 64-bit process it runs, so its unwind tables are
// those of every traced process's [vdso] on this machine (a recording
// made on another kernel is told apart by the vDSO's build-id).
func readVDSO() ([]byte, error) {
	maps, err := procfs.ReadMaps(os.Getpid())
	if err != nil {
		return nil, err
	}
	for _, m := range maps {
		if m.Path != VDSOPath {
			continue
		}
		f, err := os.Open("/proc/self/mem")
		if err != nil {
			return nil, err
		}
		defer f.Close()
		img := make([]byte, m.End-m.Start)
		if _, err := f.ReadAt(img, int64(m.Start)); err != nil {
			return nil, fmt.Errorf("read the vDSO at %#x: %w", m.Start, err)
		}
		if !bytes.HasPrefix(img, []byte("\x7fELF")) {
			return nil, errors.New("the vDSO mapping is not an ELF image")
		}
		return img, nil
	}
	return nil, errors.New("this process has no vDSO mapping")
}
