package media

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
)

// Probe is what ffprobe tells about a source file.
type Probe struct {
	Path     string
	Format   string
	Duration float64 // seconds
	Size     int64
	Video    *VideoStream
	// Audio is the sound a player starts with: the stream flagged default,
	// else the first. Nil for a silent source.
	Audio *AudioStream
	// Audios is every audio stream (languages, commentary, description),
	// in the file's order, at most MaxAudioStreams.
	Audios []*AudioStream
	// Subtitles is every text subtitle stream (SubRip, ASS, MP4 timed
	// text, WebVTT), in the file's order, at most MaxSubtitleStreams;
	// PictureSubtitles counts the others (DVD, Blu-ray and DVB bitmaps),
	// which no web player shows.
	Subtitles        []*SubtitleStream
	PictureSubtitles int
	// Untrusted: the file came from an untrusted party (ProbeUpload), and
	// ffmpeg reads it with the same restrictions.
	Untrusted bool
}

// VideoStream describes a source's first video stream.
type VideoStream struct {
	Index int
	Codec string
	// Width and Height are the picture's as it is shown, in square
	// pixels: a phone's portrait video, stored landscape with a rotation
	// in its display matrix (which ffmpeg's decoder applies), is taller
	// than wide here, and an anamorphic one (a DVD's 720x480 at 16:9) is
	// as wide as its sample aspect ratio makes it (854x480).
	Width  int
	Height int
	// Interlaced says the frames hold two fields each (field order top or
	// bottom first: broadcast, DVD and camcorder sources).
	Interlaced bool
	// Colour is how the pixel values are to be read, as the stream tags
	// it ("" where it does not).
	Colour Colour
	// Rotation is the display matrix's rotation as ffprobe gives it, in
	// whole quarter turns (0, 90, 180 or 270 degrees), which the decoder
	// applies.
	Rotation  int
	FrameRate Rational
	Frames    int     // from the container's header; 0 when unknown
	Duration  float64 // seconds; the container's duration when the stream has none
}

// AudioStream describes one of a source's audio streams.
type AudioStream struct {
	Index      int
	Codec      string
	SampleRate int
	Channels   int
	// Lang is the stream's language as a BCP 47 tag ("en", "fr"), from
	// its language tag (ISO 639-2, "eng" or "fre"); "" when it has none,
	// "und" or one that names no language.
	Lang string
	// Title is the stream's title tag ("Director's commentary"), cleaned
	// of control characters and cut to 64 characters; "" when none.
	Title string
	// Role is what the stream is to a viewer, in DASH's Role words:
	// "main" (the one to start with), "commentary", "description" (audio
	// description for the blind and partially sighted), "dub", or
	// "alternate" for any other.
	Role string
}

// MaxAudioStreams bounds the audio streams packaged from one source: a
// film has a few languages and commentaries, and a hostile file's
// thousand streams would each cost an encode.
const MaxAudioStreams = 16

// Rational is a fraction such as a frame rate of 30000/1001.
type Rational struct{ Num, Den int }

// Float returns the fraction's value, 0 for a zero denominator.
func (r Rational) Float() float64 {
	if r.Den == 0 {
		return 0
	}
	return float64(r.Num) / float64(r.Den)
}

// String formats the rational as DASH frameRate does: "30" or "30000/1001".
func (r Rational) String() string {
	if r.Den == 1 {
		return strconv.Itoa(r.Num)
	}
	return fmt.Sprintf("%d/%d", r.Num, r.Den)
}

