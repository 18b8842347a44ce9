package manifest

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Eyevinn/hls-m3u8/m3u8"
)

// HLS playlist names inside an asset: the multivariant playlist beside
// the MPD, and per rendition folder its media playlist and, for video,
// its I-frame playlist. They address the same init.mp4 and N.m4s files
// as the MPD, so one set of segments (and one cache object per segment)
// serves both.
const (
	HLSMultivariant = "master.m3u8"
	HLSMedia        = "media.m3u8"
	HLSIFrames      = "iframes.m3u8"
	// HLSContentType is the media type of every playlist (RFC 8216).
	HLSContentType = "application/vnd.apple.mpegurl"
	// HLSAudioGroup is the GROUP-ID of the audio renditions.
	HLSAudioGroup = "audio"
	// HLSSubtitleGroup is the GROUP-ID of the subtitle renditions.
	HLSSubtitleGroup = "subs"
)

// HLS is an asset's playlists.
type HLS struct {
	Multivariant []byte
	Media        map[string][]byte // by track ID
	IFrames      map[string][]byte // by video track ID, for tracks with Keyframes
}

// BuildHLS makes the HLS (fMP4) playlists of p: the multivariant playlist
// (one variant per video track with the audio as an EXT-X-MEDIA group,
// and an I-frame variant per video track whose keyframes are known), a
// VOD media playlist per track, and the I-frame playlists.
func BuildHLS(p Presentation) (*HLS, error) {
	if len(p.Video) == 0 {
		return nil, errors.New("hls: no video tracks")
	}
	out := &HLS{Media: map[string][]byte{}, IFrames: map[string][]byte{}}
	for _, t := range append(slices.Clone(p.Video), p.Audio...) {
		b, err := mediaPlaylist(t)
		if err != nil {
			return nil, err
		}
		out.Media[t.ID] = b
	}
	for _, t := range p.Text {
		out.Media[t.ID] = textPlaylist(p.Duration)
	}
	if th := p.Thumbnails; th.valid() {
		out.Media[ThumbnailsID] = imagePlaylist(th, p.Duration)
	}
	for _, t := range p.Video {
		if len(t.Keyframes) == 0 {
			continue
		}
		b, err := iframePlaylist(t)
		if err != nil {
			return nil, err
		}
		out.IFrames[t.ID] = b
	}
	m := multivariant(p)
	v, _ := m.CalcMinVersion()
	m.SetVersion(v)
	if th := p.Thumbnails; th.valid() {
		m.SetCustomTag(newImageStream(th))
	}
	out.Multivariant = defaultsFirst(m.Encode().Bytes())
	return out, nil
}

// multivariant makes the multivariant playlist, variants lowest bitrate
// first.
func multivariant(p Presentation) *m3u8.MasterPlaylist {
	m := m3u8.NewMasterPlaylist()
	m.SetIndependentSegments(true)
	var alts []*m3u8.Alternative
	var audioPeak, audioAvg uint32
	audioCodecs := ""
	sounds := uniqueNames{}
	audio := hlsSounds(p.Audio)
	first := slices.IndexFunc(audio, func(t Track) bool { return t.Role == "main" })
	for i, a := range audio {
		alt := &m3u8.Alternative{Type: "AUDIO", GroupId: HLSAudioGroup, Name: sounds.name(cmp.Or(a.Label, a.ID)), Default: i == max(first, 0), Autoselect: true,
			URI: a.ID + "/" + HLSMedia}
		if a.Lang != "" && a.Lang != "und" {
			alt.Language = a.Lang
		}
		if a.Role == "description" {
			alt.Characteristics = "public.accessibility.describes-video"
		}
		if a.Channels > 0 {
			alt.Channels = &m3u8.Channels{Amount: a.Channels}
		}
		alts = append(alts, alt)
		if a.Bandwidth > audioPeak {
			audioPeak, audioAvg = a.Bandwidth, a.AvgBandwidth
		}
		if i == max(first, 0) {
			audioCodecs = a.Codecs
		}
	}
	var subs []*m3u8.Alternative
	texts := uniqueNames{}
	for _, t := range p.Text {
		alt := &m3u8.Alternative{Type: "SUBTITLES", GroupId: HLSSubtitleGroup, Name: texts.name(cmp.Or(t.Label, t.ID)),
			Autoselect: t.Role != "caption", Forced: t.Role == "forced-subtitle", URI: t.ID + "/" + HLSMedia}
		if t.Lang != "" {
			alt.Language = t.Lang
		}
		if t.Role == "caption" {
			alt.Characteristics = "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound"
		}
		subs = append(subs, alt)
	}
	video := slices.Clone(p.Video)
	slices.SortStableFunc(video, func(a, b Track) int { return int(a.Bandwidth) - int(b.Bandwidth) })
	for _, t := range video {
		params := m3u8.VariantParams{Bandwidth: t.Bandwidth + audioPeak, AverageBandwidth: t.AvgBandwidth + audioAvg,
			Codecs: t.Codecs, Resolution: t.displaySize(), FrameRate: frameRate(t.FrameRate)}
		if t.AvgBandwidth == 0 {
			params.AverageBandwidth = 0
		}
		if audioCodecs != "" {
			params.Codecs += "," + audioCodecs
			params.Audio = HLSAudioGroup
			params.Alternatives = alts
		}
		if len(subs) > 0 {
			params.Subtitles = HLSSubtitleGroup
			params.Alternatives = append(slices.Clone(params.Alternatives), subs...)
		}
		m.Append(t.ID+"/"+HLSMedia, nil, params)
	}
	for _, t := range video {
		if len(t.Keyframes) == 0 {
			continue
		}
		m.Append(t.ID+"/"+HLSIFrames, nil, m3u8.VariantParams{Iframe: true, Bandwidth: iframePeak(t), Codecs: t.Codecs,
			Resolution: t.displaySize()})
	}
	return m
}

