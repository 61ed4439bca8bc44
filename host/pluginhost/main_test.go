package pluginhost

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/unwindd/unwindd/arch/x86_64"
	"github.com/unwindd/unwindd/host/deferred"
)

// The test plugin (testdata/plugin) and the baseline server of
// BenchmarkRawGRPCStream (testdata/rawserver), built once by TestMain.
var testPlugin, rawServer string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pluginhost-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// World-readable, so that a plugin run as nobody can execute it.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testPlugin, rawServer = filepath.Join(dir, "plugin"), filepath.Join(dir, "rawserver")
	for bin, pkg := range map[string]string{testPlugin: "./testdata/plugin", rawServer: "./testdata/rawserver"} {
		cmd := exec.Command("go", "build", "-o", bin, pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", pkg+":", err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// counts mirrors testdata/plugin's Counts.
type counts struct {
	Name          string
	PID, UID      int
	Batches       uint64
	Events        uint64
	CookieEvents  uint64
	Stacks        uint64
	StackSum      uint64
	DupStacks     uint64
	EventAfter    uint64
	SeqErrors     uint64
	BadRefs       uint64
	StackDefs     uint64
	LostNotices   uint64
	LostEvents    uint64
	LostStacks    uint64
	LostCookies   uint64
	DecideEntries uint64
	DecideYes     uint64
	RequestRet    int32
	RequestErr    string
	RequestIsSDK  bool
}

func stackHash(cookie uint64, pcs []uint64) uint64 {
	h := cookie
	for _, pc := range pcs {
		h = h*31 + pc
	}
	return h
}

// spec returns a Spec for the test plugin with the given behaviour
// (UNWINDD_TEST_* variables) and its report directory.
func spec(name, outDir string, env ...string) Spec {
	e := []string{"UNWINDD_TEST_NAME=" + name, "UNWINDD_TEST_OUT=" + outDir}
	for _, kv := range env {
		e = append(e, "UNWINDD_TEST_"+kv)
	}
	return Spec{Name: name, Path: testPlugin, Env: e, Config: []byte("cfg-" + name)}
}

// reports reads the plugin reports in dir, by plugin name, in no order.
func reports(t *testing.T, dir string) map[string][]counts {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]counts{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c counts
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[c.Name] = append(out[c.Name], c)
	}
	return out
}

// running is a Manager under test with Run in a goroutine.
type running struct {
	m      *Manager
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, eng *deferred.Engine, specs []Spec, opts Options) *running {
	t.Helper()
	if opts.DrainTimeout == 0 {
		// The tests check exact counts on machines that may be slow (-race,
		// other jobs): let the drain take what it takes.
		opts.DrainTimeout = 2 * time.Minute
	}
	m, err := New(eng, specs, opts, zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{m: m, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- m.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and waits for it; it returns Run's error.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(3 * time.Minute):
		t.Fatal("Run did not return within 3m of cancel")
		return nil
	}
}

// waitFor polls m's stats until cond holds or the timeout passes.
func waitFor(t *testing.T, m *Manager, timeout time.Duration, what string, cond func([]Stats) bool) []Stats {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := m.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; stats: %+v", timeout, what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// synthStack builds an n-frame frame-pointer stack whose return addresses
// are ret0, ret0+1, …: a snapshot and the registers to start from, and the
// pcs the walk yields.
func synthStack(n int, ret0 uint64) (x86_64.Regs, *x86_64.Snapshot, []uint64) {
	const base = 0x7ffe0000
	data := make([]byte, 16*n+32)
	pcs := []uint64{0x401000}
	for i := range n {
		off := 16 + 16*i
		nextBP := uint64(base + 16 + 16*(i+1))
		ra := ret0 + uint64(i)
		if i == n-1 {
			ra, nextBP = 0, 0
		} else {
			pcs = append(pcs, ra)
		}
		binary.LittleEndian.PutUint64(data[off:], nextBP)
		binary.LittleEndian.PutUint64(data[off+8:], ra)
	}
	return x86_64.Regs{IP: 0x401000, SP: base, BP: base + 16}, &x86_64.Snapshot{Base: base, Data: data}, pcs
}

func byName(st []Stats, name string) Stats {
	for _, s := range st {
		if s.Name == name {
			return s
		}
	}
	return Stats{}
}

func allRunning(st []Stats) bool {
	for _, s := range st {
		if s.State != StateRunning {
			return false
		}
	}
	return true
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
