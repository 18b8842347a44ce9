package manifest

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// livePlaylist is a live media playlist of n 2 s segments from media
// sequence number seq, named prefix+number.
func livePlaylist(prefix string, seq, n int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:%d\n#EXT-X-MAP:URI=\"init_%s.mp4\"\n", seq, prefix)
	for k := range n {
		fmt.Fprintf(&b, "#EXTINF:2.000,\n%s%d.m4s\n", prefix, seq+k)
	}
	return []byte(b.String())
}

// TestParseHLSLive: live media playlists are aligned by media sequence
// number and joined three target durations behind the end of the lowest
// rendition's; the segments after the last listed have no URL yet and are
// predicted; a reload resumes on the timeline of the first.
func TestParseHLSLive(t *testing.T) {
	base, _ := url.Parse("http://h/live/master.m3u8")
	master := []byte("#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",DEFAULT=YES,URI=\"a.m3u8\"\n" +
		"#EXT-X-STREAM-INF:BANDWIDTH=300000,AUDIO=\"a\"\nlo.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=900000,AUDIO=\"a\"\nhi.m3u8\n")
	files := map[string][]byte{
		"/live/lo.m3u8": livePlaylist("lo", 100, 10), // 100..109, 20 s
		"/live/hi.m3u8": livePlaylist("hi", 101, 9),  // one fewer at the start
		"/live/a.m3u8":  livePlaylist("a", 99, 11),   // one more
	}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	m, err := ParseHLSLive(master, base, fromMap(files), LiveJoin{Now: now, Length: 8 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	names := func(r *Representation) (out []string) {
		for _, s := range r.Segments {
			name := strings.TrimPrefix(s.URL, "http://h/live/")
			if s.Predicted {
				name = fmt.Sprintf("(%d)", s.Number)
			}
			out = append(out, fmt.Sprintf("%s@%v", name, s.Start.Seconds()))
		}
		return out
	}
	// The edge is 20 s into lo's playlist; 6 s behind: 14 s, segment 107.
	want := []string{"lo107.m4s@14", "lo108.m4s@16", "lo109.m4s@18", "(110)@20", "(111)@22"}
	if got := names(m.Video[0]); !slices.Equal(got, want) {
		t.Errorf("lo: %q, want %q", got, want)
	}
	if got := names(m.Video[1]); !slices.Equal(got, []string{"hi107.m4s@14", "hi108.m4s@16", "hi109.m4s@18", "(110)@20", "(111)@22"}) {
		t.Errorf("hi: %q", got)
	}
	if got := names(m.Audio[0]); !slices.Equal(got, []string{"a107.m4s@14", "a108.m4s@16", "a109.m4s@18", "(110)@20", "(111)@22"}) {
		t.Errorf("audio: %q", got)
	}
	if m.Live == nil || !m.Live.Epoch.Equal(now.Add(-20*time.Second)) || m.Video[0].Init != "http://h/live/init_lo.mp4" {
		t.Errorf("live %+v, init %q", m.Live, m.Video[0].Init)
	}

	// Four seconds later the playlists have slid on by two segments.
	files["/live/lo.m3u8"] = livePlaylist("lo", 102, 10)
	files["/live/hi.m3u8"] = livePlaylist("hi", 102, 10)
	files["/live/a.m3u8"] = livePlaylist("a", 102, 10)
	later, err := ParseHLSLive(master, base, fromMap(files), LiveJoin{Now: now.Add(4 * time.Second), Length: 4 * time.Second,
		Resume: true, At: 20 * time.Second, MinSegments: 2, AnchorNumber: 109, AnchorStart: 18 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(later.Video[0]); !slices.Equal(got, []string{"lo110.m4s@20", "lo111.m4s@22", "(112)@24"}) {
		t.Errorf("resumed lo: %q", got)
	}
	// Resumed past what is listed: predicted from the last listed on.
	ahead, err := ParseHLSLive(master, base, fromMap(files), LiveJoin{Now: now.Add(4 * time.Second), Length: 4 * time.Second,
		Resume: true, At: 30 * time.Second, AnchorNumber: 109, AnchorStart: 18 * time.Second})
	if err != nil || !slices.Equal(names(ahead.Video[0]), []string{"(115)@30", "(116)@32", "(117)@34"}) {
		t.Errorf("resumed ahead: %v %q", err, names(ahead.Video[0]))
	}
	// A player reloads only the playlist of the rendition it plays: laid
	// out on the same timeline, live or ended.
	lo, _ := url.Parse("http://h/live/lo.m3u8")
	reload := LiveJoin{Now: now.Add(4 * time.Second), Length: 4 * time.Second, Resume: true, At: 20 * time.Second, MinSegments: 2, AnchorNumber: 109, AnchorStart: 18 * time.Second}
	for _, c := range []struct {
		playlist []byte
		want     []string
		ended    bool
	}{
		{files["/live/lo.m3u8"], []string{"lo110.m4s@20", "lo111.m4s@22", "(112)@24"}, false},
		{append(slices.Clone(files["/live/lo.m3u8"]), "#EXT-X-ENDLIST\n"...), []string{"lo110.m4s@20", "lo111.m4s@22"}, true},
	} {
		segs, ended, err := ReloadHLSMedia(c.playlist, lo, reload)
		if got := names(&Representation{Segments: segs}); err != nil || ended != c.ended || !slices.Equal(got, c.want) {
			t.Errorf("reload of lo: %v, ended %v, %q; want %q, ended %v", err, ended, got, c.want, c.ended)
		}
	}
	// The first segment of a reload names the initialization segment it
	// needs: the playlist's, or the EXT-X-MAP after a discontinuity before
	// it (an inserted advertisement's), even when that is not in the
	// window.
	spliced := strings.Replace(string(files["/live/lo.m3u8"]), "#EXTINF:2.000,\nlo106.m4s", "#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init_ad.mp4\"\n#EXTINF:2.000,\nlo106.m4s", 1)
	for playlist, want := range map[string]string{string(files["/live/lo.m3u8"]): "http://h/live/init_lo.mp4", spliced: "http://h/live/init_ad.mp4"} {
		segs, _, err := ReloadHLSMedia([]byte(playlist), lo, reload)
		if err != nil || len(segs) == 0 || segs[0].Init != want || slices.ContainsFunc(segs[1:], func(s Segment) bool { return s.Init != "" }) {
			t.Errorf("reload: %v, %+v; want the first to name %s", err, segs, want)
		}
	}
	gone := reload
	gone.AnchorNumber = 50
	if _, _, err := ReloadHLSMedia(files["/live/lo.m3u8"], lo, gone); err == nil || !strings.Contains(err.Error(), "not in the playlist") {
		t.Errorf("reload without the anchor: %v", err)
	}
	// A playlist written a moment after the others: its last segment is
	// the one before the anchor, and ends where the anchor starts.
	behind := reload
	behind.AnchorNumber, behind.AnchorStart = 112, 24*time.Second
	if segs, _, err := ReloadHLSMedia(files["/live/lo.m3u8"], lo, behind); err != nil || len(segs) == 0 || segs[0].Start != 20*time.Second || segs[0].Number != 110 {
		t.Errorf("reload of a playlist one segment behind the anchor: %v, %q", err, names(&Representation{Segments: segs}))
	}

	// The stream ended: the playlists gained EXT-X-ENDLIST. A reload lays
	// out what is left, none predicted; none when the player is past it.
	ended := map[string][]byte{}
	for name, pl := range files {
		ended[name] = append(slices.Clone(pl), "#EXT-X-ENDLIST\n"...)
	}
	for _, c := range []struct {
		at   time.Duration
		want []string
	}{
		{20 * time.Second, []string{"lo110.m4s@20", "lo111.m4s@22"}},
		{24 * time.Second, nil},
	} {
		rest, err := ParseHLSLive(master, base, fromMap(ended), LiveJoin{Now: now.Add(8 * time.Second), Length: 6 * time.Second,
			Resume: true, At: c.at, MinSegments: 3, AnchorNumber: 109, AnchorStart: 18 * time.Second})
		if err != nil || rest.Live == nil || !rest.Live.Ended || !slices.Equal(names(rest.Video[0]), c.want) || len(rest.Audio[0].Segments) != len(c.want) {
			t.Errorf("resumed at %v on ended playlists: %v, live %+v, %q, want %q", c.at, err, rest.Live, names(rest.Video[0]), c.want)
		}
	}

	for _, tc := range []struct {
		name  string
		files map[string][]byte
		join  LiveJoin
		want  string
	}{
		{"no shared media sequence", map[string][]byte{"/live/lo.m3u8": livePlaylist("lo", 100, 3), "/live/hi.m3u8": livePlaylist("hi", 200, 3), "/live/a.m3u8": livePlaylist("a", 100, 3)},
			LiveJoin{Now: now, Length: time.Second}, "share no media sequence number"},
		{"an anchor gone", files, LiveJoin{Now: now, Length: time.Second, Resume: true, AnchorNumber: 5}, "not in the playlist"},
		{"no length", files, LiveJoin{Now: now}, "live length"},
	} {
		if _, err := ParseHLSLive(master, base, fromMap(tc.files), tc.join); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
	// ParseHLS (for simulation) refuses a live playlist and says how to play it.
	if _, err := ParseHLS(master, base, fromMap(files)); err == nil || !strings.Contains(err.Error(), "-duration") {
		t.Errorf("ParseHLS of a live playlist: %v", err)
	}
}

// FuzzParseHLSLive: any live media playlist, joined or resumed anywhere,
// gives an error or a window of segments in order.
func FuzzParseHLSLive(f *testing.F) {
	f.Add(livePlaylist("v", 100, 5), int64(0), false, 0)
	f.Add(livePlaylist("v", 7, 2), int64(40_000), true, 8)
	f.Add([]byte("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:0.5,\na\n#EXTINF:3,\nb\n"), int64(1_000), true, 1)
	f.Add(append(livePlaylist("v", 7, 2), "#EXT-X-ENDLIST\n"...), int64(2_000), true, 8)
	base, _ := url.Parse("http://h/live/master.m3u8")
	master := []byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n")
	f.Fuzz(func(t *testing.T, media []byte, atMs int64, resume bool, anchor int) {
		join := LiveJoin{Now: time.Unix(1e9, 0), Length: 10 * time.Second, Resume: resume, At: time.Duration(atMs) * time.Millisecond,
			AnchorNumber: anchor, MinSegments: 3}
		m, err := ParseHLSLive(master, base, func(*url.URL) ([]byte, error) { return media, nil }, join)
		if err != nil {
			return
		}
		segs := m.Video[0].Segments
		if len(segs) == 0 && (m.Live == nil || !m.Live.Ended) || len(segs) > MaxSegments {
			t.Fatalf("%d segments", len(segs))
		}
		for k := 1; k < len(segs); k++ {
			if segs[k].Start < segs[k-1].Start || segs[k].Number != segs[k-1].Number+1 {
				t.Fatalf("segment %d (%d at %v) after %d at %v", k, segs[k].Number, segs[k].Start, segs[k-1].Number, segs[k-1].Start)
			}
		}
	})
}

// FuzzReloadHLSMedia: any media playlist, reloaded at any point and
// anchor, gives an error or segments in order, consecutively numbered.
func FuzzReloadHLSMedia(f *testing.F) {
	f.Add(livePlaylist("v", 100, 5), int64(4_000), 102, int64(4_000))
	f.Add(append(livePlaylist("v", 7, 2), "#EXT-X-ENDLIST\n"...), int64(2_000), 8, int64(0))
	f.Add([]byte("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:3\n#EXTINF:0.5,\na\n#EXTINF:3,\nb\n"), int64(1_000), 4, int64(-5_000))
	u, _ := url.Parse("http://h/live/v.m3u8")
	f.Fuzz(func(t *testing.T, media []byte, atMs int64, anchor int, anchorMs int64) {
		join := LiveJoin{Now: time.Unix(1e9, 0), Length: 10 * time.Second, Resume: true, At: time.Duration(atMs) * time.Millisecond,
			AnchorNumber: anchor, AnchorStart: time.Duration(anchorMs) * time.Millisecond, MinSegments: 3}
		segs, ended, err := ReloadHLSMedia(media, u, join)
		if err != nil {
			return
		}
		if len(segs) == 0 && !ended || len(segs) > MaxSegments {
			t.Fatalf("%d segments (ended %v)", len(segs), ended)
		}
		for k := 1; k < len(segs); k++ {
			if segs[k].Start < segs[k-1].Start || segs[k].Number != segs[k-1].Number+1 {
				t.Fatalf("segment %d (%d at %v) after %d at %v", k, segs[k].Number, segs[k].Start, segs[k-1].Number, segs[k-1].Start)
			}
		}
	})
}
