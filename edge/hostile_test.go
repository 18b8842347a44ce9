package edge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deepcast/deepcast/edge/httpsem/httpsemtest"
	"github.com/deepcast/deepcast/media/mediatest"
)

// Regression tests for what a hostile review of the edge found: each
// failed before its fix.

// TestNorPrefetchStaysInTheRendition: CMCD's nor may only name a later
// segment of the same asset and rendition, by a relative reference; hits
// carrying other paths make no upstream requests, and the memo of what was
// prefetched stays bounded and forgets evicted segments.
func TestNorPrefetchStaysInTheRendition(t *testing.T) {
	o := newFakeOrigin(t)
	o.last = 50
	n, ts := newNode(t, Config{Upstreams: []string{o.url()}})
	fetch(t, ts.URL+"/vod/a/v/1.m4s")
	waitFor(t, "segment 2 prefetched", func() bool { _, ok := n.mem.get("/vod/a/v/2.m4s"); return ok })
	hostile := []string{
		`/vod/a/zz/3.m4s`, `/vod/jN/zz/3.m4s`, `../w/4.m4s`, `../../b/v/5.m4s`, `http://evil.example/vod/a/v/6.m4s`,
		`//evil.example/vod/a/v/7.m4s`, `../v/manifest.mpd`, `../init.mp4`, `1.m4s`, `0.m4s`, `..%2fw%2f8.m4s`, `9.m4s?x=1#y`,
	}
	vodRequests := func() int {
		o.mu.Lock()
		defer o.mu.Unlock()
		total := 0
		for p, c := range o.hits {
			if p != "/healthz" {
				total += c
			}
		}
		return total
	}
	before := vodRequests()
	for i := range 200 {
		nor := hostile[i%len(hostile)]
		fetch(t, ts.URL+"/vod/a/v/1.m4s?CMCD="+urlEncode(fmt.Sprintf(`nor="%s",sid="s"`, nor)))
	}
	time.Sleep(200 * time.Millisecond) // prefetches would have started by now
	o.mu.Lock()
	var stray []string
	for p := range o.hits {
		if p != "/healthz" && !strings.HasPrefix(p, "/vod/a/v/") || p == "/vod/a/v/6.m4s" || p == "/vod/a/v/7.m4s" {
			stray = append(stray, p)
		}
	}
	o.mu.Unlock()
	// None: 9.m4s is in the same rendition but further ahead than a
	// player's next request.
	if got := vodRequests() - before; got > 0 || len(stray) > 0 {
		t.Errorf("hostile nor values caused %d upstream requests (paths outside the rendition: %v)", got, stray)
	}
	// The next few segments are followed; one past them is not.
	fetch(t, ts.URL+"/vod/a/v/1.m4s?CMCD="+urlEncode(fmt.Sprintf(`nor="%d.m4s"`, 1+maxNorAhead+1)))
	fetch(t, ts.URL+"/vod/a/v/1.m4s?CMCD="+urlEncode(fmt.Sprintf(`nor="%d.m4s"`, 1+maxNorAhead)))
	waitFor(t, "the segment nor names prefetched", func() bool { return o.count(fmt.Sprintf("/vod/a/v/%d.m4s", 1+maxNorAhead)) == 1 })
	if c := o.count(fmt.Sprintf("/vod/a/v/%d.m4s", 1+maxNorAhead+1)); c != 0 {
		t.Errorf("nor %d segments ahead was fetched %d times", maxNorAhead+1, c)
	}
	// A segment that left the cache may be prefetched again.
	fetch(t, ts.URL+"/vod/a/v/2.m4s")
	waitFor(t, "segment 3 prefetched", func() bool { _, ok := n.mem.get("/vod/a/v/3.m4s"); return ok })
	n.mem.del("/vod/a/v/3.m4s")
	fetch(t, ts.URL+"/vod/a/v/2.m4s")
	waitFor(t, "segment 3 prefetched again after eviction", func() bool { return o.count("/vod/a/v/3.m4s") == 2 })

	m := newPrefetchMemo(8)
	for i := range 100 {
		m.mark(fmt.Sprint(i))
	}
	if m.len() > 8 {
		t.Errorf("prefetch memo holds %d keys, bound 8", m.len())
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// scriptedUpstream answers /healthz with 200 and every other path with
// what answer says.
func scriptedUpstream(t *testing.T, answer func(w http.ResponseWriter, r *http.Request)) *httptest.Server {
	var mu sync.Mutex
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.Write([]byte("ok"))
			return
		}
		mu.Lock()
		defer mu.Unlock()
		answer(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// TestRelayedAnswersKeepWhatTheirStatusNeeds: a redirect keeps its
// Location (or is a 502 without one); a 206 to a request without Range is
// a 502, never relayed as if whole.
func TestRelayedAnswersKeepWhatTheirStatusNeeds(t *testing.T) {
	cases := []struct {
		name     string
		answer   func(w http.ResponseWriter)
		code     int
		location string
	}{
		{"302 with Location", func(w http.ResponseWriter) {
			w.Header().Set("Location", "http://other.example/vod/a/v/1.m4s")
			w.WriteHeader(http.StatusFound)
		}, http.StatusFound, "http://other.example/vod/a/v/1.m4s"},
		{"302 without Location", func(w http.ResponseWriter) { w.WriteHeader(http.StatusFound) }, http.StatusBadGateway, ""},
		{"307 without Location", func(w http.ResponseWriter) { w.WriteHeader(http.StatusTemporaryRedirect) }, http.StatusBadGateway, ""},
		{"206 without Content-Range", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusPartialContent)
			w.Write([]byte("part"))
		}, http.StatusBadGateway, ""},
		{"206 with Content-Range", func(w http.ResponseWriter) {
			w.Header().Set("Content-Range", "bytes 0-3/100")
			w.WriteHeader(http.StatusPartialContent)
			w.Write([]byte("part"))
		}, http.StatusBadGateway, ""},
		{"404", func(w http.ResponseWriter) { http.NotFound(w, nil) }, http.StatusNotFound, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			up := scriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) { c.answer(w) })
			_, ts := newNode(t, Config{Upstreams: []string{up.URL}, Prefetch: noPrefetch()})
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := client.Get(ts.URL + "/vod/a/v/1.m4s")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.code || resp.Header.Get("Location") != c.location {
				t.Errorf("status %d Location %q, want %d %q", resp.StatusCode, resp.Header.Get("Location"), c.code, c.location)
			}
		})
	}
}

