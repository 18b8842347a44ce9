package edge

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deepcast/deepcast/media/mediatest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakeOrigin serves deterministic objects under /vod/a/v/N.m4s (N ≤ last),
// /vod/a/v/init.mp4 and /vod/a/manifest.mpd, counting requests per path.
type fakeOrigin struct {
	mu       sync.Mutex
	hits     map[string]int
	total    atomic.Int64
	last     int
	size     int
	mpdCC    string
	gate     chan struct{} // when set, segment responses wait for it
	queries  []string
	cmcdHdrs []string
	addr     string
	srv      *http.Server
	ln       net.Listener
}

func newFakeOrigin(t *testing.T) *fakeOrigin {
	f := &fakeOrigin{hits: map[string]int{}, last: 5, size: 64 << 10, mpdCC: "public, max-age=60"}
	f.start(t, "127.0.0.1:0")
	t.Cleanup(f.stop)
	return f
}

func (f *fakeOrigin) start(t *testing.T, addr string) {
	var ln net.Listener
	var err error
	for range 50 { // a restarted origin may find its port in TIME_WAIT briefly
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	f.ln, f.addr = ln, ln.Addr().String()
	f.srv = &http.Server{Handler: f}
	go f.srv.Serve(ln)
}

func (f *fakeOrigin) stop() {
	if f.srv != nil {
		f.srv.Close()
		f.srv = nil
	}
}

func (f *fakeOrigin) url() string { return "http://" + f.addr }

func segmentBytes(path string, size int) []byte {
	b := make([]byte, size)
	seed := sha256.Sum256([]byte(path))
	for i := range b {
		b[i] = seed[i%32] ^ byte(i/32)
	}
	return b
}

func (f *fakeOrigin) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[path]
}

func (f *fakeOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.hits[r.URL.Path]++
	f.queries = append(f.queries, r.URL.RawQuery)
	if v := r.Header.Get("CMCD-Request"); v != "" {
		f.cmcdHdrs = append(f.cmcdHdrs, v)
	}
	gate := f.gate
	f.mu.Unlock()
	f.total.Add(1)
	switch {
	case r.URL.Path == "/healthz":
		w.Write([]byte("ok"))
	case r.URL.Path == "/vod/a/manifest.mpd":
		body := []byte("<MPD>manifest</MPD>")
		w.Header().Set("Cache-Control", f.mpdCC)
		w.Header().Set("Content-Type", "application/dash+xml")
		http.ServeContent(w, r, "", time.Unix(1700000000, 0), bytes.NewReader(body))
	case strings.HasPrefix(r.URL.Path, "/vod/a/v/"):
		name := strings.TrimPrefix(r.URL.Path, "/vod/a/v/")
		var n int
		if name != "init.mp4" {
			if _, err := fmt.Sscanf(name, "%d.m4s", &n); err != nil || n < 1 || n > f.last {
				http.NotFound(w, r)
				return
			}
		}
		if gate != nil {
			<-gate
		}
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("Content-Type", "video/iso.segment")
		w.Header().Set("ETag", fmt.Sprintf(`"%x"`, sha256.Sum256([]byte(r.URL.Path))))
		w.Header().Set("X-Deepcast-Last-Segment", fmt.Sprint(f.last))
		http.ServeContent(w, r, "", time.Unix(1700000000, 0), bytes.NewReader(segmentBytes(r.URL.Path, f.size)))
	default:
		http.NotFound(w, r)
	}
}

