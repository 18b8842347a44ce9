package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/store"
)

// errStoreTimeout is the cause of a store read that got no byte within the
// store timeout.
var errStoreTimeout = errors.New("the library store did not answer in time")

// retryAfter is what a client is told to wait when the store is down: the
// edges' stale-if-error covers what they hold; the rest is worth asking
// again soon.
const retryAfter = "2"

// serveObject serves a media segment held in an object store: the body
// streams from a GET to the store (a ranged GET for a Range request),
// never buffered whole. A store that fails before the first byte gets a
// 503 (504 when it is too slow) with Retry-After; one that stalls later
// cuts the response short, so no cache keeps a truncated copy.
func (s *Server) serveObject(w http.ResponseWriter, r *http.Request, e *Entry, rel string, contentType []string, info media.FileInfo) {
	if d, ok := s.catalog.Store().(store.Direct); ok && d.DirectReads() && r.Method == http.MethodGet && plainGet(r) {
		s.serveDirect(w, r, d, e, rel, contentType, info)
		return
	}
	obj := newObjectReader(r.Context(), s.catalog.Store(), e.Version, rel, info.Size, s.catalog.timeout)
	defer obj.Close()
	if rh := r.Header.Get("Range"); rh != "" {
		obj.spans = parseRangeSpans(rh, info.Size)
	}
	// Fetch before answering, so a store error can still be a clean 5xx:
	// always for a whole GET, and for the first range of a Range request
	// without conditions (a conditional one may be a 304, no fetch at all).
	prime := int64(-1)
	switch {
	case r.Method == http.MethodHead:
	case plainGet(r):
		prime = 0
	case len(obj.spans) > 0 && r.Header.Get("If-None-Match") == "" && r.Header.Get("If-Modified-Since") == "" && r.Header.Get("If-Range") == "":
		prime = obj.spans[0][0]
	}
	if prime >= 0 {
		if err := obj.fetch(prime); err != nil {
			s.objectError(w, e, rel, err)
			return
		}
	}
	setEntity(w.Header(), contentType, hdrCacheImmutable, etag(info.SHA256))
	setDigest(w.Header(), info.SHA256)
	if plainGet(r) {
		setWhole(w.Header(), e.lastModified, strconv.FormatInt(info.Size, 10))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			buf := copyBuffers.Get().(*[]byte)
			_, err := io.CopyBuffer(writeOnly{w}, obj, *buf)
			copyBuffers.Put(buf)
			if err != nil {
				s.log.Warn("segment cut short: the store stopped sending", "asset", e.Name, "file", rel, "err", err)
			}
		}
		return
	}
	http.ServeContent(w, r, "", e.Asset.Created, obj)
}

// serveDirect streams a whole segment from a store connection of our own
// to the client: on HTTP/1.1 the body goes from socket to socket with
// splice, never through this process's memory.
func (s *Server) serveDirect(w http.ResponseWriter, r *http.Request, d store.Direct, e *Entry, rel string, contentType []string, info media.FileInfo) {
	body, err := d.OpenDirect(r.Context(), e.Version, rel, s.catalog.timeout)
	if err != nil {
		s.objectError(w, e, rel, err)
		return
	}
	defer body.Close()
	if body.Size != info.Size {
		s.objectError(w, e, rel, fmt.Errorf("%w: %d bytes in the store, asset.json says %d", errDamaged, body.Size, info.Size))
		return
	}
	setEntity(w.Header(), contentType, hdrCacheImmutable, etag(info.SHA256))
	setDigest(w.Header(), info.SHA256)
	setWhole(w.Header(), e.lastModified, strconv.FormatInt(info.Size, 10))
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, body); err != nil {
		s.log.Warn("segment cut short: the store stopped sending", "asset", e.Name, "file", rel, "err", err)
	}
}

// copyBuffers hold the copy buffers of segments streamed from a store:
// bigger than io.Copy's 32 KiB, so a 1 MiB segment is a few writes.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// objectError answers a store read that failed before the response began.
func (s *Server) objectError(w http.ResponseWriter, e *Entry, rel string, err error) {
	switch {
	case errors.Is(err, errDamaged):
		s.noteDamaged(e.Name, rel, e.Version.ID, err)
		httpError(w, http.StatusInternalServerError, "damaged object: the library file does not match asset.json")
	case errors.Is(err, fs.ErrNotExist):
		// The version was pruned under us: the client must reload the manifest.
		s.catalog.Invalidate(e.Name)
		httpError(w, http.StatusNotFound, "asset version gone, reload the manifest")
	default:
		s.storeDown(w, e.Name, rel, err)
	}
}

// storeDown answers 503 (504 for a timeout) with Retry-After for a store
// that did not serve what the request needs.
func (s *Server) storeDown(w http.ResponseWriter, asset, rel string, err error) {
	s.log.Warn("library store unavailable", "asset", asset, "file", rel, "err", err)
	s.metrics.storeErrors.Inc()
	w.Header().Set("Retry-After", retryAfter)
	if errors.Is(err, errStoreTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		httpError(w, http.StatusGatewayTimeout, "library store timed out")
		return
	}
	httpError(w, http.StatusServiceUnavailable, "library store unavailable")
}

