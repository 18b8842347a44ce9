package edge

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowObject is the one object slowOrigin serves, and its size: small
// enough for memory, large enough to come in several reads.
const (
	slowObject = "/vod/a/v/7.m4s"
	slowSize   = 300 << 10
)

// slowOrigin serves slowObject: half of it at once, the rest only once
// release is closed (or after a bound, so that a test never hangs), or
// the body is cut off there (cut); chunked, without a Content-Length. It
// counts the object's requests.
type slowOrigin struct {
	cut     bool
	release chan struct{}
	hits    atomic.Int64
	srv     *httptest.Server
}

func newSlowOrigin(t *testing.T, cut bool) *slowOrigin { return newSlowOriginOf(t, cut, false) }

func newSlowOriginOf(t *testing.T, cut, chunked bool) *slowOrigin {
	o := &slowOrigin{cut: cut, release: make(chan struct{})}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != slowObject {
			return // health checks
		}
		o.hits.Add(1)
		body := segmentBytes(slowObject, slowSize)
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("ETag", `"v1"`)
		if !chunked {
			w.Header().Set("Content-Length", fmt.Sprint(slowSize))
		}
		w.Write(body[:slowSize/2])
		w.(http.Flusher).Flush()
		select {
		case <-o.release:
		case <-time.After(10 * time.Second):
		}
		if o.cut {
			panic(http.ErrAbortHandler) // the upstream dies mid-body
		}
		w.Write(body[slowSize/2:])
	}))
	t.Cleanup(o.srv.Close)
	return o
}

// rangeOrigin serves slowObject whole and in ranges (net/http's
// ServeContent: If-Range too) with the ETag etag, or, ignoring Range,
// always whole; it records the Range and If-Range of each request.
type rangeOrigin struct {
	mu     sync.Mutex
	ranges []string
	srv    *httptest.Server
}

func newRangeOrigin(t *testing.T, etag string, ignoreRange bool) *rangeOrigin {
	o := &rangeOrigin{}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != slowObject {
			return
		}
		o.mu.Lock()
		o.ranges = append(o.ranges, r.Header.Get("Range")+" if-range "+r.Header.Get("If-Range"))
		o.mu.Unlock()
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("ETag", etag)
		if ignoreRange {
			r.Header.Del("Range")
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(segmentBytes(slowObject, slowSize)))
	}))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *rangeOrigin) asked() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.ranges...)
}

// twoPartAnswer is what getInTwo's GET got: the answer (nil when the
// request failed), its body, and the error of the request or the body.
type twoPartAnswer struct {
	resp *http.Response
	body []byte
	err  error
}

// status is the answer's status (0 for none).
func (a twoPartAnswer) status() int {
	if a.resp == nil {
		return 0
	}
	return a.resp.StatusCode
}

// getInTwo GETs url in the background: first is closed once the answer's
// first byte came (or the request failed), and done then has the answer.
func getInTwo(url string) (first <-chan struct{}, done <-chan twoPartAnswer) {
	firstc, donec := make(chan struct{}), make(chan twoPartAnswer, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			close(firstc)
			donec <- twoPartAnswer{err: err}
			return
		}
		defer resp.Body.Close()
		b := make([]byte, 1)
		k, err := io.ReadFull(resp.Body, b)
		close(firstc)
		if err != nil {
			donec <- twoPartAnswer{resp: resp, err: err}
			return
		}
		rest, err := io.ReadAll(resp.Body)
		donec <- twoPartAnswer{resp: resp, body: append(b[:k], rest...), err: err}
	}()
	return firstc, donec
}

