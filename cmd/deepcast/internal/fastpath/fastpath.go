// Package fastpath is the HTTP/1.1 front of deepcast's servers. It answers
// the requests that make up nearly all of a video server's traffic (plain
// GET and HEAD of a media path, no range, no conditions, no body) straight
// from the connection, and hands every other connection, with the bytes it
// has already read, to a net/http Server.
//
// Why: net/http spends per request a goroutine for its background read, a
// Request and header map, and deadline bookkeeping; on small objects that
// cost nginx's throughput by a quarter on this hardware. The front parses
// only what it can answer and is strict about it: anything unusual (another
// method or version, escapes in the path, a range or conditional, a body, Connection
// options, obs-fold, control bytes, a head larger than its buffer) goes to
// net/http untouched, so HTTP semantics beyond the hot path stay net/http's.
// A connection handed over comes back when net/http has answered and the
// next request is one the front takes (see handoff.go).
//
// On Linux the connections the front keeps are served by epoll event loops
// (see loop_linux.go for why); elsewhere, or with Server.Loops < 0, each
// gets a goroutine.
package fastpath

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Response is a whole response the front writes for a Responder.
type Response struct {
	Status int // 200 when zero
	// Header holds the header lines, each ending in CRLF, without the
	// status line, Date and Content-Length, which the front adds.
	Header []byte
	Body   []byte
	// File is the body when Body is nil: Size bytes from its start, sent
	// with sendfile. The front closes it.
	File *os.File
	Size int64
	// Done, when set, is called once the response is written (or failed),
	// with the body bytes sent and how long the request took.
	Done func(sent int64, elapsed time.Duration, err error)
}

// size is the body's length: Body's, or Size bytes of File.
func (r Response) size() int64 {
	if r.Body == nil && r.File != nil {
		return r.Size
	}
	return int64(len(r.Body))
}

// Request is a plain GET or HEAD the front parsed.
type Request struct {
	Head bool // HEAD: the answer has no body
	// Path holds only unreserved characters (RFC 3986) and slashes: no
	// escapes, so it needs no decoding and cannot hide a "/" or "..".
	Path string
	// Query is what followed "?", or "": RFC 3986 query characters and
	// well-formed percent escapes only. Players put CMCD here
	// (CMCD=...), so the front takes it rather than leave every such
	// request to net/http.
	Query  string
	Remote string // the client's address
	Host   string // the Host header (HTTP/1.1) or :authority (HTTP/2)
	Secure bool   // the connection is TLS (Server.Secure)
	// Token is the CTA-Common-Access-Token header and Cookie the Cookie
	// header(s), for an edge that checks access tokens; "" when absent.
	Token, Cookie string
	// Loop is the CDN-Loop header(s) (RFC 8586) joined with ", ", for an
	// edge that must not send a request round a loop of caches; "" when
	// absent.
	Loop string
	// AcceptEncoding is the Accept-Encoding header(s) joined with ", ",
	// for a responder that compresses; "" when absent.
	AcceptEncoding string
}

// Responder answers a Request. It reports false to let net/http answer
// instead; it must then have had no effect.
type Responder func(Request) (Response, bool)

// headBuffer bounds a request head the front parses itself; a larger head
// goes to net/http, which applies MaxHeaderBytes.
const headBuffer = 4096