// hlsSounds are the audio tracks the multivariant playlist offers: a
// surround track only where no stereo track has its language and role.
// One group with both would have every variant's BANDWIDTH count the
// 5.1 bitrate (RFC 8216 §4.3.4.2), and a group of its own needs a copy
// of every variant, between which hls.js's ABR moves as bandwidth does
// (it keeps to a codec set, and 5.1 AAC is mp4a.40.2 as stereo is),
// flipping the sound between stereo and 5.1. DASH offers both.
func hlsSounds(tracks []Track) []Track {
	return slices.DeleteFunc(slices.Clone(tracks), func(t Track) bool {
		return t.Surround() && slices.ContainsFunc(tracks, func(s Track) bool {
			return !s.Surround() && s.Lang == t.Lang && s.Role == t.Role
		})
	})
}

// displaySize is a video track's RESOLUTION: the size it is shown at
// (RFC 8216 §4.3.4.2), its width stretched by the pixel aspect ratio
// (a DVD's 720x480 at 32:27 is 853x480).
func (t Track) displaySize() string {
	w := t.Width
	var sw, sh int
	if n, _ := fmt.Sscanf(t.Sar, "%d:%d", &sw, &sh); n == 2 && sw > 0 && sh > 0 {
		w = int(math.Round(float64(t.Width) * float64(sw) / float64(sh)))
	}
	return fmt.Sprintf("%dx%d", w, t.Height)
}

// frameRate reads "30" or "30000/1001" as frames per second, to three
// decimals as HLS writes it.
func frameRate(s string) float64 {
	num, den, found := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n <= 0 {
		return 0
	}
	if found {
		d, err := strconv.ParseFloat(den, 64)
		if err != nil || d <= 0 {
			return 0
		}
		n /= d
	}
	return math.Round(n*1000) / 1000
}

// seconds is a span of a track's timescale in seconds.
func seconds(d uint64, timescale uint32) float64 { return float64(d) / float64(timescale) }

// targetDuration is EXT-X-TARGETDURATION: every EXTINF rounded to the
// nearest integer must be at most it (RFC 8216 4.3.3.1).
func targetDuration(t Track) uint {
	var target uint = 1
	for _, s := range t.Segments {
		target = max(target, uint(math.Round(seconds(s.Duration, t.Timescale))))
	}
	return target
}

