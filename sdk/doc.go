// Package sdk is what an unwindd tracer plugin imports: the [Tracer]
// interface a plugin implements, the event and stack types it receives, the
// [Host] handle it calls back through, and [Serve], its main. A plugin is a
// separate process started by the host over hashicorp/go-plugin (gRPC,
// automatic mTLS); it imports this package and nothing under host/.
//
// # A complete plugin
//
// This plugin asks for a stack on every cpu-clock sample and counts stacks
// per leaf function, printing the counts to stderr (which the host logs)
// when it is shut down:
//
//	package main
//
//	import (
//		"context"
//		"fmt"
//		"os"
//		"sync"
//
//		"github.com/unwindd/unwindd/sdk"
//	)
//
//	type counter struct {
//		mu sync.Mutex // Close runs on another goroutine than Stack
//		n  map[string]int
//	}
//
//	func (c *counter) Describe(ctx context.Context, info sdk.DescribeInfo) (sdk.Description, error) {
//		return sdk.Description{
//			Name:          "leafcount",
//			Subscriptions: []sdk.Subscription{sdk.CPUClock(99)},
//			Mode:          sdk.ModeAlways,
//		}, nil
//	}
//
//	func (c *counter) Events(ctx context.Context, events []sdk.Event) error { return nil }
//
//	func (c *counter) Stack(ctx context.Context, s sdk.Stack) error {
//		leaf := "[unknown]"
//		if len(s.Frames) > 0 && s.Frames[0].Function != "" {
//			leaf = s.Frames[0].Function
//		}
//		c.mu.Lock()
//		c.n[leaf]++
//		c.mu.Unlock()
//		return nil
//	}
//
//	func (c *counter) Lost(ctx context.Context, l sdk.Lost) error { return nil }
//
//	func (c *counter) Close() error {
//		c.mu.Lock()
//		defer c.mu.Unlock()
//		for fn, n := range c.n {
//			fmt.Fprintf(os.Stderr, "%8d %s\n", n, fn)
//		}
//		return nil
//	}
//
//	func main() { sdk.Serve(&counter{n: make(map[string]int)}) }
//
// The host starts it from its config; run by hand, it prints that it must
// be started by the host and exits. examples/stackcount in the repository is
// a fuller version in its own module.
//
// # Calls and ordering
//
// The host calls [Tracer.Describe] first, once per connection: the plugin
// validates its config and answers with a [Description] (name,
// subscriptions, filter, request [Mode]). Then batches arrive on one stream
// and become calls, in the host's order, one at a time: a run of
// consecutive events is one [Tracer.Events] call, each callback one
// [Tracer.Stack], each overflow notice one [Tracer.Lost]. For any cookie the
// events that carry it come before its stack. A batch is acknowledged to the
// host once its calls have returned. The host sends a batch when it holds
// 8192 items or about 1 MiB, or when its first item has waited 2ms (5ms
// while items flow), so a [Tracer.Events] call may carry thousands of
// events, and a lone event arrives a few milliseconds after it happened.
// A [Decider] (mode [ModeDecide]) is asked
// about open entries under the host's deadline, possibly concurrently with
// the delivery calls. A [Closer] is closed when the host shuts the plugin
// down.
//
// # Ownership
//
// Nothing passed to a Tracer is modified by the SDK afterwards, so it may be
// retained. The frames of a stack are decoded once per interned stack and
// shared by every [Stack] with the same stack (a repeated stack costs a
// table index): Stack.Frames and the [Mapping] values they point to must not
// be modified. To allocate per batch rather than per item, the events of one
// batch share one array, and so do the frames of the stacks one batch
// defines (each slice capped, so an append copies): retaining one keeps its
// batch's array alive.
//
// # Errors
//
// An error returned from Events, Stack or Lost ends the delivery stream and
// the batch is not acknowledged: the host sees the plugin fail and applies
// its restart policy. To skip bad input, log it ([Host.Logger]) and return
// nil. A panic in a Tracer method is recovered, logged to the host with its
// stack, and ends the stream (or fails the call) with an error that says
// "panic". A batch that breaks the protocol (say, a stack naming an unknown
// location id) ends the stream with an error matching [ErrProtocol] that
// names the id; nothing of that batch is delivered.
//
// [Host.Request] returns the kernel's values (0, 1, or a negative errno)
// with an error matching one of the sentinels ([ErrUnknownTask],
// [ErrNoEntry], [ErrBusy]…). [StatusFromError] and [ErrorFromStatus] carry
// those sentinels across gRPC for both sides, so errors.Is works in the
// plugin on an error the host made.
//
// # For the host
//
// The host puts an empty [GRPCPlugin] under [PluginName] in its go-plugin
// plugin map with [Handshake], dispenses a [*Remote], serves
// pluginpb.HostServer on Remote.Broker and calls Describe with that broker
// id. [DescriptionFromProto] decodes and checks the answer; [Stack.CheckValid]
// is the check the host runs before sending a stack.
package sdk
