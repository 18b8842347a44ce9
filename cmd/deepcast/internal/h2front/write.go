package h2front

import (
	"encoding/binary"
	"errors"
	"io"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// appendFrame appends one frame: the 9-byte header and its payload.
func appendFrame(b []byte, t http2.FrameType, flags http2.Flags, id uint32, payload []byte) []byte {
	b = appendFrameHeader(b, len(payload), t, flags, id)
	return append(b, payload...)
}

func appendFrameHeader(b []byte, n int, t http2.FrameType, flags http2.Flags, id uint32) []byte {
	return append(b, byte(n>>16), byte(n>>8), byte(n), byte(t), byte(flags),
		byte(id>>24)&0x7f, byte(id>>16), byte(id>>8), byte(id))
}

func appendSettings(b []byte, settings [][2]uint32) []byte {
	b = appendFrameHeader(b, 6*len(settings), http2.FrameSettings, 0, 0)
	for _, s := range settings {
		b = binary.BigEndian.AppendUint16(b, uint16(s[0]))
		b = binary.BigEndian.AppendUint32(b, s[1])
	}
	return b
}

func appendWindowUpdate(b []byte, id, incr uint32) []byte {
	b = appendFrameHeader(b, 4, http2.FrameWindowUpdate, 0, id)
	return binary.BigEndian.AppendUint32(b, incr&0x7fffffff)
}

func appendRSTStream(b []byte, id uint32, code http2.ErrCode) []byte {
	b = appendFrameHeader(b, 4, http2.FrameRSTStream, 0, id)
	return binary.BigEndian.AppendUint32(b, uint32(code))
}

func appendGoAway(b []byte, last uint32, code http2.ErrCode, reason string) []byte {
	b = appendFrameHeader(b, 8+len(reason), http2.FrameGoAway, 0, 0)
	b = binary.BigEndian.AppendUint32(b, last&0x7fffffff)
	b = binary.BigEndian.AppendUint32(b, uint32(code))
	return append(b, reason...)
}

// field is one response header field, its name in lower case.
type field struct{ name, value string }

// appendHeadersLocked encodes fields (after :status) and appends them as
// HEADERS and, past the peer's frame size, CONTINUATION frames (wmu held:
// the HPACK encoder's state follows the order of the frames).
func (c *conn) appendHeadersLocked(id uint32, status int, fields []field, end bool, maxFrame int) {
	c.hbuf.b = c.hbuf.b[:0]
	c.henc.WriteField(hpack.HeaderField{Name: ":status", Value: statusText(status)})
	for _, f := range fields {
		c.henc.WriteField(hpack.HeaderField{Name: f.name, Value: f.value})
	}
	block := c.hbuf.b
	flags := http2.Flags(0)
	if end {
		flags |= http2.FlagHeadersEndStream
	}
	t := http2.FrameHeaders
	for first := true; first || len(block) > 0; first = false {
		n := min(len(block), maxFrame)
		f := flags
		if n == len(block) {
			f |= http2.FlagHeadersEndHeaders
		}
		c.out = appendFrame(c.out, t, f, id, block[:n])
		block = block[n:]
		t, flags = http2.FrameContinuation, 0
	}
}

// statusText is a status code's digits, without allocating for the
// common ones.
func statusText(code int) string {
	switch code {
	case 200:
		return "200"
	case 206:
		return "206"
	case 304:
		return "304"
	case 404:
		return "404"
	}
	var b [3]byte
	if code < 100 || code > 999 {
		code = 500
	}
	b[0], b[1], b[2] = byte('0'+code/100), byte('0'+code/10%10), byte('0'+code%10)
	return string(b[:])
}

var (
	errStreamClosed = errors.New("http2: stream closed")
	errWriteTimeout = errors.New("http2: timed out waiting for flow-control credit")
)

// reserve takes up to want bytes of send credit for st, waiting for it
// until deadline; 0 with an error when the stream or connection ended or
// the wait timed out.
func (c *conn) reserve(st *stream, want int, deadline time.Time) (int, int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		switch {
		case c.closed:
			return 0, 0, errConnClosed
		case st.reset:
			return 0, 0, errStreamClosed
		}
		if n := min(int64(want), c.sendWindow, st.sendWindow); n > 0 {
			c.sendWindow -= n
			st.sendWindow -= n
			return int(n), c.peerMaxFrame, nil
		}
		if !deadline.IsZero() {
			if !time.Now().Before(deadline) {
				return 0, 0, errWriteTimeout
			}
			if timer == nil {
				timer = time.AfterFunc(time.Until(deadline), func() {
					c.mu.Lock()
					c.cond.Broadcast()
					c.mu.Unlock()
				})
			}
		}
		c.cond.Wait()
	}
}