// mediaPlaylist is a track's VOD media playlist: EXT-X-MAP for init.mp4,
// then N.m4s with its real duration.
func mediaPlaylist(t Track) ([]byte, error) {
	if len(t.Segments) == 0 || t.Timescale == 0 {
		return nil, fmt.Errorf("hls: track %s has no segments or timescale 0", t.ID)
	}
	pl, err := m3u8.NewMediaPlaylist(0, uint(len(t.Segments)))
	if err != nil {
		return nil, fmt.Errorf("hls: %w", err)
	}
	pl.MediaType = m3u8.VOD
	pl.SetIndependentSegments(true)
	pl.Map = &m3u8.Map{URI: "init.mp4"}
	for k, s := range t.Segments {
		if err := pl.AppendSegment(&m3u8.MediaSegment{URI: strconv.Itoa(k+1) + ".m4s", Duration: seconds(s.Duration, t.Timescale)}); err != nil {
			return nil, fmt.Errorf("hls: track %s: %w", t.ID, err)
		}
	}
	pl.TargetDuration = targetDuration(t)
	pl.Close()
	pl.SetVersion(minVersion(pl))
	return pl.Encode().Bytes(), nil
}

// textPlaylist is a subtitle track's media playlist: its WebVTT file as
// one segment as long as the presentation (the same file the MPD names).
func textPlaylist(d time.Duration) []byte {
	secs := max(d.Seconds(), 0.001)
	var b bytes.Buffer
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:%d\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:%.3f,\n%s\n#EXT-X-ENDLIST\n",
		int(math.Ceil(secs)), secs, TextFile)
	return b.Bytes()
}

// The thumbnails in HLS follow the image playlist extension that Roku
// wrote and Shaka Player reads: EXT-X-IMAGE-STREAM-INF in the
// multivariant playlist, and a media playlist of tiles (EXT-X-IMAGES-ONLY,
// EXT-X-TILES). Other players skip tags they do not know (RFC 8216 §4.1).
const imageStreamTag = "#EXT-X-IMAGE-STREAM-INF:"

// imageStream is the multivariant playlist's thumbnail line: its
// attribute list, as written here or read back from a playlist.
type imageStream struct{ attrs string }

// newImageStream is the thumbnail line of th.
func newImageStream(th *Thumbnails) imageStream {
	return imageStream{fmt.Sprintf(`BANDWIDTH=%d,RESOLUTION=%dx%d,CODECS="jpeg",URI="%s/%s"`, th.bandwidth(),
		th.Width, th.Height, ThumbnailsID, HLSMedia)}
}

func (imageStream) TagName() string { return imageStreamTag }

func (s imageStream) Encode() *bytes.Buffer {
	var b bytes.Buffer
	b.WriteString(s.String())
	return &b
}

func (s imageStream) String() string { return imageStreamTag + s.attrs }

// Decode reads an image stream line back, so that a rewritten
// multivariant playlist keeps its thumbnails.
func (imageStream) Decode(line string) (m3u8.CustomTag, error) {
	return imageStream{strings.TrimPrefix(line, imageStreamTag)}, nil
}

// SegmentTag is false: the line belongs to a multivariant playlist.
func (imageStream) SegmentTag() bool { return false }

// imagePlaylist is the thumbnails' media playlist: one tile a segment,
// each as long as the thumbnails it holds cover.
func imagePlaylist(th *Thumbnails, d time.Duration) []byte {
	tile := th.tileDuration()
	n := max(1, int(math.Ceil(d.Seconds()/tile.Seconds()-1e-9)))
	var b bytes.Buffer
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:%d\n#EXT-X-MEDIA-SEQUENCE:1\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-IMAGES-ONLY\n",
		int(math.Ceil(tile.Seconds())))
	for k := range n {
		length := min(tile, d-time.Duration(k)*tile)
		fmt.Fprintf(&b, "#EXTINF:%.3f,\n#EXT-X-TILES:RESOLUTION=%dx%d,LAYOUT=%dx%d,DURATION=%.3f\n%d.jpg\n",
			length.Seconds(), th.Width, th.Height, th.Columns, th.Rows, th.Interval.Seconds(), k+1)
	}
	b.WriteString("#EXT-X-ENDLIST\n")
	return b.Bytes()
}

