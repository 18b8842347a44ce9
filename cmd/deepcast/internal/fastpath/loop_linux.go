//go:build linux

package fastpath

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/deepcast/deepcast/cmd/deepcast/internal/connlimit"
)

// Event loops: why. With a goroutine per connection, a request's bytes
// wake the Go netpoller, which readies the goroutine, which waits for a P
// behind every other ready goroutine; on 2 cores with 64 busy connections
// that queueing is what made the latency tail (p99 of 2 KiB answers 7-8 ms
// against nginx's 4-6 ms, measured here with otherwise identical servers).
// Loops on their own threads that wait on the connections' readiness
// (epoll, edge triggered) answer each ready connection in turn with no
// scheduling in between: p99 3.4-4.9 ms in the same measurement. Requests a loop cannot
// answer at once (a cache miss that waits for the upstream) run on a
// goroutine and the loop writes their response when it is ready, so no
// connection ever waits for another's upstream.

// loopsSupported reports whether this platform has the event loops.
const loopsSupported = true

// hub is what a server's loops share: one epoll instance for every
// connection, so that any running loop serves any ready connection. Why
// not a set per loop: a loop that the kernel preempts holds up every
// connection it owns, and at 1 MiB a loop's batch of ready connections
// takes milliseconds. With connections owned by loops, the edge's 1 MiB
// p99 was 26-43 ms against Varnish's 25-57 ms in the same rounds, and
// 23-29 ms with shared readiness (wrk -t2 -c64, 200 objects; measured here).
// Connections are registered edge-triggered; an event may reach any loop,
// and an owned flag makes one loop at a time run a connection: a loop that
// finds it owned leaves its events to the owner (see dispatch). Deadline
// checks and computed responses go the same way.
type hub struct {
	ep   int
	wake int // eventfd, edge-triggered: the inbox has work, or the server's state changed
	stop int // eventfd, level-triggered once written: every loop is to exit

	mu       sync.Mutex
	inbox    []accepted // sockets to adopt
	finished []*lconn   // connections whose response a goroutine computed
	exited   bool       // the descriptors are closed: signal nothing
	running  int        // loops not yet exited
	stopped  bool       // stop was written

	slotMu sync.RWMutex
	slots  []*lconn // by id, the epoll event's data
	free   []int32  // unused ids
	gen    uint32   // the next connection's generation, against stale events
	live   atomic.Int64

	nextSweep atomic.Int64 // unix nanoseconds; the loop that moves it sweeps
}

// loop is one event loop: a locked OS thread waiting on the hub's epoll
// instance. Only the loop that owns a connection (owned, below) touches it.
type loop struct {
	s      *Server
	h      *hub
	ready  []*lconn // connections with buffered requests left for later, for fairness
	bufs   [][]byte // spare head buffers
	events []unix.EpollEvent
	sent   int // bytes written since the last wait
}

// bigBatch is how many bytes written since its last wait make a loop take
// one ready connection at a time (instead of up to len(events)): what a
// loop takes, it alone serves, so a preempted loop holds up what it took.
// With 1 MiB answers, one at a time gave a p99 of 24-31 ms and sixteen
// 26-42 ms; with 2 KiB answers one at a time cost a fifth of the req/s
// (three interleaved rounds each, wrk -t2 -c64; measured here).
const bigBatch = 256 << 10

