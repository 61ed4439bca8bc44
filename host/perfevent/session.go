package perfevent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/unwindd/unwindd/host/perfdata"
	"github.com/unwindd/unwindd/host/procfs"
)

// orderSlack is how long after its timestamp a record is taken to be in
// its ring: the kernel stamps a record and publishes it in one
// non-preemptible stretch of microseconds, so a pass that starts reading the
// rings at time T has every record stamped before T-orderSlack (see
// [Session.ReadInto]). A record published later than that is still
// delivered, out of order, and counted (Stats.Unordered).
const orderSlack = 2 * time.Millisecond

// Stats count what a [Session] has read.
type Stats struct {
	Records     uint64 // records delivered by ReadInto, synthesized ones included
	Synthesized uint64 // COMM and MMAP2 records made from /proc for what existed at Open
	// ByType and BytesByType count the records read from the rings and
	// their bytes, indexed by perfdata.RecordType (SAMPLE: 9, MMAP2: 10…);
	// types from 31 up are counted at 31. Bytes is their sum.
	ByType      [32]uint64
	BytesByType [32]uint64
	Bytes       uint64
	Lost        uint64 // events the kernel could not write for want of ring space (sum of LOST records)
	LostRecords uint64 // LOST records
	Throttles   uint64 // THROTTLE records (the kernel lowered the sampling rate)
	Unthrottles uint64
	Unordered   uint64 // records delivered after a newer one (published later than orderSlack)
	Wrapped     uint64 // records that straddled a ring's end, copied out
	// Spilled and SpilledBytes count the records copied out of a ring
	// more than half full of records waiting for their turn, to give its
	// space back to the kernel at once.
	Spilled      uint64
	SpilledBytes uint64
	Corrupt      uint64 // ring stretches skipped for an impossible record header
	BadRecords   uint64 // records that did not decode (ReadInto returned the error)
	Passes       uint64 // passes over the rings
	Waits        uint64 // epoll_wait calls
	MaxQueued    int    // most records held at once for time ordering
}

// Session is a live recording of one process tree with perf_event_open:
// [Open] opens and enables its events, [Session.ReadInto] reads their
// records in time order, [Session.Close] releases everything.
//
// ReadInto and Stats are for one goroutine; Close may be called from any
// goroutine, also while ReadInto blocks (it wakes it). Lock order: mu, then
// wakeMu.
type Session struct {
	mu     sync.Mutex // held by ReadInto and Close
	closed atomic.Bool

	wakeMu   sync.Mutex // guards evfd against Close while the context's AfterFunc writes it
	evfd     int        // eventfd: wakes epoll_wait on the context's end and on Close
	stopWake func() bool
	ctxDone  atomic.Bool

	opts   Options
	attrs  []perfdata.Attr
	dec    *perfdata.Decoder
	fds    []int   // every event
	rings  []*ring // one per CPU
	epfd   int
	polled map[int32]bool // tracking events still polled (not hung up)

	// Time: CLOCK_MONOTONIC at Open, and the same instant on Go's
	// monotonic clock (which is CLOCK_MONOTONIC too), so that now() costs no
	// syscall.
	clock0 uint64
	time0  time.Time

	queue    queue
	seq      uint64 // read order of queued records: breaks ties in time
	water    uint64 // records up to this time may be delivered
	last     *item  // the record delivered last, released at the next call
	lastItem item

	// Spill chunks (see spill): the one being filled, and spare ones.
	spillCur  *chunk
	spillFree []*chunk
	lastTime  uint64
	state     int // running, draining, done

	stats Stats
}

const (
	running  = iota
	draining // no more records will come: deliver what is queued, ignoring water
	done
)

