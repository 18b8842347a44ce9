package manifest

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
)

// Profiles are the DASH profiles every deepcast MPD claims.
const Profiles = "urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019"

// Presentation describes a packaged VOD asset for Build.
type Presentation struct {
	Title         string
	Duration      time.Duration
	MinBufferTime time.Duration
	Video         []Track
	Audio         []Track
	// Text are the subtitle tracks, each a WebVTT file for the whole
	// presentation.
	Text []TextTrack
	// Thumbnails, when set, are seek-preview tiles.
	Thumbnails *Thumbnails
	// Protection, when set, says the media are encrypted (Common
	// Encryption) and where the ClearKey licence is.
	Protection *Protection
}

// Protection describes an encrypted presentation for its MPD.
type Protection struct {
	Scheme string // cenc or cbcs
	KeyID  string // the default KID, as a UUID string
	// LicenceURL is the ClearKey licence server (W3C EME ClearKey JSON).
	LicenceURL string
}

// ClearKey's DRM system (DASH-IF IOP) and the MPD's protection scheme.
const (
	schemeMP4Protection = "urn:mpeg:dash:mp4protection:2011"
	schemeClearKey      = "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e"
)

// contentProtections are the ContentProtection descriptors of an
// encrypted adaptation set: the scheme with the default KID, and ClearKey
// with its licence URL.
func (p *Protection) contentProtections() []*mpd.ContentProtectionType {
	common := &mpd.ContentProtectionType{DefaultKID: p.KeyID}
	common.SchemeIdUri, common.Value = schemeMP4Protection, p.Scheme
	ck := &mpd.ContentProtectionType{}
	ck.SchemeIdUri, ck.Value = schemeClearKey, "ClearKey1.0"
	if p.LicenceURL != "" {
		ck.LaURL = &mpd.LaURLType{LicenseType: "EME-1.0", Value: mpd.AnyURI(p.LicenceURL)}
	}
	return []*mpd.ContentProtectionType{common, ck}
}

// Track is one Representation: its codec parameters and segment timeline.
type Track struct {
	ID        string // also the folder of its segments
	Codecs    string
	Bandwidth uint32 // bit/s, the peak segment bitrate
	// AvgBandwidth is the mean bitrate over the whole track (bit/s).
	AvgBandwidth uint32
	Width        int
	Height       int
	// Sar is the pixel aspect ratio, "W:H"; "" is square.
	Sar        string
	FrameRate  string // "30" or "30000/1001"
	SampleRate int
	Channels   int
	// Lang is an audio track's language, a BCP 47 tag ("" when unknown).
	Lang string
	// Label names an audio track in a player's menu ("English",
	// "Director's commentary").
	Label string
	// Role is an audio track's DASH Role: "main", "alternate",
	// "commentary", "description" (audio description) or "dub"; "" says
	// nothing.
	Role      string
	Timescale uint32
	// PTO is the presentationTimeOffset: the media time shown at period start.
	PTO      uint64
	Segments []Span
	// Keyframes are, per segment, the length of the segment's prefix that
	// holds its first frame (a keyframe) whole; nil when unknown. HLS
	// I-frame playlists address them as byte ranges.
	Keyframes []int64
}

// TextTrack is a subtitle track: one WebVTT file, {ID}/text.vtt.
type TextTrack struct {
	ID    string
	Lang  string // BCP 47, "" when unknown
	Label string
	// Role is DASH's: "subtitle", "caption" (for the deaf and hard of
	// hearing) or "forced-subtitle".
	Role string
	Size int64 // bytes of the file
}

// Thumbnails describes an asset's seek-preview tiles (DASH-IF thumbnail
// tiles): JPEGs ThumbnailsID/1.jpg, 2.jpg, ..., each Columns x Rows
// thumbnails of Width x Height, one every Interval from the start.
type Thumbnails struct {
	Interval      time.Duration
	Width, Height int
	Columns, Rows int
	MaxTile       int64 // bytes of the largest tile
}

func (th *Thumbnails) valid() bool {
	return th != nil && th.Interval > 0 && th.Columns > 0 && th.Rows > 0 && th.Width > 0 && th.Height > 0
}

// tileDuration is the time one tile's thumbnails cover.
func (th *Thumbnails) tileDuration() time.Duration {
	return th.Interval * time.Duration(th.Columns*th.Rows)
}