// Server is the front. Respond and HTTP must be set; HTTP's ReadTimeout,
// ReadHeaderTimeout, WriteTimeout and IdleTimeout bound the front too.
type Server struct {
	Respond Responder
	// Claims, when set, reports whether Respond is meant for requests like
	// q (the media paths, say): the front takes a handed-off connection
	// back from net/http only for a request it claims. Nil claims every
	// request the front can parse.
	Claims func(q Request) bool
	// Instant, when set, answers like Respond but only what it can answer
	// without waiting (no network I/O): the event loops call it, and give
	// what it declines to Respond on a goroutine. When nil, Respond itself
	// must never wait.
	Instant Responder
	HTTP    *http.Server
	// Loops is the number of event loops (Linux): 0 means two per CPU, a
	// negative number none, i.e. a goroutine per connection.
	Loops int
	// ExtraHeader, when set, is header lines (each ending in CRLF) added
	// to every answer the front writes (Alt-Svc and HSTS over TLS).
	ExtraHeader []byte
	// Secure marks the front's connections as TLS: its Requests say so
	// (a token may be for https only).
	Secure bool

	mu       sync.Mutex
	conns    map[*conn]struct{}
	ln       net.Listener
	handoff  *ConnListener
	shutting atomic.Bool
	closing  atomic.Bool
	wg       sync.WaitGroup
	loops    []*loop
	hub      *hub // what the loops share

	open, handedOff, takenBack, answered, waited, timedOut, acceptRetries atomic.Int64
}

// Stats are the front's own figures, for metrics.
type Stats struct {
	Open      int64 // connections the front holds now
	HandedOff int64 // connections given to net/http, since the start
	TakenBack int64 // handed-off connections the front took back from net/http
	Answered  int64 // requests the front answered itself, since the start
	Waited    int64 // answers a loop had Respond compute on a goroutine (Instant declined, Respond answered)
	TimedOut  int64 // connections closed by a deadline
	// AcceptRetries counts accepts that failed and were retried after a
	// pause (out of file descriptors, mostly).
	AcceptRetries int64
}

// Stats returns the front's figures so far.
func (s *Server) Stats() Stats {
	return Stats{Open: s.open.Load(), HandedOff: s.handedOff.Load(), TakenBack: s.takenBack.Load(), Answered: s.answered.Load(), Waited: s.waited.Load(), TimedOut: s.timedOut.Load(), AcceptRetries: s.acceptRetries.Load()}
}

// Connection states, for shutdown: only idle connections may be closed.
const (
	stateIdle int32 = iota
	stateActive
	stateClosed
)

type conn struct {
	net.Conn
	state  atomic.Int32
	prefix []byte // read from the socket before the front took it
}

// Serve accepts connections on ln until Shutdown or Close; it returns
// http.ErrServerClosed then, or the accept error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	// Shutdown or Close may come first (a SIGINT as the node starts):
	// they set shutting before they look for a listener to close, so
	// one found unset here would never be closed, and Accept would wait
	// for ever.
	if s.shutting.Load() {
		s.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	s.ln = ln
	s.conns = map[*conn]struct{}{}
	s.handoff = NewConnListener(ln.Addr())
	s.mu.Unlock()
	if n := s.Loops; loopsSupported && n >= 0 {
		if n == 0 {
			n = DefaultLoops()
		}
		if err := s.startLoops(n); err != nil {
			s.stopLoops()
			return fmt.Errorf("fastpath: event loops: %w", err)
		}
	}
	// Handed-off connections learn from net/http when it waits for their
	// next request: the moment the front may take them back.
	prev := s.HTTP.ConnState
	s.HTTP.ConnState = func(c net.Conn, st http.ConnState) {
		if h, ok := c.(*handedConn); ok {
			h.state.Store(int32(st))
		}
		if prev != nil {
			prev(c, st)
		}
	}
	go s.HTTP.Serve(s.handoff) // returns when Shutdown or Close closes the handoff listener
	var backoff AcceptBackoff
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return http.ErrServerClosed
			}
			// Out of file descriptors (or a connection gone before it
			// was accepted): back off and keep serving, as net/http
			// does; the connections already open go on.
			if RetryableAccept(err) && backoff.First() && s.HTTP.ErrorLog != nil {
				s.HTTP.ErrorLog.Printf("fastpath: accept: %v; backing off", err)
			}
			if backoff.Retry(err) {
				s.acceptRetries.Add(1)
				continue
			}
			s.handoff.Close()
			s.stopLoops()
			return err
		}
		backoff.Reset()
		if !s.take(c, nil) {
			return http.ErrServerClosed
		}
	}
}

