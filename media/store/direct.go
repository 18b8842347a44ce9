package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Direct is a store that can hand out a whole object as the rest of a
// socket read, so a server can move it to its client with splice(2):
// no copy through user space, which is most of what a proxy in front of
// an object store costs.
type Direct interface {
	// DirectReads reports whether OpenDirect works on this store.
	DirectReads() bool
	// OpenDirect GETs a whole file of a version; timeout bounds the wait
	// for the answer and then, scaled by the size, the body.
	OpenDirect(ctx context.Context, v Version, rel string, timeout time.Duration) (*DirectBody, error)
}

// DirectBody is an object's body on a store connection. Read it, or let
// io.Copy call WriteTo, then Close it.
type DirectBody struct {
	// Size is the object's length.
	Size int64

	buffered []byte       // body bytes read together with the header
	conn     *net.TCPConn // the rest is here
	rest     int64        // body bytes still on conn
	pool     *connPool
	stop     func() bool // ends the watch on ctx
	keep     bool        // the store lets the connection be reused
}

// Read implements io.Reader.
func (b *DirectBody) Read(p []byte) (int, error) {
	if len(b.buffered) > 0 {
		n := copy(p, b.buffered)
		b.buffered = b.buffered[n:]
		return n, nil
	}
	if b.rest <= 0 {
		return 0, io.EOF
	}
	n, err := b.conn.Read(p[:min(int64(len(p)), b.rest)])
	b.rest -= int64(n)
	if err == io.EOF && b.rest > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// WriteTo writes the body to w: what was buffered, then the rest straight
// from the store's socket, which a writer with ReadFrom on a TCP socket
// (net/http's ResponseWriter) splices.
func (b *DirectBody) WriteTo(w io.Writer) (int64, error) {
	var total int64
	if len(b.buffered) > 0 {
		n, err := w.Write(b.buffered)
		total += int64(n)
		b.buffered = b.buffered[n:]
		if err != nil {
			return total, err
		}
	}
	if b.rest <= 0 {
		return total, nil
	}
	// The body goes in steps of wakeChunk, the socket told to wake its
	// reader only once wakeChunk bytes are waiting, but never for more
	// than the body still has to bring after the step began (a copy part
	// way into a step would otherwise wait for bytes that never come): so
	// the last step wakes for every burst. Back to waking at once before
	// the connection can carry another answer. The mark is set only when
	// it changes (each setsockopt costs microseconds): a connection comes
	// here with it at 1.
	wake := int64(1)
	defer func() {
		if wake != 1 {
			setWakeAt(b.conn, 1)
		}
	}()
	for b.rest > 0 {
		step := min(wakeChunk, b.rest)
		if w := max(1, min(wakeChunk, b.rest-step)); w != wake {
			setWakeAt(b.conn, int(w))
			wake = w
		}
		lr := &io.LimitedReader{R: b.conn, N: step}
		n, err := io.Copy(w, lr)
		total += n
		b.rest -= n
		if err != nil {
			return total, err
		}
		if lr.N > 0 {
			return total, io.ErrUnexpectedEOF
		}
	}
	return total, nil
}

// wakeChunk is how much of a body must be waiting on the store's socket
// before the copy wakes up (SO_RCVLOWAT, where there is one). A body from a
// store across a link arrives in many small bursts, and each wakeup costs a
// trip through the netpoller and a pair of splice calls: woken per burst,
// the origin spent 9.9 ms of CPU on a 1 MiB segment from a store behind a
// 1 Gbit/s link (nginx as the proxy: 7.2 ms); woken per 256 KiB, 5.4–6.0
// ms over three runs (`make bench`, TestBenchS3OriginVsDirect). 256 KiB was
// the one size tried: a quarter of a typical segment.
const wakeChunk = 256 << 10

// Close returns the connection to the pool when the body was read whole.
func (b *DirectBody) Close() error {
	if b.conn == nil {
		return nil
	}
	watched := b.stop()
	if watched && b.keep && b.rest == 0 && len(b.buffered) == 0 {
		b.pool.put(b.conn)
	} else {
		b.conn.Close()
	}
	b.conn = nil
	return nil
}

// connPool keeps idle plain connections to one store endpoint.
type connPool struct {
	mu   sync.Mutex
	idle []*net.TCPConn
}

const maxIdleDirect = 256

func (p *connPool) get() *net.TCPConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		return c
	}
	return nil
}

func (p *connPool) put(c *net.TCPConn) {
	c.SetDeadline(time.Time{})
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) >= maxIdleDirect {
		c.Close()
		return
	}
	p.idle = append(p.idle, c)
}

// directFor reports whether the store can be read directly: a plain
// http:// endpoint (splice cannot see through TLS).
func directFor(endpoint string) bool {
	u, err := url.Parse(endpoint)
	return err == nil && u.Scheme == "http" && u.Host != ""
}

// minRate bounds how slowly a body may arrive: a 1 MiB segment gets
// the timeout plus one second.
const minRate = 1 << 20

