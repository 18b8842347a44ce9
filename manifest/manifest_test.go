package manifest

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func testPresentation() Presentation {
	video := func(id string, bw uint32, w, h int) Track {
		return Track{ID: id, Codecs: "avc1.64001f", Bandwidth: bw, Width: w, Height: h, FrameRate: "30", Timescale: 15360,
			Segments: []Span{{0, 30720}, {30720, 30720}, {61440, 15360}}}
	}
	return Presentation{
		Title: "t", Duration: 5 * time.Second, MinBufferTime: 2 * time.Second,
		Video: []Track{video("360p", 800_000, 640, 360), video("720p", 2_800_000, 1280, 720)},
		Audio: []Track{{ID: "audio", Codecs: "mp4a.40.2", Bandwidth: 130_000, SampleRate: 48000, Channels: 2, Timescale: 48000, PTO: 1024,
			Segments: []Span{{0, 97280}, {97280, 96256}, {193536, 48128}}}},
	}
}

func TestBuildThenParse(t *testing.T) {
	m, err := Build(testPresentation())
	if err != nil {
		t.Fatal(err)
	}
	xml, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	s := string(xml)
	for _, want := range []string{`profiles="urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019"`,
		`type="static"`, `duration="30720"`, `<SegmentTimeline>`, `presentationTimeOffset="1024"`, `segmentAlignment="true"`,
		`startWithSAP="1"`, `contentType="video"`, `contentType="audio"`, `codecs="avc1.64001f"`, `mediaPresentationDuration="PT5S"`} {
		if !strings.Contains(s, want) {
			t.Errorf("MPD lacks %s:\n%s", want, s)
		}
	}
	base, _ := url.Parse("http://127.0.0.1:8080/vod/clip/manifest.mpd")
	p, err := Parse(xml, base)
	if err != nil {
		t.Fatal(err)
	}
	if p.Duration != 5*time.Second || len(p.Video) != 2 || len(p.Audio) != 1 {
		t.Fatalf("parsed %+v", p)
	}
	lo := p.Video[0]
	if lo.ID != "360p" || lo.Bandwidth != 800_000 || lo.Init != "http://127.0.0.1:8080/vod/clip/360p/init.mp4" {
		t.Errorf("lowest video %+v", lo)
	}
	if len(lo.Segments) != 3 || lo.Segments[2].URL != "http://127.0.0.1:8080/vod/clip/360p/3.m4s" ||
		lo.Segments[1].Start != 2*time.Second || lo.Segments[2].Duration != time.Second {
		t.Errorf("video segments %+v", lo.Segments)
	}
	au := p.Audio[0]
	if len(au.Segments) != 3 || au.Segments[0].Start != -time.Duration(1024)*time.Second/48000 {
		t.Errorf("audio segments %+v", au.Segments)
	}
	if got := lo.SegmentIndexAt(4500 * time.Millisecond); got != 2 {
		t.Errorf("SegmentIndexAt(4.5s) = %d", got)
	}
}

