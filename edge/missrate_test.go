package edge

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestClientPrefix(t *testing.T) {
	for _, c := range []struct {
		remote, want string
		ok           bool
	}{
		{"192.0.2.7:5000", "192.0.2.7/32", true},
		{"192.0.2.7", "192.0.2.7/32", true},
		{"[::ffff:192.0.2.7]:1", "192.0.2.7/32", true}, // v4-mapped: the v4 client
		{"[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64", true},
		{"[fe80::1%eth0]:80", "fe80::/64", true},
		{"", "", false},
		{"pipe", "", false},
		{"300.1.1.1:80", "", false},
	} {
		p, ok := clientPrefix(c.remote)
		if ok != c.ok || ok && p.String() != c.want {
			t.Errorf("clientPrefix(%q) = %v, %v; want %s, %v", c.remote, p, ok, c.want, c.ok)
		}
	}
}

func TestMissLimiterBuckets(t *testing.T) {
	if newMissLimiter(0) != nil || newMissLimiter(-1) != nil {
		t.Fatal("a rate of 0 or less must mean no limiter")
	}
	l := newMissLimiter(2) // bursts of 20
	t0 := time.Unix(1000, 0)
	for i := range 20 {
		if ok, _ := l.allow("192.0.2.1:1", t0); !ok {
			t.Fatalf("miss %d of a burst of 20 refused", i+1)
		}
	}
	ok, wait := l.allow("192.0.2.1:2", t0)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("21st miss at once: %v, wait %s; want refused, 500ms (one token at 2/s)", ok, wait)
	}
	if ok, _ := l.allow("192.0.2.2:1", t0); !ok {
		t.Error("another client refused: the buckets are not per client")
	}
	if ok, _ := l.allow("192.0.2.1:1", t0.Add(500*time.Millisecond)); !ok {
		t.Error("refused after the wait it was told")
	}
	if ok, _ := l.allow("192.0.2.1:1", t0.Add(500*time.Millisecond)); ok {
		t.Error("a second miss on one refilled token allowed")
	}
	// The bucket refills to its burst and no further.
	later := t0.Add(time.Hour)
	for i := range 21 {
		ok, _ := l.allow("192.0.2.1:1", later)
		if ok != (i < 20) {
			t.Fatalf("an hour later, miss %d: allowed %v", i+1, ok)
		}
	}
	// Unreadable addresses are not limited.
	for range 30 {
		if ok, _ := l.allow("@", t0); !ok {
			t.Fatal("an unreadable address was limited")
		}
	}
}

func TestMissLimiterStaysBounded(t *testing.T) {
	l := newMissLimiter(1)
	t0 := time.Unix(1000, 0)
	for i := range maxMissClients {
		l.allow(fmt.Sprintf("10.%d.%d.%d:1", i>>16, i>>8&255, i&255), t0)
	}
	if len(l.clients) != maxMissClients {
		t.Fatalf("%d clients tracked, want %d", len(l.clients), maxMissClients)
	}
	// All in use: a new client is let through untracked.
	if ok, _ := l.allow("192.0.2.9:1", t0); !ok || len(l.clients) != maxMissClients {
		t.Errorf("new client with the table full of busy ones: allowed %v, %d tracked", ok, len(l.clients))
	}
	// Once their buckets refilled (10 s at 1/s), they are swept.
	if ok, _ := l.allow("192.0.2.9:1", t0.Add(11*time.Second)); !ok || len(l.clients) != 1 {
		t.Errorf("after the buckets refilled: allowed %v, %d tracked; want the new client alone", ok, len(l.clients))
	}
}

