// Package browser starts Debian's Chromium headless for tests that check
// what unwindd writes for people to open (the perf plugin's flame.svg) in
// a real browser, and keeps what they capture (screenshots) as test
// artifacts. It is a test helper: it takes a testing.TB and fails or skips
// it.
package browser

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/unwindd/unwindd/internal/testutil"
)

// ArtifactsEnv names the directory where tests leave files for people to
// look at; unset, it is bin/artifacts in the repository.
const ArtifactsEnv = "UNWINDD_ARTIFACTS"

// Open starts headless Chromium for t, with a fresh profile and none of
// the background networking this machine's closed network refuses, and
// returns a chromedp context on a blank tab, valid until ctx ends or t's
// cleanup closes the browser (and waits for it). Without chromium, t skips,
// or fails where UNWINDD_TEST_REQUIRE lists chromium.
func Open(ctx context.Context, t testing.TB, width, height int) context.Context {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		testutil.Need(t, "chromium", "renders pages in a headless browser: "+err.Error())
	}
	out := new(syncBuffer) // chromium's output, for failures
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium")),
		chromedp.WindowSize(width, height),
		chromedp.CombinedOutput(out),
	)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		// Close the browser and wait for it, before t.TempDir is removed.
		if err := chromedp.Cancel(bctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("close chromium: %v", err)
		}
		cancelBrowser()
		cancelAlloc()
		if t.Failed() {
			t.Logf("chromium's output:\n%s", out.String())
		}
	})
	return bctx
}

// Screenshot sets the viewport to the size of the SVG document loaded in
// ctx's tab and returns a PNG of it, checked to be one of that size.
func Screenshot(ctx context.Context, t testing.TB) []byte {
	t.Helper()
	size, err := chromedp.Run(ctx, chromedp.Evaluate[[2]int64](`[document.documentElement.width.baseVal.value, document.documentElement.height.baseVal.value]`))
	if err != nil {
		t.Fatalf("read the SVG's size: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(size[0], size[1])); err != nil {
		t.Fatalf("set the viewport to the SVG's size: %v", err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); int64(b.Dx()) != size[0] || int64(b.Dy()) != size[1] {
		t.Errorf("screenshot %v, want %dx%d", b, size[0], size[1])
	}
	return shot
}

// WriteArtifact writes b as name in $UNWINDD_ARTIFACTS, or else in
// bin/artifacts of the repository, and returns its path.
func WriteArtifact(t testing.TB, name string, b []byte) string {
	t.Helper()
	dir := os.Getenv(ArtifactsEnv)
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		for root := wd; ; root = filepath.Dir(root) {
			if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
				dir = filepath.Join(root, "bin", "artifacts")
				break
			}
			if filepath.Dir(root) == root {
				t.Fatalf("no go.mod above %s", wd)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifacts: %v", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatalf("artifacts: %v", err)
	}
	return path
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
