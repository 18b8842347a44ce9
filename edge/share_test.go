package edge

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deepcast/deepcast/edge/cmsd"

	"github.com/deepcast/deepcast/manifest"
)

// TestSplitByRungs: a congested node raises its sessions rung by rung,
// the lowest first, while the sum fits; the others keep the equal share.
func TestSplitByRungs(t *testing.T) {
	// 350k, 1000k, 2000k video with 128k sound: rungs of 478, 1128 and
	// 2128 kbit/s.
	film := newRungLadder(manifest.Bitrates{Video: []int{350_000, 1_000_000, 2_000_000}, Audio: []int{96_000, 128_000}}, 0)
	if want := []int64{478, 1128, 2128}; !slices.Equal(film.total, want) || !slices.Equal(film.video, []int64{350, 1000, 2000}) {
		t.Fatalf("ladder: totals %v video %v, want totals %v", film.total, film.video, want)
	}
	capped := newRungLadder(manifest.Bitrates{Video: []int{350_000, 1_000_000, 2_000_000}, Audio: []int{128_000}}, 1500)
	if !slices.Equal(capped.total, []int64{478, 1128}) {
		t.Fatalf("ladder under a 1500 kbit/s cap: %v", capped.total)
	}
	if low := newRungLadder(manifest.Bitrates{Video: []int{350_000, 1_000_000}}, 100); !slices.Equal(low.total, []int64{350}) {
		t.Fatalf("a cap below the lowest rung keeps it: %v", low.total)
	}
	small := newRungLadder(manifest.Bitrates{Video: []int{200_000, 400_000, 600_000, 800_000}}, 0)
	s := func(id string, l *rungLadder, taking int64) shareSession {
		return shareSession{id: id, ladder: l, taking: taking, buffer: -1}
	}
	buffered := func(ss shareSession, buffer time.Duration) shareSession {
		ss.buffer = buffer.Milliseconds()
		return ss
	}
	tests := []struct {
		name     string
		budget   float64
		sessions []shareSession
		want     map[string]int64 // nil: equal shares
	}{
		{"four viewers of one film on 4 Mbit/s: two climb, not none",
			3600, []shareSession{s("a", film, -1), s("b", film, -1), s("c", film, -1), s("d", film, -1)},
			map[string]int64{"a": 1128, "b": 1128, "c": 478, "d": 478}},
		{"what is left goes to those taking the rung already",
			3600, []shareSession{s("a", film, 350), s("b", film, 1000), s("c", film, 350), s("d", film, 1000)},
			map[string]int64{"a": 478, "b": 1128, "c": 478, "d": 1128}},
		{"one viewer takes the top",
			3600, []shareSession{s("a", film, -1)}, map[string]int64{"a": 2128}},
		{"the lowest first: no one is raised twice while another could be once",
			3000, []shareSession{s("a", film, 2000), s("b", film, -1)}, map[string]int64{"a": 1128, "b": 1128}},
		{"ladders of two assets",
			2000, []shareSession{s("a", film, -1), s("b", small, -1)}, map[string]int64{"a": 1128, "b": 800}},
		{"a session with no ladder keeps the equal share out of the budget",
			3000, []shareSession{s("a", film, -1), s("b", film, -1), s("u", nil, -1)}, map[string]int64{"a": 1128, "b": 478}},
		{"no ladder known: equal shares", 3000, []shareSession{s("u", nil, -1), s("v", nil, -1)}, nil},
		{"every session with buffer to spare (or not saying)",
			3600, []shareSession{buffered(s("a", film, -1), 12*time.Second), buffered(s("b", film, -1), raiseBuffer), s("c", film, -1), buffered(s("u", nil, -1), time.Minute)},
			map[string]int64{"a": 1128, "b": 478, "c": 478}},
		{"a session short of buffer: equal shares",
			3600, []shareSession{buffered(s("a", film, -1), 12*time.Second), buffered(s("b", film, -1), raiseBuffer-time.Millisecond), s("c", film, -1)}, nil},
		{"a session whose ladder is not known, starting: equal shares",
			3600, []shareSession{s("a", film, -1), buffered(s("u", nil, -1), 0)}, nil},
		{"the lowest rungs do not fit: equal shares", 1000, []shareSession{s("a", film, -1), s("b", film, -1), s("c", film, -1)}, nil},
		{"no session", 1000, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := splitByRungs(tc.budget, tc.sessions)
			if !maps.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			var sum float64
			for _, ss := range tc.sessions {
				if v, ok := got[ss.id]; ok {
					sum += float64(v)
				} else if got != nil {
					sum += tc.budget / float64(len(tc.sessions))
				}
			}
			if sum > tc.budget {
				t.Errorf("the shares sum to %.0f kbit/s, over the budget %.0f", sum, tc.budget)
			}
		})
	}
}

