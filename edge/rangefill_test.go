package edge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startSlowFill has a client fetch path through ts in the background and
// waits until n's fill of it (its only one) has more than 100 bytes; the returned channel
// is closed when that client is done.
func startSlowFill(t *testing.T, n *Node, ts string, path string) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get(ts + path)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	waitFor(t, "a fill under way", func() bool {
		var f *fill
		n.fillsMu.Lock()
		for _, g := range n.fills { // the one fill
			f = g
		}
		n.fillsMu.Unlock()
		if f == nil {
			return false
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.written > 100
	})
	return done
}

// getRange asks for url with the header pairs in hdr and returns the
// answer with its body, and the error of reading that body; a request
// that fails has an empty answer and the error.
func getRange(t *testing.T, url string, hdr ...string) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	req.Header.Set("Accept-Encoding", "identity")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return &http.Response{Header: http.Header{}}, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// TestRangesOfAnObjectStillComing: a Range asked of an object still being
// fetched is answered as a range (206), not with the whole object: from
// the fill when it has come that far or will soon, and, when it is far
// ahead of the fill, fetched apart from the upstream as a range, at once.
// Multipart ranges, If-Range and unsatisfiable ranges are answered as
// from a complete object.
func TestRangesOfAnObjectStillComing(t *testing.T) {
	const size = 12 << 20
	up := newBigUpstream(t, size, false, 300*time.Millisecond) // 3.6 s from first to last byte
	up.ranges.Store(true)
	n, ts := newNode(t, Config{Upstreams: []string{up.srv.URL}, MemBytes: 32 << 20, Prefetch: noPrefetch(), SpoolDir: t.TempDir()})
	const path = "/vod/a/v/1.m4s"
	tag := `"` + strconv.Itoa(len(path)) + `"`
	want := segmentBytes(path, size)
	first := startSlowFill(t, n, ts.URL, path)

	cases := []struct {
		name, rng, ifRange string
		status             int
		detail             string // in Cache-Status
		first, last        int    // the body, for a 206
	}{
		{name: "what has come", rng: "bytes=0-99", status: 206, detail: "streamed", first: 0, last: 99},
		{name: "far ahead", rng: fmt.Sprintf("bytes=%d-", size-1000), status: 206, detail: "range-ahead", first: size - 1000, last: size - 1},
		{name: "suffix", rng: "bytes=-1000", status: 206, detail: "range-ahead", first: size - 1000, last: size - 1},
		{name: "far ahead, If-Range of the version", rng: fmt.Sprintf("bytes=%d-%d", size-2000, size-1901), ifRange: tag, status: 206, detail: "range-ahead", first: size - 2000, last: size - 1901},
		{name: "If-Range of another version", rng: "bytes=0-99", ifRange: `"other"`, status: 200, detail: "streamed"},
		{name: "unsatisfiable", rng: fmt.Sprintf("bytes=%d-", size), status: 416, detail: "streamed"},
	}
	for _, c := range cases {
		hdr := []string{"Range", c.rng}
		if c.ifRange != "" {
			hdr = append(hdr, "If-Range", c.ifRange)
		}
		start := time.Now()
		resp, body, err := getRange(t, ts.URL+path, hdr...)
		took := time.Since(start)
		if err != nil || resp.StatusCode != c.status || !strings.Contains(resp.Header.Get("Cache-Status"), c.detail) {
			t.Errorf("%s: %d (Cache-Status %q), err %v; want %d, %s", c.name, resp.StatusCode, resp.Header.Get("Cache-Status"), err, c.status, c.detail)
			continue
		}
		switch c.status {
		case 206:
			cr := fmt.Sprintf("bytes %d-%d/%d", c.first, c.last, size)
			if resp.Header.Get("Content-Range") != cr || !bytes.Equal(body, want[c.first:c.last+1]) {
				t.Errorf("%s: Content-Range %q, %d bytes; want %s and its bytes", c.name, resp.Header.Get("Content-Range"), len(body), cr)
			}
			if c.detail == "range-ahead" && took > 2*time.Second {
				t.Errorf("%s: took %v, as long as the fill", c.name, took)
			}
			if cs := resp.Header.Get("Cache-Status"); c.detail == "range-ahead" && !strings.HasPrefix(cs, "parent; hit; ttl=99, ") {
				t.Errorf("%s: Cache-Status %q; want the upstream's entry first", c.name, cs)
			}
		case 200:
			if !bytes.Equal(body, want) {
				t.Errorf("%s: %d bytes, want the whole object", c.name, len(body))
			}
		case 416:
			if cr := resp.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes */%d", size) {
				t.Errorf("%s: Content-Range %q", c.name, cr)
			}
		}
	}

	// Several ranges: a multipart answer from the fill, each part waited for.
	resp, body, err := getRange(t, ts.URL+path, "Range", fmt.Sprintf("bytes=0-9,%d-%d", size-10, size-1))
	if err != nil || resp.StatusCode != 206 {
		t.Fatalf("two ranges: %d, err %v", resp.StatusCode, err)
	}
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("two ranges: Content-Type %q: %v", resp.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for _, span := range [][2]int{{0, 9}, {size - 10, size - 1}} {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatalf("two ranges, part %v: %v", span, err)
		}
		got, _ := io.ReadAll(part)
		if cr := part.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", span[0], span[1], size) || !bytes.Equal(got, want[span[0]:span[1]+1]) {
			t.Errorf("two ranges: part %q of %d bytes, want %v", cr, len(got), span)
		}
	}

	// A range that misses starts the fill of the whole object, and does
	// not wait for it.
	const other = "/vod/a/v/2.m4s"
	start := time.Now()
	resp, body, err = getRange(t, ts.URL+other, "Range", "bytes=-10")
	if err != nil || resp.StatusCode != 206 || !strings.Contains(resp.Header.Get("Cache-Status"), "range-ahead") ||
		!bytes.Equal(body, segmentBytes(other, size)[size-10:]) || time.Since(start) > 2*time.Second {
		t.Errorf("a range that misses: %d (Cache-Status %q), %d bytes in %v, err %v; want its 10 bytes fetched apart at once",
			resp.StatusCode, resp.Header.Get("Cache-Status"), len(body), time.Since(start), err)
	}
	<-first
	waitFor(t, "the fill the range started", func() bool { return up.hits.Load() == 2 })
	if got, want := up.ranged.Load(), n.stats.rangesAhead.Load(); got != 4 || want != 4 {
		t.Errorf("%d ranged fetches upstream, %d counted; want 4 (the ranges far ahead)", got, want)
	}
}

