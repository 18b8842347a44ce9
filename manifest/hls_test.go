package manifest

import (
	"errors"
	"math"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func hlsPresentation() Presentation {
	spans := func(d ...uint64) []Span {
		var out []Span
		var t uint64
		for _, x := range d {
			out = append(out, Span{Time: t, Duration: x})
			t += x
		}
		return out
	}
	return Presentation{Duration: 5005 * time.Millisecond, Video: []Track{
		{ID: "720p", Codecs: "avc1.64001f", Bandwidth: 2500000, AvgBandwidth: 2000000, Width: 1280, Height: 720, FrameRate: "30000/1001",
			Timescale: 30000, Segments: spans(60060, 60060, 30030), Keyframes: []int64{40000, 42000, 39000}},
		{ID: "360p", Codecs: "avc1.64001e", Bandwidth: 800000, AvgBandwidth: 600000, Width: 640, Height: 360, FrameRate: "30",
			Timescale: 30000, Segments: spans(60060, 60060, 30030)},
	}, Audio: []Track{{ID: "audio", Codecs: "mp4a.40.2", Bandwidth: 130000, AvgBandwidth: 128000, SampleRate: 48000, Channels: 2,
		Lang: "en", Timescale: 48000, Segments: spans(96096, 96096, 48048)}}}
}

// testThumbnails are 160x90 thumbnails every 2 s, ten to a 5x2 tile of
// at most 40 kB.
func testThumbnails() *Thumbnails {
	return &Thumbnails{Interval: 2 * time.Second, Width: 160, Height: 90, Columns: 5, Rows: 2, MaxTile: 40_000}
}

// fromMap serves playlists from memory, as the origin would.
func fromMap(files map[string][]byte) func(*url.URL) ([]byte, error) {
	return func(u *url.URL) ([]byte, error) {
		b, ok := files[u.Path]
		if !ok {
			return nil, errors.New("404 " + u.Path)
		}
		return b, nil
	}
}

func TestHLSRoundTrip(t *testing.T) {
	p := hlsPresentation()
	h, err := BuildHLS(p)
	if err != nil {
		t.Fatal(err)
	}
	master := string(h.Multivariant)
	for _, want := range []string{
		`#EXT-X-INDEPENDENT-SEGMENTS`,
		`#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="audio",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="audio/media.m3u8"`,
		`#EXT-X-STREAM-INF:BANDWIDTH=2630000,AVERAGE-BANDWIDTH=2128000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,FRAME-RATE=29.970,AUDIO="audio"` + "\n720p/media.m3u8",
		`#EXT-X-STREAM-INF:BANDWIDTH=930000,AVERAGE-BANDWIDTH=728000,CODECS="avc1.64001e,mp4a.40.2",RESOLUTION=640x360,FRAME-RATE=30.000,AUDIO="audio"` + "\n360p/media.m3u8",
		`#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=311689,CODECS="avc1.64001f",RESOLUTION=1280x720,URI="720p/iframes.m3u8"`,
	} {
		if !strings.Contains(master, want) {
			t.Errorf("multivariant playlist lacks %q:\n%s", want, master)
		}
	}
	if strings.Index(master, "360p/media") > strings.Index(master, "720p/media") {
		t.Error("variants not lowest bitrate first")
	}
	if _, ok := h.IFrames["360p"]; ok {
		t.Error("an I-frame playlist for a track without keyframe ranges")
	}
	for id, pl := range h.Media {
		text := string(pl)
		for _, want := range []string{"#EXT-X-VERSION:6", "#EXT-X-PLAYLIST-TYPE:VOD", `#EXT-X-MAP:URI="init.mp4"`, "#EXT-X-ENDLIST", "#EXT-X-INDEPENDENT-SEGMENTS"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s: lacks %q:\n%s", id, want, text)
			}
		}
		checkTargetDuration(t, id, text)
	}
	iframes := string(h.IFrames["720p"])
	for _, want := range []string{"#EXT-X-I-FRAMES-ONLY", "#EXT-X-BYTERANGE:40000@0\n#EXTINF:2.002,\n1.m4s", "#EXT-X-BYTERANGE:39000@0\n#EXTINF:1.001,\n3.m4s"} {
		if !strings.Contains(iframes, want) {
			t.Errorf("I-frame playlist lacks %q:\n%s", want, iframes)
		}
	}
	checkTargetDuration(t, "720p iframes", iframes)

	files := map[string][]byte{"/vod/a/master.m3u8": h.Multivariant}
	for id, b := range h.Media {
		files["/vod/a/"+id+"/media.m3u8"] = b
	}
	base, _ := url.Parse("https://edge.example/vod/a/master.m3u8")
	m, err := ParseHLS(h.Multivariant, base, fromMap(files))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Video) != 2 || len(m.Audio) != 1 || m.Video[0].ID != "360p" || m.Video[1].Width != 1280 || m.Video[1].Codecs != "avc1.64001f" {
		t.Fatalf("parsed %+v", m)
	}
	if got := m.Video[1].Segments[2]; got.URL != "https://edge.example/vod/a/720p/3.m4s" || got.Number != 3 || got.Start != 4004*time.Millisecond {
		t.Errorf("segment 3: %+v", got)
	}
	if m.Video[0].Init != "https://edge.example/vod/a/360p/init.mp4" || m.Audio[0].Init != "https://edge.example/vod/a/audio/init.mp4" {
		t.Errorf("init %q %q", m.Video[0].Init, m.Audio[0].Init)
	}
	// The playlists' durations sum to the presentation's within a frame.
	if d := m.Duration - p.Duration; d > 34*time.Millisecond || d < -34*time.Millisecond {
		t.Errorf("duration %v, want %v", m.Duration, p.Duration)
	}
}

