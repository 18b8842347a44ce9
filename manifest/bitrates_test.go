package manifest

import (
	"bytes"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestReadBitrates(t *testing.T) {
	built, err := Build(testPresentation())
	if err != nil {
		t.Fatal(err)
	}
	deepcast, err := Marshal(built)
	if err != nil {
		t.Fatal(err)
	}
	fromParse, err := Parse(deepcast, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wantVideo, wantAudio []int
	for _, r := range fromParse.Video {
		wantVideo = append(wantVideo, r.Bandwidth)
	}
	for _, r := range fromParse.Audio {
		wantAudio = append(wantAudio, r.Bandwidth)
	}
	const live = `<MPD type="dynamic" availabilityStartTime="2024-01-01T00:00:00Z"><Period id="p"><AdaptationSet contentType="video">` +
		`<SegmentTemplate media="$Number$.m4s" duration="2" timescale="1"/><Representation id="hi" bandwidth="3000000"/><Representation id="lo" bandwidth="400000"/>` +
		`<Representation id="same" bandwidth="400000"/></AdaptationSet><AdaptationSet mimeType="audio/mp4"><Representation id="a" bandwidth="128000"/></AdaptationSet>` +
		`<AdaptationSet mimeType="text/vtt"><Representation id="t" bandwidth="100"/></AdaptationSet></Period><Period id="q"><AdaptationSet contentType="video"><Representation id="x" bandwidth="9000000"/></AdaptationSet></Period></MPD>`
	tests := []struct {
		name       string
		mpd        string
		video, aud []int
		err        string
	}{
		{name: "a deepcast MPD: what the player reads", mpd: string(deepcast), video: wantVideo, aud: wantAudio},
		{name: "live, first Period, distinct, text left out", mpd: live, video: []int{400000, 3000000}, aud: []int{128000}},
		{name: "a pre-roll advertisement of one rendition, then the programme", mpd: `<MPD type="static" mediaPresentationDuration="PT70S">` +
			`<Period id="ad" duration="PT10S"><AdaptationSet contentType="video"><Representation id="ad" bandwidth="1500000"/></AdaptationSet></Period>` +
			`<Period id="main"><AdaptationSet contentType="video"><Representation id="hi" bandwidth="3000000"/><Representation id="lo" bandwidth="400000"/></AdaptationSet>` +
			`<AdaptationSet contentType="audio"><Representation id="a" bandwidth="96000"/></AdaptationSet></Period></MPD>`,
			video: []int{400000, 3000000}, aud: []int{96000}},
		{name: "live: the programme's ladder, an advertisement under way", mpd: liveAds(`publishTime="2024-01-01T00:00:15Z"`, 2, 1), video: []int{400000, 3000000}},
		{name: "live: the programme's ladder, under way after a pre-roll", mpd: liveAds(`publishTime="2024-01-01T00:00:25Z"`, 1, 2), video: []int{400000, 3000000}},
		{name: "live: the programme's ladder, no publishTime", mpd: liveAds("", 2, 1), video: []int{400000, 3000000}},
		{name: "no video", mpd: `<MPD type="static"><Period><AdaptationSet mimeType="audio/mp4"><Representation id="a" bandwidth="1"/></AdaptationSet></Period></MPD>`, err: "no video"},
		{name: "no bandwidth", mpd: `<MPD type="static"><Period><AdaptationSet mimeType="video/mp4"><Representation id="v"/></AdaptationSet></Period></MPD>`, err: "no video"},
		{name: "no Period", mpd: `<MPD type="static"></MPD>`, err: "no Period"},
		{name: "not XML", mpd: "#EXTM3U\n", err: "mpd:"},
		{name: "two roots", mpd: `<MPD/><MPD/>`, err: "more than one root"},
		{name: "a hostile ladder", mpd: `<MPD type="static"><Period><AdaptationSet mimeType="video/mp4">` + manyReps(65) + `</AdaptationSet></Period></MPD>`, err: "more than 64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ReadBitrates([]byte(tc.mpd))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(b.Video, tc.video) || !slices.Equal(b.Audio, tc.aud) {
				t.Errorf("got video %v audio %v, want %v and %v", b.Video, b.Audio, tc.video, tc.aud)
			}
		})
	}
	if len(wantVideo) < 2 || len(wantAudio) == 0 {
		t.Fatalf("the test presentation has %d video and %d audio bitrates: too few to tell", len(wantVideo), len(wantAudio))
	}
}

