package pluginhost

import (
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unwindd/unwindd/host/deferred"
)

// pidOf reports the process id of plugin name's current instance, 0 if none.
func pidOf(m *Manager, name string) int {
	for _, p := range m.plugins {
		if p.spec.Name != name {
			continue
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.cur == nil {
			return 0
		}
		if rc := p.cur.client.ReattachConfig(); rc != nil {
			return rc.Pid
		}
	}
	return 0
}

// TestKillOneOfThree kills one plugin with SIGKILL while three receive: the
// other two lose nothing, the killed one is detected at once, cancelled,
// restarted under a new registration, and its new instance receives.
func TestKillOneOfThree(t *testing.T) {
	eng, err := deferred.New(deferred.Options{Shards: 2})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	specs := []Spec{
		spec("a", out, "MODE=always", "SUBS=sample"),
		spec("victim", out, "MODE=always", "SUBS=sample"),
		spec("b", out, "MODE=always", "SUBS=sample"),
	}
	for i := range specs {
		specs[i].OutboxSize = 1 << 17
	}
	r := start(t, eng, specs, Options{RestartBackoff: 50 * time.Millisecond})
	waitFor(t, r.m, 20*time.Second, "plugins running", allRunning)
	oldTracer := r.m.plugins[1].cur.tracer

	const perG = 30_000
	var detected time.Duration
	infos := drive(t, eng, r.m, 2, perG, 5000, func(i int) {
		switch i {
		case 5_000:
			pid := pidOf(r.m, "victim")
			if pid == 0 {
				t.Error("victim has no pid")
				return
			}
			killed := time.Now()
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Error(err)
				return
			}
			waitFor(t, r.m, 5*time.Second, "the crash to be seen", func(st []Stats) bool { return byName(st, "victim").Crashes == 1 })
			detected = time.Since(killed)
		case 20_000:
			waitFor(t, r.m, 10*time.Second, "the restart", func(st []Stats) bool {
				s := byName(st, "victim")
				return s.Restarts == 1 && s.State == StateRunning
			})
		}
	})
	t.Logf("crash detected %v after SIGKILL", detected)
	if detected > time.Second {
		t.Errorf("crash detected %v after SIGKILL, want well under 1s", detected)
	}
	if oldTracer.Bit() != -1 {
		t.Errorf("the killed instance's tracer still has bit %d", oldTracer.Bit())
	}
	if tr := r.m.plugins[1].cur.tracer; tr == oldTracer || tr.Bit() < 2 {
		t.Errorf("the replacement is not registered anew: tracer %p bit %d", tr, tr.Bit())
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}

	all := alwaysWant(infos)
	rep := reports(t, out)
	for _, name := range []string{"a", "b"} {
		if len(rep[name]) != 1 {
			t.Fatalf("%s: %d reports, want 1", name, len(rep[name]))
		}
		checkExact(t, rep[name][0], all)
		if s := byName(r.m.Stats(), name); s.Crashes != 0 || s.DroppedEvents+s.DroppedStacks != 0 {
			t.Errorf("%s: %+v", name, s)
		}
	}
	// The killed instance wrote nothing; its replacement reports at shutdown.
	if len(rep["victim"]) != 1 {
		t.Fatalf("victim: %d reports, want 1 (the replacement's)", len(rep["victim"]))
	}
	c := rep["victim"][0]
	checkClean(t, c)
	if c.Stacks == 0 || c.Stacks != c.CookieEvents || c.Events != c.Stacks || c.Stacks >= all.stacks {
		t.Errorf("victim's replacement: %d events (%d with cookie), %d stacks of %d entries", c.Events, c.CookieEvents, c.Stacks, all.stacks)
	}
	s := byName(r.m.Stats(), "victim")
	if s.Crashes != 1 || s.Restarts != 1 || s.State != StateStopped || !strings.Contains(errString(s.Err), "died") {
		t.Errorf("victim: crashes %d restarts %d state %v err %v", s.Crashes, s.Restarts, s.State, s.Err)
	}
	t.Logf("victim: replacement got %d of %d stacks; host dropped %d events %d stacks", c.Stacks, all.stacks, s.DroppedEvents, s.DroppedStacks)
}

