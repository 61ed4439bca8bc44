// Package pluginhost starts, feeds and supervises unwindd's tracer plugins:
// separate processes built on package sdk, spoken to with hashicorp/go-plugin
// over gRPC with automatic mutual TLS.
//
// [New] takes the deferred engine, one [Spec] per plugin (binary, args,
// environment, optional SHA-256, optional user/group, outbox size, decide
// deadline, config block) and [Options]; it validates everything up front
// and starts nothing. [Manager.Run] starts every plugin, registers each as
// one tracer of the engine (one bit of the mask), and supervises them until
// its context ends; then it drains each plugin's outbox within
// Options.DrainTimeout and stops the processes.
//
// # Hot path
//
// Sources hand events to the plugins through a [Dispatcher] each (one per
// source goroutine): [Dispatcher.Event] matches an event against every
// running plugin's subscriptions and filter; for a plugin in mode always it
// requests the task's stack at once ([deferred.Task.Request]) and stamps the
// cookie on that plugin's copy; in mode never it forwards the event; in mode
// decide it holds the event until [Dispatcher.EndEntry], which the source
// calls just before it closes the entry: the plugin is asked ([Decide], with
// its deadline; a miss is "no" and counted) and the host requests for it if
// it wants the stack. The engine's callback for each plugin copies the trace
// into the same outbox, so for any cookie the events that carry it reach the
// plugin before its stack. Neither path blocks or takes a lock: a full
// outbox drops the item, counts it and remembers its cookie for the next
// lost notice.
//
// # Delivery
//
// Per plugin connection, one sender goroutine batches the outbox
// (Options.BatchSize items or about 1 MiB, or Options.BatchDelay after the
// first one; Options.FlowDelay while items flow), numbers batches 1, 2, 3…, keeps at most Options.Window unacknowledged, and
// interns strings (event names, comms, function names, paths), event
// contexts (what the events of one task on one cpu share), mappings,
// locations and whole stacks as pprof does: a stack already sent on this
// connection costs a stack id, an event a context id, a time and a cookie.
// It encodes each item into the batch's columns (varints in byte strings,
// see sdk/proto) as it takes it from the outbox, and reuses the batch's
// buffers, so that the steady state allocates nothing per item. The tables
// are bounded: past a bound the next batch resets them on both sides. One
// receiver goroutine takes the cumulative acknowledgements. A restarted
// plugin gets a fresh connection and fresh tables.
//
// # Failure
//
// A plugin whose process exits, whose stream breaks, or which acknowledges
// nothing for Options.AckTimeout is logged, counted, removed from dispatch,
// cancelled in the engine (SEMANTICS R3: its bit is cleared from every task
// before it can be reused) and restarted after an exponential backoff; its
// replacement registers anew. After Options.MaxQuickCrashes quick crashes in
// a row, or at once for a checksum mismatch or a wrong protocol version, the
// plugin is given up: the error is logged, kept in [Stats].Err and returned
// by Run, and the host runs on. What a dead plugin's outbox still held
// counts as dropped.
//
// # Concurrency
//
// [Manager.Stats] and [Manager.Dispatcher] are safe for concurrent use; a
// Dispatcher belongs to one goroutine. Resolver implementations are called
// from the sender goroutines of all plugins at once.
//
// [Decide]: https://pkg.go.dev/github.com/unwindd/unwindd/sdk/proto#TracerClient
package pluginhost