// Open starts recording opts.PID and what it starts, on every online CPU:
// a tracking event (mmap, comm, task records), cpu-clock at opts.Frequency
// and opts.Tracepoints, all of a CPU into one ring buffer, with the target's
// existing threads and executable mappings synthesized as COMM and MMAP2
// records. The events are enabled when Open returns: a target that is held
// stopped (by ptrace, after its execve) can be released then and nothing it
// does is missed. The target's threads are listed once; a running target's
// thread created between that listing and the opening of its creator's
// events is not traced.
//
// When ctx ends, the events are disabled and ReadInto returns what the
// rings still hold, then io.EOF. Errors are [*Error]s saying what is
// missing ([Preflight] runs first).
func Open(ctx context.Context, opts Options) (_ *Session, err error) {
	p, err := newPlan(opts)
	if err != nil {
		return nil, err
	}
	opts = p.opts
	s := &Session{opts: opts, epfd: -1, evfd: -1, polled: make(map[int32]bool)}
	defer func() {
		if err != nil {
			s.release() // closeOnError: what was acquired so far
		}
	}()
	tids, err := procfs.Threads(opts.PID)
	if err != nil {
		return nil, &Error{Op: "target", PID: opts.PID, CPU: -1, Err: ErrNoProcess}
	}
	nfds := len(tids) * len(p.cpus) * len(p.events)
	ids := make([][]uint64, len(p.events))
	var track []int
	for _, cpu := range p.cpus {
		var leader *ring
		for _, tid := range tids {
			for ei, ev := range p.events {
				fd, err := unix.PerfEventOpen(unixAttr(&ev.attr), tid, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
				if err != nil {
					if errors.Is(err, unix.ESRCH) && tid != opts.PID {
						break // the thread has exited meanwhile
					}
					return nil, p.sys.openErr(ev, tid, cpu, nfds, err)
				}
				s.fds = append(s.fds, fd)
				if leader == nil {
					r, err := newRing(fd, cpu, opts.RingPages)
					if err != nil {
						return nil, p.sys.mmapErr(cpu, opts.RingPages*os.Getpagesize(), len(p.cpus), err)
					}
					leader = r
					s.rings = append(s.rings, r)
				} else if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_SET_OUTPUT, leader.fd); err != nil {
					return nil, &Error{Op: "ioctl(PERF_EVENT_IOC_SET_OUTPUT)", Event: ev.name, PID: tid, CPU: cpu, Err: err,
						Why: "the kernel refused to put this event's records into the CPU's ring"}
				}
				var id uint64
				if err := ioctlPtr(fd, unix.PERF_EVENT_IOC_ID, &id); err != nil {
					return nil, &Error{Op: "ioctl(PERF_EVENT_IOC_ID)", Event: ev.name, PID: tid, CPU: cpu, Err: err,
						Why: "the kernel gave no sample id (before Linux 3.12)"}
				}
				ids[ei] = append(ids[ei], id)
				if ev.tracking {
					track = append(track, fd)
				}
			}
		}
	}
	s.attrs = make([]perfdata.Attr, len(p.events))
	for i, ev := range p.events {
		s.attrs[i] = perfdata.Attr{EventAttr: ev.attr, IDs: ids[i], Name: ev.name, Format: ev.format}
	}
	s.dec = perfdata.NewDecoder(s.attrs)

	if s.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("perfevent: epoll_create1: %w", err)
	}
	if s.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("perfevent: eventfd: %w", err)
	}
	for _, fd := range append(track, s.evfd) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
		if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			return nil, fmt.Errorf("perfevent: epoll_ctl: %w", err)
		}
		if fd != s.evfd {
			s.polled[int32(fd)] = true
		}
	}

	var ts unix.Timespec
	if err := unix.ClockGettime(clockMonotonic, &ts); err != nil {
		return nil, fmt.Errorf("perfevent: clock_gettime: %w", err)
	}
	s.clock0, s.time0 = uint64(ts.Nano()), time.Now()
	t0 := s.now()
	for _, fd := range s.fds {
		if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
			return nil, &Error{Op: "ioctl(PERF_EVENT_IOC_ENABLE)", CPU: -1, Err: err}
		}
	}
	syn := synthesizer{st: s.attrs[0].SampleType, id: s.attrs[0].IDs[0], time: t0}
	recs, err := syn.synthesize(opts.PID, tids)
	if err != nil {
		return nil, fmt.Errorf("perfevent: synthesize the target's threads and mappings: %w", err)
	}
	for _, raw := range recs {
		s.queue.push(item{time: t0, seq: s.seq, raw: raw, ring: -1, synth: true})
		s.seq++
	}
	s.stats.Synthesized = uint64(len(recs))
	s.stopWake = context.AfterFunc(ctx, func() {
		s.ctxDone.Store(true)
		s.wake()
	})
	return s, nil
}

