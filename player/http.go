//go:build !js

package player

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deepcast/deepcast/edge/cmsd"
	"github.com/deepcast/deepcast/edge/httpsem"
)

// WallClock is real time since the session began.
type WallClock struct{ start time.Time }

// NewWallClock starts a clock now.
func NewWallClock() *WallClock { return &WallClock{start: time.Now()} }

// Now implements Clock.
func (c *WallClock) Now() time.Duration { return time.Since(c.start) }

// Start is the wall time the clock began at.
func (c *WallClock) Start() time.Time { return c.start }

// Sleep implements Clock.
func (c *WallClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// HTTPFetcher downloads segments over real HTTP, optionally shaped to a
// bandwidth trace and with a round-trip delay, and reports CMCD.
type HTTPFetcher struct {
	Client *http.Client
	Clock  Clock
	// Shaper limits the download rate to a trace over wall time (nil: none).
	Shaper *Shaper
	// RTT is waited before each request's first byte; a Shaper whose
	// trace carries latency (Sabre's) has that waited instead.
	RTT time.Duration
	// CMCD sends CTA-5004 data as the CMCD query argument.
	CMCD      bool
	SessionID string
	// Format is the CMCD streaming format token: "d" (DASH) or "h" (HLS);
	// "" sends none.
	Format string
	// Retries of a failed segment, with doubling backoff from Backoff.
	Retries int
	Backoff time.Duration
	// Mirrors are the MPD's BaseURLs (Video.Bases), the one segment URLs
	// start with first. A segment that fails at one location (once
	// retried) is fetched from the next, which the session then keeps
	// using, as dash.js fails over between BaseURLs.
	Mirrors []string

	// Live retries a 404: a live segment fetched at its availability time
	// may be published a moment later (ffmpeg renames it into place as its
	// last frame is written).
	Live bool
	// Gone, for a live stream, says why req's segment will never come
	// (Video.Gone): the stream ended before it (ErrStreamEnded), or it
	// left the time-shift buffer; nil while it may still. A live segment
	// not found twice is asked about, and the fetch then ends with that
	// rather than retry.
	Gone func(ctx context.Context, req Request) error

	// Verify checks each body against the SHA-256 its answer declares: the
	// Repr-Digest field (RFC 9530, which deepcast's origin sends and its
	// edges pass on, as any server may), else a strong ETag that is a hex
	// SHA-256 prefix, as deepcast's origin gives. Answers with neither are
	// not checked. A mismatch is a failed attempt, counted as corrupt.
	Verify bool

	mu     sync.Mutex
	active int // the mirror in use

	attempts, failed, verified, corrupt, switches, resumed atomic.Int64
	proto                                                  atomic.Pointer[string]
	// serverCap is the bitrate (kbit/s) the serving node last suggested
	// in CMSD-Dynamic (0: none).
	serverCap atomic.Int64
}

// MaxBitrateKbps implements ServerAdvisor: the mb of the nearest node's
// entry in the last answer that carried CMSD-Dynamic (0 when it had
// none). An answer without the field leaves it, as dash.js keeps a
// suggestion until a later answer changes it.
func (f *HTTPFetcher) MaxBitrateKbps() int64 { return f.serverCap.Load() }

// noteAdvice reads an answer's CMSD-Dynamic.
func (f *HTTPFetcher) noteAdvice(h http.Header) {
	vs := h.Values(cmsd.Header)
	if len(vs) == 0 {
		return
	}
	if e, ok := cmsd.Nearest(strings.Join(vs, ", ")); ok {
		f.serverCap.Store(e.MaxBitrateKbps)
	}
}

// FetchStats are an HTTPFetcher's counts so far.
type FetchStats struct {
	Attempts int64 `json:"attempts"` // requests sent
	Failed   int64 `json:"failed"`   // requests that failed (each retry or failover counts)
	Verified int64 `json:"verified"` // bodies checked against their ETag
	Corrupt  int64 `json:"corrupt"`  // bodies that did not match it
	Switches int64 `json:"switches"` // failovers to another BaseURL
	// Resumed counts segments whose body broke off and whose rest came
	// in a ranged request, not the whole again.
	Resumed int64 `json:"resumed"`
	// Protocol is the HTTP version of the last response (HTTP/1.1,
	// HTTP/2.0, HTTP/3.0).
	Protocol string `json:"protocol"`
}

// Stats returns the fetcher's counts so far.
func (f *HTTPFetcher) Stats() FetchStats {
	st := FetchStats{Attempts: f.attempts.Load(), Failed: f.failed.Load(), Verified: f.verified.Load(), Corrupt: f.corrupt.Load(), Switches: f.switches.Load(),
		Resumed: f.resumed.Load()}
	if p := f.proto.Load(); p != nil {
		st.Protocol = *p
	}
	return st
}

// NewSessionID makes a CMCD session id.
func NewSessionID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Fetch implements Fetcher. A body that breaks off is not fetched whole
// again: the next attempt, at the same location or the next mirror, asks
// for the rest (cutBody).
func (f *HTTPFetcher) Fetch(ctx context.Context, req Request) (Download, error) {
	cut := &cutBody{}
	if len(f.Mirrors) < 2 || !strings.HasPrefix(req.URL, f.Mirrors[0]) {
		return f.fetchRetrying(ctx, req, f.Retries, cut)
	}
	rest := strings.TrimPrefix(req.URL, f.Mirrors[0])
	f.mu.Lock()
	start := f.active
	f.mu.Unlock()
	var errs []error
	for k := range len(f.Mirrors) {
		m := (start + k) % len(f.Mirrors)
		at := req
		at.URL = f.Mirrors[m] + rest
		d, err := f.fetchRetrying(ctx, at, min(f.Retries, 1), cut)
		if err == nil {
			if m != start {
				f.mu.Lock()
				f.active = m
				f.mu.Unlock()
				f.switches.Add(1)
			}
			return d, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return Download{}, errors.Join(errs...)
}

// fetchRetrying fetches req, retrying a failure that is not permanent;
// cut carries what came of a body that broke off from one attempt to the
// next.
func (f *HTTPFetcher) fetchRetrying(ctx context.Context, req Request, retries int, cut *cutBody) (Download, error) {
	backoff := f.Backoff
	if backoff <= 0 {
		backoff = 250 * time.Millisecond
	}
	var lastErr error
	attempts := 0
	for attempt := 0; attempt <= retries; attempt++ {
		attempts++
		if attempt > 0 {
			wait := backoff
			// A server that says when to come back is believed, up to
			// maxRetryAfter: an origin whose store is down answers 503
			// with Retry-After rather than be asked again at once.
			var later *retryLater
			if errors.As(lastErr, &later) {
				wait = max(wait, min(later.after, maxRetryAfter))
			}
			if err := f.Clock.Sleep(ctx, wait); err != nil {
				return Download{}, err
			}
			backoff *= 2
		}
		f.attempts.Add(1)
		d, err := f.fetchOnce(ctx, req, cut)
		if err == nil {
			return d, nil
		}
		f.failed.Add(1)
		lastErr = err
		var perm *permanentError
		if errors.As(err, &perm) || ctx.Err() != nil {
			break
		}
		var gone *liveNotFound
		if errors.As(err, &gone) && attempt > 0 && f.Gone != nil {
			if why := f.Gone(ctx, req); why != nil {
				return Download{}, fmt.Errorf("%s: %w", req.URL, why)
			}
		}
	}
	if attempts == 1 {
		return Download{}, fmt.Errorf("%s: %w", req.URL, lastErr)
	}
	return Download{}, fmt.Errorf("%s: %w (after %d attempts)", req.URL, lastErr, attempts)
}

// maxRetryAfter bounds the wait a Retry-After field can ask for: past it,
// the player would rather try (and fail over) than sit.
const maxRetryAfter = 10 * time.Second

// retryLater is a 503 or 429 whose answer said, in Retry-After, when to
// come back.
type retryLater struct {
	status string
	after  time.Duration
}

func (e *retryLater) Error() string { return fmt.Sprintf("%s (retry after %v)", e.status, e.after) }

// retryAfter reads a Retry-After field: delay-seconds or an HTTP date
// (RFC 9110 §10.2.3); false when there is none that can be read.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32); err == nil {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// liveNotFound is a 404 of a live segment: not published yet, or past the
// end of a stream that ended.
type liveNotFound struct{ status string }

func (e *liveNotFound) Error() string { return e.status + " (a live segment not published yet?)" }

// cutBody is what came of a segment whose body broke off (a connection
// reset, a server that died mid-answer), so that the next attempt asks
// only for the rest: Range: bytes=N- with If-Range on the body's strong
// ETag, as a download manager resumes. That attempt takes a 206 of
// exactly that rest and carries on (the SHA-256 check too, over the
// whole); a 200 (the server has another version, or serves no ranges) is
// read as a first attempt. Only a body with a strong ETag and a length is
// resumed: the rest must be of the same bytes, and the same length.
type cutBody struct {
	etag          string
	size, got     int64     // the whole body's length; the bytes that came
	sum           hash.Hash // over the bytes that came (nil: not checked)
	wantSum, from string    // the declared SHA-256 and the field it came in
	sent, first   time.Duration
}

// keep records a body of size bytes with etag that broke off after got
// bytes (sum over them), for the next attempt; a body that cannot be
// resumed is forgotten instead.
func (c *cutBody) keep(etag string, size, got int64, sum hash.Hash, wantSum, from string, sent, first time.Duration) {
	if etag == "" || strings.HasPrefix(etag, "W/") || size <= 0 || got <= 0 || got >= size {
		*c = cutBody{}
		return
	}
	*c = cutBody{etag: etag, size: size, got: got, sum: sum, wantSum: wantSum, from: from, sent: sent, first: first}
}

// permanentError is a failure a retry cannot fix (404 and other 4xx).
type permanentError struct{ status string }

func (e *permanentError) Error() string { return e.status }

func (f *HTTPFetcher) fetchOnce(ctx context.Context, req Request, cut *cutBody) (Download, error) {
	u := req.URL
	if f.CMCD {
		u = addCMCD(u, f.cmcd(req))
	}
	sent := f.Clock.Now()
	wait := f.RTT
	if f.Shaper != nil {
		if lat, ok := f.Shaper.Latency(); ok {
			wait = lat // the trace's own, as the simulator spends it
		}
	}
	if wait > 0 {
		if err := f.Clock.Sleep(ctx, wait); err != nil {
			return Download{}, err
		}
	}
	ctx, cancel := context.WithCancel(ctx) // for an abandonment
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Download{}, err
	}
	want := http.StatusOK
	if req.Range != "" {
		hreq.Header.Set("Range", "bytes="+req.Range)
		want = http.StatusPartialContent
	}
	resuming := req.Range == "" && cut.got > 0
	if resuming {
		hreq.Header.Set("Range", "bytes="+strconv.FormatInt(cut.got, 10)+"-")
		hreq.Header.Set("If-Range", cut.etag)
	}
	resp, err := f.Client.Do(hreq)
	if err != nil {
		return Download{}, err
	}
	defer resp.Body.Close()
	proto := resp.Proto
	f.proto.Store(&proto)
	f.noteAdvice(resp.Header)
	if resuming {
		switch resp.StatusCode {
		case http.StatusPartialContent:
			rest := fmt.Sprintf("bytes %d-%d/%d", cut.got, cut.size-1, cut.size)
			if cr, etag := resp.Header.Get("Content-Range"), resp.Header.Get("ETag"); cr != rest || etag != cut.etag {
				*cut = cutBody{} // the next attempt asks for the whole
				io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				return Download{}, fmt.Errorf("the rest from byte %d: Content-Range %q and ETag %s, want %q and %s", cut.got, cr, etag, rest, cut.etag)
			}
			want = http.StatusPartialContent
			f.resumed.Add(1)
		case http.StatusOK:
			*cut = cutBody{} // the whole, of another version or from a server without ranges
			resuming = false
		}
	}
	if resp.StatusCode != want {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		switch {
		case resp.StatusCode == http.StatusOK:
			// The server ignored the range: the whole file is not the segment.
			return Download{}, &permanentError{status: resp.Status + " for a byte range request: the server does not serve ranges"}
		case resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusTooManyRequests:
			if after, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
				return Download{}, &retryLater{status: resp.Status, after: after}
			}
			return Download{}, errors.New(resp.Status)
		case resp.StatusCode == http.StatusNotFound && f.Live:
			// Asked for as it is published, a live segment may reach the
			// server a moment after its availability time.
			return Download{}, &liveNotFound{status: resp.Status}
		case resp.StatusCode >= 400 && resp.StatusCode < 500:
			return Download{}, &permanentError{status: resp.Status}
		}
		return Download{}, errors.New(resp.Status)
	}
	if req.Range != "" {
		if got, _, _ := strings.Cut(strings.TrimPrefix(resp.Header.Get("Content-Range"), "bytes "), "/"); got != req.Range {
			return Download{}, fmt.Errorf("asked for bytes %s, got Content-Range %q", req.Range, resp.Header.Get("Content-Range"))
		}
	}
	first := f.Clock.Now()
	var body io.Reader = resp.Body
	if f.Shaper != nil {
		body = f.Shaper.Reader(ctx, resp.Body)
	}
	var sum hash.Hash
	// A part's digest headers describe the whole representation.
	wantSum, from := declaredSHA256(resp)
	whole := resp.ContentLength // the body's length when whole (-1: unknown)
	var before int64            // its bytes that came in earlier attempts
	if resuming {
		// The download is the first attempt's, carried on.
		sum, wantSum, from, before, whole = cut.sum, cut.wantSum, cut.from, cut.got, cut.size
		sent, first = cut.sent, cut.first
	} else if f.Verify && wantSum != "" && req.Range == "" {
		sum = sha256.New()
	}
	if sum != nil {
		body = io.TeeReader(body, sum)
	}
	given := func() bool { return false }
	if req.Abandon != nil {
		size := req.Size
		if whole > 0 {
			size = whole
		}
		body, given = f.watchAbandon(body, req, size, before, sent, first, cancel)
	}
	n, err := io.Copy(io.Discard, body)
	if given() && err != nil {
		// The request's context is cancelled: HTTP/1.1 drops the
		// connection, HTTP/2 and HTTP/3 reset the stream. (A body that
		// ended as it was given up came whole: it is kept.)
		*cut = cutBody{}
		return Download{Bytes: before + n, Sent: sent, FirstByte: first, LastByte: f.Clock.Now(), Abandoned: true}, nil
	}
	if err != nil {
		if req.Range == "" {
			cut.keep(resp.Header.Get("ETag"), whole, before+n, sum, wantSum, from, sent, first)
		}
		return Download{}, fmt.Errorf("body: %w", err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		*cut = cutBody{}
		return Download{}, fmt.Errorf("body: %d of %d bytes", n, resp.ContentLength)
	}
	if sum != nil {
		f.verified.Add(1)
		if got := hex.EncodeToString(sum.Sum(nil)); !strings.HasPrefix(got, wantSum) {
			f.corrupt.Add(1)
			*cut = cutBody{} // what came is not to be trusted: the next attempt asks for the whole
			return Download{}, fmt.Errorf("body: SHA-256 %s does not match its %s %s", got[:len(wantSum)], from, wantSum)
		}
	}
	return Download{Bytes: before + n, Sent: sent, FirstByte: first, LastByte: f.Clock.Now()}, nil
}

// watchAbandon asks req.Abandon every AbandonEvery, while the body is
// read, whether to give the download up, and if so cancels it (cancel is
// the request's). A link that has stopped delivering blocks the body's
// reads, so the asking runs beside them. It counts the body's bytes in
// through the reader it returns; stop ends the watch, and says whether
// the download was given up. Abandon runs on the watch's goroutine while
// the session waits in Fetch, and never after stop has returned.
func (f *HTTPFetcher) watchAbandon(body io.Reader, req Request, size, before int64, sent, first time.Duration, cancel context.CancelFunc) (io.Reader, func() bool) {
	c := &countingReader{r: body}
	c.n.Store(before) // a resumed body's bytes that came before
	done := make(chan struct{})
	var given atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(AbandonEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			p := Progress{Rendition: req.Rendition, Size: size, Bytes: c.n.Load(), Elapsed: f.Clock.Now() - sent, FirstByte: first - sent}
			if p.Bytes < size && req.Abandon(p) {
				given.Store(true)
				cancel()
				return
			}
		}
	})
	return c, func() bool {
		close(done)
		wg.Wait()
		return given.Load()
	}
}