// ParseRational reads "30/1", "30000/1001" or "25".
func ParseRational(s string) (Rational, error) {
	n, d, found := strings.Cut(s, "/")
	num, err := strconv.Atoi(n)
	if err != nil {
		return Rational{}, fmt.Errorf("rational %q: %w", s, err)
	}
	den := 1
	if found {
		if den, err = strconv.Atoi(d); err != nil {
			return Rational{}, fmt.Errorf("rational %q: %w", s, err)
		}
	}
	if num < 0 || den <= 0 {
		return Rational{}, fmt.Errorf("rational %q: must be non-negative over a positive denominator", s)
	}
	g := gcd(num, den)
	if g > 1 {
		num, den = num/g, den/g
	}
	return Rational{num, den}, nil
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// ffprobeOutput is the subset of `ffprobe -print_format json` we read.
type ffprobeOutput struct {
	Streams []struct {
		Index             int    `json:"index"`
		CodecType         string `json:"codec_type"`
		CodecName         string `json:"codec_name"`
		Width             int    `json:"width"`
		Height            int    `json:"height"`
		AvgFrameRate      string `json:"avg_frame_rate"`
		RFrameRate        string `json:"r_frame_rate"`
		NbFrames          string `json:"nb_frames"`
		Duration          string `json:"duration"`
		SampleRate        string `json:"sample_rate"`
		Channels          int    `json:"channels"`
		SampleAspectRatio string `json:"sample_aspect_ratio"`
		FieldOrder        string `json:"field_order"`
		ColorSpace        string `json:"color_space"`
		ColorTransfer     string `json:"color_transfer"`
		ColorPrimaries    string `json:"color_primaries"`
		ColorRange        string `json:"color_range"`
		Disposition       struct {
			AttachedPic     int `json:"attached_pic"`
			Default         int `json:"default"`
			Dub             int `json:"dub"`
			Comment         int `json:"comment"`
			VisualImpaired  int `json:"visual_impaired"`
			HearingImpaired int `json:"hearing_impaired"`
			Forced          int `json:"forced"`
		} `json:"disposition"`
		// Tags: language, title and, in Matroska, DURATION (the
		// stream's length, which has no field of its own there).
		Tags     map[string]string `json:"tags"`
		SideData []struct {
			Type     string  `json:"side_data_type"`
			Rotation float64 `json:"rotation"`
		} `json:"side_data_list"`
	} `json:"streams"`
	Format struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
		Size       string `json:"size"`
	} `json:"format"`
}

// ProbeFile runs ffprobe on path and checks that it is a usable video source.
// Errors name the file and the cause.
func ProbeFile(ctx context.Context, path string) (*Probe, error) {
	return probeFile(ctx, path, false)
}

// ProbeUpload is ProbeFile for a file from an untrusted party (an ingest
// upload): it must be a plain media container that references no other
// file, or it is refused. Why: a playlist (HLS, concat, ...) or an image
// sequence names other files, and ffmpeg would read files of the server's
// into a published asset.
func ProbeUpload(ctx context.Context, path string) (*Probe, error) {
	return probeFile(ctx, path, true)
}

// uploadFormats are the demuxers an upload may be read with: containers
// that hold their media themselves (ffmpeg matches any name of a
// demuxer's list, so "mov" admits "mov,mp4,m4a,3gp,3g2,mj2").
var uploadFormats = []string{"mov", "matroska", "avi", "mpegts", "flv", "ogg", "mpeg", "asf", "mxf", "h264", "hevc"}

// untrustedInputArgs go before an untrusted "-i": read the one local file
// with a listed demuxer and nothing else.
func untrustedInputArgs() []string {
	return []string{"-protocol_whitelist", "file", "-format_whitelist", strings.Join(uploadFormats, ",")}
}

// plainContainer reports whether an ffprobe format_name is one of the
// upload formats.
func plainContainer(formatName string) bool {
	for name := range strings.SplitSeq(formatName, ",") {
		if slices.Contains(uploadFormats, name) {
			return true
		}
	}
	return false
}

func probeFile(ctx context.Context, path string, untrusted bool) (*Probe, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", path, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("source %s: is a directory, not a video file", path)
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("source %s: file is empty", path)
	}
	args := []string{"-v", "error", "-print_format", "json", "-show_format", "-show_streams"}
	if untrusted {
		args = append(args, untrustedInputArgs()...)
	}
	cmd := exec.CommandContext(ctx, "ffprobe", append(args, "--", path)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("source %s: ffprobe not found on PATH (install ffmpeg)", path)
		}
		if untrusted && strings.Contains(stderr.String(), "whitelist") {
			return nil, fmt.Errorf("source %s: not a plain media container (playlists, image sequences and files that name other files are refused): %s", path, firstLine(stderr.String(), err.Error()))
		}
		return nil, fmt.Errorf("source %s: not a readable media file: %s", path, firstLine(stderr.String(), err.Error()))
	}
	p, err := parseProbe(stdout.Bytes())
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", path, err)
	}
	if untrusted && !plainContainer(p.Format) {
		return nil, fmt.Errorf("source %s: format %q is not a plain media container (accepted: %s)", path, p.Format, strings.Join(uploadFormats, ", "))
	}
	p.Untrusted = untrusted
	p.Path = path
	if p.Size == 0 {
		p.Size = st.Size()
	}
	return p, nil
}

