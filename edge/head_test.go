package edge

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// methodOrigin serves deterministic objects of 200 KiB at any /vod/ path
// (404 for 404.m4s, no Content-Length to a HEAD of 90.m4s, 405 to a HEAD
// of 91.m4s) and records each request as
// "METHOD path".
type methodOrigin struct {
	mu   sync.Mutex
	seen []string
	srv  *httptest.Server
}

const methodObjectSize = 200 << 10

func newMethodOrigin(t *testing.T) *methodOrigin {
	o := &methodOrigin{}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/vod/") {
			return // health checks
		}
		o.mu.Lock()
		o.seen = append(o.seen, r.Method+" "+r.URL.Path)
		o.mu.Unlock()
		name := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		if name == "404.m4s" {
			w.Header().Set("Cache-Control", "public, max-age=5")
			http.Error(w, "no such segment", http.StatusNotFound)
			return
		}
		w.Header().Set("ETag", `"`+name+`"`)
		w.Header().Set("Content-Type", "video/mp4")
		if r.Method == http.MethodHead && name == "91.m4s" {
			w.Header().Set("Allow", "GET")
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		if r.Method == http.MethodHead && name == "90.m4s" {
			w.(http.Flusher).Flush() // the headers go without a length
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(methodObjectSize))
		if r.Method == http.MethodGet {
			w.Write(segmentBytes(r.URL.Path, methodObjectSize))
		}
	}))
	t.Cleanup(o.srv.Close)
	return o
}

// took returns the requests recorded since the last call.
func (o *methodOrigin) took() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.seen
	o.seen = nil
	return s
}