// iframePlaylist is a video track's I-frame playlist: per segment, the
// byte range of its keyframe (from the segment's start, so with its moof),
// lasting until the next segment's.
func iframePlaylist(t Track) ([]byte, error) {
	if len(t.Keyframes) != len(t.Segments) {
		return nil, fmt.Errorf("hls: track %s: %d keyframes for %d segments", t.ID, len(t.Keyframes), len(t.Segments))
	}
	pl, err := m3u8.NewMediaPlaylist(0, uint(len(t.Segments)))
	if err != nil {
		return nil, fmt.Errorf("hls: %w", err)
	}
	pl.MediaType = m3u8.VOD
	pl.Iframe = true
	pl.SetIndependentSegments(true)
	pl.Map = &m3u8.Map{URI: "init.mp4"}
	for k, s := range t.Segments {
		seg := &m3u8.MediaSegment{URI: strconv.Itoa(k+1) + ".m4s", Duration: seconds(s.Duration, t.Timescale), Limit: t.Keyframes[k]}
		if err := pl.AppendSegment(seg); err != nil {
			return nil, fmt.Errorf("hls: track %s: %w", t.ID, err)
		}
	}
	pl.TargetDuration = targetDuration(t)
	pl.Close()
	pl.SetVersion(minVersion(pl))
	return pl.Encode().Bytes(), nil
}

// minVersion is the EXT-X-VERSION a media playlist needs (RFC 8216 7):
// what it uses by the library's reckoning, and at least 6 for EXT-X-MAP
// outside an I-frame playlist (4 within one).
func minVersion(pl *m3u8.MediaPlaylist) uint8 {
	v, _ := pl.CalcMinVersion()
	if pl.Map != nil && !pl.Iframe {
		v = max(v, 6)
	}
	return max(v, 4)
}

// iframePeak is an I-frame playlist's BANDWIDTH: its largest keyframe's
// bits over its segment's duration.
func iframePeak(t Track) uint32 {
	var peak float64
	for k, s := range t.Segments {
		if d := seconds(s.Duration, t.Timescale); d > 0 && k < len(t.Keyframes) {
			peak = max(peak, float64(t.Keyframes[k])*8/d)
		}
	}
	return uint32(min(math.Ceil(peak), math.MaxUint32))
}

// MaxPlaylistSize bounds the playlists ParseHLS reads.
const MaxPlaylistSize = 4 << 20

// IsHLS reports whether a manifest is an HLS playlist: its URL's path
// ends in .m3u8, or its body starts with #EXTM3U.
func IsHLS(u string, body []byte) bool {
	if pu, err := url.Parse(u); err == nil && strings.HasSuffix(strings.ToLower(pu.Path), ".m3u8") {
		return true
	}
	return startsM3U(body)
}

// startsM3U reports a body that opens with #EXTM3U (after a BOM or blanks).
func startsM3U(body []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(body, "\ufeff \t\r\n"), []byte("#EXTM3U"))
}

// ParseHLS reads a multivariant playlist fetched from base and the media
// playlists it names (through get) into a Manifest: video
// Representations from its variants, audio from its default audio group.
// With content steering, the variants of the default pathway (else the
// first) are taken.
func ParseHLS(data []byte, base *url.URL, get func(*url.URL) ([]byte, error)) (*Manifest, error) {
	return parseHLS(data, base, get, nil)
}