func newNode(t *testing.T, cfg Config) (*Node, *httptest.Server) {
	t.Helper()
	if cfg.Profile == "" {
		cfg.Profile = EnterDeep
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	if cfg.CheckEvery == 0 {
		cfg.CheckEvery = 100 * time.Millisecond
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = 2 * time.Second
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(n)
	t.Cleanup(func() {
		ts.Close()
		n.Close()
	})
	return n, ts
}

func noPrefetch() *bool { v := false; return &v }

// fetch sends a GET with the headers given ("Host" sets the request's
// host) and returns the answer and its bytes as sent.
func fetch(t *testing.T, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if req.Header.Get("Accept-Encoding") == "" {
		// The answer's bytes as sent: Go's transport would otherwise
		// ask for gzip and decode it out of sight.
		req.Header.Set("Accept-Encoding", "identity")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func TestHitMissAndHeaders(t *testing.T) {
	o := newFakeOrigin(t)
	_, ts := newNode(t, Config{Name: "deep-t", Upstreams: []string{o.url()}, Prefetch: noPrefetch()})
	resp, body := fetch(t, ts.URL+"/vod/a/v/1.m4s")
	if resp.StatusCode != 200 || !bytes.Equal(body, segmentBytes("/vod/a/v/1.m4s", o.size)) {
		t.Fatalf("miss: %d", resp.StatusCode)
	}
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "deep-t; fwd=uri-miss") || !strings.Contains(cs, "stored") {
		t.Errorf("miss Cache-Status %q", cs)
	}
	resp, body = fetch(t, ts.URL+"/vod/a/v/1.m4s")
	if cs := resp.Header.Get("Cache-Status"); !strings.HasPrefix(cs, "deep-t; hit; ttl=") {
		t.Errorf("hit Cache-Status %q", cs)
	}
	if resp.Header.Get("Via") != "1.1 deep-t" || resp.Header.Get("Age") == "" || resp.Header.Get("ETag") == "" ||
		resp.Header.Get("Access-Control-Allow-Origin") != "*" || !bytes.Equal(body, segmentBytes("/vod/a/v/1.m4s", o.size)) {
		t.Errorf("hit headers %v", resp.Header)
	}
	if got := o.count("/vod/a/v/1.m4s"); got != 1 {
		t.Errorf("origin saw %d requests, want 1", got)
	}
	// Ranges come from the whole cached object.
	resp, body = fetch(t, ts.URL+"/vod/a/v/1.m4s", "Range", "bytes=10-19")
	if resp.StatusCode != 206 || !bytes.Equal(body, segmentBytes("/vod/a/v/1.m4s", o.size)[10:20]) ||
		resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 10-19/%d", o.size) {
		t.Errorf("range: %d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	// RFC 9110: the unit is case-insensitive, and a Range in a unit the
	// node does not know is ignored (the whole object, not a 416).
	seg1 := segmentBytes("/vod/a/v/1.m4s", o.size)
	if resp, body := fetch(t, ts.URL+"/vod/a/v/1.m4s", "Range", "Bytes=0-9"); resp.StatusCode != 206 || !bytes.Equal(body, seg1[:10]) {
		t.Errorf("Bytes=0-9: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp, body := fetch(t, ts.URL+"/vod/a/v/1.m4s", "Range", "items=0-1"); resp.StatusCode != 200 || !bytes.Equal(body, seg1) {
		t.Errorf("items=0-1: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp, body := fetch(t, ts.URL+"/vod/a/v/1.m4s", "Range", "bytes=0-0,-0"); resp.StatusCode != 206 || !bytes.Equal(body, seg1[:1]) {
		t.Errorf("bytes=0-0,-0: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp, _ := fetch(t, ts.URL+"/vod/a/v/1.m4s", "Range", "bytes=-0"); resp.StatusCode != 416 || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", len(seg1)) {
		t.Errorf("bytes=-0: %d, Content-Range %q", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	// A range miss fetches the whole object once, then serves the range.
	resp, body = fetch(t, ts.URL+"/vod/a/v/2.m4s", "Range", "bytes=-100")
	if resp.StatusCode != 206 || !bytes.Equal(body, segmentBytes("/vod/a/v/2.m4s", o.size)[o.size-100:]) {
		t.Errorf("range miss: %d", resp.StatusCode)
	}
	fetch(t, ts.URL+"/vod/a/v/2.m4s")
	if got := o.count("/vod/a/v/2.m4s"); got != 1 {
		t.Errorf("range miss then full: origin saw %d requests, want 1", got)
	}
	if resp, _ := fetch(t, ts.URL+"/vod/a/v/1.m4s", "If-None-Match", resp.Header.Get("ETag")); resp.StatusCode != 200 && resp.StatusCode != 304 {
		t.Errorf("conditional: %d", resp.StatusCode)
	}
	// 404s pass through and are not cached.
	resp, _ = fetch(t, ts.URL+"/vod/a/v/99.m4s")
	if resp.StatusCode != 404 {
		t.Errorf("missing segment: %d", resp.StatusCode)
	}
	for _, p := range []string{"/vod/..%2f/x.m4s", "/vod/a/v/0.m4s", "/vod/a/v/01.m4s", "/vod/%2e%2e/manifest.mpd", "/etc/passwd", "/vod/a/v/1.m4s/x"} {
		if resp, _ := fetch(t, ts.URL+p); resp.StatusCode != 404 && resp.StatusCode != 400 {
			t.Errorf("%s: %d", p, resp.StatusCode)
		}
	}
}

func TestCoalescing500(t *testing.T) {
	o := newFakeOrigin(t)
	o.gate = make(chan struct{})
	// The gate, not the fetch timeout, decides when the answer comes: on a
	// loaded machine 500 clients take a while to get in.
	n, ts := newNode(t, Config{Upstreams: []string{o.url()}, Prefetch: noPrefetch(), FetchTimeout: 30 * time.Second})
	const clients = 500
	tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: clients}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	sums := make([][32]byte, clients)
	errs := make([]error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			resp, err := client.Get(ts.URL + "/vod/a/v/3.m4s")
			if err != nil {
				errs[i] = err
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				errs[i] = fmt.Errorf("status %d, %v", resp.StatusCode, err)
			}
			sums[i] = sha256.Sum256(b)
		})
	}
	// Hold the single upstream response until every client is inside the node.
	deadline := time.Now().Add(20 * time.Second)
	for n.stats.requests.Load() < clients && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	close(o.gate)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	want := sha256.Sum256(segmentBytes("/vod/a/v/3.m4s", o.size))
	for i, s := range sums {
		if s != want {
			t.Fatalf("client %d got different bytes", i)
		}
	}
	if got := o.count("/vod/a/v/3.m4s"); got != 1 {
		t.Errorf("%d concurrent misses caused %d upstream requests, want 1", clients, got)
	}
	if n.Stats().Coalesced < clients-50 {
		t.Errorf("coalesced %d", n.Stats().Coalesced)
	}
}

func TestFailedFetchIsNotCached(t *testing.T) {
	o := newFakeOrigin(t)
	addr := o.addr
	_, ts := newNode(t, Config{Upstreams: []string{o.url()}, Prefetch: noPrefetch()})
	o.stop()
	start := time.Now()
	resp, _ := fetch(t, ts.URL+"/vod/a/v/4.m4s")
	if resp.StatusCode != 502 && resp.StatusCode != 504 {
		t.Errorf("dead origin: %d", resp.StatusCode)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("dead origin answered after %s", time.Since(start))
	}
	o.start(t, addr)
	resp, _ = fetch(t, ts.URL+"/vod/a/v/4.m4s")
	if resp.StatusCode != 200 {
		t.Errorf("after recovery: %d (a failure was cached?)", resp.StatusCode)
	}
}

func TestStaleIfErrorAndRecovery(t *testing.T) {
	o := newFakeOrigin(t)
	o.mpdCC = "public, max-age=1"
	addr := o.addr
	_, ts := newNode(t, Config{Upstreams: []string{o.url()}, Prefetch: noPrefetch(), ManifestSWR: time.Millisecond})
	fetch(t, ts.URL+"/vod/a/manifest.mpd")
	fetch(t, ts.URL+"/vod/a/v/1.m4s")
	o.stop() // the origin dies
	time.Sleep(1100 * time.Millisecond)
	resp, body := fetch(t, ts.URL+"/vod/a/manifest.mpd")
	if resp.StatusCode != 200 || string(body) != "<MPD>manifest</MPD>" || !strings.Contains(resp.Header.Get("Cache-Status"), "stale") {
		t.Errorf("stale manifest: %d %q", resp.StatusCode, resp.Header.Get("Cache-Status"))
	}
	resp, _ = fetch(t, ts.URL+"/vod/a/v/1.m4s")
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Errorf("cached segment with dead origin: %d %q", resp.StatusCode, resp.Header.Get("Cache-Status"))
	}
	start := time.Now()
	resp, _ = fetch(t, ts.URL+"/vod/a/v/5.m4s")
	if resp.StatusCode != 502 && resp.StatusCode != 504 || time.Since(start) > 5*time.Second {
		t.Errorf("uncached with dead origin: %d after %s", resp.StatusCode, time.Since(start))
	}
	o.start(t, addr) // it comes back
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if resp, _ = fetch(t, ts.URL+"/vod/a/v/5.m4s"); resp.StatusCode == 200 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp.StatusCode != 200 {
		t.Errorf("after the origin returned: %d", resp.StatusCode)
	}
}

func TestFailoverToStandby(t *testing.T) {
	primary, standby := newFakeOrigin(t), newFakeOrigin(t)
	n, ts := newNode(t, Config{Upstreams: []string{primary.url(), standby.url()}, Prefetch: noPrefetch(), CheckEvery: 100 * time.Millisecond})
	fetch(t, ts.URL+"/vod/a/v/1.m4s")
	if primary.count("/vod/a/v/1.m4s") != 1 || standby.count("/vod/a/v/1.m4s") != 0 {
		t.Fatal("active-standby: the primary should serve while healthy")
	}
	primary.stop()
	// Even before the health checks notice, a failed GET is retried on the standby.
	if resp, _ := fetch(t, ts.URL+"/vod/a/v/2.m4s"); resp.StatusCode != 200 {
		t.Errorf("first GET after the primary died: %d", resp.StatusCode)
	}
	// Marked down within two check intervals (plus a check's time on a busy machine).
	deadline := time.Now().Add(2*100*time.Millisecond + 400*time.Millisecond)
	for n.pool.list()[0].healthy.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n.pool.list()[0].healthy.Load() {
		t.Error("primary still marked healthy after two check intervals")
	}
	for i := 3; i <= 5; i++ {
		if resp, _ := fetch(t, ts.URL+fmt.Sprintf("/vod/a/v/%d.m4s", i)); resp.StatusCode != 200 {
			t.Errorf("GET %d after failover: %d", i, resp.StatusCode)
		}
	}
}

func TestDiskTierWarmRestartAndCorruption(t *testing.T) {
	o := newFakeOrigin(t)
	dir := t.TempDir()
	cfg := Config{Profile: BringHome, Upstreams: []string{o.url()}, DiskDir: dir, MemBytes: 16 << 20}
	n1, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts1 := httptest.NewServer(n1)
	for i := 1; i <= 3; i++ {
		fetch(t, ts1.URL+fmt.Sprintf("/vod/a/v/%d.m4s", i))
	}
	ts1.Close()
	n1.Close()
	before := o.total.Load()

	// Truncate one entry on disk.
	victim := (&diskTier{dir: dir}).fileFor("/vod/a/v/2.m4s")
	st, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	os.Truncate(victim, st.Size()-100)

	n2, ts2 := newNode(t, Config{Profile: BringHome, Upstreams: []string{o.url()}, DiskDir: dir, MemBytes: 16 << 20})
	_ = n2
	resp, body := fetch(t, ts2.URL+"/vod/a/v/1.m4s")
	if resp.StatusCode != 200 || !bytes.Equal(body, segmentBytes("/vod/a/v/1.m4s", o.size)) || !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Errorf("warm restart: %d %q", resp.StatusCode, resp.Header.Get("Cache-Status"))
	}
	fetch(t, ts2.URL+"/vod/a/v/3.m4s")
	if got := o.total.Load() - before; got > 0 && o.count("/vod/a/v/1.m4s")+o.count("/vod/a/v/3.m4s") != 2 {
		t.Errorf("restarted node went upstream for objects on its disk")
	}
	resp, body = fetch(t, ts2.URL+"/vod/a/v/2.m4s")
	if resp.StatusCode != 200 || !bytes.Equal(body, segmentBytes("/vod/a/v/2.m4s", o.size)) {
		t.Errorf("truncated entry served: %d", resp.StatusCode)
	}
	if o.count("/vod/a/v/2.m4s") != 2 {
		t.Errorf("truncated entry not refetched: origin saw %d", o.count("/vod/a/v/2.m4s"))
	}
}

func TestPurge(t *testing.T) {
	o := newFakeOrigin(t)
	_, ts := newNode(t, Config{Upstreams: []string{o.url()}, Prefetch: noPrefetch(), AdminToken: "tok"})
	fetch(t, ts.URL+"/vod/a/v/1.m4s")
	fetch(t, ts.URL+"/vod/a/manifest.mpd")
	post := func(token, body string) int {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+"/api/purge", strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post("", `{"prefix":"/vod/a/"}`); c != 401 {
		t.Errorf("no token: %d", c)
	}
	if c := post("nope", `{"prefix":"/vod/a/"}`); c != 403 {
		t.Errorf("wrong token: %d", c)
	}
	if c := post("tok", `{"prefix":"/etc/"}`); c != 400 {
		t.Errorf("prefix outside /vod/: %d", c)
	}
	if c := post("tok", `{"prefix":"/vod/a/"}`); c != 200 {
		t.Errorf("purge: %d", c)
	}
	fetch(t, ts.URL+"/vod/a/v/1.m4s")
	if o.count("/vod/a/v/1.m4s") != 2 || o.count("/vod/a/manifest.mpd") != 1 {
		t.Errorf("after purge the segment should be refetched: %d", o.count("/vod/a/v/1.m4s"))
	}
	if c := post("tok", `{"keys":["/vod/a/v/1.m4s"]}`); c != 200 {
		t.Errorf("purge keys: %d", c)
	}
	fetch(t, ts.URL+"/vod/a/v/1.m4s")
	if o.count("/vod/a/v/1.m4s") != 3 {
		t.Errorf("purge by key did not drop it")
	}
}

func TestPrefetchOncePerSegmentAndStopsAtLast(t *testing.T) {
	o := newFakeOrigin(t)
	o.last = 3
	n, ts := newNode(t, Config{Upstreams: []string{o.url()}})
	// A prefetch is done when the object is in the cache (a request during
	// the prefetch would be collapsed into it: also one upstream request).
	waitPrefetched := func(path string) {
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if _, ok := n.mem.get(path); ok {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	fetch(t, ts.URL+"/vod/a/v/1.m4s")
	waitPrefetched("/vod/a/v/2.m4s")
	resp, _ := fetch(t, ts.URL+"/vod/a/v/2.m4s")
	if !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Errorf("prefetched segment not a hit: %q", resp.Header.Get("Cache-Status"))
	}
	waitPrefetched("/vod/a/v/3.m4s")
	fetch(t, ts.URL+"/vod/a/v/3.m4s")
	fetch(t, ts.URL+"/vod/a/v/1.m4s")
	fetch(t, ts.URL+"/vod/a/v/2.m4s")
	time.Sleep(300 * time.Millisecond)
	for i := 1; i <= 3; i++ {
		if c := o.count(fmt.Sprintf("/vod/a/v/%d.m4s", i)); c != 1 {
			t.Errorf("segment %d fetched %d times, want once", i, c)
		}
	}
	if c := o.count("/vod/a/v/4.m4s"); c != 0 {
		t.Errorf("prefetched past the last segment (%d requests)", c)
	}
	if n.Stats().Prefetches != 2 {
		t.Errorf("prefetches %d, want 2", n.Stats().Prefetches)
	}
	// CMCD's nor names the next object; the query goes upstream untouched.
	cmcd := `bl=2000,br=800,nor="../v/3.m4s",sid="s1"`
	n.mem.del("/vod/a/v/3.m4s") // forgets that it was prefetched, too
	fetch(t, ts.URL+"/vod/a/v/1.m4s?CMCD="+urlEncode(cmcd))
	waitPrefetched("/vod/a/v/3.m4s")
	deadline := time.Now().Add(5 * time.Second)
	for o.count("/vod/a/v/3.m4s") < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if o.count("/vod/a/v/3.m4s") != 2 {
		t.Errorf("nor prefetch did not happen")
	}
	fetch(t, ts.URL+"/vod/a/v/4.m4s?CMCD="+urlEncode(cmcd), "CMCD-Request", `bl=100`)
	o.mu.Lock()
	found, hdr := false, false
	for _, q := range o.queries {
		if strings.Contains(q, "CMCD=") && strings.Contains(q, "sid") {
			found = true
		}
	}
	for _, h := range o.cmcdHdrs {
		hdr = hdr || h == "bl=100"
	}
	o.mu.Unlock()
	if !found || !hdr {
		t.Errorf("CMCD not forwarded upstream (query %v, header %v)", found, hdr)
	}
}

func TestCacheKeyPoisoning(t *testing.T) {
	o := newFakeOrigin(t)
	n, ts := newNode(t, Config{Upstreams: []string{o.url()}, Prefetch: noPrefetch()})
	want := segmentBytes("/vod/a/v/1.m4s", o.size)
	attempts := [][]string{
		nil,
		{"Host", "evil.example"},
		{"X-Forwarded-Host", "evil.example"},
		{"X-Original-URL", "/vod/a/v/2.m4s"},
		{"X-Rewrite-URL", "/vod/a/v/2.m4s"},
		{"Forwarded", "host=evil"},
	}
	for _, h := range attempts {
		resp, body := fetch(t, ts.URL+"/vod/a/v/1.m4s", h...)
		if resp.StatusCode != 200 || !bytes.Equal(body, want) {
			t.Errorf("%v: wrong bytes", h)
		}
	}
	for _, q := range []string{"?x=1", "?cb=123&y=%00", "?CMCD=bl%3D1"} {
		resp, body := fetch(t, ts.URL+"/vod/a/v/1.m4s"+q)
		if resp.StatusCode != 200 || !bytes.Equal(body, want) {
			t.Errorf("%s: wrong bytes", q)
		}
	}
	if c := n.mem.count(); c != 1 {
		t.Errorf("%d cache entries after poisoning attempts, want 1", c)
	}
	if c := o.count("/vod/a/v/1.m4s"); c != 1 {
		t.Errorf("upstream saw %d requests, want 1", c)
	}
}

// startSiblings starts count bring-home siblings in front of o, each
// knowing its own URL before it starts, and returns them with their URLs.
func startSiblings(t *testing.T, o *fakeOrigin, count int) ([]*Node, []string) {
	t.Helper()
	return startSiblingsWith(t, o, count, nil)
}

// startSiblingsWith is startSiblings with each node's Config changed by
// adjust (when not nil).
func startSiblingsWith(t *testing.T, o *fakeOrigin, count int, adjust func(*Config)) ([]*Node, []string) {
	t.Helper()
	lns := make([]net.Listener, count)
	urls := make([]string, count)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i], urls[i] = ln, "http://"+ln.Addr().String()
	}
	nodes := make([]*Node, count)
	for i := range nodes {
		cfg := Config{Profile: BringHome, Name: fmt.Sprintf("home-%d", i), Upstreams: []string{o.url()}, Self: urls[i],
			Siblings: urls, MemBytes: 16 << 20, Logger: quiet(), CheckEvery: 100 * time.Millisecond}
		if adjust != nil {
			adjust(&cfg)
		}
		n, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
		srv := &http.Server{Handler: n}
		go srv.Serve(lns[i])
		t.Cleanup(func() { srv.Close(); n.Close() })
	}
	return nodes, urls
}

func TestSiblingsShardKeys(t *testing.T) {
	o := newFakeOrigin(t)
	o.last = 40
	nodes, urls := startSiblings(t, o, 3)
	// Every key asked at every sibling: the origin sees it once.
	for k := 1; k <= 40; k++ {
		for i := range nodes {
			if resp, _ := fetch(t, urls[i]+fmt.Sprintf("/vod/a/v/%d.m4s", k)); resp.StatusCode != 200 {
				t.Fatalf("sibling %d key %d: %d", i, k, resp.StatusCode)
			}
		}
	}
	owners := map[int]int{}
	for k := 1; k <= 40; k++ {
		if c := o.count(fmt.Sprintf("/vod/a/v/%d.m4s", k)); c != 1 {
			t.Errorf("key %d fetched from the origin %d times, want 1", k, c)
		}
		owners[rendezvousOwner(fmt.Sprintf("/vod/a/v/%d.m4s", k), urls)]++
	}
	if len(owners) != 3 {
		t.Errorf("keys not spread over the siblings: %v", owners)
	}
	// All three agree on every key's owner, whatever their member order.
	for k := 1; k <= 40; k++ {
		key := fmt.Sprintf("/vod/a/v/%d.m4s", k)
		want := urls[rendezvousOwner(key, urls)]
		for i := range nodes {
			live := nodes[i].liveMembers()
			if got := live[rendezvousOwner(key, live)]; got != want {
				t.Errorf("sibling %d: owner of %s is %s, others say %s (members %v)", i, key, got, want, live)
			}
		}
	}
}

// TestClientCannotPoseAsASibling: the header that marks a sibling's fetch
// (the owner goes upstream instead of passing the request on) used to be
// honoured from anyone, so a client sending it made a bring-home node
// skip the key's owner and fetch from the origin itself: one more origin
// fetch and one more copy per node and object. Now only a request from a
// sibling's address counts as a sibling's.
func TestClientCannotPoseAsASibling(t *testing.T) {
	o := newFakeOrigin(t)
	o.last = 40
	nodes, urls := startSiblings(t, o, 2)
	for deadline := time.Now().Add(5 * time.Second); nodes[0].siblingAddrs.Load() == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("siblings' addresses never resolved")
		}
	}
	// A client on an address of its own.
	client := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	for k := 1; k <= 40; k++ {
		key := fmt.Sprintf("/vod/a/v/%d.m4s", k)
		if urls[rendezvousOwner(key, urls)] != urls[1] {
			continue // keys the second node owns
		}
		req, _ := http.NewRequest(http.MethodGet, urls[0]+key, nil)
		req.Header.Set(siblingHeader, "home-1")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", key, resp.Status)
		}
		// The owner holds it: asked there, the origin is not asked again.
		if resp, _ := fetch(t, urls[1]+key); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s at its owner: %s", key, resp.Status)
		}
		if c := o.count(key); c != 1 {
			t.Errorf("%s: the origin was asked %d times, want 1 (through its owner)", key, c)
		}
	}
}

