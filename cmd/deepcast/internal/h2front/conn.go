package h2front

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// What this server asks of its peers: streams get a 1 MiB receive window
// (request bodies: uploads), the connection 4 MiB.
const (
	preface          = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	defaultWindow    = 65535 // RFC 9113 6.9.2
	streamRecvWindow = 1 << 20
	connRecvWindow   = 4 << 20
	maxWindow        = 1<<31 - 1
	// creditBatch is how much consumed receive window is gathered before a
	// WINDOW_UPDATE returns it: fewer frames, and the windows stay far
	// above it, so the peer never stalls on what is held back.
	creditBatch = 32 << 10
)

// stream is one request and its answer.
type stream struct {
	id           uint32
	sendWindow   int64 // peer's credit for our DATA on this stream
	recvWindow   int64 // our credit for the peer's DATA
	remoteClosed bool  // the peer sent END_STREAM
	localClosed  bool  // we sent END_STREAM (or reset the stream)
	reset        bool  // RST_STREAM either way, or the connection died
	declared     int64 // the request's content-length, or -1
	received     int64
	body         *pipe              // the request body for a handler, or nil
	cancel       context.CancelFunc // the handler's context, or nil
	pendingCred  int64              // consumed receive window not yet returned
	deadline     time.Time          // a handler's write deadline, when it set one
	working      bool               // a goroutine answers it (a handler, or Respond after Instant)
	orphan       bool               // reset while that goroutine still runs
}

// conn is one HTTP/2 connection. Its goroutine (serve) reads and
// dispatches frames; writes come from it and from handler goroutines,
// serialized by wmu.
type conn struct {
	s      *Server
	nc     net.Conn
	remote string
	tls    *tls.ConnectionState
	br     *bufio.Reader
	fr     *http2.Framer
	ctx    context.Context
	cancel context.CancelFunc

	// mu guards the streams and flow control; cond wakes writers waiting
	// for credit, and is broadcast when a stream or the connection ends.
	mu            sync.Mutex
	cond          *sync.Cond
	streams       map[uint32]*stream
	maxClientID   uint32 // highest stream the peer opened
	sendWindow    int64  // peer's connection-level credit for our DATA
	initialWindow int64  // peer's SETTINGS_INITIAL_WINDOW_SIZE
	peerMaxFrame  int    // peer's SETTINGS_MAX_FRAME_SIZE
	recvWindow    int64  // connection-level credit we gave the peer
	pendingCred   int64
	goingAway     bool // we sent GOAWAY: no new streams
	closed        bool
	closeErr      error
	active        int // open streams
	// orphans are streams reset while their goroutine still runs: they
	// count against the concurrency limit until it returns, or a peer
	// that resets each stream it opens (CVE-2023-44487, "rapid reset")
	// would start goroutines, and upstream fetches, without bound.
	orphans int
	// refusedForOrphans counts the streams refused in a row because of
	// orphans; a peer that keeps opening them is told to calm down.
	refusedForOrphans int

	wmu       sync.Mutex
	out       []byte // frames not yet written
	hbuf      headerBuffer
	henc      *hpack.Encoder
	werr      error // sticky: once a write failed the connection is done
	wdeadline time.Time
}

type headerBuffer struct{ b []byte }

func (h *headerBuffer) Write(p []byte) (int, error) { h.b = append(h.b, p...); return len(p), nil }

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, remote: nc.RemoteAddr().String(), streams: map[uint32]*stream{},
		sendWindow: defaultWindow, initialWindow: defaultWindow, peerMaxFrame: 16384, recvWindow: connRecvWindow}
	c.cond = sync.NewCond(&c.mu)
	if tc, ok := nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		st := tc.ConnectionState()
		c.tls = &st
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.br = bufio.NewReaderSize(nc, 16<<10)
	c.fr = http2.NewFramer(nil, c.br)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = s.maxHeaderBytes()
	c.fr.SetReuseFrames()
	c.fr.SetMaxReadFrameSize(16384) // the default, which we do not raise
	c.henc = hpack.NewEncoder(&c.hbuf)
	return c
}