// AcceptBackoff paces an accept loop through the errors of
// RetryableAccept: a pause that doubles from 5 ms to a second while they
// last.
type AcceptBackoff struct{ delay time.Duration }

// Retry sleeps and reports true for an error the loop outlives; false
// for any other.
func (b *AcceptBackoff) Retry(err error) bool {
	if !RetryableAccept(err) {
		return false
	}
	b.delay = min(max(2*b.delay, 5*time.Millisecond), time.Second)
	time.Sleep(b.delay)
	return true
}

// First reports whether no pause is under way (the loop's first failure:
// the one to log).
func (b *AcceptBackoff) First() bool { return b.delay == 0 }

// Reset is called after an accept succeeds.
func (b *AcceptBackoff) Reset() { b.delay = 0 }

// RetryableAccept reports the accept errors a server outlives: a full
// file table (EMFILE, ENFILE), no memory for a socket (ENOBUFS, ENOMEM),
// a connection reset before it was accepted (ECONNABORTED), a timeout.
// Every accept loop of deepcast's servers backs off on these and goes on.
func RetryableAccept(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR, syscall.EAGAIN} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// take starts serving c, whose first bytes, already read, are prefix: on a
// loop when there are loops, else on a goroutine. It reports false, having
// closed c, when the server is shutting down.
func (s *Server) take(c net.Conn, prefix []byte) bool {
	if s.adopt(c, prefix) {
		return true
	}
	fc := &conn{Conn: c, prefix: prefix}
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		c.Close()
		return false
	}
	s.conns[fc] = struct{}{}
	s.open.Add(1)
	s.wg.Add(1)
	s.mu.Unlock()
	go s.serveConn(fc)
	return true
}

// DefaultLoops is the number of event loops a Server runs when Loops is
// 0: two per CPU, or none where the platform has no loops. Measured when
// each loop still owned its connections (a preempted loop then stalled all
// of them; now the loops share readiness, see loop_linux.go) with 2 KiB
// hits, wrk -t2 -c64 on the same 2 cores, three interleaved rounds: p99
// 4.1-5.7 ms with one loop per CPU, 3.1-4.7 ms with two, the same req/s;
// four per CPU cut req/s by a fifth for no further gain. Not measured again
// since the loops share readiness.
func DefaultLoops() int {
	if !loopsSupported {
		return 0
	}
	return 2 * runtime.NumCPU()
}

// Shutdown stops accepting, closes idle connections, lets in-flight
// responses finish until ctx ends, and shuts the net/http server down too.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutting.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	s.mu.Unlock()
	herr := s.HTTP.Shutdown(ctx)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s.closeIdle()
		select {
		case <-done:
			return herr
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes the listener and every connection at once.
func (s *Server) Close() error {
	s.shutting.Store(true)
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close()
	}
	for c := range s.conns {
		c.state.Store(stateClosed)
		c.Close()
	}
	s.mu.Unlock()
	s.stopLoops()
	return s.HTTP.Close()
}

// stopLoops makes the event loops close their connections and exit.
func (s *Server) stopLoops() {
	s.closing.Store(true)
	s.wakeLoops()
}

// wakeLoops makes a loop look at the server's state (the loops share it):
// a stopping server's connections are closed, a shutting one's idle ones.
func (s *Server) wakeLoops() {
	s.mu.Lock()
	h := s.hub
	s.mu.Unlock()
	if h != nil {
		h.wakeUp()
	}
}

func (s *Server) closeIdle() {
	s.wakeLoops()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			c.Close()
		}
	}
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.open.Add(-1)
	s.wg.Done()
}

