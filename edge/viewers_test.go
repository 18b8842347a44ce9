package edge

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/deepcast/deepcast/edge/accesslog"
	"github.com/deepcast/deepcast/edge/cmcd"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestViewersFromCMCD: the CMCD of viewers' requests, through net/http
// (query and headers) and the fronts' path (query), makes the node's
// viewers (/api/stats), its cmcd series and its access log; a child
// edge's miss (CDN-Loop), a refused request and a malformed list do not
// count as viewers.
func TestViewersFromCMCD(t *testing.T) {
	o := newFakeOrigin(t)
	var logBuf bytes.Buffer
	n, _ := newNode(t, Config{Name: "deep-v", Upstreams: []string{o.url()}, Prefetch: noPrefetch(), AccessLog: accesslog.New(&logBuf, "deep-v")})
	q := func(list string) string { return "CMCD=" + url.QueryEscape(list) }
	viaHTTP := func(path, query string, h http.Header) int {
		r := httptest.NewRequest(http.MethodGet, path+"?"+query, nil)
		for k, v := range h {
			r.Header[k] = v
		}
		rec := httptest.NewRecorder()
		n.ServeHTTP(rec, r)
		return rec.Code
	}
	viaFront := func(path, query, loop string) {
		fr, ok := n.Answer(PlainRequest{Path: path, Query: query, Remote: "x", Loop: loop})
		if !ok {
			t.Fatalf("front declined %s?%s", path, query)
		}
		fr.Done(int64(len(fr.Body)), 0, nil)
	}
	viaFront("/vod/a/v/1.m4s", q(`bl=12000,br=3000,ot=v,sid="alice"`), "")
	viaFront("/vod/a/v/2.m4s", q(`bl=9000,br=3000,bs,ot=v,sid="bob"`), "")
	viaFront("/vod/a/v/3.m4s", q(`bl=500,br=300,bs,ot=v,sid="carol"`), "deep-other") // a child's miss
	if c := viaHTTP("/vod/a/v/4.m4s", "", http.Header{
		"Cmcd-Object": {"br=1000,ot=v"}, "Cmcd-Request": {"bl=4000"}, "Cmcd-Session": {`sid="dave",st=l`},
	}); c != http.StatusOK {
		t.Fatalf("header CMCD: %d", c)
	}
	viaHTTP("/vod/a/v/4.m4s", "x=1&"+q(`bl=1,sid="erin"`)+"&range", http.Header{"Range": {"bytes=0-9"}}) // a range: still a viewer
	viaHTTP("/vod/a/v/missing.m4s", q(`bl=1,ot=v,sid="frank"`), nil)                                     // 404: not counted
	viaHTTP("/vod/a/v/1.m4s", q(`bl=1,ot=v,sid="grace`), nil)                                            // malformed

	s := n.Stats().Viewers
	want := cmcd.Summary{Sessions: 4, Live: 1, Starved: 1, BufferMedianSeconds: 6.5, BufferMinSeconds: 0.001, BitrateMeanKbps: 7000.0 / 3}
	if s != want {
		t.Errorf("viewers %+v,\nwant    %+v", s, want)
	}
	m := n.metrics.viewers
	if got := testutil.ToFloat64(m.requests.WithLabelValues("v")); got != 3 {
		t.Errorf("cmcd requests ot=v: %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("none")); got != 1 {
		t.Errorf("cmcd requests ot=none: %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.starved); got != 1 {
		t.Errorf("starvations: %v, want 1 (carol's came through a child)", got)
	}
	if got := testutil.ToFloat64(m.malformed); got != 1 {
		t.Errorf("malformed: %v, want 1", got)
	}
	if got := testutil.CollectAndCount(m.buffer); got != 1 {
		t.Errorf("buffer histogram: %d series", got)
	}
	rec := httptest.NewRecorder()
	n.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, line := range []string{"deepcast_edge_cmcd_sessions 4", "deepcast_edge_cmcd_starved_sessions 1", "deepcast_edge_cmcd_buffer_seconds_count 3"} {
		if !strings.Contains(rec.Body.String(), line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}

	// The access log carries each viewer's keys; requests without CMCD
	// have no cmcd group.
	var alice, plain int
	for _, l := range strings.Split(strings.TrimSpace(logBuf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		c, _ := rec["cmcd"].(map[string]any)
		switch {
		case c == nil:
			plain++
		case c["sid"] == "alice":
			alice++
			if c["bl"] != 12000.0 || c["br"] != 3000.0 || c["ot"] != "v" {
				t.Errorf("alice's record: %v", c)
			}
		}
	}
	if alice != 1 || plain < 3 {
		t.Errorf("access log: %d records of alice, %d without CMCD:\n%s", alice, plain, logBuf.String())
	}
}

func BenchmarkCacheHitWithCMCD(b *testing.B) {
	up := immutableUpstream(b)
	n, err := New(Config{Profile: EnterDeep, Upstreams: []string{up.URL}, Prefetch: noPrefetch(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	for _, tc := range []struct{ name, query string }{
		{"none", ""},
		{"dashjs", "CMCD=" + url.QueryEscape(`bl=21300,br=3200,d=4004,mtp=48100,nor="2.m4s",ot=v,sf=d,sid="6e2fb550-c457-11e9-bb97-0800200c9a66",st=v,tb=6000`)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				fr, ok := n.AnswerPlain(false, "/vod/a/v/1.m4s", tc.query, "x")
				if !ok || fr.Status != http.StatusOK {
					b.Fatalf("ok %v status %d", ok, fr.Status)
				}
				fr.Done(int64(len(fr.Body)), 0, nil)
			}
		})
	}
}

// immutableUpstream answers every path with the same 2 KiB, cacheable
// for a year, until b ends: what a hot-hit benchmark needs behind a node.
func immutableUpstream(b *testing.B) *httptest.Server {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Write(make([]byte, 2<<10))
	}))
	b.Cleanup(up.Close)
	return up
}

// TestMadeUpSessionsDoNotPassForACrowd: one address that makes up CMCD
// session ids, through the fronts' path and through net/http, has at
// most maxViewersPerClient of them counted (the number that divides the
// egress into shares); other addresses' sessions still count.
func TestMadeUpSessionsDoNotPassForACrowd(t *testing.T) {
	o := newFakeOrigin(t)
	n, _ := newNode(t, Config{Name: "deep-f", Upstreams: []string{o.url()}, Prefetch: noPrefetch()})
	q := func(sid string) string { return "CMCD=" + url.QueryEscape(`ot=v,sid="`+sid+`"`) }
	for i := range 3 * maxViewersPerClient {
		fr, ok := n.Answer(PlainRequest{Path: "/vod/a/v/1.m4s", Query: q("front-" + strconv.Itoa(i)), Remote: "198.51.100.7:40000"})
		if !ok {
			t.Fatal("front declined")
		}
		fr.Done(int64(len(fr.Body)), 0, nil)
		r := httptest.NewRequest(http.MethodGet, "/vod/a/v/1.m4s?"+q("http-"+strconv.Itoa(i)), nil)
		r.RemoteAddr = "[2001:db8:1:2::" + strconv.Itoa(i+1) + "]:5000" // one /64
		n.ServeHTTP(httptest.NewRecorder(), r)
	}
	for _, remote := range []string{"203.0.113.1:1", "203.0.113.2:1"} {
		fr, _ := n.Answer(PlainRequest{Path: "/vod/a/v/1.m4s", Query: q(remote), Remote: remote})
		fr.Done(int64(len(fr.Body)), 0, nil)
	}
	s := n.Stats().Viewers
	if want := 2*maxViewersPerClient + 2; s.Sessions != want || s.Untracked != int64(4*maxViewersPerClient) {
		t.Errorf("sessions %d, untracked %d; want %d and %d", s.Sessions, s.Untracked, want, 4*maxViewersPerClient)
	}
}