func TestRendezvousMovesOnlyADeadMembersKeys(t *testing.T) {
	members := []string{"http://a", "http://b", "http://c", "http://d"}
	moved := 0
	for k := range 10000 {
		key := fmt.Sprintf("/vod/x/v/%d.m4s", k)
		before := members[rendezvousOwner(key, members)]
		after := []string{"http://a", "http://b", "http://d"}[rendezvousOwner(key, []string{"http://a", "http://b", "http://d"})]
		if before != "http://c" && before != after {
			t.Fatalf("key %s moved from live %s to %s", key, before, after)
		}
		if before != after {
			moved++
		}
	}
	if moved < 2000 || moved > 3000 {
		t.Errorf("%d of 10000 keys moved, want about a quarter", moved)
	}
}

func TestParsePolicy(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		cc, expires, age string
		ttl              time.Duration
		store            bool
		swr, sie         time.Duration
	}{
		{"public, max-age=60", "", "", 60 * time.Second, true, 0, 0},
		{"public, max-age=60, s-maxage=10", "", "", 10 * time.Second, true, 0, 0},
		{"max-age=60", "", "15", 45 * time.Second, true, 0, 0},
		{"no-store", "", "", 0, false, 0, 0},
		{"private, max-age=60", "", "", 60 * time.Second, false, 0, 0},
		{"max-age=5, stale-while-revalidate=30, stale-if-error=600", "", "", 5 * time.Second, true, 30 * time.Second, 600 * time.Second},
		{"", "Thu, 01 Jan 2026 00:01:00 GMT", "", time.Minute, true, 0, 0},
		{"public, max-age=31536000, immutable", "", "", 31536000 * time.Second, true, 0, 0},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.cc != "" {
			h.Set("Cache-Control", tt.cc)
		}
		if tt.expires != "" {
			h.Set("Expires", tt.expires)
			h.Set("Date", now.Format(http.TimeFormat))
		}
		if tt.age != "" {
			h.Set("Age", tt.age)
		}
		p := parsePolicy(h, now)
		if p.TTL != tt.ttl || p.cacheable() != tt.store || p.SWR != tt.swr || p.SIE != tt.sie {
			t.Errorf("%q: %+v", tt.cc, p)
		}
	}
	if p := parsePolicy(http.Header{"Cache-Control": {"no-cache"}}, now); !p.NoCache || !p.cacheable() {
		t.Errorf("no-cache: %+v", p)
	}
}