// getStreamed GETs slowObject through the node at base, from slow: it
// wants the answer's first byte within 5 s, while slow still holds back
// half the body; then it calls during, lets slow send the rest, and
// returns the answer.
func getStreamed(t *testing.T, base string, slow *slowOrigin, during func()) twoPartAnswer {
	t.Helper()
	first, done := getInTwo(base + slowObject)
	select {
	case <-first:
	case <-time.After(5 * time.Second):
		t.Errorf("no byte of the answer 5 s after the upstream sent half the object: the node waits for all of it")
	}
	during()
	close(slow.release)
	select {
	case a := <-done:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("the answer did not end within 10 s")
	}
	return twoPartAnswer{}
}

// TestSlowMissesAreStreamed: a miss whose body is still coming after
// StreamAfter is sent to its client as it comes: the client has its first
// bytes while the upstream still holds back the rest (store and forward
// would have it wait for the last byte). Once whole, it is a memory hit.
// A body cut off after streaming began is resumed from an upstream with a
// ranged request for the same version, so the client still gets it whole;
// when no upstream has that version the client's answer is cut short and
// nothing is kept.
func TestSlowMissesAreStreamed(t *testing.T) {
	cases := []struct {
		name        string
		cut         bool
		other       string // the second upstream's ETag ("": none)
		ignoreRange bool
		whole       bool   // the client gets the whole body
		resumeAsked string // what the second upstream is asked for
		resumes     int64
		firstAsked  int64 // requests to the first upstream (0: one)
	}{
		{name: "streamed", whole: true},
		{name: "cut, resumed with a range", cut: true, other: `"v1"`, whole: true, resumeAsked: fmt.Sprintf("bytes=%d- if-range \"v1\"", slowSize/2), resumes: 1},
		{name: "cut, resumed from a 200", cut: true, other: `"v1"`, ignoreRange: true, whole: true, resumes: 1},
		// The other upstream's answer is refused; the first one's (a 200
		// read past what came) is taken, and cut off again, twice.
		{name: "cut, another version upstream", cut: true, other: `"v2"`, resumes: maxResumes, firstAsked: 1 + maxResumes},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			slow := newSlowOrigin(t, c.cut)
			ups := []string{slow.srv.URL}
			var other *rangeOrigin
			if c.other != "" {
				other = newRangeOrigin(t, c.other, c.ignoreRange)
				ups = append(ups, other.srv.URL)
			}
			n, ts := newNode(t, Config{Upstreams: ups, Prefetch: noPrefetch(), StreamAfter: 50 * time.Millisecond, SpoolDir: t.TempDir()})

			a := getStreamed(t, ts.URL, slow, func() {
				// A front's fast path leaves the object while it streams to
				// net/http, which joins the same fill (the count below).
				if _, ok := n.AnswerPlain(false, slowObject, "", "127.0.0.1:1"); ok {
					t.Error("the fast path answered an object still streaming")
				}
			})
			want := segmentBytes(slowObject, slowSize)
			if c.whole {
				if a.err != nil || a.status() != http.StatusOK || !bytes.Equal(a.body, want) {
					t.Fatalf("status %d, %d of %d bytes, err %v; want the whole object", a.status(), len(a.body), slowSize, a.err)
				}
			} else if a.err == nil || len(a.body) >= slowSize {
				t.Fatalf("status %d, %d of %d bytes, err %v; want an answer cut short", a.status(), len(a.body), slowSize, a.err)
			}
			if got := n.stats.slowStreamed.Load(); got != 1 {
				t.Errorf("slow streamed %d, want 1", got)
			}
			if got, want := slow.hits.Load(), max(1, c.firstAsked); got != want {
				t.Errorf("the first upstream was asked %d times, want %d", got, want)
			}
			if c.resumeAsked != "" {
				if asked := other.asked(); len(asked) != 1 || asked[0] != c.resumeAsked {
					t.Errorf("the other upstream was asked %q, want [%q]", asked, c.resumeAsked)
				}
			}
			waitFor(t, "fill over", func() bool { n.fillsMu.Lock(); defer n.fillsMu.Unlock(); return len(n.fills) == 0 })
			if got := n.stats.fillResumes.Load(); got != c.resumes {
				t.Errorf("resumes %d, want %d", got, c.resumes)
			}
			_, kept := n.mem.get(cacheKey(slowObject, "", nil))
			if kept != c.whole {
				t.Errorf("kept in memory %v, want %v", kept, c.whole)
			}
			if c.whole {
				before := slow.hits.Load()
				resp, body := fetch(t, ts.URL+slowObject)
				if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "hit") || !bytes.Equal(body, want) {
					t.Errorf("after the stream: Cache-Status %q, %d bytes; want a hit", cs, len(body))
				}
				if slow.hits.Load() != before {
					t.Error("the hit went upstream")
				}
			}
		})
	}
}