// TestARangeAheadWaitsForTheFillWhenUpstreamSendsNoRange: when the
// upstream answers a ranged request with the whole object, the node does
// not take that object a second time: the range waits for the fill, and
// comes from it. When the fill
// fails before reaching the range, the answer is cut off, not ended as if
// whole.
func TestARangeAheadWaitsForTheFillWhenUpstreamSendsNoRange(t *testing.T) {
	for _, c := range []struct {
		path string
		cut  bool
	}{
		{"/vod/a/v/1.m4s", false},
		{cutSegment, true},
	} {
		t.Run(c.path, func(t *testing.T) {
			const size = 4 << 20
			up := newBigUpstream(t, size, false, 200*time.Millisecond)
			n, ts := newNode(t, Config{Upstreams: []string{up.srv.URL}, MemBytes: 16 << 20, Prefetch: noPrefetch(), SpoolDir: t.TempDir()})
			first := startSlowFill(t, n, ts.URL, c.path)
			asked := time.Now()
			resp, body, err := getRange(t, ts.URL+c.path, "Range", fmt.Sprintf("bytes=%d-", size-100))
			if c.cut {
				if err == nil && resp.StatusCode == 206 && len(body) == 100 {
					t.Fatalf("the fill was cut off before the range, yet the range came whole")
				}
				// The range's wait ends with the fill, not with the
				// client's own 10-s bound.
				if took := time.Since(asked); took > 5*time.Second || errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("the fill failed, yet the range waited %v (err %v)", took, err)
				}
			} else if err != nil || resp.StatusCode != 206 || !bytes.Equal(body, segmentBytes(c.path, size)[size-100:]) ||
				!strings.Contains(resp.Header.Get("Cache-Status"), "streamed") {
				t.Fatalf("%d (Cache-Status %q), %d bytes, err %v; want the range from the fill", resp.StatusCode, resp.Header.Get("Cache-Status"), len(body), err)
			}
			<-first
			if got := n.stats.rangesAhead.Load(); got != 0 {
				t.Errorf("%d ranges counted as fetched apart, want 0", got)
			}
		})
	}
}

