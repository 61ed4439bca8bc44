package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/unwindd/unwindd/sdk"
	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

func TestDescribe(t *testing.T) {
	full := sdk.Description{
		Name:          "t",
		Version:       "1.2",
		Subscriptions: []sdk.Subscription{sdk.CPUClock(99), sdk.Tracepoint("sched", "sched_switch"), sdk.Syscalls("read", "write"), sdk.Syscalls()},
		Filter:        sdk.Filter{PIDs: []int32{1}, TIDs: []int32{2, 3}, Comms: []string{"app"}},
		Mode:          sdk.ModeNever,
	}
	tests := []struct {
		name    string
		desc    sdk.Description
		decider bool
		want    *pluginpb.Description // nil: an error
		code    codes.Code
		errText string
	}{
		{"full", full, false, &pluginpb.Description{
			Name: "t", Version: "1.2",
			Subscriptions: []*pluginpb.Subscription{
				{Kind: &pluginpb.Subscription_CpuClock{CpuClock: &pluginpb.CPUClock{FrequencyHz: 99}}},
				{Kind: &pluginpb.Subscription_Tracepoint{Tracepoint: &pluginpb.Tracepoint{Group: "sched", Name: "sched_switch"}}},
				{Kind: &pluginpb.Subscription_Syscalls{Syscalls: &pluginpb.Syscalls{Names: []string{"read", "write"}}}},
				{Kind: &pluginpb.Subscription_Syscalls{Syscalls: &pluginpb.Syscalls{}}},
			},
			Filter: &pluginpb.Filter{Pids: []int32{1}, Tids: []int32{2, 3}, Comms: []string{"app"}},
			Mode:   pluginpb.RequestMode_REQUEST_MODE_NEVER,
		}, 0, ""},
		{"zero mode is always", sdk.Description{Name: "a"}, false, &pluginpb.Description{
			Name: "a", Filter: &pluginpb.Filter{}, Mode: pluginpb.RequestMode_REQUEST_MODE_ALWAYS,
		}, 0, ""},
		{"decide with decider", sdk.Description{Name: "d", Mode: sdk.ModeDecide}, true, &pluginpb.Description{
			Name: "d", Filter: &pluginpb.Filter{}, Mode: pluginpb.RequestMode_REQUEST_MODE_DECIDE,
		}, 0, ""},
		{"decide without decider", sdk.Description{Name: "d", Mode: sdk.ModeDecide}, false, nil, codes.InvalidArgument, "no Decide method"},
		{"no name", sdk.Description{}, false, nil, codes.InvalidArgument, "no name"},
		{"zero hz", sdk.Description{Name: "z", Subscriptions: []sdk.Subscription{sdk.CPUClock(0)}}, false, nil, codes.InvalidArgument, "0 Hz"},
		{"half tracepoint", sdk.Description{Name: "z", Subscriptions: []sdk.Subscription{sdk.Tracepoint("sched", "")}}, false, nil, codes.InvalidArgument, "needs a group and a name"},
		{"bad mode", sdk.Description{Name: "z", Mode: 7}, false, nil, codes.InvalidArgument, "unknown mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{desc: tt.desc}
			var tr sdk.Tracer = rec
			if tt.decider {
				tr = &decider{recorder: rec}
			}
			c := tracerClient(t, tr)
			got, err := c.Describe(context.Background(), &pluginpb.DescribeRequest{Config: []byte("k: v"), HostVersion: "0.1"})
			if tt.want == nil {
				if status.Code(err) != tt.code || !strings.Contains(fmt.Sprint(err), tt.errText) {
					t.Errorf("Describe error = %v, want code %v saying %q", err, tt.code, tt.errText)
				}
				return
			}
			if err != nil {
				t.Fatalf("Describe: %v", err)
			}
			if !proto.Equal(got, tt.want) {
				t.Errorf("Describe = %v, want %v", got, tt.want)
			}
			rec.mu.Lock()
			info := rec.info
			rec.mu.Unlock()
			if string(info.Config) != "k: v" || info.HostVersion != "0.1" || info.Host == nil {
				t.Errorf("DescribeInfo = %+v", info)
			}
			// Broker id 0: a Host whose calls fail with ErrNoHost.
			if _, _, err := info.Host.Request(context.Background(), 1); !errors.Is(err, sdk.ErrNoHost) {
				t.Errorf("Request without a host service: %v", err)
			}
			// The host decodes the same description.
			back, err := sdk.DescriptionFromProto(got)
			if err != nil || !reflect.DeepEqual(back, tt.desc) {
				t.Errorf("DescriptionFromProto = %+v, %v; want %+v", back, err, tt.desc)
			}
		})
	}
}