// TestParseContentRange: what a 206 says it sends, and the forms refused.
func TestParseContentRange(t *testing.T) {
	cases := []struct {
		v                  string
		first, last, total int64
		ok                 bool
	}{
		{"bytes 100-199/200", 100, 199, 200, true},
		{"bytes 0-0/1", 0, 0, 1, true},
		{"bytes 100-199/*", 0, 0, 0, false},
		{"bytes */200", 0, 0, 0, false},
		{"bytes 100-99/200", 0, 0, 0, false},
		{"bytes 100-200/200", 0, 0, 0, false},
		{"bytes -1-5/10", 0, 0, 0, false},
		{"items 1-2/3", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	}
	for _, c := range cases {
		first, last, total, ok := parseContentRange(c.v)
		if ok != c.ok || ok && (first != c.first || last != c.last || total != c.total) {
			t.Errorf("%q: %d-%d/%d %v; want %d-%d/%d %v", c.v, first, last, total, ok, c.first, c.last, c.total, c.ok)
		}
	}
}

// FuzzParseContentRange: any value is read without a panic, and a range
// read is one a body can have.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 100-199/200", "bytes */200", "bytes 1-2/3", "bytes 9223372036854775806-9223372036854775806/9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		first, last, total, ok := parseContentRange(v)
		if ok && !(0 <= first && first <= last && last < total) {
			t.Fatalf("%q: %d-%d/%d", v, first, last, total)
		}
	})
}

// TestAHeadOfASlowFillWaitsForTheBody: a HEAD of an object whose fill is
// under way (a GET missed and streams it) is answered once the object is
// whole, not at once, so that its length is known and a body that fails
// is not announced: then the HEAD is a 502 that keeps none of the
// object's caching. (A HEAD with no fill to join is asked upstream as a
// HEAD: TestAHeadIsAskedUpstreamAsAHead.)
func TestAHeadOfASlowFillWaitsForTheBody(t *testing.T) {
	for _, c := range []struct{ cut, chunked bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		cut := c.cut
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			slow := newSlowOriginOf(t, cut, c.chunked)
			_, ts := newNode(t, Config{Upstreams: []string{slow.srv.URL}, Prefetch: noPrefetch(), StreamAfter: 10 * time.Millisecond, SpoolDir: t.TempDir()})
			first, got := getInTwo(ts.URL + slowObject)
			select {
			case <-first:
			case <-time.After(5 * time.Second):
				t.Fatal("the GET that starts the fill: no byte within 5 s")
			}
			defer func() {
				select {
				case <-got:
				case <-time.After(10 * time.Second):
					t.Error("the GET that started the fill did not end within 10 s")
				}
			}()
			answered := make(chan *http.Response, 1)
			go func() {
				resp, err := http.Head(ts.URL + slowObject)
				if err != nil {
					t.Error(err)
					close(answered)
					return
				}
				resp.Body.Close()
				answered <- resp
			}()
			select {
			case resp := <-answered:
				t.Fatalf("HEAD answered (%v) while the upstream still held back half the body", resp)
			case <-time.After(500 * time.Millisecond):
			}
			close(slow.release)
			var resp *http.Response
			select {
			case resp = <-answered:
			case <-time.After(10 * time.Second):
				t.Fatal("HEAD not answered 10 s after the body came whole")
			}
			switch {
			case resp == nil:
				t.Fatal("HEAD failed")
			case !cut && (resp.StatusCode != http.StatusOK || resp.ContentLength != slowSize):
				t.Fatalf("HEAD: %d, %d bytes; want 200 with a Content-Length of %d", resp.StatusCode, resp.ContentLength, slowSize)
			case cut && (resp.StatusCode != http.StatusBadGateway || resp.Header.Get("ETag") != "" || strings.Contains(resp.Header.Get("Cache-Control"), "immutable")):
				t.Fatalf("HEAD of a body cut off: %d, ETag %q, Cache-Control %q; want a 502 with neither", resp.StatusCode, resp.Header.Get("ETag"), resp.Header.Get("Cache-Control"))
			}
		})
	}
}