// TestANodeBelowResumesFromAParentStillFilling: a deep node whose parent
// cuts its body off resumes from its other parent, which does not have
// the object yet. That parent sends the rest as a range fetched apart
// from the origin (its own fill of the whole object has only begun),
// where before it sent the whole object from its first byte, and the node
// below read past what it had.
func TestANodeBelowResumesFromAParentStillFilling(t *testing.T) {
	const size = 8 << 20
	const path = "/vod/a/v/1.m4s"
	origin := newBigUpstream(t, size, false, 300*time.Millisecond) // 2.4 s whole
	origin.ranges.Store(true)
	type parent struct {
		n  *Node
		ts *httptest.Server
	}
	var parents []parent
	for range 2 {
		n, ts := newNode(t, Config{Name: "parent", Upstreams: []string{origin.srv.URL}, MemBytes: 32 << 20, Prefetch: noPrefetch(), SpoolDir: t.TempDir(), FetchTimeout: 5 * time.Second})
		parents = append(parents, parent{n, ts})
	}
	deep, ts := newNode(t, Config{Upstreams: []string{parents[0].ts.URL, parents[1].ts.URL}, MemBytes: 32 << 20, Prefetch: noPrefetch(), SpoolDir: t.TempDir(), FetchTimeout: 5 * time.Second})

	type answer struct {
		body []byte
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		resp, body, err := getRange(t, ts.URL+path)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		done <- answer{body, err}
	}()
	filling := func(n *Node) int64 {
		n.fillsMu.Lock()
		defer n.fillsMu.Unlock()
		for _, f := range n.fills {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.written
		}
		return -1
	}
	waitFor(t, "3 MiB through the first parent", func() bool { return filling(deep) >= 3<<20 })
	cut, other := parents[0], parents[1]
	if filling(cut.n) < 0 {
		cut, other = other, cut
	}
	cut.ts.CloseClientConnections()

	a := <-done
	if a.err != nil || !bytes.Equal(a.body, segmentBytes(path, size)) {
		t.Fatalf("%d of %d bytes, err %v; want the whole object", len(a.body), size, a.err)
	}
	if got := deep.stats.fillResumes.Load(); got != 1 {
		t.Errorf("%d resumptions below, want 1", got)
	}
	if got := other.n.stats.rangesAhead.Load(); got != 1 {
		t.Errorf("the other parent fetched %d ranges apart, want 1 (the rest, ahead of its fill)", got)
	}
	if got := origin.ranged.Load(); got != 1 {
		t.Errorf("%d ranged requests at the origin, want 1", got)
	}
}