// serveConn answers requests on c until it closes, errs, or is handed off.
func (s *Server) serveConn(c *conn) {
	defer s.forget(c)
	defer func() {
		// As net/http does: a panic in a Responder costs its connection,
		// not the process.
		// Logged before the close, so the log line exists by the time the
		// client sees the connection end.
		if v := recover(); v != nil {
			if s.HTTP.ErrorLog != nil {
				s.HTTP.ErrorLog.Printf("fastpath: panic serving %s: %v\n%s", c.RemoteAddr(), v, debug.Stack())
			}
			c.Close()
		}
	}()
	buf := make([]byte, headBuffer)
	remote := c.RemoteAddr().String()
	last := time.Now() // end of the last response, for the idle deadline
	served := false    // an answer went out: what follows is not the first request
	var out []byte     // response head scratch, reused
	start, end := 0, copy(buf, c.prefix)
	for {
		if start == end {
			start, end = 0, 0
		}
		idle := start == end
		if idle {
			// Between requests the connection is idle, which Shutdown may
			// close; a closed state stays closed.
			if s.shutting.Load() || c.state.Load() == stateClosed {
				c.Close()
				return
			}
			c.state.CompareAndSwap(stateActive, stateIdle)
			c.SetReadDeadline(deadline(last, s.HTTP.IdleTimeout))
		}
		// Read until the buffer holds a whole head.
		headLen := nextHead(buf[start:end], served)
		for headLen < 0 {
			if end == len(buf) {
				if start == 0 {
					s.handOff(c.Conn, buf[start:end]) // too large for us
					return
				}
				end = copy(buf, buf[start:end])
				start = 0
			}
			n, err := c.Read(buf[end:])
			if n > 0 && idle {
				if !c.state.CompareAndSwap(stateIdle, stateActive) {
					c.Close() // closed by Shutdown meanwhile
					return
				}
				idle = false
				c.SetReadDeadline(s.headDeadline(time.Now()))
			}
			end += n
			if err != nil {
				if errors.Is(err, io.EOF) && start < end && !nextRequestTooShort(served, end-start) {
					// The client ended its side in the middle of a
					// head: net/http answers that (400), as it would
					// without the front.
					s.handOff(c.Conn, buf[start:end])
					return
				}
				if errors.Is(err, os.ErrDeadlineExceeded) {
					s.timedOut.Add(1)
				}
				c.Close()
				return
			}
			headLen = nextHead(buf[start:end], served)
		}
		began := time.Now()
		req, ok := parseHead(buf[start : start+headLen])
		var resp Response
		if ok {
			req.Remote, req.Secure = remote, s.Secure
			resp, ok = s.Respond(req)
		}
		if !ok {
			s.handOff(c.Conn, buf[start:end])
			return
		}
		start += headLen
		s.answered.Add(1)
		c.SetWriteDeadline(deadline(began, s.HTTP.WriteTimeout))
		var sent int64
		var err error
		out, sent, err = writeResponse(c.Conn, out, req.Head, resp, began, s.ExtraHeader)
		served = true
		last = time.Now()
		if resp.Done != nil {
			resp.Done(sent, last.Sub(began), err)
		}
		if err != nil {
			c.Close()
			return
		}
	}
}

// nextHead is headEnd for the bytes of a connection's next request, or -1
// while net/http would still be waiting for them: after a first request it
// reads a next one only once 4 bytes have come (see nextRequestTooShort),
// so a blank line alone is no request to answer yet.
func nextHead(b []byte, served bool) int {
	if nextRequestTooShort(served, len(b)) {
		return -1
	}
	return headEnd(b)
}

// nextRequestTooShort reports whether net/http would close a connection
// whose client ended its side with n bytes of a request pending, without
// answering them: after its first request it waits for 4 bytes of the next
// before reading it (a Peek, so that no header timeout starts on an idle
// connection), and a client that stops short of those gets no 400. On the
// first request any bytes are answered.
func nextRequestTooShort(served bool, n int) bool { return served && n < 4 }

func firstPositive(ds ...time.Duration) time.Duration {
	for _, d := range ds {
		if d > 0 {
			return d
		}
	}
	return 0
}

// headDeadline is when a request head begun at now must be complete.
func (s *Server) headDeadline(now time.Time) time.Time {
	return deadline(now, firstPositive(s.HTTP.ReadHeaderTimeout, s.HTTP.ReadTimeout))
}

