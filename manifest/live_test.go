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
// three segments, never past the time-shift buffer), numbered and timed
// from the Period's start; what cannot be played live is refused, saying
// why.
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
		wantStart                       time.Duration // its start on the Period's timeline
		wantEpoch                       time.Duration // the Period's start after availabilityStartTime
	}{
		// Edge at 101 s; less 3 segments (6 s): 95 s is in segment 47 (94-96 s), number 47+5.
		{"three segments behind", "", "", template, 101 * time.Second, 0, 52, 94 * time.Second, 0},
		{"the MPD's delay", `suggestedPresentationDelay="PT10S"`, "", template, 101 * time.Second, 0, 50, 90 * time.Second, 0},
		{"the player's delay", `suggestedPresentationDelay="PT10S"`, "", template, 101 * time.Second, 4 * time.Second, 53, 96 * time.Second, 0},
		// A delay under one segment: the segment at the edge is not complete.
		{"at least one segment", "", "", template, 101 * time.Second, time.Millisecond, 54, 98 * time.Second, 0},
		{"within the time-shift buffer", `suggestedPresentationDelay="PT30S" timeShiftBufferDepth="PT6S" minimumUpdatePeriod="PT2S"`, "", template, 101 * time.Second, 0, 53, 96 * time.Second, 0},
		{"a Period that starts later", "", `start="PT60S"`, template, 101 * time.Second, 0, 22, 34 * time.Second, 60 * time.Second},
		{"just started", "", "", template, time.Second, 0, 5, 0, 0},
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
		if m.Live == nil || !m.Live.Epoch.Equal(ast.Add(tc.wantEpoch)) {
			t.Errorf("%s: live %+v, want the epoch %v", tc.name, m.Live, ast.Add(tc.wantEpoch))
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
		{"two Periods", strings.Replace(mpdDoc("", "", template), `</Period>`, `</Period><Period id="q"/>`, 1), "2 Periods"},
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
