package manifest

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestParseLive: a player joining a live MPD gets the segments from the
// live edge less the delay (the MPD's suggestedPresentationDelay, else
// three segments, never past the time-shift buffer), numbered from the
// Period's start and timed from availabilityStartTime; what cannot be
// played live is refused, saying why.
func TestParseLive(t *testing.T) {
	base, _ := url.Parse("http://h/live/m.mpd")
	ast := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	mpdDoc := func(attrs, period, addressing string) string {
		return `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" availabilityStartTime="2026-12-01T10:00:00Z" ` + attrs + `>` +
			`<Period id="p" ` + period + `><AdaptationSet contentType="video" mimeType="video/mp4">` + addressing +
			`<Representation id="v" bandwidth="300000"/></AdaptationSet></Period></MPD>`
	}
	template := `<SegmentTemplate timescale="1000" duration="2000" startNumber="5" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number$.m4s"/>`
	for _, tc := range []struct {
		name, attrs, period, addressing string
		now                             time.Duration // after availabilityStartTime
		delay                           time.Duration
		wantFirst                       int           // first segment's number
		wantStart                       time.Duration // its start on the MPD's timeline (from availabilityStartTime)
	}{
		// Edge at 101 s; less 3 segments (6 s): 95 s is in segment 47 (94-96 s), number 47+5.
		{"three segments behind", "", "", template, 101 * time.Second, 0, 52, 94 * time.Second},
		{"the MPD's delay", `suggestedPresentationDelay="PT10S"`, "", template, 101 * time.Second, 0, 50, 90 * time.Second},
		{"the player's delay", `suggestedPresentationDelay="PT10S"`, "", template, 101 * time.Second, 4 * time.Second, 53, 96 * time.Second},
		// A delay under one segment: the segment at the edge is not complete.
		{"at least one segment", "", "", template, 101 * time.Second, time.Millisecond, 54, 98 * time.Second},
		{"within the time-shift buffer", `suggestedPresentationDelay="PT30S" timeShiftBufferDepth="PT6S" minimumUpdatePeriod="PT2S"`, "", template, 101 * time.Second, 0, 53, 96 * time.Second},
		{"a Period that starts later", "", `start="PT60S"`, template, 101 * time.Second, 0, 22, 94 * time.Second},
		{"just started", "", "", template, time.Second, 0, 5, 0},
	} {
		m, err := ParseLive([]byte(mpdDoc(tc.attrs, tc.period, tc.addressing)), base, nil,
			LiveJoin{Now: ast.Add(tc.now), Length: 10 * time.Second, Delay: tc.delay})
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		segs := m.Video[0].Segments
		if len(segs) != 6 || segs[0].Number != tc.wantFirst || segs[0].Start != tc.wantStart || segs[5].Number != tc.wantFirst+5 ||
			segs[0].URL != "http://h/live/v/"+strconv.Itoa(tc.wantFirst)+".m4s" || m.Video[0].Init != "http://h/live/v/init.mp4" {
			t.Errorf("%s: %d segments from %d at %v (%s), want 6 from %d at %v", tc.name, len(segs), segs[0].Number, segs[0].Start, segs[0].URL, tc.wantFirst, tc.wantStart)
		}
		if m.Live == nil || !m.Live.Epoch.Equal(ast) {
			t.Errorf("%s: live %+v, want the epoch %v (availabilityStartTime)", tc.name, m.Live, ast)
		}
		if update := strings.Contains(tc.attrs, "minimumUpdatePeriod"); m.Live != nil && (m.Live.MinimumUpdatePeriod == 2*time.Second) != update {
			t.Errorf("%s: minimumUpdatePeriod read as %v", tc.name, m.Live.MinimumUpdatePeriod)
		}
	}

	// A SegmentTimeline lists the segments published so far (to 100 s
	// here); those after are laid out at the last one's duration, marked
	// predicted. Resuming lays them out from a given time instead.
	for _, tc := range []struct {
		name, timeline string
		resume         bool
		wantURLs       []string
		wantPredicted  int
	}{
		{"$Number$", `<SegmentTemplate timescale="1000" startNumber="5" media="$Number$.m4s"><SegmentTimeline><S t="0" d="2000" r="49"/></SegmentTimeline></SegmentTemplate>`, false,
			[]string{"52", "53", "54", "55", "56", "57"}, 3},
		{"$Time$", `<SegmentTemplate timescale="1000" media="$Time$.m4s"><SegmentTimeline><S t="0" d="2000" r="46"/><S d="1000"/><S d="3000" r="1"/></SegmentTimeline></SegmentTemplate>`, false,
			// Three of the last duration (3 s) behind 101 s: 92 s.
			[]string{"92000", "94000", "95000", "98000", "101000"}, 1},
		{"resumed", `<SegmentTemplate timescale="1000" startNumber="5" media="$Number$.m4s"><SegmentTimeline><S t="0" d="2000" r="49"/></SegmentTimeline></SegmentTemplate>`, true,
			[]string{"53", "54", "55", "56", "57", "58"}, 4},
	} {
		join := LiveJoin{Now: ast.Add(101 * time.Second), Length: 10 * time.Second, Resume: tc.resume, At: 96 * time.Second}
		m, err := ParseLive([]byte(mpdDoc("", "", tc.timeline)), base, nil, join)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var urls []string
		predicted := 0
		for _, s := range m.Video[0].Segments {
			urls = append(urls, strings.TrimSuffix(strings.TrimPrefix(s.URL, "http://h/live/"), ".m4s"))
			if s.Predicted {
				predicted++
			} else if predicted > 0 {
				t.Errorf("%s: a listed segment after a predicted one", tc.name)
			}
		}
		if !slices.Equal(urls, tc.wantURLs) || predicted != tc.wantPredicted {
			t.Errorf("%s: segments %q (%d predicted), want %q (%d)", tc.name, urls, predicted, tc.wantURLs, tc.wantPredicted)
		}
	}

	// Location says where the MPD is re-read: resolved against the MPD's
	// URL; only an http(s) URL is followed.
	for location, want := range map[string]string{
		"<Location>next/m.mpd</Location>":                                             "http://h/live/next/m.mpd",
		"<Location>file:///etc/passwd</Location><Location>https://o/m.mpd</Location>": "https://o/m.mpd",
		"<Location>file:///etc/passwd</Location>":                                     "",
		"": "",
	} {
		doc := strings.Replace(mpdDoc("", "", template), "<Period", location+"<Period", 1)
		m, err := ParseLive([]byte(doc), base, nil, LiveJoin{Now: ast.Add(time.Minute), Length: 10 * time.Second})
		if err != nil {
			t.Fatalf("%q: %v", location, err)
		}
		if m.Live.Location != want {
			t.Errorf("%q: location %q, want %q", location, m.Live.Location, want)
		}
	}

	join := LiveJoin{Now: ast.Add(time.Minute), Length: 10 * time.Second}
	for _, tc := range []struct{ name, doc, want string }{
		{"an empty SegmentTimeline", mpdDoc("", "", `<SegmentTemplate media="$Time$.m4s"><SegmentTimeline/></SegmentTemplate>`), "lists no segments"},
		{"a SegmentList", mpdDoc("", "", `<SegmentList duration="2"><SegmentURL media="1.m4s"/></SegmentList>`), "SegmentList"},
		{"no availabilityStartTime", strings.Replace(mpdDoc("", "", template), `availabilityStartTime="2026-12-01T10:00:00Z"`, "", 1), "without availabilityStartTime"},
		{"a bad availabilityStartTime", strings.Replace(mpdDoc("", "", template), `2026-12-01T10:00:00Z`, "yesterday", 1), "not an xs:dateTime"},
		{"a stream that starts later", strings.Replace(mpdDoc("", "", template), `2026-12-01T10:00:00Z`, "2026-12-01T11:00:00Z", 1), "after now"},
		{"a Period that cannot be placed", strings.Replace(mpdDoc("", "", template), `</Period>`, `</Period><Period id="q"/>`, 1), "period 2 has no @start"},
	} {
		if _, err := ParseLive([]byte(tc.doc), base, nil, join); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
	if _, err := ParseLive([]byte(mpdDoc("", "", template)), base, nil, LiveJoin{Now: join.Now}); err == nil {
		t.Error("a live join of no length was taken")
	}
	// Parse (for simulation) refuses a live MPD and says how to play it.
	if _, err := Parse([]byte(mpdDoc("", "", template)), base); err == nil || !strings.Contains(err.Error(), "-duration") {
		t.Errorf("Parse of a live MPD: %v", err)
	}
	// A static MPD is read as Parse reads it.
	static := `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT4S"><Period>` +
		`<AdaptationSet contentType="video" mimeType="video/mp4">` + template + `<Representation id="v" bandwidth="300000"/></AdaptationSet></Period></MPD>`
	if m, err := ParseLive([]byte(static), base, nil, join); err != nil || m.Live != nil || len(m.Video[0].Segments) != 2 || m.Video[0].Segments[0].Number != 5 {
		t.Errorf("a static MPD through ParseLive: %v", err)
	}
}

// FuzzParseLive: any dynamic MPD, joined at any time for any length,
// gives an error or segments within bounds, laid out in order.
func FuzzParseLive(f *testing.F) {
	f.Add([]byte(`<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" availabilityStartTime="2026-12-01T10:00:00Z" suggestedPresentationDelay="PT4S" timeShiftBufferDepth="PT30S"><Period start="PT1S"><AdaptationSet contentType="video" mimeType="video/mp4"><SegmentTemplate timescale="1000" duration="2000" media="$Number$.m4s"/><Representation id="v" bandwidth="300000"/></AdaptationSet></Period></MPD>`), int64(100_000), int64(10_000))
	f.Add([]byte(`<MPD type="dynamic" availabilityStartTime="2026-12-01T10:00:00"><Period><AdaptationSet mimeType="video/mp4"><SegmentTemplate duration="1" media="$Time$"/><Representation id="v" bandwidth="1"/></AdaptationSet><AdaptationSet mimeType="audio/mp4"><SegmentTemplate duration="3" timescale="2" media="a$Number$"/><Representation id="a" bandwidth="1"/></AdaptationSet></Period></MPD>`), int64(1), int64(1))
	f.Add([]byte(`<MPD type="dynamic" availabilityStartTime="2026-12-01T10:00:00Z"><Period id="a" start="PT0S"><AdaptationSet mimeType="video/mp4"><SegmentTemplate timescale="1000" duration="2000" media="a$Number$"/><Representation id="v" bandwidth="1"/></AdaptationSet></Period>`+
		`<Period id="b" start="PT60S"><AdaptationSet mimeType="video/mp4"><SegmentTemplate timescale="1000" presentationTimeOffset="5000" media="b$Time$"><SegmentTimeline><S t="5000" d="2000" r="-1"/></SegmentTimeline></SegmentTemplate><Representation id="v" bandwidth="1"/></AdaptationSet></Period>`+
		`<Period id="c" start="PT100S"><AdaptationSet mimeType="video/mp4"><SegmentTemplate media="c$Number$"><SegmentTimeline/></SegmentTemplate><Representation id="v" bandwidth="1"/></AdaptationSet></Period></MPD>`), int64(101_000), int64(10_000))
	base, _ := url.Parse("http://h/live/m.mpd")
	ast := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte, nowMs, lengthMs int64) {
		join := LiveJoin{Now: ast.Add(time.Duration(nowMs) * time.Millisecond), Length: time.Duration(lengthMs) * time.Millisecond}
		_ = LiveClocks(data)
		m, err := ParseLive(data, base, nil, join)
		if err != nil {
			return
		}
		for _, r := range append(m.Video, m.Audio...) {
			if len(r.Segments) == 0 || len(r.Segments) > MaxSegments {
				t.Fatalf("representation %s with %d segments", r.ID, len(r.Segments))
			}
			for k := 1; k < len(r.Segments); k++ {
				if r.Segments[k].Start <= r.Segments[k-1].Start {
					t.Fatalf("representation %s: segment %d starts at %v, after %v", r.ID, k, r.Segments[k].Start, r.Segments[k-1].Start)
				}
			}
		}
	})
}