// lconn is a connection on the loops.
type lconn struct {
	// owned: a loop runs it; pending: events left for the owner, which
	// looks at them before it lets go (see dispatch). A closed connection
	// stays owned for good.
	owned   atomic.Bool
	pending atomic.Uint32
	cp      *completion // the response a goroutine computed (evComplete)

	fd      int
	id      int32
	gen     uint32
	remote  string
	release func() // gives the connection's place back (connlimit), once
	closed  bool
	busy    bool // a goroutine is computing its response
	// drained: the last read came back short, so the socket had nothing
	// more; the next read would only get EAGAIN until an event says bytes
	// came (edge-triggered epoll reports every arrival after the read).
	// Saves a read(2) per request.
	drained bool
	// peerDone: an event said the peer closed its side (RDHUP/HUP). The
	// FIN may have come with the last bytes, in the same edge, so a short
	// read no longer means the socket is drained: the next read sees EOF.
	peerDone bool
	// served: the connection has had an answer, so what follows is not
	// its first request (see nextRequestTooShort).
	served bool

	buf        []byte // request bytes; nil while idle
	start, end int

	// The response being written.
	writing   bool
	out       []byte // status line and headers, maybe a small body
	outOff    int
	body      []byte
	bodyOff   int
	file      *os.File
	fileFD    int
	fileOff   int64
	fileEnd   int64
	corked    bool
	headBytes int64 // of out, not body: for the sent count
	written   int64
	began     time.Time
	done      func(sent int64, elapsed time.Duration, err error)

	deadline time.Time // zero: none
}

// accepted is a socket the accept loop gives a loop, with the peer's
// address its Go connection already knew.
type accepted struct {
	fd      int
	remote  string
	prefix  []byte // bytes read before: a request net/http gave back
	release func() // gives the connection's place back (connlimit), once
}

// completion is a response computed by a goroutine for a loop's connection.
type completion struct {
	c       *lconn
	head    bool
	headLen int
	resp    Response
	ok      bool
	began   time.Time
	panic   any
}

const (
	wakeID = -1
	stopID = -2
	// fairBudget bounds the requests one connection gets answered before
	// the loop turns to the others.
	fairBudget = 16
	// Events of our own, beside epoll's: a computed response is ready; a
	// deadline or shutdown check; the server closes.
	evComplete = 1 << 28
	evCheck    = 1 << 29
	evClose    = 1 << 30
)

func newHub() (*hub, error) {
	h := &hub{ep: -1, wake: -1, stop: -1}
	var err error
	if h.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, err
	}
	for _, fd := range []*int{&h.wake, &h.stop} {
		if *fd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
			h.release()
			return nil, err
		}
	}
	if err = unix.EpollCtl(h.ep, unix.EPOLL_CTL_ADD, h.wake, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: wakeID}); err == nil {
		err = unix.EpollCtl(h.ep, unix.EPOLL_CTL_ADD, h.stop, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: stopID})
	}
	if err != nil {
		h.release()
		return nil, err
	}
	return h, nil
}

// startLoops makes n loops, or none when the platform refuses.
func (s *Server) startLoops(n int) error {
	h, err := newHub()
	if err != nil {
		return err
	}
	h.running = n
	s.mu.Lock() // Close and Shutdown read the loops from other goroutines
	s.hub = h
	for range n {
		s.loops = append(s.loops, &loop{s: s, h: h, events: make([]unix.EpollEvent, 16)})
	}
	loops := s.loops
	s.mu.Unlock()
	for _, l := range loops {
		s.wg.Add(1)
		addProcs(1)
		go l.run()
	}
	return nil
}

// adopt gives a TCP connection to a loop, with the bytes already read from
// it: the loop works on a duplicate of its socket and the Go connection is
// closed. It reports false, with c untouched, when c cannot be moved.
func (s *Server) adopt(c net.Conn, prefix []byte) bool {
	tc, ok := connlimit.Unwrap(c).(*net.TCPConn)
	if !ok || len(s.loops) == 0 {
		return false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	fd := -1
	if cerr := rc.Control(func(sfd uintptr) {
		fd, err = unix.FcntlInt(sfd, unix.F_DUPFD_CLOEXEC, 0)
	}); cerr != nil || err != nil {
		return false
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return false
	}
	remote := tc.RemoteAddr().String()
	// A counted connection stays counted while its socket lives on in
	// fd: whoever closes fd gives its place back.
	release := func() {}
	if cc, ok := c.(*connlimit.Conn); ok {
		release = cc.Detach()
	}
	tc.Close() // the socket lives on in fd
	h := s.hub
	h.mu.Lock()
	if h.exited {
		h.mu.Unlock()
		unix.Close(fd)
		release()
		return true
	}
	h.inbox = append(h.inbox, accepted{fd: fd, remote: remote, prefix: prefix, release: release})
	h.signal()
	h.mu.Unlock()
	return true
}

// wakeUp makes a loop look at the inbox and the server's state.
func (h *hub) wakeUp() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.signal()
}

