package manifest

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
)

// Manifest is the player's view of a static MPD: its video and audio
// Representations with every segment's address and timing, the Periods
// of one ladder laid end to end.
type Manifest struct {
	Duration      time.Duration
	MinBufferTime time.Duration
	Video         []*Representation // by bandwidth, lowest first
	Audio         []*Representation // by bandwidth, lowest first
	// Live describes a dynamic MPD read with ParseLive; nil for VOD.
	Live *Live
	// Bases are the MPD-level BaseURLs, absolute, the one the segment URLs
	// were resolved against first: the content steering default pathway
	// when the MPD names one, else the first listed. A player that fails
	// at one location tries the next (DASH's BaseURL failover). Empty when
	// the MPD has none.
	Bases []string
	// Remapped lists, for each Period whose video ladder differs from the
	// one the presentation plays with (a pre-roll's may be the first),
	// where each rendition continues (see stitch).
	Remapped []Remap
}

// Representation is one playable rendition.
type Representation struct {
	ID        string
	Bandwidth int // bit/s
	Width     int
	Height    int
	Codecs    string
	MimeType  string
	// Lang and Role are the AdaptationSet's language and DASH Role
	// ("main", "commentary", ...), "" when it names none.
	Lang string
	Role string
	// Set is the index of the Representation's AdaptationSet in the
	// Period: Representations with the same Set are bitrates of one
	// sound or picture.
	Set  int
	Init string // absolute URL of the initialization segment
	// InitRange is the initialization segment's byte range in Init
	// ("first-last", as an HTTP Range header takes it), "" for the whole.
	InitRange string
	Segments  []Segment
	// Playlist is an HLS rendition's media playlist (absolute URL), which
	// a live player reloads; "" for DASH.
	Playlist string
}

// Segment is one media segment of a Representation.
type Segment struct {
	Number   int
	Start    time.Duration // presentation time from the first Period's start (live: from availabilityStartTime)
	Duration time.Duration
	URL      string
	// Range is the segment's byte range in URL ("first-last"), "" for the
	// whole resource: SegmentList's @mediaRange, or a sidx reference.
	Range string
	// Predicted marks a live segment laid out past the last one its
	// SegmentTimeline lists, at the last one's duration: a later MPD
	// confirms or corrects its URL and timing.
	Predicted bool
	// Init and InitRange are set on the first segment that needs another
	// initialization segment than those before it (a later Period's, or an
	// HLS EXT-X-MAP after a discontinuity): the one it and the segments
	// after it need. "" elsewhere: the Representation's Init holds.
	Init, InitRange string
}

// MaxMPDSize bounds the MPD documents Parse accepts.
const MaxMPDSize = 16 << 20

// sanitize checks data with the standard library's XML decoder before
// dash-mpd sees it, and returns the document with every raw '>' in
// character data written as "&gt;" (the same XML): dash-mpd's forked decoder
// loops forever on a raw '>' in text, and on text outside the root.
func sanitize(data []byte) ([]byte, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	var out []byte
	copied := 0
	root, depth := "", 0
	for {
		start := d.InputOffset()
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not well-formed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 && root != "" {
				return nil, fmt.Errorf("more than one root element")
			}
			if root == "" {
				root = t.Name.Local
			}
			depth++
			if depth > maxDepth {
				return nil, fmt.Errorf("elements nested deeper than %d", maxDepth)
			}
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(t)) > 0 {
				return nil, fmt.Errorf("text outside the root element")
			}
			raw := data[start:d.InputOffset()]
			if bytes.HasPrefix(raw, []byte("<![CDATA[")) {
				return nil, fmt.Errorf("CDATA sections are not supported")
			}
			if bytes.IndexByte(raw, '>') >= 0 {
				out = append(out, data[copied:start]...)
				out = append(out, bytes.ReplaceAll(raw, []byte(">"), []byte("&gt;"))...)
				copied = int(d.InputOffset())
			}
		}
	}
	if root != "MPD" {
		return nil, fmt.Errorf("root element is %q, want MPD", root)
	}
	if out == nil {
		return data, nil
	}
	return append(out, data[copied:]...), nil
}

