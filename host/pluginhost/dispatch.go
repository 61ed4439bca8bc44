package pluginhost

import (
	"github.com/unwindd/unwindd/host/deferred"
)

// Dispatcher hands a source's events to the plugins. It belongs to one
// source goroutine (the owner of the tasks whose entries it reports, see
// package deferred) and is not safe for concurrent use; a source with many
// goroutines makes one per goroutine. It takes no lock: the set of running
// plugins is read with one atomic load per event.
type Dispatcher struct {
	m    *Manager
	open map[*deferred.Task][]decideSet // entries with events held for decide-mode plugins
	free [][]decideSet
}

// decideSet is the events one decide-mode plugin saw in one open entry.
type decideSet struct {
	in  *instance
	evs []Event
}

// Dispatcher returns a new Dispatcher for one source goroutine.
func (m *Manager) Dispatcher() *Dispatcher {
	return &Dispatcher{m: m, open: make(map[*deferred.Task][]decideSet)}
}

// Event dispatches ev, which happened in task t's open kernel entry, to
// every running plugin whose subscriptions and filter match it: for a
// plugin in mode always, the host requests t's stack for it now and the
// plugin's copy carries the entry's cookie; in mode never, the event is
// queued as is; in mode decide, it is held until [Dispatcher.EndEntry].
// An event only events-only subscriptions select, or of a task outside the
// plugin's StackFilter, is treated as in mode never: no request, no
// decision. Queuing never blocks: a full outbox drops
// and counts.
func (d *Dispatcher) Event(t *deferred.Task, ev Event) {
	d.m.dispatched.Add(1)
	for _, in := range *d.m.live.Load() {
		if !in.match.match(t, &ev) {
			continue
		}
		mode := in.mode
		// Events-only subscriptions and the plugin's StackFilter: the
		// event alone, but for a decide-mode plugin that already holds
		// events of this entry, so that they stay in order.
		if mode != ModeNever && !in.match.stackOK(t, &ev) && (mode != ModeDecide || !d.holding(t, in)) {
			mode = ModeNever
		}
		switch mode {
		case ModeAlways:
			var cookie uint64
			if _, c, err := t.Request(in.tracer); err == nil {
				cookie = uint64(c)
			} else {
				in.p.ctr.refused.Add(1)
			}
			in.push(item{kind: itemEvent, pid: t.PID(), tid: t.TID(), cookie: cookie, ev: ev})
		case ModeDecide:
			d.hold(t, in, ev)
		default:
			in.push(item{kind: itemEvent, pid: t.PID(), tid: t.TID(), ev: ev})
		}
	}
}

// holding reports whether events of t's open entry are held for in.
func (d *Dispatcher) holding(t *deferred.Task, in *instance) bool {
	for _, s := range d.open[t] {
		if s.in == in {
			return true
		}
	}
	return false
}

func (d *Dispatcher) hold(t *deferred.Task, in *instance, ev Event) {
	sets, ok := d.open[t]
	if !ok && len(d.free) > 0 {
		sets, d.free = d.free[len(d.free)-1], d.free[:len(d.free)-1]
	}
	for i := range sets {
		if sets[i].in == in {
			sets[i].evs = append(sets[i].evs, ev)
			d.open[t] = sets
			return
		}
	}
	d.open[t] = append(sets, decideSet{in: in, evs: []Event{ev}})
}

// EndEntry is called by the source just before t's entry closes
// ([deferred.Task.Close] or [deferred.Task.Exit]): each decide-mode plugin
// that saw events in the entry is asked, within its DecideDeadline,
// whether it wants the stack (a missed deadline is "no" and is counted);
// the host requests it for those that do, then queues their events,
// stamped with the cookie, ahead of the stack the close will deliver.
func (d *Dispatcher) EndEntry(t *deferred.Task) {
	sets, ok := d.open[t]
	if !ok {
		return
	}
	delete(d.open, t)
	for i := range sets {
		s := &sets[i]
		var cookie uint64
		if s.in.decide(t, s.evs) {
			if _, c, err := t.Request(s.in.tracer); err == nil {
				cookie = uint64(c)
			} else {
				s.in.p.ctr.refused.Add(1)
			}
		}
		for _, ev := range s.evs {
			s.in.push(item{kind: itemEvent, pid: t.PID(), tid: t.TID(), cookie: cookie, ev: ev})
		}
		clear(s.evs)
		*s = decideSet{}
	}
	d.free = append(d.free, sets[:0])
}
