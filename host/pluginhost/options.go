package pluginhost

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"syscall"
	"time"
)

// Spec says how to start one plugin. Name and Path are required; every other
// zero field means the documented default.
type Spec struct {
	// Name identifies the plugin in logs, stats and the engine's tracer
	// list; unique among the specs.
	Name string
	// Path is the plugin binary.
	Path string
	// Args are the arguments after the program name.
	Args []string
	// Env is the plugin's environment ("KEY=value"). go-plugin adds its own
	// variables and the host's environment.
	Env []string
	// SHA256, if set, is the binary's expected SHA-256 as 64 hex digits; a
	// mismatch refuses to start the plugin (and is not retried).
	SHA256 string
	// User and Group, if set, run the plugin under that user and group
	// (names or numeric ids). A User alone uses its primary group.
	User, Group string
	// OutboxSize bounds the items (events, stacks) waiting to be sent to the
	// plugin; when it is full, new items are dropped, counted and reported
	// to the plugin as lost. 0 means 8192.
	OutboxSize int
	// DecideDeadline bounds each Decide call for a plugin in request mode
	// decide: past it, the answer is "no" and the timeout is counted. 0 means
	// 20ms.
	DecideDeadline time.Duration
	// Config is handed to the plugin as is in Describe.
	Config []byte
}

// Options configure a [Manager]. The zero value means the defaults.
type Options struct {
	// BatchSize caps the items of one batch (a batch is also cut at about 1
	// MiB). 0 means 8192: a batch costs hundreds of microseconds of CPU
	// in gRPC, TLS and above all the wake-ups of a few goroutines in two
	// processes, and BatchDelay and FlowDelay, not BatchSize, bound how
	// long an item waits.
	BatchSize int
	// BatchDelay is the longest an item waits for its batch to fill while
	// items come sparsely: a lone event waits this long. It must be at most
	// 5ms; 0 means 2ms.
	BatchDelay time.Duration
	// FlowDelay is the longest an item waits for its batch to fill while
	// items flow: when the batch before held at least 16 items (or
	// BatchSize/8, if fewer) and the outbox has not been empty for
	// FlowDelay since.
	// Fewer, larger batches then carry the flow for less CPU
	// (BenchmarkDeliver/steady200k*). It must be at least BatchDelay and
	// at most 5ms; 0 means 5ms.
	FlowDelay time.Duration
	// Window caps the batches sent and not yet acknowledged. 0 means 16.
	Window int
	// AckTimeout is how long a plugin may leave a batch unacknowledged
	// before it is deemed hung and restarted. 0 means 10s.
	AckTimeout time.Duration
	// HandshakeTimeout bounds a plugin's start: go-plugin's handshake and
	// the Describe call. 0 means 10s.
	HandshakeTimeout time.Duration
	// RestartBackoff is the wait before the first restart; it doubles after
	// each quick crash up to MaxBackoff. 0 means 100ms.
	RestartBackoff time.Duration
	// MaxBackoff caps the restart wait. 0 means 10s.
	MaxBackoff time.Duration
	// QuickCrash: a plugin that fails to start or dies within this time of
	// its start has crashed quickly. 0 means 30s.
	QuickCrash time.Duration
	// MaxQuickCrashes: after this many quick crashes in a row the plugin is
	// given up (the host runs on without it). 0 means 5.
	MaxQuickCrashes int
	// DrainTimeout bounds the shutdown of each plugin: sending what its
	// outbox holds and waiting for the acknowledgements. 0 means 5s.
	DrainTimeout time.Duration
	// Resolver describes the addresses of stacks (mapping, function); nil
	// sends bare addresses.
	Resolver Resolver
	// HostVersion is sent to plugins in Describe.
	HostVersion string
	// Check tells every plugin in Describe that the host only checks its
	// config (sdk.DescribeInfo.Check): it must create nothing.
	Check bool
}

const maxBatchDelay = 5 * time.Millisecond