// TestClientMissRate: a node with ClientMissRate answers a client's
// misses past its budget with 429 and Retry-After, on both paths, while
// its hits, other clients and siblings go on as before.
func TestClientMissRate(t *testing.T) {
	o := newFakeOrigin(t)
	o.last = 100
	n, ts := newNode(t, Config{Upstreams: []string{o.url()}, ClientMissRate: 1, Prefetch: noPrefetch()})
	seg := func(i int) string { return fmt.Sprintf("/vod/a/v/%d.m4s", i) }
	for i := 1; i <= 10; i++ { // the burst: 10 s at 1/s
		if resp, _ := fetch(t, ts.URL+seg(i)); resp.StatusCode != http.StatusOK {
			t.Fatalf("miss %d of the burst: %d", i, resp.StatusCode)
		}
	}
	resp, body := fetch(t, ts.URL+seg(11))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" ||
		!strings.Contains(resp.Header.Get("Cache-Status"), "detail=client-miss-rate") || o.count(seg(11)) != 0 {
		t.Fatalf("miss past the burst: %d, Retry-After %q, Cache-Status %q, %d upstream fetches: %s",
			resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Cache-Status"), o.count(seg(11)), body)
	}
	// Hits are not limited.
	for range 20 {
		if resp, _ := fetch(t, ts.URL+seg(3)); resp.StatusCode != http.StatusOK {
			t.Fatalf("hit of a client past its misses: %d", resp.StatusCode)
		}
	}
	// The fast path answers the same for the same client, and serves
	// another.
	fr, ok := n.Answer(PlainRequest{Path: seg(12), Remote: "127.0.0.1:40000"})
	if !ok || fr.Status != http.StatusTooManyRequests || !strings.Contains(string(fr.Header), "Retry-After: 1\r\n") {
		t.Errorf("fast path, same client: ok=%v %d\n%s", ok, fr.Status, fr.Header)
	}
	if fr, ok := n.Answer(PlainRequest{Path: seg(12), Remote: "127.0.0.2:40000"}); !ok || fr.Status != http.StatusOK {
		t.Errorf("fast path, another client: ok=%v %d", ok, fr.Status)
	}
	// An IPv6 client is its /64.
	for i := range 10 {
		n.Answer(PlainRequest{Path: seg(20 + i), Remote: "[2001:db8::1]:1"})
	}
	if fr, _ := n.Answer(PlainRequest{Path: seg(30), Remote: "[2001:db8::2]:1"}); fr.Status != http.StatusTooManyRequests {
		t.Errorf("another address of the same /64: %d, want 429", fr.Status)
	}
	if fr, _ := n.Answer(PlainRequest{Path: seg(30), Remote: "[2001:db8:0:1::1]:1"}); fr.Status != http.StatusOK {
		t.Errorf("another /64: %d, want 200", fr.Status)
	}
	if got := n.missesRefused.Load(); got != 3 {
		t.Errorf("%d misses counted as refused, want 3", got)
	}
	// The budget comes back with time.
	time.Sleep(1100 * time.Millisecond)
	if resp, _ := fetch(t, ts.URL+seg(11)); resp.StatusCode != http.StatusOK {
		t.Errorf("a second later: %d, want 200", resp.StatusCode)
	}
}

// TestClientMissRateSparesSiblings: a sibling's fetch for a key this node
// owns is the sibling's client's miss, counted there, not here.
func TestClientMissRateSparesSiblings(t *testing.T) {
	o := newFakeOrigin(t)
	o.last = 100
	_, urls := startSiblingsWith(t, o, 2, func(c *Config) { c.ClientMissRate = 1 })
	// Each node's own budget (10) in misses, half of which its sibling
	// owns and fetches: without the exemption each node would also count
	// its sibling's fetches against the (same) client address.
	for i := 1; i <= 10; i++ {
		for j, u := range urls {
			path := fmt.Sprintf("/vod/a/v/%d.m4s", 10*j+i)
			if resp, _ := fetch(t, u+path); resp.StatusCode != http.StatusOK {
				t.Fatalf("node %d, miss %d of its budget (%s): %d", j, i, path, resp.StatusCode)
			}
		}
	}
}

// TestClientMissRateSparesWaitsOnARunningFetch: requests that join a fetch
// already under way cost the upstream nothing, so they are not counted.
func TestClientMissRateSparesWaitsOnARunningFetch(t *testing.T) {
	o := newFakeOrigin(t)
	o.gate = make(chan struct{})
	n, _ := newNode(t, Config{Upstreams: []string{o.url()}, ClientMissRate: 0.1, Prefetch: noPrefetch()}) // a burst of 1
	const path = "/vod/a/v/1.m4s"
	const remote = "192.0.2.1:1"
	statuses := make(chan int, 6)
	answer := func() {
		fr, ok := n.Answer(PlainRequest{Path: path, Remote: remote})
		if !ok {
			statuses <- 0
			return
		}
		statuses <- fr.Status
	}
	go answer()
	for deadline := time.Now().Add(5 * time.Second); !n.fetchRunning(cacheKey(path, "", n.queryKeys(path))); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first miss's fetch did not start within 5 s")
		}
	}
	for range 5 {
		go answer()
	}
	// The five joined the fetch (or are about to): let them reach it.
	time.Sleep(100 * time.Millisecond)
	close(o.gate)
	for range 6 {
		select {
		case s := <-statuses:
			if s != http.StatusOK {
				t.Errorf("a request for the object being fetched: %d, want 200", s)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("requests still waiting 10 s after the upstream answered")
		}
	}
	if c := o.count(path); c != 1 {
		t.Errorf("%d upstream fetches, want 1", c)
	}
}
