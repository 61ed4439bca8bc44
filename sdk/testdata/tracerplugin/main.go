// Command tracerplugin is the plugin the sdk's process test launches: it
// requests a stack for the tid its config names while it is described, and
// panics on a stack whose leaf function is "boom".
package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/unwindd/unwindd/sdk"
)

type tracer struct{ stacks int }

func (t *tracer) Describe(ctx context.Context, info sdk.DescribeInfo) (sdk.Description, error) {
	v, ok := strings.CutPrefix(string(info.Config), "request=")
	if !ok {
		return sdk.Description{}, fmt.Errorf("config %q: want request=TID: %w", info.Config, sdk.ErrInvalid)
	}
	tid, err := strconv.Atoi(v)
	if err != nil {
		return sdk.Description{}, fmt.Errorf("config %q: %w", info.Config, err)
	}
	ret, cookie, err := info.Host.Request(ctx, int32(tid))
	info.Host.Logger().Info("described", zap.Int("tid", tid), zap.Error(err))
	return sdk.Description{
		Name:          "tracerplugin",
		Version:       fmt.Sprintf("ret=%d cookie=%#x unknown-task=%v", ret, cookie, errors.Is(err, sdk.ErrUnknownTask)),
		Subscriptions: []sdk.Subscription{sdk.CPUClock(99)},
	}, nil
}

func (t *tracer) Events(context.Context, []sdk.Event) error { return nil }

func (t *tracer) Stack(_ context.Context, s sdk.Stack) error {
	if len(s.Frames) > 0 && s.Frames[0].Function == "boom" {
		panic("boom")
	}
	t.stacks++
	return nil
}

func (t *tracer) Lost(context.Context, sdk.Lost) error { return nil }

func main() { sdk.Serve(&tracer{}) }