// parseHLS is ParseHLS, and ParseHLSLive when join is not nil.
func parseHLS(data []byte, base *url.URL, get func(*url.URL) ([]byte, error), join *LiveJoin) (*Manifest, error) {
	master, err := decodeMaster(data)
	if err != nil {
		return nil, err
	}
	pathway := ""
	if master.ContentSteering != nil {
		pathway = master.ContentSteering.PathwayId
	}
	if pathway == "" {
		for _, v := range master.Variants {
			if v.PathwayId != "" {
				pathway = v.PathwayId
				break
			}
		}
	}
	m := &Manifest{}
	seen := map[string]bool{}
	audioGroup, videoFamily := "", ""
	var lists []playlistInfo
	for _, v := range master.Variants {
		if v.Iframe || pathway != "" && v.PathwayId != "" && v.PathwayId != pathway {
			continue
		}
		u, err := base.Parse(v.URI)
		if err != nil {
			return nil, fmt.Errorf("hls: variant %q: %w", v.URI, err)
		}
		if seen[u.String()] || !sameFamily(&videoFamily, videoCodecs(v.Codecs)) {
			continue
		}
		seen[u.String()] = true
		w, h := 0, 0
		if v.Resolution != "" {
			if _, err := fmt.Sscanf(v.Resolution, "%dx%d", &w, &h); err != nil {
				return nil, fmt.Errorf("hls: variant %q: resolution %q", v.URI, v.Resolution)
			}
		}
		rep := &Representation{ID: repID(u), Bandwidth: int(v.Bandwidth), Width: w, Height: h, Codecs: videoCodecs(v.Codecs), MimeType: "video/mp4", Playlist: u.String()}
		info, err := readMediaPlaylist(rep, u, get, join != nil)
		if err != nil {
			return nil, err
		}
		lists = append(lists, info)
		m.Video = append(m.Video, rep)
		if audioGroup == "" {
			audioGroup = v.Audio
		}
	}
	if len(m.Video) == 0 {
		return nil, errors.New("hls: no variant streams")
	}
	for _, alt := range master.GetAllAlternatives() {
		if alt.Type != "AUDIO" || alt.GroupId != audioGroup || alt.URI == "" || !alt.Default && len(m.Audio) > 0 {
			continue
		}
		u, err := base.Parse(alt.URI)
		if err != nil {
			return nil, fmt.Errorf("hls: audio %q: %w", alt.URI, err)
		}
		rep := &Representation{ID: repID(u), MimeType: "audio/mp4", Playlist: u.String()}
		info, err := readMediaPlaylist(rep, u, get, join != nil)
		if err != nil {
			return nil, err
		}
		lists = append(lists, info)
		m.Audio = []*Representation{rep}
		if alt.Default {
			break
		}
	}
	slices.SortStableFunc(m.Video, func(a, b *Representation) int { return a.Bandwidth - b.Bandwidth })
	// A reload that finds every playlist closed is a live stream that has
	// ended: its layout goes on from where the player is, without
	// predicted segments.
	if join != nil && (join.Resume || slices.ContainsFunc(lists, func(l playlistInfo) bool { return l.open })) {
		if err := m.layOutLiveHLS(lists, join); err != nil {
			return nil, err
		}
		return m, nil
	}
	for _, s := range m.Video[0].Segments {
		m.Duration += s.Duration
	}
	if len(m.Video[0].Segments) > 0 {
		m.MinBufferTime = m.Video[0].Segments[0].Duration
	}
	return m, nil
}

// repID names a rendition by its playlist's folder (deepcast's layout),
// else by the playlist's name.
func repID(u *url.URL) string {
	parts := strings.Split(strings.TrimSuffix(u.Path, "/"), "/")
	if name := parts[len(parts)-1]; name != HLSMedia || len(parts) < 2 || parts[len(parts)-2] == "" {
		return name // a packager's own names (ffmpeg's s_0.m3u8, s_1.m3u8 in one folder)
	}
	return parts[len(parts)-2]
}

// videoCodecs keeps the video codec of a CODECS list.
func videoCodecs(codecs string) string {
	for c := range strings.SplitSeq(codecs, ",") {
		c = strings.TrimSpace(c)
		if !strings.HasPrefix(c, "mp4a") && !strings.HasPrefix(c, "ac-3") && !strings.HasPrefix(c, "ec-3") && !strings.HasPrefix(c, "opus") {
			return c
		}
	}
	return codecs
}

func decodeMaster(data []byte) (*m3u8.MasterPlaylist, error) {
	pl, kind, err := decodePlaylist(data)
	if err != nil {
		return nil, err
	}
	if kind != m3u8.MASTER {
		return nil, errors.New("hls: a media playlist, not a multivariant playlist")
	}
	return pl.(*m3u8.MasterPlaylist), nil
}

// decodePlaylist decodes a playlist strictly, turning a panic of the
// decoder on hostile input into an error.
func decodePlaylist(data []byte) (pl m3u8.Playlist, kind m3u8.ListType, err error) {
	defer func() {
		if r := recover(); r != nil {
			pl, err = nil, fmt.Errorf("hls: malformed playlist: %v", r)
		}
	}()
	if len(data) > MaxPlaylistSize {
		return nil, 0, fmt.Errorf("hls: %d bytes is larger than %d", len(data), MaxPlaylistSize)
	}
	if !startsM3U(data) {
		return nil, 0, errors.New("hls: not a playlist (no #EXTM3U)")
	}
	pl, kind, err = m3u8.DecodeWith(*bytes.NewBuffer(data), true, []m3u8.CustomDecoder{imageStream{}})
	if err != nil {
		return nil, 0, fmt.Errorf("hls: %w", err)
	}
	return pl, kind, nil
}