// parseProbe interprets ffprobe's JSON; it is fuzzed, so it must never panic.
func parseProbe(data []byte) (*Probe, error) {
	var out ffprobeOutput
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("ffprobe output: %w", err)
	}
	p := &Probe{Format: out.Format.FormatName}
	if out.Format.Duration != "" {
		d, err := strconv.ParseFloat(out.Format.Duration, 64)
		if err == nil && d > 0 && !math.IsInf(d, 0) {
			p.Duration = d
		}
	}
	p.Size, _ = strconv.ParseInt(out.Format.Size, 10, 64)
	for _, s := range out.Streams {
		switch s.CodecType {
		case "video":
			if p.Video != nil || s.Disposition.AttachedPic == 1 {
				continue
			}
			fr, err := ParseRational(s.AvgFrameRate)
			if err != nil || fr.Num == 0 {
				fr, _ = ParseRational(s.RFrameRate)
			}
			frames, _ := strconv.Atoi(s.NbFrames)
			dur, _ := strconv.ParseFloat(s.Duration, 64)
			if dur <= 0 || math.IsInf(dur, 0) || math.IsNaN(dur) {
				// Matroska keeps it as a tag: without it, the container's
				// length (which subtitles outlasting the picture lengthen)
				// would pass for the picture's.
				dur = matroskaDuration(s.Tags)
			}
			v := &VideoStream{Index: s.Index, Codec: s.CodecName, Width: s.Width, Height: s.Height, FrameRate: fr, Frames: frames, Duration: dur}
			v.Width = shownWidth(s.Width, s.SampleAspectRatio)
			v.Interlaced = slices.Contains([]string{"tt", "bb", "tb", "bt"}, s.FieldOrder)
			v.Colour = Colour{Matrix: s.ColorSpace, Transfer: s.ColorTransfer, Primaries: s.ColorPrimaries, Range: s.ColorRange}
			for _, sd := range s.SideData {
				if sd.Type == "Display Matrix" {
					v.Rotation = quarterTurns(sd.Rotation) * 90
				}
			}
			if v.Rotation%180 != 0 {
				v.Width, v.Height = v.Height, v.Width
			}
			p.Video = v
		case "audio":
			if len(p.Audios) == MaxAudioStreams {
				continue
			}
			sr, _ := strconv.Atoi(s.SampleRate)
			a := &AudioStream{Index: s.Index, Codec: s.CodecName, SampleRate: sr, Channels: s.Channels,
				Lang: LanguageTag(s.Tags["language"]), Title: cleanTitle(s.Tags["title"])}
			switch d := s.Disposition; {
			case d.VisualImpaired == 1:
				a.Role = "description"
			case d.Comment == 1:
				a.Role = "commentary"
			case d.Dub == 1:
				a.Role = "dub"
			default:
				a.Role = "alternate"
			}
			if s.Disposition.Default == 1 && p.Audio == nil && a.Role != "description" && a.Role != "commentary" {
				p.Audio = a
			}
			p.Audios = append(p.Audios, a)
		case "subtitle":
			if !slices.Contains(textSubtitleCodecs, s.CodecName) {
				p.PictureSubtitles++
				continue
			}
			if len(p.Subtitles) == MaxSubtitleStreams {
				continue
			}
			sub := &SubtitleStream{Index: s.Index, Codec: s.CodecName, Lang: LanguageTag(s.Tags["language"]), Title: cleanTitle(s.Tags["title"]),
				Role: "subtitle"}
			switch {
			case s.Disposition.Forced == 1:
				sub.Role = "forced-subtitle"
			case s.Disposition.HearingImpaired == 1:
				sub.Role = "caption"
			}
			p.Subtitles = append(p.Subtitles, sub)
		}
	}
	if p.Audio == nil && len(p.Audios) > 0 {
		// No stream is flagged default: the first that is not a
		// commentary or a description.
		p.Audio = p.Audios[0]
		for _, a := range p.Audios {
			if a.Role == "alternate" || a.Role == "dub" {
				p.Audio = a
				break
			}
		}
	}
	if p.Audio != nil {
		p.Audio.Role = "main"
	}
	switch {
	case p.Video == nil:
		return nil, fmt.Errorf("no video stream (found %d other streams)", len(out.Streams))
	case p.Video.Width <= 0 || p.Video.Height <= 0:
		return nil, fmt.Errorf("video stream has no picture size (corrupt or truncated?)")
	case p.Video.Width > maxSourceSide || p.Video.Height > maxSourceSide || p.Video.Width*p.Video.Height > maxSourcePixels:
		return nil, fmt.Errorf("video is %dx%d: larger than deepcast encodes from (8K, %d pixels a frame; %d on a side)",
			p.Video.Width, p.Video.Height, maxSourcePixels, maxSourceSide)
	case p.Video.FrameRate.Float() <= 0 || p.Video.FrameRate.Float() > 300:
		return nil, fmt.Errorf("video stream has no usable frame rate (%s)", p.Video.FrameRate)
	case p.Duration <= 0:
		return nil, fmt.Errorf("no duration (corrupt or truncated?)")
	}
	if p.Video.Duration == 0 {
		p.Video.Duration = p.Duration
	}
	return p, nil
}