func TestCacheKey(t *testing.T) {
	tests := []struct {
		raw   string
		allow []string
		want  string
	}{
		{"", nil, "/vod/a/v/1.m4s"},
		{"x=1&CMCD=bl%3D100", nil, "/vod/a/v/1.m4s"},
		{"x=1&token=abc&b=2", []string{"token"}, "/vod/a/v/1.m4s?token=abc"},
		{"b=2&token=abc&a=1", []string{"token", "a"}, "/vod/a/v/1.m4s?a=1&token=abc"},
		{"x=1", []string{"token"}, "/vod/a/v/1.m4s"},
	}
	for _, tt := range tests {
		if got := cacheKey("/vod/a/v/1.m4s", tt.raw, tt.allow); got != tt.want {
			t.Errorf("cacheKey(%q, %v) = %q, want %q", tt.raw, tt.allow, got, tt.want)
		}
	}
}

func FuzzParseObjectPath(f *testing.F) {
	f.Add("/vod/a/manifest.mpd")
	f.Add("/vod/a/v/12.m4s")
	f.Add("/vod/%2e%2e/v/1.m4s")
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := parseObjectPath(s)
		if !ok {
			return
		}
		for _, part := range []string{p.Asset, p.Rendition} {
			if strings.Contains(part, "..") && part == ".." || strings.ContainsAny(part, "/%\\\x00") {
				t.Fatalf("%q accepted with part %q", s, part)
			}
		}
	})
}

