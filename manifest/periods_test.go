package manifest

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestParseMultiPeriod: Periods of one ladder play as one presentation,
// each placed where its @start (or the one before it) says; a sound that
// does not continue ends with its Period; a ladder that changes is
// followed by bandwidth.
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

	// A Period whose ladder differs (an advertisement not conditioned to
	// the programme's): each rendition goes on in its rendition of the
	// nearest bandwidth, and back in the programme's after it.
	ladder := func(bandwidths ...int) string {
		s := `<AdaptationSet contentType="video" mimeType="video/mp4"><SegmentTemplate initialization="$RepresentationID$/init.mp4" media="$RepresentationID$/$Number$.m4s" duration="2" startNumber="1"/>`
		for _, bw := range bandwidths {
			s += `<Representation id="` + strconv.Itoa(bw) + `" bandwidth="` + strconv.Itoa(bw) + `"/>`
		}
		return s + `</AdaptationSet>`
	}
	for _, tc := range []struct {
		name string
		ad   []int
		want []string // the ad Period's rendition each of 300k, 900k and 3000k goes on in
	}{
		{"one rendition", []int{500_000}, []string{"500000", "500000", "500000"}},
		{"two", []int{400_000, 2_500_000}, []string{"400000", "400000", "2500000"}},
		// 1000k is nearer 900k by ratio than 700k is.
		{"four", []int{250_000, 700_000, 1_000_000, 4_000_000}, []string{"250000", "1000000", "4000000"}},
	} {
		doc := `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT12S">` +
			`<Period duration="PT4S">` + ladder(300_000, 900_000, 3_000_000) + `</Period>` +
			`<Period id="ad" duration="PT4S"><BaseURL>ad/</BaseURL>` + ladder(tc.ad...) + `</Period>` +
			`<Period>` + ladder(300_000, 900_000, 3_000_000) + `</Period></MPD>`
		m, err := Parse([]byte(doc), base)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		for q, r := range m.Video {
			var got []string
			for _, s := range r.Segments {
				got = append(got, strings.TrimSuffix(strings.TrimPrefix(s.URL, "http://h/a/"), ".m4s"))
			}
			id := []string{"300000", "900000", "3000000"}[q]
			want := []string{id + "/1", id + "/2", "ad/" + tc.want[q] + "/1", "ad/" + tc.want[q] + "/2", id + "/1", id + "/2"}
			if !slices.Equal(got, want) || r.Segments[2].Init != "http://h/a/ad/"+tc.want[q]+"/init.mp4" || r.Segments[4].Init != "http://h/a/"+id+"/init.mp4" {
				t.Errorf("%s: rendition %s plays %q (initialized by %q, %q), want %q", tc.name, r.ID, got, r.Segments[2].Init, r.Segments[4].Init, want)
			}
		}
		if len(m.Remapped) != 3 || m.Remapped[0] != (Remap{Period: 2, PeriodID: "ad", From: "300000", To: tc.want[0]}) {
			t.Errorf("%s: remapped %+v", tc.name, m.Remapped)
		}
	}

	// A pre-roll advertisement of one rendition before a programme of
	// three: the presentation plays with the programme's ladder (its
	// Periods last longest), the advertisement standing in for it.
	preroll := `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT12S">` +
		`<Period id="ad" duration="PT4S"><BaseURL>ad/</BaseURL>` + ladder(500_000) + `</Period>` +
		`<Period id="programme">` + ladder(300_000, 900_000, 3_000_000) + `</Period></MPD>`
	if m, err := Parse([]byte(preroll), base); err != nil || len(m.Video) != 3 || m.Video[2].ID != "3000000" || m.Video[2].Bandwidth != 3_000_000 ||
		m.Video[2].Init != "http://h/a/ad/500000/init.mp4" || m.Video[2].Segments[0].URL != "http://h/a/ad/500000/1.m4s" ||
		m.Video[2].Segments[2].Init != "http://h/a/3000000/init.mp4" || m.Video[2].Segments[2].Start != 4*time.Second || len(m.Remapped) != 3 {
		t.Errorf("pre-roll: %v, %+v", err, m)
	}

	for _, tc := range []struct{ name, doc, want string }{
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