// filmMPD is a presentation of 10k, 30k and 60k video with 5k sound: a
// ladder scaled to a 100 kbit/s node, whose rungs are 15, 35 and 65.
const filmMPD = `<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT10S" minBufferTime="PT2S" profiles="urn:mpeg:dash:profile:isoff-live:2011">` +
	`<Period><AdaptationSet contentType="video" mimeType="video/mp4"><SegmentTemplate media="$RepresentationID$/$Number$.m4s" initialization="$RepresentationID$/init.mp4" duration="2" timescale="1" startNumber="1"/>` +
	`<Representation id="v10" bandwidth="10000"/><Representation id="v30" bandwidth="30000"/><Representation id="v60" bandwidth="60000"/></AdaptationSet>` +
	`<AdaptationSet contentType="audio" mimeType="audio/mp4"><SegmentTemplate media="$RepresentationID$/$Number$.m4s" initialization="$RepresentationID$/init.mp4" duration="2" timescale="1" startNumber="1"/>` +
	`<Representation id="a5" bandwidth="5000"/></AdaptationSet></Period></MPD>`

// TestEdgeSharesByLadder: a congested node that holds the MPD of what its
// viewers play tells each session its own rung, on every way it answers
// (the fronts' path, net/http with CMCD in the query or in headers); a
// request without a session, and a session whose ladder it does not know,
// get the equal share; the shares fit the budget.
func TestEdgeSharesByLadder(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/vod/film/manifest.mpd":
			w.Header().Set("Cache-Control", "public, max-age=60")
			w.Header().Set("Content-Type", "application/dash+xml")
			w.Write([]byte(filmMPD))
		case r.URL.Path == "/vod/show/master.m3u8":
			// An asset the node knows only from HLS: variants of 20 and
			// 40 kbit/s, sound included.
			w.Header().Set("Cache-Control", "public, max-age=60")
			w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
			w.Write([]byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=40000\nhi/media.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=20000\nlo/media.m3u8\n"))
		case strings.HasPrefix(r.URL.Path, "/vod/"):
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
			w.Write(make([]byte, 64<<10))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(up.Close)
	const limit = 150e3 // bits/s: the budget is 135 kbit/s
	n, _ := newNode(t, Config{Name: "deep-l", Upstreams: []string{up.URL}, Prefetch: noPrefetch(), Advice: AdviceConfig{EgressLimit: limit, ShareByLadder: true}})
	cmcdQuery := func(sid, ot string, br int) string {
		list := `ot=` + ot + `,sid="` + sid + `"`
		if br > 0 {
			list += ",br=" + strconv.Itoa(br)
		}
		return "CMCD=" + url.QueryEscape(list)
	}
	// mbOf reads the nearest entry's mb of an answer's CMSD-Dynamic.
	mbOf := func(field string) int64 {
		t.Helper()
		e, ok := cmsd.Nearest(field)
		if !ok {
			t.Fatalf("CMSD-Dynamic %q: no entry", field)
		}
		return e.MaxBitrateKbps
	}
	front := func(path, query string) int64 {
		t.Helper()
		fr, ok := n.Answer(PlainRequest{Path: path, Query: query, Remote: "192.0.2.1:1"})
		if !ok {
			t.Fatalf("front declined %s", path)
		}
		fr.Done(int64(len(fr.Body)), 0, nil)
		for line := range strings.SplitSeq(string(fr.Header), "\r\n") {
			if v, ok := strings.CutPrefix(line, cmsd.Header+": "); ok {
				return mbOf(v)
			}
		}
		t.Fatalf("%s?%s: no CMSD-Dynamic in %q", path, query, fr.Header)
		return 0
	}
	viaHTTP := func(path, query string, h http.Header) int64 {
		t.Helper()
		r := httptest.NewRequest(http.MethodGet, path+"?"+query, nil)
		maps.Copy(r.Header, h)
		rec := httptest.NewRecorder()
		n.ServeHTTP(rec, r)
		if rec.Code != http.StatusOK && rec.Code != http.StatusPartialContent {
			t.Fatalf("%s: %d", path, rec.Code)
		}
		return mbOf(rec.Header().Get(cmsd.Header))
	}
	// Three viewers of the film start (manifest, then 60k and 10k
	// segments), one plays the show with hls.js, one an asset whose
	// manifests the node never saw.
	for _, sid := range []string{"a", "b", "c"} {
		front("/vod/film/manifest.mpd", cmcdQuery(sid, "m", 0))
	}
	front("/vod/film/v60/1.m4s", cmcdQuery("a", "v", 60))
	front("/vod/film/v10/1.m4s", cmcdQuery("b", "v", 10))
	front("/vod/film/v10/2.m4s", cmcdQuery("c", "v", 10))
	front("/vod/other/v/1.m4s", cmcdQuery("u", "v", 0))
	front("/vod/show/master.m3u8", cmcdQuery("h", "m", 0))
	front("/vod/show/lo/1.m4s", cmcdQuery("h", "av", 20))
	// Some 300 KiB answered within the second: far over 90 % of the limit.
	ad := n.refreshAdvice(time.Now())
	if !ad.capping || !ad.entry.Duress {
		t.Fatalf("after %d kbit answered: capping %v, duress %v (egress %.0f bit/s)", n.stats.servedBytes()*8/1000, ad.capping, ad.entry.Duress, ad.egress)
	}
	// The budget, 135 kbit/s: u's equal share is 27; a, b and c start
	// at 15, h at 20 (65 in all, 43 left); a, taking 60k, climbs to 35
	// first, then b (before c by its id), to 35 (3 left).
	want := map[string]int64{"a": 35, "b": 35, "c": 15, "h": 20}
	equal := int64(27) // 135 kbit/s in five
	if s := n.Stats().Advice; s.Sessions != 5 || s.ByLadder != 4 || s.MaxBitrateKbps != equal {
		t.Errorf("stats: %+v, want 5 sessions, 4 by their ladder, %d kbit/s for the others", s, equal)
	}
	var sum int64
	for sid, mb := range want {
		seg := "/vod/film/v10/"
		if sid == "h" {
			seg = "/vod/show/lo/"
		}
		if got := front(seg+"3.m4s", cmcdQuery(sid, "v", 10)); got != mb {
			t.Errorf("session %s, fronts' path: mb=%d, want %d", sid, got, mb)
		}
		if got := viaHTTP(seg+"3.m4s", cmcdQuery(sid, "v", 10), http.Header{"Range": {"bytes=0-9"}}); got != mb {
			t.Errorf("session %s, net/http: mb=%d, want %d", sid, got, mb)
		}
		if got := viaHTTP(seg+"4.m4s", "", http.Header{"Cmcd-Session": {`sid="` + sid + `"`}}); got != mb {
			t.Errorf("session %s, CMCD in headers: mb=%d, want %d", sid, got, mb)
		}
		sum += mb
	}
	if got := front("/vod/other/v/1.m4s", cmcdQuery("u", "v", 0)); got != equal {
		t.Errorf("a session with no ladder known: mb=%d, want the equal share %d", got, equal)
	}
	if got := front("/vod/film/v10/3.m4s", ""); got != equal {
		t.Errorf("no CMCD: mb=%d, want the equal share %d", got, equal)
	}
	if sum += equal; float64(sum) > fairShare*limit/1000 {
		t.Errorf("the shares sum to %d kbit/s, over the %v budget", sum, fairShare*limit/1000)
	}
	// Equal shares (-cmsd-share equal, the default) are equal.
	if err := n.SetAdvice(AdviceConfig{EgressLimit: limit}); err != nil {
		t.Fatal(err)
	}
	if got := front("/vod/film/v10/3.m4s", cmcdQuery("a", "v", 10)); got != equal {
		t.Errorf("equal shares asked for: session a told mb=%d, want %d", got, equal)
	}
	if s := n.Stats().Advice; s.ShareByLadder || s.ByLadder != 0 || !s.Capping {
		t.Errorf("equal shares asked for: stats %+v", s)
	}
}