// bandwidth is the tiles' peak bitrate: the largest in a tile's time.
func (th *Thumbnails) bandwidth() uint32 {
	return bitrate(th.MaxTile, th.tileDuration())
}

// bitrate is @bandwidth for size bytes over d: at least 1 (the schema's
// floor, and a zero or unknown length's), at most what 32 bits hold.
func bitrate(size int64, d time.Duration) uint32 {
	if d <= 0 {
		return 1
	}
	return uint32(min(max(float64(size)*8/d.Seconds(), 1), 1<<32-1))
}

// ThumbnailsID is the Representation (and folder) of the thumbnails.
const ThumbnailsID = "thumbs"

// schemeThumbnailTile is DASH-IF's property of a thumbnail tile
// AdaptationSet, valued COLUMNSxROWS.
const schemeThumbnailTile = "http://dashif.org/thumbnail_tile"

// thumbnailSet is the thumbnails' image AdaptationSet: one tile a
// "segment", addressed by number as media segments are.
func thumbnailSet(th *Thumbnails, id uint32) *mpd.AdaptationSetType {
	as := mpd.NewAdaptationSet()
	as.Id = mpd.Ptr(id)
	as.ContentType = "image"
	as.MimeType = "image/jpeg"
	st := &mpd.SegmentTemplateType{Media: "$RepresentationID$/$Number$.jpg"}
	st.StartNumber = mpd.Ptr(uint32(1))
	st.Timescale = mpd.Ptr(uint32(1000))
	st.Duration = mpd.Ptr(uint32(th.tileDuration().Milliseconds()))
	as.SegmentTemplate = st
	rep := mpd.NewRepresentation()
	rep.Id = ThumbnailsID
	rep.Bandwidth = th.bandwidth()
	rep.Width, rep.Height = uint32(th.Width*th.Columns), uint32(th.Height*th.Rows)
	rep.EssentialProperties = []*mpd.DescriptorType{{SchemeIdUri: schemeThumbnailTile, Value: fmt.Sprintf("%dx%d", th.Columns, th.Rows)}}
	as.AppendRepresentation(rep)
	return as
}

// TextFile is the file name of a subtitle track's WebVTT in its folder.
const TextFile = "text.vtt"

// Span is one media segment on a track's timeline, in its timescale.
type Span struct {
	Time     uint64
	Duration uint64
}

// Segment URL templates relative to the MPD; the folder is the Representation ID.
const (
	InitTemplate  = "$RepresentationID$/init.mp4"
	MediaTemplate = "$RepresentationID$/$Number$.m4s"
)

// Build makes a static, single-period MPD for p.
func Build(p Presentation) (*mpd.MPD, error) {
	if len(p.Video) == 0 {
		return nil, fmt.Errorf("mpd: no video tracks")
	}
	m := mpd.NewMPD(mpd.STATIC_TYPE)
	m.Profiles = Profiles
	m.MediaPresentationDuration = durPtr(p.Duration)
	mbt := p.MinBufferTime
	if mbt <= 0 {
		mbt = 2 * time.Second
	}
	m.MinBufferTime = durPtr(mbt)
	var maxSeg time.Duration
	if p.Title != "" {
		m.ProgramInformation = []*mpd.ProgramInformationType{{Title: p.Title}}
	}
	period := &mpd.Period{Id: "0", Start: durPtr(0)}
	m.AppendPeriod(period)
	type set struct {
		kind   string
		mime   string
		tracks []Track
	}
	sets := []set{{"video", "video/mp4", p.Video}}
	for _, g := range AudioGroups(p.Audio) {
		sets = append(sets, set{"audio", "audio/mp4", g})
	}
	id := uint32(0)
	for _, set := range sets {
		if len(set.tracks) == 0 {
			continue
		}
		as, err := adaptationSet(set.kind, set.mime, set.tracks, id)
		if err != nil {
			return nil, err
		}
		id++
		if p.Protection != nil {
			as.ContentProtections = p.Protection.contentProtections()
		}
		period.AppendAdaptationSet(as)
		for _, t := range set.tracks {
			for _, s := range t.Segments {
				maxSeg = max(maxSeg, ticks(s.Duration, t.Timescale))
			}
		}
	}
	for _, t := range p.Text {
		period.AppendAdaptationSet(textSet(t, id, p.Duration))
		id++
	}
	if p.Thumbnails.valid() {
		period.AppendAdaptationSet(thumbnailSet(p.Thumbnails, id))
	}
	if maxSeg > 0 {
		m.MaxSegmentDuration = durPtr(maxSeg)
	}
	return m, nil
}