// countingReader counts the bytes read through it, for another goroutine.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// declaredSHA256 returns the hex SHA-256 (or a prefix of it) that resp
// declares for its body, and the field it came from; "" when it declares
// none. A body the transport decompressed is not the representation either
// field describes, so it declares none.
func declaredSHA256(resp *http.Response) (hexSum, field string) {
	if resp.Uncompressed {
		return "", ""
	}
	if sum, ok := httpsem.ReprSHA256(resp.Header.Get("Repr-Digest")); ok {
		return hex.EncodeToString(sum[:]), "Repr-Digest"
	}
	if t := strongHexTag(resp.Header.Get("ETag")); t != "" {
		return t, "ETag"
	}
	return "", ""
}

// strongHexTag returns the hex digits of a strong ETag made of 32 to 64 of
// them (a SHA-256, whole or a prefix), or "" for any other ETag.
func strongHexTag(tag string) string {
	t, ok := strings.CutPrefix(tag, `"`)
	if !ok {
		return ""
	}
	t, ok = strings.CutSuffix(t, `"`)
	if !ok || len(t) < 32 || len(t) > 64 {
		return ""
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return ""
		}
	}
	return t
}

// cmcd builds the CTA-5004 key/value list for a request.
func (f *HTTPFetcher) cmcd(req Request) string {
	var kv []string
	ot := "v"
	switch {
	case req.Init:
		ot = "i"
	case req.Rendition < 0:
		ot = "a"
	}
	if req.Bitrate > 0 {
		kv = append(kv, "br="+strconv.Itoa(int(math.Round(req.Bitrate))))
	}
	kv = append(kv, "bl="+strconv.Itoa(int(req.Buffer.Milliseconds()/100*100)))
	if req.Starved {
		kv = append(kv, "bs")
	}
	if req.Duration > 0 {
		kv = append(kv, "d="+strconv.Itoa(int(req.Duration.Milliseconds())))
	}
	if req.Estimate > 0 {
		kv = append(kv, "mtp="+strconv.Itoa(int(req.Estimate/100)*100))
	}
	if req.NextURL != "" {
		kv = append(kv, "nor="+strconv.Quote(relativeURL(req.URL, req.NextURL)))
	}
	if req.NextRange != "" {
		kv = append(kv, "nrr="+strconv.Quote(req.NextRange))
	}
	kv = append(kv, "ot="+ot)
	if f.Format != "" {
		kv = append(kv, "sf="+f.Format)
	}
	if f.SessionID != "" {
		kv = append(kv, "sid="+strconv.Quote(f.SessionID))
	}
	st := "v"
	if f.Live {
		st = "l"
	}
	kv = append(kv, "st="+st)
	if req.Startup {
		kv = append(kv, "su")
	}
	return strings.Join(kv, ",") // CTA-5004 orders keys alphabetically, as here
}

