package main

import (
	"context"
	"math"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/unwindd/unwindd/internal/testutil/browser"
	"github.com/unwindd/unwindd/sdk"
)

// Three stacks of the process "demo", leaf first, sampled 60, 30 and 10
// times: hash_block and parse_header under compute, and a C++ name that
// needs escaping beside compute.
var (
	flameHot = []sdk.Frame{
		{Addr: 0x55d556558010, Mapping: demoMap, Function: "hash_block", Offset: 0x10, Type: sdk.TypeRegs},
		{Addr: 0x55d556558110, Mapping: demoMap, Function: "compute", Offset: 0x20, Type: sdk.TypeCFI},
		{Addr: 0x55d556558300, Mapping: demoMap, Function: "main", Offset: 0x40, Type: sdk.TypeCFI},
		{Addr: 0x7f8cad0a624a, Mapping: libcMap, Function: "__libc_start_call_main", Offset: 0x7a, Type: sdk.TypeCFI},
	}
	flameWarm = []sdk.Frame{
		{Addr: 0x55d5565581ac, Mapping: demoMap, Function: "parse_header", Offset: 0x13, Type: sdk.TypeRegs},
		{Addr: 0x55d556558140, Mapping: demoMap, Function: "compute", Offset: 0x50, Type: sdk.TypeCFI},
		{Addr: 0x55d556558300, Mapping: demoMap, Function: "main", Offset: 0x40, Type: sdk.TypeCFI},
		{Addr: 0x7f8cad0a624a, Mapping: libcMap, Function: "__libc_start_call_main", Offset: 0x7a, Type: sdk.TypeCFI},
	}
	flameCold = []sdk.Frame{
		{Addr: 0x55d556558400, Mapping: demoMap, Function: `Writer<std::ostream&, "out">::flush`, Offset: 0x8, Type: sdk.TypeRegs},
		{Addr: 0x55d556558320, Mapping: demoMap, Function: "main", Offset: 0x60, Type: sdk.TypeCFI},
		{Addr: 0x7f8cad0a624a, Mapping: libcMap, Function: "__libc_start_call_main", Offset: 0x7a, Type: sdk.TypeCFI},
	}
	flameColdName = `Writer<std::ostream&, "out">::flush`
)

// flameWorkload runs the tracer on 100 samples, each in its own kernel
// entry joined to its stack (60 flameHot, 30 flameWarm, 10 flameCold,
// interleaved), closes it and returns its out directory.
func flameWorkload(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "out")
	tr := newTracer()
	tr.now = func() time.Time { return closeTime }
	tr.stderr = new(strings.Builder)
	ctx := context.Background()
	if _, err := tr.Describe(ctx, sdk.DescribeInfo{Config: scenarioConfig(dir), Host: sdk.NewHost(nil)}); err != nil {
		t.Fatalf("Describe: %v", err)
	}
	for i := range 100 {
		frames := flameHot
		switch i % 10 {
		case 6, 7, 8:
			frames = flameWarm
		case 9:
			frames = flameCold
		}
		cookie, tid, ts := uint64(i+1), int32(101+i%3), uint64(1e12)+uint64(i)*1_001_001
		must(t, tr.Events(ctx, []sdk.Event{sampleEv(cookie, tid, int32(i%4), ts)}))
		must(t, tr.Stack(ctx, stackOf(cookie, tid, ts+1000, frames)))
	}
	must(t, tr.Close())
	if st := tr.joiner.stats; st.Samples != 100 || st.Joined != 100 {
		t.Fatalf("joined %d of %d samples, want 100 of 100", st.Joined, st.Samples)
	}
	return dir
}

// domFrame is a frame as the browser renders it.
type domFrame struct {
	Name    string  `json:"name"`
	Samples uint64  `json:"samples"`
	Class   string  `json:"cls"`
	X       float64 `json:"x"` // the rect's bounding box, in CSS px
	Y       float64 `json:"y"`
	W       float64 `json:"w"`
	H       float64 `json:"h"`
	Fill    string  `json:"fill"` // computed
	Label   string  `json:"label"`
	Display string  `json:"display"` // the <g>'s computed display
}

