package edge

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestLoopOfEdgesIsRefusedAtOnce: edges set up as each other's upstreams
// (a node its own upstream, a ring of two, a ring of three) answer a miss
// with 508 Loop Detected at once, rather than pass it round the ring until
// the first fetch times out (a 504 after -fetch-timeout, every node holding
// a connection and a coalesced fetch meanwhile). Nodes that share a name
// (the profiles' default) in a plain chain are not taken for a loop, and a
// request that passed more caches than a chain has is refused.
func TestLoopOfEdgesIsRefusedAtOnce(t *testing.T) {
	const fetchTimeout = 5 * time.Second
	o := newFakeOrigin(t)
	// ring makes size nodes, each the upstream of the one before, and
	// returns the first one's URL.
	ring := func(size int) string {
		nodes := make([]*Node, size)
		urls := make([]string, size)
		for i := range nodes {
			n, srv := newNode(t, Config{Profile: BringHome, Name: "home", Upstreams: []string{o.url()},
				Prefetch: noPrefetch(), FetchTimeout: fetchTimeout})
			nodes[i], urls[i] = n, srv.URL
		}
		for i, n := range nodes {
			if err := n.SetUpstreams([]string{urls[(i+1)%size]}); err != nil {
				t.Fatal(err)
			}
		}
		return urls[0]
	}
	for _, size := range []int{1, 2, 3} {
		base := ring(size)
		for _, tc := range []struct {
			name, method, path string
			hdr                []string
		}{
			{"segment", http.MethodGet, "/vod/a/v/1.m4s", nil},
			{"manifest", http.MethodGet, "/vod/a/manifest.mpd", nil},
			{"range", http.MethodGet, "/vod/a/v/2.m4s", []string{"Range", "bytes=0-99"}},
			{"licence", http.MethodPost, "/vod/a/clearkey", nil},
		} {
			req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader(`{"kids":["AAAAAAAAAAAAAAAAAAAAAA"],"type":"temporary"}`))
			for i := 0; i+1 < len(tc.hdr); i += 2 {
				req.Header.Set(tc.hdr[i], tc.hdr[i+1])
			}
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("ring of %d, %s: %v", size, tc.name, err)
			}
			resp.Body.Close()
			if took := time.Since(start); resp.StatusCode != http.StatusLoopDetected || took > fetchTimeout/2 {
				t.Errorf("ring of %d, %s: %s after %v (Cache-Status %q), want 508 at once",
					size, tc.name, resp.Status, took.Round(time.Millisecond), resp.Header.Get("Cache-Status"))
			}
		}
	}
	if n := o.vodRequests(); n != 0 {
		t.Errorf("the origin outside the rings got %d /vod/ requests", n)
	}

	// A chain of two nodes with the same name is no loop.
	home, homeSrv := newNode(t, Config{Profile: BringHome, Upstreams: []string{o.url()}, Prefetch: noPrefetch()})
	deep, deepSrv := newNode(t, Config{Profile: BringHome, Upstreams: []string{homeSrv.URL}, Prefetch: noPrefetch()})
	if home.Name() != deep.Name() {
		t.Fatalf("names %q and %q: the test needs one name twice", home.Name(), deep.Name())
	}
	if resp, _ := fetch(t, deepSrv.URL+"/vod/a/v/1.m4s"); resp.StatusCode != http.StatusOK {
		t.Errorf("chain of two %q nodes: %s", home.Name(), resp.Status)
	}

	// Entries from caches in front: 16 pass, 17 are a loop (asked of the
	// node next to the origin: one in front adds its own).
	hops := func(k int) string {
		e := make([]string, k)
		for i := range e {
			e[i] = "cdn" + strings.Repeat("x", i) + "; id=0"
		}
		return strings.Join(e, ", ")
	}
	for _, tc := range []struct {
		entries int
		path    string // a miss: a hit is answered whatever came with it
		want    int
	}{{16, "/vod/a/v/2.m4s", http.StatusOK}, {17, "/vod/a/v/3.m4s", http.StatusLoopDetected}} {
		if resp, _ := fetch(t, homeSrv.URL+tc.path, "CDN-Loop", hops(tc.entries)); resp.StatusCode != tc.want {
			t.Errorf("%d CDN-Loop entries: %s, want %d", tc.entries, resp.Status, tc.want)
		}
	}

	// The fast path's requests bring their CDN-Loop too.
	fr, ok := deep.Answer(PlainRequest{Path: "/vod/a/v/4.m4s", Remote: "127.0.0.1:1", Loop: "other; id=1, " + deep.loopEntry()})
	if !ok || fr.Status != http.StatusLoopDetected {
		t.Errorf("fast path with this node in CDN-Loop: %v %d, want 508", ok, fr.Status)
	}
	if fr, ok := deep.Answer(PlainRequest{Path: "/vod/a/v/5.m4s", Remote: "127.0.0.1:1", Loop: "other; id=1"}); !ok || fr.Status != http.StatusOK {
		t.Errorf("fast path with another node in CDN-Loop: %v %d, want 200", ok, fr.Status)
	}
	if got := o.count("/vod/a/v/4.m4s"); got != 0 {
		t.Errorf("the looped fast-path request reached the origin %d times", got)
	}
}

// vodRequests counts the requests f got for /vod/ paths (not its health
// checks).
func (f *fakeOrigin) vodRequests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	total := 0
	for path, n := range f.hits {
		if strings.HasPrefix(path, "/vod/") {
			total += n
		}
	}
	return total
}

// FuzzLoopedThrough: any CDN-Loop value is read without a panic, and one
// that holds this node's entry anywhere in its list is always a loop.
func FuzzLoopedThrough(f *testing.F) {
	f.Add("cdn; id=1, other", 0)
	f.Add(`x; a="b,c"; id = 2,,`, 1)
	f.Add(strings.Repeat("a,", 20), 3)
	n := &Node{cfg: Config{Name: "home"}, loopID: "0a1b2c3d4e5f"}
	f.Fuzz(func(t *testing.T, value string, at int) {
		_ = n.loopedThrough([]string{value})
		entries := strings.Split(value, ",")
		at = min(max(at, 0), len(entries))
		with := strings.Join(append(entries[:at:at], append([]string{n.loopEntry()}, entries[at:]...)...), ",")
		if n.loopedThrough([]string{with}) == "" {
			t.Errorf("%q holds this node's entry and passed", with)
		}
	})
}
