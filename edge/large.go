package edge

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/deepcast/deepcast/edge/httpsem"
)

// Large objects.
//
// An object is read into memory whole only when it is small (at most
// Node.maxMemObject bytes) and the bytes of all such reads in flight fit
// the node's in-flight budget; every other object is spooled: its bytes go
// to a file as they come from upstream, and every client that asks for it
// meanwhile is sent them from that file as they arrive (one upstream
// request, however many readers). A completed spool enters the disk tier
// when there is one, and is served from there by file; without a disk tier
// it is not kept. So the memory a node holds is its memory tier (-mem),
// the in-flight budget, and per-connection buffers, whatever the mix of
// object sizes.

// errFillGone is a spool that finished and was removed before a reader
// joined it: the reader looks the object up again.
var errFillGone = errors.New("spooled object finished before the reader joined")

// fill is one object being spooled from upstream to a file.
type fill struct {
	key  string
	meta *object // headers and freshness, no Body
	size int64   // Content-Length, or -1 when upstream sent none
	path string
	file *os.File // written by run, read by readers (pread)
	keep bool     // cacheable: a complete fill enters the disk tier

	mu      sync.Mutex
	cond    *sync.Cond
	written int64
	done    bool
	err     error // why the fill failed, when done
	readers int
	joined  bool // a reader has joined (so none left means all left)
	lapsed  bool // the grace after the end is over: no more readers join
	closed  bool // file closed and removed
}

// fillGrace is how long a finished spool stays joinable: the requests that
// shared its fetch (or came just after) join it within microseconds, but
// under load a goroutine may wait a while for a CPU, and one that found the
// file gone would have to fetch again.
const fillGrace = 2 * time.Second

// bigObject is an object served from a file: complete (on the disk tier,
// path at offset) or still being spooled (fill).
type bigObject struct {
	meta   *object
	size   int64 // -1: unknown until the fill ends
	fill   *fill
	path   string
	offset int64
}

// spoolDir is where fills write: beside the disk tier (same file system,
// so a finished spool is copied within it), else the system's temp folder.
func (n *Node) spoolDir() string {
	if n.cfg.SpoolDir != "" {
		return n.cfg.SpoolDir
	}
	if n.disk != nil {
		return filepath.Join(n.disk.dir, spoolFolder)
	}
	return os.TempDir()
}

// startFill spools resp's body (after prefix, bytes already read from it)
// in the background, and returns the object to serve from it. cancel
// aborts the upstream request; the fill owns it.
func (n *Node) startFill(key string, meta *object, keep bool, resp *http.Response, prefix []byte, cancel context.CancelFunc) (*bigObject, error) {
	dir := n.spoolDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	file, err := os.CreateTemp(dir, "deepcast-spool-")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	f := &fill{key: key, meta: meta, keep: keep, size: resp.ContentLength, path: file.Name(), file: file}
	f.cond = sync.NewCond(&f.mu)
	n.fillsMu.Lock()
	n.fills[key] = f
	n.fillsMu.Unlock()
	n.stats.spooled.Add(1)
	n.wg.Go(func() { n.runFill(f, resp.Body, prefix, cancel) })
	return &bigObject{meta: meta, size: f.size, fill: f}, nil
}

// runFill copies body to the fill's file; a body that stalls for
// FetchTimeout is abandoned. A complete object enters the disk tier.
func (n *Node) runFill(f *fill, body io.ReadCloser, prefix []byte, cancel context.CancelFunc) {
	defer cancel()
	defer body.Close()
	sum := sha256.New()
	stalled := time.AfterFunc(n.cfg.FetchTimeout, cancel)
	defer stalled.Stop()
	body = &progressBody{ReadCloser: body, stalled: stalled, limit: n.cfg.FetchTimeout}
	// With a Repr-Digest to check, the last byte received is withheld
	// from readers until the whole body has matched it: a body that does
	// not match reaches no client whole (each is cut one byte short, so
	// neither a player nor a cache below takes it for the object).
	var hold int64
	if f.meta.Digest != "" {
		hold = 1
	}
	var got int64
	write := func(p []byte) error {
		if _, err := f.file.Write(p); err != nil {
			return fmt.Errorf("spool %s: %w", f.path, err)
		}
		sum.Write(p)
		got += int64(len(p))
		f.mu.Lock()
		f.written = max(0, got-hold)
		f.mu.Unlock()
		f.cond.Broadcast()
		return nil
	}
	err := write(prefix)
	buf := make([]byte, 256<<10)
	for err == nil {
		k, rerr := body.Read(buf)
		if k > 0 {
			err = write(buf[:k])
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil && err == nil {
			err = fmt.Errorf("upstream body: %w", rerr)
		}
		if err == nil && n.ctx.Err() != nil {
			err = n.ctx.Err()
		}
		if err == nil && n.disk == nil && f.abandoned() {
			err = errors.New("every reader left and there is no disk tier to keep it")
		}
	}
	written := got
	if err == nil && f.size >= 0 && written != f.size {
		err = fmt.Errorf("upstream body: %d bytes of %d", written, f.size)
	}
	if err == nil {
		err = n.checkDigest(f.meta.Digest, [32]byte(sum.Sum(nil)))
	}
	if err == nil && n.disk != nil && f.keep {
		if perr := n.disk.putFile(f.meta, sum.Sum(nil), f.file, written); perr != nil {
			n.log.Warn("disk tier write failed", "key", f.key, "err", perr)
		}
	}
	if err != nil {
		n.stats.errors.Add(1)
		n.log.Warn("spooled fetch failed", "key", f.key, "err", err)
	}
	f.mu.Lock()
	f.done, f.err = true, err
	if err == nil {
		f.written = written // the byte withheld for the digest check
	}
	if f.size < 0 {
		f.size = written
	}
	f.mu.Unlock()
	f.cond.Broadcast()
	forget := func() {
		n.fillsMu.Lock()
		if n.fills[f.key] == f {
			delete(n.fills, f.key)
		}
		n.fillsMu.Unlock()
	}
	if err != nil {
		forget() // the next request fetches anew
	}
	// A finished spool stays joinable for a grace period; then later
	// requests find the disk tier (or fetch anew), and the file goes when
	// its last reader does.
	time.AfterFunc(fillGrace, func() {
		forget()
		f.mu.Lock()
		f.lapsed = true
		f.mu.Unlock()
		f.release(0)
	})
}

// abandoned reports a fill whose readers all left.
func (f *fill) abandoned() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.joined && f.readers == 0
}