// DirectReads is true for a plain-HTTP endpoint (unless S3Options.NoDirect).
func (s *S3) DirectReads() bool { return s.direct }

// OpenDirect implements Direct for a plain-HTTP endpoint: the GET is
// signed by the SDK (a presigned URL) and sent on a pooled connection of
// our own, whose socket then carries the body.
func (s *S3) OpenDirect(ctx context.Context, v Version, rel string, timeout time.Duration) (*DirectBody, error) {
	if !s.direct {
		return nil, fmt.Errorf("store %s: %w", s.location, errors.ErrUnsupported)
	}
	if err := checkRel(rel); err != nil {
		return nil, err
	}
	if !isVersionName(v.ID) {
		return nil, fmt.Errorf("version %q: %w", v.ID, fs.ErrInvalid)
	}
	key := s.versionKey(v.ID, rel)
	req, err := s.signedGet(ctx, key)
	if err != nil {
		return nil, err
	}
	// A pooled connection the store has closed fails at once: one retry
	// on a fresh connection.
	for attempt := 0; ; attempt++ {
		var conn *net.TCPConn
		if attempt == 0 {
			conn = s.pool.get()
		}
		reused := conn != nil
		if conn == nil {
			reused = false
			d := net.Dialer{Timeout: timeout}
			c, err := d.DialContext(ctx, "tcp", req.host)
			if err != nil {
				return nil, fmt.Errorf("read %s: %w: %w", key, ErrUnavailable, err)
			}
			conn = c.(*net.TCPConn)
		}
		body, err := s.exchange(ctx, conn, req.head, key, timeout)
		if err != nil && reused && attempt == 0 && !isAnswer(err) {
			continue
		}
		return body, err
	}
}

// signedRequest is a presigned GET as written on the wire.
type signedRequest struct {
	head    string // request line and header block
	host    string
	expires time.Time
}

// Presigned GETs are reused for a while: signing costs more than a
// small segment's whole exchange.
const (
	presignFor   = 15 * time.Minute
	presignReuse = 10 * time.Minute
	maxPresigned = 1 << 16
)

// signedGet returns the request for key, signed by the SDK.
func (s *S3) signedGet(ctx context.Context, key string) (*signedRequest, error) {
	now := time.Now()
	if r, ok := s.signed.Load(key); ok && now.Before(r.(*signedRequest).expires) {
		return r.(*signedRequest), nil
	}
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(key)}, s3.WithPresignExpires(presignFor))
	if err != nil {
		return nil, s.fail("sign", key, err)
	}
	u, err := url.Parse(req.URL)
	if err != nil {
		return nil, fmt.Errorf("presigned URL: %w", err)
	}
	var head strings.Builder
	head.WriteString("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\n")
	for k, vs := range req.SignedHeader {
		if !strings.EqualFold(k, "Host") {
			for _, v := range vs {
				head.WriteString(k + ": " + v + "\r\n")
			}
		}
	}
	head.WriteString("\r\n")
	r := &signedRequest{head: head.String(), host: u.Host, expires: now.Add(presignReuse)}
	if s.nsigned.Add(1) > maxPresigned {
		s.signed.Clear() // a bound, not an LRU: the hot keys are signed again at once
		s.nsigned.Store(0)
	}
	s.signed.Store(key, r)
	return r, nil
}

// answerError is a store's answer that is not the object.
type answerError struct{ err error }

func (e answerError) Error() string { return e.err.Error() }
func (e answerError) Unwrap() error { return e.err }

func isAnswer(err error) bool {
	var a answerError
	return errors.As(err, &a)
}

// exchange sends the request on conn and reads the answer's header.
func (s *S3) exchange(ctx context.Context, conn *net.TCPConn, head, key string, timeout time.Duration) (*DirectBody, error) {
	conn.SetDeadline(time.Now().Add(timeout))
	// Cancelling ctx (the client went away) unblocks every read.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	fail := func(err error) (*DirectBody, error) {
		stop()
		conn.Close()
		return nil, err
	}
	if _, err := io.WriteString(conn, head); err != nil {
		return fail(fmt.Errorf("read %s: %w: %w", key, ErrUnavailable, err))
	}
	br := bufio.NewReaderSize(conn, 32<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fail(fmt.Errorf("read %s: %w: %w", key, ErrUnavailable, err))
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fail(answerError{fmt.Errorf("read %s: %w", key, fs.ErrNotExist)})
	case resp.StatusCode != http.StatusOK || resp.ContentLength < 0:
		return fail(answerError{fmt.Errorf("read %s: %w: the store answered %s", key, ErrUnavailable, resp.Status)})
	}
	size := resp.ContentLength
	buffered, _ := br.Peek(min(br.Buffered(), int(size)))
	body := &DirectBody{Size: size, buffered: append([]byte(nil), buffered...), conn: conn, pool: &s.pool, stop: stop, keep: !resp.Close}
	body.rest = size - int64(len(body.buffered))
	conn.SetDeadline(time.Now().Add(timeout + time.Duration(size/minRate)*time.Second))
	return body, nil
}
