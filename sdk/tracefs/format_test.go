package tracefs

import (
	"os"
	"testing"
)

func TestParseFormat(t *testing.T) {
	const text = `name: sys_enter
ID: 22
format:
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;

	field:long id;	offset:8;	size:8;	signed:1;
	field:unsigned long args[6];	offset:16;	size:48;	signed:0;
	field:char comm[TASK_COMM_LEN];	offset:64;	size:16;	signed:0;
	field:__data_loc char[] name;	offset:80;	size:4;	signed:0;
	field:s32 neg;	offset:84;	size:4;	signed:1;

print fmt: "NR %ld (%lx, %lx, %lx, %lx, %lx, %lx)", REC->id, REC->args[0]
`
	e, err := ParseFormat([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if e.Name != "sys_enter" || e.ID != 22 || len(e.Fields) != 9 {
		t.Fatalf("%+v", e)
	}
	raw := make([]byte, 96)
	le.PutUint64(raw[8:], uint64(0xffffffffffffffff))
	for i := range 6 {
		le.PutUint64(raw[16+8*i:], uint64(i*0x1000))
	}
	copy(raw[64:], "true\x00")
	le.PutUint32(raw[80:], 4<<16|88)
	copy(raw[88:], "abc\x00")
	le.PutUint32(raw[84:], 0xfffffffe)
	for _, tt := range []struct {
		field string
		i     int
		want  int64
	}{{"id", 0, -1}, {"args", 3, 0x3000}, {"args", 5, 0x5000}, {"common_pid", 0, 0}, {"neg", 0, -2}} {
		v, err := e.Field(tt.field).Int(raw, tt.i)
		if err != nil || v != tt.want {
			t.Errorf("%s[%d] = %d, %v; want %d", tt.field, tt.i, v, err, tt.want)
		}
	}
	if f := e.Field("comm"); f.ArrayLen != 16 || f.Type != "char" {
		t.Errorf("comm: %+v", f)
	}
	if s, err := e.Field("comm").Text(raw); s != "true" || err != nil {
		t.Errorf("comm = %q, %v", s, err)
	}
	if s, err := e.Field("name").Text(raw); s != "abc" || err != nil {
		t.Errorf("name = %q, %v", s, err)
	}
	if _, err := e.Field("args").Uint(raw, 6); err == nil {
		t.Error("args[6]: no error")
	}
	if _, err := e.Field("args").Uint(raw[:40], 5); err == nil {
		t.Error("args beyond payload: no error")
	}
	if !e.Fields[0].Common || e.Field("id").Common {
		t.Error("common fields")
	}
	for _, bad := range []string{"ID: 1\n", "name: x\nID: y\n", "name: x\nformat:\n\tfield:int a;\toffset:x;\tsize:4;\tsigned:1;\n", "name: x\nformat:\n\tfield:int;\toffset:0;\tsize:4;\n"} {
		if _, err := ParseFormat([]byte(bad)); err == nil {
			t.Errorf("ParseFormat(%q): no error", bad)
		}
	}
}

// TestTracefsFormat parses the live tracefs format of raw_syscalls when
// tracefs is there (perf record mounts it).
func TestTracefsFormat(t *testing.T) {
	text, err := os.ReadFile("/sys/kernel/tracing/events/raw_syscalls/sys_enter/format")
	if err != nil {
		t.Skipf("tracefs: %v", err)
	}
	e, err := ParseFormat(text)
	if err != nil {
		t.Fatal(err)
	}
	if f := e.Field("args"); f == nil || f.ArrayLen != 6 || f.ElemSize() != 8 {
		t.Fatalf("args: %+v", f)
	}
}