// release drops delta readers and closes and removes the file once the
// fill is done and nobody reads it.
func (f *fill) release(delta int) {
	f.mu.Lock()
	f.readers -= delta
	last := f.done && f.lapsed && f.readers == 0 && !f.closed
	if last {
		f.closed = true
	}
	f.mu.Unlock()
	if last {
		f.file.Close()
		os.Remove(f.path)
	}
}

// join returns a reader of the fill's bytes from the start, which blocks
// until they have arrived; errFillGone when the fill is over and closed.
func (f *fill) join() (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.done && f.err != nil {
		return nil, errFillGone
	}
	f.readers++
	f.joined = true
	return &fillReader{f: f}, nil
}

// fillReader reads a fill at its own offset.
type fillReader struct {
	f      *fill
	off    int64
	closed bool
}

func (r *fillReader) Read(p []byte) (int, error) {
	f := r.f
	f.mu.Lock()
	for f.written <= r.off && !f.done {
		f.cond.Wait()
	}
	avail, done, ferr := f.written-r.off, f.done, f.err
	f.mu.Unlock()
	if avail <= 0 {
		if done && ferr != nil {
			return 0, ferr
		}
		return 0, io.EOF
	}
	k, err := f.file.ReadAt(p[:min(int64(len(p)), avail)], r.off)
	r.off += int64(k)
	if err == io.EOF && k > 0 {
		err = nil
	}
	return k, err
}

func (r *fillReader) Close() error {
	if !r.closed {
		r.closed = true
		r.f.release(1)
	}
	return nil
}

// open returns a reader of the whole body and, for a complete file, a
// seekable one (ranges and conditions apply to it).
func (b *bigObject) open() (io.ReadCloser, io.ReadSeeker, error) {
	if b.fill != nil {
		rc, err := b.fill.join()
		return rc, nil, err
	}
	file, err := os.Open(b.path)
	if err != nil {
		return nil, nil, err
	}
	st, err := file.Stat()
	if err != nil || st.Size() != b.offset+b.size {
		file.Close()
		return nil, nil, fmt.Errorf("disk tier: %s changed under us", b.path)
	}
	sr := io.NewSectionReader(file, b.offset, b.size)
	return file, sr, nil
}

// inflight returns the object being spooled for key, if any.
func (n *Node) inflight(key string) *bigObject {
	n.fillsMu.Lock()
	f := n.fills[key]
	n.fillsMu.Unlock()
	if f == nil {
		return nil
	}
	return &bigObject{meta: f.meta, size: f.size, fill: f}
}

// respondBig sends a large object through net/http: from a complete file
// with ranges and conditions; from a fill as it arrives (a Range is
// ignored, as RFC 9110 lets a server do, and the whole object is sent).
func (n *Node) respondBig(w http.ResponseWriter, r *http.Request, b *bigObject, cacheStatus string, upstreamCMSD upstreamAdvice) {
	body, seeker, err := b.open()
	if err != nil {
		n.log.Warn("large object unreadable", "key", b.meta.Key, "err", err)
		w.Header().Set("Cache-Status", n.cfg.Name+"; fwd=uri-miss; detail=spool-gone")
		httpError(w, http.StatusServiceUnavailable, "object being replaced, retry")
		w.Header().Set("Retry-After", "1")
		return
	}
	defer body.Close()
	h := w.Header()
	for k, v := range b.meta.headers(n.via) {
		h[k] = v
	}
	h["Age"] = []string{strconv.Itoa(int(b.meta.age(time.Now()).Seconds()))}
	h["Cache-Status"] = []string{cacheStatus}
	n.adviseIn(h, r, upstreamCMSD)
	if seeker != nil {
		lm, _ := http.ParseTime(b.meta.LastModified)
		http.ServeContent(w, r, "", lm, seeker)
		return
	}
	if httpsem.NotModified(r.Header, b.meta.ETag, b.meta.LastModified) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if b.size >= 0 {
		h["Content-Length"] = []string{strconv.FormatInt(b.size, 10)}
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	src := &readErr{r: body}
	if _, err := io.Copy(w, src); err != nil && src.err != nil {
		// The fill failed (upstream cut, digest mismatch). Without a
		// Content-Length, ending the response would end a chunked body
		// cleanly, and the client, or a cache below, would take the part
		// for the whole: the response is aborted instead.
		panic(http.ErrAbortHandler)
	}
}

// readErr remembers the error of its reader, so a copy's error can be
// told apart from the writer's (a client that left).
type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}