// TestCacheStatusSaysWhetherStored: a private or no-store response is not
// stored, and Cache-Status must not say it was.
func TestCacheStatusSaysWhetherStored(t *testing.T) {
	for _, cc := range []string{"private, max-age=60", "no-store", "public, max-age=60"} {
		t.Run(cc, func(t *testing.T) {
			up := scriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", cc)
				w.Write([]byte("body"))
			})
			_, ts := newNode(t, Config{Upstreams: []string{up.URL}, Prefetch: noPrefetch()})
			resp, _ := fetch(t, ts.URL+"/vod/a/v/1.m4s")
			stored := strings.Contains(resp.Header.Get("Cache-Status"), "; stored")
			if want := cc == "public, max-age=60"; stored != want {
				t.Errorf("Cache-Status %q: stored=%v, want %v", resp.Header.Get("Cache-Status"), stored, want)
			}
			resp, _ = fetch(t, ts.URL+"/vod/a/v/1.m4s")
			hit := strings.Contains(resp.Header.Get("Cache-Status"), "; hit")
			if want := cc == "public, max-age=60"; hit != want {
				t.Errorf("second request Cache-Status %q: hit=%v, want %v", resp.Header.Get("Cache-Status"), hit, want)
			}
		})
	}
}

// TestOnlyKeyedQueryGoesUpstream: the upstream sees the query parameters
// that are in the cache key, and CMCD, and nothing else, so a parameter
// that could change the answer never reaches it unkeyed.
func TestOnlyKeyedQueryGoesUpstream(t *testing.T) {
	var seen []string
	up := scriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.URL.RawQuery)
		w.Header().Set("Cache-Control", "public, max-age=60")
		fmt.Fprintf(w, "variant %s", r.URL.Query().Get("lang"))
	})
	_, ts := newNode(t, Config{Upstreams: []string{up.URL}, Prefetch: noPrefetch(), QueryAllow: []string{"v"}})
	_, b1 := fetch(t, ts.URL+"/vod/a/v/1.m4s?lang=evil&v=2&CMCD=br%3D800")
	_, b2 := fetch(t, ts.URL+"/vod/a/v/1.m4s?v=2")
	if string(b1) != "variant " || string(b2) != string(b1) {
		t.Errorf("bodies %q, %q: an unkeyed parameter reached the upstream", b1, b2)
	}
	for _, q := range seen {
		if strings.Contains(q, "lang") {
			t.Errorf("upstream saw %q", q)
		}
	}
	if len(seen) == 0 || seen[0] != "v=2&CMCD=br%3D800" {
		t.Errorf("upstream queries %q, want the keyed parameter and CMCD", seen)
	}
	for _, c := range []struct{ raw, want string }{
		{"", ""}, {"a=1&b=2", ""}, {"v=1&v=2", "v=1&v=2"}, {"%76=1", "%76=1"}, {"CMCD=x&%zz=1", "CMCD=x"},
	} {
		if got := forwardedQuery(c.raw, []string{"v"}); got != c.want {
			t.Errorf("forwardedQuery(%q) = %q, want %q", c.raw, got, c.want)
		}
	}
}