// TestRangesAheadAreBounded: far ranges of one object still coming become
// at most maxRangesAhead requests upstream at once, and none past the
// client's miss rate or with RangeAhead negative; the others wait for the
// fill and still get their ranges.
func TestRangesAheadAreBounded(t *testing.T) {
	const size = 12 << 20
	const path = "/vod/a/v/1.m4s"
	for _, c := range []struct {
		name       string
		missRate   float64
		rangeAhead time.Duration
		asks       int
		ranged     int64
	}{
		{"at once", 0, 0, maxRangesAhead + 2, maxRangesAhead},
		{"past the client's miss rate", 0.01, 0, 1, 0}, // a burst of one: the miss that started the fill
		{"never", 0, -1, 1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The fill takes 7 s, so the ranges near its end stay some
			// 4 s or more ahead of it while they are fetched apart (a
			// range whose answer comes later than the fill would reach
			// it gives way to the fill), even on a loaded machine.
			up := newBigUpstream(t, size, false, 600*time.Millisecond)
			up.ranges.Store(true)
			up.rangeWait.Store(int64(time.Second)) // the ranges fetched apart are all still in flight as the last is asked
			n, ts := newNode(t, Config{Upstreams: []string{up.srv.URL}, MemBytes: 32 << 20, Prefetch: noPrefetch(), SpoolDir: t.TempDir(), ClientMissRate: c.missRate, RangeAhead: c.rangeAhead,
				FetchTimeout: 5 * time.Second})
			first := startSlowFill(t, n, ts.URL, path)
			want := segmentBytes(path, size)
			var wg sync.WaitGroup
			details := make([]string, c.asks)
			for i := range c.asks {
				wg.Go(func() {
					at := size - 1000*(i+1)
					resp, body, err := getRange(t, ts.URL+path, "Range", fmt.Sprintf("bytes=%d-%d", at, at+99))
					details[i] = resp.Header.Get("Cache-Status")
					if err != nil || resp.StatusCode != 206 || !bytes.Equal(body, want[at:at+100]) {
						t.Errorf("range %d: %d, %d bytes, err %v; want its 100 bytes", i, resp.StatusCode, len(body), err)
					}
				})
			}
			wg.Wait()
			<-first
			if got := up.ranged.Load(); got != c.ranged || n.stats.rangesAhead.Load() != c.ranged {
				t.Errorf("%d ranges fetched apart upstream (%d counted), want %d; Cache-Status: %q", got, n.stats.rangesAhead.Load(), c.ranged, details)
			}
		})
	}
}

// TestASlowRangeAnswerGivesWayToTheFill: a range fetched apart whose
// upstream is slow to answer (as a parent that must fetch ranges itself
// may be) is waited for only until the fill would reach the range at its
// rate so far; then the range comes from the fill, not after the
// upstream's 5 s or the node's 10-s bound.
func TestASlowRangeAnswerGivesWayToTheFill(t *testing.T) {
	const size = 12 << 20
	up := newBigUpstream(t, size, false, 300*time.Millisecond) // 3.6 s from first to last byte
	up.ranges.Store(true)
	up.rangeWait.Store(int64(5 * time.Second))
	n, ts := newNode(t, Config{Upstreams: []string{up.srv.URL}, MemBytes: 32 << 20, Prefetch: noPrefetch(), SpoolDir: t.TempDir(), FetchTimeout: 10 * time.Second})
	const path = "/vod/a/v/1.m4s"
	first := startSlowFill(t, n, ts.URL, path)
	// Asked once 3 MiB came (at about 3.3 MiB/s), 9 MiB is some 1.8 s
	// ahead: further than RangeAhead (1 s), so fetched apart.
	waitFor(t, "3 MiB of the fill", func() bool {
		n.fillsMu.Lock()
		defer n.fillsMu.Unlock()
		for _, f := range n.fills {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.written >= 3<<20
		}
		return false
	})
	at := 9 << 20
	asked := time.Now()
	resp, body, err := getRange(t, ts.URL+path, "Range", fmt.Sprintf("bytes=%d-%d", at, at+999))
	took := time.Since(asked)
	if err != nil || resp.StatusCode != 206 || !bytes.Equal(body, segmentBytes(path, size)[at:at+1000]) || !strings.Contains(resp.Header.Get("Cache-Status"), "streamed") {
		t.Fatalf("%d (Cache-Status %q), %d bytes, err %v; want the range from the fill", resp.StatusCode, resp.Header.Get("Cache-Status"), len(body), err)
	}
	if took > 4*time.Second {
		t.Errorf("the range took %v: it waited for the upstream's slow answer, not for the fill (about 2 s away)", took)
	}
	if up.ranged.Load() != 1 {
		t.Errorf("%d ranged requests upstream, want 1 (the one given up)", up.ranged.Load())
	}
	<-first
}