// TestParseLivePeriods: a live MPD of several Periods (a packager that
// starts a new one at each splice, as livesim2 and ad insertion do) is
// laid out on one timeline from availabilityStartTime: from the segment
// that holds the join point, in whichever Period that is, on into the
// Periods after it, each segment addressed by its own Period's template
// and the first of a Period naming its initialization segment. A Period
// with no end yet, or one whose SegmentTimeline lists nothing yet, goes on
// predicted. Periods that cannot be joined into one stream are refused.
func TestParseLivePeriods(t *testing.T) {
	base, _ := url.Parse("http://h/live/m.mpd")
	ast := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	video := func(addressing string) string {
		return `<AdaptationSet contentType="video" mimeType="video/mp4">` + addressing +
			`<Representation id="lo" bandwidth="300000"/><Representation id="hi" bandwidth="900000"/></AdaptationSet>`
	}
	template := func(startNumber int) string {
		return `<SegmentTemplate timescale="1000" duration="2000" startNumber="` + strconv.Itoa(startNumber) +
			`" initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number$.m4s"/>`
	}
	period := func(id, attrs, addressing string) string {
		return `<Period id="` + id + `" ` + attrs + `><BaseURL>` + id + `/</BaseURL>` + video(addressing) + `</Period>`
	}
	doc := func(periods ...string) string {
		return `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" availabilityStartTime="2026-12-01T10:00:00Z" minimumUpdatePeriod="PT2S">` +
			strings.Join(periods, "") + `</MPD>`
	}
	a := period("a", `start="PT0S"`, template(1))
	b := period("b", `start="PT60S"`, template(31))
	c := period("c", `start="PT100S"`, template(1))
	for _, tc := range []struct {
		name      string
		mpd       string
		now       time.Duration
		resume    bool
		at        time.Duration
		want      []string // each segment as period/number, a * when predicted
		wantStart time.Duration
		wantInits map[int]string // segment index: the initialization segment it names
	}{
		{"within the last Period", doc(a, b, c), 131 * time.Second, false, 0,
			[]string{"c/13", "c/14", "c/15", "c/16", "c/17", "c/18"}, 124 * time.Second, nil},
		// The edge 3 s into c, three segments behind it is 97 s: in b.
		{"joined in the Period before", doc(a, b, c), 103 * time.Second, false, 0,
			[]string{"b/49", "b/50", "c/1", "c/2", "c/3", "c/4"}, 96 * time.Second, map[int]string{2: "c/lo/init.mp4"}},
		{"resumed at a Period's last segment", doc(a, b, c), 103 * time.Second, true, 98 * time.Second,
			[]string{"b/50", "c/1", "c/2", "c/3", "c/4", "c/5"}, 98 * time.Second, map[int]string{1: "c/lo/init.mp4"}},
		{"a Period of no length between", doc(a, b, period("x", `start="PT100S"`, template(500)), c), 103 * time.Second, true, 98 * time.Second,
			[]string{"b/50", "c/1", "c/2", "c/3", "c/4", "c/5"}, 98 * time.Second, map[int]string{1: "c/lo/init.mp4"}},
		// An advertisement of one rendition: both go on in it.
		{"a ladder that changes", doc(a, b, `<Period id="c" start="PT100S"><BaseURL>c/</BaseURL>`+strings.Replace(video(template(1)), `<Representation id="hi" bandwidth="900000"/>`, "", 1)+`</Period>`), 103 * time.Second, false, 0,
			[]string{"b/49", "b/50", "c/1", "c/2", "c/3", "c/4"}, 96 * time.Second, map[int]string{2: "c/lo/init.mp4"}},
		{"resumed where a Period begins", doc(a, b, c), 103 * time.Second, true, 100 * time.Second,
			[]string{"c/1", "c/2", "c/3", "c/4", "c/5", "c/6"}, 100 * time.Second, nil},
		// b ends at 100 s by its @duration and nothing follows it yet:
		// what comes after is only predicted.
		{"a Period that ends, none after it", doc(a, period("b", `start="PT60S" duration="PT40S"`, template(31))), 103 * time.Second, false, 0,
			[]string{"b/49", "b/50", "b/51*", "b/52*", "b/53*", "b/54*"}, 96 * time.Second, nil},
		// c has begun, its SegmentTimeline lists nothing yet.
		{"a Period just begun", doc(a, b, period("c", `start="PT100S"`, `<SegmentTemplate timescale="1000" media="$RepresentationID$/t$Number$.m4s"><SegmentTimeline/></SegmentTemplate>`)), 101 * time.Second, false, 0,
			[]string{"b/48", "b/49", "b/50", "c/t1*", "c/t2*", "c/t3*"}, 94 * time.Second, map[int]string{}},
		// A SegmentTimeline Period cut where the next begins (its @r of -1
		// would run on to the edge).
		{"timelines", doc(a, period("b", `start="PT60S"`, `<SegmentTemplate timescale="1000" presentationTimeOffset="5000" media="$RepresentationID$/$Time$.m4s"><SegmentTimeline><S t="5000" d="2000" r="-1"/></SegmentTimeline></SegmentTemplate>`), c), 103 * time.Second, false, 0,
			[]string{"b/41000", "b/43000", "c/1", "c/2", "c/3", "c/4"}, 96 * time.Second, map[int]string{2: "c/lo/init.mp4"}},
	} {
		m, err := ParseLive([]byte(tc.mpd), base, nil, LiveJoin{Now: ast.Add(tc.now), Length: 10 * time.Second, Resume: tc.resume, At: tc.at})
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(m.Video) != 2 || !m.Live.Epoch.Equal(ast) {
			t.Errorf("%s: %d video renditions, epoch %v", tc.name, len(m.Video), m.Live.Epoch)
			continue
		}
		var got []string
		for k, s := range m.Video[0].Segments {
			g := strings.TrimSuffix(strings.Replace(strings.TrimPrefix(s.URL, "http://h/live/"), "/lo/", "/", 1), ".m4s")
			if s.Predicted {
				g += "*"
			}
			got = append(got, g)
			if want := tc.wantStart + time.Duration(k)*2*time.Second; s.Start != want || s.Duration != 2*time.Second {
				t.Errorf("%s: segment %d at %v for %v, want %v for 2s", tc.name, k, s.Start, s.Duration, want)
			}
			if want := tc.wantInits[k]; s.Init != "" && !strings.HasSuffix(s.Init, "/"+want) || s.Init == "" && want != "" {
				t.Errorf("%s: segment %d names the initialization segment %q, want %q", tc.name, k, s.Init, want)
			}
			if hi := m.Video[1].Segments[k]; hi.Start != s.Start || hi.Predicted != s.Predicted || !strings.Contains(hi.URL, "/hi/") && tc.name != "a ladder that changes" {
				t.Errorf("%s: the top rendition's segment %d is %+v", tc.name, k, hi)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: segments %q, want %q", tc.name, got, tc.want)
		}
	}

	// Joined during an advertisement of one rendition (b, from 60 s), the
	// programme's Period before it listed: the session plays with the
	// programme's ladder, the advertisement standing in for both; and a
	// player re-reading the MPD lays it onto the ladder it plays with.
	ad := `<Period id="b" start="PT60S"><BaseURL>b/</BaseURL>` + strings.Replace(video(template(31)), `<Representation id="hi" bandwidth="900000"/>`, "", 1) + `</Period>`
	m, err := ParseLive([]byte(doc(a, ad)), base, nil, LiveJoin{Now: ast.Add(80 * time.Second), Length: 4 * time.Second})
	if err != nil || len(m.Video) != 2 || m.Video[1].ID != "hi" || !strings.HasSuffix(m.Video[1].Segments[0].URL, "/b/lo/38.m4s") || len(m.Remapped) != 2 {
		t.Errorf("joined during an advertisement: %v, %+v", err, m)
	}
	ladder := []*Representation{{ID: "lo", Bandwidth: 300_000}, {ID: "mid", Bandwidth: 600_000}, {ID: "hi", Bandwidth: 900_000}}
	m, err = ParseLive([]byte(doc(a, b, c)), base, nil, LiveJoin{Now: ast.Add(103 * time.Second), Length: 4 * time.Second, Resume: true, At: 98 * time.Second, Ladder: ladder})
	if err != nil || len(m.Video) != 3 || m.Video[1].ID != "mid" || !strings.HasSuffix(m.Video[1].Segments[0].URL, "/b/hi/50.m4s") || !strings.HasSuffix(m.Video[0].Segments[0].URL, "/b/lo/50.m4s") || !strings.HasSuffix(m.Video[2].Segments[1].URL, "/c/hi/1.m4s") {
		t.Errorf("re-read onto a ladder of three: %v, %+v", err, m)
	}

	join := LiveJoin{Now: ast.Add(103 * time.Second), Length: 10 * time.Second}
	for _, tc := range []struct{ name, mpd, want string }{
		{"Periods out of order", doc(a, c, b), "period 3 starts at 1m0s, before the one before it"},
		{"a Period of no length", doc(a, period("b", `start="PT60S" duration="PT0S"`, template(31))), "period 2 lasts 0s"},
		{"a later Period that cannot be read", doc(a, b, period("c", `start="PT100S"`, `<SegmentList duration="2"><SegmentURL media="1.m4s"/></SegmentList>`)), "period 3: representation \"lo\": a live MPD addressed with SegmentList"},
	} {
		if _, err := ParseLive([]byte(tc.mpd), base, nil, join); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}
