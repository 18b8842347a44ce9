package manifest

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestParseMultiPeriod: Periods of one ladder play as one presentation,
// each placed where its @start (or the one before it) says; a sound that
// does not continue ends with its Period; a ladder that changes is refused.
func TestParseMultiPeriod(t *testing.T) {
	base, _ := url.Parse("http://h/a/m.mpd")
	video := func(ids ...string) string {
		s := `<AdaptationSet contentType="video" mimeType="video/mp4" codecs="avc1.64001f"><SegmentTemplate initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number$.m4s" duration="2" startNumber="1"/>`
		for i, id := range ids {
			s += `<Representation id="` + id + `" bandwidth="` + []string{"1000", "2000", "3000"}[i] + `"/>`
		}
		return s + `</AdaptationSet>`
	}
	sound := func(lang, id string) string {
		return `<AdaptationSet contentType="audio" mimeType="audio/mp4" lang="` + lang + `"><SegmentTemplate media="` + id + `/$Number$.m4s" duration="2"/><Representation id="` + id + `" bandwidth="128000"/></AdaptationSet>`
	}
	doc := `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT10S">` +
		`<Period id="p1" duration="PT4S"><BaseURL>one/</BaseURL>` + video("lo", "hi") + sound("en", "en1") + sound("fr", "fr1") + `</Period>` +
		`<Period id="p2"><BaseURL>two/</BaseURL>` + video("lo2", "hi2") + sound("en", "en2") + `</Period></MPD>`
	m, err := Parse([]byte(doc), base)
	if err != nil {
		t.Fatal(err)
	}
	if m.Duration != 10*time.Second || len(m.Video) != 2 {
		t.Fatalf("duration %v, %d video renditions", m.Duration, len(m.Video))
	}
	hi := m.Video[1]
	var got []string
	for _, s := range hi.Segments {
		got = append(got, strings.TrimSpace(s.Start.String()+" "+s.URL+" "+s.Init))
	}
	// The second Period's first segment names the initialization segment
	// it and those after it need.
	want := []string{"0s http://h/a/one/hi/1.m4s", "2s http://h/a/one/hi/2.m4s",
		"4s http://h/a/two/hi2/1.m4s http://h/a/two/hi2/init.mp4", "6s http://h/a/two/hi2/2.m4s", "8s http://h/a/two/hi2/3.m4s"}
	if hi.Init != "http://h/a/one/hi/init.mp4" {
		t.Errorf("%s starts with initialization segment %q", hi.ID, hi.Init)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("segments of %s:\n%s\nwant\n%s", hi.ID, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(m.Audio) != 1 || m.Audio[0].Lang != "en" || len(m.Audio[0].Segments) != 5 {
		t.Errorf("sound %+v, want English alone, in 5 segments", m.Audio)
	}

	// A replay of the same files needs no other initialization segment.
	replay := `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT8S">` +
		`<Period duration="PT4S">` + video("lo") + `</Period><Period>` + video("lo") + `</Period></MPD>`
	if m, err := Parse([]byte(replay), base); err != nil || m.Video[0].Segments[2].Init != "" {
		t.Errorf("replayed period: %v, third segment needs %q", err, m.Video[0].Segments[2].Init)
	}

	for _, tc := range []struct{ name, doc, want string }{
		{"a ladder that changes", `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT10S">` +
			`<Period duration="PT4S">` + video("lo", "hi") + `</Period><Period>` + video("ad") + `</Period></MPD>`, "ladder that changes"},
		{"a period with no end", `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT10S">` +
			`<Period>` + video("lo") + `</Period><Period>` + video("lo") + `</Period></MPD>`, "period 1 has no positive duration"},
		{"a period without video", `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT10S">` +
			`<Period duration="PT4S">` + video("lo") + `</Period><Period>` + sound("en", "e") + `</Period></MPD>`, "period 2: no video"},
	} {
		if _, err := Parse([]byte(tc.doc), base); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