func adaptationSet(kind, mime string, tracks []Track, id uint32) (*mpd.AdaptationSetType, error) {
	as := mpd.NewAdaptationSet()
	as.Id = mpd.Ptr(id)
	as.ContentType = mpd.RFC6838ContentTypeType(kind)
	as.MimeType = mime
	as.SegmentAlignment = true
	as.StartWithSAP = 1
	// Highest quality first is how players list it and how people read it.
	sorted := slices.Clone(tracks)
	slices.SortStableFunc(sorted, func(a, b Track) int { return int(b.Bandwidth) - int(a.Bandwidth) })
	shared := true
	for _, t := range sorted[1:] {
		if !sameTimeline(sorted[0], t) {
			shared = false
		}
	}
	if shared {
		as.SegmentTemplate = template(sorted[0])
	}
	codecs := sorted[0].Codecs
	for _, t := range sorted {
		if t.Codecs != codecs {
			codecs = ""
		}
	}
	as.Codecs = codecs
	if kind == "video" {
		as.Par = ""
		maxW, maxH := 0, 0
		for _, t := range sorted {
			maxW, maxH = max(maxW, t.Width), max(maxH, t.Height)
		}
		as.MaxWidth, as.MaxHeight = uint32(maxW), uint32(maxH)
		if fr := sorted[0].FrameRate; fr != "" {
			as.MaxFrameRate = fr
		}
	}
	if kind == "audio" {
		describeAudioSet(as, sorted[0])
	}
	for _, t := range sorted {
		if len(t.Segments) == 0 {
			return nil, fmt.Errorf("mpd: track %s has no segments", t.ID)
		}
		if t.Timescale == 0 {
			return nil, fmt.Errorf("mpd: track %s has timescale 0", t.ID)
		}
		rep := mpd.NewRepresentation()
		rep.Id = t.ID
		rep.Bandwidth = t.Bandwidth
		if as.Codecs == "" {
			rep.Codecs = t.Codecs
		}
		if kind == "video" {
			rep.Width, rep.Height = uint32(t.Width), uint32(t.Height)
			rep.FrameRate = mpd.FrameRateType(t.FrameRate)
			rep.Sar = mpd.RatioType(cmp.Or(t.Sar, "1:1"))
		} else {
			rep.AudioSamplingRate = mpd.Ptr(mpd.UIntVectorType(fmt.Sprint(t.SampleRate)))
			rep.AudioChannelConfigurations = []*mpd.DescriptorType{{
				SchemeIdUri: "urn:mpeg:dash:23003:3:audio_channel_configuration:2011",
				Value:       fmt.Sprint(t.Channels),
			}}
		}
		if !shared {
			rep.SegmentTemplate = template(t)
		}
		as.AppendRepresentation(rep)
	}
	return as, nil
}

// AudioGroups splits audio tracks into the sets a viewer chooses between:
// tracks of one language, role and label, stereo or surround, are
// bitrates of one sound, and make one AdaptationSet (a player switches
// bitrates within a set, never between 2 and 6 channels). The main
// sound's set comes first, the others in the order their first track
// has in tracks.
func AudioGroups(tracks []Track) [][]Track {
	type key struct {
		lang, role, label string
		surround          bool
	}
	var order []key
	groups := map[key][]Track{}
	for _, t := range tracks {
		k := key{t.Lang, t.Role, t.Label, t.Surround()}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], t)
	}
	out := make([][]Track, 0, len(order))
	for _, k := range order {
		out = append(out, groups[k])
	}
	slices.SortStableFunc(out, func(a, b []Track) int {
		switch {
		case a[0].Role == "main" && b[0].Role != "main":
			return -1
		case b[0].Role == "main" && a[0].Role != "main":
			return 1
		}
		return 0
	})
	return out
}

// DASH's Role scheme, and the scheme DASH-IF names for marking audio
// description as an accessibility feature (value 1: for the visually
// impaired).
const (
	schemeRole              = "urn:mpeg:dash:role:2011"
	schemeAudioPurpose      = "urn:tva:metadata:cs:AudioPurposeCS:2007"
	audioPurposeDescription = "1"
)

