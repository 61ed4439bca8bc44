package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/unwindd/unwindd/internal/testutil"
	"github.com/unwindd/unwindd/internal/testutil/browser"
)

// TestDemo is `make run` as a newcomer meets it: unwindd and the built-in
// plugins built side by side (as make build and make install place them),
// the bundled demo built as the Makefile builds it, `unwindd run` on it
// with the embedded default deployment, then each output looked at with
// the tool `make run` names: go tool pprof on the profile, the flame graph
// in a browser (Chromium, headless: the four spinning threads each about a
// quarter of the samples, through their whole call chains; a screenshot is
// kept), trace.txt for the logger thread's writes with their stacks.
func TestDemo(t *testing.T) {
	bin := t.TempDir()
	for pkg, name := range map[string]string{"./": "unwindd", "../../plugins/perf": "unwindd-plugin-perf", "../../plugins/ftrace": "unwindd-plugin-ftrace"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, name), pkg).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	src, err := os.ReadFile("../../testdata/demo/demo.c")
	if err != nil {
		t.Fatal(err)
	}
	demo := testutil.BuildC(t, "", "demo", string(src), "-O0", "-g", "-fno-omit-frame-pointer", "-pthread")
	out := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(filepath.Join(bin, "unwindd"), "run", "--log-level", "warn", "--out", out, "--", demo, "1000")
	stdout, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		skipIfNoPtrace(t, string(stderr))
		t.Fatalf("unwindd run: %v\nstdout %s\nstderr %s", err, stdout, stderr)
	}
	for _, w := range []string{"target   exited with status 0", "plugin perf (stopped)", "plugin ftrace (stopped)"} {
		if !strings.Contains(string(stdout), w) {
			t.Errorf("summary lacks %q:\n%s", w, stdout)
		}
	}
	t.Logf("unwindd run:\n%s", stdout)

	// go tool pprof reads the profile and finds every thread's leaf.
	top, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=100", filepath.Join(out, "profile.pb.gz")).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof -top: %v\n%s", err, top)
	}
	for _, leaf := range []string{"parse_header", "match_longest", "mix_round", "btree_split"} {
		if !strings.Contains(string(top), leaf) {
			t.Errorf("go tool pprof -top lacks %s:\n%s", leaf, top)
		}
	}

	// trace.txt: the logger's writes, each with its stack.
	trace, err := os.ReadFile(filepath.Join(out, "trace.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^ => \S+ write_record\+0x[0-9a-f]+\n => \S+ flush_log\+`).Match(trace) {
		t.Errorf("trace.txt has no write with the stack write_record <- flush_log:\n%.2000s", trace)
	}

	// The flame graph, as a person opens it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bctx := browser.Open(ctx, t, 1280, 800)
	fileURL := (&url.URL{Scheme: "file", Path: filepath.Join(out, "flame.svg")}).String()
	if err := chromedp.Do(bctx, chromedp.Navigate(fileURL)); err != nil {
		t.Fatalf("load flame.svg: %v", err)
	}
	type frame struct {
		Name    string  `json:"name"`
		Samples float64 `json:"samples"`
		Width   float64 `json:"w"`
		Depth   float64 `json:"y"`
	}
	frames, err := chromedp.Run(bctx, chromedp.Evaluate[[]frame](`Array.from(document.querySelectorAll("g.f"), g => {
		const b = g.querySelector("rect").getBoundingClientRect();
		return {name: g.getAttribute("data-name"), samples: +g.getAttribute("data-samples"), w: b.width, y: b.y};
	})`))
	if err != nil {
		t.Fatalf("read the frames: %v", err)
	}
	byName := map[string]frame{}
	for _, f := range frames {
		if old, ok := byName[f.Name]; !ok || f.Samples > old.Samples {
			byName[f.Name] = f
		}
	}
	root, ok := byName["all"]
	if !ok || root.Samples < 200 {
		t.Fatalf("flame.svg: root %+v; want about 2000 (4 threads spinning on 2 CPUs for 1s at 999 Hz), at least 200", root)
	}
	// Each comm: about a quarter (4 spinning threads share the CPUs), as
	// wide as its share, and its chain drawn down to the leaf.
	for comm, chain := range map[string][]string{
		"demo":     {"main", "run_server", "event_loop", "dispatch", "handle_request", "parse_header"},
		"compress": {"worker_start", "compress_file", "compress_block", "deflate_window", "match_longest"},
		"hash":     {"worker_start", "hash_file", "sha_update", "sha_transform", "mix_round"},
		"index":    {"worker_start", "build_index", "insert_key", "btree_split"},
	} {
		f, ok := byName[comm]
		if !ok {
			t.Errorf("flame.svg has no frame for the thread %s", comm)
			continue
		}
		share := f.Samples / root.Samples
		if share < 0.12 || share > 0.38 {
			t.Errorf("%s: %.0f of %.0f samples (%.0f%%), want about a quarter", comm, f.Samples, root.Samples, 100*share)
		}
		if want := share * root.Width; f.Width < want-1 || f.Width > want+1 {
			t.Errorf("%s: %.1f px wide, want %.1f (%.0f%% of %.1f)", comm, f.Width, want, 100*share, root.Width)
		}
		for _, fn := range chain {
			if _, ok := byName[fn]; !ok {
				t.Errorf("flame.svg lacks %s (the chain of %s)", fn, comm)
			}
		}
		if leaf := byName[chain[len(chain)-1]]; leaf.Samples < 0.8*f.Samples {
			t.Errorf("%s: the leaf %s has %.0f of the thread's %.0f samples: stacks cut short", comm, chain[len(chain)-1], leaf.Samples, f.Samples)
		}
	}
	path := browser.WriteArtifact(t, "demo-flame.png", browser.Screenshot(bctx, t))
	t.Logf("the demo's flame graph: %s (%s)", path, fmt.Sprintf("%.0f samples", root.Samples))
}