// signal writes the wake eventfd; h.mu must be held. Once the loops have
// exited the descriptors are closed and the number may belong to another
// file by now, so nothing is written then.
func (h *hub) signal() {
	if h.exited {
		return
	}
	one := [8]byte{1}
	unix.Write(h.wake, one[:]) // EAGAIN only when the counter is full: a loop is awake anyway
}

// stopAll makes every loop exit (the stop eventfd stays readable); h.mu
// must be held.
func (h *hub) stopAll() {
	if h.exited || h.stopped {
		return
	}
	h.stopped = true
	one := [8]byte{1}
	unix.Write(h.stop, one[:])
}

// post hands a computed response to the loops; if they are gone the
// response is dropped here.
func (l *loop) post(cp *completion) {
	h := l.h
	h.mu.Lock()
	if h.exited {
		h.mu.Unlock()
		if cp.resp.File != nil {
			cp.resp.File.Close()
		}
		return
	}
	cp.c.cp = cp // read by the loop that takes it from finished, after h.mu
	h.finished = append(h.finished, cp.c)
	h.signal()
	h.mu.Unlock()
}

func (l *loop) run() {
	defer l.s.wg.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer addProcs(-1) // startLoops added it
	defer l.exit()
	h := l.h
	tick := sweepInterval(l.s)
	h.nextSweep.CompareAndSwap(0, time.Now().Add(tick).UnixNano())
	busy := false
	for {
		// Every loop wakes at least once a tick, so that one of them
		// sweeps; none when there are no connections (no deadlines).
		wait := int((tick + time.Millisecond - 1) / time.Millisecond)
		switch {
		case len(l.ready) > 0:
			wait = 0
		case h.live.Load() == 0 && !l.s.shutting.Load():
			wait = -1
		}
		take := len(l.events)
		if l.sent >= bigBatch {
			take = 1
		}
		l.sent = 0
		n, err := l.wait(l.events[:take], wait, busy)
		busy = n > 0
		if err != nil && !errors.Is(err, unix.EINTR) {
			l.logf("fastpath: epoll_wait: %v", err)
			l.s.closing.Store(true)
		}
		stop := false
		for _, ev := range l.events[:max(n, 0)] {
			switch ev.Fd {
			case wakeID:
				var b [8]byte
				rawRead(h.wake, b[:])
				l.takeInbox()
			case stopID:
				stop = true
			default:
				if c := h.lookup(ev.Fd, uint32(ev.Pad)); c != nil {
					l.dispatch(c, ev.Events)
				}
			}
		}
		if len(l.ready) > 0 {
			ready := l.ready
			l.ready = nil
			for _, c := range ready {
				l.dispatch(c, unix.EPOLLIN)
			}
		}
		if stop {
			return
		}
		now := time.Now()
		switch {
		case l.s.closing.Load():
			l.checkAll(evClose)
			l.takeInbox() // closes what arrived
			h.mu.Lock()
			h.stopAll()
			h.mu.Unlock()
			return
		case l.s.shutting.Load():
			l.checkAll(evCheck) // closes idle connections
			h.mu.Lock()
			if h.live.Load() == 0 && len(h.inbox) == 0 && len(h.finished) == 0 {
				h.stopAll()
			}
			h.mu.Unlock()
		default:
			if next := h.nextSweep.Load(); now.UnixNano() >= next && h.nextSweep.CompareAndSwap(next, now.Add(tick).UnixNano()) {
				l.checkAll(evCheck)
			}
		}
	}
}