// MaxSegments bounds the segments of all Representations together, so a
// hostile MPD (a tiny @duration over a long period, thousands of
// Representations) cannot exhaust memory.
const MaxSegments = 200_000

// maxDepth bounds element nesting; MPDs are a handful of levels deep.
const maxDepth = 32

// Parse reads an MPD for playback. base is the MPD's own URL; relative
// BaseURLs and templates resolve against it. Unsupported features (live
// MPDs, SegmentBase addressing, which needs its index fetched: see
// ParseIndexed) are clear errors.
func Parse(data []byte, base *url.URL) (*Manifest, error) {
	return ParseIndexed(data, base, nil)
}

// ParseIndexed is Parse for MPDs that may address segments with
// SegmentBase (the on-demand profile: one file per Representation, its
// segments listed in a sidx box), whose index fetch reads.
func ParseIndexed(data []byte, base *url.URL, fetch IndexFetcher) (*Manifest, error) {
	return parse(data, base, fetch, nil)
}

// parse is ParseIndexed, and ParseLive when join is not nil.
func parse(data []byte, base *url.URL, fetch IndexFetcher, join *LiveJoin) (m *Manifest, err error) {
	if fetch != nil {
		fetch = budgetedFetch(fetch)
	}
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("mpd: malformed: %v", r)
		}
	}()
	if len(data) > MaxMPDSize {
		return nil, fmt.Errorf("mpd: %d bytes is larger than %d", len(data), MaxMPDSize)
	}
	data, err = sanitize(data)
	if err != nil {
		return nil, fmt.Errorf("mpd: %w", err)
	}
	doc, err := mpd.MPDFromBytes(data)
	if err != nil {
		return nil, fmt.Errorf("mpd: %w", err)
	}
	if len(doc.Periods) == 0 {
		return nil, fmt.Errorf("mpd: no Period")
	}
	if base == nil {
		base = &url.URL{}
	}
	m = &Manifest{}
	if doc.MinBufferTime != nil {
		m.MinBufferTime = time.Duration(*doc.MinBufferTime)
	}
	var spans []periodSpan
	var window *liveWindow
	switch {
	case doc.GetType() == mpd.STATIC_TYPE:
		if spans, err = periodSpans(doc); err != nil {
			return nil, fmt.Errorf("mpd: %w", err)
		}
	case doc.GetType() == mpd.DYNAMIC_TYPE && join != nil:
		if m.Live, window, err = liveSetup(doc, base, join); err != nil {
			return nil, fmt.Errorf("mpd: %w", err)
		}
	case doc.GetType() == mpd.DYNAMIC_TYPE:
		return nil, fmt.Errorf("mpd: type \"dynamic\": a live MPD is played (deepcast play -duration D), not simulated; only static (VOD) MPDs are supported here")
	default:
		return nil, fmt.Errorf("mpd: type %q: only static (VOD) MPDs are supported", doc.GetType())
	}
	mpdBases := doc.BaseURL
	if len(mpdBases) > 1 {
		// Start at the steering default pathway, then the rest in order.
		first := 0
		if cs := doc.ContentSteering; cs != nil && cs.DefaultServiceLocation != "" {
			for i, b := range mpdBases {
				if b.ServiceLocation == cs.DefaultServiceLocation {
					first = i
					break
				}
			}
		}
		mpdBases = append(append([]*mpd.BaseURLType{mpdBases[first]}, mpdBases[:first]...), mpdBases[first+1:]...)
		for _, b := range mpdBases {
			u, err := resolve(base, []*mpd.BaseURLType{b})
			if err != nil {
				return nil, err
			}
			m.Bases = append(m.Bases, u.String())
		}
	}
	if window != nil {
		if err := m.layLive(doc, base, mpdBases, window, fetch); err != nil {
			return nil, err
		}
		m.Duration = window.length
		return m, nil
	}
	budget := MaxSegments
	videoFamily := ""
	var parts []periodPart
	for i, p := range doc.Periods {
		pbase, err := resolve(base, mpdBases, p.BaseURLs)
		if err != nil {
			return nil, err
		}
		part, err := parsePeriod(p, pbase, spans[i].dur, &budget, &videoFamily, fetch, window)
		if err != nil {
			if len(doc.Periods) > 1 {
				err = fmt.Errorf("period %d: %w", i+1, err)
			}
			return nil, fmt.Errorf("mpd: %w", err)
		}
		part.shift(spans[i].start - spans[0].start)
		parts = append(parts, periodPart{part, i, p.Id})
		m.Duration += spans[i].dur
	}
	joined, err := stitch(parts, ladderOf(parts, func(i int) time.Duration { return spans[i].dur }))
	if err != nil {
		return nil, fmt.Errorf("mpd: %w", err)
	}
	m.Video, m.Audio, m.Remapped = joined.Video, joined.Audio, joined.Remapped
	return m, nil
}