const domFramesJS = `Array.from(document.querySelectorAll("g.f"), g => {
	const r = g.querySelector("rect"), b = r.getBoundingClientRect();
	return {name: g.getAttribute("data-name"), samples: +g.getAttribute("data-samples"), cls: g.getAttribute("class"),
		x: b.x, y: b.y, w: b.width, h: b.height, fill: getComputedStyle(r).fill,
		label: g.querySelector("text").textContent, display: getComputedStyle(g).display};
})`

// TestFlameBrowser renders the flame.svg of flameWorkload in headless
// Chromium and checks it as a person would use it: the frames and their
// widths (60/30/10), the details line on hover, zoom on click and Reset
// Zoom, and search from the URL. It leaves a screenshot in the artifacts
// directory.
func TestFlameBrowser(t *testing.T) {
	svgPath := filepath.Join(flameWorkload(t), flameFile)
	fileURL := (&url.URL{Scheme: "file", Path: svgPath}).String()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bctx := browser.Open(ctx, t, 1280, 400)

	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	frames := func() map[string]domFrame {
		t.Helper()
		list, err := chromedp.Run(bctx, chromedp.Evaluate[[]domFrame](domFramesJS))
		if err != nil {
			t.Fatalf("read the frames: %v", err)
		}
		m := map[string]domFrame{}
		for _, f := range list {
			if _, dup := m[f.Name]; dup {
				t.Fatalf("two frames named %q", f.Name)
			}
			m[f.Name] = f
		}
		return m
	}
	text := func(id string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById("`+id+`").textContent`))
		if err != nil {
			t.Fatalf("read #%s: %v", id, err)
		}
		return s
	}
	near := func(got, want float64) bool { return math.Abs(got-want) <= 1 }

	run("load flame.svg", chromedp.Navigate(fileURL))

	// The frames, each as wide as its share of the root.
	want := map[string]uint64{
		"all": 100, "demo": 100, "__libc_start_call_main": 100, "main": 100,
		"compute": 90, "hash_block": 60, "parse_header": 30, flameColdName: 10,
	}
	fs := frames()
	if len(fs) != len(want) {
		t.Errorf("%d frames, want %d: %v", len(fs), len(want), fs)
	}
	root := fs["all"]
	if !near(root.W, flameWidth) || !near(root.X, flamePad) {
		t.Errorf("root at x %v, %v wide; want %d, %d", root.X, root.W, flamePad, flameWidth)
	}
	for name, n := range want {
		f, ok := fs[name]
		if !ok {
			t.Errorf("no frame %q", name)
			continue
		}
		if f.Samples != n || !near(f.W, float64(n)/100*root.W) || !near(f.H, flameFrameHeight-1) {
			t.Errorf("%q: %d samples, %.2f×%.2f px; want %d, %.2f×%d", name, f.Samples, f.W, f.H, n, float64(n)/100*root.W, flameFrameHeight-1)
		}
	}
	// Stacked root to leaf, children by name: the C++ frame left of compute,
	// hash_block left of parse_header.
	if c, h, p, w := fs["compute"], fs["hash_block"], fs["parse_header"], fs[flameColdName]; !(h.Y < c.Y && c.Y < fs["main"].Y && w.X < c.X && h.X < p.X && near(h.X, c.X)) {
		t.Errorf("layout: compute %+v, hash_block %+v, parse_header %+v, %s %+v", c, h, p, flameColdName, w)
	}
	if l := fs["hash_block"].Label; l != "hash_block" {
		t.Errorf("hash_block's label %q", l)
	}

	// Hover: the details line names the frame.
	hot := fs["hash_block"]
	run("hover", chromedp.MouseEvent(chromedp.MouseMoved, hot.X+hot.W/2, hot.Y+hot.H/2))
	if got, want := text("details"), "Function: hash_block (60 samples, 60.00%)"; got != want {
		t.Errorf("details after hovering over hash_block: %q, want %q", got, want)
	}
	cold := fs[flameColdName]
	run("hover", chromedp.MouseEvent(chromedp.MouseMoved, cold.X+cold.W/2, cold.Y+cold.H/2))
	if got, want := text("details"), "Function: "+flameColdName+" (10 samples, 10.00%)"; got != want {
		t.Errorf("details after hovering over the C++ frame: %q, want %q", got, want)
	}
	path := browser.WriteArtifact(t, "perf-flame.png", browser.Screenshot(bctx, t))
	t.Logf("screenshot (hovering over %s): %s", flameColdName, path)

	// Click: compute spans the width, its children scale, its ancestors
	// span the width dimmed, the rest is hidden.
	c := fs["compute"]
	run("click compute", chromedp.MouseClickXY(c.X+c.W/2, c.Y+c.H/2))
	zoomed := frames()
	for name, w := range map[string]float64{"compute": 1, "hash_block": 60.0 / 90, "parse_header": 30.0 / 90} {
		if f := zoomed[name]; !near(f.W, w*root.W) || hasClass(f.Class, "p") || f.Display == "none" {
			t.Errorf("zoomed on compute: %q %.2f px wide, class %q, display %s; want %.2f, shown", name, f.W, f.Class, f.Display, w*root.W)
		}
	}
	if h, p := zoomed["hash_block"], zoomed["parse_header"]; !near(h.X, flamePad) || !near(p.X, flamePad+h.W) {
		t.Errorf("zoomed on compute: hash_block at %.2f, parse_header at %.2f", h.X, p.X)
	}
	for _, name := range []string{"all", "demo", "__libc_start_call_main", "main"} {
		if f := zoomed[name]; !near(f.W, root.W) || f.Class != "f p" || f.Display == "none" {
			t.Errorf("zoomed on compute: ancestor %q %.2f px wide, class %q, display %s; want full width, dimmed", name, f.W, f.Class, f.Display)
		}
	}
	if f := zoomed[flameColdName]; f.Display != "none" || f.W != 0 {
		t.Errorf("zoomed on compute: %q is shown (%.2f px wide, display %s)", flameColdName, f.W, f.Display)
	}
	// Reset Zoom appears, and brings the first widths back.
	vis, err := chromedp.Run(bctx, chromedp.Evaluate[string](`getComputedStyle(document.getElementById("unzoom")).display`))
	if err != nil || vis == "none" {
		t.Fatalf("Reset Zoom after a zoom: display %q, %v", vis, err)
	}
	btn, err := chromedp.Run(bctx, chromedp.Evaluate[[2]float64](`(b => [b.x + b.width/2, b.y + b.height/2])(document.getElementById("unzoom").getBoundingClientRect())`))
	if err != nil {
		t.Fatalf("find Reset Zoom: %v", err)
	}
	run("click Reset Zoom", chromedp.MouseClickXY(btn[0], btn[1]))
	for name, f := range frames() {
		if !near(f.W, fs[name].W) || !near(f.X, fs[name].X) || f.Display == "none" || f.Class != "f" {
			t.Errorf("after Reset Zoom: %q at %.2f, %.2f wide, class %q; want %.2f, %.2f, shown", name, f.X, f.W, f.Class, fs[name].X, fs[name].W)
		}
	}

	// Search from the URL: compute and hash_block match; hash_block is
	// inside compute, so 90% of the samples match, not 150%.
	run("search", chromedp.Navigate(fileURL+"?s="+url.QueryEscape("^(compute|hash_block)$")))
	for name, f := range frames() {
		match := name == "compute" || name == "hash_block"
		if lit := f.Fill == "rgb(230, 0, 230)"; lit != match || hasClass(f.Class, "m") != match {
			t.Errorf("search: %q has fill %s, class %q; want highlighted %v", name, f.Fill, f.Class, match)
		}
	}
	if got, want := text("matched"), "Matched: 90.00% (90 of 100 samples)"; got != want {
		t.Errorf("matched: %q, want %q", got, want)
	}
	if got := text("search"); got != "Reset Search" {
		t.Errorf("the search control reads %q while searching, want Reset Search", got)
	}
	run("search escapes", chromedp.Navigate(fileURL+"?s="+url.QueryEscape(`^Writer<.*&, "out">`)))
	if got, want := text("matched"), "Matched: 10.00% (10 of 100 samples)"; got != want {
		t.Errorf("matched the C++ name: %q, want %q", got, want)
	}
}

// hasClass reports whether the class attribute list names class c.
func hasClass(list, c string) bool { return slices.Contains(strings.Fields(list), c) }
