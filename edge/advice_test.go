package edge

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/deepcast/deepcast/edge/cmsd"
)

// TestAdviceFollowsEgress drives the adviser through a minute of egress
// against its limit: below it the node suggests the limit; congested it
// says duress and gives each session a fair share; the share holds while
// the players keeping to it hold the egress above the hold line, and is
// lifted once the demand has gone for the hold time.
func TestAdviceFollowsEgress(t *testing.T) {
	const limit = 10e6 // bits/s
	t0 := time.Unix(1_000_000, 0)
	a := newAdviser("deep", AdviceConfig{EgressLimit: limit}, t0)
	var served int64
	sessions := 4
	at := t0.Add(time.Second)
	// run serves rate bits/s for d, asking for the advice each second.
	run := func(rate float64, d time.Duration) *advice {
		var ad *advice
		for end := at.Add(d); at.Before(end); at = at.Add(time.Second) {
			served += int64(rate / 8)
			ad = a.refresh(at, served, func(bool, int64) (int, []shareSession) { return sessions, nil })
		}
		return ad
	}
	check := func(what string, ad *advice, mb int64, du, capping bool) {
		t.Helper()
		if ad.entry.MaxBitrateKbps != mb || ad.entry.Duress != du || ad.capping != capping {
			t.Errorf("%s: mb=%d du=%v capping=%v (egress %.0f), want mb=%d du=%v capping=%v",
				what, ad.entry.MaxBitrateKbps, ad.entry.Duress, ad.capping, ad.egress, mb, du, capping)
		}
		if want := (cmsd.Entry{Node: "deep", MaxBitrateKbps: mb, Duress: du}).String(); ad.value == nil || ad.value[0] != want ||
			string(ad.line) != cmsd.Header+": "+want+"\r\n" {
			t.Errorf("%s: header %q / line %q, want %q", what, ad.value, ad.line, want)
		}
	}
	check("quiet", run(2e6, 10*time.Second), 10_000, false, false)
	check("congested", run(12e6, 10*time.Second), 2250, true, true)
	sessions = 5
	check("a viewer more", run(9.5e6, 2*time.Second), 1800, true, true)
	// The players keep to their shares: egress under the congestion line,
	// over the hold line, for a minute.
	check("held", run(8e6, time.Minute), 1800, false, true)
	// Demand falls away: the share lasts the hold time, then goes.
	check("demand gone, within the hold", run(3e6, 20*time.Second), 1800, false, true)
	check("demand gone", run(3e6, 20*time.Second), 10_000, false, false)
	sessions = 0
	check("congested, no session known", run(20e6, 10*time.Second), 10_000, true, false)

	// The same advice keeps its header and generation (hits keep their
	// header blocks); a change makes a new one.
	gen := a.cur.Load().gen
	if ad := run(20e6, time.Second); ad.gen != gen {
		t.Errorf("the same advice, a new generation")
	}
	a.set(AdviceConfig{MaxBitrateKbps: 700})
	if ad := a.refresh(at.Add(time.Second), served, nil); ad.gen == gen || ad.value[0] != `"deep";mb=700` {
		t.Errorf("new settings: generation %d (was %d), %q", ad.gen, gen, ad.value)
	}
}

func TestAdviceConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  AdviceConfig
		want string // the header; "" for none
	}{
		{AdviceConfig{}, ""},
		{AdviceConfig{MaxBitrateKbps: 3000}, `"deep";mb=3000`},
		{AdviceConfig{MaxBitrateKbps: 3000, EgressLimit: 1e9}, `"deep";mb=3000`},
		{AdviceConfig{MaxBitrateKbps: 3000, EgressLimit: 2e6}, `"deep";mb=2000`},
	} {
		a := newAdviser("deep", tc.cfg, time.Unix(1, 0))
		ad := a.refresh(time.Unix(2, 0), 0, func(bool, int64) (int, []shareSession) { return 1, nil })
		if got := ad.stats().Header; got != tc.want {
			t.Errorf("%+v: header %q, want %q", tc.cfg, got, tc.want)
		}
	}
	for _, bad := range []AdviceConfig{{MaxBitrateKbps: -1}, {EgressLimit: -1}} {
		if err := bad.Check(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestEdgeSendsAdvice: every way the node answers an object (a fresh hit
// and a miss on the fronts' path, net/http's plain, ranged and HEAD
// answers, a large object streamed from its spool) carries the node's
// CMSD-Dynamic, cross-origin readers may read it, a new setting applies
// at once (also to hits whose header block was built before), and
// /api/stats and /metrics show it.
func TestEdgeSendsAdvice(t *testing.T) {
	o := newFakeOrigin(t)
	n, _ := newNode(t, Config{Name: "deep-a", Upstreams: []string{o.url()}, Prefetch: noPrefetch(), MemBytes: 64 << 20,
		Advice: AdviceConfig{MaxBitrateKbps: 2500}})
	want := `"deep-a";mb=2500`
	front := func(path string) string {
		t.Helper()
		fr, ok := n.Answer(PlainRequest{Path: path, Remote: "x"})
		if !ok {
			t.Fatalf("front declined %s", path)
		}
		fr.Done(int64(len(fr.Body)), 0, nil)
		var got []string
		for _, line := range strings.Split(string(fr.Header), "\r\n") {
			if v, ok := strings.CutPrefix(line, cmsd.Header+": "); ok {
				got = append(got, v)
			}
		}
		return strings.Join(got, " | ")
	}
	viaHTTP := func(method, path string, h http.Header) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, nil)
		for k, v := range h {
			r.Header[k] = v
		}
		rec := httptest.NewRecorder()
		n.ServeHTTP(rec, r)
		return rec
	}
	if got := front("/vod/a/v/1.m4s"); got != want {
		t.Errorf("front miss: %q, want %q", got, want)
	}
	if got := front("/vod/a/v/1.m4s"); got != want {
		t.Errorf("front hit: %q, want %q", got, want)
	}
	for _, tc := range []struct {
		what, method string
		h            http.Header
		status       int
	}{
		{"plain", http.MethodGet, nil, http.StatusOK},
		{"range", http.MethodGet, http.Header{"Range": {"bytes=0-99"}}, http.StatusPartialContent},
		{"head", http.MethodHead, nil, http.StatusOK},
	} {
		rec := viaHTTP(tc.method, "/vod/a/v/2.m4s", tc.h)
		if rec.Code != tc.status || rec.Header().Get(cmsd.Header) != want {
			t.Errorf("%s: %d %q, want %d %q", tc.what, rec.Code, rec.Header().Get(cmsd.Header), tc.status, want)
		}
		if !strings.Contains(rec.Header().Get("Access-Control-Expose-Headers"), cmsd.Header) {
			t.Errorf("%s: CMSD-Dynamic not exposed to cross-origin readers: %q", tc.what, rec.Header().Get("Access-Control-Expose-Headers"))
		}
	}
	// A large object streams from its spool through net/http.
	up := newBigUpstream(t, 12<<20, false, 0)
	big, _ := newNode(t, Config{Name: "deep-a", Upstreams: []string{up.srv.URL}, MemBytes: 32 << 20, Prefetch: noPrefetch(),
		SpoolDir: t.TempDir(), Advice: AdviceConfig{MaxBitrateKbps: 2500}})
	rec := httptest.NewRecorder()
	big.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/vod/a/v/9.m4s", nil))
	if rec.Code != http.StatusOK || rec.Body.Len() != 12<<20 || rec.Header().Get(cmsd.Header) != want {
		t.Errorf("large object: %d, %d bytes, %q", rec.Code, rec.Body.Len(), rec.Header().Get(cmsd.Header))
	}
	if rec := viaHTTP(http.MethodGet, "/vod/a/v/missing.m4s", nil); rec.Code != http.StatusNotFound || rec.Header().Get(cmsd.Header) != "" {
		t.Errorf("404: %d carries %q", rec.Code, rec.Header().Get(cmsd.Header))
	}

	if err := n.SetAdvice(AdviceConfig{MaxBitrateKbps: 800}); err != nil {
		t.Fatal(err)
	}
	if got := front("/vod/a/v/1.m4s"); got != `"deep-a";mb=800` {
		t.Errorf("hit after a new setting: %q", got)
	}
	if s := n.Stats().Advice; s.Header != `"deep-a";mb=800` || s.MaxBitrateKbps != 800 {
		t.Errorf("stats: %+v", s)
	}
	if err := n.SetAdvice(AdviceConfig{EgressLimit: -3}); err == nil {
		t.Error("a negative egress limit was taken")
	}
	metrics := viaHTTP(http.MethodGet, "/metrics", nil).Body.String()
	for _, line := range []string{"deepcast_edge_cmsd_max_bitrate_kbps 800", "deepcast_edge_cmsd_duress 0", "deepcast_edge_cmsd_capping 0"} {
		if !strings.Contains(metrics, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	if err := n.SetAdvice(AdviceConfig{}); err != nil {
		t.Fatal(err)
	}
	if got := front("/vod/a/v/1.m4s"); got != "" {
		t.Errorf("advice off, a hit still carries %q", got)
	}
}

// BenchmarkCacheHitWithAdvice: a hot hit on the fronts' path with the
// node's CMSD advice off and on (its line is part of the hit's cached
// header block, rebuilt when the advice changes).
func BenchmarkCacheHitWithAdvice(b *testing.B) {
	up := immutableUpstream(b)
	for _, tc := range []struct {
		name   string
		advice AdviceConfig
	}{{"off", AdviceConfig{}}, {"on", AdviceConfig{MaxBitrateKbps: 3000, EgressLimit: 10e9}}} {
		b.Run(tc.name, func(b *testing.B) {
			n, err := New(Config{Profile: EnterDeep, Upstreams: []string{up.URL}, Prefetch: noPrefetch(), Logger: quiet(), Advice: tc.advice})
			if err != nil {
				b.Fatal(err)
			}
			defer n.Close()
			for b.Loop() {
				fr, ok := n.AnswerPlain(false, "/vod/a/v/1.m4s", "", "x")
				if !ok || fr.Status != http.StatusOK {
					b.Fatalf("ok %v status %d", ok, fr.Status)
				}
				fr.Done(int64(len(fr.Body)), 0, nil)
			}
		})
	}
}