// connError ends the connection with GOAWAY and code.
type connError struct {
	code   http2.ErrCode
	reason string
}

func (e connError) Error() string { return fmt.Sprintf("http2 %v: %s", e.code, e.reason) }

// streamError resets one stream with code.
type streamError struct {
	id   uint32
	code http2.ErrCode
}

func (e streamError) Error() string { return fmt.Sprintf("stream %d: %v", e.id, e.code) }

// serve runs the connection: preface, SETTINGS, then frames until the
// peer leaves or an error.
func (c *conn) serve() {
	defer func() {
		if v := recover(); v != nil {
			c.s.log().Error("http2: panic serving connection", "remote", c.remote, "panic", v)
			c.close(fmt.Errorf("panic: %v", v))
		}
	}()
	err := c.handshake()
	for err == nil {
		err = c.readFrame()
	}
	var ce connError
	switch {
	case errors.As(err, &ce):
		c.writeGoAway(ce.code, ce.reason)
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.mu.Lock()
		away := c.goingAway
		c.mu.Unlock()
		if !away {
			c.writeGoAway(http2.ErrCodeNo, "idle")
		}
	}
	c.close(err)
}

// handshake reads the client preface and sends our SETTINGS; the peer's
// first frame must be SETTINGS.
func (c *conn) handshake() error {
	if d := c.s.ReadHeaderTimeout; d > 0 {
		c.nc.SetReadDeadline(time.Now().Add(d))
	}
	var p [len(preface)]byte
	if _, err := io.ReadFull(c.br, p[:]); err != nil {
		return err
	}
	if string(p[:]) != preface {
		return errors.New("no HTTP/2 client preface")
	}
	c.wmu.Lock()
	c.out = appendSettings(c.out, [][2]uint32{
		{uint32(http2.SettingMaxConcurrentStreams), c.s.maxStreams()},
		{uint32(http2.SettingInitialWindowSize), streamRecvWindow},
		{uint32(http2.SettingMaxHeaderListSize), c.s.maxHeaderBytes()},
	})
	c.out = appendWindowUpdate(c.out, 0, connRecvWindow-defaultWindow)
	err := c.flushLocked()
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	f, err := c.fr.ReadFrame()
	if err != nil {
		return c.frameError(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		return connError{http2.ErrCodeProtocol, "first frame is not SETTINGS"}
	}
	if err := c.onSettings(sf); err != nil {
		return err
	}
	c.idle()
	return nil
}

// frameError turns a Framer's read error into what ends the connection.
func (c *conn) frameError(err error) error {
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &ce):
		reason := "framing"
		if d := c.fr.ErrorDetail(); d != nil {
			reason = d.Error()
		}
		return connError{http2.ErrCode(ce), reason}
	case errors.Is(err, http2.ErrFrameTooLarge):
		return connError{http2.ErrCodeFrameSize, "frame too large"}
	}
	return err
}