// parsePeriod reads one Period's video and audio Representations, each
// sorted by bandwidth; budget is what is left of MaxSegments, family the
// video ladder's codec family (see sameFamily).
func parsePeriod(p *mpd.Period, pbase *url.URL, dur time.Duration, budget *int, family *string, fetch IndexFetcher, live *liveWindow) (*Manifest, error) {
	m := &Manifest{}
	for set, as := range p.AdaptationSets {
		if trickMode(as) {
			continue // I-frame renditions for fast seeking, not for playing
		}
		asBase, err := resolve(pbase, as.BaseURLs)
		if err != nil {
			return nil, err
		}
		for _, rep := range as.Representations {
			kind := contentKind(as, rep)
			if kind == "" {
				continue
			}
			// One codec's ladder: a player that decodes AVC does not
			// switch into the HEVC set beside it. The first listed, as
			// MPD authors put the most compatible first.
			if kind == "video" && !sameFamily(family, cmpOr(rep.Codecs, as.Codecs)) {
				continue
			}
			r, err := representation(p, as, rep, asBase, dur, *budget, fetch, live)
			if err != nil {
				return nil, fmt.Errorf("representation %q: %w", rep.Id, err)
			}
			*budget -= len(r.Segments)
			r.Set, r.Lang = set, as.Lang
			for _, role := range as.Roles {
				if role.SchemeIdUri == schemeRole {
					r.Role = role.Value
				}
			}
			if kind == "video" {
				m.Video = append(m.Video, r)
			} else {
				m.Audio = append(m.Audio, r)
			}
		}
	}
	if len(m.Video) == 0 {
		return nil, fmt.Errorf("no video Representation")
	}
	byBandwidth := func(a, b *Representation) int { return a.Bandwidth - b.Bandwidth }
	slices.SortStableFunc(m.Video, byBandwidth)
	slices.SortStableFunc(m.Audio, byBandwidth)
	return m, nil
}

// MainAudio is the sound a player starts with: the Representations of
// the AdaptationSet whose Role is main, else of the first audio
// AdaptationSet, lowest bandwidth first; nil when there is no audio.
func (m *Manifest) MainAudio() []*Representation {
	if len(m.Audio) == 0 {
		return nil
	}
	set := m.Audio[0].Set
	for _, r := range m.Audio {
		set = min(set, r.Set)
	}
	if i := slices.IndexFunc(m.Audio, func(r *Representation) bool { return r.Role == "main" }); i >= 0 {
		set = m.Audio[i].Set
	}
	var out []*Representation
	for _, r := range m.Audio {
		if r.Set == set {
			out = append(out, r)
		}
	}
	return out
}

// schemeTrickMode marks an AdaptationSet of trick-mode (I-frame)
// Representations (DASH-IF IOP 3.2.9).
const schemeTrickMode = "http://dashif.org/guidelines/trickmode"

func trickMode(as *mpd.AdaptationSetType) bool {
	for _, p := range as.EssentialProperties {
		if p.SchemeIdUri == schemeTrickMode {
			return true
		}
	}
	return false
}