func ioctlPtr(fd int, req uint, v *uint64) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(v)))
	if e != 0 {
		return e
	}
	return nil
}

// now returns CLOCK_MONOTONIC, the clock of the records' timestamps.
func (s *Session) now() uint64 { return s.clock0 + uint64(time.Since(s.time0)) }

// wake makes a blocked epoll_wait return.
func (s *Session) wake() {
	s.wakeMu.Lock()
	defer s.wakeMu.Unlock()
	if s.evfd >= 0 {
		var one = [8]byte{1}
		unix.Write(s.evfd, one[:])
	}
}

// Attrs returns the session's events: the tracking event (named "dummy")
// first, then cpu-clock if sampling, then the tracepoints in the order of
// Options.Tracepoints, each with the sample ids of its per-CPU, per-thread
// instances and, for a tracepoint, its format. [perfdata.Record.Attr] points
// into this slice.
func (s *Session) Attrs() []perfdata.Attr { return s.attrs }

// Stats returns the counts so far. Call it from the goroutine that calls
// ReadInto.
func (s *Session) Stats() Stats { return s.stats }

// ReadInto reads the next record, in time order across CPUs, into rec. It
// blocks until one can be delivered, the session's context ends (then it
// delivers what the rings hold and returns io.EOF), or the target and every
// process it started have exited and the rings are drained (io.EOF). After
// Close it returns os.ErrClosed. A record that does not decode is skipped,
// counted (Stats.BadRecords) and returned as the error; the next call goes
// on.
//
// The byte slices of rec (Data, Sample.Stack, Sample.Raw) alias the ring
// buffer and are valid until the next call of ReadInto or Close; a caller
// that keeps one longer — the entry tracker keeps a sys_enter's stack until
// its sys_exit — must copy it.
//
// # Ordering
//
// Each pass over the rings notes the time T (CLOCK_MONOTONIC, the clock the
// events stamp their records with) before loading every ring's data_head,
// queues the records up to it, and lets through the queued records stamped
// no later than T-orderSlack: any record stamped before that was in its ring
// when its head was loaded. Records come out of the queue in timestamp
// order (ties in the order they were read). Between passes, epoll_wait
// waits for a ring to fill to its wakeup watermark, a quarter of it, but no
// longer than Options.MaxDelay: a record is delivered at most about
// MaxDelay+orderSlack after it was written, and a quiet target costs a
// wakeup per MaxDelay.
func (s *Session) ReadInto(rec *perfdata.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return os.ErrClosed
	}
	s.releaseLast()
	for {
		if s.state == done {
			return io.EOF
		}
		if s.state == running && s.ctxDone.Load() {
			// Stop the events first, so that a target writing records
			// faster than they are read cannot keep the session going.
			for _, fd := range s.fds {
				unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_DISABLE, 0)
			}
			// A record being written as the events were disabled is
			// published within orderSlack: read it too.
			time.Sleep(orderSlack)
			s.pass()
			s.state = draining
		}
		if s.queue.len() > 0 {
			top := s.queue.top()
			if top.synth || s.state == draining || top.time <= s.water {
				return s.deliver(rec)
			}
		} else if s.state == draining {
			s.state = done
			continue
		}
		if s.state == running {
			s.pass()
			if s.queue.len() > 0 && s.queue.top().time <= s.water {
				continue
			}
		}
		switch {
		case s.closed.Load():
			return os.ErrClosed
		case s.ctxDone.Load() && s.state == running:
			continue // stopped at the top of the loop
		case len(s.polled) == 0 && s.state == running:
			s.pass()
			s.state = draining
			continue
		}
		if err := s.wait(); err != nil {
			return err
		}
	}
}