// exit ends a loop; the last one closes the hub.
func (l *loop) exit() {
	h := l.h
	h.mu.Lock()
	h.running--
	last := h.running == 0
	var inbox []accepted
	var finished []*lconn
	if last {
		inbox, finished = h.inbox, h.finished
		h.inbox, h.finished = nil, nil
		h.exited = true
	}
	h.mu.Unlock()
	if !last {
		return
	}
	for _, a := range inbox {
		unix.Close(a.fd)
		a.release()
	}
	for _, c := range finished {
		if c.cp.resp.File != nil {
			c.cp.resp.File.Close()
		}
	}
	h.slotMu.RLock()
	left := slices.Clone(h.slots)
	h.slotMu.RUnlock()
	for _, c := range left {
		if c != nil && c.owned.CompareAndSwap(false, true) {
			l.closeConn(c, net.ErrClosed)
		}
	}
	h.release()
}

// lookup returns the connection an event is for, or nil when it has gone
// (the id may be another connection's by now: the generation tells).
func (h *hub) lookup(id int32, gen uint32) *lconn {
	h.slotMu.RLock()
	defer h.slotMu.RUnlock()
	if id < 0 || int(id) >= len(h.slots) {
		return nil
	}
	if c := h.slots[id]; c != nil && c.gen == gen {
		return c
	}
	return nil
}

// checkAll gives every connection the event ev (a deadline or shutdown
// check, or the close): at once when no loop runs it, else to the loop that
// does, before it lets the connection go.
func (l *loop) checkAll(ev uint32) {
	l.h.slotMu.RLock()
	conns := slices.Clone(l.h.slots)
	l.h.slotMu.RUnlock()
	for _, c := range conns {
		if c != nil {
			l.dispatch(c, ev)
		}
	}
}

// dispatch runs events on c if no other loop runs c; else it leaves them
// for that loop, which looks at them before it lets c go, so nothing is
// lost between two loops.
func (l *loop) dispatch(c *lconn, ev uint32) {
	c.pending.Or(ev)
	if c.owned.CompareAndSwap(false, true) {
		l.drive(c)
	}
}

// drive runs c's pending events while this loop owns c, and lets it go;
// events that came meanwhile are run before the loop leaves.
func (l *loop) drive(c *lconn) {
	for {
		if ev := c.pending.Swap(0); ev != 0 && !c.closed {
			l.handle(c, ev)
		}
		if c.closed {
			return // owned for good: stale events find nobody
		}
		c.owned.Store(false)
		if c.pending.Load() == 0 || !c.owned.CompareAndSwap(false, true) {
			return
		}
	}
}

// handle runs one set of events on c, which this loop owns.
func (l *loop) handle(c *lconn, ev uint32) {
	switch {
	case ev&evClose != 0:
		l.closeConn(c, net.ErrClosed)
		return
	case ev&evComplete != 0:
		cp := c.cp
		c.cp = nil
		l.complete(cp)
	}
	if ev&evCheck != 0 && !c.closed && !c.busy {
		switch {
		case !c.deadline.IsZero() && time.Now().After(c.deadline):
			l.s.timedOut.Add(1)
			l.closeConn(c, errTimeout)
			return
		case l.s.shutting.Load() && l.idle(c):
			l.closeConn(c, nil)
			return
		}
	}
	if ev &^= evComplete | evCheck; ev != 0 && !c.closed {
		l.service(c, ev)
	}
}

