//go:build linux

package fastpath

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Event loops: why. With a goroutine per connection, a request's bytes
// wake the Go netpoller, which readies the goroutine, which waits for a P
// behind every other ready goroutine; on 2 cores with 64 busy connections
// that queueing is what made the latency tail (p99 of 2 KiB answers 7-8 ms
// against nginx's 4-6 ms, measured here with otherwise identical servers).
// A loop per core that owns its connections' readiness (epoll, edge
// triggered) answers each ready connection in turn with no scheduling in
// between: p99 3.4-4.9 ms in the same measurement. Requests a loop cannot
// answer at once (a cache miss that waits for the upstream) run on a
// goroutine and the loop writes their response when it is ready, so no
// connection ever waits for another's upstream.

// loopsSupported reports whether this platform has the event loops.
const loopsSupported = true

// loop is one event loop: an epoll instance on a locked OS thread and the
// connections it owns. Only the loop's goroutine touches its connections;
// other goroutines talk to it through inbox and the eventfd.
type loop struct {
	s    *Server
	ep   int
	wake int // eventfd: inbox has work, or the server is stopping

	mu       sync.Mutex
	inbox    []accepted    // sockets to adopt
	finished []*completion // responses computed off the loop
	exited   bool

	slots  []*lconn // by id, the epoll event's data
	free   []int32  // unused ids
	live   int
	ready  []*lconn // connections with buffered requests left for later, for fairness
	bufs   [][]byte // spare head buffers
	events []unix.EpollEvent
}

// lconn is a connection owned by a loop.
type lconn struct {
	fd     int
	id     int32
	remote string
	closed bool
	busy   bool // a goroutine is computing its response
	// drained: the last read came back short, so the socket had nothing
	// more; the next read would only get EAGAIN until an event says bytes
	// came (edge-triggered epoll reports every arrival after the read).
	// Saves a read(2) per request.
	drained bool

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
	fd     int
	remote string
	prefix []byte // bytes read before: a request net/http gave back
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
	// fairBudget bounds the requests one connection gets answered before
	// the loop turns to the others.
	fairBudget = 16
)

func newLoop(s *Server) (*loop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(ep)
		return nil, err
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeID}); err != nil {
		unix.Close(ep)
		unix.Close(wake)
		return nil, err
	}
	return &loop{s: s, ep: ep, wake: wake, events: make([]unix.EpollEvent, 256)}, nil
}

// startLoops makes n loops, or none when the platform refuses.
func (s *Server) startLoops(n int) error {
	for range n {
		l, err := newLoop(s)
		if err != nil {
			return err
		}
		s.mu.Lock() // Close and Shutdown read the loops from other goroutines
		s.loops = append(s.loops, l)
		s.mu.Unlock()
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
	tc, ok := c.(*net.TCPConn)
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
	tc.Close() // the socket lives on in fd
	l := s.loops[s.next.Add(1)%uint64(len(s.loops))]
	l.mu.Lock()
	if l.exited {
		l.mu.Unlock()
		unix.Close(fd)
		return true
	}
	l.inbox = append(l.inbox, accepted{fd: fd, remote: remote, prefix: prefix})
	l.signal()
	l.mu.Unlock()
	return true
}

// wakeUp makes the loop look at its inbox and the server's state.
func (l *loop) wakeUp() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.signal()
}

// signal writes the eventfd; l.mu must be held. Once the loop has exited
// its eventfd is closed and the number may belong to another file by now,
// so nothing is written then.
func (l *loop) signal() {
	if l.exited {
		return
	}
	one := [8]byte{1}
	unix.Write(l.wake, one[:]) // EAGAIN only when the counter is full: it is awake anyway
}

// post hands a computed response to the loop; if the loop is gone the
// response is dropped here.
func (l *loop) post(cp *completion) {
	l.mu.Lock()
	if l.exited {
		l.mu.Unlock()
		if cp.resp.File != nil {
			cp.resp.File.Close()
		}
		return
	}
	l.finished = append(l.finished, cp)
	l.signal()
	l.mu.Unlock()
}