func FuzzParsePolicy(f *testing.F) {
	f.Add("public, max-age=60, stale-if-error=99999999999999999999", "x")
	f.Fuzz(func(t *testing.T, cc, age string) {
		p := parsePolicy(http.Header{"Cache-Control": {cc}, "Age": {age}}, time.Now())
		if p.TTL < 0 || p.SWR < 0 || p.SIE < 0 {
			t.Fatalf("negative durations %+v", p)
		}
	})
}

func urlEncode(s string) string {
	r := strings.NewReplacer("=", "%3D", ",", "%2C", `"`, "%22", "/", "%2F")
	return r.Replace(s)
}

// BenchmarkCacheHit is the hot path of an enter-deep node: a fresh object
// served from the memory tier.
func BenchmarkCacheHit(b *testing.B) {
	for _, size := range []int{2 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
				w.Write(make([]byte, size))
			}))
			defer up.Close()
			n, err := New(Config{Profile: EnterDeep, Upstreams: []string{up.URL}, Prefetch: noPrefetch(), Logger: quiet()})
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close()
			req := httptest.NewRequest(http.MethodGet, "/vod/a/v/1.m4s", nil)
			n.ServeHTTP(httptest.NewRecorder(), req) // the miss that fills the cache
			b.SetBytes(int64(size))
			b.ResetTimer()
			for b.Loop() {
				w := httptest.NewRecorder()
				n.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}