// wait waits up to ms milliseconds (-1: for ever) for the loop's events.
// A busy loop (one that had events last time) waits with a raw system
// call, so the runtime sees its P running rather than in a system call.
// Why: the loop goroutine never reschedules, so the runtime's monitor
// (sysmon) takes its P away whenever it finds it in a system call 10 ms
// after the last schedule, and every such take keeps the monitor polling
// every 20 µs for a while. With 1 MiB answers those polls were two thirds
// of the edge's context switches (perf record -e context-switches): 27-32k
// per 5 s against Varnish's 16k; with raw waits and raw socket I/O, 10-13k.
// An idle loop waits through the scheduler, so that an idle server lets
// its Ps go and the monitor sleep. A raw wait that lasts is cut short by
// the runtime's preemption signal (EINTR), so the garbage collector never
// waits on it for long; with GODEBUG=asyncpreemptoff=1 there is no such
// signal and a stop-the-world may wait out the wait, at most a sweep
// interval.
func (l *loop) wait(events []unix.EpollEvent, ms int, busy bool) (int, error) {
	if !busy || ms < 0 {
		return unix.EpollWait(l.h.ep, events, ms)
	}
	return rawResult(unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.h.ep), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), uintptr(ms), 0, 0))
}

// procsMu serialises addProcs.
var procsMu sync.Mutex

// addProcs gives the process delta more Ps (or fewer). Each running loop
// holds a P all the time (see wait), so a Server adds one per loop and the
// rest of the program keeps the Ps it had.
func addProcs(delta int) {
	procsMu.Lock()
	defer procsMu.Unlock()
	runtime.GOMAXPROCS(max(1, runtime.GOMAXPROCS(0)+delta))
}

// sweepInterval is how often a loop checks deadlines: a tenth of the
// shortest timeout, within [5ms, 250ms].
func sweepInterval(s *Server) time.Duration {
	d := 250 * time.Millisecond
	for _, t := range []time.Duration{s.HTTP.ReadHeaderTimeout, s.HTTP.ReadTimeout, s.HTTP.WriteTimeout, s.HTTP.IdleTimeout} {
		if t > 0 {
			d = min(d, t/10)
		}
	}
	return max(d, 5*time.Millisecond)
}

// takeInbox adopts new sockets and writes finished responses.
func (l *loop) takeInbox() {
	h := l.h
	h.mu.Lock()
	inbox, finished := h.inbox, h.finished
	h.inbox, h.finished = nil, nil
	h.mu.Unlock()
	for _, a := range inbox {
		l.add(a)
	}
	for _, c := range finished {
		l.dispatch(c, evComplete)
	}
}

func (l *loop) add(a accepted) {
	if a.release == nil {
		a.release = func() {}
	}
	fd := a.fd
	if l.s.shutting.Load() {
		unix.Close(fd)
		a.release()
		return
	}
	h := l.h
	c := &lconn{fd: fd, remote: a.remote, release: a.release}
	c.owned.Store(true) // until drive lets it go, below
	h.slotMu.Lock()
	h.gen++
	c.gen = h.gen
	if k := len(h.free); k > 0 {
		c.id, h.free = h.free[k-1], h.free[:k-1]
		h.slots[c.id] = c
	} else {
		c.id = int32(len(h.slots))
		h.slots = append(h.slots, c)
	}
	h.slotMu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: c.id, Pad: int32(c.gen)}
	if err := unix.EpollCtl(h.ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		h.slotMu.Lock()
		h.slots[c.id] = nil
		h.free = append(h.free, c.id)
		h.slotMu.Unlock()
		unix.Close(fd)
		a.release()
		return
	}
	h.live.Add(1)
	l.s.open.Add(1)
	c.deadline = deadline(time.Now(), firstPositive(l.s.HTTP.ReadHeaderTimeout, l.s.HTTP.ReadTimeout, l.s.HTTP.IdleTimeout))
	if len(a.prefix) > 0 {
		c.buf = l.getBuf()
		c.end = copy(c.buf, a.prefix)
		c.deadline = l.s.headDeadline(time.Now())
	}
	// Bytes may have arrived before registration. Or, not Store: another
	// loop may already have left the registration's first events here (a
	// FIN among them), and a Store lost them: a half-closed client's
	// socket then stayed open until the idle deadline.
	c.pending.Or(unix.EPOLLIN)
	l.drive(c)
}

