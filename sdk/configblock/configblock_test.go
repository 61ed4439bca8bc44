package configblock

import (
	"errors"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/unwindd/unwindd/sdk"
)

func TestMapping(t *testing.T) {
	for _, c := range []struct {
		block string
		keys  []string
		err   string
	}{
		{"", nil, ""},
		{"b: 1\na: {x: 2}\n", []string{"b", "a"}, ""},
		{"- 1\n- 2\n", nil, "not a YAML mapping"},
		{"a: [1,\n", nil, "not a YAML mapping"},
	} {
		m, err := Mapping([]byte(c.block))
		if c.err != "" {
			var ce *sdk.ConfigError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Mapping(%q) = %v, want a ConfigError saying %q", c.block, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Mapping(%q): %v", c.block, err)
		}
		var keys []string
		for _, it := range m {
			keys = append(keys, it.Key.(string))
		}
		if strings.Join(keys, ",") != strings.Join(c.keys, ",") {
			t.Errorf("Mapping(%q) keys %v, want %v", c.block, keys, c.keys)
		}
		if c.keys != nil && Show(m[1].Value) != "a mapping" {
			t.Errorf("a nested mapping shows as %s", Show(m[1].Value))
		}
	}
}

func TestIntShow(t *testing.T) {
	m, err := Mapping([]byte("a: 12\nb: -3\nc: 18446744073709551615\nd: x\ne: [1]\nf:\ng: 1.5\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		n    int64
		ok   bool
		show string
	}{{12, true, `"12"`}, {-3, true, `"-3"`}, {0, false, `"18446744073709551615"`}, {0, false, `"x"`}, {0, false, "a list"}, {0, false, "nothing"}, {0, false, `"1.5"`}}
	for i, it := range m {
		n, ok := Int(it.Value)
		if n != want[i].n || ok != want[i].ok || Show(it.Value) != want[i].show {
			t.Errorf("%v: Int %d, %v; Show %s; want %d, %v, %s", it.Key, n, ok, Show(it.Value), want[i].n, want[i].ok, want[i].show)
		}
	}
}

func TestKeys(t *testing.T) {
	m, err := Mapping([]byte("a: 1\n7: x\nb: 2\nx.y: 4\n"))
	if err != nil {
		t.Fatal(err)
	}
	// The YAML parser refuses a repeated key itself; a decoded value can
	// still hold one.
	m = append(m[:3], yaml.MapItem{Key: "a", Value: 3}, m[3])
	var errs Errors
	var got []string
	seen := Keys(m, "programs[0]", "a, b", errs.Add, func(k, f string, v any) { got = append(got, f+"="+Show(v)) })
	if want := `programs[0].a="1" programs[0].b="2" programs[0]="4"`; strings.Join(got, " ") != want {
		t.Errorf("keys walked: %q, want %q", strings.Join(got, " "), want)
	}
	if !seen["a"] || !seen["b"] || seen["c"] {
		t.Errorf("seen %v", seen)
	}
	var msgs []string
	for _, e := range errs {
		var ce *sdk.ConfigError
		if !errors.As(e, &ce) {
			t.Fatalf("%v is not a ConfigError", e)
		}
		msgs = append(msgs, ce.Field+": "+ce.Msg)
	}
	if want := `programs[0].7: "7": keys are names (a, b)|programs[0].a: "a" given twice`; strings.Join(msgs, "|") != want {
		t.Errorf("errors %q, want %q", strings.Join(msgs, "|"), want)
	}
	if Field("", "") != "" || Field("", "k") != "k" || Field("p", "a[1]") != "p" {
		t.Error("Field")
	}
}

func TestDir(t *testing.T) {
	for _, tc := range []struct {
		v       any
		want    string
		wantErr string
	}{
		{"/tmp/out", "/tmp/out", ""},
		{"", "", `out: want a directory, got ""`},
		{nil, "", "out: want a directory, got nothing"},
		{int64(3), "", `out: want a directory, got "3"`},
		{[]any{"a"}, "", "out: want a directory, got a list"},
	} {
		var errs Errors
		got := Dir("out", tc.v, errs.Add)
		var msg string
		if len(errs) > 0 {
			msg = errs[0].Error()
		}
		if got != tc.want || !strings.Contains(msg, tc.wantErr) || (tc.wantErr == "") != (len(errs) == 0) {
			t.Errorf("Dir(%#v) = %q, errors %v; want %q, %q", tc.v, got, errs, tc.want, tc.wantErr)
		}
	}
}