// codecFamily names a video codec string's coding format, so that the
// sample entries of one format (avc1 and avc3, hvc1 and hev1) are one.
func codecFamily(codecs string) string {
	entry, _, _ := strings.Cut(strings.TrimSpace(codecs), ".")
	switch entry {
	case "avc1", "avc3":
		return "avc"
	case "hvc1", "hev1":
		return "hevc"
	case "dvh1", "dvhe":
		return "dolby-vision"
	}
	return entry
}

// sameFamily tells whether a video rendition of codecs belongs in the
// ladder of family, the first rendition's (set on the first call); one
// that does not say its codecs is let in.
func sameFamily(family *string, codecs string) bool {
	f := codecFamily(codecs)
	if f == "" || *family == "" {
		*family = cmpOr(*family, f)
		return true
	}
	return f == *family
}

func contentKind(as *mpd.AdaptationSetType, rep *mpd.RepresentationType) string {
	for _, s := range []string{string(as.ContentType), as.MimeType, rep.MimeType} {
		switch {
		case s == "video" || strings.HasPrefix(s, "video/"):
			return "video"
		case s == "audio" || strings.HasPrefix(s, "audio/"):
			return "audio"
		}
	}
	return ""
}

// resolve applies the first BaseURL of each level in turn.
func resolve(base *url.URL, levels ...[]*mpd.BaseURLType) (*url.URL, error) {
	u := base
	for _, l := range levels {
		if len(l) == 0 {
			continue
		}
		ref, err := url.Parse(strings.TrimSpace(string(l[0].Value)))
		if err != nil {
			return nil, fmt.Errorf("mpd: BaseURL %q: %w", l[0].Value, err)
		}
		u = u.ResolveReference(ref)
	}
	return u, nil
}

func representation(p *mpd.Period, as *mpd.AdaptationSetType, rep *mpd.RepresentationType, asBase *url.URL, periodDur time.Duration, budget int, fetch IndexFetcher, live *liveWindow) (*Representation, error) {
	if rep.Id == "" {
		return nil, fmt.Errorf("no id")
	}
	if rep.Bandwidth == 0 {
		return nil, fmt.Errorf("no bandwidth")
	}
	base, err := resolve(asBase, rep.BaseURLs)
	if err != nil {
		return nil, err
	}
	r := &Representation{ID: rep.Id, Bandwidth: int(rep.Bandwidth), Width: int(rep.Width), Height: int(rep.Height),
		Codecs: cmpOr(rep.Codecs, as.Codecs), MimeType: cmpOr(rep.MimeType, as.MimeType)}
	a, err := resolveAddressing(
		addressingLevel{p.SegmentBase, p.SegmentList, p.SegmentTemplate},
		addressingLevel{as.SegmentBase, as.SegmentList, as.SegmentTemplate},
		addressingLevel{rep.SegmentBase, rep.SegmentList, rep.SegmentTemplate})
	if err != nil {
		return nil, err
	}
	first := 0   // the first segment's index in the Period (live: where the player joins)
	listed := -1 // live: how many of the segments the MPD lists (the rest are predicted)
	number := func(k int) int { return a.startNumber + first + k }
	if live != nil && a.scheme != "template" {
		return nil, fmt.Errorf("a live MPD addressed with Segment%s: only a SegmentTemplate is played live", map[string]string{"list": "List", "base": "Base"}[a.scheme])
	}
	var spans []span
	var urls, ranges []string // ranges: "" for a whole resource
	switch a.scheme {
	case "template":
		if a.init != "" {
			init, err := expand(a.init, rep, 0, 0)
			if err != nil {
				return nil, err
			}
			if r.Init, err = join(base, init); err != nil {
				return nil, err
			}
		}
		if a.media == "" {
			return nil, fmt.Errorf("SegmentTemplate has no @media")
		}
		if live != nil {
			spans, first, listed, err = a.liveSpans(live, budget)
		} else {
			spans, err = a.spans(periodDur, -1, budget)
		}
		if err != nil {
			return nil, err
		}
		for k, s := range spans {
			path, err := expand(a.media, rep, number(k), s.t)
			if err != nil {
				return nil, err
			}
			u, err := join(base, path)
			if err != nil {
				return nil, err
			}
			urls = append(urls, u)
		}
	case "list":
		if len(a.list) > budget {
			return nil, fmt.Errorf("more than %d segments in the MPD", MaxSegments)
		}
		if spans, err = a.spans(periodDur, len(a.list), budget); err != nil {
			return nil, err
		}
		for _, su := range a.list[:len(spans)] {
			u, err := join(base, strings.TrimSpace(string(su.Media)))
			if err != nil {
				return nil, err
			}
			urls = append(urls, u)
			rng := ""
			if su.MediaRange != "" {
				br, err := parseRange(string(su.MediaRange))
				if err != nil {
					return nil, fmt.Errorf("SegmentURL @mediaRange: %w", err)
				}
				rng = br.String()
			}
			ranges = append(ranges, rng)
		}
	case "base":
		var refs []byteRange
		if spans, refs, err = indexedSegments(a, base, fetch, budget); err != nil {
			return nil, err
		}
		for _, ref := range refs {
			urls, ranges = append(urls, base.String()), append(ranges, ref.String())
		}
	}
	if a.scheme != "template" {
		if err := r.setInit(a, base); err != nil {
			return nil, err
		}
	}
	for k, s := range spans {
		seg := Segment{Number: number(k), Start: toDur(int64(s.t)-int64(a.pto), a.timescale), Duration: toDur(int64(s.d), a.timescale), URL: urls[k]}
		if k < len(ranges) {
			seg.Range = ranges[k]
		}
		seg.Predicted = listed >= 0 && k >= listed
		r.Segments = append(r.Segments, seg)
	}
	if len(r.Segments) == 0 {
		return nil, fmt.Errorf("no segments")
	}
	return r, nil
}