// maxHLSSegments bounds the segments of one media playlist.
const maxHLSSegments = 1 << 20

// playlistInfo is what a media playlist says besides its segments.
type playlistInfo struct {
	open   bool          // live: no EXT-X-ENDLIST
	target time.Duration // EXT-X-TARGETDURATION
}

// readMediaPlaylist fetches a media playlist and fills rep's init and
// segments from it. A live one (without EXT-X-ENDLIST) is refused unless
// live; its segments are numbered by their media sequence numbers.
func readMediaPlaylist(rep *Representation, u *url.URL, get func(*url.URL) ([]byte, error), live bool) (info playlistInfo, err error) {
	data, err := get(u)
	if err != nil {
		return info, fmt.Errorf("hls: media playlist %s: %w", u, err)
	}
	pl, kind, err := decodePlaylist(data)
	if err != nil {
		return info, fmt.Errorf("media playlist %s: %w", u, err)
	}
	if kind != m3u8.MEDIA {
		return info, fmt.Errorf("hls: %s is not a media playlist", u)
	}
	mp := pl.(*m3u8.MediaPlaylist)
	if !mp.Closed && !live {
		return info, fmt.Errorf("hls: %s is a live playlist (no EXT-X-ENDLIST): a live stream is played (deepcast play -duration D), not simulated", u)
	}
	info = playlistInfo{open: !mp.Closed, target: time.Duration(min(mp.TargetDuration, 3600)) * time.Second}
	first := 1
	if live {
		if mp.SeqNo > 1<<40 {
			return info, fmt.Errorf("hls: %s: EXT-X-MEDIA-SEQUENCE %d is too large", u, mp.SeqNo)
		}
		first = int(mp.SeqNo)
	}
	if mp.Map != nil {
		if rep.Init, rep.InitRange, err = hlsInit(u, mp.Map); err != nil {
			return info, err
		}
	}
	// The library reads a missing @o as 0; RFC 8216 §4.3.2.2 makes it the
	// byte after the previous segment's sub-range.
	offsets := byteRangeOffsets(data)
	if n := len(slices.DeleteFunc(slices.Clone(mp.GetAllSegments()), func(s *m3u8.MediaSegment) bool { return s.Limit == 0 })); n != len(offsets) {
		return info, fmt.Errorf("hls: %s: %d EXT-X-BYTERANGE tags for %d segments of a positive length", u, len(offsets), n)
	}
	ranged := 0
	var prev Segment
	var prevEnd int64
	var start time.Duration
	for k, s := range mp.GetAllSegments() {
		if k >= maxHLSSegments {
			return info, fmt.Errorf("hls: %s has more than %d segments", u, maxHLSSegments)
		}
		su, err := u.Parse(s.URI)
		if err != nil {
			return info, fmt.Errorf("hls: %s: segment %q: %w", u, s.URI, err)
		}
		if s.Duration < 0 || math.IsNaN(s.Duration) || s.Duration > 3600 {
			return info, fmt.Errorf("hls: %s: segment %q lasts %v s", u, s.URI, s.Duration)
		}
		d := time.Duration(math.Round(s.Duration * float64(time.Second)))
		seg := Segment{Number: first + k, Start: start, Duration: d, URL: su.String()}
		if s.Map != nil && k > 0 {
			// A new EXT-X-MAP (after a discontinuity): this segment on needs it.
			if seg.Init, seg.InitRange, err = hlsInit(u, s.Map); err != nil {
				return info, err
			}
		}
		if s.Limit != 0 {
			off := s.Offset
			if ranged < len(offsets) && !offsets[ranged] {
				if prev.Range == "" || prev.URL != seg.URL {
					return info, fmt.Errorf("hls: %s: segment %d's EXT-X-BYTERANGE has no offset and follows no sub-range of %q", u, k+1, s.URI)
				}
				off = prevEnd + 1
			}
			ranged++
			r, err := subRange(s.Limit, off)
			if err != nil {
				return info, fmt.Errorf("hls: %s: segment %d's EXT-X-BYTERANGE: %w", u, k+1, err)
			}
			seg.Range, prevEnd = r.String(), r.last
		}
		rep.Segments = append(rep.Segments, seg)
		prev = seg
		start += d
	}
	if len(rep.Segments) == 0 {
		return info, fmt.Errorf("hls: %s has no segments", u)
	}
	return info, nil
}