// readFrame reads and handles one frame. A stream error resets that
// stream and carries on; anything else ends the connection.
func (c *conn) readFrame() error {
	f, err := c.fr.ReadFrame()
	if err != nil {
		var se http2.StreamError
		if errors.As(err, &se) {
			if mh, ok := f.(*http2.MetaHeadersFrame); ok && mh.StreamID > c.maxClientID {
				// A new stream's headers were malformed: the stream is
				// used (and closed) all the same.
				if mh.StreamID%2 == 0 {
					return connError{http2.ErrCodeProtocol, "even stream id"}
				}
				c.mu.Lock()
				c.maxClientID = mh.StreamID
				c.mu.Unlock()
			}
			return c.resetStream(se.StreamID, se.Code)
		}
		return c.frameError(err)
	}
	err = nil
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		err = c.onHeaders(f)
	case *http2.DataFrame:
		err = c.onData(f)
	case *http2.SettingsFrame:
		if !f.IsAck() {
			err = c.onSettings(f)
		}
	case *http2.WindowUpdateFrame:
		err = c.onWindowUpdate(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			c.wmu.Lock()
			c.out = appendFrame(c.out, http2.FramePing, http2.FlagPingAck, 0, f.Data[:])
			err = c.flushLocked()
			c.wmu.Unlock()
		}
	case *http2.RSTStreamFrame:
		c.mu.Lock()
		idle := f.StreamID > c.maxClientID
		st := c.streams[f.StreamID]
		c.mu.Unlock()
		if idle {
			return connError{http2.ErrCodeProtocol, "RST_STREAM on an idle stream"}
		}
		if st != nil {
			c.endStream(st, true, errors.New("stream reset by the peer"))
		}
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			err = streamError{f.StreamID, http2.ErrCodeProtocol}
		}
	case *http2.GoAwayFrame:
		c.mu.Lock()
		c.goingAway = true
		done := c.active == 0
		c.mu.Unlock()
		if done {
			return io.EOF
		}
	case *http2.PushPromiseFrame:
		return connError{http2.ErrCodeProtocol, "PUSH_PROMISE from a client"}
	}
	var se streamError
	if errors.As(err, &se) {
		return c.resetStream(se.id, se.code)
	}
	return err
}

// onSettings applies the peer's settings and acknowledges them. The ACK
// goes out before any DATA the new settings allow (a peer may read
// frames in that order, as h2spec does): the write lock is held
// throughout, and every writer needs it.
func (c *conn) onSettings(f *http2.SettingsFrame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var werr error
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return connError{http2.ErrCode(err.(http2.ConnectionError)), "invalid setting " + s.String()}
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			c.mu.Lock()
			delta := int64(s.Val) - c.initialWindow
			c.initialWindow = int64(s.Val)
			for _, st := range c.streams {
				st.sendWindow += delta
				if st.sendWindow > maxWindow {
					werr = connError{http2.ErrCodeFlowControl, "window overflow"}
				}
			}
			c.cond.Broadcast()
			c.mu.Unlock()
		case http2.SettingMaxFrameSize:
			c.mu.Lock()
			c.peerMaxFrame = int(s.Val)
			c.mu.Unlock()
		case http2.SettingHeaderTableSize:
			c.henc.SetMaxDynamicTableSizeLimit(s.Val)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	c.out = appendFrame(c.out, http2.FrameSettings, http2.FlagSettingsAck, 0, nil)
	return c.flushLocked()
}

// onWindowUpdate adds the peer's credit to a stream or the connection.
func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID == 0 {
		c.sendWindow += int64(f.Increment)
		if c.sendWindow > maxWindow {
			return connError{http2.ErrCodeFlowControl, "connection window overflow"}
		}
		c.cond.Broadcast()
		return nil
	}
	if f.StreamID > c.maxClientID {
		return connError{http2.ErrCodeProtocol, "WINDOW_UPDATE on an idle stream"}
	}
	st := c.streams[f.StreamID]
	if st == nil {
		return nil // a closed stream: credit that came late
	}
	st.sendWindow += int64(f.Increment)
	if st.sendWindow > maxWindow {
		return streamError{f.StreamID, http2.ErrCodeFlowControl}
	}
	c.cond.Broadcast()
	return nil
}

// onData takes a request body's bytes, minding both receive windows.
func (c *conn) onData(f *http2.DataFrame) error {
	n := int64(f.Length)
	c.mu.Lock()
	if f.StreamID > c.maxClientID {
		c.mu.Unlock()
		return connError{http2.ErrCodeProtocol, "DATA on an idle stream"}
	}
	if n > c.recvWindow {
		c.mu.Unlock()
		return connError{http2.ErrCodeFlowControl, "connection window exceeded"}
	}
	c.recvWindow -= n
	st := c.streams[f.StreamID]
	if st == nil || st.remoteClosed {
		c.mu.Unlock()
		c.credit(nil, n)
		return streamError{f.StreamID, http2.ErrCodeStreamClosed}
	}
	if n > st.recvWindow {
		c.mu.Unlock()
		c.credit(nil, n)
		return streamError{f.StreamID, http2.ErrCodeFlowControl}
	}
	st.recvWindow -= n
	data := f.Data()
	st.received += int64(len(data))
	end := f.StreamEnded()
	if end {
		st.remoteClosed = true
	}
	bad := st.declared >= 0 && (st.received > st.declared || end && st.received != st.declared)
	body := st.body
	c.mu.Unlock()
	if bad {
		c.credit(nil, n)
		return streamError{f.StreamID, http2.ErrCodeProtocol}
	}
	if pad := n - int64(len(data)); pad > 0 {
		c.credit(st, pad)
	}
	if body == nil || !body.write(data) {
		c.credit(st, int64(len(data))) // nobody reads it
	}
	if body != nil && end {
		body.closeWithError(io.EOF)
	}
	if end {
		c.maybeDone(st)
	}
	return nil
}