func TestParseErrors(t *testing.T) {
	wrap := func(inner string) string {
		return `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT4S"><Period>` + inner + `</Period></MPD>`
	}
	tests := []struct {
		name, xml, want string
	}{
		{"not xml", "hello", "mpd"},
		{"dynamic", `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic"><Period/></MPD>`, "only static"},
		{"no period", `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT4S"></MPD>`, "no Period"},
		{"no duration", `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static"><Period/></MPD>`, "duration"},
		{"no video", wrap(``), "no video"},
		{"segment base", wrap(`<AdaptationSet contentType="video"><Representation id="a" bandwidth="1"><SegmentBase indexRange="0-1"/></Representation></AdaptationSet>`), "must be fetched"},
		{"no media", wrap(`<AdaptationSet contentType="video"><SegmentTemplate duration="2"/><Representation id="a" bandwidth="1"/></AdaptationSet>`), "no @media"},
		{"huge count", wrap(`<AdaptationSet contentType="video"><SegmentTemplate media="$Number$" duration="1" timescale="1000000"/><Representation id="a" bandwidth="1"/></AdaptationSet>`), "more than"},
		{"huge repeat", wrap(`<AdaptationSet contentType="video"><SegmentTemplate media="$Number$"><SegmentTimeline><S d="1" r="2000000000"/></SegmentTimeline></SegmentTemplate><Representation id="a" bandwidth="1"/></AdaptationSet>`), "too large"},
		{"bad template", wrap(`<AdaptationSet contentType="video"><SegmentTemplate media="$Nmber$" duration="2"/><Representation id="a" bandwidth="1"/></AdaptationSet>`), "unknown identifier"},
		{"no bandwidth", wrap(`<AdaptationSet contentType="video"><SegmentTemplate media="$Number$" duration="2"/><Representation id="a"/></AdaptationSet>`), "bandwidth"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.xml), nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestExpand(t *testing.T) {
	m, _ := Build(testPresentation())
	rep := m.Periods[0].AdaptationSets[0].Representations[0]
	tests := map[string]string{
		"$RepresentationID$/$Number$.m4s": "720p/7.m4s",
		"seg-$Number%05d$.m4s":            "seg-00007.m4s",
		"$Time$-$Bandwidth$$$":            "99-2800000$",
	}
	for in, want := range tests {
		got, err := expand(in, rep, 7, 99)
		if err != nil || got != want {
			t.Errorf("expand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"$Number", "$Number%5d$", "$Number%0999d$", "$RepresentationID%02d$"} {
		if _, err := expand(bad, rep, 1, 0); err == nil {
			t.Errorf("expand(%q): want an error", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	m, _ := Build(testPresentation())
	xml, _ := Marshal(m)
	f.Add(xml)
	f.Add([]byte(`<MPD type="static" mediaPresentationDuration="PT1S"><Period><AdaptationSet mimeType="video/mp4"><SegmentTemplate media="$Number%03d$" duration="1"/><Representation id="x" bandwidth="5"/></AdaptationSet></Period></MPD>`))
	f.Add([]byte(`<MPD type="static" mediaPresentationDuration="PT3S"><Period duration="PT1S"><AdaptationSet mimeType="video/mp4"><SegmentTemplate media="$Number$" duration="1"/><Representation id="x" bandwidth="5"/></AdaptationSet></Period>` +
		`<Period><AdaptationSet mimeType="video/mp4"><SegmentTemplate media="b$Number$" duration="1"/><Representation id="y" bandwidth="5"/></AdaptationSet><AdaptationSet mimeType="audio/mp4" lang="en"><SegmentTemplate media="a$Number$" duration="1"/><Representation id="a" bandwidth="1"/></AdaptationSet></Period></MPD>`))
	f.Add([]byte(`<MPD type="static" mediaPresentationDuration="PT3S"><Period id="ad" duration="PT1S"><AdaptationSet mimeType="video/mp4"><SegmentTemplate media="$Number$" duration="1"/><Representation id="x" bandwidth="5"/></AdaptationSet></Period>` +
		`<Period><AdaptationSet mimeType="video/mp4"><SegmentTemplate media="b$Number$" duration="1"/><Representation id="y" bandwidth="5"/><Representation id="z" bandwidth="50"/></AdaptationSet></Period></MPD>`))
	base, _ := url.Parse("http://h/a/m.mpd")
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, base)
		if err != nil {
			return
		}
		for _, r := range append(p.Video, p.Audio...) {
			if len(r.Segments) == 0 || len(r.Segments) > MaxSegments {
				t.Fatalf("representation %s with %d segments", r.ID, len(r.Segments))
			}
		}
	})
}

func FuzzExpand(f *testing.F) {
	f.Add("$RepresentationID$/$Number%05d$.m4s")
	m, _ := Build(testPresentation())
	rep := m.Periods[0].AdaptationSets[0].Representations[0]
	f.Fuzz(func(t *testing.T, tpl string) {
		_, _ = expand(tpl, rep, 3, 4)
	})
}

func TestParseSurvivesRawGreaterThan(t *testing.T) {
	// dash-mpd's decoder hangs on these; Parse must answer.
	doc := `<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT2S"><Period>x>y<AdaptationSet mimeType="video/mp4">a>b<SegmentTemplate media="s>$Number$" duration="1"/><Representation id="v" bandwidth="5"/></AdaptationSet></Period></MPD>`
	done := make(chan error, 1)
	go func() {
		_, err := Parse([]byte(doc), nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("valid XML with raw '>' in text: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Parse hung on a raw '>' in character data")
	}
}

func TestRewriteBaseURLsAndSteering(t *testing.T) {
	p := testPresentation()
	p.Audio[0].Lang, p.Audio[0].Role, p.Audio[0].Label = "en", "main", "English"
	p.Text = []TextTrack{{ID: "text-fr", Lang: "fr", Label: "français", Role: "subtitle", Size: 100}}
	m, _ := Build(p)
	xml, _ := Marshal(m)
	out, err := Rewrite(xml, []BaseURL{{URL: "http://127.0.0.1:9101/vod/a/", ServiceLocation: "deep-a"}, {URL: "http://127.0.0.1:9201/vod/a/", ServiceLocation: "home-1"}},
		&Steering{ServerURL: "http://127.0.0.1:8000/steering?asset=a", DefaultServiceLocation: "deep-a", QueryBeforeStart: true})
	if err != nil {
		t.Fatal(err)
	}
	// The sounds' and subtitles' descriptions, and a subtitle track's own
	// (relative) BaseURL, come through.
	for _, want := range []string{`<BaseURL serviceLocation="deep-a">http://127.0.0.1:9101/vod/a/</BaseURL>`, `<ContentSteering defaultServiceLocation="deep-a" queryBeforeStart="true">`,
		`<Role schemeIdUri="urn:mpeg:dash:role:2011" value="main">`, `<Label>English</Label>`, `<BaseURL>text-fr/text.vtt</BaseURL>`, `lang="fr"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("rewritten MPD lacks %s:\n%s", want, out)
		}
	}
	parsed, err := Parse(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := parsed.Video[0].Segments[0].URL; got != "http://127.0.0.1:9101/vod/a/360p/1.m4s" {
		t.Errorf("segments resolve to %s", got)
	}
	if _, err := Rewrite([]byte("abc>"), nil, nil); err == nil {
		t.Error("garbage accepted")
	}
}

// TestBasesStartAtTheSteeringDefault: every MPD-level BaseURL is kept for
// failover, the steering default pathway first, and segments resolve
// against it.
func TestBasesStartAtTheSteeringDefault(t *testing.T) {
	m, _ := Build(testPresentation())
	xml, _ := Marshal(m)
	bases := []BaseURL{{URL: "http://a/vod/a/", ServiceLocation: "a"}, {URL: "http://b/vod/a/", ServiceLocation: "b"}, {URL: "http://c/vod/a/", ServiceLocation: "c"}}
	for _, c := range []struct {
		def  string
		want []string
	}{
		{"b", []string{"http://b/vod/a/", "http://a/vod/a/", "http://c/vod/a/"}},
		{"", []string{"http://a/vod/a/", "http://b/vod/a/", "http://c/vod/a/"}},
		{"nowhere", []string{"http://a/vod/a/", "http://b/vod/a/", "http://c/vod/a/"}},
	} {
		var st *Steering
		if c.def != "" {
			st = &Steering{ServerURL: "http://r/steering", DefaultServiceLocation: c.def}
		}
		out, err := Rewrite(xml, bases, st)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Parse(out, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(p.Bases, c.want) || !strings.HasPrefix(p.Video[0].Segments[0].URL, c.want[0]) {
			t.Errorf("default %q: bases %v, first segment %s", c.def, p.Bases, p.Video[0].Segments[0].URL)
		}
	}
}

// TestAudioSetsByLanguageAndRole: bitrates of one sound share an
// AdaptationSet; each language and role is a set of its own, the main one
// TestSurroundBesideStereo: a 5.1 sound is a set of its own even under
// its stereo twin's label, one a player does not start with (DASH's
// selectionPriority below the default); HLS offers a 5.1 sound only
// where no stereo one has its language and role.
func TestSurroundBesideStereo(t *testing.T) {
	p := testPresentation()
	a := p.Audio[0]
	sound := func(id, lang, role string, channels int, bw uint32) Track {
		t := a
		t.ID, t.Lang, t.Role, t.Label, t.Channels, t.Bandwidth = id, lang, role, lang, channels, bw
		return t
	}
	p.Audio = []Track{sound("en", "en", "main", 2, 130_000), sound("en-51", "en", "main", 6, 390_000), sound("fr-51", "fr", "alternate", 6, 390_000)}
	var sets [][]string
	for _, g := range AudioGroups(p.Audio) {
		var ids []string
		for _, t := range g {
			ids = append(ids, t.ID)
		}
		sets = append(sets, ids)
	}
	if want := [][]string{{"en"}, {"en-51"}, {"fr-51"}}; !slices.EqualFunc(sets, want, slices.Equal) {
		t.Fatalf("audio sets %v, want %v", sets, want)
	}
	m, err := Build(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, as := range m.Periods[0].AdaptationSets {
		if as.ContentType != "audio" {
			continue
		}
		surround := as.Representations[0].Id != "en"
		if got := as.SelectionPriority != nil && *as.SelectionPriority == 0; got != surround {
			t.Errorf("set of %s: selectionPriority %v", as.Representations[0].Id, as.SelectionPriority)
		}
	}
	h, err := BuildHLS(p)
	if err != nil {
		t.Fatal(err)
	}
	mv := string(h.Multivariant)
	if strings.Contains(mv, "en-51/") || !strings.Contains(mv, `URI="fr-51/media.m3u8"`) || !strings.Contains(mv, `CHANNELS="6"`) {
		t.Errorf("HLS sounds, want en in stereo and fr in 5.1:\n%s", mv)
	}
	// Every variant's BANDWIDTH counts the largest sound it offers.
	if !strings.Contains(mv, "BANDWIDTH=1190000,") {
		t.Errorf("variant bandwidths without the 5.1 sound's:\n%s", mv)
	}
}

// first, which the parser finds again as the sound to start with.
func TestAudioSetsByLanguageAndRole(t *testing.T) {
	p := testPresentation()
	a := p.Audio[0]
	sound := func(id, lang, role, label string, bw uint32) Track {
		t := a
		t.ID, t.Lang, t.Role, t.Label, t.Bandwidth = id, lang, role, label, bw
		return t
	}
	p.Audio = []Track{sound("de-128", "de", "alternate", "Deutsch", 130_000), sound("en-64", "en", "main", "English", 66_000),
		sound("en-c", "en", "commentary", "Commentary", 66_000), sound("en-128", "en", "main", "English", 130_000)}
	groups := AudioGroups(p.Audio)
	var ids [][]string
	for _, g := range groups {
		var s []string
		for _, t := range g {
			s = append(s, t.ID)
		}
		ids = append(ids, s)
	}
	if want := [][]string{{"en-64", "en-128"}, {"de-128"}, {"en-c"}}; !slices.EqualFunc(ids, want, slices.Equal) {
		t.Fatalf("audio sets %v, want %v", ids, want)
	}
	m, err := Build(p)
	if err != nil {
		t.Fatal(err)
	}
	xml, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse("http://127.0.0.1:8080/vod/clip/manifest.mpd")
	parsed, err := Parse(xml, base)
	if err != nil {
		t.Fatal(err)
	}
	main := parsed.MainAudio()
	if len(parsed.Audio) != 4 || len(main) != 2 || main[0].ID != "en-64" || main[1].ID != "en-128" || main[0].Lang != "en" || main[0].Role != "main" {
		t.Errorf("main sound %+v of %d audio Representations", main, len(parsed.Audio))
	}
	// Without roles, the first audio AdaptationSet is the main sound.
	for i := range p.Audio {
		p.Audio[i].Role = ""
	}
	m, _ = Build(p)
	xml, _ = Marshal(m)
	parsed, err = Parse(xml, base)
	if err != nil {
		t.Fatal(err)
	}
	if main := parsed.MainAudio(); len(main) != 1 || main[0].ID != "de-128" {
		t.Errorf("without roles the main sound is %+v, want de-128 (first set)", main)
	}
}