// checkTargetDuration: EXT-X-TARGETDURATION is at least every EXTINF
// rounded to the nearest integer (RFC 8216 4.3.3.1), and no larger than
// needed.
func checkTargetDuration(t *testing.T, name, text string) {
	t.Helper()
	m := regexp.MustCompile(`#EXT-X-TARGETDURATION:(\d+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("%s: no EXT-X-TARGETDURATION", name)
	}
	target, _ := strconv.Atoi(m[1])
	most := 0
	for _, d := range regexp.MustCompile(`#EXTINF:([0-9.]+),`).FindAllStringSubmatch(text, -1) {
		f, _ := strconv.ParseFloat(d[1], 64)
		most = max(most, int(math.Round(f)))
	}
	if most > target || target > max(most, 1) {
		t.Errorf("%s: target duration %d for a longest rounded EXTINF of %d", name, target, most)
	}
}

func TestParseHLSRefuses(t *testing.T) {
	base, _ := url.Parse("https://e/vod/a/master.m3u8")
	media := "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:2.0,\n1.m4s\n#EXT-X-ENDLIST\n"
	live := strings.TrimSuffix(media, "#EXT-X-ENDLIST\n")
	master := "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000,RESOLUTION=10x10\nv/media.m3u8\n"
	for _, tc := range []struct {
		name, master string
		files        map[string]string
		want         string
	}{
		{"not a playlist", "<MPD/>", nil, "no #EXTM3U"},
		{"a media playlist", media, nil, "not a multivariant"},
		{"no variants", "#EXTM3U\n#EXT-X-VERSION:3\n", nil, "hls: "},
		{"missing media playlist", master, nil, "404"},
		{"live", master, map[string]string{"/vod/a/v/media.m3u8": live}, "live playlist"},
		{"master as media", master, map[string]string{"/vod/a/v/media.m3u8": master}, "not a media playlist"},
	} {
		files := map[string][]byte{}
		for k, v := range tc.files {
			files[k] = []byte(v)
		}
		_, err := ParseHLS([]byte(tc.master), base, fromMap(files))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}

// FuzzRewriteHLS: no multivariant playlist, however hostile, panics the
// router's rewrite, and what it writes is a multivariant playlist again,
// its image stream (if any) at an absolute URI.
func FuzzRewriteHLS(f *testing.F) {
	p := hlsPresentation()
	p.Thumbnails = testThumbnails()
	h, err := BuildHLS(p)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(h.Multivariant, true)
	f.Add([]byte("#EXTM3U\n#EXT-X-IMAGE-STREAM-INF:NAME=\"a,URI=x\",URI=y\n#EXT-X-STREAM-INF:BANDWIDTH=1\nx.m3u8\n"), false)
	f.Add([]byte("#EXTM3U\n#EXT-X-IMAGE-STREAM-INF:URI=\n#EXT-X-STREAM-INF:BANDWIDTH=1\nx.m3u8\n"), false)
	pathways := []Pathway{{"deep1", "https://d1.example/vod/a/"}, {"deep2", "https://d2.example/vod/a/"}}
	f.Fuzz(func(t *testing.T, master []byte, steer bool) {
		steering := ""
		if steer {
			steering = "https://router.example/steering?asset=a"
		}
		out, err := RewriteHLS(master, pathways, steering)
		if err != nil {
			return
		}
		again, err := decodeMaster(out)
		if err != nil {
			t.Fatalf("wrote a playlist it cannot read (%v):\n%s", err, out)
		}
		if tag, ok := again.Custom[imageStreamTag].(imageStream); ok {
			uri, _, _ := attribute(tag.attrs, "URI")
			if u, err := url.Parse(strings.Trim(uri, `"`)); err != nil || !u.IsAbs() {
				t.Fatalf("image stream on %s", uri)
			}
		}
	})
}

// FuzzParseHLS: no playlist, however hostile, panics the reader or loops
// it; what it accepts has segments with sane durations.
func FuzzParseHLS(f *testing.F) {
	h, err := BuildHLS(hlsPresentation())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(h.Multivariant, h.Media["720p"])
	f.Add(h.Multivariant, h.IFrames["720p"])
	f.Add([]byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nx.m3u8\n"), []byte("#EXTM3U\n#EXTINF:-1,\na\n#EXT-X-ENDLIST\n"))
	f.Add([]byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nx.m3u8\n"),
		[]byte("#EXTM3U\n#EXT-X-MAP:URI=\"v.mp4\",BYTERANGE=\"8@0\"\n#EXTINF:2,\n#EXT-X-BYTERANGE:100@8\nv.mp4\n#EXTINF:2,\n#EXT-X-BYTERANGE:9\nv.mp4\n#EXT-X-ENDLIST\n"))
	base, _ := url.Parse("https://e/vod/a/master.m3u8")
	f.Fuzz(func(t *testing.T, master, media []byte) {
		m, err := ParseHLS(master, base, func(*url.URL) ([]byte, error) { return media, nil })
		if err != nil {
			return
		}
		for _, r := range append(m.Video, m.Audio...) {
			if len(r.Segments) == 0 {
				t.Fatalf("accepted a rendition without segments: %+v", r)
			}
			for _, s := range r.Segments {
				if s.Duration < 0 || s.Duration > time.Hour {
					t.Fatalf("accepted a segment of %v", s.Duration)
				}
				if s.Range != "" && s.RangeSize() <= 0 {
					t.Fatalf("accepted a segment of range %q", s.Range)
				}
			}
		}
	})
}

func TestRewriteHLS(t *testing.T) {
	p := hlsPresentation()
	p.Thumbnails = testThumbnails()
	h, err := BuildHLS(p)
	if err != nil {
		t.Fatal(err)
	}
	one, err := RewriteHLS(h.Multivariant, []Pathway{{Name: "deep1", Base: "https://d1.example/vod/a/"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nhttps://d1.example/vod/a/360p/media.m3u8\n", `URI="https://d1.example/vod/a/audio/media.m3u8"`,
		`URI="https://d1.example/vod/a/720p/iframes.m3u8"`, `AUDIO="audio"`,
		`#EXT-X-IMAGE-STREAM-INF:BANDWIDTH=`} {
		if !strings.Contains(string(one), want) {
			t.Errorf("one pathway: lacks %q:\n%s", want, one)
		}
	}
	if strings.Contains(string(one), "PATHWAY-ID") || strings.Contains(string(one), "CONTENT-STEERING") {
		t.Errorf("steering tags without steering:\n%s", one)
	}
	two, err := RewriteHLS(h.Multivariant, []Pathway{{"deep1", "https://d1.example/vod/a/"}, {"deep2", "https://d2.example/vod/a/"}},
		"https://router.example/steering?asset=a")
	if err != nil {
		t.Fatal(err)
	}
	text := string(two)
	for _, want := range []string{`#EXT-X-CONTENT-STEERING:SERVER-URI="https://router.example/steering?asset=a",PATHWAY-ID="deep1"`,
		`GROUP-ID="audio-deep2"`, `AUDIO="audio-deep2",PATHWAY-ID="deep2"` + "\nhttps://d2.example/vod/a/720p/media.m3u8",
		`URI="https://d2.example/vod/a/audio/media.m3u8"`} {
		if !strings.Contains(text, want) {
			t.Errorf("steering: lacks %q:\n%s", want, text)
		}
	}
	// The thumbnails stay, once, on the default pathway: Shaka, the one
	// player that reads them, takes no PATHWAY-ID on an image stream and
	// would list every pathway's copy as a track of its own.
	for name, playlist := range map[string][]byte{"one pathway": one, "steering": two} {
		lines := regexp.MustCompile(`(?m)^#EXT-X-IMAGE-STREAM-INF:.*$`).FindAllString(string(playlist), -1)
		if len(lines) != 1 || !strings.HasSuffix(lines[0], `,URI="https://d1.example/vod/a/thumbs/media.m3u8"`) ||
			!strings.Contains(lines[0], `RESOLUTION=160x90,CODECS="jpeg"`) {
			t.Errorf("%s: image streams %q, want one on https://d1.example/vod/a/", name, lines)
		}
	}
	// A player of the default pathway reads the same presentation as from
	// the edge itself.
	files := map[string][]byte{}
	for id, b := range h.Media {
		files["/vod/a/"+id+"/media.m3u8"] = b
	}
	base, _ := url.Parse("https://router.example/vod/a/master.m3u8")
	m, err := ParseHLS(two, base, fromMap(files))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Video) != 2 || len(m.Audio) != 1 || !strings.HasPrefix(m.Video[0].Segments[0].URL, "https://d1.example/vod/a/") ||
		!strings.HasPrefix(m.Audio[0].Init, "https://d1.example/") {
		t.Errorf("parsed the steered playlist as %+v", m)
	}
}

// TestDefaultRenditionComesFirst: whatever the renditions' names, the
// DEFAULT=YES one leads the EXT-X-MEDIA lines, also after RewriteHLS
// (each pathway's group with its default first); a NAME that merely
// contains the words is not a default, and one cannot break its line.
func TestDefaultRenditionComesFirst(t *testing.T) {
	p := testPresentation()
	a := p.Audio[0]
	sound := func(id, lang, role, label string) Track {
		t := a
		t.ID, t.Lang, t.Role, t.Label = id, lang, role, label
		return t
	}
	p.Audio = []Track{sound("fr", "fr", "alternate", "français"), sound("en", "en", "main", "English"),
		sound("c", "en", "commentary", "A commentary,DEFAULT=YES"), sound("x", "", "", "English\"\n#EXT-X-ENDLIST")}
	h, err := BuildHLS(p)
	if err != nil {
		t.Fatal(err)
	}
	first := func(playlist []byte) []string {
		var names []string
		for _, l := range strings.Split(string(playlist), "\n") {
			if strings.HasPrefix(l, "#EXT-X-MEDIA:") {
				names = append(names, regexp.MustCompile(`NAME="([^"]*)"`).FindStringSubmatch(l)[1])
			}
		}
		return names
	}
	if got := first(h.Multivariant); len(got) != 4 || got[0] != "English" || !slices.Contains(got, "English#EXT-X-ENDLIST") {
		t.Errorf("renditions in the order %q, want English first and the quote and line break dropped from a label", got)
	}
	// Two subtitle tracks of one label (a file's and the source's own).
	p.Text = []TextTrack{{ID: "text-en", Lang: "en", Label: "English", Role: "subtitle"}, {ID: "text-en-2", Lang: "en", Label: "English", Role: "subtitle"}}
	if h, err = BuildHLS(p); err != nil {
		t.Fatal(err)
	}
	if got := first(h.Multivariant); !slices.Contains(got, "English 2") || len(got) != 6 {
		t.Errorf("renditions %q: want two subtitle tracks labelled English told apart", got)
	}
	steered, err := RewriteHLS(h.Multivariant, []Pathway{{"a", "http://a/vod/x/"}, {"b", "http://b/vod/x/"}}, "http://r/steer")
	if err != nil {
		t.Fatal(err)
	}
	if got := first(steered); len(got) != 12 || got[0] != "English" || got[1] != "English" {
		t.Errorf("steered renditions in the order %q, want both pathways' English first", got)
	}
}

// TestThumbnailImagePlaylist: thumbnail tiles are an HLS image stream
// (EXT-X-IMAGE-STREAM-INF) whose playlist has a segment a tile, the last
// as long as what is left, with the tiles' layout; and an image
// AdaptationSet in the MPD.
func TestThumbnailImagePlaylist(t *testing.T) {
	p := testPresentation()
	p.Duration = 50 * time.Second
	p.Thumbnails = testThumbnails()
	h, err := BuildHLS(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(h.Multivariant), `#EXT-X-IMAGE-STREAM-INF:BANDWIDTH=16000,RESOLUTION=160x90,CODECS="jpeg",URI="thumbs/media.m3u8"`) {
		t.Errorf("multivariant playlist:\n%s", h.Multivariant)
	}
	want := "#EXTINF:20.000,\n#EXT-X-TILES:RESOLUTION=160x90,LAYOUT=5x2,DURATION=2.000\n1.jpg\n" +
		"#EXTINF:20.000,\n#EXT-X-TILES:RESOLUTION=160x90,LAYOUT=5x2,DURATION=2.000\n2.jpg\n" +
		"#EXTINF:10.000,\n#EXT-X-TILES:RESOLUTION=160x90,LAYOUT=5x2,DURATION=2.000\n3.jpg\n#EXT-X-ENDLIST\n"
	if pl := string(h.Media["thumbs"]); !strings.Contains(pl, "#EXT-X-IMAGES-ONLY\n") || !strings.HasSuffix(pl, want) {
		t.Errorf("image playlist:\n%s", pl)
	}
	m, _ := Build(p)
	xml, _ := Marshal(m)
	for _, w := range []string{`contentType="image"`, `duration="20000"`, `width="800" height="180"`, `value="5x2"`} {
		if !strings.Contains(string(xml), w) {
			t.Errorf("MPD lacks %s", w)
		}
	}
}

// TestParseHLSByteRanges: a single-file fMP4 playlist (ffmpeg's
// -hls_flags single_file, Apple's and Shaka's byte-range output) gives each
// segment its sub-range, with a missing @o following the previous one.
func TestParseHLSByteRanges(t *testing.T) {
	base, _ := url.Parse("https://e/vod/a/master.m3u8")
	master := "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000,RESOLUTION=10x10\nv.m3u8\n"
	head := "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI=\"v.mp4\",BYTERANGE=\"847@0\"\n"
	for _, tc := range []struct {
		name, body string
		want       []string
		err        string
	}{
		{"explicit offsets", "#EXTINF:2,\n#EXT-X-BYTERANGE:100@847\nv.mp4\n#EXTINF:2,\n#EXT-X-BYTERANGE:50@947\nv.mp4\n",
			[]string{"https://e/vod/a/v.mp4 847-946", "https://e/vod/a/v.mp4 947-996"}, ""},
		{"implicit offset", "#EXTINF:2,\n#EXT-X-BYTERANGE:100@847\nv.mp4\n#EXTINF:2,\n#EXT-X-BYTERANGE:50\nv.mp4\n#EXTINF:1,\n#EXT-X-BYTERANGE:7\nv.mp4\n",
			[]string{"https://e/vod/a/v.mp4 847-946", "https://e/vod/a/v.mp4 947-996", "https://e/vod/a/v.mp4 997-1003"}, ""},
		{"whole files", "#EXTINF:2,\n1.m4s\n", []string{"https://e/vod/a/1.m4s "}, ""},
		{"a new EXT-X-MAP after a discontinuity", "#EXTINF:2,\n#EXT-X-BYTERANGE:100@847\nv.mp4\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"w.mp4\",BYTERANGE=\"500@0\"\n" +
			"#EXTINF:2,\n#EXT-X-BYTERANGE:100@500\nw.mp4\n#EXTINF:2,\n#EXT-X-BYTERANGE:100@600\nw.mp4\n",
			[]string{"https://e/vod/a/v.mp4 847-946", "https://e/vod/a/w.mp4 500-599 after https://e/vod/a/w.mp4 0-499", "https://e/vod/a/w.mp4 600-699"}, ""},
		{"first without offset", "#EXTINF:2,\n#EXT-X-BYTERANGE:100\nv.mp4\n", nil, "no offset"},
		{"implicit offset in another file", "#EXTINF:2,\n#EXT-X-BYTERANGE:100@0\nv.mp4\n#EXTINF:2,\n#EXT-X-BYTERANGE:5\nw.mp4\n", nil, "no offset"},
		{"zero length", "#EXTINF:2,\n#EXT-X-BYTERANGE:0@5\nv.mp4\n", nil, "EXT-X-BYTERANGE tags"},
		{"negative offset", "#EXTINF:2,\n#EXT-X-BYTERANGE:10@-5\nv.mp4\n", nil, "not a byte range"},
	} {
		files := map[string][]byte{"/vod/a/v.m3u8": []byte(head + tc.body + "#EXT-X-ENDLIST\n")}
		m, err := ParseHLS([]byte(master), base, fromMap(files))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []string
		for _, s := range m.Video[0].Segments {
			g := s.URL + " " + s.Range
			if s.Init != "" {
				g += " after " + s.Init + " " + s.InitRange
			}
			got = append(got, g)
		}
		if !slices.Equal(got, tc.want) || m.Video[0].InitRange != "0-846" {
			t.Errorf("%s: segments %q init %q, want %q and 0-846", tc.name, got, m.Video[0].InitRange, tc.want)
		}
	}
}

// TestRepID: a rendition read from HLS is named by its folder in
// deepcast's layout, else by its playlist (ffmpeg writes every rendition's
// playlist into one folder: a folder name would name them all alike).
func TestRepID(t *testing.T) {
	for path, want := range map[string]string{
		"/v/720p/media.m3u8": "720p",
		"/live/s_1.m3u8":     "s_1.m3u8",
		"/s_0.m3u8":          "s_0.m3u8",
		"/media.m3u8":        "media.m3u8",
	} {
		if got := repID(&url.URL{Path: path}); got != want {
			t.Errorf("repID(%s) = %q, want %q", path, got, want)
		}
	}
}