// BenchmarkCacheMiss is a miss of an enter-deep node whose upstream answers
// at once: a fetch over loopback, the body read into memory, the object
// stored and served (every iteration asks for a new segment).
func BenchmarkCacheMiss(b *testing.B) {
	for _, c := range []struct {
		size    int
		chunked bool // no Content-Length: through a spool file
	}{{2 << 10, false}, {1 << 20, false}, {2 << 10, true}, {1 << 20, true}} {
		size := c.size
		name := fmt.Sprintf("%dKiB", size>>10)
		if c.chunked {
			name += "-chunked"
		}
		b.Run(name, func(b *testing.B) {
			body := make([]byte, size)
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
				if !c.chunked {
					w.Header().Set("Content-Length", strconv.Itoa(size))
				}
				w.Write(body)
				if c.chunked {
					w.(http.Flusher).Flush() // else net/http gives a small body its length
				}
			}))
			defer up.Close()
			n, err := New(Config{Profile: EnterDeep, Upstreams: []string{up.URL}, Prefetch: noPrefetch(), Logger: quiet(), MemBytes: 64 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close()
			b.SetBytes(int64(size))
			i := 0
			for b.Loop() {
				i++
				w := httptest.NewRecorder()
				n.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/vod/a/v/"+strconv.Itoa(i)+".m4s", nil))
				if w.Code != http.StatusOK || w.Body.Len() != size {
					b.Fatalf("status %d, %d bytes", w.Code, w.Body.Len())
				}
			}
		})
	}
}

// TestAnswerPlainMatchesServeHTTP pins the fast path to the net/http path:
// a miss is the handler's own response, a hit has the same headers (but
// Date, Content-Length, which the writer adds, and the clock-driven
// numbers) and bytes, and requests the fast path declines have no effect.
func TestAnswerPlainMatchesServeHTTP(t *testing.T) {
	o := newFakeOrigin(t)
	n, _ := newNode(t, Config{Name: "deep-f", Upstreams: []string{o.url()}, Prefetch: noPrefetch()})
	const p = "/vod/a/v/1.m4s"
	want := segmentBytes(p, o.size)
	before := n.Stats()
	if _, ok := n.AnswerHit(false, p, "", "127.0.0.1:1"); ok || o.count(p) != 0 || !reflect.DeepEqual(n.Stats(), before) {
		t.Fatalf("AnswerHit of a miss: ok=%v, %d upstream requests, stats %+v -> %+v; want a decline with no effect", ok, o.count(p), before, n.Stats())
	}
	miss, ok := n.AnswerPlain(false, p, "", "127.0.0.1:1")
	if !ok || miss.Status != 200 || !bytes.Equal(miss.Body, want) || !strings.Contains(string(miss.Header), "Cache-Status: deep-f; fwd=uri-miss") {
		t.Fatalf("miss: ok=%v status %d\n%s", ok, miss.Status, miss.Header)
	}
	if strings.Contains("\r\n"+string(miss.Header), "\r\nContent-Length:") {
		t.Errorf("miss header block carries Content-Length:\n%s", miss.Header)
	}
	hits := n.Stats().Hits
	hit, ok := n.AnswerPlain(false, p, "", "127.0.0.1:1")
	if !ok || hit.Status != 200 || !bytes.Equal(hit.Body, want) {
		t.Fatalf("hit: ok=%v status %d", ok, hit.Status)
	}
	if &hit.Body[0] != &miss.Body[0] {
		t.Error("the miss copied the object's body instead of sharing it")
	}
	hit.Done(int64(len(hit.Body)), time.Millisecond, nil)
	if n.Stats().Hits != hits+1 {
		t.Errorf("the fast hit was not counted")
	}
	rec := httptest.NewRecorder()
	n.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
	numbers := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return '#'
			}
			return r
		}, s)
	}
	got := http.Header{}
	for line := range strings.SplitSeq(strings.TrimSuffix(string(hit.Header), "\r\n"), "\r\n") {
		k, v, _ := strings.Cut(line, ": ")
		got.Add(k, v)
	}
	wantHdr := rec.Header().Clone()
	wantHdr.Del("Date")
	wantHdr.Del("Content-Length")
	for _, k := range []string{"Age", "Cache-Status"} {
		got.Set(k, numbers(got.Get(k)))
		wantHdr.Set(k, numbers(wantHdr.Get(k)))
	}
	if fmt.Sprint(got) != fmt.Sprint(wantHdr) || !bytes.Equal(rec.Body.Bytes(), want) {
		t.Errorf("hit headers:\n fast     %v\n net/http %v", got, wantHdr)
	}
	if _, ok := n.AnswerPlain(true, p, "", "x"); !ok {
		t.Error("HEAD of a fresh hit declined")
	}
	if h, ok := n.AnswerHit(false, p, "", "x"); !ok || h.Status != 200 || &h.Body[0] != &hit.Body[0] || !strings.Contains(string(h.Header), "Cache-Status: deep-f; hit") {
		t.Errorf("AnswerHit of a fresh hit: ok=%v, status %d\n%s", ok, h.Status, h.Header)
	}
	if _, ok := n.AnswerHit(true, "/vod/a/v/3.m4s", "", "x"); ok || o.count("/vod/a/v/3.m4s") != 0 {
		t.Error("AnswerHit must decline a HEAD miss without fetching")
	}
	if _, ok := n.AnswerPlain(true, "/vod/a/v/3.m4s", "", "x"); ok || o.count("/vod/a/v/3.m4s") != 0 {
		t.Error("HEAD miss: the fast path must decline without fetching")
	}
	for _, bad := range []string{"/api/stats", "/vod/a/v/0.m4s", "/vod/../x.m4s", "/"} {
		if _, ok := n.AnswerPlain(false, bad, "", "x"); ok {
			t.Errorf("%s: the fast path answered", bad)
		}
	}
	o.stop()
	if r, ok := n.AnswerPlain(false, "/vod/a/v/4.m4s", "", "x"); !ok || r.Status != http.StatusBadGateway && r.Status != http.StatusGatewayTimeout {
		t.Errorf("dead origin, uncached object: ok=%v status %d", ok, r.Status)
	}
}

