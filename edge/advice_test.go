package edge

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
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
	front := func(path string) string { t.Helper(); return frontAdvice(t, n, path) }
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

// frontAdvice answers a plain GET of path on the fronts' path of n and
// returns the answer's CMSD-Dynamic lines joined by " | ".
func frontAdvice(t *testing.T, n *Node, path string) string {
	t.Helper()
	fr, ok := n.Answer(PlainRequest{Path: path, Remote: "x"})
	if !ok || fr.Status != http.StatusOK {
		t.Fatalf("front %s: %v %d", path, ok, fr.Status)
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

// TestEdgePassesOnItsParentsAdvice: a bring-home parent suggesting 600
// kbit/s behind deep nodes. An answer a deep node fetched from the parent
// carries the parent's entry first and then the node's own, lowered to
// the parent's suggestion, so that a player reading only the nearest
// entry (dash.js) keeps to it. A hit carries the node's own entry alone,
// which keeps to the parent's suggestion too: so does a deep node that
// has nothing of its own to say. Both the fronts' path and net/http's,
// and a large object streamed from its spool, do the same.
func TestEdgePassesOnItsParentsAdvice(t *testing.T) {
	o := newFakeOrigin(t)
	_, home := newNode(t, Config{Name: "home", Profile: BringHome, Upstreams: []string{o.url()}, Prefetch: noPrefetch(), MemBytes: 64 << 20,
		Advice: AdviceConfig{MaxBitrateKbps: 600}})
	const parent = `"home";mb=600`
	for _, tc := range []struct {
		name      string
		advice    AdviceConfig
		miss, hit string // the CMSD-Dynamic of each
	}{
		{"quiet", AdviceConfig{}, parent + `, "quiet";mb=600`, `"quiet";mb=600`},
		{"roomy", AdviceConfig{MaxBitrateKbps: 3000}, parent + `, "roomy";mb=600`, `"roomy";mb=600`},
		{"tight", AdviceConfig{MaxBitrateKbps: 400}, parent + `, "tight";mb=400`, `"tight";mb=400`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, srv := newNode(t, Config{Name: tc.name, Upstreams: []string{home.URL}, Prefetch: noPrefetch(), MemBytes: 64 << 20, Advice: tc.advice})
			front := func(path string) string { t.Helper(); return frontAdvice(t, n, path) }
			viaHTTP := func(path string) string {
				t.Helper()
				resp, err := http.Get(srv.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("GET %s: %s", path, resp.Status)
				}
				return strings.Join(resp.Header.Values(cmsd.Header), " | ")
			}
			for _, path := range []struct {
				what string
				get  func(string) string
				path string
			}{{"front", front, "/vod/a/v/1.m4s"}, {"net/http", viaHTTP, "/vod/a/v/2.m4s"}} {
				if got := path.get(path.path); got != tc.miss {
					t.Errorf("%s, a miss: %q, want %q", path.what, got, tc.miss)
				}
				if got := path.get(path.path); got != tc.hit {
					t.Errorf("%s, a hit: %q, want %q", path.what, got, tc.hit)
				}
			}
			if s := n.Stats().Advice; s.ParentMaxBitrateKbps != 600 {
				t.Errorf("stats: %+v, want the parent's 600 kbit/s", s)
			}
		})
	}

	// A large object, streamed through the parent and a deep node's spool.
	up := newBigUpstream(t, 12<<20, false, 0)
	_, bigHome := newNode(t, Config{Name: "home", Profile: BringHome, Upstreams: []string{up.srv.URL}, Prefetch: noPrefetch(), MemBytes: 32 << 20,
		SpoolDir: t.TempDir(), Advice: AdviceConfig{MaxBitrateKbps: 600}})
	big, _ := newNode(t, Config{Name: "deep", Upstreams: []string{bigHome.URL}, MemBytes: 32 << 20, Prefetch: noPrefetch(),
		SpoolDir: t.TempDir(), Advice: AdviceConfig{MaxBitrateKbps: 2500}})
	rec := httptest.NewRecorder()
	big.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/vod/a/v/9.m4s", nil))
	if want := parent + `, "deep";mb=600`; rec.Code != http.StatusOK || rec.Body.Len() != 12<<20 || rec.Header().Get(cmsd.Header) != want {
		t.Errorf("large object: %d, %d bytes, %q; want %q", rec.Code, rec.Body.Len(), rec.Header().Get(cmsd.Header), want)
	}
}

// TestShieldSharesItsEgressWithTheSessionsBelow: a bring-home shield
// with an egress limit, whose only clients are an enter-deep node's
// misses. The sessions whose CMCD those misses forward share its egress:
// past the limit it gives each its share (not only duress, as it did
// when it counted none), which reaches the players through the deep node.
// They are not the shield's own viewers: its CMCD sessions stay 0.
func TestShieldSharesItsEgressWithTheSessionsBelow(t *testing.T) {
	o := newFakeOrigin(t)
	home, homeSrv := newNode(t, Config{Name: "home", Profile: BringHome, Upstreams: []string{o.url()}, Prefetch: noPrefetch(), MemBytes: 64 << 20,
		Advice: AdviceConfig{EgressLimit: 200e3}})
	_, deep := newNode(t, Config{Name: "deep", Upstreams: []string{homeSrv.URL}, Prefetch: noPrefetch(), MemBytes: 64 << 20})
	get := func(path, sid string) string {
		t.Helper()
		resp, err := http.Get(deep.URL + path + "?CMCD=" + url.QueryEscape(`ot=v,sid="`+sid+`"`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		return resp.Header.Get(cmsd.Header)
	}
	// Three sessions, a miss each: 3 × 64 KiB through a 200 kbit/s limit.
	for i, sid := range []string{"s1", "s2", "s3"} {
		get(fmt.Sprintf("/vod/a/v/%d.m4s", i+1), sid)
	}
	// The shield notes a session once its answer is sent, which may be
	// after the deep node has passed that answer on.
	waitFor(t, "the shield to note the three sessions", func() bool { return len(home.sharingSessions(time.Now())) == 3 })
	adv := home.refreshAdvice(time.Now()).stats()
	if !adv.Duress || !adv.Capping || adv.Sessions != 3 || adv.MaxBitrateKbps != 60 {
		t.Fatalf("the shield advises %+v; want duress, a share of 0.9 × 200 kbit/s for each of 3 sessions (60)", adv)
	}
	if v := home.Stats().Viewers.Sessions; v != 0 {
		t.Errorf("the shield counts %d viewers of its own, want 0 (they are the deep node's)", v)
	}
	if got, want := get("/vod/a/v/4.m4s", "s1"), `"home";du;mb=60, "deep";mb=60`; got != want {
		t.Errorf("the next miss through the deep node carries %q, want %q", got, want)
	}
}

// TestAdviceKeepsToTheParent: the node's own suggestion keeps to the
// latest its upstream made, for holdCap after the answer that said it,
// and no longer; the lower of the two wins, per session too.
func TestAdviceKeepsToTheParent(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	a := newAdviser("deep", AdviceConfig{MaxBitrateKbps: 3000}, t0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	mb := func(now time.Time) int64 {
		t.Helper()
		return a.refresh(now, 0, nil).entry.MaxBitrateKbps
	}
	if !a.noteParent(600, at(time.Second)) || mb(at(time.Second)) != 600 {
		t.Fatalf("the parent suggests 600: the node suggests %d", mb(at(time.Second)))
	}
	if a.noteParent(600, at(20*time.Second)) {
		t.Error("the same suggestion again counts as a change")
	}
	if got := mb(at(49 * time.Second)); got != 600 {
		t.Errorf("29 s after the parent's latest answer: %d, want 600", got)
	}
	if got := mb(at(51 * time.Second)); got != 3000 {
		t.Errorf("31 s after it: %d, want the node's own 3000", got)
	}
	if !a.noteParent(5000, at(52*time.Second)) || mb(at(52*time.Second)) != 3000 {
		t.Errorf("a parent suggesting more than the node's own: %d, want 3000", mb(at(52*time.Second)))
	}
	if !a.noteParent(600, at(53*time.Second)) || !a.noteParent(0, at(54*time.Second)) || mb(at(54*time.Second)) != 3000 {
		t.Errorf("a parent that stops suggesting: %d, want 3000", mb(at(54*time.Second)))
	}
	// A node with nothing of its own to say passes on its parent's word.
	q := newAdviser("quiet", AdviceConfig{}, t0)
	q.noteParent(700, at(time.Second))
	if ad := q.refresh(at(time.Second), 0, nil); ad.value == nil || ad.value[0] != `"quiet";mb=700` || ad.stats().ParentMaxBitrateKbps != 700 {
		t.Errorf("a quiet node behind a parent suggesting 700: %q %+v", ad.value, ad.stats())
	}
	// Sessions told their own rung keep to the parent too.
	l := newAdviser("deep", AdviceConfig{EgressLimit: 10e6, ShareByLadder: true}, t0)
	ladder := &rungLadder{video: []int64{300, 1000, 3000}, total: []int64{400, 1100, 3100}}
	sessions := func(bool, int64) (int, []shareSession) {
		return 2, []shareSession{{id: "a", ladder: ladder, taking: -1, buffer: 30000}, {id: "b", ladder: ladder, taking: -1, buffer: 30000}}
	}
	var ad *advice
	for i := 1; i <= 10; i++ { // congest it
		ad = l.refresh(at(time.Duration(i)*time.Second), int64(i)*12e6/8, sessions)
	}
	if len(ad.shares) != 2 {
		t.Fatalf("no shares by the ladder: %+v", ad.stats())
	}
	l.noteParent(800, at(10*time.Second))
	ad = l.refresh(at(11*time.Second), 11*12e6/8, sessions)
	for id, sa := range ad.shares {
		if sa.entry.MaxBitrateKbps > 800 || !strings.Contains(sa.value[0], "mb=") || len(sa.line) == 0 {
			t.Errorf("session %s behind a parent suggesting 800: %q", id, sa.value)
		}
	}
}

// TestUpstreamAdvice: what a node passes on of its upstream's
// CMSD-Dynamic: a list of entries, whole; nothing of a field that is not
// one, or is too long to be a parent's.
func TestUpstreamAdvice(t *testing.T) {
	long := strings.Repeat(`"n";mb=1, `, 200) + `"n";mb=1`
	for _, tc := range []struct {
		lines []string
		want  string
		kbps  int64 // the lowest mb in it
	}{
		{nil, "", 0},
		{[]string{`"home";mb=600`}, `"home";mb=600`, 600},
		{[]string{`"origin";etp=9000`, ` "home";du;mb=90 `}, `"origin";etp=9000, "home";du;mb=90`, 90},
		{[]string{`"home";mb=600;n="x";ht=3`}, `"home";mb=600;n="x";ht=3`, 600}, // keys unknown here go on as sent
		{[]string{`"a";mb=900, "b";etp=5, "c";mb=700`}, `"a";mb=900, "b";etp=5, "c";mb=700`, 700},
		{[]string{`"home";mb="lots"`}, "", 0},
		{[]string{`"home";mb=600,`}, "", 0},
		{[]string{"<html>"}, "", 0},
		{[]string{""}, "", 0},
		{[]string{long}, "", 0},
	} {
		h := http.Header{}
		for _, l := range tc.lines {
			h.Add(cmsd.Header, l)
		}
		got := readUpstreamAdvice(h)
		if got.value != tc.want {
			t.Errorf("readUpstreamAdvice(%q) = %q, want %q", tc.lines, got.value, tc.want)
		}
		if got.kbps != tc.kbps {
			t.Errorf("readUpstreamAdvice(%q): lowest mb %d, want %d", tc.lines, got.kbps, tc.kbps)
		}
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