// deliver decodes the oldest queued record into rec.
func (s *Session) deliver(rec *perfdata.Record) error {
	it := s.queue.pop()
	s.lastItem = it
	s.last = &s.lastItem
	if it.time < s.lastTime {
		s.stats.Unordered++
	} else {
		s.lastTime = it.time
	}
	if err := s.dec.DecodeAt(it.raw, int64(it.pos), rec); err != nil {
		s.stats.BadRecords++
		if it.ring >= 0 {
			err = fmt.Errorf("perfevent: ring of cpu %d: %w", s.rings[it.ring].cpu, err)
		}
		return err
	}
	s.stats.Records++
	return nil
}

// releaseLast gives the space of the record delivered last back to its
// ring: the caller is done with it.
func (s *Session) releaseLast() {
	if s.last == nil {
		return
	}
	if s.last.ring >= 0 {
		s.rings[s.last.ring].release(s.last.rseq)
	} else if s.last.chunk != nil {
		s.releaseChunk(s.last.chunk)
	}
	s.last = nil
}

// pass reads what every ring holds into the queue and moves the water mark.
func (s *Session) pass() {
	s.stats.Passes++
	t := s.now()
	for ri, r := range s.rings {
		head := r.loadHead()
		for {
			raw, pos, seq, ok, bad := r.next(head)
			if bad {
				s.stats.Corrupt++
			}
			if !ok {
				break
			}
			typ := perfdata.RecordType(uint32(raw[0]) | uint32(raw[1])<<8 | uint32(raw[2])<<16 | uint32(raw[3])<<24)
			k := min(int(typ), len(s.stats.ByType)-1)
			s.stats.ByType[k]++
			s.stats.BytesByType[k] += uint64(len(raw))
			s.stats.Bytes += uint64(len(raw))
			if pos&r.mask+uint64(len(raw)) > uint64(len(r.data)) {
				s.stats.Wrapped++
			}
			switch typ {
			case perfdata.RecordLost:
				s.stats.LostRecords++
				if len(raw) >= 24 {
					s.stats.Lost += le64(raw[16:])
				}
			case perfdata.RecordThrottle:
				s.stats.Throttles++
			case perfdata.RecordUnthrottle:
				s.stats.Unthrottles++
			}
			tm, _ := s.dec.Time(raw)
			s.queue.push(item{time: tm, seq: s.seq, raw: raw, ring: int32(ri), rseq: seq, pos: pos})
			s.seq++
		}
		if r.read-r.given > uint64(len(r.data))/2 {
			s.spill(ri)
		}
	}
	if n := s.queue.len(); n > s.stats.MaxQueued {
		s.stats.MaxQueued = n
	}
	if w := t - uint64(orderSlack); t > uint64(orderSlack) && w > s.water {
		s.water = w
	}
}

// spill copies the queued records of ring ri out of it, into spill
// chunks, and gives their space back to the kernel: when records arrive
// faster than the ordering window lets them through, the ring would
// otherwise fill up with records waiting for their turn, and the kernel
// would drop new ones.
func (s *Session) spill(ri int) {
	r := s.rings[ri]
	for i := range s.queue.items {
		it := &s.queue.items[i]
		if it.ring != int32(ri) {
			continue
		}
		it.raw, it.chunk = s.spillCopy(it.raw)
		it.ring = -1
		r.release(it.rseq)
		s.stats.Spilled++
		s.stats.SpilledBytes += uint64(len(it.raw))
	}
}