// liveAds is a live MPD of a 10-s Period then one under way, of first
// and then video renditions of bandwidths 3000k and 400k (the first
// dropped when there is one).
func liveAds(attrs string, first, then int) string {
	period := func(id string, n int, more string) string {
		reps := `<Representation id="lo" bandwidth="400000"/>`
		if n == 2 {
			reps = `<Representation id="hi" bandwidth="3000000"/>` + reps
		}
		return `<Period id="` + id + `"` + more + `><AdaptationSet contentType="video"><SegmentTemplate media="$Number$.m4s" duration="2" timescale="1"/>` + reps + `</AdaptationSet></Period>`
	}
	return `<MPD type="dynamic" availabilityStartTime="2024-01-01T00:00:00Z" ` + attrs + `>` + period("p1", first, ` start="PT0S" duration="PT10S"`) + period("p2", then, ` start="PT10S"`) + `</MPD>`
}

func manyReps(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(`<Representation id="r" bandwidth="` + strconv.Itoa(1000*(i+1)) + `"/>`)
	}
	return b.String()
}

func FuzzReadBitrates(f *testing.F) {
	m, _ := Build(testPresentation())
	xml, _ := Marshal(m)
	f.Add(xml)
	f.Add([]byte(`<MPD type="dynamic"><Period><AdaptationSet contentType="video"><Representation id="x" bandwidth="5"/></AdaptationSet></Period></MPD>`))
	f.Add([]byte(liveAds(`publishTime="2024-01-01T00:00:25Z"`, 1, 2)))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ReadBitrates(data)
		if err != nil {
			return
		}
		for _, list := range [][]int{b.Video, b.Audio} {
			if len(list) > maxBitrates || !slices.IsSorted(list) || slices.Contains(list, 0) {
				t.Fatalf("bitrates %v: unsorted, zero or too many", list)
			}
		}
		if len(b.Video) == 0 {
			t.Fatal("no video, and no error")
		}
	})
}

// TestReadHLSBitrates: a multivariant playlist's variants, as the HLS
// reader takes them, without their media playlists; I-frame playlists are
// not a rung.
func TestReadHLSBitrates(t *testing.T) {
	h, err := BuildHLS(hlsPresentation())
	if err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse("https://e/vod/a/master.m3u8")
	m, err := ParseHLS(h.Multivariant, base, func(u *url.URL) ([]byte, error) {
		return h.Media[path.Base(path.Dir(u.Path))], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []int
	for _, r := range m.Video {
		want = append(want, r.Bandwidth)
	}
	if len(want) < 2 {
		t.Fatalf("the test playlist has %d variants: too few to tell", len(want))
	}
	b, err := ReadHLSBitrates(h.Multivariant)
	if err != nil || !slices.Equal(b.Video, want) || len(b.Audio) != 0 {
		t.Fatalf("got %+v, %v; want video %v", b, err, want)
	}
	if !bytes.Contains(h.Multivariant, []byte("EXT-X-I-FRAME-STREAM-INF")) {
		t.Fatal("the test playlist has no I-frame variant to leave out")
	}
	for _, bad := range []struct{ in, says string }{
		{"#EXTM3U\n#EXTINF:2,\na.m4s\n", "media playlist"},
		{"#EXTM3U\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1000,URI=\"i.m3u8\"\n", "no variant"},
		{"<MPD/>", "hls"},
	} {
		if _, err := ReadHLSBitrates([]byte(bad.in)); err == nil || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("%q: %v, want an error saying %q", bad.in, err, bad.says)
		}
	}
}

func FuzzReadHLSBitrates(f *testing.F) {
	h, _ := BuildHLS(hlsPresentation())
	f.Add(h.Multivariant)
	f.Add([]byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nx.m3u8\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ReadHLSBitrates(data)
		if err != nil {
			return
		}
		if len(b.Video) == 0 || len(b.Video) > maxBitrates || !slices.IsSorted(b.Video) || slices.Contains(b.Video, 0) || len(b.Audio) != 0 {
			t.Fatalf("bitrates %+v", b)
		}
	})
}
