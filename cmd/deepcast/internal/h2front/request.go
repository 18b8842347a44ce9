package h2front

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/net/http2"

	"github.com/deepcast/deepcast/cmd/deepcast/internal/fastpath"
)

// onHeaders opens a stream (or takes a request's trailers) and answers
// it: plain media requests on this goroutine, the rest on a handler's.
func (c *conn) onHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	c.mu.Lock()
	old := id <= c.maxClientID
	st := c.streams[id]
	c.mu.Unlock()
	if old {
		if id%2 == 0 {
			return connError{http2.ErrCodeProtocol, "even stream id"}
		}
		if st == nil || st.remoteClosed {
			return connError{http2.ErrCodeStreamClosed, "HEADERS on a closed stream"}
		}
		// Trailers: they must end the stream.
		if !f.StreamEnded() {
			return streamError{id, http2.ErrCodeProtocol}
		}
		c.mu.Lock()
		st.remoteClosed = true
		bad := st.declared >= 0 && st.received != st.declared
		c.mu.Unlock()
		if bad {
			return streamError{id, http2.ErrCodeProtocol}
		}
		if st.body != nil {
			st.body.closeWithError(io.EOF)
		}
		c.maybeDone(st)
		return nil
	}
	if f.HasPriority() && f.Priority.StreamDep == id {
		if _, err := c.openStream(id, true, -1); err != nil {
			return err
		}
		return streamError{id, http2.ErrCodeProtocol}
	}
	if f.Truncated {
		// Headers larger than MAX_HEADER_LIST_SIZE: the stream is used.
		st, err := c.openStream(id, true, -1)
		if err != nil {
			return err
		}
		return c.writeSimple(st, http.StatusRequestHeaderFieldsTooLarge)
	}
	req, err := readRequest(f)
	if err != nil {
		if _, err := c.openStream(id, true, -1); err != nil {
			return err
		}
		return streamError{id, http2.ErrCodeProtocol}
	}
	st, err = c.openStream(id, f.StreamEnded(), req.declared)
	if err != nil {
		return err
	}
	if st.remoteClosed && req.declared > 0 {
		return streamError{id, http2.ErrCodeProtocol}
	}
	if q, ok := c.plain(req, st); ok {
		if c.s.Instant != nil {
			if resp, ok := c.s.Instant(q); ok {
				c.s.answered.Add(1)
				return c.writeFast(st, q, resp, time.Now())
			}
			c.work(st, func() { c.respondOrHandle(st, req, q) })
			return nil
		}
		if resp, ok := c.s.Respond(q); ok {
			c.s.answered.Add(1)
			return c.writeFast(st, q, resp, time.Now())
		}
	}
	if !st.remoteClosed {
		st.body = newPipe(c, st)
	}
	c.work(st, func() { c.handle(st, req) })
	return nil
}

// request is what a HEADERS frame asked for.
type request struct {
	method, scheme, authority, path string
	header                          http.Header
	declared                        int64
	plainHeaders                    bool // every field is one a plain fetch may carry
}

// readRequest checks a request's pseudo-header and header fields (RFC 9113
// 8.3.1, 8.2.2) and gathers them.
func readRequest(f *http2.MetaHeadersFrame) (*request, error) {
	r := &request{method: f.PseudoValue("method"), scheme: f.PseudoValue("scheme"),
		authority: f.PseudoValue("authority"), path: f.PseudoValue("path"), plainHeaders: true}
	for _, pf := range f.PseudoFields() {
		if pf.Name == ":status" || pf.Name == ":protocol" {
			return nil, errMalformed
		}
	}
	if r.method == "" || r.method != "CONNECT" && (r.scheme == "" || r.path == "") {
		return nil, errMalformed
	}
	fields := f.RegularFields()
	r.header = make(http.Header, len(fields))
	var cookies []string
	for _, hf := range fields {
		switch hf.Name {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
			return nil, errMalformed
		case "te":
			if hf.Value != "trailers" {
				return nil, errMalformed
			}
		case "cookie":
			cookies = append(cookies, hf.Value)
			continue
		case "host":
			if r.authority == "" {
				r.authority = hf.Value
			}
			continue
		}
		if r.plainHeaders && !fastpath.PlainHeader(hf.Name, hf.Value) {
			r.plainHeaders = false
		}
		key := http.CanonicalHeaderKey(hf.Name)
		r.header[key] = append(r.header[key], hf.Value)
	}
	if len(cookies) > 0 {
		// RFC 9113 8.2.3: split cookie fields are joined for HTTP/1.1
		// semantics.
		r.header["Cookie"] = []string{strings.Join(cookies, "; ")}
	}
	cl := r.header["Content-Length"]
	if len(cl) > 1 {
		return nil, errMalformed
	}
	r.declared = -1
	if len(cl) == 1 {
		n, ok := parseContentLength(cl[0])
		if !ok {
			return nil, errMalformed
		}
		r.declared = n
	}
	return r, nil
}

