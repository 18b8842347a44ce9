package edge

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestMissingObjectsAreKeptBriefly: an upstream's 404 or 410 that says how
// long it holds is kept for that long (at most a minute), so a flood of
// requests for one missing object costs the upstream one request, through
// a chain too; one that does not say, or says no-store, goes upstream
// every time; a purge drops what is kept.
func TestMissingObjectsAreKeptBriefly(t *testing.T) {
	var asked atomic.Int64
	up := scriptedUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		cc, code, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/vod/a/"), "/")
		code, _, _ = strings.Cut(code, ".")
		switch cc {
		case "short":
			w.Header().Set("Cache-Control", "public, max-age=30")
		case "long":
			w.Header().Set("Cache-Control", "public, max-age=86400")
		case "nostore":
			w.Header().Set("Cache-Control", "no-store")
		case "private":
			w.Header().Set("Cache-Control", "private, max-age=30")
		}
		status, _ := strconv.Atoi(code)
		http.Error(w, "missing", status)
	})
	home, homeSrv := newNode(t, Config{Profile: BringHome, Name: "home", Upstreams: []string{up.URL}, Prefetch: noPrefetch(), AdminToken: "t"})
	_, deepSrv := newNode(t, Config{Name: "deep", Upstreams: []string{homeSrv.URL}, Prefetch: noPrefetch()})
	for _, tc := range []struct {
		path  string
		kept  bool
		upTTL time.Duration
	}{
		{"/vod/a/short/404.m4s", true, 30 * time.Second},
		{"/vod/a/short/410.m4s", true, 30 * time.Second},
		{"/vod/a/long/404.m4s", true, maxNegativeTTL},
		{"/vod/a/none/404.m4s", false, 0},
		{"/vod/a/nostore/404.m4s", false, 0},
		{"/vod/a/private/404.m4s", false, 0},
		{"/vod/a/short/403.m4s", false, 0}, // not a missing object
	} {
		before := asked.Load()
		for i := range 20 {
			resp, body := fetch(t, deepSrv.URL+tc.path)
			if want := tc.path[len(tc.path)-7 : len(tc.path)-4]; strconv.Itoa(resp.StatusCode) != want || !strings.Contains(string(body), "missing") {
				t.Fatalf("%s: %d %q", tc.path, resp.StatusCode, body)
			}
			if i > 0 && tc.kept {
				cs := resp.Header.Get("Cache-Status")
				if !strings.HasPrefix(cs, "deep; hit; ttl=") {
					t.Errorf("%s: Cache-Status %q, want a hit at deep", tc.path, cs)
				}
			}
		}
		got := asked.Load() - before
		if want := map[bool]int64{true: 1, false: 20}[tc.kept]; got != want {
			t.Errorf("%s: the upstream was asked %d times for 20 requests, want %d", tc.path, got, want)
		}
		if e, ok := home.negative.get(tc.path, time.Now()); ok != tc.kept || ok && time.Until(e.expires) > tc.upTTL {
			t.Errorf("%s: kept %v until %v, want kept %v for at most %v", tc.path, ok, time.Until(e.expires), tc.kept, tc.upTTL)
		}
	}
	// The chain's Age: a deep node keeps a missing object no longer than
	// the home node does.
	time.Sleep(1100 * time.Millisecond)
	resp, _ := fetch(t, homeSrv.URL+"/vod/a/short/404.m4s")
	if age, _ := strconv.Atoi(resp.Header.Get("Age")); age < 1 {
		t.Errorf("a kept 404 says Age %q after a second", resp.Header.Get("Age"))
	}
	// Purge drops it: the next request goes upstream.
	req, _ := http.NewRequest(http.MethodPost, homeSrv.URL+"/api/purge", strings.NewReader(`{"prefix":"/vod/a/short/"}`))
	req.Header.Set("Authorization", "Bearer t")
	presp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	presp.Body.Close()
	before := asked.Load()
	fetch(t, homeSrv.URL+"/vod/a/short/404.m4s")
	if asked.Load() != before+1 {
		t.Errorf("after a purge the kept 404 was served again")
	}
}

// TestNegativeCacheIsBounded: distinct missing keys never hold more than
// maxNegative entries, and no body over maxNegativeBody is kept.
func TestNegativeCacheIsBounded(t *testing.T) {
	var c negativeCache
	now := time.Now()
	pass := &passResponse{status: http.StatusNotFound, header: http.Header{"Cache-Control": {"max-age=60"}}}
	for i := range 3 * maxNegative {
		c.put(fmt.Sprintf("/vod/a/v/%d.m4s", i+1), pass, now)
	}
	if n := c.kept.len(); n > maxNegative {
		t.Errorf("%d entries, bound %d", n, maxNegative)
	}
	c.put("/vod/a/v/big.m4s", &passResponse{status: http.StatusNotFound, header: pass.header, body: make([]byte, maxNegativeBody+1)}, now)
	if _, ok := c.get("/vod/a/v/big.m4s", now); ok {
		t.Error("a 404 with a body over the bound was kept")
	}
	if _, ok := c.get(fmt.Sprintf("/vod/a/v/%d.m4s", 3*maxNegative), now.Add(59*time.Second)); !ok {
		t.Error("the last entry is gone before its time")
	}
	if _, ok := c.get(fmt.Sprintf("/vod/a/v/%d.m4s", 3*maxNegative), now.Add(61*time.Second)); ok {
		t.Error("an entry outlived its max-age")
	}
}
