package sdk

import (
	"fmt"

	pluginpb "github.com/unwindd/unwindd/sdk/proto"
)

// modeToProto and modeFromProto translate request modes; the zero Mode
// (ModeAlways) is not the zero RequestMode, so the mapping is explicit.
var modeToProto = [...]pluginpb.RequestMode{
	ModeAlways: pluginpb.RequestMode_REQUEST_MODE_ALWAYS,
	ModeNever:  pluginpb.RequestMode_REQUEST_MODE_NEVER,
	ModeDecide: pluginpb.RequestMode_REQUEST_MODE_DECIDE,
}

// descriptionToProto encodes a description that passed CheckValid.
func descriptionToProto(d *Description) *pluginpb.Description {
	p := &pluginpb.Description{
		Name:    d.Name,
		Version: d.Version,
		Filter: &pluginpb.Filter{
			Pids:  d.Filter.PIDs,
			Tids:  d.Filter.TIDs,
			Comms: d.Filter.Comms,
		},
		Mode: modeToProto[d.Mode],
	}
	if !d.StackFilter.Empty() {
		p.StackFilter = &pluginpb.StackFilter{Ids: d.StackFilter.IDs, Comms: d.StackFilter.Comms}
	}
	for _, s := range d.Subscriptions {
		ps := &pluginpb.Subscription{EventsOnly: s.EventsOnly}
		switch s.Kind {
		case SubCPUClock:
			ps.Kind = &pluginpb.Subscription_CpuClock{CpuClock: &pluginpb.CPUClock{FrequencyHz: s.Hz}}
		case SubTracepoint:
			ps.Kind = &pluginpb.Subscription_Tracepoint{Tracepoint: &pluginpb.Tracepoint{Group: s.Group, Name: s.Name}}
		case SubSyscalls:
			ps.Kind = &pluginpb.Subscription_Syscalls{Syscalls: &pluginpb.Syscalls{Names: s.Syscalls}}
		}
		p.Subscriptions = append(p.Subscriptions, ps)
	}
	return p
}

// DescriptionFromProto decodes a plugin's answer to Describe, for the host,
// and checks it with [Description.CheckValid]. REQUEST_MODE_UNSPECIFIED is
// [ModeAlways]. The error matches [ErrInvalid].
func DescriptionFromProto(p *pluginpb.Description) (Description, error) {
	d := Description{
		Name:    p.GetName(),
		Version: p.GetVersion(),
		Filter: Filter{
			PIDs:  p.GetFilter().GetPids(),
			TIDs:  p.GetFilter().GetTids(),
			Comms: p.GetFilter().GetComms(),
		},
		StackFilter: StackFilter{IDs: p.GetStackFilter().GetIds(), Comms: p.GetStackFilter().GetComms()},
	}
	switch m := p.GetMode(); m {
	case pluginpb.RequestMode_REQUEST_MODE_UNSPECIFIED, pluginpb.RequestMode_REQUEST_MODE_ALWAYS:
		d.Mode = ModeAlways
	case pluginpb.RequestMode_REQUEST_MODE_NEVER:
		d.Mode = ModeNever
	case pluginpb.RequestMode_REQUEST_MODE_DECIDE:
		d.Mode = ModeDecide
	default:
		return Description{}, fmt.Errorf("%w: description %q: unknown request mode %d", ErrInvalid, d.Name, m)
	}
	for i, ps := range p.GetSubscriptions() {
		var s Subscription
		switch k := ps.GetKind().(type) {
		case *pluginpb.Subscription_CpuClock:
			s = CPUClock(k.CpuClock.GetFrequencyHz())
		case *pluginpb.Subscription_Tracepoint:
			s = Tracepoint(k.Tracepoint.GetGroup(), k.Tracepoint.GetName())
		case *pluginpb.Subscription_Syscalls:
			s = Syscalls(k.Syscalls.GetNames()...)
		default:
			return Description{}, fmt.Errorf("%w: description %q: subscription %d has no kind", ErrInvalid, d.Name, i)
		}
		s.EventsOnly = ps.GetEventsOnly()
		d.Subscriptions = append(d.Subscriptions, s)
	}
	if err := d.CheckValid(); err != nil {
		return Description{}, fmt.Errorf("description %q: %w", d.Name, err)
	}
	return d, nil
}