type protoError string

func (e protoError) Error() string { return string(e) }

const errMalformed = protoError("http2: malformed request")

// plain turns req into the fast path's Request when it is one: GET or
// HEAD without a body, a plain target and authority, no header that asks
// for more than the whole object.
func (c *conn) plain(req *request, st *stream) (fastpath.Request, bool) {
	if c.s.Respond == nil || !st.remoteClosed || !req.plainHeaders || req.scheme != "https" && req.scheme != "http" {
		return fastpath.Request{}, false
	}
	var q fastpath.Request
	switch req.method {
	case "GET":
	case "HEAD":
		q.Head = true
	default:
		return fastpath.Request{}, false
	}
	path, query, ok := fastpath.PlainTarget(req.path)
	if !ok || !fastpath.PlainHost(req.authority) {
		return fastpath.Request{}, false
	}
	q.Path, q.Query, q.Remote, q.Host, q.Secure = path, query, c.remote, req.authority, req.scheme == "https"
	if v := req.header["Cta-Common-Access-Token"]; len(v) > 0 {
		if len(v) > 1 {
			return fastpath.Request{}, false
		}
		q.Token = v[0]
	}
	if v := req.header["Cookie"]; len(v) > 0 {
		q.Cookie = v[0]
	}
	q.Loop = strings.Join(req.header["Cdn-Loop"], ", ")
	q.AcceptEncoding = strings.Join(req.header["Accept-Encoding"], ", ")
	if c.s.Claims != nil && !c.s.Claims(q) {
		return fastpath.Request{}, false
	}
	return q, true
}

// respondOrHandle runs Respond for a request Instant declined, and the
// handler when Respond declines too.
func (c *conn) respondOrHandle(st *stream, req *request, q fastpath.Request) {
	if resp, ok := c.s.Respond(q); ok {
		c.s.answered.Add(1)
		if err := c.writeFast(st, q, resp, time.Now()); err != nil {
			c.s.log().Debug("http2: answer", "remote", c.remote, "err", err)
		}
		return
	}
	c.handle(st, req)
}

// writeFast writes a Responder's answer: HEADERS and, when the windows
// allow the whole body now (the usual case: players open large windows),
// its DATA in the same write; otherwise the body goes out from a
// goroutine that waits for credit.
func (c *conn) writeFast(st *stream, q fastpath.Request, resp fastpath.Response, start time.Time) error {
	size := int64(len(resp.Body))
	if resp.Body == nil && resp.File != nil {
		size = resp.Size
	}
	fields := c.fastFields(resp, size, start)
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	if q.Head || size == 0 {
		c.wmu.Lock()
		c.appendHeadersLocked(st.id, status, fields, true, c.maxFrame())
		err := c.flushLocked()
		c.wmu.Unlock()
		finishFast(resp, 0, start, err)
		if err == nil {
			c.localDone(st)
		}
		return err
	}
	maxFrame, ok := c.tryReserve(st, size)
	if !ok {
		go c.writeFastSlow(st, status, fields, resp, size, start)
		return nil
	}
	c.wmu.Lock()
	c.appendHeadersLocked(st.id, status, fields, false, maxFrame)
	var err, ferr error
	if resp.Body != nil {
		err = c.appendDataLocked(st.id, resp.Body, true, maxFrame)
	} else {
		var sent int64
		if sent, ferr = c.appendFileLocked(st.id, resp.File, 0, size, true, maxFrame); ferr != nil && c.werr == nil {
			// The file failed mid-way (not the connection): what was
			// read goes out, and the stream is reset.
			size = sent
		} else {
			err, ferr = ferr, nil
		}
	}
	if err == nil {
		err = c.flushLocked()
	}
	c.wmu.Unlock()
	finishFast(resp, size, start, errors.Join(err, ferr))
	switch {
	case err != nil:
		return err
	case ferr != nil:
		return c.resetStream(st.id, http2.ErrCodeInternal)
	}
	c.localDone(st)
	return nil
}

// writeFastSlow sends a Responder's answer whose body must wait for
// flow-control credit.
func (c *conn) writeFastSlow(st *stream, status int, fields []field, resp fastpath.Response, size int64, start time.Time) {
	c.wmu.Lock()
	c.appendHeadersLocked(st.id, status, fields, false, c.maxFrame())
	err := c.flushLocked()
	c.wmu.Unlock()
	var sent int64
	deadline := c.writeDeadline(st)
	if err == nil && resp.Body != nil {
		err = c.sendData(st, resp.Body, true, deadline)
		if err == nil {
			sent = size
		}
	} else if err == nil {
		buf := make([]byte, 64<<10)
		for sent < size && err == nil {
			n := int(min(size-sent, int64(len(buf))))
			var m int
			m, err = resp.File.ReadAt(buf[:n], sent)
			if m == n {
				err = c.sendData(st, buf[:n], sent+int64(n) == size, deadline)
				sent += int64(n)
			} else if err == nil {
				err = errShortFile
			}
		}
	}
	finishFast(resp, sent, start, err)
	if err != nil {
		c.resetStream(st.id, http2.ErrCodeInternal)
	}
}