type decider struct {
	*recorder
	entries []sdk.DecideEntry
	want    []bool
	err     error
}

func (d *decider) Decide(_ context.Context, entries []sdk.DecideEntry) ([]bool, error) {
	d.entries = entries
	if d.want == nil && d.err == nil {
		panic("decider has no answer")
	}
	return d.want, d.err
}

func TestDecide(t *testing.T) {
	req := &pluginpb.DecideRequest{Entries: []*pluginpb.DecideEntry{
		{Key: 11, Pid: 1, Tid: 2, Events: []*pluginpb.Event{{Kind: pluginpb.EventKind_EVENT_KIND_SYSCALL_ENTER, Name: []byte("read"), Tid: 2, Fields: []*pluginpb.Field{{Name: "fd", Value: &pluginpb.Field_Int{Int: 3}}}}}},
		{Key: 22, Pid: 1, Tid: 3},
		{Key: 33, Pid: 4, Tid: 4},
	}}
	tests := []struct {
		name    string
		tracer  sdk.Tracer
		want    []uint64
		errText string
	}{
		{"not a decider", &recorder{}, nil, ""},
		{"some", &decider{want: []bool{true, false, true}}, []uint64{11, 33}, ""},
		{"short answer", &decider{want: []bool{false, true}}, []uint64{22}, ""},
		{"none", &decider{want: []bool{}}, nil, ""},
		{"too many", &decider{want: []bool{true, true, true, true}}, nil, "4 answers for 3 entries"},
		{"error", &decider{err: sdk.ErrBusy}, nil, "busy"},
		{"panic", &decider{}, nil, "panic in Decider.Decide: decider has no answer"},
	}
	// Each case through Decide and through the Decisions stream, where an
	// error is the response's, and the stream goes on.
	ask := map[string]func(t *testing.T, c pluginpb.TracerClient) (*pluginpb.DecideResponse, error){
		"unary": func(t *testing.T, c pluginpb.TracerClient) (*pluginpb.DecideResponse, error) {
			return c.Decide(context.Background(), req)
		},
		"stream": func(t *testing.T, c pluginpb.TracerClient) (*pluginpb.DecideResponse, error) {
			st, err := c.Decisions(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer st.CloseSend()
			var resp *pluginpb.DecideResponse
			for seq := uint64(1); seq <= 2; seq++ { // twice: an error does not end the stream
				r := proto.Clone(req).(*pluginpb.DecideRequest)
				r.Seq, r.BudgetNs = seq, uint64(time.Second)
				if err := st.Send(r); err != nil {
					t.Fatal(err)
				}
				if resp, err = st.Recv(); err != nil {
					t.Fatalf("Decisions: %v", err)
				}
				if resp.GetSeq() != seq {
					t.Errorf("response seq %d, want %d", resp.GetSeq(), seq)
				}
			}
			if resp.GetError() != "" {
				return nil, errors.New(resp.GetError())
			}
			return resp, nil
		},
	}
	for _, tt := range tests {
		for how, call := range ask {
			t.Run(tt.name+"/"+how, func(t *testing.T) {
				c := tracerClient(t, tt.tracer)
				resp, err := call(t, c)
				if tt.errText != "" {
					if err == nil || !strings.Contains(err.Error(), tt.errText) {
						t.Errorf("Decide error = %v, want one saying %q", err, tt.errText)
					}
					return
				}
				if err != nil {
					t.Fatalf("Decide: %v", err)
				}
				if !slices.Equal(resp.GetWant(), tt.want) {
					t.Errorf("want = %v, want %v", resp.GetWant(), tt.want)
				}
				if d, ok := tt.tracer.(*decider); ok {
					wantEntries := []sdk.DecideEntry{
						{PID: 1, TID: 2, Events: []sdk.Event{{Kind: sdk.KindSyscallEnter, Name: "read", TID: 2, Fields: []sdk.Field{sdk.IntField("fd", 3)}}}},
						{PID: 1, TID: 3},
						{PID: 4, TID: 4},
					}
					if !reflect.DeepEqual(d.entries, wantEntries) {
						t.Errorf("Decide saw %+v, want %+v", d.entries, wantEntries)
					}
				}
			})
		}
	}
}

// slowDecider holds the entries of tid 1 until its context ends (it
// reports how far away its deadline was) and answers every other entry at
// once.
type slowDecider struct {
	*recorder
	budgetSeen chan time.Duration
}

func (d *slowDecider) Decide(ctx context.Context, entries []sdk.DecideEntry) ([]bool, error) {
	if entries[0].TID == 1 {
		dl, _ := ctx.Deadline()
		d.budgetSeen <- time.Until(dl)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return []bool{true}, nil
}

// TestDecisionsStream: requests are answered in turn, each under its
// budget (the Decider's deadline); a Decider that overruns it answers "no"
// with the budget's error, and the stream goes on with the next request.
func TestDecisionsStream(t *testing.T) {
	d := &slowDecider{recorder: &recorder{}, budgetSeen: make(chan time.Duration, 1)}
	st, err := tracerClient(t, d).Decisions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	send := func(seq uint64, tid int32, budget time.Duration) {
		if err := st.Send(&pluginpb.DecideRequest{Seq: seq, BudgetNs: uint64(budget), Entries: []*pluginpb.DecideEntry{{Key: seq, Tid: tid}}}); err != nil {
			t.Fatal(err)
		}
	}
	send(1, 1, 300*time.Millisecond)
	send(2, 2, time.Second)
	if b := <-d.budgetSeen; b <= 0 || b > 300*time.Millisecond {
		t.Errorf("the Decider's deadline is %v away, want within the 300ms budget", b)
	}
	first, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if first.GetSeq() != 1 || len(first.GetWant()) != 0 || !strings.Contains(first.GetError(), "deadline exceeded") {
		t.Errorf("first answer %v, want request 1's: no, with the budget's error", first)
	}
	second, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if second.GetSeq() != 2 || !slices.Equal(second.GetWant(), []uint64{2}) {
		t.Errorf("second answer %v, want request 2's (yes)", second)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("after CloseSend: %v, want EOF", err)
	}
}

func TestCheckValid(t *testing.T) {
	ok := []sdk.Frame{{Addr: 1, Type: sdk.TypeRegs}, {Addr: 2, Type: sdk.TypeCallchain}}
	tests := []struct {
		name string
		s    sdk.Stack
		want string // "" valid
	}{
		{"valid", sdk.Stack{Cookie: 1, Frames: ok, End: sdk.EndOutermost}, ""},
		{"no frames", sdk.Stack{Cookie: 1, End: sdk.EndNoRegs}, ""},
		{"zero cookie", sdk.Stack{TID: 5, Frames: ok, End: sdk.EndOutermost}, "tid 5 has cookie 0"},
		{"no end", sdk.Stack{Cookie: 1, Frames: ok}, "end reason none"},
		{"bad end", sdk.Stack{Cookie: 1, End: 9}, "end reason EndReason(9)"},
		{"untyped frame", sdk.Stack{Cookie: 1, Frames: []sdk.Frame{{Addr: 1, Type: sdk.TypeRegs}, {Addr: 2}}, End: sdk.EndDepth}, "frame 1 has type none"},
		{"bad type", sdk.Stack{Cookie: 1, Frames: []sdk.Frame{{Type: 6}}, End: sdk.EndDepth}, "frame 0 has type FrameType(6)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.s.CheckValid()
			if tt.want == "" {
				if err != nil {
					t.Errorf("CheckValid = %v, want nil", err)
				}
				return
			}
			if err == nil || !errors.Is(err, sdk.ErrProtocol) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CheckValid = %v, want ErrProtocol saying %q", err, tt.want)
			}
		})
	}
}

func TestNames(t *testing.T) {
	var ft []string
	for x := sdk.TypeSFrame; x <= sdk.TypeCallchain; x++ {
		ft = append(ft, x.String())
	}
	var er []string
	for x := sdk.EndOutermost; x <= sdk.EndNoRegs; x++ {
		er = append(er, x.String())
	}
	if want := []string{"sframe", "cfi", "fp", "regs", "callchain"}; !slices.Equal(ft, want) {
		t.Errorf("frame types %v, want %v", ft, want)
	}
	if want := []string{"outermost", "unreadable", "end-of-snapshot", "invalid-frame", "depth-limit", "no-regs"}; !slices.Equal(er, want) {
		t.Errorf("end reasons %v, want %v", er, want)
	}
	// The numbering follows the protocol's enums.
	if int32(sdk.TypeCallchain) != int32(pluginpb.FrameType_FRAME_TYPE_CALLCHAIN) || int32(sdk.EndNoRegs) != int32(pluginpb.EndReason_END_REASON_NO_REGS) {
		t.Error("FrameType/EndReason numbering differs from plugin.proto")
	}
}
