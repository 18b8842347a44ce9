package fastpath

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
)

// handedConn is a connection the front handed to net/http. It gives
// net/http the bytes the front had read first, and watches for the moment
// to take the connection back.
//
// Why: a hand-off used to be for the connection's life, and browsers reuse
// their connections, so one request the front does not answer (the player
// page, an /api poll, a CORS preflight) sent every later segment on that
// connection through net/http. So while the requests are plain (GET or
// HEAD, no body, no upgrade) handedConn passes them on one head at a time,
// which tells it when net/http has had every byte it was given. When
// net/http then waits for the next request (its ConnState says idle) and
// that request is one the front claims, Read reports EOF; net/http closes
// the connection, and Close gives the socket, with the request's bytes,
// back to the front.
type handedConn struct {
	net.Conn
	s *Server

	// Used by net/http's connection goroutine only (Read is not called
	// concurrently with itself).
	buf      []byte // read from the socket, not yet given to net/http
	framing  bool   // the requests so far were plain: heads are passed one at a time
	headLeft int    // bytes of the head being passed that net/http has not had

	state atomic.Int32 // the http.ConnState net/http last gave it

	mu        sync.Mutex // Close may come from Shutdown's goroutine
	takenBack bool
	closed    bool
}

func (h *handedConn) Read(b []byte) (int, error) {
	if h.framing && h.headLeft == 0 {
		// A boundary: net/http has had every byte of the requests before.
		n, err := h.fillHead()
		switch {
		case err != nil && len(h.buf) > 0:
			// The client stopped in the middle of a head: net/http gets
			// what came, then the socket's end, and answers that.
			h.framing = false
		case err != nil:
			return 0, err
		case n < 0 || !plainHead(h.buf[:n]):
			h.framing = false
		case http.ConnState(h.state.Load()) == http.StateActive:
			// net/http's background read, while a handler runs: it only
			// watches for the client going away. Handing it the next
			// request's first byte would commit that request to net/http,
			// so wait for net/http to call the read off (a deadline).
			if err := h.hold(); err != nil {
				return 0, err
			}
			h.headLeft = n // the client half-closed: pass the request on
		case http.ConnState(h.state.Load()) == http.StateIdle && h.claims(h.buf[:n]):
			h.mu.Lock()
			h.takenBack = !h.closed
			h.mu.Unlock()
			return 0, io.EOF
		default:
			h.headLeft = n
		}
	}
	if len(h.buf) == 0 {
		return h.Conn.Read(b)
	}
	give := h.buf
	if h.framing {
		give = h.buf[:h.headLeft]
	}
	n := copy(b, give)
	h.buf = h.buf[n:]
	if h.framing {
		h.headLeft -= n
	}
	return n, nil
}

// fillHead reads until buf starts with a whole request head and returns its
// length, or -1 when the head is larger than the front takes.
func (h *handedConn) fillHead() (int, error) {
	for {
		if n := headEnd(h.buf); n >= 0 {
			return n, nil
		}
		if len(h.buf) >= headBuffer {
			return -1, nil
		}
		if err := h.readMore(); err != nil {
			return 0, err
		}
	}
}

// hold keeps reading into buf (pipelined requests) until the read fails;
// it returns nil when the client half-closed, the read's error otherwise.
func (h *handedConn) hold() error {
	for len(h.buf) < 2*headBuffer {
		if err := h.readMore(); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
	}
	return nil
}

// readMore appends what one read of the socket brings to buf.
func (h *handedConn) readMore() error {
	if cap(h.buf)-len(h.buf) < 512 {
		nb := make([]byte, len(h.buf), 2*cap(h.buf)+headBuffer)
		copy(nb, h.buf)
		h.buf = nb
	}
	m, err := h.Conn.Read(h.buf[len(h.buf):cap(h.buf)])
	h.buf = h.buf[:len(h.buf)+m]
	return err
}

// claims reports whether the front would take the request in head.
func (h *handedConn) claims(head []byte) bool {
	if len(h.buf) > headBuffer || h.s.shutting.Load() {
		return false // more pipelined than a loop's buffer holds; or stopping
	}
	q, ok := parseHead(head)
	return ok && (h.s.Claims == nil || h.s.Claims(q))
}

// plainHead reports a GET or HEAD head with no body and no upgrade: the
// next bytes after it are the next request's.
func plainHead(head []byte) bool {
	if !bytes.HasPrefix(head, []byte("GET ")) && !bytes.HasPrefix(head, []byte("HEAD ")) ||
		!bytes.HasSuffix(head, []byte("\r\n\r\n")) || hasBareLF(head) {
		return false // net/http may read lines, and so the framing, otherwise
	}
	for line := range bytes.SplitSeq(head, []byte("\r\n")) {
		name, _, _ := bytes.Cut(line, []byte(":"))
		for _, h := range []string{"Content-Length", "Transfer-Encoding", "Upgrade", "Expect"} {
			if bytes.EqualFold(bytes.TrimSpace(name), []byte(h)) {
				return false
			}
		}
	}
	return true
}

// Close closes the connection, or, when Read took it back, gives it to the
// front with the request net/http never saw.
func (h *handedConn) Close() error {
	h.mu.Lock()
	back := h.takenBack && !h.closed
	h.closed = true
	h.mu.Unlock()
	if !back {
		return h.Conn.Close()
	}
	h.s.takenBack.Add(1)
	h.s.take(h.Conn, h.buf)
	return nil
}

// ReadFrom lets net/http use sendfile on the underlying TCP connection.
func (h *handedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := h.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(h.Conn, r)
}

// CloseWrite half-closes, as net/http does before closing on errors.
func (h *handedConn) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