// TestSlowPluginOverflows: a slow plugin fills only its own outbox; what is
// dropped is counted and told to the plugin, exactly.
func TestSlowPluginOverflows(t *testing.T) {
	eng, err := deferred.New(deferred.Options{Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	slow := spec("slow", out, "MODE=always", "SUBS=sample", "SLOW=1ms")
	slow.OutboxSize = 256
	fast := spec("fast", out, "MODE=always", "SUBS=sample")
	fast.OutboxSize = 1 << 16
	r := start(t, eng, []Spec{slow, fast}, Options{BatchSize: 32})
	waitFor(t, r.m, 20*time.Second, "plugins running", allRunning)

	infos := drive(t, eng, r.m, 1, 20_000, 9000, nil)
	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	all := alwaysWant(infos)
	rep := reports(t, out)
	checkExact(t, rep["fast"][0], all)
	c := rep["slow"][0]
	checkClean(t, c)
	s := byName(r.m.Stats(), "slow")
	if s.DroppedEvents == 0 || s.DroppedStacks == 0 {
		t.Fatalf("slow plugin dropped nothing (%+v): the test did not overflow it", s)
	}
	if c.LostEvents != s.DroppedEvents || c.LostStacks != s.DroppedStacks || c.LostNotices != s.LostNotices {
		t.Errorf("slow: told it lost %d events %d stacks in %d notices; host dropped %d, %d in %d notices",
			c.LostEvents, c.LostStacks, c.LostNotices, s.DroppedEvents, s.DroppedStacks, s.LostNotices)
	}
	if c.Events+c.LostEvents != all.events || c.Stacks+c.LostStacks != all.stacks {
		t.Errorf("slow: %d+%d events, %d+%d stacks; want %d, %d", c.Events, c.LostEvents, c.Stacks, c.LostStacks, all.events, all.stacks)
	}
	if c.LostCookies == 0 {
		t.Error("slow: lost notices named no cookie")
	}
	if f := byName(r.m.Stats(), "fast"); f.DroppedEvents+f.DroppedStacks != 0 {
		t.Errorf("fast dropped: %+v", f)
	}
	t.Logf("slow: got %d events, %d stacks; lost %d events, %d stacks, %d cookies in %d notices",
		c.Events, c.Stacks, c.LostEvents, c.LostStacks, c.LostCookies, c.LostNotices)
}

// pump opens and closes entries with a sample in each until stop returns
// true or the timeout passes, so that plugins see traffic.
func pump(t *testing.T, eng *deferred.Engine, m *Manager, tid int32, timeout time.Duration, stop func() bool) {
	t.Helper()
	tk, err := eng.AddTask(tid, tid, deferred.KindUser)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Exit()
	d := m.Dispatcher()
	regs, snap, _ := synthStack(8, 0x600000)
	deadline := time.Now().Add(timeout)
	for !stop() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v; stats %+v", timeout, m.Stats())
		}
		for range 10 {
			if err := tk.Open(eng.Shard(0), regs, snap); err != nil {
				t.Fatal(err)
			}
			d.Event(tk, Event{Kind: KindSample, Name: "cpu-clock"})
			d.EndEntry(tk)
			tk.Close()
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBadPlugins: each bad plugin is refused or given up with a clear
// error, within seconds, and the manager runs on.
func TestBadPlugins(t *testing.T) {
	cases := []struct {
		name    string
		spec    func(out string) Spec
		opts    Options
		traffic bool
		within  time.Duration
		err     string // in the give-up error
		crashes uint64 // exact, 0: at least 1
	}{
		{name: "checksum", spec: func(out string) Spec {
			s := spec("p", out)
			s.SHA256 = strings.Repeat("ab", 32)
			return s
		}, within: 5 * time.Second, err: "checksum", crashes: 1},
		{name: "not-a-plugin", spec: func(string) Spec {
			return Spec{Name: "p", Path: "/bin/sleep", Args: []string{"60"}}
		}, opts: Options{HandshakeTimeout: time.Second, MaxQuickCrashes: 2}, within: 8 * time.Second, err: "timeout", crashes: 2},
		{name: "exits-at-once", spec: func(string) Spec { return Spec{Name: "p", Path: "/bin/true"} },
			opts: Options{MaxQuickCrashes: 2}, within: 8 * time.Second, err: "given up", crashes: 2},
		{name: "garbage-stdout", spec: func(out string) Spec { return spec("p", out, "GARBAGE=1") },
			opts: Options{MaxQuickCrashes: 2}, within: 8 * time.Second, err: "Unrecognized remote plugin message", crashes: 2},
		{name: "wrong-version", spec: func(out string) Spec { return spec("p", out, "PROTO=7") },
			within: 8 * time.Second, err: "incompatible API version", crashes: 1},
		{name: "panics", spec: func(out string) Spec { return spec("p", out, "MODE=always", "SUBS=sample", "PANIC_AFTER=1") },
			opts: Options{MaxQuickCrashes: 2}, traffic: true, within: 15 * time.Second, err: "panic", crashes: 2},
		{name: "never-acks", spec: func(out string) Spec { return spec("p", out, "MODE=always", "SUBS=sample", "HANG=1") },
			opts: Options{MaxQuickCrashes: 1, AckTimeout: 300 * time.Millisecond}, traffic: true, within: 15 * time.Second, err: "acknowledge", crashes: 1},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eng, err := deferred.New(deferred.Options{Shards: 1})
			if err != nil {
				t.Fatal(err)
			}
			opts := tc.opts
			opts.RestartBackoff = 10 * time.Millisecond
			began := time.Now()
			r := start(t, eng, []Spec{tc.spec(t.TempDir())}, opts)
			failed := func(st []Stats) bool { return st[0].State == StateFailed }
			if tc.traffic {
				pump(t, eng, r.m, int32(20000+i), tc.within, func() bool { return failed(r.m.Stats()) })
			}
			st := waitFor(t, r.m, tc.within, "the plugin to be given up", failed)[0]
			t.Logf("given up after %v: %v", time.Since(began).Round(time.Millisecond), st.Err)
			if !strings.Contains(errString(st.Err), tc.err) {
				t.Errorf("error %q does not say %q", errString(st.Err), tc.err)
			}
			if (tc.crashes != 0 && st.Crashes != tc.crashes) || st.Crashes == 0 {
				t.Errorf("%d crashes, want %d", st.Crashes, tc.crashes)
			}
			if len(eng.Tracers()) != 0 {
				t.Errorf("%d tracers still registered", len(eng.Tracers()))
			}
			if err := r.stop(t); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Run returned %v, want the give-up error", err)
			}
		})
	}
}

// TestRunAsNobody runs the plugin as user nobody while the host keeps root.
func TestRunAsNobody(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change user")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	out, err := os.MkdirTemp("", "pluginhost-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(out) })
	if err := os.Chmod(out, 0o777); err != nil {
		t.Fatal(err)
	}
	eng, err := deferred.New(deferred.Options{Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := spec("nobody", out, "MODE=always", "SUBS=sample")
	s.User = "nobody"
	r := start(t, eng, []Spec{s}, Options{})
	waitFor(t, r.m, 20*time.Second, "plugin running", allRunning)
	infos := drive(t, eng, r.m, 1, 2000, 30000, nil)
	if err := r.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	all := alwaysWant(infos)
	c := reports(t, out)["nobody"]
	if len(c) != 1 {
		t.Fatalf("%d reports, want 1", len(c))
	}
	if c[0].UID != uid {
		t.Errorf("plugin ran as uid %d, want nobody (%d)", c[0].UID, uid)
	}
	checkExact(t, c[0], all)
}
