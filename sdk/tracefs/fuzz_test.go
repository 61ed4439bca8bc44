package tracefs

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFixtures parses the real format files in testdata: each has a name,
// an ID, the common fields first, and fields that fit their record.
func TestFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/*.format")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		f, err := ParseFormat(b)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if f.Name == "" || f.ID == 0 || len(f.Fields) < 4 || !f.Fields[0].Common || f.Fields[0].Name != "common_type" {
			t.Errorf("%s: %+v", file, f)
		}
		for _, fd := range f.Fields {
			if fd.Common && fd.Offset >= 8 {
				t.Errorf("%s: common field %s at %d", file, fd.Name, fd.Offset)
			}
		}
	}
	b, _ := os.ReadFile("testdata/sched_sched_switch.format")
	f, _ := ParseFormat(b)
	if c := f.Field("prev_comm"); c == nil || c.Type != "char" || c.ArrayLen != 16 || c.Size != 16 {
		t.Errorf("prev_comm: %+v", c)
	}
	b, _ = os.ReadFile("testdata/sched_sched_process_exec.format")
	f, _ = ParseFormat(b)
	if c := f.Field("filename"); c == nil || !c.Dynamic || c.Type != "char" {
		t.Errorf("filename: %+v", c)
	}
}

// FuzzParseFormat: any text either fails to parse or gives fields whose
// accessors, on any payload, answer without panicking.
func FuzzParseFormat(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.format")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte("\x01\x00\x00\x00\x00\x00\x00\x00\x10\x00\x04\x00abc\x00"))
	}
	f.Add([]byte("name: x\nID: 1\nformat:\n\tfield:__data_loc char[] s;\toffset:0;\tsize:4;\tsigned:0;\n"), []byte("\x04\x00\x04\x00abcd"))
	f.Add([]byte("name: x\nformat:\n\tfield:int a[X];\toffset:0;\tsize:12;\tsigned:1;\n"), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, text, raw []byte) {
		e, err := ParseFormat(text)
		if err != nil {
			return
		}
		if e.Name == "" {
			t.Fatal("parsed without a name")
		}
		for i := range e.Fields {
			fd := &e.Fields[i]
			if fd.Name == "" || fd.Offset < 0 || fd.Size < 0 || fd.ArrayLen < 0 {
				t.Fatalf("field %+v", fd)
			}
			if e.Field(fd.Name) == nil {
				t.Fatalf("Field(%q) = nil", fd.Name)
			}
			fd.Bytes(raw)
			fd.Text(raw)
			for j := -1; j <= min(fd.ArrayLen, 64); j++ {
				fd.Uint(raw, j)
			}
			fd.Int(raw, 0)
			fd.ElemSize()
		}
	})
}