// describeAudioSet says in the AdaptationSet which sound t is: its
// language, role (the main one is what players start with) and label.
func describeAudioSet(as *mpd.AdaptationSetType, t Track) {
	if t.Lang != "" && t.Lang != "und" {
		as.Lang = t.Lang
	}
	if t.Role != "" {
		as.Roles = []*mpd.DescriptorType{{SchemeIdUri: schemeRole, Value: t.Role}}
	}
	if t.Role == "description" {
		as.Accessibilities = []*mpd.DescriptorType{{SchemeIdUri: schemeAudioPurpose, Value: audioPurposeDescription}}
	}
	if t.Label != "" {
		as.Labels = []*mpd.LabelType{{Value: t.Label}}
	}
	// Below the default of 1: a player starts with a stereo set, which
	// every device plays, even one that breaks ties between sets by
	// bitrate; a viewer with the speakers for it picks 5.1.
	if t.Surround() {
		as.SelectionPriority = mpd.Ptr(uint32(0))
	}
}

// Surround says whether an audio track has more than two channels.
func (t Track) Surround() bool { return t.Channels > 2 }

// textSet is a subtitle track's AdaptationSet: one Representation whose
// BaseURL is the whole WebVTT file, the form every DASH player reads
// ("sidecar" subtitles).
func textSet(t TextTrack, id uint32, d time.Duration) *mpd.AdaptationSetType {
	as := mpd.NewAdaptationSet()
	as.Id = mpd.Ptr(id)
	as.ContentType = "text"
	as.MimeType = "text/vtt"
	if t.Lang != "" {
		as.Lang = t.Lang
	}
	if t.Role != "" {
		as.Roles = []*mpd.DescriptorType{{SchemeIdUri: schemeRole, Value: t.Role}}
	}
	if t.Label != "" {
		as.Labels = []*mpd.LabelType{{Value: t.Label}}
	}
	rep := mpd.NewRepresentation()
	rep.Id = t.ID
	rep.Bandwidth = bitrate(t.Size, d)
	rep.BaseURLs = []*mpd.BaseURLType{{Value: mpd.AnyURI(t.ID + "/" + TextFile)}}
	as.AppendRepresentation(rep)
	return as
}

// template makes the SegmentTemplate of a track: @duration when every
// segment but the last has one length, else a SegmentTimeline.
func template(t Track) *mpd.SegmentTemplateType {
	st := &mpd.SegmentTemplateType{Media: MediaTemplate, Initialization: InitTemplate}
	st.StartNumber = mpd.Ptr(uint32(1))
	st.Timescale = mpd.Ptr(t.Timescale)
	if t.PTO != 0 {
		st.PresentationTimeOffset = mpd.Ptr(t.PTO)
	}
	segs := t.Segments
	uniform := segs[0].Time == t.PTO && segs[0].Duration <= 1<<32-1
	for k := 1; k < len(segs) && uniform; k++ {
		if k < len(segs)-1 && segs[k].Duration != segs[0].Duration || segs[k].Duration > segs[0].Duration {
			uniform = false
		}
	}
	if uniform {
		st.Duration = mpd.Ptr(uint32(segs[0].Duration))
		return st
	}
	tl := &mpd.SegmentTimelineType{}
	next := uint64(0)
	for k, s := range segs {
		if k > 0 && s.Time == next {
			last := tl.S[len(tl.S)-1]
			if last.D == s.Duration {
				last.R++
				next += s.Duration
				continue
			}
			tl.S = append(tl.S, &mpd.S{D: s.Duration})
		} else {
			tl.S = append(tl.S, &mpd.S{T: mpd.Ptr(s.Time), D: s.Duration})
		}
		next = s.Time + s.Duration
	}
	st.SegmentTimeline = tl
	return st
}

func sameTimeline(a, b Track) bool {
	return a.Timescale == b.Timescale && a.PTO == b.PTO && slices.Equal(a.Segments, b.Segments)
}

func ticks(d uint64, timescale uint32) time.Duration {
	return time.Duration(float64(d) / float64(timescale) * float64(time.Second))
}

func durPtr(d time.Duration) *mpd.Duration {
	v := mpd.Duration(d)
	return &v
}

// Marshal writes m as indented XML with an XML declaration.
func Marshal(m *mpd.MPD) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := m.Write(&buf, "  ", true); err != nil {
		return nil, fmt.Errorf("mpd: %w", err)
	}
	return buf.Bytes(), nil
}