// hlsInit is the initialization segment an EXT-X-MAP in playlist u names:
// its URL and byte range ("" for the whole resource).
func hlsInit(u *url.URL, m *m3u8.Map) (string, string, error) {
	iu, err := u.Parse(m.URI)
	if err != nil {
		return "", "", fmt.Errorf("hls: %s: EXT-X-MAP %q: %w", u, m.URI, err)
	}
	if m.Limit == 0 {
		return iu.String(), "", nil
	}
	r, err := subRange(m.Limit, m.Offset)
	if err != nil {
		return "", "", fmt.Errorf("hls: %s: EXT-X-MAP BYTERANGE: %w", u, err)
	}
	return iu.String(), r.String(), nil
}

// subRange is the byte range of an HLS BYTERANGE: n bytes from offset o.
func subRange(n, o int64) (byteRange, error) {
	if n <= 0 || o < 0 || o > 1<<62 || n > 1<<62 {
		return byteRange{}, fmt.Errorf("%d@%d is not a byte range", n, o)
	}
	return byteRange{o, o + n - 1}, nil
}

// byteRangeOffsets tells, for each EXT-X-BYTERANGE tag of a media
// playlist in order, whether it gives its offset (@o).
func byteRangeOffsets(data []byte) []bool {
	var out []bool
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "#EXT-X-BYTERANGE:"); ok {
			out = append(out, strings.Contains(v, "@"))
		}
	}
	return out
}

// Pathway is one place an HLS presentation can be fetched from: a base
// URL (ending in "/") against which the playlist's URIs resolve, named
// for content steering.
type Pathway struct {
	Name string
	Base string
}

// RewriteHLS returns a multivariant playlist whose variant, I-frame and
// audio URIs are absolute on the pathways: with one pathway and no
// steering, on it alone; with steering (the URI of a steering server),
// every variant and rendition group once per pathway, tagged with its
// PATHWAY-ID (each pathway its own audio group), and an
// EXT-X-CONTENT-STEERING tag naming the first pathway as the default.
func RewriteHLS(data []byte, pathways []Pathway, steering string) ([]byte, error) {
	if len(pathways) == 0 {
		return nil, errors.New("hls: no pathway")
	}
	in, err := decodeMaster(data)
	if err != nil {
		return nil, err
	}
	if len(in.Variants) == 0 {
		return nil, errors.New("hls: a multivariant playlist without variants")
	}
	out := m3u8.NewMasterPlaylist()
	out.SetIndependentSegments(in.IndependentSegments())
	for _, pw := range pathways {
		abs, err := pw.resolver()
		if err != nil {
			return nil, err
		}
		groups := map[string]string{} // group ID in -> out
		var alts []*m3u8.Alternative
		for _, a := range in.GetAllAlternatives() {
			c := *a
			if c.URI != "" {
				if c.URI, err = abs(c.URI); err != nil {
					return nil, err
				}
			}
			if steering != "" {
				groups[a.GroupId] = a.GroupId + "-" + pw.Name
				c.GroupId = groups[a.GroupId]
			}
			alts = append(alts, &c)
		}
		for _, v := range in.Variants {
			params := v.VariantParams
			uri, err := abs(v.URI)
			if err != nil {
				return nil, err
			}
			params.Alternatives = nil
			if !params.Iframe {
				for _, a := range alts {
					for _, in := range []string{params.Audio, params.Subtitles} {
						if g, ok := groups[in]; in != "" && (a.GroupId == in || ok && a.GroupId == g) {
							params.Alternatives = append(params.Alternatives, a)
						}
					}
				}
			}
			if steering != "" {
				params.PathwayId = pw.Name
				if g, ok := groups[params.Audio]; ok {
					params.Audio = g
				}
				if g, ok := groups[params.Subtitles]; ok {
					params.Subtitles = g
				}
			}
			out.Append(uri, nil, params)
		}
		if steering == "" {
			break
		}
	}
	if steering != "" {
		out.ContentSteering = &m3u8.ContentSteering{ServerURI: steering, PathwayId: pathways[0].Name}
	}
	// The thumbnails go on the default pathway alone: Shaka, the player
	// that reads them, knows no PATHWAY-ID on an image stream and would
	// list each pathway's copy as a track of its own; a player that loses
	// that pathway loses only its seek previews.
	if tag, ok := in.Custom[imageStreamTag].(imageStream); ok {
		uri, at, found := attribute(tag.attrs, "URI")
		if !found || len(uri) < 2 {
			return nil, errors.New("hls: image stream without a URI")
		}
		abs, err := pathways[0].resolver()
		if err != nil {
			return nil, err
		}
		u, err := abs(strings.Trim(uri, `"`))
		if err != nil {
			return nil, err
		}
		out.SetCustomTag(imageStream{tag.attrs[:at] + `"` + u + `"` + tag.attrs[at+len(uri):]})
	}
	v, _ := out.CalcMinVersion()
	out.SetVersion(v)
	res := defaultsFirst(out.Encode().Bytes())
	// The playlist library can write back, from a malformed attribute (an
	// unterminated quote), a playlist that no reader parses: refuse it
	// here rather than send players one.
	if _, err := decodeMaster(res); err != nil {
		return nil, fmt.Errorf("hls: the playlist cannot be rewritten: %w", err)
	}
	return res, nil
}