// setInit sets the initialization segment of a SegmentList or SegmentBase
// Representation: its Initialization element, else, in an on-demand file
// whose index follows the movie header, the bytes before the index.
func (r *Representation) setInit(a *addressing, base *url.URL) error {
	if a.initURL == nil {
		if a.scheme == "base" {
			ir, _ := parseRange(a.indexRange)
			if ir.first > 0 {
				r.Init, r.InitRange = base.String(), byteRange{0, ir.first - 1}.String()
			}
		}
		return nil
	}
	var err error
	if r.Init, err = join(base, strings.TrimSpace(string(a.initURL.SourceURL))); err != nil {
		return err
	}
	if a.initURL.Range != "" {
		br, err := parseRange(a.initURL.Range)
		if err != nil {
			return fmt.Errorf("the Initialization element's @range: %w", err)
		}
		r.InitRange = br.String()
	}
	return nil
}

// indexedSegments fetches and reads the segment index of a SegmentBase
// Representation.
func indexedSegments(a *addressing, base *url.URL, fetch IndexFetcher, budget int) ([]span, []byteRange, error) {
	if a.indexRange == "" {
		return nil, nil, fmt.Errorf("SegmentBase has no @indexRange")
	}
	ir, err := parseRange(a.indexRange)
	if err != nil {
		return nil, nil, fmt.Errorf("SegmentBase @indexRange: %w", err)
	}
	if ir.last-ir.first+1 > MaxIndexSize || ir.last >= 1<<61 {
		return nil, nil, fmt.Errorf("SegmentBase @indexRange %s: larger than %d bytes or too far into the file", ir, MaxIndexSize)
	}
	if fetch == nil {
		return nil, nil, fmt.Errorf("SegmentBase addressing: the segment index (sidx) must be fetched, and this reader has no way to fetch it")
	}
	data, err := fetch(base, ir.first, ir.last)
	if err != nil {
		return nil, nil, fmt.Errorf("segment index %s bytes %s: %w", base, ir, err)
	}
	if int64(len(data)) != ir.last-ir.first+1 {
		return nil, nil, fmt.Errorf("segment index %s bytes %s: got %d bytes", base, ir, len(data))
	}
	sidx, refs, err := sidxSegments(data, ir)
	if err != nil {
		return nil, nil, fmt.Errorf("segment index %s: %w", base, err)
	}
	if len(refs) > budget {
		return nil, nil, fmt.Errorf("more than %d segments in the MPD", MaxSegments)
	}
	// The index's clock is its own; the spans are on the SegmentBase's
	// timescale, which the presentation time offset is given in.
	scale := func(t uint64) uint64 {
		return uint64(float64(t) * float64(a.timescale) / float64(sidx.Timescale))
	}
	spans := make([]span, len(refs))
	t := sidx.EarliestPresentationTime
	for i, r := range sidx.SidxRefs {
		spans[i] = span{scale(t), scale(t+uint64(r.SubSegmentDuration)) - scale(t)}
		t += uint64(r.SubSegmentDuration)
	}
	return spans, refs, nil
}