// TestAHeadIsAskedUpstreamAsAHead: a plain HEAD of a segment no tier
// holds goes up through an enter-deep node and its bring-home parent to
// the origin as a HEAD, and no tier fetches the body; the answer carries
// what a GET's does (length, ETag, type) and both tiers keep it, so the
// next HEAD goes nowhere. A GET still fetches and keeps the object, and
// a HEAD after it is a hit on the object. HEADs with a Range or a
// condition, of a manifest, and ones the upstream answers without a
// length or with 405 are answered from the object, as before; a missing
// object's 404 is relayed; a purge drops a kept answer. With HeadFills a
// HEAD fetches the object, as nginx and Varnish do.
func TestAHeadIsAskedUpstreamAsAHead(t *testing.T) {
	o := newMethodOrigin(t)
	home, homeTS := newNode(t, Config{Profile: BringHome, Name: "home", Upstreams: []string{o.srv.URL}, Prefetch: noPrefetch()})
	deep, ts := newNode(t, Config{Name: "deep", Upstreams: []string{homeTS.URL}, Prefetch: noPrefetch(), AdminToken: "tok"})
	do := func(method, path string, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, ts.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	expect := func(what string, resp *http.Response, status int, length int64, cacheStatus string, upstream ...string) {
		t.Helper()
		if resp.StatusCode != status || resp.ContentLength != length || resp.Header.Get("Cache-Status") != cacheStatus {
			t.Errorf("%s: %d, Content-Length %d, Cache-Status %q; want %d, %d, %q", what, resp.StatusCode, resp.ContentLength,
				resp.Header.Get("Cache-Status"), status, length, cacheStatus)
		}
		if got := o.took(); !slices.Equal(got, upstream) {
			t.Errorf("%s: the origin was asked %q; want %q", what, got, upstream)
		}
	}
	const seg = "/vod/a/v/1.m4s"
	resp := do(http.MethodHead, seg)
	expect("a HEAD no tier holds", resp, 200, methodObjectSize,
		`home; fwd=method; fwd-status=200; stored; detail=head, deep; fwd=method; fwd-status=200; stored; detail=head`, "HEAD "+seg)
	if resp.Header.Get("ETag") != `"1.m4s"` || resp.Header.Get("Content-Type") != "video/mp4" || resp.Header.Get("Accept-Ranges") != "bytes" ||
		!strings.Contains(resp.Header.Get("Cache-Control"), "immutable") || resp.Header.Get("Via") != "1.1 home, 1.1 deep" {
		t.Errorf("a HEAD asked upstream lacks what a GET's answer has: %v", resp.Header)
	}
	if s := home.Stats(); s.BytesServed["upstream"] != 0 || deep.Stats().Objects["memory"] != 0 || s.Objects["memory"] != 0 {
		t.Errorf("a HEAD brought a body: home %+v, deep %+v", s, deep.Stats())
	}
	resp = do(http.MethodHead, seg)
	if cs := resp.Header.Get("Cache-Status"); resp.StatusCode != 200 || resp.ContentLength != methodObjectSize || !strings.HasPrefix(cs, "deep; hit; ttl=") ||
		!strings.HasSuffix(cs, "; detail=head") || resp.Header.Get("ETag") != `"1.m4s"` {
		t.Errorf("the next HEAD: %d, %d, Cache-Status %q, ETag %q; want the kept answer", resp.StatusCode, resp.ContentLength, cs, resp.Header.Get("ETag"))
	}
	expect("the next HEAD", resp, 200, methodObjectSize, resp.Header.Get("Cache-Status"))

	resp = do(http.MethodGet, seg)
	expect("a GET after the HEADs", resp, 200, methodObjectSize, "home; fwd=uri-miss; fwd-status=200; stored; ttl=31535999, deep; fwd=uri-miss; fwd-status=200; stored; ttl=31535999", "GET "+seg)
	resp = do(http.MethodHead, seg)
	if cs := resp.Header.Get("Cache-Status"); !strings.HasPrefix(cs, "deep; hit; ttl=") || strings.Contains(cs, "head") {
		t.Errorf("a HEAD of a held object: Cache-Status %q; want a hit on the object", cs)
	}
	expect("a HEAD of a held object", resp, 200, methodObjectSize, resp.Header.Get("Cache-Status"))

	for _, c := range []struct {
		what, path string
		hdr        []string
	}{
		{"a HEAD with a Range", "/vod/a/v/2.m4s", []string{"Range", "bytes=0-99"}},
		{"a conditional HEAD", "/vod/a/v/3.m4s", []string{"If-None-Match", `"x"`}},
		{"a HEAD of a manifest", "/vod/a/manifest.mpd", nil},
		{"a HEAD answered without a length", "/vod/a/v/90.m4s", nil},
		{"a HEAD the upstream does not take", "/vod/a/v/91.m4s", nil},
	} {
		resp := do(http.MethodHead, c.path, c.hdr...)
		got := o.took()
		if resp.StatusCode/100 != 2 || !slices.Contains(got, "GET "+c.path) {
			t.Errorf("%s: %d, the origin was asked %q; want the object fetched", c.what, resp.StatusCode, got)
		}
	}

	resp = do(http.MethodHead, "/vod/a/v/404.m4s")
	expect("a HEAD of a missing segment", resp, 404, int64(len("no such segment\n")), resp.Header.Get("Cache-Status"), "HEAD /vod/a/v/404.m4s")
	if cs := resp.Header.Get("Cache-Status"); !strings.HasSuffix(cs, "deep; fwd=method; fwd-status=404") {
		t.Errorf("a HEAD of a missing segment: Cache-Status %q", cs)
	}

	do(http.MethodHead, "/vod/a/v/4.m4s")
	o.took()
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/api/purge", strings.NewReader(`{"keys":["/vod/a/v/4.m4s"]}`))
	req.Header.Set("Authorization", "Bearer tok")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("purge: %v %v", resp, err)
	}
	resp = do(http.MethodHead, "/vod/a/v/4.m4s")
	if cs := resp.Header.Get("Cache-Status"); !strings.HasSuffix(cs, "deep; fwd=method; fwd-status=200; stored; detail=head") || !strings.HasPrefix(cs, "home; hit") {
		t.Errorf("a HEAD after its kept answer was purged here: Cache-Status %q; want the parent's kept answer", cs)
	}
	o.took()

	// -head-fills: the object is fetched and kept, as before.
	_, fills := newNode(t, Config{Name: "fills", Upstreams: []string{o.srv.URL}, Prefetch: noPrefetch(), HeadFills: true})
	req, _ = http.NewRequest(http.MethodHead, fills.URL+"/vod/a/v/5.m4s", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cs := resp.Header.Get("Cache-Status"); resp.StatusCode != 200 || resp.ContentLength != methodObjectSize || cs != "fills; fwd=uri-miss; fwd-status=200; stored; ttl=31535999" {
		t.Errorf("with HeadFills: %d, %d, Cache-Status %q; want the object fetched and kept", resp.StatusCode, resp.ContentLength, cs)
	}
	if got := o.took(); !slices.Equal(got, []string{"GET /vod/a/v/5.m4s"}) {
		t.Errorf("with HeadFills the origin was asked %q; want a GET", got)
	}
}