func (o Options) withDefaults() (Options, error) {
	type check struct {
		bad  bool
		name string
	}
	for _, c := range []check{
		{o.BatchSize < 0, "BatchSize"}, {o.BatchDelay < 0, "BatchDelay"}, {o.FlowDelay < 0, "FlowDelay"}, {o.Window < 0, "Window"},
		{o.AckTimeout < 0, "AckTimeout"}, {o.HandshakeTimeout < 0, "HandshakeTimeout"},
		{o.RestartBackoff < 0, "RestartBackoff"}, {o.MaxBackoff < 0, "MaxBackoff"},
		{o.QuickCrash < 0, "QuickCrash"}, {o.MaxQuickCrashes < 0, "MaxQuickCrashes"},
		{o.DrainTimeout < 0, "DrainTimeout"},
	} {
		if c.bad {
			return o, fmt.Errorf("pluginhost: %s must be >= 0 (0 means the default)", c.name)
		}
	}
	if o.BatchDelay > maxBatchDelay {
		return o, fmt.Errorf("pluginhost: BatchDelay %v must be <= %v", o.BatchDelay, maxBatchDelay)
	}
	if o.FlowDelay > maxBatchDelay {
		return o, fmt.Errorf("pluginhost: FlowDelay %v must be <= %v", o.FlowDelay, maxBatchDelay)
	}
	def := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	defInt := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	defInt(&o.BatchSize, 8192)
	defInt(&o.Window, 16)
	defInt(&o.MaxQuickCrashes, 5)
	def(&o.BatchDelay, 2*time.Millisecond)
	def(&o.FlowDelay, maxBatchDelay)
	if o.FlowDelay < o.BatchDelay {
		return o, fmt.Errorf("pluginhost: FlowDelay %v must be >= BatchDelay %v", o.FlowDelay, o.BatchDelay)
	}
	def(&o.AckTimeout, 10*time.Second)
	def(&o.HandshakeTimeout, 10*time.Second)
	def(&o.RestartBackoff, 100*time.Millisecond)
	def(&o.MaxBackoff, 10*time.Second)
	def(&o.QuickCrash, 30*time.Second)
	def(&o.DrainTimeout, 5*time.Second)
	if o.MaxBackoff < o.RestartBackoff {
		o.MaxBackoff = o.RestartBackoff
	}
	if o.Resolver == nil {
		o.Resolver = noResolver{}
	}
	return o, nil
}

// prepared is a validated Spec with what New derived from it.
type prepared struct {
	Spec
	sum  []byte              // decoded SHA256, nil if none
	cred *syscall.Credential // nil: run as the host
	gid  string              // the plugin's group id, for go-plugin's sockets
}

func (s Spec) prepare() (prepared, error) {
	p := prepared{Spec: s}
	errf := func(format string, a ...any) (prepared, error) {
		return p, fmt.Errorf("pluginhost: plugin %q: "+format, append([]any{s.Name}, a...)...)
	}
	if s.Name == "" {
		return p, errors.New("pluginhost: Spec.Name must not be empty")
	}
	if s.Path == "" {
		return errf("Path must not be empty")
	}
	if s.OutboxSize < 0 {
		return errf("OutboxSize %d must be > 0 (or 0 for the default)", s.OutboxSize)
	}
	if s.DecideDeadline < 0 {
		return errf("DecideDeadline %v must be > 0 (or 0 for the default)", s.DecideDeadline)
	}
	if p.OutboxSize == 0 {
		p.OutboxSize = 8192
	}
	if p.DecideDeadline == 0 {
		p.DecideDeadline = 20 * time.Millisecond
	}
	if s.SHA256 != "" {
		sum, err := hex.DecodeString(s.SHA256)
		if err != nil || len(sum) != 32 {
			return errf("SHA256 must be 64 hex digits, got %q", s.SHA256)
		}
		p.sum = sum
	}
	if s.User != "" || s.Group != "" {
		cred, err := credential(s.User, s.Group)
		if err != nil {
			return errf("%w", err)
		}
		p.cred, p.gid = cred, strconv.FormatUint(uint64(cred.Gid), 10)
	}
	return p, nil
}

// credential looks up the user and group a plugin runs as. With no user,
// the host's uid is kept; with no group, the user's primary group is used.
func credential(userName, groupName string) (*syscall.Credential, error) {
	cred := &syscall.Credential{Uid: uint32(syscall.Getuid()), Gid: uint32(syscall.Getgid()), Groups: []uint32{}}
	if userName != "" {
		u, err := user.Lookup(userName)
		if err != nil {
			if u, err = user.LookupId(userName); err != nil {
				return nil, fmt.Errorf("look up user %q: %w", userName, err)
			}
		}
		uid, err := strconv.ParseUint(u.Uid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("user %q: uid %q: %w", userName, u.Uid, err)
		}
		gid, err := strconv.ParseUint(u.Gid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("user %q: gid %q: %w", userName, u.Gid, err)
		}
		cred.Uid, cred.Gid = uint32(uid), uint32(gid)
	}
	if groupName != "" {
		g, err := user.LookupGroup(groupName)
		if err != nil {
			if g, err = user.LookupGroupId(groupName); err != nil {
				return nil, fmt.Errorf("look up group %q: %w", groupName, err)
			}
		}
		gid, err := strconv.ParseUint(g.Gid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("group %q: gid %q: %w", groupName, g.Gid, err)
		}
		cred.Gid = uint32(gid)
	}
	return cred, nil
}