// relativeURL expresses next relative to cur when they share a directory
// tree, as CMCD's nor asks.
func relativeURL(cur, next string) string {
	cu, err1 := url.Parse(cur)
	nu, err2 := url.Parse(next)
	if err1 != nil || err2 != nil || cu.Host != nu.Host {
		return next
	}
	// A folder with its slash: the root is "/", not "//".
	dirOf := func(p string) string { return strings.TrimSuffix(path.Dir(p), "/") + "/" }
	curDir := dirOf(cu.Path)
	if rest, ok := strings.CutPrefix(nu.Path, curDir); ok {
		return rest
	}
	if curDir != "/" {
		if rest, ok := strings.CutPrefix(nu.Path, dirOf(strings.TrimSuffix(curDir, "/"))); ok {
			return "../" + rest
		}
	}
	return nu.Path
}

func addCMCD(raw, data string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	q.Set("CMCD", data)
	u.RawQuery = q.Encode()
	return u.String()
}

// Shaper throttles every download of a session to one link whose capacity
// follows a trace over wall time (looping), as a bottleneck would. What
// the link could have carried while nothing was downloading is lost, as
// in the simulator (TraceLink.Sleep) and in mahimahi, which drops unused
// delivery opportunities: only shapeBank of it is kept, so a read that
// lags a little behind the link loses nothing.
type Shaper struct {
	trace *Trace
	// carried[i] is the bytes the link carries from Time[0] to Time[i]:
	// a read asks what the link could carry every few milliseconds, and a
	// long trace (an hour of mahimahi's 100 ms bins is 36 000 rows) should
	// not be summed each time.
	carried []float64
	start   time.Time
	mu      sync.Mutex
	used    float64 // bytes delivered so far
}

