package sdk_test

import (
	"context"

	"github.com/unwindd/unwindd/sdk"
)

// syscallLog subscribes to two syscalls and asks for no stacks.
type syscallLog struct{ host *sdk.Host }

func (s *syscallLog) Describe(_ context.Context, info sdk.DescribeInfo) (sdk.Description, error) {
	s.host = info.Host
	return sdk.Description{
		Name:          "syscall-log",
		Version:       "0.1.0",
		Subscriptions: []sdk.Subscription{sdk.Syscalls("openat", "read")},
		Mode:          sdk.ModeNever,
	}, nil
}

func (s *syscallLog) Events(_ context.Context, events []sdk.Event) error {
	for _, e := range events {
		s.host.Logger().Sugar().Infow(e.Name, "tid", e.TID, "comm", e.Comm)
	}
	return nil
}

func (s *syscallLog) Stack(context.Context, sdk.Stack) error { return nil }
func (s *syscallLog) Lost(context.Context, sdk.Lost) error   { return nil }

// A plugin's main is one call; the host starts the process from its config.
// (No Output: run outside the host, Serve exits.)
func ExampleServe() {
	sdk.Serve(&syscallLog{})
}