// TestSlowChunkedMissesAreStreamed: a miss without a Content-Length (a
// chunked answer) whose body is still coming after StreamAfter is sent
// to its client as it comes, as one with a length is, and kept in memory
// once whole; one that comes whole at once is read whole, as before.
func TestSlowChunkedMissesAreStreamed(t *testing.T) {
	slow := newSlowOriginOf(t, false, true)
	n, ts := newNode(t, Config{Upstreams: []string{slow.srv.URL}, Prefetch: noPrefetch(), StreamAfter: 50 * time.Millisecond, SpoolDir: t.TempDir()})
	a := getStreamed(t, ts.URL, slow, func() {})
	if a.err != nil || a.resp.StatusCode != http.StatusOK || !bytes.Equal(a.body, segmentBytes(slowObject, slowSize)) ||
		!strings.Contains(a.resp.Header.Get("Cache-Status"), "detail=streamed") {
		t.Fatalf("err %v, %d bytes of %d, Cache-Status %q; want the whole object, streamed", a.err, len(a.body), slowSize, a.resp.Header.Get("Cache-Status"))
	}
	waitFor(t, "the fill over", func() bool { n.fillsMu.Lock(); defer n.fillsMu.Unlock(); return len(n.fills) == 0 })
	resp, body := fetch(t, ts.URL+slowObject)
	if !bytes.Equal(body, segmentBytes(slowObject, slowSize)) || !strings.HasPrefix(resp.Header.Get("Cache-Status"), n.cfg.Name+"; hit") ||
		resp.ContentLength != slowSize {
		t.Errorf("after the fill: %d bytes, Cache-Status %q, Content-Length %d; want a memory hit", len(body), resp.Header.Get("Cache-Status"), resp.ContentLength)
	}
	if got := slow.hits.Load(); got != 1 {
		t.Errorf("%d upstream requests, want 1", got)
	}
	if got := n.stats.slowStreamed.Load(); got != 1 {
		t.Errorf("slow streamed %d, want 1", got)
	}

	// Whole at once: read whole, stored, not streamed.
	fast := newBigUpstream(t, 64<<10, true, 0)
	n2, ts2 := newNode(t, Config{Upstreams: []string{fast.srv.URL}, Prefetch: noPrefetch(), StreamAfter: 5 * time.Second, SpoolDir: t.TempDir()})
	resp, body = fetch(t, ts2.URL+"/vod/a/v/1.m4s")
	if cs := resp.Header.Get("Cache-Status"); resp.StatusCode != 200 || !bytes.Equal(body, segmentBytes("/vod/a/v/1.m4s", 64<<10)) ||
		strings.Contains(cs, "streamed") || !strings.Contains(cs, "stored") {
		t.Errorf("a chunked miss that came at once: %d, %d bytes, Cache-Status %q; want it read whole and stored", resp.StatusCode, len(body), cs)
	}
	if got := n2.stats.slowStreamed.Load(); got != 0 {
		t.Errorf("slow streamed %d, want 0", got)
	}
}