// TestAnswerPlainKeysQueriesLikeServeHTTP: the fast path builds the cache
// key from the query as ServeHTTP does, so the two share objects: only the
// allow-listed parameter makes a new key, CMCD and junk do not.
func TestAnswerPlainKeysQueriesLikeServeHTTP(t *testing.T) {
	o := newFakeOrigin(t)
	n, _ := newNode(t, Config{Name: "deep-q", Upstreams: []string{o.url()}, Prefetch: noPrefetch(), QueryAllow: []string{"v"}})
	const p = "/vod/a/v/2.m4s"
	for i, tc := range []struct {
		fast          bool
		query         string
		wantUpstreams int // upstream requests for p so far
	}{
		{true, "v=1&CMCD=bl%3D100", 1},
		{false, "CMCD=bl%3D200&v=1", 1}, // the same key from net/http
		{true, "v=1&x=junk", 1},
		{true, "v=2", 2},
		{true, "CMCD=bl%3D300", 3}, // no v: the bare path's key
		{false, "", 3},
		{true, "", 3},
	} {
		if tc.fast {
			r, ok := n.AnswerPlain(false, p, tc.query, "x")
			if !ok || r.Status != http.StatusOK {
				t.Fatalf("%d: fast %q: ok=%v status %d", i, tc.query, ok, r.Status)
			}
		} else {
			rec := httptest.NewRecorder()
			n.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p+"?"+tc.query, nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("%d: net/http %q: %d", i, tc.query, rec.Code)
			}
		}
		if got := o.count(p); got != tc.wantUpstreams {
			t.Errorf("%d: after %q: %d upstream requests, want %d", i, tc.query, got, tc.wantUpstreams)
		}
	}
}

// TestViaNamesTheChain: through enter-deep -> bring-home -> origin, Via
// lists both tiers, nearest the origin first (as Cache-Status does), on
// a miss, a hit, through the fast path and through net/http (a range).
func TestViaNamesTheChain(t *testing.T) {
	f := newFakeOrigin(t)
	_, home := newNode(t, Config{Profile: BringHome, Name: "home", Upstreams: []string{f.url()}, Prefetch: noPrefetch()})
	deep, deepSrv := newNode(t, Config{Name: "deep", Upstreams: []string{home.URL}, Prefetch: noPrefetch()})
	for _, c := range []struct {
		name string
		hdr  []string
	}{{"miss", nil}, {"hit", nil}, {"range", []string{"Range", "bytes=0-99"}}} {
		resp, _ := fetch(t, deepSrv.URL+"/vod/a/v/1.m4s", c.hdr...)
		if got := resp.Header.Get("Via"); got != "1.1 home, 1.1 deep" {
			t.Errorf("%s: Via %q, want %q (Cache-Status %q)", c.name, got, "1.1 home, 1.1 deep", resp.Header.Get("Cache-Status"))
		}
	}
	fr, ok := deep.AnswerHit(false, "/vod/a/v/1.m4s", "", "127.0.0.1:1")
	if !ok || !strings.Contains(string(fr.Header), "Via: 1.1 home, 1.1 deep\r\n") {
		t.Errorf("fast path hit: %v %q", ok, fr.Header)
	}
}

