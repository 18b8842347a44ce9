package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

// wrapMPD puts Period content into a static 6 s MPD.
func wrapMPD(period string) []byte {
	return []byte(`<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT6S"><Period>` + period + `</Period></MPD>`)
}

// segmentSummary lists a Representation's segments as "number@start+duration url range".
func segmentSummary(r *Representation) []string {
	var out []string
	for _, s := range r.Segments {
		out = append(out, fmt.Sprintf("%d@%v+%v %s %s", s.Number, s.Start, s.Duration, s.URL, s.Range))
	}
	return out
}

func TestParseAddressing(t *testing.T) {
	base, _ := url.Parse("http://h/a/m.mpd")
	tests := []struct {
		name, period    string
		init, initRange string
		segments        []string
	}{
		{
			// ffmpeg -f dash -single_file 1 -use_template 0 writes this.
			name: "segment list of ranges in one file",
			period: `<AdaptationSet contentType="video"><Representation id="0" mimeType="video/mp4" bandwidth="300000"><BaseURL>s0.mp4</BaseURL>
				<SegmentList timescale="1000000" duration="2000000" startNumber="1"><Initialization range="0-834"/>
				<SegmentURL mediaRange="835-61577" indexRange="835-886"/><SegmentURL mediaRange="61578-143385"/><SegmentURL mediaRange="143386-216055"/>
				</SegmentList></Representation></AdaptationSet>`,
			init: "http://h/a/s0.mp4", initRange: "0-834",
			segments: []string{"1@0s+2s http://h/a/s0.mp4 835-61577", "2@2s+2s http://h/a/s0.mp4 61578-143385", "3@4s+2s http://h/a/s0.mp4 143386-216055"},
		},
		{
			name: "segment list of files",
			period: `<AdaptationSet contentType="video"><Representation id="0" mimeType="video/mp4" bandwidth="300000">
				<SegmentList timescale="1000" duration="3000" startNumber="5"><Initialization sourceURL="init-0.m4s"/>
				<SegmentURL media="chunk-0-5.m4s"/><SegmentURL media="chunk-0-6.m4s"/></SegmentList></Representation></AdaptationSet>`,
			init:     "http://h/a/init-0.m4s",
			segments: []string{"5@0s+3s http://h/a/chunk-0-5.m4s ", "6@3s+3s http://h/a/chunk-0-6.m4s "},
		},
		{
			name: "a one-byte range at the start",
			period: `<AdaptationSet contentType="video"><Representation id="0" mimeType="video/mp4" bandwidth="3"><BaseURL>s.mp4</BaseURL>
				<SegmentList duration="3"><SegmentURL mediaRange="0-0"/><SegmentURL mediaRange="1-9"/></SegmentList></Representation></AdaptationSet>`,
			segments: []string{"1@0s+3s http://h/a/s.mp4 0-0", "2@3s+3s http://h/a/s.mp4 1-9"},
		},
		{
			name: "segment list on a timeline",
			period: `<AdaptationSet contentType="video"><Representation id="0" mimeType="video/mp4" bandwidth="300000">
				<SegmentList timescale="10"><SegmentTimeline><S t="0" d="40"/><S d="20"/></SegmentTimeline>
				<SegmentURL media="a.m4s"/><SegmentURL media="b.m4s"/></SegmentList></Representation></AdaptationSet>`,
			segments: []string{"1@0s+4s http://h/a/a.m4s ", "2@4s+2s http://h/a/b.m4s "},
		},
		{
			// The AdaptationSet names the template, each Representation its
			// own timeline (ISO/IEC 23009-1 §5.3.9.1 inheritance).
			name: "template inherited from the adaptation set",
			period: `<AdaptationSet contentType="video"><SegmentTemplate timescale="1000" media="$RepresentationID$/$Time$.m4s" initialization="$RepresentationID$/init.mp4" startNumber="0"/>
				<Representation id="v1" mimeType="video/mp4" bandwidth="300000"><SegmentTemplate><SegmentTimeline><S t="0" d="4000" r="1"/></SegmentTimeline></SegmentTemplate></Representation></AdaptationSet>`,
			init:     "http://h/a/v1/init.mp4",
			segments: []string{"0@0s+4s http://h/a/v1/0.m4s ", "1@4s+4s http://h/a/v1/4000.m4s "},
		},
		{
			name: "template from the period, start number from the adaptation set",
			period: `<SegmentTemplate timescale="1" duration="2" media="$RepresentationID$-$Number$.m4s"/>
				<AdaptationSet contentType="video"><SegmentTemplate startNumber="10"/><Representation id="v" mimeType="video/mp4" bandwidth="1"/></AdaptationSet>`,
			segments: []string{"10@0s+2s http://h/a/v-10.m4s ", "11@2s+2s http://h/a/v-11.m4s ", "12@4s+2s http://h/a/v-12.m4s "},
		},
		{
			name: "end number",
			period: `<AdaptationSet contentType="video"><SegmentTemplate duration="2" media="$Number$.m4s" startNumber="1" endNumber="2"/>
				<Representation id="v" mimeType="video/mp4" bandwidth="1"/></AdaptationSet>`,
			segments: []string{"1@0s+2s http://h/a/1.m4s ", "2@2s+2s http://h/a/2.m4s "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse(wrapMPD(tt.period), base)
			if err != nil {
				t.Fatal(err)
			}
			r := m.Video[0]
			if r.Init != tt.init || r.InitRange != tt.initRange {
				t.Errorf("init %q range %q, want %q %q", r.Init, r.InitRange, tt.init, tt.initRange)
			}
			if got := segmentSummary(r); strings.Join(got, "\n") != strings.Join(tt.segments, "\n") {
				t.Errorf("segments\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.segments, "\n"))
			}
		})
	}
}

// onDemandFile lays out an on-demand profile file: initBytes of movie
// header, a styp, a sidx indexing the given subsegment sizes of durs
// ticks each at timescale 90000 (from ept), then the subsegments.
func onDemandFile(t testing.TB, initBytes int, sizes []uint32, durs []uint32, ept uint64, hierarchical bool) (file []byte, indexRange string) {
	t.Helper()
	var buf bytes.Buffer
	buf.Write(make([]byte, initBytes))
	start := buf.Len()
	styp := mp4.NewStyp("msdh", 0, []string{"msdh", "msix"})
	if err := styp.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	sidx := &mp4.SidxBox{Version: 1, ReferenceID: 1, Timescale: 90000, EarliestPresentationTime: ept}
	for i, n := range sizes {
		ref := mp4.SidxRef{ReferencedSize: n, SubSegmentDuration: durs[i], StartsWithSAP: 1, SAPType: 1}
		if hierarchical && i == 0 {
			ref.ReferenceType = 1
		}
		sidx.SidxRefs = append(sidx.SidxRefs, ref)
	}
	if err := sidx.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	indexRange = fmt.Sprintf("%d-%d", start, buf.Len()-1)
	for _, n := range sizes {
		buf.Write(bytes.Repeat([]byte{'m'}, int(n)))
	}
	return buf.Bytes(), indexRange
}

// rangeReader serves byte ranges of named files, counting the reads.
func rangeReader(files map[string][]byte, reads *int) IndexFetcher {
	return func(u *url.URL, first, last int64) ([]byte, error) {
		*reads++
		f, ok := files[u.String()]
		if !ok {
			return nil, errors.New("404 Not Found")
		}
		if last >= int64(len(f)) {
			return nil, errors.New("416 Range Not Satisfiable")
		}
		return f[first : last+1], nil
	}
}

func TestParseSegmentBase(t *testing.T) {
	base, _ := url.Parse("http://h/a/m.mpd")
	file, ir := onDemandFile(t, 900, []uint32{1000, 2000, 500}, []uint32{180000, 180000, 90000}, 9000, false)
	reads := 0
	fetch := rangeReader(map[string][]byte{"http://h/a/v.mp4": file}, &reads)
	doc := func(segmentBase string) []byte {
		return wrapMPD(`<AdaptationSet contentType="video"><Representation id="v" mimeType="video/mp4" bandwidth="1000000"><BaseURL>v.mp4</BaseURL>` +
			segmentBase + `</Representation></AdaptationSet>`)
	}
	// The subsegments follow the index: 900 bytes of header, the styp,
	// the sidx (ir ends at its last byte).
	first, _ := parseRange(ir)
	after := first.last + 1
	want := []string{
		fmt.Sprintf("1@0s+2s http://h/a/v.mp4 %d-%d", after, after+999),
		fmt.Sprintf("2@2s+2s http://h/a/v.mp4 %d-%d", after+1000, after+2999),
		fmt.Sprintf("3@4s+1s http://h/a/v.mp4 %d-%d", after+3000, after+3499),
	}
	m, err := ParseIndexed(doc(`<SegmentBase timescale="90000" presentationTimeOffset="9000" indexRange="`+ir+`"><Initialization range="0-899"/></SegmentBase>`), base, fetch)
	if err != nil {
		t.Fatal(err)
	}
	r := m.Video[0]
	if got := segmentSummary(r); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("segments\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r.Init != "http://h/a/v.mp4" || r.InitRange != "0-899" || reads != 1 {
		t.Errorf("init %s %s after %d reads", r.Init, r.InitRange, reads)
	}
	if n := r.Segments[1].RangeSize(); n != 2000 {
		t.Errorf("second segment's RangeSize %d, want 2000", n)
	}
	// Without an Initialization element the header is what precedes the
	// index; a SegmentBase timescale other than the index's is honoured.
	m, err = ParseIndexed(doc(`<SegmentBase timescale="1000" presentationTimeOffset="100" indexRange="`+ir+`"/>`), base, fetch)
	if err != nil {
		t.Fatal(err)
	}
	if r := m.Video[0]; r.InitRange != fmt.Sprintf("0-%d", first.first-1) || r.Segments[0].Start != 0 || r.Segments[2].Start != 4*time.Second {
		t.Errorf("init range %s, segments %v", r.InitRange, segmentSummary(r))
	}

	hier, hir := onDemandFile(t, 10, []uint32{100, 100}, []uint32{90000, 90000}, 0, true)
	short := file[:first.last]
	tests := []struct{ name, segmentBase, file, want string }{
		{"hierarchical index", `<SegmentBase indexRange="` + hir + `"/>`, "hier", "hierarchical"},
		{"no index range", `<SegmentBase/>`, "v", "no @indexRange"},
		{"open index range", `<SegmentBase indexRange="100-"/>`, "v", "want first-last"},
		{"huge index range", `<SegmentBase indexRange="0-99999999"/>`, "v", "larger than"},
		{"index not a sidx", `<SegmentBase indexRange="0-99"/>`, "v", "index range 0-99"},
		{"index past the end", `<SegmentBase indexRange="` + ir + `"/>`, "short", "416"},
		{"missing file", `<SegmentBase indexRange="` + ir + `"/>`, "gone", "404"},
		{"bad media range", "", "", "@mediaRange"},
	}
	files := map[string][]byte{"http://h/a/v.mp4": file, "http://h/a/hier.mp4": hier, "http://h/a/short.mp4": short}
	for _, tt := range tests {
		data := wrapMPD(`<AdaptationSet contentType="video"><Representation id="v" mimeType="video/mp4" bandwidth="1"><BaseURL>` + tt.file + `.mp4</BaseURL>` +
			tt.segmentBase + `</Representation></AdaptationSet>`)
		if tt.segmentBase == "" {
			data = wrapMPD(`<AdaptationSet contentType="video"><Representation id="v" mimeType="video/mp4" bandwidth="1"><SegmentList duration="2"><SegmentURL media="a" mediaRange="9-3"/></SegmentList></Representation></AdaptationSet>`)
		}
		_, err := ParseIndexed(data, base, rangeReader(files, new(int)))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestParseBoundsIndexFetches: the indexes one MPD has read are bounded
// in total, however many SegmentBase Representations it lists.
func TestParseBoundsIndexFetches(t *testing.T) {
	// A valid index at the start of a 1 MiB index range.
	file, _ := onDemandFile(t, 0, []uint32{100}, []uint32{90000}, 0, false)
	file = append(file, make([]byte, MaxIndexSize)...)[:MaxIndexSize]
	var reps strings.Builder
	for i := range 40 {
		fmt.Fprintf(&reps, `<Representation id="v%d" mimeType="video/mp4" bandwidth="%d"><SegmentBase indexRange="0-%d"/></Representation>`, i, i+1, MaxIndexSize-1)
	}
	var read int64
	_, err := ParseIndexed(wrapMPD(`<AdaptationSet contentType="video">`+reps.String()+`</AdaptationSet>`), nil, func(u *url.URL, first, last int64) ([]byte, error) {
		read += last - first + 1
		return file[first : last+1], nil
	})
	if err == nil || !strings.Contains(err.Error(), "segment indexes come to more than") {
		t.Errorf("an MPD of 40 indexes of 1 MiB: error %v", err)
	}
	if read > MaxIndexTotal {
		t.Errorf("%d index bytes read, more than %d", read, MaxIndexTotal)
	}
}

func TestParseListErrors(t *testing.T) {
	for _, tt := range []struct{ name, period, want string }{
		{"timeline shorter than the list", `<AdaptationSet contentType="video"><Representation id="v" mimeType="video/mp4" bandwidth="1"><SegmentList><SegmentTimeline><S d="2"/></SegmentTimeline><SegmentURL media="a"/><SegmentURL media="b"/></SegmentList></Representation></AdaptationSet>`, "1 segments for 2 SegmentURLs"},
		{"list without durations", `<AdaptationSet contentType="video"><Representation id="v" mimeType="video/mp4" bandwidth="1"><SegmentList><SegmentURL media="a"/><SegmentURL media="b"/></SegmentList></Representation></AdaptationSet>`, "neither @duration nor SegmentTimeline"},
		{"bad initialization range", `<AdaptationSet contentType="video"><Representation id="v" mimeType="video/mp4" bandwidth="1"><SegmentList duration="2"><Initialization range="x"/><SegmentURL media="a"/></SegmentList></Representation></AdaptationSet>`, "Initialization element's @range"},
		{"nothing", `<AdaptationSet contentType="video"><Representation id="v" mimeType="video/mp4" bandwidth="1"/></AdaptationSet>`, "no SegmentTemplate, SegmentList or SegmentBase"},
	} {
		if _, err := Parse(wrapMPD(tt.period), nil); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}

func FuzzParseIndexed(f *testing.F) {
	file, ir := onDemandFile(f, 20, []uint32{100, 200}, []uint32{90000, 90000}, 0, false)
	f.Add(wrapMPD(`<AdaptationSet contentType="video"><Representation id="v" mimeType="video/mp4" bandwidth="1"><BaseURL>v.mp4</BaseURL><SegmentBase indexRange="`+ir+`"/></Representation></AdaptationSet>`), file)
	f.Add(wrapMPD(`<AdaptationSet contentType="video"><Representation id="0" mimeType="video/mp4" bandwidth="3"><BaseURL>s0.mp4</BaseURL><SegmentList timescale="10" duration="20"><Initialization range="0-9"/><SegmentURL mediaRange="10-99"/></SegmentList></Representation></AdaptationSet>`), []byte{})
	base, _ := url.Parse("http://h/a/m.mpd")
	f.Fuzz(func(t *testing.T, doc, file []byte) {
		fetch := func(u *url.URL, first, last int64) ([]byte, error) {
			if last >= int64(len(file)) {
				return nil, errors.New("416")
			}
			return file[first : last+1], nil
		}
		p, err := ParseIndexed(doc, base, fetch)
		if err != nil {
			return
		}
		for _, r := range append(p.Video, p.Audio...) {
			if len(r.Segments) == 0 || len(r.Segments) > MaxSegments {
				t.Fatalf("representation %s with %d segments", r.ID, len(r.Segments))
			}
			for _, s := range r.Segments {
				if s.Range != "" && s.RangeSize() <= 0 {
					t.Fatalf("segment %d: range %q", s.Number, s.Range)
				}
			}
		}
	})
}

// TestParseKeepsOneLadder: the video ladder is one codec's, the first
// listed, without trick-mode sets, in DASH and in HLS alike.
func TestParseKeepsOneLadder(t *testing.T) {
	set := func(codecs, extra string, ids ...string) string {
		s := `<AdaptationSet contentType="video" mimeType="video/mp4" codecs="` + codecs + `">` + extra +
			`<SegmentTemplate media="$RepresentationID$/$Number$.m4s" duration="2"/>`
		for i, id := range ids {
			s += fmt.Sprintf(`<Representation id="%s" bandwidth="%d"/>`, id, (i+1)*1000)
		}
		return s + `</AdaptationSet>`
	}
	trick := `<EssentialProperty schemeIdUri="http://dashif.org/guidelines/trickmode" value="1"/>`
	for _, tt := range []struct {
		name, period string
		want         []string
	}{
		{"avc first", set("avc1.64001f", "", "a1", "a2") + set("hvc1.1.6.L93.B0", "", "h1") + set("avc1.64001f", trick, "trick"), []string{"a1", "a2"}},
		{"hevc first", set("hev1.1.6.L93.B0", "", "h1") + set("avc3.64001f", "", "a1"), []string{"h1"}},
		{"one codec in two sets", set("avc1.64001e", "", "a1") + set("avc3.64001f", "", "a2"), []string{"a1", "a2"}},
		{"sets that name no codecs", set("", "", "x1") + set("", "", "x2"), []string{"x1", "x2"}},
	} {
		m, err := Parse(wrapMPD(tt.period), nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var got []string
		for _, r := range m.Video {
			got = append(got, r.ID)
		}
		if strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("%s: video %v, want %v", tt.name, got, tt.want)
		}
	}

	media := []byte("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\n1.m4s\n#EXT-X-ENDLIST\n")
	master := "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000,CODECS=\"avc1.64001f,mp4a.40.2\"\na.m3u8\n" +
		"#EXT-X-STREAM-INF:BANDWIDTH=900,CODECS=\"hvc1.1.6.L93.B0,mp4a.40.2\"\nh.m3u8\n" +
		"#EXT-X-STREAM-INF:BANDWIDTH=3000,CODECS=\"avc1.640028,mp4a.40.2\"\nb.m3u8\n"
	m, err := ParseHLS([]byte(master), &url.URL{Scheme: "https", Host: "e", Path: "/v/master.m3u8"}, func(*url.URL) ([]byte, error) { return media, nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Video) != 2 || m.Video[0].Bandwidth != 1000 || m.Video[1].Bandwidth != 3000 {
		t.Errorf("HLS video ladder %+v %+v, want the two AVC variants", m.Video[0], m.Video[len(m.Video)-1])
	}
}