// matroskaDuration reads a Matroska stream's DURATION tag
// ("00:01:23.456000000", or DURATION-eng from some muxers) in seconds; 0
// when there is none or it does not parse.
func matroskaDuration(tags map[string]string) float64 {
	v, ok := tags["DURATION"]
	if !ok {
		for k, t := range tags {
			if strings.HasPrefix(k, "DURATION-") {
				v = t
				break
			}
		}
	}
	var h, m int
	var sec float64
	if n, err := fmt.Sscanf(v, "%d:%d:%f", &h, &m, &sec); n != 3 || err != nil || h < 0 || m < 0 || m > 59 || sec < 0 || sec >= 60 {
		return 0
	}
	return float64(h)*3600 + float64(m)*60 + sec
}

// Colour is a video stream's colour description, in ffprobe's names.
type Colour struct {
	Matrix    string // bt709, bt2020nc, ...
	Transfer  string // bt709, smpte2084 (PQ), arib-std-b67 (HLG), ...
	Primaries string // bt709, bt2020, ...
	Range     string // tv or pc
}

// HDR reports a high-dynamic-range transfer: PQ (HDR10, Dolby Vision's
// base) or HLG (broadcast, and what phones record by default).
func (c Colour) HDR() bool { return c.Transfer == "smpte2084" || c.Transfer == "arib-std-b67" }

// WideGamut reports BT.2020 primaries, which an SDR rendition's BT.709
// pixels cannot hold as they are.
func (c Colour) WideGamut() bool { return c.Primaries == "bt2020" }

// shownWidth is the width of a picture of width coded pixels of the
// sample aspect ratio sar ("32:27"): the width at which its square-pixel
// renditions show it unsqueezed (a DVD's 720x480 at 32:27 is 854x480,
// HDV's 1440x1080 at 4:3 is 1920x1080), to an even number. An unknown, square or absurd
// ratio (beyond 1:4 to 4:1) leaves it as it is.
func shownWidth(width int, sar string) int {
	num, den, ok := strings.Cut(sar, ":")
	if !ok {
		return width
	}
	n, err1 := strconv.Atoi(num)
	d, err2 := strconv.Atoi(den)
	if err1 != nil || err2 != nil || n <= 0 || d <= 0 || n == d {
		return width
	}
	r := float64(n) / float64(d)
	if r < 0.25 || r > 4 {
		return width
	}
	return 2 * int(math.Round(float64(width)*r/2)) // 4:2:0 renditions need even sizes
}

// quarterTurns is a rotation in degrees as whole quarter turns, 0 to 3.
// Like ffmpeg's decoder, it takes an angle within a degree of a quarter
// turn for one; any other angle is turned inside the same frame, which
// keeps its size, so it counts as none here.
func quarterTurns(deg float64) int {
	if math.IsNaN(deg) || math.IsInf(deg, 0) || math.Abs(deg) > 1e6 {
		return 0
	}
	turns := math.Round(deg / 90)
	if math.Abs(deg-turns*90) > 1 {
		return 0
	}
	return int(math.Mod(math.Mod(turns, 4)+4, 4))
}

// maxSourceSide and maxSourcePixels bound a source's picture: H.264's and
// HEVC's highest levels (8192x4352). A file that claims more (an upload
// that says 16384x16384, say) would have ffmpeg hold gigabytes of decoded
// frames before any rung came out, for a ladder that tops out at 8192 anyway.
const (
	maxSourceSide   = 8192
	maxSourcePixels = 8192 * 4352
)

// firstLine returns the first non-empty line of s, or fallback.
func firstLine(s, fallback string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			return line
		}
	}
	return fallback
}