// objectReader is an io.ReadSeeker over an object in a store for
// http.ServeContent: seeking is free, and a read fetches from the store
// from where it is to the end of the requested range that holds it (the
// whole object when no Range was asked). Every fetch is bounded: no byte
// for the store timeout cancels it.
type objectReader struct {
	ctx     context.Context
	lib     store.Store
	v       store.Version
	rel     string
	size    int64
	timeout time.Duration
	spans   [][2]int64 // requested ranges, [start, end)

	pos    int64
	body   io.ReadCloser
	bodyAt int64           // the offset body's next byte is at
	bodyTo int64           // where body ends
	fctx   context.Context // the current fetch's
	cancel context.CancelCauseFunc
	timer  *time.Timer
}

func newObjectReader(ctx context.Context, lib store.Store, v store.Version, rel string, size int64, timeout time.Duration) *objectReader {
	return &objectReader{ctx: ctx, lib: lib, v: v, rel: rel, size: size, timeout: timeout}
}

// Seek implements io.Seeker without touching the store.
func (o *objectReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += o.pos
	case io.SeekEnd:
		offset += o.size
	default:
		return 0, fmt.Errorf("seek: whence %d", whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("seek to %d: %w", offset, fs.ErrInvalid)
	}
	o.pos = offset
	return offset, nil
}

// Read implements io.Reader.
func (o *objectReader) Read(p []byte) (int, error) {
	if o.pos >= o.size {
		return 0, io.EOF
	}
	if o.body == nil || o.bodyAt != o.pos || o.pos >= o.bodyTo {
		if err := o.fetch(o.pos); err != nil {
			return 0, err
		}
	}
	p = p[:min(int64(len(p)), o.bodyTo-o.pos)]
	n, err := o.body.Read(p)
	o.pos += int64(n)
	o.bodyAt += int64(n)
	if n > 0 {
		o.timer.Reset(o.timeout)
	}
	if err == io.EOF && o.pos < o.bodyTo {
		err = io.ErrUnexpectedEOF
	}
	if err == io.EOF {
		err = nil // this fetch is done, not the object
	}
	if err != nil {
		err = o.failure(err)
	}
	return n, err
}

// fetch starts a store read at off, to the end of the span holding off.
func (o *objectReader) fetch(off int64) error {
	o.closeBody()
	end := o.size
	for _, sp := range o.spans {
		if off >= sp[0] && off < sp[1] {
			end = sp[1]
			break
		}
	}
	ctx, cancel := context.WithCancelCause(o.ctx)
	o.fctx, o.cancel = ctx, cancel
	o.timer = time.AfterFunc(o.timeout, func() { cancel(errStoreTimeout) })
	body, size, err := o.lib.Open(ctx, o.v, o.rel, off, end-off)
	if err != nil {
		o.closeBody()
		return o.failure(err)
	}
	o.body, o.bodyAt, o.bodyTo = body, off, end
	if size != o.size {
		o.closeBody()
		return fmt.Errorf("%w: %d bytes in the store, asset.json says %d", errDamaged, size, o.size)
	}
	return nil
}

// failure names a timeout as such.
func (o *objectReader) failure(err error) error {
	// The cause is errStoreTimeout only when the timer fired.
	if o.fctx != nil && errors.Is(context.Cause(o.fctx), errStoreTimeout) {
		return fmt.Errorf("%s: %w: %w", o.rel, errStoreTimeout, err)
	}
	return err
}

func (o *objectReader) closeBody() {
	if o.timer != nil {
		o.timer.Stop()
	}
	if o.body != nil {
		if o.bodyAt == o.bodyTo {
			// Everything asked for was read: reading the end of the
			// response (no syscall: its length is known) lets the store
			// connection go back to the pool instead of being closed.
			var end [1]byte
			_, _ = o.body.Read(end[:])
		}
		o.body.Close()
		o.body = nil
	}
	if o.cancel != nil {
		o.cancel(nil)
	}
}

// Close ends any read in flight.
func (o *objectReader) Close() error {
	o.closeBody()
	return nil
}

// parseRangeSpans reads a Range header's byte ranges, [start, end) within
// size, only as a hint of what to fetch: http.ServeContent validates the
// header and answers it. A malformed header gives nil.
func parseRangeSpans(h string, size int64) [][2]int64 {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || size <= 0 {
		return nil
	}
	var spans [][2]int64
	for part := range strings.SplitSeq(spec, ",") {
		first, last, ok := strings.Cut(strings.TrimSpace(part), "-")
		if !ok {
			return nil
		}
		first, last = strings.TrimSpace(first), strings.TrimSpace(last)
		var start, end int64
		if first == "" {
			n, err := strconv.ParseInt(last, 10, 64)
			if err != nil || n <= 0 {
				return nil
			}
			start, end = max(0, size-n), size
		} else {
			a, err := strconv.ParseInt(first, 10, 64)
			if err != nil || a < 0 || a >= size {
				return nil
			}
			start, end = a, size
			if last != "" {
				b, err := strconv.ParseInt(last, 10, 64)
				if err != nil || b < a {
					return nil
				}
				end = min(b, size-1) + 1 // b+1 could overflow
			}
		}
		spans = append(spans, [2]int64{start, end})
	}
	return spans
}
