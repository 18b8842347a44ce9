package h2front

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/deepcast/deepcast/cmd/deepcast/internal/fastpath"
)

// handle runs the Handler for a stream on this goroutine and finishes its
// answer.
func (c *conn) handle(st *stream, r *request) {
	c.s.handled.Add(1)
	req, err := c.newRequest(st, r)
	if err != nil {
		c.resetStream(st.id, http2.ErrCodeProtocol)
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	c.mu.Lock()
	st.cancel = cancel
	reset := st.reset
	c.mu.Unlock()
	defer cancel()
	if reset {
		return
	}
	req = req.WithContext(ctx)
	if st.body != nil && c.s.ReadTimeout > 0 {
		st.body.setDeadline(time.Now().Add(c.s.ReadTimeout))
	}
	w := &responseWriter{c: c, st: st, header: make(http.Header), head: req.Method == "HEAD", declared: -1}
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				c.s.log().Error("http2: panic serving", "remote", c.remote, "path", req.URL.Path, "panic", v, "stack", string(debug.Stack()))
			}
			c.resetStream(st.id, http2.ErrCodeInternal)
			return
		}
		if err := w.finish(); err != nil && !errors.Is(err, errStreamClosed) && !errors.Is(err, errConnClosed) {
			c.resetStream(st.id, http2.ErrCodeInternal)
		}
		if st.body != nil {
			st.body.stopTimer()
		}
	}()
	h := c.s.Handler
	if h == nil {
		h = http.NotFoundHandler()
	}
	h.ServeHTTP(w, req)
}

// bufferSize is how much of a handler's body is held before HEADERS go
// out: an answer that fits leaves in one write with END_STREAM.
const bufferSize = 16 << 10

