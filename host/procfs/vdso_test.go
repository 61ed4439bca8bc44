package procfs

import (
	"bytes"
	"debug/elf"
	"testing"
)

func TestVDSO(t *testing.T) {
	img, err := VDSO()
	if err != nil {
		t.Skipf("no vDSO: %v", err)
	}
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		t.Fatalf("the vDSO image is not ELF: %v", err)
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range syms {
		found = found || s.Name == "__vdso_clock_gettime"
	}
	if !found {
		t.Errorf("the vDSO has no __vdso_clock_gettime among %d symbols", len(syms))
	}
}
