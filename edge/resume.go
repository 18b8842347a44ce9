package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// A streamed body (a spool, large.go) has been sent to clients as it
// came, so when its upstream cuts it off the node can no longer fetch it
// again from the start on another upstream, as it does for a body read
// whole: the clients' answers would have to be cut short. It asks an
// upstream for the rest instead, a ranged request conditional on the
// object's strong ETag (If-Range), and carries on writing where it
// stopped. Every tier of deepcast and any origin that serves ranges
// answers it; an upstream that sends the whole object again instead
// (200) is read past what the node has.

// maxResumes bounds the resumptions of one body: an upstream that cuts
// every answer off is not followed forever.
const maxResumes = 2

// resumeRequest is what a fill needs to ask an upstream for the rest of
// its body.
type resumeRequest struct {
	target string      // path and query, appended to an upstream's URL
	header http.Header // the original request's, without conditions
	from   string      // the upstream (host) that sent the body
}

// newResumeRequest keeps the request of a body that may be streamed, for
// resumeFill; nil when the object cannot be resumed (no strong ETag: the
// rest could be of another version).
func newResumeRequest(req *http.Request, target, etag, from string) *resumeRequest {
	if etag == "" || strings.HasPrefix(etag, "W/") {
		return nil
	}
	h := req.Header.Clone()
	for _, k := range []string{"If-None-Match", "If-Modified-Since", siblingHeader} {
		delete(h, http.CanonicalHeaderKey(k))
	}
	return &resumeRequest{target: target, header: h, from: from}
}

// upstreamBody is an upstream body as a fill reads it: bounded by its
// progress (a read may wait FetchTimeout), and closing it ends its
// request.
type upstreamBody struct {
	progressBody
	cancel context.CancelFunc
	// cacheStatus is the upstream's Cache-Status (fetchPart's answers),
	// for an answer relayed as it came to keep in its chain.
	cacheStatus string
}

// boundBody bounds body, whose request cancel ends, by its progress: a
// read may wait limit.
func (n *Node) boundBody(body io.ReadCloser, cancel context.CancelFunc, limit time.Duration) *upstreamBody {
	stalled := time.AfterFunc(limit, cancel)
	return &upstreamBody{progressBody: progressBody{ReadCloser: body, stalled: stalled, limit: limit}, cancel: cancel}
}

// Close stops the bound, closes the body and ends its request.
func (b *upstreamBody) Close() error {
	b.stalled.Stop()
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// resumeFill asks the upstreams for f's body from byte at on: the
// others first (the one that cut it off may be going down), then that one
// (the cut may have been the connection's alone).
func (n *Node) resumeFill(f *fill, at int64) (*upstreamBody, error) {
	if f.again == nil || f.size < 0 {
		return nil, errors.New("the object cannot be resumed (no strong ETag or no length)")
	}
	order := n.pool.order(f.key)
	ups := make([]*upstream, 0, len(order))
	for _, up := range order {
		if up.url.Host != f.again.from {
			ups = append(ups, up)
		}
	}
	for _, up := range order {
		if up.url.Host == f.again.from {
			ups = append(ups, up)
		}
	}
	var errs []error
	for _, up := range ups[:min(2, len(ups))] {
		b, err := n.fetchRest(up, f, at)
		if err == nil {
			n.stats.fillResumes.Add(1)
			f.again.from = up.url.Host
			return b, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// fetchRest asks up for f's body from byte at on. The answer must be of
// the same version (its ETag) and exactly the rest (206 with the
// Content-Range asked for), or the whole again (200 of the same length,
// read past what the node has).
func (n *Node) fetchRest(up *upstream, f *fill, at int64) (*upstreamBody, error) {
	return n.fetchPart(n.ctx, up, f, at, f.size-1, true, n.cfg.FetchTimeout)
}

// fetchPart asks up for bytes first to last of f's object, within ctx,
// waiting for the answer at most within. The answer must be of the same
// version (its ETag) and exactly that range (206 with its Content-Range);
// with readPast, a 200 of the whole object of the same length is taken
// too, read past the bytes before first.
func (n *Node) fetchPart(ctx context.Context, up *upstream, f *fill, first, last int64, readPast bool, within time.Duration) (*upstreamBody, error) {
	ctx, cancel := context.WithCancel(ctx)
	answer := time.AfterFunc(within, cancel)
	span := fmt.Sprintf("bytes %d-%d", first, last)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, up.url.String()+f.again.target, nil)
	if err != nil {
		answer.Stop()
		cancel()
		return nil, err
	}
	req.Header = f.again.header.Clone()
	rng := "bytes=" + strconv.FormatInt(first, 10) + "-"
	if last < f.size-1 {
		rng += strconv.FormatInt(last, 10)
	}
	req.Header.Set("Range", rng) // the rest as bytes=N-, what every server reads alike
	req.Header.Set("If-Range", f.meta.ETag)
	resp, err := n.client.Do(req)
	answer.Stop()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("upstream %s: %s: %w", up.url.Host, span, err)
	}
	b := n.boundBody(resp.Body, cancel, n.cfg.FetchTimeout)
	b.cacheStatus = resp.Header.Get("Cache-Status")
	refuse := func(why string) (*upstreamBody, error) {
		b.Close()
		return nil, fmt.Errorf("upstream %s: %s: %s", up.url.Host, span, why)
	}
	if etag := resp.Header.Get("ETag"); etag != f.meta.ETag {
		return refuse(fmt.Sprintf("%s with ETag %q, not %q", resp.Status, etag, f.meta.ETag))
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return refuse("Content-Encoding " + ce)
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		a, z, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || a != first || z != last || size != f.size || resp.ContentLength >= 0 && resp.ContentLength != last-first+1 {
			return refuse(fmt.Sprintf("Content-Range %q, want %s/%d", resp.Header.Get("Content-Range"), span, f.size))
		}
	case resp.StatusCode == http.StatusOK && readPast:
		if resp.ContentLength != f.size {
			return refuse(fmt.Sprintf("200 of %d bytes, not %d", resp.ContentLength, f.size))
		}
		if _, err := io.CopyN(io.Discard, b, first); err != nil {
			return refuse(fmt.Sprintf("200, reading past the first %d bytes: %v", first, err))
		}
	default:
		return refuse(resp.Status)
	}
	return b, nil
}

// parseContentRange reads a 206's "bytes FIRST-LAST/SIZE".
func parseContentRange(v string) (first, last, size int64, ok bool) {
	rest, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	span, total, found := strings.Cut(rest, "/")
	a, b, found2 := strings.Cut(span, "-")
	if !found || !found2 {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	first, err1 = strconv.ParseInt(a, 10, 64)
	last, err2 = strconv.ParseInt(b, 10, 64)
	size, err3 = strconv.ParseInt(total, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || first < 0 || last < first || size <= last {
		return 0, 0, 0, false
	}
	return first, last, size, true
}

// keepWhole puts a complete fill of written bytes, small enough for
// memory, with the SHA-256 sum, in the cache, as a body read at once
// would have been.
func (n *Node) keepWhole(f *fill, written int64, sum [32]byte) {
	body := f.mem
	if f.file != nil {
		body = make([]byte, written)
		if _, err := f.file.ReadAt(body, 0); err != nil {
			n.log.Warn("spooled object not kept", "key", f.key, "err", err)
			return
		}
	}
	n.store(f.whole(body[:written], sum))
}