func (l *loop) run() {
	defer l.s.wg.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer addProcs(-1) // startLoops added it
	tick := sweepInterval(l.s)
	nextSweep := time.Now().Add(tick)
	busy := false
	for {
		// Rounded up: rounded down, the last millisecond before a sweep
		// was spent in epoll_wait(0) calls, about 500 of them per sweep.
		wait := max(0, int((time.Until(nextSweep)+time.Millisecond-1)/time.Millisecond))
		switch {
		case len(l.ready) > 0:
			wait = 0
		case l.live == 0:
			wait = -1 // no deadlines to keep: sleep until the eventfd
		}
		n, err := l.wait(wait, busy)
		busy = n > 0
		if err != nil && !errors.Is(err, unix.EINTR) {
			l.logf("fastpath: epoll_wait: %v", err)
			l.closeAll()
			return
		}
		for _, ev := range l.events[:max(n, 0)] {
			if ev.Fd == wakeID {
				var b [8]byte
				rawRead(l.wake, b[:])
				continue
			}
			if c := l.slots[ev.Fd]; c != nil {
				l.service(c, ev.Events)
			}
		}
		if len(l.ready) > 0 {
			ready := l.ready
			l.ready = nil
			for _, c := range ready {
				l.service(c, unix.EPOLLIN)
			}
		}
		if l.takeInbox() {
			return
		}
		if now := time.Now(); !now.Before(nextSweep) {
			l.sweep(now)
			nextSweep = now.Add(tick)
		}
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
func (l *loop) wait(ms int, busy bool) (int, error) {
	if !busy || ms < 0 {
		return unix.EpollWait(l.ep, l.events, ms)
	}
	return rawResult(unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(l.ep), uintptr(unsafe.Pointer(&l.events[0])),
		uintptr(len(l.events)), uintptr(ms), 0, 0))
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

// takeInbox adopts new sockets and writes finished responses; it reports
// true when the loop is done (server closed, or shut down with nothing
// left in flight).
func (l *loop) takeInbox() bool {
	inbox, finished := l.take(false)
	for _, a := range inbox {
		l.add(a)
	}
	for _, cp := range finished {
		l.complete(cp)
	}
	if l.s.closing.Load() {
		l.closeAll()
		return true
	}
	if l.s.shutting.Load() {
		for _, c := range l.slots {
			if c != nil && l.idle(c) {
				l.closeConn(c, nil)
			}
		}
		if l.live == 0 {
			l.mu.Lock()
			done := len(l.inbox) == 0 && len(l.finished) == 0
			if done {
				l.exited = true
			}
			l.mu.Unlock()
			if done {
				l.release()
				return true
			}
		}
	}
	return false
}

func (l *loop) add(a accepted) {
	fd := a.fd
	if l.s.shutting.Load() {
		unix.Close(fd)
		return
	}
	c := &lconn{fd: fd, remote: a.remote}
	if k := len(l.free); k > 0 {
		c.id, l.free = l.free[k-1], l.free[:k-1]
		l.slots[c.id] = c
	} else {
		c.id = int32(len(l.slots))
		l.slots = append(l.slots, c)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: c.id}
	if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		l.slots[c.id] = nil
		l.free = append(l.free, c.id)
		unix.Close(fd)
		return
	}
	l.live++
	l.s.open.Add(1)
	c.deadline = deadline(time.Now(), firstPositive(l.s.HTTP.ReadHeaderTimeout, l.s.HTTP.ReadTimeout, l.s.HTTP.IdleTimeout))
	if len(a.prefix) > 0 {
		c.buf = l.getBuf()
		c.end = copy(c.buf, a.prefix)
		c.deadline = l.s.headDeadline(time.Now())
	}
	l.service(c, unix.EPOLLIN) // bytes may have arrived before registration
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
		if n := headEnd(c.buf[c.start:c.end]); n >= 0 {
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
		case err != nil || n <= 0:
			l.closeConn(c, nil)
			return false
		}
		if c.start == c.end {
			// The first bytes of a request: the idle deadline gives way
			// to the head's.
			c.deadline = l.s.headDeadline(time.Now())
		}
		c.drained = n < len(c.buf)-c.end
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
	req.Remote = c.remote
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
	l.s.answered.Add(1)
	size := resp.size()
	c.out = appendHead(c.out[:0], resp, size, began)
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

// sweep closes connections past their deadline.
func (l *loop) sweep(now time.Time) {
	for _, c := range l.slots {
		if c != nil && !c.busy && !c.deadline.IsZero() && now.After(c.deadline) {
			l.s.timedOut.Add(1)
			l.closeConn(c, errTimeout)
		}
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
}

// detach forgets c (closed or handed off).
func (l *loop) detach(c *lconn) {
	c.closed = true
	l.putBuf(c)
	l.slots[c.id] = nil
	l.free = append(l.free, c.id)
	l.live--
	l.s.open.Add(-1)
}

// handOff gives c, with the bytes it has buffered, to net/http.
func (l *loop) handOff(c *lconn) {
	prefix := append([]byte(nil), c.buf[c.start:c.end]...)
	unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, c.fd, nil)
	f := os.NewFile(uintptr(c.fd), "")
	nc, err := net.FileConn(f) // a duplicate, in Go's poller
	f.Close()
	l.detach(c)
	if err != nil {
		l.logf("fastpath: hand-off of %s: %v", c.remote, err)
		return
	}
	go l.s.handOff(nc, prefix)
}

// take empties the inbox; with exit set no more arrives after.
func (l *loop) take(exit bool) (inbox []accepted, finished []*completion) {
	l.mu.Lock()
	defer l.mu.Unlock()
	inbox, finished = l.inbox, l.finished
	l.inbox, l.finished = nil, nil
	l.exited = l.exited || exit
	return inbox, finished
}

// closeAll closes every connection and ends the loop.
func (l *loop) closeAll() {
	for _, c := range l.slots {
		if c != nil {
			l.closeConn(c, net.ErrClosed)
		}
	}
	inbox, finished := l.take(true)
	for _, a := range inbox {
		unix.Close(a.fd)
	}
	for _, cp := range finished {
		if cp.resp.File != nil {
			cp.resp.File.Close()
		}
	}
	l.release()
}

// release closes the loop's own descriptors, once it has exited (no
// goroutine writes to the eventfd after: signal checks exited).
func (l *loop) release() {
	unix.Close(l.ep)
	unix.Close(l.wake)
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