func toDur(ticks int64, timescale uint64) time.Duration {
	return time.Duration(float64(ticks) / float64(timescale) * float64(time.Second))
}

func join(base *url.URL, path string) (string, error) {
	ref, err := url.Parse(path)
	if err != nil {
		return "", fmt.Errorf("segment URL %q: %w", path, err)
	}
	return base.ResolveReference(ref).String(), nil
}

// expand substitutes the DASH template identifiers $RepresentationID$,
// $Number$, $Bandwidth$ and $Time$ (with optional %0Nd width) and $$.
func expand(tpl string, rep *mpd.RepresentationType, number int, t uint64) (string, error) {
	var b strings.Builder
	for {
		i := strings.IndexByte(tpl, '$')
		if i < 0 {
			b.WriteString(tpl)
			return b.String(), nil
		}
		b.WriteString(tpl[:i])
		rest := tpl[i+1:]
		j := strings.IndexByte(rest, '$')
		if j < 0 {
			return "", fmt.Errorf("template %q: unterminated $", tpl)
		}
		ident := rest[:j]
		tpl = rest[j+1:]
		if ident == "" {
			b.WriteByte('$')
			continue
		}
		name, format, _ := strings.Cut(ident, "%")
		var val string
		switch name {
		case "RepresentationID":
			if format != "" {
				return "", fmt.Errorf("template %q: $RepresentationID$ takes no format", tpl)
			}
			val = rep.Id
			b.WriteString(val)
			continue
		case "Number":
			val = strconv.Itoa(number)
		case "Bandwidth":
			val = strconv.FormatUint(uint64(rep.Bandwidth), 10)
		case "Time":
			val = strconv.FormatUint(t, 10)
		default:
			return "", fmt.Errorf("template: unknown identifier $%s$", ident)
		}
		if format != "" {
			if len(format) < 3 || format[0] != '0' || format[len(format)-1] != 'd' {
				return "", fmt.Errorf("template: format %%%s: want %%0Nd", format)
			}
			width, err := strconv.Atoi(format[1 : len(format)-1])
			if err != nil || width < 1 || width > 20 {
				return "", fmt.Errorf("template: format %%%s: width must be 1..20", format)
			}
			val = strings.Repeat("0", max(0, width-len(val))) + val
		}
		b.WriteString(val)
	}
}

// RangeSize is the number of bytes in the segment's Range, 0 when it is a
// whole resource.
func (s Segment) RangeSize() int64 {
	if s.Range == "" {
		return 0
	}
	r, err := parseRange(s.Range)
	if err != nil {
		return 0
	}
	return r.last - r.first + 1
}

// SegmentIndexAt returns the index of the segment that holds presentation
// time t (clamped to the first and last).
func (r *Representation) SegmentIndexAt(t time.Duration) int {
	i, _ := slices.BinarySearchFunc(r.Segments, t, func(s Segment, t time.Duration) int {
		switch {
		case s.Start+s.Duration <= t:
			return -1
		case s.Start > t:
			return 1
		}
		return 0
	})
	return int(math.Min(float64(i), float64(len(r.Segments)-1)))
}
