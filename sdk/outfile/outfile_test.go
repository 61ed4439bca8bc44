package outfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestWrite: a written file appears under its name, readable, and no
// temporary file is left; a failed write leaves the old file as it was and
// no temporary file either.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, "out.txt", func(w io.Writer) error { _, err := io.WriteString(w, "new\n"); return err }); err != nil {
		t.Fatal(err)
	}
	check := func(want string) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, "out.txt"))
		if err != nil || string(b) != want {
			t.Errorf("out.txt = %q, %v; want %q", b, err, want)
		}
		if st, err := os.Stat(filepath.Join(dir, "out.txt")); err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("out.txt mode %v, %v; want 0644", st.Mode(), err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("directory holds %d entries, want out.txt alone", len(entries))
		}
	}
	check("new\n")
	boom := errors.New("boom")
	err := Write(dir, "out.txt", func(w io.Writer) error { io.WriteString(w, "half"); return boom })
	if !errors.Is(err, boom) {
		t.Errorf("a failed write returned %v, want boom", err)
	}
	check("new\n")
	if _, err := Create(filepath.Join(dir, "missing"), "x"); err == nil {
		t.Error("Create in a missing directory: no error")
	}
}