// NewShaper starts the trace now.
func NewShaper(t *Trace) *Shaper {
	carried := make([]float64, len(t.Time))
	for i := 1; i < len(t.Time); i++ {
		carried[i] = carried[i-1] + t.Mbps[i]*1e6/8*(t.Time[i]-t.Time[i-1])
	}
	return &Shaper{trace: t, carried: carried, start: time.Now()}
}

// capacity is the bytes the link could carry from start to elapsed seconds.
func (s *Shaper) capacity(elapsed float64) float64 {
	if elapsed <= 0 {
		return 0
	}
	t := s.trace
	loops, i, at := s.position(elapsed)
	part := t.Mbps[i] * 1e6 / 8 * math.Max(0, math.Min(at, t.Time[i])-t.Time[i-1])
	return loops*s.carried[len(t.Time)-1] + s.carried[i-1] + part
}

// position is where the trace is elapsed seconds after its start: the
// loops it has made, the row whose interval (Time[i-1], Time[i]] holds
// the moment, and the moment in trace time.
func (s *Shaper) position(elapsed float64) (loops float64, i int, at float64) {
	t := s.trace
	last := len(t.Time) - 1
	loops = math.Floor(elapsed / (t.Time[last] - t.Time[0]))
	at = t.Time[0] + elapsed - loops*(t.Time[last]-t.Time[0])
	i = min(max(sort.SearchFloat64s(t.Time, at), 1), last)
	return loops, i, min(max(at, t.Time[i-1]), t.Time[i])
}

