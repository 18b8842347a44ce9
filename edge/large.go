package edge

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
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

// fill is one object coming from upstream, sent to its readers as it
// comes: spooled to a file, or read into memory (mem) when it is small.
type fill struct {
	key  string
	meta *object // headers and freshness, no Body
	size int64   // Content-Length, or -1 when upstream sent none
	path string
	file *os.File // written by run, read by readers (pread); nil in memory
	mem  []byte   // the body, of size bytes, when read into memory
	// pending is the body so far of a fill of unknown length not yet
	// spooled to a file (file nil): one that comes whole and small
	// within StreamAfter never needs one. It holds budget bytes of the
	// node's in-flight budget.
	pending []byte
	budget  int64
	keep    bool // cacheable: a complete fill enters the cache
	// whole makes the object of a complete fill small enough for memory
	// (nil: none is kept there), from its body and the body's SHA-256:
	// one read slowly is kept like one read at once.
	whole func(body []byte, sum [32]byte) *object
	// again is how to ask an upstream for the rest after a cut (nil: the
	// body cannot be resumed).
	again *resumeRequest

	start time.Time // when the fill began: its rate so far is written over the time since

	mu      sync.Mutex
	cond    *sync.Cond
	written int64
	done    bool
	err     error         // why the fill failed, when done
	sum     [32]byte      // the body's SHA-256, when done without err
	over    chan struct{} // closed when done
	// published: readers may join (always, for a spool). A fill in
	// memory is published only when its body has not come whole within
	// StreamAfter; until then the fetch that started it waits, and takes
	// the object (or the failure) itself.
	published bool
	ahead     int // ranges of it being fetched apart (rangeAhead)
	readers   int
	joined    bool // a reader has joined (so none left means all left)
	lapsed    bool // the grace after the end is over: no more readers join
	closed    bool // file closed and removed
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

// newFill is a fill of key, size bytes (-1: unknown), before its storage
// (a file or memory) is set.
func newFill(key string, meta *object, keep bool, size int64, whole func([]byte, [32]byte) *object, again *resumeRequest) *fill {
	f := &fill{key: key, meta: meta, keep: keep, size: size, whole: whole, again: again, over: make(chan struct{}), start: time.Now()}
	f.cond = sync.NewCond(&f.mu)
	return f
}

// startFill spools resp's body (after prefix, bytes already read from it)
// in the background, and returns the object to serve from it. cancel
// aborts the upstream request; the fill owns it. whole and again are
// the fill's (nil for none).
func (n *Node) startFill(key string, meta *object, keep bool, resp *http.Response, prefix []byte, cancel context.CancelFunc,
	whole func([]byte, [32]byte) *object, again *resumeRequest) (*bigObject, error) {
	dir := n.spoolDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	file, err := os.CreateTemp(dir, "deepcast-spool-")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	f := newFill(key, meta, keep, resp.ContentLength, whole, again)
	f.path, f.file, f.published = file.Name(), file, true
	n.fillsMu.Lock()
	n.fills[key] = f
	n.fillsMu.Unlock()
	n.stats.spooled.Add(1)
	n.wg.Go(func() { n.runFill(f, resp.Body, prefix, cancel, n.cfg.FetchTimeout) })
	return &bigObject{meta: meta, size: f.size, fill: f}, nil
}

// readInMemory reads resp's body, of size bytes (small), into memory
// through a fill, and waits for it: it returns the object when the body
// came whole within StreamAfter (or the failure, which the caller may
// retry elsewhere), else the fill, published for readers to join, which
// goes on in the background. cancel aborts the upstream request, and the
// fill owns it; a pause of limit in the body abandons it. The in-flight
// budget's size bytes are the fill's, released when it ends.
func (n *Node) readInMemory(key string, meta *object, keep bool, resp *http.Response, cancel context.CancelFunc, limit time.Duration,
	whole func([]byte, [32]byte) *object, again *resumeRequest) (*object, *bigObject, error) {
	f := newFill(key, meta, keep, resp.ContentLength, whole, again)
	f.mem = make([]byte, f.size)
	n.wg.Go(func() {
		defer n.inflightBudget.Release(f.size)
		n.runFill(f, resp.Body, nil, cancel, limit)
	})
	var slow <-chan time.Time
	if n.cfg.StreamAfter > 0 {
		t := time.NewTimer(n.cfg.StreamAfter)
		defer t.Stop()
		slow = t.C
	}
	select {
	case <-f.over:
	case <-slow:
	}
	f.mu.Lock()
	done, err, sum := f.done, f.err, f.sum
	if !done {
		n.publishLocked(f)
	}
	f.mu.Unlock()
	switch {
	case err != nil:
		return nil, nil, err
	case done:
		return whole(f.mem, sum), nil, nil
	}
	n.stats.slowStreamed.Add(1)
	return nil, &bigObject{meta: meta, size: f.size, fill: f}, nil
}

// readUnknownLength reads resp's body, of unknown length (no
// Content-Length: a chunked answer), through a fill, and waits for it as
// readInMemory does: it returns the object when the body came whole
// within StreamAfter and is small enough for memory (or the failure,
// which the caller may retry elsewhere), else the fill, published for
// readers to join, which goes on in the background. The fill holds the
// body in memory (within the in-flight budget) until it is published or
// grows larger than memory objects; then it spools it to a file, and a
// body that grew so large and came whole within StreamAfter is published
// by runFill and goes to the disk tier as any spool. cancel aborts the
// upstream request, and the fill owns it; a pause of limit in the body
// abandons it.
func (n *Node) readUnknownLength(key string, meta *object, keep bool, resp *http.Response, cancel context.CancelFunc, limit time.Duration,
	whole func([]byte, [32]byte) *object) (*object, *bigObject, error) {
	f := newFill(key, meta, keep, -1, whole, nil)
	if n.inflightBudget.TryAcquire(n.maxMemObject) {
		f.budget = n.maxMemObject
	} else if err := f.spoolLocked(n); err != nil { // memory is busy: a file from the start
		cancel()
		return nil, nil, err
	}
	n.wg.Go(func() { n.runFill(f, resp.Body, nil, cancel, limit) })
	t := time.NewTimer(n.cfg.StreamAfter)
	defer t.Stop()
	select {
	case <-f.over:
	case <-t.C:
	}
	f.mu.Lock()
	done, published, err, sum, size := f.done, f.published, f.err, f.sum, f.size
	if !done {
		if serr := f.spoolLocked(n); serr != nil {
			// No file to stream from: the body is waited for whole.
			n.log.Warn("slow miss not streamed", "key", key, "err", serr)
			f.mu.Unlock()
			<-f.over
			f.mu.Lock()
			done, published, err, sum, size = f.done, f.published, f.err, f.sum, f.size
		} else {
			n.publishLocked(f)
		}
	}
	body, budget := f.pending, f.budget
	f.pending, f.budget = nil, 0
	f.mu.Unlock()
	defer n.inflightBudget.Release(budget)
	switch {
	case published || !done:
		n.stats.spooled.Add(1)
		if !published {
			n.stats.slowStreamed.Add(1)
		}
		return nil, &bigObject{meta: meta, size: size, fill: f}, nil // size -1 unless whole already
	case err != nil:
		f.removeFile()
		return nil, nil, err
	}
	// Whole and small, never spooled: kept as a body read at once is,
	// without slack capacity.
	return whole(bytes.Clone(body), sum), nil, nil
}

// spoolLocked moves f's pending body to a new spool file, which the rest
// of it is written to (f.mu held), and gives back the in-flight budget
// it held; a fill already spooled is left as it is.
func (f *fill) spoolLocked(n *Node) error {
	if f.file != nil {
		return nil
	}
	dir := n.spoolDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	file, err := os.CreateTemp(dir, "deepcast-spool-")
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if _, err := file.Write(f.pending); err != nil {
		file.Close()
		os.Remove(file.Name())
		return fmt.Errorf("spool %s: %w", file.Name(), err)
	}
	f.path, f.file, f.pending = file.Name(), file, nil
	n.inflightBudget.Release(f.budget)
	f.budget = 0
	return nil
}

// removeFile closes and removes the spool file of a fill nobody reads
// (never published), if it has one.
func (f *fill) removeFile() {
	if f.file != nil {
		f.file.Close()
		os.Remove(f.path)
	}
}

// publishLocked makes f joinable (f.mu held): listed in the node's fills
// before runFill can see it published, so that the end of the fill
// (which forgets it) always comes after.
func (n *Node) publishLocked(f *fill) {
	f.published = true
	n.fillsMu.Lock()
	n.fills[f.key] = f
	n.fillsMu.Unlock()
}

// fillBuffers are the read buffers of fills not read in place: a fresh
// 256 KiB one for each small chunked miss would cost more than the miss.
var fillBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// runFill copies body to the fill's file or memory; a body that pauses
// for limit is abandoned, and one cut off is resumed where it stopped
// (resumeFill). A complete object enters the memory tier when small
// enough (whole), else the disk tier; one that was never published is
// left to the fetch that waits for it.
func (n *Node) runFill(f *fill, body io.ReadCloser, prefix []byte, cancel context.CancelFunc, limit time.Duration) {
	src := n.boundBody(body, cancel, limit)
	defer func() { src.Close() }()
	sum := sha256.New()
	// With a Repr-Digest to check, the last byte received is withheld
	// from readers until the whole body has matched it: a body that does
	// not match reaches no client whole (each is cut one byte short, so
	// neither a player nor a cache below takes it for the object).
	var hold int64
	if f.meta.Digest != "" {
		hold = 1
	}
	var got int64
	// write records p, the next bytes of the body: read in place into
	// f.mem (at got) for a fill in memory, else written to the file.
	write := func(p []byte) error {
		if f.mem != nil {
			if int64(len(p)) > f.size-got || &p[0] != &f.mem[got] {
				return fmt.Errorf("upstream body: longer than its %d bytes", f.size)
			}
		} else if file, err := f.spoolFor(n, got+int64(len(p)), p); err != nil {
			return err
		} else if file != nil {
			if _, err := file.Write(p); err != nil {
				return fmt.Errorf("spool %s: %w", f.path, err)
			}
		}
		sum.Write(p)
		got += int64(len(p))
		f.mu.Lock()
		f.written = max(0, got-hold)
		f.mu.Unlock()
		f.cond.Broadcast()
		return nil
	}
	var err error
	if len(prefix) > 0 {
		err = write(prefix)
	}
	var buf []byte
	var past [1]byte // a fill in memory reads past its length here: any byte is one too many
	if f.mem == nil {
		b := fillBuffers.Get().(*[]byte)
		defer fillBuffers.Put(b)
		buf = *b
	}
	resumes := 0
	for err == nil {
		p := buf
		if f.mem != nil {
			p = f.mem[got:]
			if len(p) == 0 {
				p = past[:]
			}
		}
		k, rerr := src.Read(p)
		if k > 0 {
			err = write(p[:k])
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil && err == nil {
			err = fmt.Errorf("upstream body: %w", rerr)
			if resumes < maxResumes && n.ctx.Err() == nil && !f.unwanted(n) {
				resumes++
				next, aerr := n.resumeFill(f, got)
				if aerr == nil {
					n.log.Info("upstream body cut off, resumed", "key", f.key, "at", got, "err", rerr)
					src.Close()
					src, err = next, nil
					continue
				}
				err = fmt.Errorf("%w; not resumed: %w", err, aerr)
			}
		}
		if err == nil && n.ctx.Err() != nil {
			err = n.ctx.Err()
		}
		if err == nil && f.unwanted(n) {
			err = errors.New("every reader left and there is no tier to keep it")
		}
	}
	written := got
	if err == nil && f.size >= 0 && written != f.size {
		err = fmt.Errorf("upstream body: %d bytes of %d", written, f.size)
	}
	var digest [32]byte
	if err == nil {
		digest = [32]byte(sum.Sum(nil))
		err = n.checkDigest(f.meta.Digest, digest)
	}
	f.mu.Lock()
	if !f.published && (err != nil || f.mem != nil || f.file == nil) {
		// Whole (or failed) within StreamAfter: the fetch waiting for it
		// takes it, as it would a body read at once.
		f.done, f.err, f.sum, f.written = true, err, digest, written
		f.mu.Unlock()
		close(f.over)
		return
	}
	if !f.published {
		// A body of unknown length, whole within StreamAfter but spooled
		// (too large for memory, or memory was busy): served from its
		// file, as any spool.
		n.publishLocked(f)
	}
	f.mu.Unlock()
	if err == nil && f.keep {
		if f.whole != nil && written <= n.maxMemObject {
			n.keepWhole(f, written, digest)
		} else if n.disk != nil {
			if perr := n.disk.putFile(f.meta, digest[:], f.file, written); perr != nil {
				n.log.Warn("disk tier write failed", "key", f.key, "err", perr)
			}
		}
	}
	if err != nil {
		n.stats.errors.Add(1)
		n.log.Warn("streamed fetch failed", "key", f.key, "err", err)
	}
	f.mu.Lock()
	f.done, f.err, f.sum = true, err, digest
	if err == nil {
		f.written = written // the byte withheld for the digest check
	}
	if f.size < 0 {
		f.size = written
	}
	f.mu.Unlock()
	f.cond.Broadcast()
	close(f.over)
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

// unwanted reports a fill whose readers all left and that no tier would
// keep: finishing it would cost its upstream for nothing.
func (f *fill) unwanted(n *Node) bool {
	return n.disk == nil && (f.whole == nil || !f.keep) && f.abandoned()
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
	if last && f.file != nil {
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
	if f.mem != nil {
		k := copy(p[:min(int64(len(p)), avail)], f.mem[r.off:])
		r.off += int64(k)
		return k, nil
	}
	k, err := f.file.ReadAt(p[:min(int64(len(p)), avail)], r.off)
	r.off += int64(k)
	if err == io.EOF && k > 0 {
		err = nil
	}
	return k, err
}

// Seek sets where the next Read starts, so that ServeContent can answer
// ranges of a fill whose size is known: a read past what has come waits
// for it.
func (r *fillReader) Seek(offset int64, whence int) (int64, error) {
	at := offset
	switch whence {
	case io.SeekCurrent:
		at += r.off
	case io.SeekEnd:
		if r.f.size < 0 {
			return r.off, errors.New("seek from the end of a fill of unknown length")
		}
		at += r.f.size
	}
	if at < 0 {
		return r.off, errors.New("seek before the start of a fill")
	}
	r.off = at
	return at, nil
}

// reaches reports whether f has come to byte at, or will within d at its
// rate so far (or is over: what did not come will not). A fill younger
// than d is taken to bring in d what it brought so far: its first bytes
// come in a burst (what the upstream had sent before the node read any),
// and a rate over that burst alone would promise far more than the link
// brings.
func (f *fill) reaches(at int64, d time.Duration) bool { return f.eta(at, d) <= d }

// eta is how long the fill will take to reach byte at, at its rate so far
// taken as reaches takes it: 0 when it has, or is over; about 290 years
// (the longest Duration) when nothing has come.
func (f *fill) eta(at int64, d time.Duration) time.Duration {
	f.mu.Lock()
	written, done := f.written, f.done
	f.mu.Unlock()
	if at < written || done {
		return 0
	}
	rate := float64(written) / max(time.Since(f.start), d).Seconds()
	secs := float64(at-written) / rate
	if rate <= 0 || secs >= math.MaxInt64/float64(time.Second) {
		return math.MaxInt64
	}
	return time.Duration(secs * float64(time.Second))
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

// spoolFor takes p, the body's next bytes up to total, for a fill of
// unknown length: into its pending body while that is not spooled and
// stays within memory objects (nil file), else it returns the spool file
// to write p to (spooling the pending body first).
func (f *fill) spoolFor(n *Node, total int64, p []byte) (*os.File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.file == nil && total > n.maxMemObject {
		if err := f.spoolLocked(n); err != nil {
			return nil, err
		}
	}
	if f.file == nil {
		if int(total) > cap(f.pending) {
			// Doubling, but never past the budget held for it.
			grown := make([]byte, len(f.pending), min(max(2*cap(f.pending), int(total)), int(f.budget)))
			copy(grown, f.pending)
			f.pending = grown
		}
		f.pending = append(f.pending, p...)
	}
	return f.file, nil
}

// settled waits until f is over or, when its length is unknown, has
// brought more than small bytes; false when ctx ends first.
func (f *fill) settled(ctx context.Context, unknown bool, small int64) bool {
	if !unknown {
		select {
		case <-f.over:
			return true
		case <-ctx.Done():
			return false
		}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		f.mu.Lock()
		large := f.written > small
		f.mu.Unlock()
		if large {
			return true
		}
		select {
		case <-f.over:
			return true
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// length is f's length: its Content-Length, or once over, what came (-1
// before then for a fill of unknown length).
func (f *fill) length() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.size
}

// failed is why the fill failed, once it is over (nil: it did not).
func (f *fill) failed() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// keptWhole reports a fill of a small object that enters the memory
// tier once whole (when cacheable), as one read at once would have.
func (b *bigObject) keptWhole() bool {
	return b != nil && b.fill != nil && b.fill.keep && b.fill.whole != nil && b.size >= 0
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
// with ranges and conditions; from a fill as it arrives, with conditions,
// and with ranges when its length is known (a range far ahead of the fill
// is fetched apart: rangeAhead). A Range of a fill of unknown length is
// ignored, as RFC 9110 lets a server do, and the whole object is sent.
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
	if r.Method == http.MethodHead && b.fill != nil && (b.fill.mem != nil || b.size < 0) {
		// A HEAD of a small object is answered once its body is whole,
		// as it was before slow misses streamed: a client that asks for every segment's size
		// (deepcast play does, at its start) would otherwise set every
		// fill going at once, and on a slow link the segments it plays
		// next would wait behind all of them. One of unknown length is
		// waited for until it is whole (its length is then known) or
		// larger than memory objects (a large one is answered at once).
		if !b.fill.settled(r.Context(), b.size < 0, n.maxMemObject) {
			return // the client left
		}
		if err := b.fill.failed(); err != nil {
			delete(h, "Cache-Control") // the object's, which this answer is not (httpError drops its validators)
			h["Cache-Status"] = []string{n.cfg.Name + "; fwd=uri-miss; detail=upstream-error"}
			httpError(w, http.StatusBadGateway, "upstream unavailable")
			return
		}
		if b.size < 0 {
			b.size = b.fill.length()
		}
	}
	if httpsem.NotModified(r.Header, b.meta.ETag, b.meta.LastModified) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if fr, ok := body.(*fillReader); ok && b.size >= 0 && r.Method == http.MethodGet && r.Header.Get("Range") != "" {
		if n.rangeAhead(w, r, b.fill) {
			return
		}
		// Ranges, multipart ones and If-Range too, as from a file: a
		// read past what has come waits for it.
		lm, _ := http.ParseTime(b.meta.LastModified)
		src := &readErr{r: fr}
		if _, ok := h["Content-Type"]; !ok {
			h["Content-Type"] = nil // the upstream's absence of one, not a sniffed guess
		}
		http.ServeContent(w, r, "", lm, src)
		if src.failed.Load() {
			panic(http.ErrAbortHandler) // the fill failed: the part sent must not pass for the whole
		}
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
	if _, err := io.Copy(w, src); err != nil && src.failed.Load() {
		// The fill failed (upstream cut, digest mismatch). Without a
		// Content-Length, ending the response would end a chunked body
		// cleanly, and the client, or a cache below, would take the part
		// for the whole: the response is aborted instead.
		panic(http.ErrAbortHandler)
	}
}

// readErr remembers whether its reader failed, so that a copy's error can
// be told apart from the writer's (a client that left). It may be asked
// while ServeContent's own goroutine for a multipart answer still reads
// (its client gone), and it seeks when its reader does (ServeContent
// needs that).
type readErr struct {
	r      io.Reader
	failed atomic.Bool
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.failed.Store(true)
	}
	return n, err
}

func (e *readErr) Seek(offset int64, whence int) (int64, error) {
	s, ok := e.r.(io.Seeker)
	if !ok {
		return 0, errors.New("seek on a reader that cannot")
	}
	return s.Seek(offset, whence)
}

// A range of an object still coming that the fill will not bring within
// Config.RangeAhead (the rest of a body a node below had cut off, the end
// of a large segment) is fetched from an upstream apart, as a range:
// waiting for the fill would hold the client for the time the node takes
// to bring every byte before it.

// maxRangesAhead bounds the ranges of one fill fetched apart at once;
// more wait for the fill. Each is a request upstream: a client asking for
// many far ranges of an object at once must not become as many requests
// above (ClientMissRate, when set, bounds them per client over time too).
const maxRangesAhead = 4

// takeAhead counts a range of f fetched apart, when fewer than
// maxRangesAhead are; false when as many are.
func (f *fill) takeAhead() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ahead >= maxRangesAhead {
		return false
	}
	f.ahead++
	return true
}

// doneAhead ends what takeAhead counted.
func (f *fill) doneAhead() {
	f.mu.Lock()
	f.ahead--
	f.mu.Unlock()
}

// rangeAhead answers r, a GET of one range of f that f will not reach
// within Config.RangeAhead, with that range fetched apart from an upstream
// (not kept: the fill brings the whole object). It reports false, having
// sent nothing, when r is not such a request, or when no upstream sent the
// range of the same version: the fill answers it then.
func (n *Node) rangeAhead(w http.ResponseWriter, r *http.Request, f *fill) bool {
	if f.again == nil || f.size < 0 || n.cfg.RangeAhead < 0 {
		return false // not resumable (another version could come), or never asked apart
	}
	if ir := r.Header.Get("If-Range"); ir != "" && ir != f.meta.ETag {
		return false // ServeContent decides (a date, or another tag: the whole object)
	}
	first, last, ok := httpsem.SingleRange(r.Header.Get("Range"), f.size)
	if !ok || f.reaches(first, n.cfg.RangeAhead) || !f.takeAhead() {
		return false
	}
	defer f.doneAhead()
	if n.missLimit != nil && !n.sentBySibling(r) {
		if ok, _ := n.missLimit.allow(r.RemoteAddr, time.Now()); !ok {
			return false // a request upstream, as a miss is: past the client's rate it waits for the fill instead
		}
	}
	// The answer is waited for until the fill would reach the range at
	// its rate so far: an upstream slow to answer ranges (one that has to
	// fetch them itself) is then no faster than the fill.
	deadline := time.Now().Add(min(n.cfg.FetchTimeout, f.eta(first+1, n.cfg.RangeAhead)))
	order := n.pool.order(f.key)
	for _, up := range order[:min(2, len(order))] {
		body, err := n.fetchPart(r.Context(), up, f, first, last, false, time.Until(deadline))
		if err != nil {
			n.log.Info("range ahead of a fill not fetched apart", "key", f.key, "err", err)
			if !time.Now().Before(deadline) {
				return false // the fill is as near now: it brings the range
			}
			continue
		}
		defer body.Close()
		n.stats.rangesAhead.Add(1)
		h := w.Header()
		h["Content-Range"] = []string{fmt.Sprintf("bytes %d-%d/%d", first, last, f.size)}
		h["Content-Length"] = []string{strconv.FormatInt(last-first+1, 10)}
		h["Accept-Ranges"] = []string{"bytes"}
		h["Cache-Status"] = []string{chainStatus(body.cacheStatus, n.cfg.Name+"; fwd=partial; fwd-status=206; detail=range-ahead")}
		w.WriteHeader(http.StatusPartialContent)
		src := &readErr{r: io.LimitReader(body, last-first+1)}
		if k, err := io.Copy(w, src); src.failed.Load() || err == nil && k < last-first+1 {
			panic(http.ErrAbortHandler) // cut off upstream: a short 206 must not pass for the range
		}
		return true
	}
	return false
}