// resolver resolves URI references against the pathway's base.
func (pw Pathway) resolver() (func(ref string) (string, error), error) {
	base, err := url.Parse(pw.Base)
	if err != nil {
		return nil, fmt.Errorf("hls: pathway %s: %w", pw.Name, err)
	}
	return func(ref string) (string, error) {
		u, err := base.Parse(ref)
		if err != nil {
			return "", fmt.Errorf("hls: URI %q: %w", ref, err)
		}
		return u.String(), nil
	}, nil
}

// uniqueNames gives the renditions of one group their NAMEs: what a
// player's menu shows, unique in the group (RFC 8216), "English 2" after
// "English".
type uniqueNames map[string]bool

func (u uniqueNames) name(label string) string {
	base := playlistName(label)
	name := base
	for n := 2; u[name]; n++ {
		name = fmt.Sprintf("%s %d", base, n)
	}
	u[name] = true
	return name
}

// playlistName is a label fit for a quoted playlist attribute: a quote
// or a line break would end the attribute or the line.
func playlistName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// defaultsFirst moves a multivariant playlist's DEFAULT=YES renditions
// (EXT-X-MEDIA) ahead of the others, which keep their order. The
// playlist library writes renditions sorted by name, and a player that
// finds several renditions of the viewer's language and no other way to
// choose (Shaka) takes the first: the director's commentary before the
// film's own sound.
func defaultsFirst(playlist []byte) []byte {
	lines := bytes.SplitAfter(playlist, []byte("\n"))
	var at []int
	var media [][]byte
	for i, l := range lines {
		if bytes.HasPrefix(l, []byte("#EXT-X-MEDIA:")) {
			at = append(at, i)
			media = append(media, l)
		}
	}
	slices.SortStableFunc(media, func(a, b []byte) int {
		return cmp.Compare(boolInt(!isDefault(a)), boolInt(!isDefault(b)))
	})
	for k, i := range at {
		lines[i] = media[k]
	}
	return bytes.Join(lines, nil)
}

// isDefault says whether an EXT-X-MEDIA line has DEFAULT=YES among its
// attributes (not inside a quoted value such as a NAME).
func isDefault(line []byte) bool {
	list := string(line[bytes.IndexByte(line, ':')+1:])
	v, _, _ := attribute(strings.TrimRight(list, "\r\n"), "DEFAULT")
	return v == "YES"
}

// attribute finds an attribute of an HLS attribute list by name (never
// inside another's quoted value) and gives its value as written (a
// quoted string with its quotes) and where that value starts in list.
func attribute(list, name string) (value string, at int, found bool) {
	quoted := false
	for i := 0; i < len(list); i++ {
		switch {
		case list[i] == '"':
			quoted = !quoted
		case !quoted && (i == 0 || list[i-1] == ',') && strings.HasPrefix(list[i:], name+"="):
			at = i + len(name) + 1
			end, q := at, false
			for ; end < len(list) && (q || list[end] != ','); end++ {
				if list[end] == '"' {
					q = !q
				}
			}
			return list[at:end], at, true
		}
	}
	return "", 0, false
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