// Latency is how long a request sent now waits for its first byte on a
// trace that carries latency (Sabre's): the simulator's walk from this
// moment of the trace; ok is false for a trace without latency. What the
// link could carry meanwhile goes unused as at any idle time, less the
// shapeBank the shaper keeps of it.
func (s *Shaper) Latency() (d time.Duration, ok bool) {
	if s.trace.Latency == nil {
		return 0, false
	}
	_, i, at := s.position(time.Since(s.start).Seconds())
	l := TraceLink{trace: s.trace, ptr: i, lastT: at}
	return seconds(l.latency()), true
}

// Reader wraps a body so it is delivered no faster than the link allows.
func (s *Shaper) Reader(ctx context.Context, r io.Reader) io.Reader {
	return &shapedReader{s: s, r: r, ctx: ctx}
}

type shapedReader struct {
	s   *Shaper
	r   io.Reader
	ctx context.Context
}

const shapeQuantum = 8 << 10

// shapeBank is the link time a Shaper keeps of what went unused.
const shapeBank = 50 * time.Millisecond

func (sr *shapedReader) Read(p []byte) (int, error) {
	if len(p) > shapeQuantum {
		p = p[:shapeQuantum]
	}
	for {
		sr.s.mu.Lock()
		elapsed := time.Since(sr.s.start).Seconds()
		now := sr.s.capacity(elapsed)
		// Of what went unused, shapeBank's worth is kept, and at least a
		// quantum, or a slow link would never gather one to read.
		sr.s.used = max(sr.s.used, min(sr.s.capacity(elapsed-shapeBank.Seconds()), now-shapeQuantum))
		avail := now - sr.s.used
		if avail >= float64(len(p)) || avail >= shapeQuantum {
			n, err := sr.r.Read(p)
			sr.s.used += float64(n)
			sr.s.mu.Unlock()
			return n, err
		}
		sr.s.mu.Unlock()
		select {
		case <-sr.ctx.Done():
			return 0, sr.ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}