// spillChunkSize is the size of the buffers spilled records are copied
// into; a chunk is reused once every record in it has been delivered and
// released.
const spillChunkSize = 1 << 20

// chunk is a spill buffer and the count of its records not yet released.
type chunk struct {
	buf  []byte
	live int
}

// spillCopy copies raw into the current spill chunk (a new or recycled one
// when it is full) and returns the copy and its chunk.
func (s *Session) spillCopy(raw []byte) ([]byte, *chunk) {
	c := s.spillCur
	if c == nil || cap(c.buf)-len(c.buf) < len(raw) {
		if c != nil && c.live == 0 {
			c.buf = c.buf[:0] // every record in it is released: reuse it
		} else if n := len(s.spillFree); n > 0 {
			c, s.spillFree = s.spillFree[n-1], s.spillFree[:n-1]
		} else {
			c = &chunk{buf: make([]byte, 0, spillChunkSize)}
		}
		s.spillCur = c
	}
	p := len(c.buf)
	c.buf = append(c.buf, raw...)
	c.live++
	return c.buf[p:len(c.buf):len(c.buf)], c
}

// releaseChunk notes that a spilled record of c is released, and keeps c
// for reuse when it was c's last (up to a few spare chunks).
func (s *Session) releaseChunk(c *chunk) {
	c.live--
	if c.live == 0 && c != s.spillCur && len(s.spillFree) < 4 {
		c.buf = c.buf[:0]
		s.spillFree = append(s.spillFree, c)
	}
}

// wait blocks in epoll_wait until a ring reaches its watermark, a tracking
// event hangs up (its task and their children have exited), the context
// ends or Close is called, or MaxDelay has passed. It does not wake for the
// moment the oldest queued record may be let through: that would be a
// wakeup per record at low rates; MaxDelay bounds the wait instead.
func (s *Session) wait() error {
	timeout := s.opts.MaxDelay
	ms := int((timeout + time.Millisecond - 1) / time.Millisecond)
	if ms < 1 {
		ms = 1
	}
	var evs [16]unix.EpollEvent
	s.stats.Waits++
	n, err := unix.EpollWait(s.epfd, evs[:], ms)
	if err != nil {
		if errors.Is(err, unix.EINTR) {
			return nil
		}
		return fmt.Errorf("perfevent: epoll_wait: %w", err)
	}
	for _, ev := range evs[:n] {
		if int(ev.Fd) == s.evfd {
			var b [8]byte
			unix.Read(s.evfd, b[:])
			continue
		}
		if ev.Events&(unix.EPOLLHUP|unix.EPOLLERR) != 0 && s.polled[ev.Fd] {
			delete(s.polled, ev.Fd)
			unix.EpollCtl(s.epfd, unix.EPOLL_CTL_DEL, int(ev.Fd), nil)
		}
	}
	return nil
}

// Close stops the recording and releases the events, rings and file
// descriptors; it wakes a blocked ReadInto, which returns os.ErrClosed. The
// records ReadInto delivered must not be used afterwards. A second Close is
// harmless.
func (s *Session) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.wake()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.release()
}

// release frees what Open acquired.
func (s *Session) release() error {
	if s.stopWake != nil {
		s.stopWake()
	}
	var errs []error
	for _, r := range s.rings {
		errs = append(errs, r.close())
	}
	for _, fd := range s.fds {
		errs = append(errs, unix.Close(fd))
	}
	s.fds, s.rings = nil, nil
	if s.epfd >= 0 {
		errs = append(errs, unix.Close(s.epfd))
		s.epfd = -1
	}
	s.wakeMu.Lock()
	if s.evfd >= 0 {
		errs = append(errs, unix.Close(s.evfd))
		s.evfd = -1
	}
	s.wakeMu.Unlock()
	s.queue.items, s.last, s.spillCur, s.spillFree = nil, nil, nil, nil
	return errors.Join(errs...)
}
