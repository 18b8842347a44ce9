//go:build !js

package player

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deepcast/deepcast/manifest"
)

// TestLiveRelayout: a live SegmentTimeline's predicted chunks are laid
// out again from a later MPD, with the durations and URLs it lists (here
// a short segment the prediction did not know of), video and sound.
func TestLiveRelayout(t *testing.T) {
	base, _ := url.Parse("http://h/live/m.mpd")
	ast := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	doc := func(video, audio string) []byte {
		set := func(kind, id, timeline string) string {
			return `<AdaptationSet contentType="` + kind + `" mimeType="` + kind + `/mp4"><SegmentTemplate timescale="1000" media="` + id + `/$Time$.m4s"><SegmentTimeline>` +
				timeline + `</SegmentTimeline></SegmentTemplate><Representation id="` + id + `" bandwidth="300000"/></AdaptationSet>`
		}
		return []byte(`<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" availabilityStartTime="2026-12-01T10:00:00Z"><Period>` +
			set("video", "v", video) + set("audio", "a", audio) + `</Period></MPD>`)
	}
	// Listed to 100 s; the player joins at 94 s (three segments behind
	// 101 s) for 10 s: 94, 96, 98 listed, 100, 102, 104 predicted.
	v := joinLive(t, doc(`<S t="0" d="2000" r="49"/>`, `<S t="0" d="2000" r="49"/>`), base, ast.Add(101*time.Second), 10*time.Second)
	if !slices.EqualFunc(v.live.predicted, [][]bool{{false}, {false}, {false}, {true}, {true}, {true}}, slices.Equal) {
		t.Fatalf("predicted chunks %v", v.live.predicted)
	}
	// The later MPD: a 1 s segment at 100 s, then 2 s ones.
	later, err := manifest.ParseLive(doc(`<S t="0" d="2000" r="49"/><S d="1000"/><S d="2000" r="1"/>`, `<S t="0" d="2000" r="52"/>`), base, nil,
		manifest.LiveJoin{Now: ast.Add(107 * time.Second), Length: 6 * time.Second, Resume: true, At: 100 * time.Second, MinSegments: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.relayFrom(3, 100*time.Second, later); err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, u := range v.URLs {
		urls = append(urls, strings.TrimPrefix(u[0], "http://h/live/v/"))
	}
	if want := []string{"94000.m4s", "96000.m4s", "98000.m4s", "100000.m4s", "101000.m4s", "103000.m4s"}; !slices.Equal(urls, want) {
		t.Errorf("video %q, want %q", urls, want)
	}
	if want := []time.Duration{2, 4, 6, 7, 9, 11}; !slices.Equal(v.Ends, scale(want)) || slices.ContainsFunc(v.live.predicted, func(p []bool) bool { return slices.Contains(p, true) }) {
		t.Errorf("ends %v (predicted %v), want %v s, none predicted", v.Ends, v.live.predicted, want)
	}
	// The sound as listed to 106 s, then one predicted.
	if want := []time.Duration{2, 4, 6, 8, 10, 12, 14}; !slices.Equal(v.AudioEnds, scale(want)) || len(v.AudioURLs) != 7 ||
		!strings.HasSuffix(v.AudioURLs[3], "a/100000.m4s") || !slices.Equal(v.live.audioPredicted, []bool{false, false, false, false, false, false, true}) {
		t.Errorf("audio ends %v, URLs %q (predicted %v), want %v s", v.AudioEnds, v.AudioURLs, v.live.audioPredicted, want)
	}
	// The last chunk (to 11 s) needs the sound to 12 s, not the one after.
	if from, to := v.AudioAt(5); from != 5 || to != 6 {
		t.Errorf("the last chunk's sound: segments %d to %d, want 5 to 6", from, to)
	}
	if at := v.AvailableAt(3, false); !at.Equal(ast.Add(101 * time.Second)) {
		t.Errorf("chunk 4 available at %v, want at 101 s", at)
	}

	// A later MPD that no longer has the segment the chunk starts at.
	gone, _ := manifest.ParseLive(doc(`<S t="200000" d="2000" r="4"/>`, `<S t="200000" d="2000" r="4"/>`), base, nil,
		manifest.LiveJoin{Now: ast.Add(211 * time.Second), Length: 6 * time.Second})
	if err := v.relayFrom(4, 101*time.Second, gone); err == nil || !strings.Contains(err.Error(), "no segment at") {
		t.Errorf("relayout on a timeline without the chunk: %v", err)
	}
}

// TestLiveRelayoutOfAnEndedStream: the static MPD a live stream leaves
// when it ends cuts the session to the chunks there are (none, when it
// ended before the chunk the player is at), sound too.
func TestLiveRelayoutOfAnEndedStream(t *testing.T) {
	base, _ := url.Parse("http://h/live/m.mpd")
	ast := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	doc := func(kind, timeline string) []byte {
		set := func(media, id string) string {
			return `<AdaptationSet contentType="` + media + `" mimeType="` + media + `/mp4"><SegmentTemplate timescale="1000" media="` + id + `/$Time$.m4s"><SegmentTimeline>` +
				timeline + `</SegmentTimeline></SegmentTemplate><Representation id="` + id + `" bandwidth="300000"/></AdaptationSet>`
		}
		return []byte(`<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="` + kind + `" availabilityStartTime="2026-12-01T10:00:00Z" mediaPresentationDuration="PT104S"><Period start="PT0S">` +
			set("video", "v") + set("audio", "a") + `</Period></MPD>`)
	}
	for _, c := range []struct {
		name     string
		timeline string
		chunks   int // from chunk 3 (at 100 s) on
	}{
		{"two more chunks", `<S t="0" d="2000" r="51"/>`, 5},
		{"ended before the chunk", `<S t="0" d="2000" r="49"/>`, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := joinLive(t, doc("dynamic", `<S t="0" d="2000" r="49"/>`), base, ast.Add(101*time.Second), 10*time.Second)
			ended, err := manifest.ParseLive(doc("static", c.timeline), base, nil, manifest.LiveJoin{Now: ast.Add(107 * time.Second), Length: 6 * time.Second, Resume: true, At: 100 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if err := v.relayFrom(3, 100*time.Second, ended); err != nil {
				t.Fatal(err)
			}
			if v.Chunks != c.chunks || !v.live.ended || len(v.AudioURLs) != c.chunks || !v.past(c.chunks, false) || v.past(c.chunks-1, false) {
				t.Errorf("%d chunks, %d sound segments (ended %v), want %d of each", v.Chunks, len(v.AudioURLs), v.live.ended, c.chunks)
			}
		})
	}
}

// joinLive is the Video of a live MPD joined at now for length, its
// segments 1000 bytes, with what it predicted marked.
func joinLive(t *testing.T, doc []byte, base *url.URL, now time.Time, length time.Duration) *Video {
	t.Helper()
	m, err := manifest.ParseLive(doc, base, nil, manifest.LiveJoin{Now: now, Length: length})
	if err != nil {
		t.Fatal(err)
	}
	v, err := videoFromManifest(context.Background(), m, "live", true, func(string) (int64, error) { return 1000, nil })
	if err != nil {
		t.Fatal(err)
	}
	v.live = &liveFeed{}
	v.live.predicted, v.live.audioPredicted, v.live.audioNumbers = predictedOf(m)
	return v
}

func scale(secs []time.Duration) []time.Duration {
	out := make([]time.Duration, len(secs))
	for i, s := range secs {
		out[i] = s * time.Second
	}
	return out
}