// deadline is now+d, or no deadline for d <= 0. Callers pass the time they
// already read: time.Now was 4% of the front's CPU when read per use.
func deadline(now time.Time, d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return now.Add(d)
}

// handOff gives c to the net/http server, replaying the bytes read so far;
// read becomes the hand-off's (callers are done with it).
func (s *Server) handOff(c net.Conn, read []byte) {
	s.handedOff.Add(1)
	c.SetDeadline(time.Time{})
	pc := &handedConn{Conn: c, s: s, buf: read, framing: true}
	s.handoff.Push(pc)
}

// writeResponse writes resp's head (into scratch, which it returns for
// reuse) and, unless head is set, its body. Small in-memory bodies share
// the head's write; larger ones go out with writev; files with sendfile,
// corked so the head and the file's first bytes share segments. (Corking
// writev too was measured: no gain in throughput and a longer latency tail.)
func writeResponse(c net.Conn, scratch []byte, head bool, resp Response, now time.Time, extra []byte) ([]byte, int64, error) {
	size := resp.size()
	if resp.File != nil {
		defer resp.File.Close()
	}
	b := appendHead(scratch[:0], resp, size, now, extra)
	switch {
	case head || size == 0:
		_, err := c.Write(b)
		return b, 0, err
	case resp.Body != nil && len(b)+len(resp.Body) <= smallBody:
		b = append(b, resp.Body...)
		_, err := c.Write(b)
		return b, size, err
	case resp.Body != nil:
		bufs := net.Buffers{b, resp.Body}
		n, err := bufs.WriteTo(c)
		return b, max(0, n-int64(len(b))), err
	}
	setCork(c, true)
	defer setCork(c, false)
	if _, err := c.Write(b); err != nil {
		return b, 0, err
	}
	rf, ok := c.(io.ReaderFrom)
	if !ok {
		n, err := io.Copy(c, io.LimitReader(resp.File, size))
		return b, n, err
	}
	n, err := rf.ReadFrom(io.LimitReader(resp.File, size))
	if err == nil && n < size {
		err = io.ErrUnexpectedEOF // the file shrank: the connection must not be reused
	}
	return b, n, err
}

// smallBody bounds the in-memory responses copied behind their head to go
// out in one write; larger bodies go out with writev, uncopied.
const smallBody = 16 << 10

// appendHead appends resp's status line and header block, with Date, the
// extra lines and the Content-Length size, to b.
func appendHead(b []byte, resp Response, size int64, now time.Time, extra []byte) []byte {
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(status)...)
	b = append(b, "\r\nDate: "...)
	b = appendDate(b, now)
	b = append(b, "\r\n"...)
	b = append(b, resp.Header...)
	b = append(b, extra...)
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, size, 10)
	return append(b, "\r\n\r\n"...)
}

// dateCache holds the Date header value for the current second.
var dateCache atomic.Pointer[cachedDate]

type cachedDate struct {
	unix int64
	text []byte
}

func appendDate(b []byte, now time.Time) []byte {
	d := dateCache.Load()
	if d == nil || d.unix != now.Unix() {
		d = &cachedDate{unix: now.Unix(), text: now.UTC().AppendFormat(nil, http.TimeFormat)}
		dateCache.Store(d)
	}
	return append(b, d.text...)
}

// ConnListener is a net.Listener of connections accepted elsewhere and
// pushed to it: the net/http server behind the front gets the connections
// the front hands over this way, and the TLS listener splits connections
// by protocol with two of them.
type ConnListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

// NewConnListener is a ConnListener reporting addr as its address.
func NewConnListener(addr net.Addr) *ConnListener {
	return &ConnListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// Push gives c to the next Accept, or closes it when the listener is
// closed.
func (l *ConnListener) Push(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

// Accept returns the next pushed connection, or net.ErrClosed.
func (l *ConnListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close makes Accept and Push stop.
func (l *ConnListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr is the address given at creation.
func (l *ConnListener) Addr() net.Addr { return l.addr }
