package media

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestParseProbe(t *testing.T) {
	ok := `{"streams":[{"index":0,"codec_type":"video","codec_name":"h264","width":1280,"height":720,"avg_frame_rate":"30/1","nb_frames":"300"},
	{"index":1,"codec_type":"audio","codec_name":"aac","sample_rate":"48000","channels":2}],"format":{"format_name":"mov,mp4","duration":"10.0","size":"1000"}}`
	p, err := parseProbe([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	eightK := strings.Replace(strings.Replace(ok, `"width":1280`, `"width":7680`, 1), `"height":720`, `"height":4320`, 1)
	if _, err := parseProbe([]byte(eightK)); err != nil {
		t.Errorf("8K source: %v", err)
	}
	if p.Video.Width != 1280 || p.Video.FrameRate.String() != "30" || p.Video.Frames != 300 || p.Audio.SampleRate != 48000 || p.Duration != 10 || p.Video.Duration != 10 {
		t.Errorf("parsed %+v %+v %+v", p, p.Video, p.Audio)
	}
	// A phone's portrait video: stored 1920x1080, shown (and decoded by
	// ffmpeg) a quarter turn round, whichever way ffprobe signs it.
	for _, c := range []struct {
		rotation string
		w, h     int
		turned   int
	}{
		{"90", 1080, 1920, 90}, {"-90", 1080, 1920, 270}, {"270.0", 1080, 1920, 270}, {"180", 1920, 1080, 180},
		{"0", 1920, 1080, 0}, {"45", 1920, 1080, 0}, {"-450", 1080, 1920, 270},
	} {
		rotated := `{"streams":[{"index":0,"codec_type":"video","codec_name":"h264","width":1920,"height":1080,"avg_frame_rate":"30/1",
		"side_data_list":[{"side_data_type":"Display Matrix","displaymatrix":"...","rotation":` + c.rotation + `}]}],"format":{"duration":"10.0"}}`
		p, err := parseProbe([]byte(rotated))
		if err != nil {
			t.Fatalf("rotation %s: %v", c.rotation, err)
		}
		if p.Video.Width != c.w || p.Video.Height != c.h || p.Video.Rotation != c.turned {
			t.Errorf("rotation %s: %dx%d turned %d, want %dx%d turned %d", c.rotation, p.Video.Width, p.Video.Height, p.Video.Rotation, c.w, c.h, c.turned)
		}
	}
	for order, want := range map[string]bool{"tt": true, "bb": true, "tb": true, "bt": true, "progressive": false, "unknown": false, "": false} {
		js := `{"streams":[{"codec_type":"video","width":720,"height":576,"field_order":"` + order + `","avg_frame_rate":"25/1"}],"format":{"duration":"3"}}`
		if p, err := parseProbe([]byte(js)); err != nil || p.Video.Interlaced != want {
			t.Errorf("field order %q: interlaced %v (%v), want %v", order, p != nil && p.Video.Interlaced, err, want)
		}
	}
	hlg := `{"streams":[{"codec_type":"video","width":1920,"height":1080,"avg_frame_rate":"30/1","color_space":"bt2020nc",
	"color_transfer":"arib-std-b67","color_primaries":"bt2020","color_range":"tv"}],"format":{"duration":"3"}}`
	if p, err := parseProbe([]byte(hlg)); err != nil || p.Video.Colour != (Colour{Matrix: "bt2020nc", Transfer: "arib-std-b67", Primaries: "bt2020", Range: "tv"}) || !p.Video.Colour.HDR() {
		t.Errorf("HLG source: %+v (%v)", p.Video, err)
	}
	// Anamorphic pictures are as wide as they are shown, then turned.
	for _, c := range []struct {
		w, h     int
		sar, rot string
		wantW    int
		wantH    int
	}{
		{720, 480, "32:27", "0", 854, 480},
		{1440, 1080, "4:3", "0", 1920, 1080},
		{720, 576, "16:15", "0", 768, 576},
		{720, 480, "32:27", "90", 480, 854},
		{640, 360, "1:1", "0", 640, 360},
		{641, 361, "0:1", "0", 641, 361},
		{640, 360, "N/A", "0", 640, 360},
		{640, 360, "100:1", "0", 640, 360},
		{640, 360, "-4:3", "0", 640, 360},
	} {
		js := fmt.Sprintf(`{"streams":[{"codec_type":"video","width":%d,"height":%d,"sample_aspect_ratio":%q,"avg_frame_rate":"25/1",
		"side_data_list":[{"side_data_type":"Display Matrix","rotation":%s}]}],"format":{"duration":"3"}}`, c.w, c.h, c.sar, c.rot)
		p, err := parseProbe([]byte(js))
		if err != nil {
			t.Fatalf("%dx%d %s: %v", c.w, c.h, c.sar, err)
		}
		if p.Video.Width != c.wantW || p.Video.Height != c.wantH {
			t.Errorf("%dx%d at %s turned %s: shown %dx%d, want %dx%d", c.w, c.h, c.sar, c.rot, p.Video.Width, p.Video.Height, c.wantW, c.wantH)
		}
	}
	bad := []struct{ name, json, want string }{
		{"not json", `{`, "ffprobe output"},
		{"audio only", `{"streams":[{"codec_type":"audio"}],"format":{"duration":"3"}}`, "no video stream"},
		{"no size", `{"streams":[{"codec_type":"video","avg_frame_rate":"25/1"}],"format":{"duration":"3"}}`, "no picture size"},
		{"no rate", `{"streams":[{"codec_type":"video","width":2,"height":2,"avg_frame_rate":"0/0","r_frame_rate":"0/0"}],"format":{"duration":"3"}}`, "frame rate"},
		{"too big", `{"streams":[{"codec_type":"video","width":16384,"height":16384,"avg_frame_rate":"25/1"}],"format":{"duration":"3"}}`, "larger than deepcast encodes from"},
		{"too wide", `{"streams":[{"codec_type":"video","width":8200,"height":100,"avg_frame_rate":"25/1"}],"format":{"duration":"3"}}`, "larger than"},
		{"too many pixels", `{"streams":[{"codec_type":"video","width":8192,"height":8192,"avg_frame_rate":"25/1"}],"format":{"duration":"3"}}`, "larger than"},
		{"no duration", `{"streams":[{"codec_type":"video","width":2,"height":2,"avg_frame_rate":"25/1"}],"format":{}}`, "no duration"},
	}
	for _, b := range bad {
		if _, err := parseProbe([]byte(b.json)); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: error %v, want it to mention %q", b.name, err, b.want)
		}
	}
}

func TestParseRational(t *testing.T) {
	for in, want := range map[string]string{"30/1": "30", "30000/1001": "30000/1001", "50/2": "25", "24": "24"} {
		r, err := ParseRational(in)
		if err != nil || r.String() != want {
			t.Errorf("ParseRational(%q) = %v, %v; want %s", in, r, err, want)
		}
	}
	for _, in := range []string{"", "a/b", "1/0", "-1/2", "3/-4"} {
		if _, err := ParseRational(in); err == nil {
			t.Errorf("ParseRational(%q): want an error", in)
		}
	}
}

func FuzzParseProbe(f *testing.F) {
	f.Add([]byte(`{"streams":[{"codec_type":"video","width":2,"height":2,"avg_frame_rate":"25/1"}],"format":{"duration":"3"}}`))
	f.Add([]byte(`{"streams":[{"codec_type":"video","avg_frame_rate":"1/0","duration":"NaN"}],"format":{"duration":"1e400"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := parseProbe(data)
		if err == nil && (p.Video == nil || p.Duration <= 0 || p.Video.Duration <= 0) {
			t.Fatalf("accepted an unusable probe: %+v", p)
		}
	})
}

func FuzzParseAsset(f *testing.F) {
	f.Add([]byte(`{"format":1,"name":"a","renditions":[{"id":"v","segments":[{"n":1}]}]}`))
	f.Add([]byte(`{"format":1,"name":"..","renditions":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAsset(data)
		if err != nil {
			return
		}
		if !ValidName(a.Name) {
			t.Fatalf("accepted name %q", a.Name)
		}
		for _, r := range a.Renditions {
			if !ValidName(r.ID) {
				t.Fatalf("accepted rendition %q", r.ID)
			}
		}
	})
}

func TestValidName(t *testing.T) {
	good := []string{"a", "clip_1.v2", "A-b.c", strings.Repeat("x", MaxNameLen)}
	bad := []string{"", ".", "..", ".hidden", "a/b", "a\\b", "a b", "ä", "a%2f", strings.Repeat("x", MaxNameLen+1), "a\x00"}
	for _, s := range good {
		if !ValidName(s) {
			t.Errorf("ValidName(%q) = false", s)
		}
	}
	for _, s := range bad {
		if ValidName(s) {
			t.Errorf("ValidName(%q) = true", s)
		}
	}
}

// FuzzValidName holds the hand-written check to its definition.
func FuzzValidName(f *testing.F) {
	re := regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	for _, s := range []string{"a", ".", "..", ".x", "a/b", "ä", strings.Repeat("x", MaxNameLen+1)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := len(s) <= MaxNameLen && re.MatchString(s) && !strings.HasPrefix(s, ".")
		if got := ValidName(s); got != want {
			t.Fatalf("ValidName(%q) = %v, want %v", s, got, want)
		}
	})
}

// TestAudioStreamsAreRead: every audio stream is read with its language,
// title and role; the main one is the stream flagged default, else the
// first that is the programme's sound, never a commentary chosen over it.
func TestAudioStreamsAreRead(t *testing.T) {
	stream := func(i int, lang, title, disposition string) string {
		return fmt.Sprintf(`{"index":%d,"codec_type":"audio","codec_name":"aac","sample_rate":"48000","channels":2,
			"tags":{"language":%q,"title":%q},"disposition":{%s}}`, i, lang, title, disposition)
	}
	for _, c := range []struct {
		name    string
		streams []string
		main    int // index in Audios
		roles   []string
		langs   []string
	}{
		{"one untagged", []string{stream(1, "", "", "")}, 0, []string{"main"}, []string{""}},
		{"default flag wins over order", []string{stream(1, "fre", "", `"default":0`), stream(2, "eng", "", `"default":1`)},
			1, []string{"alternate", "main"}, []string{"fr", "en"}},
		{"no flag: the first that is not a commentary",
			[]string{stream(1, "eng", "Commentary", `"comment":1`), stream(2, "ger", "", ""), stream(3, "und", "", `"visual_impaired":1`)},
			1, []string{"commentary", "main", "description"}, []string{"en", "de", ""}},
		{"a flagged commentary is not the main sound", []string{stream(1, "eng", "", `"default":1,"comment":1`), stream(2, "spa", "", `"dub":1`)},
			1, []string{"commentary", "main"}, []string{"en", "es"}},
		{"only commentaries: the first", []string{stream(1, "xx", "", `"comment":1`), stream(2, "eng", "", `"comment":1`)},
			0, []string{"main", "commentary"}, []string{"", "en"}},
	} {
		js := `{"streams":[{"index":0,"codec_type":"video","width":640,"height":360,"avg_frame_rate":"25/1"},` +
			strings.Join(c.streams, ",") + `],"format":{"duration":"3"}}`
		p, err := parseProbe([]byte(js))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var roles, langs []string
		for _, a := range p.Audios {
			roles, langs = append(roles, a.Role), append(langs, a.Lang)
		}
		if p.Audio != p.Audios[c.main] || !slices.Equal(roles, c.roles) || !slices.Equal(langs, c.langs) {
			t.Errorf("%s: main %+v, roles %v, languages %q; want Audios[%d], %v, %q", c.name, p.Audio, roles, langs, c.main, c.roles, c.langs)
		}
	}
	many := make([]string, 40)
	for i := range many {
		many[i] = stream(i+1, "eng", "", "")
	}
	js := `{"streams":[{"index":0,"codec_type":"video","width":640,"height":360,"avg_frame_rate":"25/1"},` + strings.Join(many, ",") + `],"format":{"duration":"3"}}`
	if p, err := parseProbe([]byte(js)); err != nil || len(p.Audios) != MaxAudioStreams {
		t.Errorf("40 audio streams: %d read (%v), want the first %d", len(p.Audios), err, MaxAudioStreams)
	}
}

func TestLanguageAndTitle(t *testing.T) {
	for in, want := range map[string]string{"eng": "en", "fre": "fr", "fra": "fr", "ger": "de", "chi": "zh", "pt-BR": "pt-BR", "en-us": "en-US",
		"und": "", "": "", "xx": "", "English": "", " spa ": "es", "zxx": "zxx", strings.Repeat("a", 40): ""} {
		if got := LanguageTag(in); got != want {
			t.Errorf("LanguageTag(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"en": "eng", "fr": "fra", "pt-BR": "por", "": "und", "und": "und", "zxx": "zxx"} {
		if got := mdhdLanguage(in); got != want {
			t.Errorf("mdhdLanguage(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"Director's commentary": "Director's commentary", "  two\t\nlines  ": "two lines",
		"a\x00b\u202ec\"d": "abcd", strings.Repeat("é", 100): strings.Repeat("é", maxTitle)} {
		if got := cleanTitle(in); got != want {
			t.Errorf("cleanTitle(%q) = %q, want %q", in, got, want)
		}
	}
	for _, c := range []struct{ lang, title, role, want string }{
		{"en", "", "main", "English"}, {"fr", "", "alternate", "français"}, {"en", "", "commentary", "English (commentary)"},
		{"", "", "description", "Audio 3 (audio description)"}, {"de", "Originalton", "main", "Originalton"},
	} {
		if got := audioLabel(c.lang, c.title, c.role, 3); got != c.want {
			t.Errorf("audioLabel(%q, %q, %q) = %q, want %q", c.lang, c.title, c.role, got, c.want)
		}
	}
	// Untagged sounds are numbered by stream, a 5.1 rendition as its
	// stereo twin, and a sole one not at all.
	one, two := &AudioStream{Index: 1, Role: "main"}, &AudioStream{Index: 2, Role: "alternate"}
	for _, c := range []struct {
		sounds []Sound
		want   []string
	}{
		{[]Sound{{one, false}, {one, true}}, []string{"Audio", "Audio (5.1)"}},
		{[]Sound{{one, false}, {one, true}, {two, false}}, []string{"Audio 1", "Audio 1 (5.1)", "Audio 2"}},
	} {
		for n, s := range c.sounds {
			var out Rendition
			describeAudio(&out, &Track{Channels: map[bool]int{false: 2, true: 6}[s.Surround]}, c.sounds, n)
			if out.Label != c.want[n] {
				t.Errorf("sound %d of %d is labelled %q, want %q", n, len(c.sounds), out.Label, c.want[n])
			}
		}
	}
}

// TestMatroskaStreamDuration: Matroska gives a stream's length only as a
// DURATION tag; the picture's length comes from it, not from the
// container's, which subtitles outlasting the picture make longer.
func TestMatroskaStreamDuration(t *testing.T) {
	for tag, want := range map[string]float64{`"DURATION":"00:00:03.023000000"`: 3.023, `"DURATION-eng":"01:02:03.5"`: 3723.5,
		`"DURATION":"junk"`: 4.5, `"DURATION":"00:61:00.0"`: 4.5, `"title":"x"`: 4.5} {
		js := `{"streams":[{"index":0,"codec_type":"video","width":640,"height":360,"avg_frame_rate":"25/1","tags":{` + tag + `}}],
			"format":{"duration":"4.5"}}`
		p, err := parseProbe([]byte(js))
		if err != nil || p.Video.Duration != want {
			t.Errorf("tags {%s}: picture lasts %v (%v), want %v", tag, p.Video.Duration, err, want)
		}
	}
}

// TestParseSubtitle: the -subtitles flag's forms, and clear refusals.
func TestParseSubtitle(t *testing.T) {
	for in, want := range map[string]Subtitle{
		"film.srt":                    {Path: "film.srt", Role: "subtitle"},
		"en=film.en.srt":              {Path: "film.en.srt", Lang: "en", Role: "subtitle"},
		"fre=a=b.vtt":                 {Path: "a=b.vtt", Lang: "fr", Role: "subtitle"},
		"en+caption=film.sdh.srt":     {Path: "film.sdh.srt", Lang: "en", Role: "caption"},
		"pt-BR+forced-subtitle=f.srt": {Path: "f.srt", Lang: "pt-BR", Role: "forced-subtitle"},
	} {
		if got, err := ParseSubtitle(in); err != nil || got != want {
			t.Errorf("ParseSubtitle(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{"": "no file", "en=": "no file", "English=f.srt": "not a language tag", "en+dub=f.srt": "role"} {
		if _, err := ParseSubtitle(in); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseSubtitle(%q): %v, want an error saying %q", in, err, msg)
		}
	}
}

func FuzzParseSubtitle(f *testing.F) {
	for _, s := range []string{"film.srt", "en=film.srt", "en+caption=x", "=", "+=", "und=x", "x-klingon=y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sub, err := ParseSubtitle(s)
		if err != nil {
			return
		}
		if sub.Path == "" || sub.Lang != LanguageTag(sub.Lang) ||
			!slices.Contains([]string{"subtitle", "caption", "forced-subtitle"}, sub.Role) {
			t.Fatalf("ParseSubtitle(%q) = %+v", s, sub)
		}
	})
}

// TestPlanThumbnails: one thumbnail a segment, 160 pixels on the long
// side, at most 10x10 to a tile; a long film's are spaced out to at most
// maxThumbnails.
func TestPlanThumbnails(t *testing.T) {
	for _, c := range []struct {
		w, h                      int
		duration, seg             float64
		interval                  float64
		tw, th, cols, rows, count int
	}{
		{640, 360, 6, 2, 2, 160, 90, 3, 1, 3},
		{1920, 1080, 24, 2, 2, 160, 90, 10, 2, 12},
		{1080, 1920, 600, 4, 4, 90, 160, 10, 10, 150},
		{720, 480, 10, 2, 2, 160, 106, 5, 1, 5},
		{120, 68, 1, 2, 2, 120, 68, 1, 1, 1},
		{1920, 1080, 4 * 3600, 2, 4, 160, 90, 10, 10, 3600},
		{1920, 1080, 2 * 3600, 2, 2, 160, 90, 10, 10, 3600},
	} {
		got := planThumbnails(c.w, c.h, c.duration, c.seg)
		if got.Interval != c.interval || got.Width != c.tw || got.Height != c.th || got.Columns != c.cols || got.Rows != c.rows || got.Count != c.count {
			t.Errorf("%dx%d, %gs in %gs segments: %+v; want every %gs, %dx%d, %dx%d, %d", c.w, c.h, c.duration, c.seg, got,
				c.interval, c.tw, c.th, c.cols, c.rows, c.count)
		}
	}
}