// tryReserve takes exactly n bytes of send credit for st if both windows
// hold them now, without waiting.
func (c *conn) tryReserve(st *stream, n int64) (maxFrame int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || st.reset || n > c.sendWindow || n > st.sendWindow {
		return 0, false
	}
	c.sendWindow -= n
	st.sendWindow -= n
	return c.peerMaxFrame, true
}

// flushEvery bounds the frames gathered before a write while a large
// body goes out, so a connection's buffer stays small.
const flushEvery = 128 << 10

// recordSize is a full TLS record's payload: a large body's writes are
// cut at multiples of it, so every record goes out full (a DATA frame
// with its 9-byte header does not fit one; cutting at frame boundaries
// cost a 36-byte record and its write(2) per 64 KiB).
const recordSize = 16 << 10

// flushFullLocked writes the gathered frames up to the last whole record
// and keeps the rest for the next write (wmu held).
func (c *conn) flushFullLocked() error {
	n := len(c.out) / recordSize * recordSize
	if n == len(c.out) {
		return c.flushLocked()
	}
	rest := len(c.out) - n
	var keep [recordSize]byte
	copy(keep[:], c.out[n:])
	c.out = c.out[:n]
	if err := c.flushLocked(); err != nil {
		return err
	}
	c.out = append(c.out, keep[:rest]...)
	return nil
}

// appendDataLocked appends DATA frames for p (credit already reserved),
// the last with END_STREAM when end (wmu held), and flushes as the
// buffer fills.
func (c *conn) appendDataLocked(id uint32, p []byte, end bool, maxFrame int) error {
	for first := true; first || len(p) > 0; first = false {
		n := min(len(p), maxFrame)
		flags := http2.Flags(0)
		if end && n == len(p) {
			flags = http2.FlagDataEndStream
		}
		c.out = appendFrame(c.out, http2.FrameData, flags, id, p[:n])
		p = p[n:]
		if len(c.out) >= flushEvery {
			if err := c.flushFullLocked(); err != nil {
				return err
			}
		}
	}
	return nil
}

// appendFileLocked appends DATA frames holding size bytes of r from off
// (credit already reserved), read straight into the frame buffer.
func (c *conn) appendFileLocked(id uint32, r io.ReaderAt, off, size int64, end bool, maxFrame int) (int64, error) {
	var sent int64
	for sent < size {
		n := int(min(size-sent, int64(maxFrame)))
		flags := http2.Flags(0)
		if end && sent+int64(n) == size {
			flags = http2.FlagDataEndStream
		}
		c.out = appendFrameHeader(c.out, n, http2.FrameData, flags, id)
		start := len(c.out)
		c.out = append(c.out, make([]byte, n)...)
		m, err := r.ReadAt(c.out[start:start+n], off+sent)
		if m < n {
			c.out = c.out[:start-9]
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF // the file shrank
			}
			return sent, err
		}
		sent += int64(n)
		if len(c.out) >= flushEvery {
			if err := c.flushFullLocked(); err != nil {
				return sent, err
			}
		}
	}
	return sent, nil
}

// sendData sends p on st with flow control, the last frame with
// END_STREAM when end; it waits for credit until deadline.
func (c *conn) sendData(st *stream, p []byte, end bool, deadline time.Time) error {
	for first := true; first || len(p) > 0; first = false {
		n, maxFrame := 0, 0
		if len(p) > 0 {
			var err error
			if n, maxFrame, err = c.reserve(st, len(p), deadline); err != nil {
				return err
			}
		} else {
			c.mu.Lock()
			maxFrame = c.peerMaxFrame
			c.mu.Unlock()
		}
		c.wmu.Lock()
		err := c.appendDataLocked(st.id, p[:n], end && n == len(p), maxFrame)
		if err == nil {
			err = c.flushLocked()
		}
		c.wmu.Unlock()
		if err != nil {
			return err
		}
		p = p[n:]
	}
	if end {
		c.localDone(st)
	}
	return nil
}

// localDone records that END_STREAM went out on st. A peer still sending
// a body is let finish (what it sends is dropped and credited back, and
// still checked against its content-length) for a grace period, then
// told to stop with RST_STREAM NO_ERROR.
func (c *conn) localDone(st *stream) {
	c.mu.Lock()
	st.localClosed = true
	remoteOpen := !st.remoteClosed && !st.reset
	c.mu.Unlock()
	if !remoteOpen {
		c.endStream(st, false, io.EOF)
		return
	}
	if st.body != nil {
		c.credit(st, st.body.closeWithError(errBodyClosed))
	}
	time.AfterFunc(bodyGrace, func() {
		c.mu.Lock()
		_, open := c.streams[st.id]
		c.mu.Unlock()
		if open {
			c.resetStream(st.id, http2.ErrCodeNo)
		}
	})
}

// bodyGrace is how long a request body may keep coming after its answer
// went out.
const bodyGrace = 2 * time.Second
