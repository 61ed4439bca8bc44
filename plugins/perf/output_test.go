package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
)

var update = flag.Bool("update", false, "rewrite testdata/perf.script.txt from the scenario's output")

// readProfile parses dir's profile.pb.gz.
func readProfile(t *testing.T, dir string) *profile.Profile {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, profileFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		t.Fatalf("profile.Parse: %v", err)
	}
	return p
}

func TestProfile(t *testing.T) {
	dir, _ := runScenario(t)
	p := readProfile(t, dir)

	var types []string
	for _, st := range append(p.SampleType, p.PeriodType) {
		types = append(types, st.Type+"/"+st.Unit)
	}
	if want := []string{"samples/count", "cpu/nanoseconds", "cpu/nanoseconds"}; !slices.Equal(types, want) || p.Period != 1001001 {
		t.Errorf("sample types and period type %q, period %d; want %q, 1001001", types, p.Period, want)
	}
	const first, last = 3044_662589123, 3044_666000000
	if p.DurationNanos != last-first || p.TimeNanos != closeTime.UnixNano()-(last-first) {
		t.Errorf("time %d, duration %d", p.TimeNanos, p.DurationNanos)
	}

	var maps []string
	for _, m := range p.Mapping {
		maps = append(maps, fmt.Sprintf("%d %#x-%#x@%#x %s %s fns=%v", m.ID, m.Start, m.Limit, m.Offset, m.File, m.BuildID, m.HasFunctions))
	}
	wantMaps := []string{
		"1 0x55d556554000-0x55d55655a000@0x1000 /work/main/bin/demo deadbeef fns=true",
		"2 0x7f8cad028000-0x7f8cad1bd000@0x28000 /usr/lib/x86_64-linux-gnu/libc.so.6 0123456789 fns=false",
	}
	if !slices.Equal(maps, wantMaps) {
		t.Errorf("mappings:\n%s\nwant\n%s", strings.Join(maps, "\n"), strings.Join(wantMaps, "\n"))
	}

	var fns []string
	for _, f := range p.Function {
		fns = append(fns, fmt.Sprintf("%d %s %s", f.ID, f.Name, f.Filename))
	}
	wantFns := []string{
		"1 hash_block /work/main/bin/demo",
		"2 main /work/main/bin/demo",
		"3 parse_header /work/main/bin/demo",
		"4 __libc_start_call_main /usr/lib/x86_64-linux-gnu/libc.so.6",
	}
	if !slices.Equal(fns, wantFns) {
		t.Errorf("functions:\n%s\nwant\n%s", strings.Join(fns, "\n"), strings.Join(wantFns, "\n"))
	}

	// Samples: values, labels, and locations leaf first, each as
	// mapping:address:function; non-leaf addresses are return address - 1.
	var samples []string
	for _, s := range p.Sample {
		var locs []string
		for _, l := range s.Location {
			fn := "?"
			if len(l.Line) == 1 {
				fn = l.Line[0].Function.Name
			}
			mid := uint64(0)
			if l.Mapping != nil {
				mid = l.Mapping.ID
			}
			locs = append(locs, fmt.Sprintf("%d:%#x:%s", mid, l.Address, fn))
		}
		samples = append(samples, fmt.Sprintf("%v comm=%q pid=%v tid=%v [%s]", s.Value, s.Label["comm"], s.NumLabel["pid"], s.NumLabel["tid"], strings.Join(locs, " ")))
	}
	wantSamples := []string{
		`[1 1001001] comm=["my worker"] pid=[100] tid=[103] []`, // no cookie: out at once
		`[1 1001001] comm=["demo"] pid=[100] tid=[102] [1:0x55d556558010:hash_block 1:0x55d5565582ff:main]`,
		`[2 2002002] comm=["demo"] pid=[100] tid=[101] [1:0x55d5565581ac:parse_header 1:0x55d5565582ff:main 2:0x7f8cad0a60ff:? 2:0x7f8cad0a6249:__libc_start_call_main 0:0x1233:?]`,
		`[1 1001001] comm=["demo"] pid=[100] tid=[105] []`,
	}
	if !slices.Equal(samples, wantSamples) {
		t.Errorf("samples:\n%s\nwant\n%s", strings.Join(samples, "\n"), strings.Join(wantSamples, "\n"))
	}
	if len(p.Location) != 6 {
		t.Errorf("%d locations, want 6 (main's is shared by both stacks)", len(p.Location))
	}
	if !slices.ContainsFunc(p.Comments, func(c string) bool {
		return strings.Contains(c, "samples=6 stacks=3 joined=3 lost=1 unjoined=2")
	}) {
		t.Errorf("comments %q lack the counts", p.Comments)
	}
}