// TestDiskTierNeverDeletesForeignFiles: a -disk folder holding files the
// tier did not write is refused, and the files stay.
func TestDiskTierNeverDeletesForeignFiles(t *testing.T) {
	o := newFakeOrigin(t)
	dir := t.TempDir()
	precious := filepath.Join(dir, "thesis.tex")
	nested := filepath.Join(dir, "ab", "notes.txt")
	os.MkdirAll(filepath.Dir(nested), 0o755)
	os.WriteFile(precious, []byte("years of work"), 0o644)
	os.WriteFile(nested, []byte("more work"), 0o644)
	_, err := New(Config{Profile: BringHome, Upstreams: []string{o.url()}, DiskDir: dir, Logger: quiet()})
	if err == nil || !strings.Contains(err.Error(), diskMarker) {
		t.Fatalf("a foreign folder was accepted: %v", err)
	}
	for _, f := range []string{precious, nested} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	// A new folder is claimed; a foreign file put there later is left alone.
	own := filepath.Join(t.TempDir(), "cache")
	n, ts := newNode(t, Config{Profile: BringHome, Upstreams: []string{o.url()}, DiskDir: own, MemBytes: 16 << 20})
	fetch(t, ts.URL+"/vod/a/v/1.m4s")
	ts.Close()
	n.Close()
	stray := filepath.Join(own, "README")
	os.WriteFile(stray, []byte("mine"), 0o644)
	badShard := filepath.Join(own, "zz", "x")
	os.MkdirAll(filepath.Dir(badShard), 0o755)
	os.WriteFile(badShard, []byte("mine too"), 0o644)
	if _, ts2 := newNode(t, Config{Profile: BringHome, Upstreams: []string{o.url()}, DiskDir: own, MemBytes: 16 << 20}); ts2 == nil {
		t.Fatal("reopen failed")
	}
	for _, f := range []string{stray, badShard, filepath.Join(own, diskMarker)} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestPurgeCountsOnlyCachedKeysAndAcceptsAnyCaseBearer: the bearer scheme
// is case-insensitive; keys that were never cached are not reported purged.
func TestPurgeCountsOnlyCachedKeysAndAcceptsAnyCaseBearer(t *testing.T) {
	o := newFakeOrigin(t)
	_, ts := newNode(t, Config{Upstreams: []string{o.url()}, Prefetch: noPrefetch(), AdminToken: "tok"})
	fetch(t, ts.URL+"/vod/a/v/1.m4s")
	for _, scheme := range []string{"bearer", "BEARER", "Bearer"} {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/api/purge", strings.NewReader(`{"keys":["/vod/a/v/1.m4s","/vod/never/v/9.m4s"]}`))
		req.Header.Set("Authorization", scheme+" tok")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]int
		json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		want := 0
		if scheme == "bearer" {
			want = 1 // the first purge finds the one cached key
		}
		if resp.StatusCode != 200 || got["purged"] != want {
			t.Errorf("%s: status %d purged %d, want 200 and %d", scheme, resp.StatusCode, got["purged"], want)
		}
	}
}