// idle reports a connection between requests, which shutdown may close.
func (l *loop) idle(c *lconn) bool {
	return !c.busy && !c.writing && c.start == c.end
}

// service moves c forward as far as it can without blocking: finish the
// pending write, answer buffered requests, read more.
func (l *loop) service(c *lconn, events uint32) {
	defer func() {
		if v := recover(); v != nil {
			l.logf("fastpath: panic serving %s: %v\n%s", c.remote, v, debug.Stack())
			l.closeConn(c, errors.New("panic"))
		}
	}()
	readable := events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0
	if readable {
		c.drained = false
	}
	if events&(unix.EPOLLRDHUP|unix.EPOLLHUP) != 0 {
		c.peerDone = true
	}
	if c.closed || c.busy {
		return
	}
	if !readable && !c.writing {
		return // the socket became writable with nothing to write
	}
	for budget := fairBudget; ; {
		if c.writing {
			done, err := l.flush(c)
			if err != nil {
				l.closeConn(c, err)
				return
			}
			if !done {
				return // EPOLLOUT brings us back
			}
			l.finish(c, nil)
		}
		if c.start == c.end && l.s.shutting.Load() {
			l.closeConn(c, nil)
			return
		}
		if n := nextHead(c.buf[c.start:c.end], c.served); n >= 0 {
			if budget == 0 {
				l.ready = append(l.ready, c)
				return
			}
			budget--
			l.request(c, n)
			if c.closed || c.busy {
				return
			}
			continue
		}
		if !l.read(c) {
			return
		}
	}
}

// read reads what the socket has; it reports false when nothing came
// (EAGAIN, or drained by the last read: the next edge brings us back) or
// the connection ended.
func (l *loop) read(c *lconn) bool {
	if c.drained {
		if c.start == c.end {
			l.putBuf(c)
		}
		return false
	}
	if c.buf == nil {
		c.buf = l.getBuf()
	}
	if c.end == len(c.buf) {
		if c.start == 0 {
			l.handOff(c) // a head larger than the front takes
			return false
		}
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
	}
	for {
		n, err := rawRead(c.fd, c.buf[c.end:])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			if c.start == c.end {
				l.putBuf(c)
			}
			return false
		case n == 0 && err == nil && c.start < c.end && nextRequestTooShort(c.served, c.end-c.start):
			l.closeConn(c, nil)
			return false
		case n == 0 && err == nil && c.start < c.end:
			// The client ended its side in the middle of a head: net/http
			// answers that (400), as it would without the front.
			l.handOff(c)
			return false
		case err != nil || n <= 0:
			l.closeConn(c, nil)
			return false
		}
		if c.start == c.end {
			// The first bytes of a request: the idle deadline gives way
			// to the head's.
			c.deadline = l.s.headDeadline(time.Now())
		}
		c.drained = n < len(c.buf)-c.end && !c.peerDone
		c.end += n
		return true
	}
}

// request answers the head of n bytes at c.start: at once when it can, on
// a goroutine when the answer may block, or by net/http.
func (l *loop) request(c *lconn, n int) {
	began := time.Now()
	req, ok := parseHead(c.buf[c.start : c.start+n])
	if !ok {
		l.handOff(c)
		return
	}
	req.Remote, req.Secure = c.remote, l.s.Secure
	instant := l.s.Instant
	if instant == nil {
		instant = l.s.Respond
	}
	resp, ok := instant(req)
	if ok {
		c.start += n
		l.startResponse(c, req.Head, resp, began)
		return
	}
	if l.s.Instant == nil {
		l.handOff(c)
		return
	}
	c.busy = true
	c.deadline = time.Time{} // the responder bounds its own waits
	go func() {
		cp := &completion{c: c, head: req.Head, headLen: n, began: began}
		defer func() {
			if v := recover(); v != nil {
				cp.panic = v
				l.logf("fastpath: panic serving %s: %v\n%s", c.remote, v, debug.Stack())
			}
			l.post(cp)
		}()
		cp.resp, cp.ok = l.s.Respond(req)
	}()
}