// TestPprofTool reads the profile with the real go tool pprof. (-top and
// -raw are two runs: pprof refuses two output formats in one.)
func TestPprofTool(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go tool pprof")
	}
	dir, _ := runScenario(t)
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	for _, c := range []struct {
		args          []string
		want, notWant []string
	}{
		{[]string{"-top"}, []string{"parse_header", "main", "__libc_start_call_main", "hash_block", "[libc.so.6]"}, nil},
		// The raw dump lists the build-ids and both sample values.
		{[]string{"-raw"}, []string{"parse_header", "hash_block", "deadbeef", "0123456789", "samples/count cpu/nanoseconds", "2    2002002"}, nil},
		{[]string{"-top", "-tagfocus=tid=101"}, []string{"parse_header", "Total samples = 5.01ms", "accounting for 2ms"}, []string{"hash_block"}},
		{[]string{"-top", "-tagfocus=comm=demo"}, []string{"parse_header", "hash_block", "accounting for 3ms"}, nil},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			cmd := exec.Command(gobin, append(append([]string{"tool", "pprof"}, c.args...), filepath.Join(dir, profileFile))...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("go tool pprof %s: %v\n%s", c.args, err, stderr.String())
			}
			out := stdout.String()
			for _, s := range c.want {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range c.notWant {
				if strings.Contains(out, s) {
					t.Errorf("output has %q:\n%s", s, out)
				}
			}
		})
	}
}

func TestFolded(t *testing.T) {
	dir, _ := runScenario(t)
	got, err := os.ReadFile(filepath.Join(dir, foldedFile))
	if err != nil {
		t.Fatal(err)
	}
	want := "demo 1\n" +
		"demo;[unknown];__libc_start_call_main;[libc.so.6];main;parse_header 2\n" +
		"demo;main;hash_block 1\n" +
		"my_worker 1\n"
	if string(got) != want {
		t.Errorf("stacks.folded:\n%s\nwant\n%s", got, want)
	}
}

func TestScriptGolden(t *testing.T) {
	dir, _ := runScenario(t)
	got, err := os.ReadFile(filepath.Join(dir, scriptFile))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", scriptFile)
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it, and read it before keeping it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("perf.script.txt differs from %s:\n%s", golden, got)
	}
}

// The patterns FlameGraph's stackcollapse-perf.pl parses perf script with:
// a sample's header, its event and period, and one callchain line.
var (
	collapseHeader = regexp.MustCompile(`^(\S.+?)\s+(\d+)/*(\d+)*\s+`)
	collapseEvent  = regexp.MustCompile(`:\s*(\d+)*\s+(\S+):\s*$`)
	collapseFrame  = regexp.MustCompile(`^\s*(\w+)\s*(.+) \((\S*)\)`)
)

// TestScriptCollapses reads perf.script.txt as stackcollapse-perf.pl does
// and checks that folding it gives stacks.folded: the two files agree, and
// the script's layout is what flame graph tools expect of perf script.
func TestScriptCollapses(t *testing.T) {
	dir, _ := runScenario(t)
	script, err := os.ReadFile(filepath.Join(dir, scriptFile))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	var comm string
	var stack []string
	inSample := false
	for i, line := range strings.Split(string(script), "\n") {
		switch {
		case line == "":
			if inSample {
				counts[strings.Join(append([]string{comm}, stack...), ";")]++
			}
			inSample, stack = false, nil
		case !inSample:
			m := collapseHeader.FindStringSubmatch(line)
			if m == nil || !collapseEvent.MatchString(line) {
				t.Fatalf("line %d: %q is not a perf script sample header", i+1, line)
			}
			if e := collapseEvent.FindStringSubmatch(line); e[2] != "cpu-clock" || e[1] != "1001001" {
				t.Errorf("line %d: event %q period %q", i+1, e[2], e[1])
			}
			comm, inSample = strings.ReplaceAll(m[1], " ", "_"), true
		default:
			m := collapseFrame.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("line %d: %q is not a callchain line", i+1, line)
			}
			fn := regexp.MustCompile(`\+0x[\da-f]+$`).ReplaceAllString(m[2], "")
			if fn == "[unknown]" && m[3] != "[unknown]" {
				fn = "[" + filepath.Base(m[3]) + "]"
			}
			stack = append([]string{fn}, stack...)
		}
	}
	var folded []string
	for k, n := range counts {
		folded = append(folded, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(folded)
	want, err := os.ReadFile(filepath.Join(dir, foldedFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(folded, "\n") + "\n"; got != string(want) {
		t.Errorf("perf.script.txt collapses to\n%s\nbut stacks.folded is\n%s", got, want)
	}
}