// TestOpsAccess: /metrics and /api/stats name the upstreams; with a token
// they ask for it, hidden they are only on OpsHandler.
func TestOpsAccess(t *testing.T) {
	o := newFakeOrigin(t)
	_, open := newNode(t, Config{Upstreams: []string{o.url()}})
	_, guarded := newNode(t, Config{Upstreams: []string{o.url()}, MetricsToken: "m"})
	hiddenNode, hidden := newNode(t, Config{Upstreams: []string{o.url()}, OpsHidden: true})
	ops := httptest.NewServer(hiddenNode.OpsHandler())
	t.Cleanup(ops.Close)
	for _, c := range []struct {
		base, auth string
		code       int
	}{
		{open.URL, "", 200}, {guarded.URL, "", 401}, {guarded.URL, "Bearer x", 403}, {guarded.URL, "bearer m", 200},
		{hidden.URL, "", 404}, {hidden.URL, "Bearer m", 404}, {ops.URL, "", 200},
	} {
		for _, path := range []string{"/metrics", "/api/stats"} {
			var hdr []string
			if c.auth != "" {
				hdr = []string{"Authorization", c.auth}
			}
			resp, body := fetch(t, c.base+path, hdr...)
			if resp.StatusCode != c.code {
				t.Errorf("%s%s (%q): %d, want %d", c.base, path, c.auth, resp.StatusCode, c.code)
			}
			if c.code != 200 && strings.Contains(string(body), o.addr) {
				t.Errorf("%s%s refused but named the upstream", c.base, path)
			}
		}
	}
}