// complete writes a response a goroutine computed, or hands off.
func (l *loop) complete(cp *completion) {
	c := cp.c
	c.busy = false
	switch {
	case c.closed:
		if cp.resp.File != nil {
			cp.resp.File.Close()
		}
		return
	case cp.panic != nil:
		l.closeConn(c, errors.New("panic"))
		return
	case !cp.ok:
		l.handOff(c)
		return
	}
	l.s.waited.Add(1)
	c.start += cp.headLen
	l.startResponse(c, cp.head, cp.resp, cp.began)
	l.service(c, unix.EPOLLIN)
}

// startResponse lays out resp for flush.
func (l *loop) startResponse(c *lconn, head bool, resp Response, began time.Time) {
	c.served = true
	l.s.answered.Add(1)
	size := resp.size()
	c.out = appendHead(c.out[:0], resp, size, began, l.s.ExtraHeader)
	c.headBytes = int64(len(c.out))
	c.outOff, c.written = 0, 0
	c.writing, c.began, c.done = true, began, resp.Done
	c.deadline = deadline(began, l.s.HTTP.WriteTimeout)
	switch {
	case head || size == 0:
		if resp.File != nil {
			resp.File.Close()
		}
	case resp.Body != nil && len(c.out)+len(resp.Body) <= smallBody:
		c.out = append(c.out, resp.Body...)
	case resp.Body != nil:
		c.body, c.bodyOff = resp.Body, 0
	default:
		c.file, c.fileFD, c.fileOff, c.fileEnd = resp.File, int(resp.File.Fd()), 0, size
		c.corked = unix.SetsockoptInt(c.fd, unix.IPPROTO_TCP, unix.TCP_CORK, 1) == nil
	}
}

// flush writes as much of the pending response as the socket takes; done
// reports it all written.
func (l *loop) flush(c *lconn) (done bool, err error) {
	for {
		var n int
		switch {
		case c.outOff < len(c.out) && c.bodyOff < len(c.body):
			n, err = writev(c.fd, c.out[c.outOff:], c.body[c.bodyOff:])
			if n > 0 {
				head := min(n, len(c.out)-c.outOff)
				c.outOff += head
				c.bodyOff += n - head
			}
		case c.outOff < len(c.out):
			n, err = rawWrite(c.fd, c.out[c.outOff:])
			if n > 0 {
				c.outOff += n
			}
		case c.bodyOff < len(c.body):
			n, err = rawWrite(c.fd, c.body[c.bodyOff:])
			if n > 0 {
				c.bodyOff += n
			}
		case c.file != nil && c.fileOff < c.fileEnd:
			n, err = unix.Sendfile(c.fd, c.fileFD, &c.fileOff, int(min(c.fileEnd-c.fileOff, 1<<30)))
			if n == 0 && err == nil {
				err = io.ErrUnexpectedEOF // the file shrank: the connection must not be reused
			}
		default:
			return true, nil
		}
		if n > 0 {
			c.written += int64(n)
			l.sent += n
		}
		switch {
		case errors.Is(err, unix.EAGAIN):
			return false, nil
		case errors.Is(err, unix.EINTR):
		case err != nil:
			return false, err
		}
	}
}

// finish ends the response in flight, reporting it to its Done.
func (l *loop) finish(c *lconn, err error) {
	if !c.writing {
		return
	}
	now := time.Now()
	if c.file != nil {
		if c.corked {
			unix.SetsockoptInt(c.fd, unix.IPPROTO_TCP, unix.TCP_CORK, 0)
		}
		c.file.Close()
	}
	done, sent := c.done, max(0, c.written-c.headBytes)
	c.writing, c.done, c.body, c.file, c.corked = false, nil, nil, nil, false
	if cap(c.out) > 8<<10 {
		c.out = nil // a small body copied behind its head: not worth keeping per connection
	}
	if err == nil {
		if c.start == c.end {
			c.deadline = deadline(now, l.s.HTTP.IdleTimeout)
		} else {
			c.deadline = l.s.headDeadline(now)
		}
	}
	if done != nil {
		done(sent, now.Sub(c.began), err)
	}
}