// credit returns n consumed bytes of receive window to the peer, for the
// connection and (unless st is nil or done) the stream, in batches.
func (c *conn) credit(st *stream, n int64) {
	if n <= 0 {
		return
	}
	c.mu.Lock()
	c.recvWindow += n
	c.pendingCred += n
	connIncr := int64(0)
	if c.pendingCred >= creditBatch {
		connIncr, c.pendingCred = c.pendingCred, 0
	}
	streamIncr := int64(0)
	var id uint32
	if st != nil && !st.remoteClosed && !st.reset {
		st.recvWindow += n
		st.pendingCred += n
		if st.pendingCred >= creditBatch {
			streamIncr, st.pendingCred, id = st.pendingCred, 0, st.id
		}
	}
	c.mu.Unlock()
	if connIncr == 0 && streamIncr == 0 {
		return
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if connIncr > 0 {
		c.out = appendWindowUpdate(c.out, 0, uint32(connIncr))
	}
	if streamIncr > 0 {
		c.out = appendWindowUpdate(c.out, id, uint32(streamIncr))
	}
	c.flushLocked()
}

// resetStream sends RST_STREAM and ends the stream, if there is one.
func (c *conn) resetStream(id uint32, code http2.ErrCode) error {
	c.mu.Lock()
	st := c.streams[id]
	c.mu.Unlock()
	if st != nil {
		c.endStream(st, true, fmt.Errorf("stream reset: %v", code))
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.out = appendRSTStream(c.out, id, code)
	return c.flushLocked()
}

// endStream forgets st: reset marks it failed (the handler's writes
// fail, its context and body end with err).
func (c *conn) endStream(st *stream, reset bool, err error) {
	c.mu.Lock()
	if _, ok := c.streams[st.id]; !ok {
		c.mu.Unlock()
		return
	}
	delete(c.streams, st.id)
	if reset {
		st.reset = true
		if st.working && !st.orphan {
			st.orphan = true
			c.orphans++
		}
	}
	st.localClosed = true
	c.active--
	last := c.active == 0
	away := c.goingAway
	cancel := st.cancel
	c.cond.Broadcast()
	c.mu.Unlock()
	if cancel != nil && reset {
		cancel()
	}
	if st.body != nil {
		unread := st.body.closeWithError(err)
		c.credit(nil, unread)
	}
	if last {
		if away {
			// GOAWAY sent or received and nothing left: done.
			c.nc.SetReadDeadline(time.Now())
			return
		}
		c.idle()
	}
}

// maybeDone ends st once both sides have sent END_STREAM.
func (c *conn) maybeDone(st *stream) {
	c.mu.Lock()
	done := st.remoteClosed && st.localClosed
	c.mu.Unlock()
	if done {
		c.endStream(st, false, io.EOF)
	}
}

// idle starts the idle clock: a connection without streams is closed
// after IdleTimeout.
func (c *conn) idle() {
	if d := c.s.IdleTimeout; d > 0 {
		c.nc.SetReadDeadline(time.Now().Add(d))
	} else {
		c.nc.SetReadDeadline(time.Time{})
	}
}

// openStream registers a new stream the peer opened with HEADERS.
func (c *conn) openStream(id uint32, remoteClosed bool, declared int64) (*stream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id%2 == 0 {
		return nil, connError{http2.ErrCodeProtocol, "even stream id"}
	}
	c.maxClientID = id
	if c.goingAway {
		return nil, streamError{id, http2.ErrCodeRefusedStream}
	}
	if uint32(c.active) >= c.s.maxStreams() {
		return nil, streamError{id, http2.ErrCodeRefusedStream}
	}
	if uint32(c.active+c.orphans) >= c.s.maxStreams() {
		c.refusedForOrphans++
		if c.refusedForOrphans > 4*int(c.s.maxStreams()) {
			return nil, connError{http2.ErrCodeEnhanceYourCalm, "streams reset faster than their handlers end"}
		}
		return nil, streamError{id, http2.ErrCodeRefusedStream}
	}
	c.refusedForOrphans = 0
	st := &stream{id: id, sendWindow: c.initialWindow, recvWindow: streamRecvWindow, remoteClosed: remoteClosed, declared: declared}
	c.streams[id] = st
	if c.active == 0 {
		c.nc.SetReadDeadline(time.Time{})
	}
	c.active++
	c.s.streams.Add(1)
	return st, nil
}

// work runs answer for st on a goroutine of its own, counted against
// the concurrency limit until it returns, even once st is reset.
func (c *conn) work(st *stream, answer func()) {
	c.mu.Lock()
	st.working = true
	c.mu.Unlock()
	go func() {
		defer func() {
			c.mu.Lock()
			st.working = false
			if st.orphan {
				st.orphan = false
				c.orphans--
			}
			c.mu.Unlock()
		}()
		answer()
	}()
}

// goAway tells the peer no new streams will be taken (Shutdown); the
// connection closes when its streams are done.
func (c *conn) goAway() {
	c.mu.Lock()
	if c.goingAway || c.closed {
		c.mu.Unlock()
		return
	}
	c.goingAway = true
	done := c.active == 0
	c.mu.Unlock()
	c.writeGoAway(http2.ErrCodeNo, "shutting down")
	if done {
		c.nc.SetReadDeadline(time.Now())
	}
}

func (c *conn) writeGoAway(code http2.ErrCode, reason string) {
	c.mu.Lock()
	last := c.maxClientID
	c.mu.Unlock()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.out = appendGoAway(c.out, last, code, reason)
	c.flushLocked()
}

// close ends the connection and every stream on it.
func (c *conn) close(err error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed, c.closeErr = true, err
	streams := make([]*stream, 0, len(c.streams))
	for _, st := range c.streams {
		streams = append(streams, st)
	}
	c.cond.Broadcast()
	c.mu.Unlock()
	for _, st := range streams {
		c.endStream(st, true, errConnClosed)
	}
	c.cancel()
	c.nc.Close()
}

var errConnClosed = errors.New("http2: connection closed")

// flushLocked writes the frames gathered in out (wmu held).
func (c *conn) flushLocked() error {
	if c.werr != nil {
		c.out = c.out[:0]
		return c.werr
	}
	if len(c.out) == 0 {
		return nil
	}
	if d := c.s.WriteTimeout; d > 0 {
		// Moving the deadline costs a timer update: do it when it has
		// used up a quarter of its span, not on every write.
		now := time.Now()
		if c.wdeadline.Sub(now) < d*3/4 {
			c.wdeadline = now.Add(d)
			c.nc.SetWriteDeadline(c.wdeadline)
		}
	}
	_, err := c.nc.Write(c.out)
	if cap(c.out) > 2*flushEvery {
		c.out = nil // a big answer's buffer is not kept
	} else {
		c.out = c.out[:0]
	}
	if err != nil {
		c.werr = err
		// The reader learns of it at its next read.
		c.nc.SetReadDeadline(time.Now())
	}
	return err
}

// parseContentLength reads a request's content-length, -1 when absent.
func parseContentLength(v string) (int64, bool) {
	if v == "" {
		return -1, true
	}
	n, err := strconv.ParseUint(v, 10, 63)
	return int64(n), err == nil
}