// responseWriter is a handler's http.ResponseWriter on a stream.
type responseWriter struct {
	c          *conn
	st         *stream
	header     http.Header
	status     int
	wroteHead  bool // WriteHeader called
	sentHead   bool // HEADERS sent
	head       bool // a HEAD request: no body goes out
	buf        []byte
	written    int64
	declared   int64 // the handler's Content-Length, or -1
	err        error
	bodyAbsent bool // 1xx, 204, 304: no body allowed
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHead {
		return
	}
	if code < 100 || code > 999 {
		panic("http2: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code < 200 {
		return // informational answers are not relayed
	}
	w.wroteHead, w.status = true, code
	w.bodyAbsent = code == http.StatusNoContent || code == http.StatusNotModified
	if cl := w.header.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.declared = n
		} else {
			w.header.Del("Content-Length")
		}
	}
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHead {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.bodyAbsent {
		return 0, http.ErrBodyNotAllowed
	}
	if w.declared >= 0 && w.written+int64(len(p)) > w.declared {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.head {
		return len(p), nil
	}
	if !w.sentHead && len(w.buf) == 0 && !w.hasContentType() {
		w.header.Set("Content-Type", http.DetectContentType(p))
	}
	w.buf = append(w.buf, p...)
	if len(w.buf) >= bufferSize {
		if err := w.flush(false); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (w *responseWriter) WriteString(s string) (int, error) { return w.Write([]byte(s)) }

func (w *responseWriter) hasContentType() bool {
	_, ok := w.header["Content-Type"]
	return ok || w.header.Get("Content-Encoding") != ""
}

// Flush sends the headers and what is buffered (http.Flusher).
func (w *responseWriter) Flush() { w.FlushError() }

// FlushError is Flush reporting failure (http.ResponseController).
func (w *responseWriter) FlushError() error {
	if !w.wroteHead {
		w.WriteHeader(http.StatusOK)
	}
	return w.flush(false)
}

// SetReadDeadline moves the deadline for reading the request body
// (http.ResponseController).
func (w *responseWriter) SetReadDeadline(t time.Time) error {
	if w.st.body != nil {
		w.st.body.setDeadline(t)
	}
	return nil
}

// SetWriteDeadline bounds the waits for flow-control credit
// (http.ResponseController).
func (w *responseWriter) SetWriteDeadline(t time.Time) error {
	w.c.mu.Lock()
	w.st.deadline = t
	w.c.mu.Unlock()
	return nil
}

// EnableFullDuplex is accepted: HTTP/2 streams are full duplex anyway.
func (w *responseWriter) EnableFullDuplex() error { return nil }

// flush sends HEADERS when not yet sent and the buffered body; end adds
// END_STREAM.
func (w *responseWriter) flush(end bool) error {
	if w.err != nil {
		return w.err
	}
	c, st := w.c, w.st
	if !w.sentHead {
		w.sentHead = true
		fields := w.fields(end)
		if end && len(w.buf) > 0 {
			// A whole answer whose body fits the windows now leaves in
			// one write: HEADERS, DATA, END_STREAM.
			if maxFrame, ok := c.tryReserve(st, int64(len(w.buf))); ok {
				c.wmu.Lock()
				c.appendHeadersLocked(st.id, w.status, fields, false, maxFrame)
				w.err = c.appendDataLocked(st.id, w.buf, true, maxFrame)
				if w.err == nil {
					w.err = c.flushLocked()
				}
				c.wmu.Unlock()
				if w.err == nil {
					c.localDone(st)
				}
				return w.err
			}
		}
		c.wmu.Lock()
		c.appendHeadersLocked(st.id, w.status, fields, end && len(w.buf) == 0, c.maxFrame())
		w.err = c.flushLocked()
		c.wmu.Unlock()
		if w.err != nil {
			return w.err
		}
		if end && len(w.buf) == 0 {
			c.localDone(st)
			return nil
		}
	}
	if len(w.buf) == 0 && !end {
		return nil
	}
	err := c.sendData(st, w.buf, end, c.writeDeadline(st))
	w.buf = w.buf[:0]
	if err != nil {
		w.err = err
	}
	return err
}

// finish completes the answer when the handler returns.
func (w *responseWriter) finish() error {
	if !w.wroteHead {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return w.err
	}
	if w.declared >= 0 && w.written < w.declared && !w.head && !w.bodyAbsent {
		return errShortBody
	}
	return w.flush(true)
}

const errShortBody = protoError("handler wrote less than its Content-Length")

// fields are the response's header fields; a whole answer gets its
// Content-Length when the handler gave none.
func (w *responseWriter) fields(end bool) []field {
	h := w.header
	if _, ok := h["Date"]; !ok {
		h.Set("Date", string(fastpath.AppendDate(nil, time.Now())))
	}
	if end && w.declared < 0 && !w.bodyAbsent && (!w.head || w.written > 0) {
		h.Set("Content-Length", strconv.FormatInt(w.written, 10))
	}
	fields := make([]field, 0, len(h)+1)
	for k, vs := range h {
		lk := lowerName([]byte(k))
		switch lk {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "trailer":
			continue
		}
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		for _, v := range vs {
			fields = append(fields, field{lk, v})
		}
	}
	return fields
}

// pipe is a request body: the connection's goroutine writes what DATA
// frames bring, the handler reads it, and what it reads is credited back
// to the peer.
type pipe struct {
	c     *conn
	st    *stream
	mu    sync.Mutex
	cond  sync.Cond
	buf   bytes.Buffer
	err   error
	timer *time.Timer
}

func newPipe(c *conn, st *stream) *pipe {
	p := &pipe{c: c, st: st}
	p.cond.L = &p.mu
	return p
}

// write adds b to the body; false when the body was closed, and b is
// dropped (its credit is the caller's to return).
func (p *pipe) write(b []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return false
	}
	p.buf.Write(b)
	p.cond.Broadcast()
	return true
}

// closeWithError ends the body (io.EOF: its end) and reports how many
// bytes it held unread, whose credit the caller returns.
func (p *pipe) closeWithError(err error) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
	p.cond.Broadcast()
	if err == io.EOF {
		return 0
	}
	n := int64(p.buf.Len())
	p.buf.Reset()
	return n
}

// Read reads the body, waiting for the peer's DATA.
func (p *pipe) Read(b []byte) (int, error) {
	p.mu.Lock()
	for p.buf.Len() == 0 && p.err == nil {
		p.cond.Wait()
	}
	if p.buf.Len() == 0 {
		err := p.err
		p.mu.Unlock()
		return 0, err
	}
	n, _ := p.buf.Read(b)
	p.mu.Unlock()
	p.c.credit(p.st, int64(n))
	return n, nil
}

// Close is the handler giving up the body: what is unread is dropped and
// credited back.
func (p *pipe) Close() error {
	p.c.credit(p.st, p.closeWithError(errBodyClosed))
	return nil
}

const errBodyClosed = protoError("http2: request body closed")

const errReadTimeout = protoError("http2: timed out reading the request body")

// setDeadline makes reads fail after t (zero: never).
func (p *pipe) setDeadline(t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	if t.IsZero() || p.err != nil {
		return
	}
	p.timer = time.AfterFunc(time.Until(t), func() {
		p.c.credit(p.st, p.closeWithError(errReadTimeout))
	})
}

func (p *pipe) stopTimer() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.timer != nil {
		p.timer.Stop()
	}
}