var errTimeout = errors.New("fastpath: deadline exceeded")

func (l *loop) closeConn(c *lconn, err error) {
	if c.closed {
		return
	}
	if err == nil {
		err = net.ErrClosed
	}
	l.finish(c, err)
	unix.Close(c.fd) // also takes it out of the epoll set
	l.detach(c)
	c.release()
}

// detach forgets c (closed or handed off).
func (l *loop) detach(c *lconn) {
	c.closed = true
	l.putBuf(c)
	h := l.h
	h.slotMu.Lock()
	h.slots[c.id] = nil
	h.free = append(h.free, c.id)
	h.slotMu.Unlock()
	h.live.Add(-1)
	l.s.open.Add(-1)
}

// handOff gives c, with the bytes it has buffered, to net/http.
func (l *loop) handOff(c *lconn) {
	prefix := append([]byte(nil), c.buf[c.start:c.end]...)
	unix.EpollCtl(l.h.ep, unix.EPOLL_CTL_DEL, c.fd, nil)
	f := os.NewFile(uintptr(c.fd), "")
	nc, err := net.FileConn(f) // a duplicate, in Go's poller
	f.Close()
	l.detach(c)
	if err != nil {
		l.logf("fastpath: hand-off of %s: %v", c.remote, err)
		c.release()
		return
	}
	// The Go connection now holds the socket, and its place.
	go l.s.handOff(connlimit.Wrap(nc, c.release), prefix)
}

// release closes the hub's descriptors, once every loop has exited (no
// goroutine writes to the eventfds after: signal checks exited).
func (h *hub) release() {
	for _, fd := range []int{h.ep, h.wake, h.stop} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

func (l *loop) getBuf() []byte {
	if k := len(l.bufs); k > 0 {
		b := l.bufs[k-1]
		l.bufs = l.bufs[:k-1]
		return b
	}
	return make([]byte, headBuffer)
}

// putBuf returns an emptied buffer to the loop: idle connections hold none.
func (l *loop) putBuf(c *lconn) {
	if c.buf == nil {
		return
	}
	if len(l.bufs) < 256 {
		l.bufs = append(l.bufs, c.buf)
	}
	c.buf, c.start, c.end = nil, 0, 0
}

func (l *loop) logf(format string, args ...any) {
	if l.s.HTTP.ErrorLog != nil {
		l.s.HTTP.ErrorLog.Printf(format, args...)
	}
}

// writev writes a and then b with one system call.
func writev(fd int, a, b []byte) (int, error) {
	iov := [2]unix.Iovec{{Base: &a[0]}, {Base: &b[0]}}
	iov[0].SetLen(len(a))
	iov[1].SetLen(len(b))
	return rawResult(unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), 2))
}

// Socket reads and writes on a loop are raw system calls, for the reason
// given at wait: the loops' sockets are non-blocking, so these calls never
// sleep and the runtime needs no notice of them. sendfile stays a plain
// system call because it may wait for the disk.

// rawRead is read(2) on a non-blocking socket.
func rawRead(fd int, p []byte) (int, error) {
	return rawResult(unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p))))
}

// rawWrite is write(2) on a non-blocking socket.
func rawWrite(fd int, p []byte) (int, error) {
	return rawResult(unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(p))), uintptr(len(p))))
}

// rawResult turns a raw system call's return into a count and an error
// (0 with the error when it failed).
func rawResult(n, _ uintptr, e unix.Errno) (int, error) {
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