// TestMadeUpMethodsShareOneSeries: a client picks its method tokens; each
// made-up one used to become a label value of the request counter, so a
// client could grow every node's memory and scrape without bound.
func TestMadeUpMethodsShareOneSeries(t *testing.T) {
	o := newFakeOrigin(t)
	_, ts := newNode(t, Config{Upstreams: []string{o.url()}, Prefetch: noPrefetch()})
	httpsemtest.SendMadeUpMethods(40, ts.URL+"/vod/a/v/1.m4s", ts.URL+"/nowhere")
	fetch(t, ts.URL+"/vod/a/v/1.m4s")
	_, body := fetch(t, ts.URL+"/metrics")
	httpsemtest.CheckNoMadeUpMethodLabel(t, string(body))
	for _, want := range []string{
		`deepcast_edge_http_requests_total{code="405",method="other",route="unmatched"} 80`,
		`deepcast_edge_http_requests_total{code="200",method="GET",route="/vod/*"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestAHangingUpstreamLeavesTimeForTheNext: an upstream that takes the
// request and never answers (a partition) used to spend the whole fetch
// timeout, so the retry on the standby never ran and the client got a 504.
func TestAHangingUpstreamLeavesTimeForTheNext(t *testing.T) {
	release := make(chan struct{})
	hanging := scriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) { <-release })
	t.Cleanup(func() { close(release) })
	good := newFakeOrigin(t)
	n, ts := newNode(t, Config{Upstreams: []string{hanging.URL, good.url()}, Prefetch: noPrefetch(), FetchTimeout: 2 * time.Second})
	n.pool.list()[1].healthy.Store(true)
	start := time.Now()
	resp, body := fetch(t, ts.URL+"/vod/a/v/1.m4s")
	if resp.StatusCode != 200 || len(body) != good.size {
		t.Errorf("status %d after %s, want 200 from the standby", resp.StatusCode, time.Since(start))
	}
	if d := time.Since(start); d > 1800*time.Millisecond {
		t.Errorf("took %s", d)
	}
}

// TestASlowBodyIsNotAbandonedWhileItComes: on a congested link a segment
// can take longer than the fetch timeout to come whole. A body that keeps
// coming is read to its end (it used to be abandoned at the timeout, and
// fetched again from the start by the next request); one that stops
// coming is abandoned once it has paused for the timeout.
func TestASlowBodyIsNotAbandonedWhileItComes(t *testing.T) {
	const pieces, piece = 12, 16 << 10
	var stop atomic.Int64 // the piece after which the body stops coming (0: never)
	up := scriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(pieces*piece))
		w.Header().Set("Cache-Control", "public, max-age=60")
		for i := range pieces {
			if s := stop.Load(); s > 0 && int64(i) == s {
				<-r.Context().Done()
				return
			}
			w.Write(bytes.Repeat([]byte{byte('a' + i)}, piece))
			w.(http.Flusher).Flush()
			time.Sleep(150 * time.Millisecond)
		}
	})
	_, ts := newNode(t, Config{Upstreams: []string{up.URL}, Prefetch: noPrefetch(), FetchTimeout: time.Second})
	start := time.Now()
	resp, body := fetch(t, ts.URL+"/vod/a/v/1.m4s")
	if resp.StatusCode != http.StatusOK || len(body) != pieces*piece {
		t.Errorf("a body that came over %s (fetch timeout 1 s): status %d, %d bytes; want 200 and all %d", time.Since(start), resp.StatusCode, len(body), pieces*piece)
	}
	// Streamed by then (Config.StreamAfter), its answer is cut short: a
	// 200 whose body breaks off. Store and forward would answer a 5xx.
	stop.Store(4)
	start = time.Now()
	resp, err := http.Get(ts.URL + "/vod/a/v/2.m4s")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	cut := resp.StatusCode == http.StatusOK && err != nil && len(got) < pieces*piece
	if d := time.Since(start); !(resp.StatusCode >= 500 || cut) || d > 3*time.Second {
		t.Errorf("a body that stopped coming: status %d, %d bytes (%v) after %s; want a 5xx or an answer cut short within about 1.6 s", resp.StatusCode, len(got), err, d)
	}
}

// TestMethodsOutsideTheRoutes: a method a path does not take is a 405
// with Allow, also with the web pages mounted (whose catch-all route once
// answered every method with their 404), and HEAD works wherever GET does.
func TestMethodsOutsideTheRoutes(t *testing.T) {
	up := scriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("body")) })
	pages := http.NewServeMux()
	pages.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("page")) })
	for _, web := range []http.Handler{pages, nil} {
		_, ts := newNode(t, Config{Upstreams: []string{up.URL}, Prefetch: noPrefetch(), Web: web})
		for _, r := range []struct {
			method, path string
			status       int
			allow        string
		}{
			{http.MethodPost, "/vod/a/v/1.m4s", 405, "GET, HEAD, OPTIONS"},
			{http.MethodPut, "/api/purge", 405, allowPurge(web != nil)},
			{http.MethodHead, "/vod/a/v/1.m4s", 200, ""},
			{http.MethodHead, "/healthz", 200, ""},
		} {
			req, _ := http.NewRequest(r.method, ts.URL+r.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != r.status || resp.Header.Get("Allow") != r.allow {
				t.Errorf("pages %v: %s %s: %d, Allow %q; want %d, %q", web != nil, r.method, r.path, resp.StatusCode, resp.Header.Get("Allow"), r.status, r.allow)
			}
		}
	}
}

// allowPurge is the Allow of a 405 on /api/purge: with the pages mounted
// their catch-all takes GET (and HEAD) there too, and answers it 404.
func allowPurge(pages bool) string {
	if pages {
		return "GET, HEAD, POST, OPTIONS"
	}
	return "POST, OPTIONS"
}

// TestTransferCodingClosesTheConnection: a GET with Transfer-Encoding and
// Content-Length (RFC 9112 §6.1) is answered and its connection closed,
// so a request smuggled after it is never read, on the node's routes and
// on its ops listener.
func TestTransferCodingClosesTheConnection(t *testing.T) {
	up := scriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("body")) })
	n, ts := newNode(t, Config{Upstreams: []string{up.URL}, Prefetch: noPrefetch()})
	ops := httptest.NewServer(n.OpsHandler())
	defer ops.Close()
	for _, c := range []struct {
		srv  *httptest.Server
		path string
	}{{ts, "/vod/a/v/1.m4s"}, {ops, "/healthz"}} {
		got := httpsemtest.ExchangeUntilClosed(t, c.srv.Listener.Addr().String(), httpsemtest.Smuggled(c.path))
		if n := strings.Count(got, "HTTP/1.1 200"); n != 1 || !strings.Contains(got, "Connection: close") {
			t.Errorf("%s: %d answers, want 1 with Connection: close: %q", c.path, n, got)
		}
	}
}

// FuzzNorStaysInTheRendition: whatever CMCD nor a client sends with a
// segment request, what the node would prefetch is one of the next few
// segments of the same rendition, never another path.
func FuzzNorStaysInTheRendition(f *testing.F) {
	for _, nor := range []string{"2.m4s", "../v/3.m4s", "..%2fw%2f8.m4s", "//evil.example/vod/a/v/7.m4s", "9.m4s?x=1#y", "./5.m4s", "%2e%2e/v/4.m4s"} {
		f.Add(`nor="`+nor+`",sid="s"`, "/vod/a/v/1.m4s")
	}
	f.Fuzz(func(t *testing.T, cmcd, path string) {
		p, ok := parseObjectPath(path)
		if !ok || p.Kind != "segment" {
			return
		}
		r, err := http.NewRequest(http.MethodGet, "http://edge"+path+"?CMCD="+url.QueryEscape(cmcd), nil)
		if err != nil {
			return
		}
		np, ok := sameRenditionSegment(r, p, cmcdNextObject(r))
		if !ok {
			return
		}
		if np.Kind != "segment" || np.Asset != p.Asset || np.Rendition != p.Rendition || np.Segment <= p.Segment || np.Segment > p.Segment+maxNorAhead {
			t.Fatalf("nor from %q on %s names %+v", cmcd, path, np)
		}
	})
}

// TestHugeUpstreamHeadersAreRefused: an upstream whose answer carries more
// than MaxUpstreamHeaderBytes of headers (kept with the object, they
// would weigh on the memory tier far beyond the body) fails the fetch
// instead of being cached.
func TestHugeUpstreamHeadersAreRefused(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		if r.URL.Path == "/vod/a/v/2.m4s" {
			w.Header().Set("Repr-Digest", strings.Repeat("x", MaxUpstreamHeaderBytes))
		}
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Write([]byte("segment"))
	}))
	t.Cleanup(upstream.Close)
	_, ts := newNode(t, Config{Upstreams: []string{upstream.URL}, Prefetch: noPrefetch()})
	if resp, body := fetch(t, ts.URL+"/vod/a/v/1.m4s"); resp.StatusCode != 200 || string(body) != "segment" {
		t.Fatalf("ordinary answer: %d %q", resp.StatusCode, body)
	}
	resp, _ := fetch(t, ts.URL+"/vod/a/v/2.m4s")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("answer with %d KiB of headers: %d, want 502", MaxUpstreamHeaderBytes>>10, resp.StatusCode)
	}
}

// TestUpstreamPasswordStaysSecret: an upstream URL may carry HTTP Basic
// credentials (user:password@host); the node sends them, and neither its
// logs nor /api/stats nor /metrics show the password (they used to print
// the URL whole).
func TestUpstreamPasswordStaysSecret(t *testing.T) {
	o := newFakeOrigin(t)
	locked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "cdn" || p != "s3cret" {
			http.Error(w, "who?", http.StatusUnauthorized)
			return
		}
		o.ServeHTTP(w, r)
	}))
	var logs mediatest.Capture
	up := "http://cdn:s3cret@" + strings.TrimPrefix(locked.URL, "http://")
	_, ts := newNode(t, Config{Upstreams: []string{up}, Prefetch: noPrefetch(), Logger: logs.Logger()})
	if resp, _ := fetch(t, ts.URL+"/vod/a/v/1.m4s"); resp.StatusCode != http.StatusOK {
		t.Fatalf("segment through an upstream that wants the credentials: %d", resp.StatusCode)
	}
	_, stats := fetch(t, ts.URL+"/api/stats")
	if !strings.Contains(string(stats), "cdn:xxxxx@") {
		t.Errorf("/api/stats does not name the upstream (redacted): %s", stats)
	}
	// The upstream goes down: the node says so, naming it.
	locked.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "upstream down") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "upstream down") {
		t.Fatalf("no upstream down in the log:\n%s", logs.String())
	}
	_, metrics := fetch(t, ts.URL+"/metrics")
	for what, text := range map[string]string{"the log": logs.String(), "/api/stats": string(stats), "/metrics": string(metrics)} {
		if strings.Contains(text, "s3cret") {
			t.Errorf("%s shows the upstream's password", what)
		}
	}
	for _, bad := range []string{"http://cdn:s3cret@h/?token=1", "http://h/path#frag", "http://h/?", "http://cdn:s3cret@h/%zz"} {
		_, err := parseUpstreamURL(bad)
		if err == nil {
			t.Errorf("upstream %q accepted", bad)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("upstream %q: the error shows the password: %v", bad, err)
		}
	}
	if u, err := parseUpstreamURL("https://cdn:s3cret@origin.example/prefix/"); err != nil || u.Path != "/prefix" {
		t.Errorf("an upstream with a path prefix: %v, %v", u, err)
	}
}