// TestRelayedErrorLeavesTheParentUp: a bring-home parent that relays its
// origin's 502s still answers its own /healthz, so its enter-deep child
// keeps it up (and keeps asking it), rather than counting the origin's
// failure against it.
func TestRelayedErrorLeavesTheParentUp(t *testing.T) {
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.Write([]byte("ok"))
			return
		}
		http.Error(w, "origin broken", http.StatusBadGateway)
	}))
	t.Cleanup(broken.Close)
	_, home := newNode(t, Config{Profile: BringHome, Name: "home", Upstreams: []string{broken.URL}, Prefetch: noPrefetch()})
	var logs mediatest.Capture
	deep, deepSrv := newNode(t, Config{Name: "deep", Upstreams: []string{home.URL}, Prefetch: noPrefetch(),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for i := 1; i <= 5; i++ {
		if resp, _ := fetch(t, fmt.Sprintf("%s/vod/a/v/%d.m4s", deepSrv.URL, i)); resp.StatusCode < 500 {
			t.Fatalf("segment %d: %d through a broken origin", i, resp.StatusCode)
		}
		for _, u := range deep.Stats().Upstreams {
			if !u.Healthy {
				t.Fatalf("after segment %d the enter-deep node has its parent %s down for relaying the origin's 502", i, u.URL)
			}
		}
	}
	if strings.Contains(logs.String(), "upstream down") {
		t.Errorf("the enter-deep node marked its parent down:\n%s", logs.String())
	}
}

// TestCacheRulesOverrideTheUpstream: a path rule's TTL makes immutable
// segments stale after it (revalidated upstream), and its query keys
// split the cache by those parameters only, for its paths alone.
func TestCacheRulesOverrideTheUpstream(t *testing.T) {
	f := newFakeOrigin(t)
	n, srv := newNode(t, Config{Upstreams: []string{f.url()}, Prefetch: noPrefetch(),
		CacheRules: []CacheRule{{Prefix: "/vod/a/v/", TTL: 300 * time.Millisecond, QueryKeys: []string{"lang"}}}})
	fetch(t, srv.URL+"/vod/a/v/1.m4s")
	if resp, _ := fetch(t, srv.URL+"/vod/a/v/1.m4s"); !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Fatalf("second fetch: %s", resp.Header.Get("Cache-Status"))
	}
	time.Sleep(400 * time.Millisecond)
	if resp, _ := fetch(t, srv.URL+"/vod/a/v/1.m4s"); !strings.Contains(resp.Header.Get("Cache-Status"), "fwd=stale") {
		t.Errorf("after the rule's TTL: %s, want a revalidation", resp.Header.Get("Cache-Status"))
	}
	before := f.count("/vod/a/v/2.m4s")
	for _, q := range []string{"?lang=en", "?lang=fr", "?lang=en", "?other=1", ""} {
		fetch(t, srv.URL+"/vod/a/v/2.m4s"+q)
	}
	if got := f.count("/vod/a/v/2.m4s") - before; got != 3 {
		t.Errorf("%d upstream fetches for lang=en, lang=fr and none; want 3 (other= is not a key)", got)
	}
	// A reload replaces the rules at once; a bad list changes nothing.
	if err := n.SetCacheRules([]CacheRule{{Prefix: "/etc/"}}); err == nil {
		t.Error("a rule outside /vod/ was accepted")
	}
	if n.rule("/vod/a/v/3.m4s") == nil {
		t.Error("a refused reload dropped the old rules")
	}
}

// TestWeightedUpstreamPool: with weights 3 and 1 each key goes to one
// upstream, about three keys in four to the heavy one; when it dies its
// keys move to the other.
func TestWeightedUpstreamPool(t *testing.T) {
	heavy, light := newFakeOrigin(t), newFakeOrigin(t)
	heavy.last, light.last = 400, 400
	heavy.size, light.size = 1024, 1024
	// Health probes every 10 s: a probe timing out on a loaded machine
	// would take an upstream out and skew the shares this test measures.
	_, srv := newNode(t, Config{Upstreams: []string{heavy.url(), light.url()}, UpstreamWeights: []float64{3, 1}, Prefetch: noPrefetch(),
		CheckEvery: 10 * time.Second})
	for i := 1; i <= 400; i++ {
		fetch(t, fmt.Sprintf("%s/vod/a/v/%d.m4s", srv.URL, i))
	}
	// Segment fetches only (health probes hit both alike). Weights 3:1 give
	// the heavy one 300 of 400 keys on average (σ ≈ 8.7): ±40 is over 4σ.
	h, l := 0, 0
	for i := 1; i <= 400; i++ {
		p := fmt.Sprintf("/vod/a/v/%d.m4s", i)
		h, l = h+heavy.count(p), l+light.count(p)
	}
	if h+l != 400 || h < 260 || h > 340 {
		t.Errorf("heavy upstream got %d of the keys, light %d: want about 300 and 100", h, l)
	}
	// The same key, through another node with the same pool: the same upstream.
	_, other := newNode(t, Config{Upstreams: []string{heavy.url(), light.url()}, UpstreamWeights: []float64{3, 1}, Prefetch: noPrefetch(),
		CheckEvery: 10 * time.Second})
	before := heavy.count("/vod/a/v/7.m4s") + light.count("/vod/a/v/7.m4s")
	wasHeavy := heavy.count("/vod/a/v/7.m4s") > 0
	fetch(t, other.URL+"/vod/a/v/7.m4s")
	if after := heavy.count("/vod/a/v/7.m4s"); (after > 0) != wasHeavy || after+light.count("/vod/a/v/7.m4s") != before+1 {
		t.Error("one key went to different upstreams from two nodes with the same pool")
	}
	heavy.stop()
	for i := 401 - 20; i <= 400; i++ {
		if resp, _ := fetch(t, fmt.Sprintf("%s/vod/a/v/%d.m4s?x", other.URL, i)); resp.StatusCode != 200 {
			t.Fatalf("segment %d with the heavy upstream dead: %d", i, resp.StatusCode)
		}
	}
}

// TestObjectPathKinds: every file of the URL scheme parses as its kind,
// a subtitle track's WebVTT as a whole immutable object like an init
// segment; anything else is refused.
func TestObjectPathKinds(t *testing.T) {
	for path, kind := range map[string]string{
		"/vod/a/manifest.mpd": "manifest", "/vod/a/master.m3u8": "manifest", "/vod/a/v/media.m3u8": "manifest",
		"/vod/a/v/iframes.m3u8": "manifest", "/vod/a/v/init.mp4": "init", "/vod/a/text-en/text.vtt": "init",
		"/vod/a/v/3.m4s": "segment", "/vod/a/thumbs/2.jpg": "init", "/vod/a/thumbs/02.jpg": "", "/vod/a/v/2.jpg": "", "/vod/a/thumbs/2.m4s": "",
		"/vod/a/v/3.vtt": "", "/vod/a/text.vtt": "", "/vod/a/v/w/text.vtt": "", "/vod/a/%2e%2e/text.vtt": "",
	} {
		p, ok := parseObjectPath(path)
		if ok != (kind != "") || ok && p.Kind != kind {
			t.Errorf("%s: kind %q (%v), want %q", path, p.Kind, ok, kind)
		}
	}
}
