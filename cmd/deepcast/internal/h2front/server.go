// Package h2front is deepcast's HTTP/2 server for TLS connections that
// chose "h2" by ALPN. Plain media requests (what the HTTP/1.1 fast path
// answers: GET or HEAD of a media path, no range, condition or body) are
// answered on the connection's own goroutine with the same Responder as
// the fast path, their HEADERS and DATA frames leaving in one write; every
// other request goes to an http.Handler on a goroutine of its own, as in
// net/http.
//
// Why not net/http's HTTP/2 server: it flushes a response's HEADERS frame
// before its handler's DATA, so every small answer costs two TLS records
// and two write(2) calls, and each stream a goroutine, channels and a
// Request. Profiled on 2 KiB segments over h2load it reached half of
// nginx's rate with a third of its CPU in write syscalls. This server
// keeps HTTP/2's rules (RFC 9113: stream states, flow control both ways,
// SETTINGS, GOAWAY, HPACK through golang.org/x/net's Framer and hpack
// packages) and is checked against h2spec in the tests.
package h2front

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deepcast/deepcast/cmd/deepcast/internal/fastpath"
)

// Server serves HTTP/2 on connections whose TLS handshake chose "h2".
type Server struct {
	// Handler answers what Instant and Respond do not.
	Handler http.Handler
	// Respond answers plain media requests (see fastpath.Request); it
	// reports false to leave a request to Handler. Nil leaves all to
	// Handler.
	Respond fastpath.Responder
	// Instant, when set, answers like Respond but only what it can
	// without waiting; it runs on the connection's goroutine, and what it
	// declines goes to Respond on a goroutine of its own. When nil,
	// Respond runs on the connection's goroutine and must never wait.
	Instant fastpath.Responder
	// Claims, when set, reports whether Respond is meant for q at all.
	Claims func(q fastpath.Request) bool
	// ExtraHeader holds header lines (each ending in CRLF) added to the
	// answers of Instant and Respond (Alt-Svc, HSTS); Handler adds its
	// own.
	ExtraHeader []byte

	ReadHeaderTimeout time.Duration // preface and first SETTINGS
	// ReadTimeout bounds reading a request's body (a handler may extend
	// it with http.ResponseController).
	ReadTimeout time.Duration
	// WriteTimeout bounds each write to the connection and each wait for
	// flow-control credit.
	WriteTimeout time.Duration
	IdleTimeout  time.Duration // a connection without streams is closed after it
	// MaxHeaderBytes bounds a request's header list (SETTINGS_MAX_HEADER_LIST_SIZE).
	MaxHeaderBytes int
	// MaxConcurrentStreams is advertised and enforced; 0 means 250.
	MaxConcurrentStreams uint32
	Log                  *slog.Logger

	mu       sync.Mutex
	conns    map[*conn]struct{}
	lns      []net.Listener
	shutting atomic.Bool
	wg       sync.WaitGroup

	conncount, answered, handled, streams atomic.Int64
}

// Stats are the server's own figures, for metrics.
type Stats struct {
	Open     int64 // connections open now
	Streams  int64 // streams opened, since the start
	Answered int64 // streams answered by Instant or Respond
	Handled  int64 // streams answered by Handler
}

// Stats returns the server's figures so far.
func (s *Server) Stats() Stats {
	return Stats{Open: s.conncount.Load(), Streams: s.streams.Load(), Answered: s.answered.Load(), Handled: s.handled.Load()}
}

// Serve serves each connection ln accepts until Shutdown or Close; it
// returns http.ErrServerClosed then, or the accept error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	var backoff fastpath.AcceptBackoff
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return http.ErrServerClosed
			}
			if backoff.Retry(err) {
				continue
			}
			return err
		}
		backoff.Reset()
		go s.ServeConn(c)
	}
}

// ServeConn serves HTTP/2 on c, whose TLS handshake (if any) is done,
// until the peer leaves, an error or Shutdown; it closes c.
func (s *Server) ServeConn(nc net.Conn) {
	if tc, ok := nc.(*tls.Conn); ok {
		// A no-op when the listener already did it.
		timeout := s.ReadHeaderTimeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		tc.SetDeadline(time.Now().Add(timeout))
		err := tc.Handshake()
		tc.SetDeadline(time.Time{})
		if err != nil {
			nc.Close()
			return
		}
	}
	c := newConn(s, nc)
	s.mu.Lock()
	if s.shutting.Load() {
		s.mu.Unlock()
		nc.Close()
		return
	}
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.conncount.Add(1)
	defer func() {
		s.conncount.Add(-1)
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.wg.Done()
	}()
	c.serve()
}

// Shutdown stops accepting, tells every connection to go away (GOAWAY:
// the streams it has are served, no new ones taken) and waits for them
// to finish until ctx ends, when it closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	for _, c := range s.stop() {
		c.goAway()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	for _, c := range s.stop() {
		c.close(errors.New("server closed"))
	}
	return nil
}

// stop closes the listeners and returns the connections open now.
func (s *Server) stop() []*conn {
	s.shutting.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ln := range s.lns {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s *Server) maxStreams() uint32 {
	if s.MaxConcurrentStreams == 0 {
		return 250
	}
	return s.MaxConcurrentStreams
}

func (s *Server) maxHeaderBytes() uint32 {
	if s.MaxHeaderBytes <= 0 {
		return http.DefaultMaxHeaderBytes
	}
	return uint32(s.MaxHeaderBytes)
}