const errShortFile = protoError("file shorter than its size")

// finishFast closes a Response's file and reports it done.
func finishFast(resp fastpath.Response, sent int64, start time.Time, err error) {
	if resp.File != nil {
		resp.File.Close()
	}
	if resp.Done != nil {
		resp.Done(sent, time.Since(start), err)
	}
}

func (c *conn) maxFrame() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peerMaxFrame
}

// writeDeadline is when a stream's writes give up waiting for credit.
func (c *conn) writeDeadline(st *stream) time.Time {
	c.mu.Lock()
	d := st.deadline
	c.mu.Unlock()
	if d.IsZero() && c.s.WriteTimeout > 0 {
		d = time.Now().Add(c.s.WriteTimeout)
	}
	return d
}

// fastFields turns a Responder's header lines into HTTP/2 fields, with
// date, the extra lines and content-length; connection-specific fields
// are dropped.
func (c *conn) fastFields(resp fastpath.Response, size int64, now time.Time) []field {
	fields := make([]field, 0, 14)
	fields = append(fields, field{"date", dateString(now)})
	fields = appendLines(fields, resp.Header)
	fields = appendLines(fields, c.s.ExtraHeader)
	return append(fields, field{"content-length", strconv.FormatInt(size, 10)})
}

// appendLines adds header lines ("Name: value\r\n") as fields. The
// values point into lines, which Responders never change once built (and
// the fields are used before the response is done), so they are not
// copied: this is the path of every hot answer.
func appendLines(fields []field, lines []byte) []field {
	for len(lines) > 0 {
		line, rest, _ := bytes.Cut(lines, []byte("\r\n"))
		lines = rest
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		n := lowerName(bytes.TrimSpace(name))
		switch n {
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "content-length", "date":
			continue
		}
		v := bytes.TrimSpace(value)
		fields = append(fields, field{n, unsafe.String(unsafe.SliceData(v), len(v))})
	}
	return fields
}

// commonNames are the header names deepcast's answers use, lower-cased
// once.
var commonNames = func() map[string]string {
	m := map[string]string{}
	for _, n := range []string{"Accept-Ranges", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers", "Age",
		"Alt-Svc", "Cache-Control", "Cache-Status", "CMSD-Dynamic", "Content-Length", "Content-Type", "Date", "ETag", "Etag",
		"Last-Modified", "Repr-Digest", "Strict-Transport-Security", "Via", "X-Deepcast-Last-Segment", "Connection"} {
		m[n] = strings.ToLower(n)
	}
	return m
}()

// lowerName is a header name in lower case, without allocating for the
// common ones.
func lowerName(b []byte) string {
	if n, ok := commonNames[string(b)]; ok { // no allocation: a map lookup by []byte
		return n
	}
	return strings.ToLower(string(b))
}

// dateNow caches the Date value of the current second.
var dateNow atomic.Pointer[struct {
	unix int64
	text string
}]

// dateString is now as an HTTP date, formatted once a second.
func dateString(now time.Time) string {
	d := dateNow.Load()
	if d == nil || d.unix != now.Unix() {
		d = &struct {
			unix int64
			text string
		}{now.Unix(), string(fastpath.AppendDate(nil, now))}
		dateNow.Store(d)
	}
	return d.text
}

// writeSimple answers a stream with a status and no body.
func (c *conn) writeSimple(st *stream, status int) error {
	c.wmu.Lock()
	c.appendHeadersLocked(st.id, status, []field{{"content-length", "0"}}, true, c.maxFrame())
	err := c.flushLocked()
	c.wmu.Unlock()
	if err == nil {
		c.localDone(st)
	}
	return err
}

// newRequest builds the net/http Request a handler gets.
func (c *conn) newRequest(st *stream, r *request) (*http.Request, error) {
	u := &url.URL{Host: r.authority}
	uri := r.path
	if r.method == "CONNECT" {
		uri = r.authority
	} else {
		var err error
		if u, err = url.ParseRequestURI(r.path); err != nil {
			return nil, err
		}
	}
	req := &http.Request{Method: r.method, URL: u, Proto: "HTTP/2.0", ProtoMajor: 2, Header: r.header,
		Host: r.authority, RemoteAddr: c.remote, RequestURI: uri, TLS: c.tls, ContentLength: r.declared, Body: http.NoBody}
	if st.body != nil {
		req.Body = st.body
		if r.declared < 0 {
			req.ContentLength = -1
		}
	} else {
		req.ContentLength = 0
	}
	return req, nil
}
