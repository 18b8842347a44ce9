package tlsserve

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// h3Server serves HTTP/3. It runs its own accept loops around http3's
// RawServerConn because http3.Server has no deadline for a request's
// HEADERS: a peer that opens streams and sends nothing on them (while its
// PINGs keep the connection alive) would hold a goroutine per stream for
// ever, where HTTP/1.1 and HTTP/2 end such a request after
// ReadHeaderTimeout. Here every request stream gets that deadline, and the
// handler's start replaces it with ReadTimeout for the body, as net/http
// does.
//
// What this costs: RawServerConn cannot send GOAWAY (http3.Server keeps
// its control stream to itself), so Shutdown refuses the streams that
// open after it with H3_REQUEST_REJECTED, which tells the client that
// nothing was processed and the request may be retried elsewhere.
type h3Server struct {
	srv           *http3.Server // settings and Handler; its own loops are unused
	tls           *tls.Config
	headerTimeout time.Duration
	readTimeout   time.Duration
	// admit counts a connection against its client's share (nil: no
	// limit); see Server.LimitQUIC.
	admit func(net.Addr) (release func(), ok bool)

	// grace ends when Shutdown starts.
	grace       context.Context
	graceCancel context.CancelFunc

	mu     sync.Mutex
	ln     *quic.Listener
	conns  map[*quic.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// newH3 makes the HTTP/3 server of h with base's limits and cfg's
// certificates.
func newH3(h http.Handler, base *http.Server, cfg *tls.Config, log *slog.Logger) *h3Server {
	hs := &h3Server{tls: http3.ConfigureTLSConfig(cfg), headerTimeout: base.ReadHeaderTimeout, readTimeout: base.ReadTimeout,
		conns: map[*quic.Conn]struct{}{}}
	hs.grace, hs.graceCancel = context.WithCancel(context.Background())
	hs.srv = &http3.Server{Handler: hs.bodyDeadline(h), MaxHeaderBytes: base.MaxHeaderBytes, IdleTimeout: base.IdleTimeout, Logger: log}
	return hs
}

// bodyDeadline replaces a request's HEADERS deadline with ReadTimeout for
// its body (a handler may extend it with http.ResponseController).
func (hs *h3Server) bodyDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d time.Time
		if hs.readTimeout > 0 {
			d = time.Now().Add(hs.readTimeout)
		}
		http.NewResponseController(w).SetReadDeadline(d)
		next.ServeHTTP(w, r)
	})
}

// serve accepts QUIC connections on udp until Shutdown or Close.
func (hs *h3Server) serve(udp net.PacketConn) error {
	ln, err := quic.Listen(udp, hs.tls, &quic.Config{})
	if err != nil {
		return err
	}
	hs.mu.Lock()
	if hs.closed {
		hs.mu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	hs.ln = ln
	hs.mu.Unlock()
	for {
		conn, err := ln.Accept(hs.grace)
		if err != nil {
			if hs.grace.Err() != nil || errors.Is(err, quic.ErrServerClosed) {
				return http.ErrServerClosed
			}
			return err
		}
		release := func() {}
		if hs.admit != nil {
			r, ok := hs.admit(conn.RemoteAddr())
			if !ok {
				conn.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeExcessiveLoad), "too many connections from this client")
				continue
			}
			release = r
		}
		hs.mu.Lock()
		if hs.closed {
			hs.mu.Unlock()
			release()
			conn.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "")
			continue
		}
		hs.conns[conn] = struct{}{}
		hs.wg.Add(1)
		hs.mu.Unlock()
		go func() {
			defer hs.wg.Done()
			defer release()
			hs.serveConn(conn)
			hs.mu.Lock()
			delete(hs.conns, conn)
			hs.mu.Unlock()
		}()
	}
}

// serveConn serves one connection's streams until the peer or Close ends
// it, or Shutdown has let its requests finish.
func (hs *h3Server) serveConn(conn *quic.Conn) {
	rc, err := hs.srv.NewRawServerConn(conn)
	if err != nil {
		conn.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeInternalError), "")
		return
	}
	go func() {
		for {
			str, err := conn.AcceptUniStream(conn.Context())
			if err != nil {
				return
			}
			go rc.HandleUnidirectionalStream(str)
		}
	}()
	var requests sync.WaitGroup
	for {
		str, err := conn.AcceptStream(hs.grace)
		if err != nil {
			break
		}
		if hs.headerTimeout > 0 {
			str.SetReadDeadline(time.Now().Add(hs.headerTimeout))
		}
		requests.Go(func() { rc.HandleRequestStream(str) })
	}
	if conn.Context().Err() != nil {
		requests.Wait()
		return
	}
	// Shutting down: refuse what opens now, until the requests under way
	// are done and their answers have left.
	refuse, stop := context.WithCancel(conn.Context())
	done := make(chan struct{})
	go func() {
		requests.Wait()
		drained(conn)
		stop()
		close(done)
	}()
	for {
		str, err := conn.AcceptStream(refuse)
		if err != nil {
			break
		}
		str.CancelRead(quic.StreamErrorCode(http3.ErrCodeRequestRejected))
		str.CancelWrite(quic.StreamErrorCode(http3.ErrCodeRequestRejected))
	}
	<-done
	rc.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "shutting down")
}

// drained waits until conn has gone quiet both ways (what its streams
// queued has left and the peer has nothing more to acknowledge or allow)
// or has ended: closing it any earlier would drop the tail of the last
// answers. Quiet in one direction only is not enough: a sender waiting
// for the peer's flow-control credit, or starved of CPU for a moment,
// sends nothing while the answer is still under way (a 2 MB answer lost
// its last 100 KB so under a loaded test run), but the peer's
// acknowledgements and credit still arrive.
func drained(conn *quic.Conn) {
	moved := func() [2]uint64 {
		st := conn.ConnectionStats()
		return [2]uint64{st.BytesSent, st.BytesReceived}
	}
	last := moved()
	for range 1000 { // bounded; Shutdown's context bounds it too
		quiet := max(3*conn.ConnectionStats().SmoothedRTT, 50*time.Millisecond)
		select {
		case <-conn.Context().Done():
			return
		case <-time.After(quiet):
		}
		now := moved()
		if now == last {
			return
		}
		last = now
	}
}

// shutdown stops taking connections and streams and waits, until ctx
// ends, for the requests under way; then it closes what is left.
func (hs *h3Server) shutdown(ctx context.Context) error {
	hs.stop()
	done := make(chan struct{})
	go func() { hs.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		hs.close()
		return ctx.Err()
	}
}

// close ends every connection at once.
func (hs *h3Server) close() {
	for _, c := range hs.stop() {
		c.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "closing")
	}
}

// stop takes no more connections nor streams (the grace ends, the
// listener closes) and returns the connections open now.
func (hs *h3Server) stop() []*quic.Conn {
	hs.mu.Lock()
	hs.closed = true
	ln := hs.ln
	conns := make([]*quic.Conn, 0, len(hs.conns))
	for c := range hs.conns {
		conns = append(conns, c)
	}
	hs.mu.Unlock()
	hs.graceCancel()
	if ln != nil {
		ln.Close()
	}
	return conns
}
