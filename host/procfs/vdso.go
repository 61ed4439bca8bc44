package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
)

// VDSOPath is the pseudo-path of the vDSO mapping in /proc/PID/maps and in
// perf's records.
const VDSOPath = "[vdso]"

// VDSO returns a copy of the calling process's vDSO image, an ELF file. The
// kernel maps the same vDSO into every 64-bit process it runs, so its
// symbols and unwind tables are those of every traced process's [vdso] on
// this machine (a recording made under another kernel is told apart by the
// image's build-id).
func VDSO() ([]byte, error) {
	maps, err := ReadMaps(os.Getpid())
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
			return nil, fmt.Errorf("procfs: read the vDSO at %#x: %w", m.Start, err)
		}
		if !bytes.HasPrefix(img, []byte("\x7fELF")) {
			return nil, errors.New("procfs: the vDSO mapping is not an ELF image")
		}
		return img, nil
	}
	return nil, errors.New("procfs: this process has no vDSO mapping")
}
