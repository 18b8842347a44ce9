package media

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// EncodeOptions control the one-pass ladder encode.
type EncodeOptions struct {
	Ladder     Ladder
	SegmentDur time.Duration
	// Preset is the x264 preset; "veryfast" when empty.
	Preset   string
	Progress ProgressFunc
	// AllowDamaged lets an encode that met decode errors succeed (they are
	// counted in Encoded.DecodeErrors); otherwise it fails.
	AllowDamaged bool
	// Thumbnails, when set, are made in the same run from the same
	// decoded pictures (Encoded.Thumbnails names their folder).
	Thumbnails *Thumbnails
	// Sounds are the audio renditions to make; when nil, every audio
	// stream of the source in stereo (Sounds(src.Audios, false)).
	Sounds []Sound
}

// Sound is one audio rendition an encode makes from a source stream: in
// stereo AAC, or (Surround) in 5.1 AAC.
type Sound struct {
	Stream   *AudioStream
	Surround bool
}

// SurroundKbps is the AAC bitrate of a 5.1 rendition: 64 kbit/s a
// channel, where stereo has 64 too.
const SurroundKbps = 384

// surroundChannels is how many channels a source stream needs for a
// surround rendition: 5.1 and more (6.1 and 7.1 are mixed down to 5.1).
const surroundChannels = 6

// Sounds lists the audio renditions of streams, in their order: each in
// stereo, which every device plays, and, when surround is asked for and
// the stream has six channels or more, in 5.1 right after it.
func Sounds(streams []*AudioStream, surround bool) []Sound {
	var out []Sound
	for _, a := range streams {
		out = append(out, Sound{Stream: a})
		if surround && a.Channels >= surroundChannels {
			out = append(out, Sound{Stream: a, Surround: true})
		}
	}
	return out
}

// Encoded names the files one ffmpeg run wrote: one video file per rung
// (same order as the ladder) and one audio file per Sound (same order as
// EncodeOptions.Sounds).
type Encoded struct {
	Video []string
	Audio []string
	// Thumbnails is the folder of the thumbnail tiles, 1.jpg on ("" when
	// none were asked for).
	Thumbnails string
	// DecodeErrors counts the errors ffmpeg reported reading the source
	// (each a damaged frame or packet); DecodeErrorSample quotes the first.
	DecodeErrors      int
	DecodeErrorSample string
}

// AudioKbps is the AAC bitrate of every packaged asset.
const AudioKbps = 128

// Encode decodes src once and encodes every rung of the ladder (H.264, closed
// GOPs, a keyframe forced at every segment boundary, no scene-cut keyframes)
// plus AAC audio, writing single-track MP4 files into dir.
// Cancelling ctx stops ffmpeg.
func Encode(ctx context.Context, src *Probe, dir string, opt EncodeOptions) (*Encoded, error) {
	if err := checkPreset(opt.Preset); err != nil {
		return nil, fmt.Errorf("encode %s: %w", src.Path, err)
	}
	args, enc := encodeArgs(src, dir, opt)
	if enc.Thumbnails != "" {
		if err := os.MkdirAll(enc.Thumbnails, 0o755); err != nil {
			return nil, fmt.Errorf("encode %s: %w", src.Path, err)
		}
	}
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(interruptSignal) }
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", src.Path, err)
	}
	var stderr tailBuffer
	errs := &lineCounter{}
	cmd.Stderr = io.MultiWriter(&stderr, errs)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("encode %s: ffmpeg not found on PATH (install ffmpeg)", src.Path)
		}
		return nil, fmt.Errorf("encode %s: %w", src.Path, err)
	}
	// The picture's length, not the container's: subtitles (not encoded
	// here) may run past the picture's end.
	total := time.Duration(cmp.Or(src.Video.Duration, src.Duration) * float64(time.Second))
	// How far the encode is: the first rendition's frames at its rate.
	// ffmpeg's out_time is the furthest of all outputs, and a thumbnail
	// tile's reaches to the end of the time its thumbnails cover before
	// the picture does (to the end of a truncated source's index).
	rate, _ := renditionRate(src.Video.FrameRate)
	videoTime := func(p ffmpegProgress) time.Duration {
		if p.Frame > 0 && rate.Float() > 0 {
			return time.Duration(float64(p.Frame) / rate.Float() * float64(time.Second))
		}
		return p.OutTime
	}
	var last time.Duration
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = readFFmpegProgress(stdout, func(p ffmpegProgress) {
			last = videoTime(p)
			if opt.Progress != nil {
				done := last
				if p.End {
					done = total
				}
				opt.Progress(Progress{Stage: "encode", Done: done, Total: total, Speed: p.Speed, Elapsed: time.Since(start)})
			}
		})
		_, _ = io.Copy(io.Discard, stdout)
	})
	wg.Wait()
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("encode %s: %w", src.Path, ctx.Err())
		}
		return nil, fmt.Errorf("encode %s: ffmpeg failed (%v): %s", src.Path, err, stderr.lastLines(3))
	}
	// A source whose index promises more than its data holds (a truncated
	// file with the moov first) decodes "successfully" but short.
	if total > 0 && last < total*9/10-encoderLag(src) {
		err := fmt.Errorf("encode %s: only %.1fs of %.1fs could be decoded (truncated or corrupt source)", src.Path, last.Seconds(), total.Seconds())
		if said := stderr.lastLines(2); said != noMessage {
			err = fmt.Errorf("%w: %s", err, said)
		}
		return nil, err
	}
	// ffmpeg runs at -v error, so every line it writes is an error, and
	// with an exit status of 0 they are the decoder's: damaged frames
	// that would be published concealed or broken.
	enc.DecodeErrors, enc.DecodeErrorSample = errs.count()
	if enc.DecodeErrors > 0 && !opt.AllowDamaged {
		return nil, fmt.Errorf("encode %s: %w: %d decode error(s), the first: %s (package it anyway with -allow-damaged)",
			src.Path, ErrDamagedSource, enc.DecodeErrors, enc.DecodeErrorSample)
	}
	return enc, nil
}

// toSDR is the filter chain (ending in a comma; "" for none) that turns
// pictures of colour c into SDR BT.709, what every rendition is: 8-bit
// H.264 that any player shows as it is. Without it an HDR or wide-gamut
// source's values would be shown as BT.709 ones: grey and washed out.
//   - HLG was made to be shown on SDR screens by converting its transfer
//     and primaries, which zscale does.
//   - PQ holds absolute light up to 10,000 nits: it is made linear (SDR
//     white at 100 nits), tone-mapped with mobius, which leaves what is in
//     SDR's range nearly as it is and compresses only the highlights above
//     it (hable's filmic curve reshapes all of it and darkens the rest), then
//     converted.
//   - BT.2020 primaries with an SDR transfer need only the primaries and
//     matrix converted.
//
// Input properties the stream does not tag, or tags with a name zscale
// does not know, are taken as BT.2020's (the only ones HDR is made in) and
// the transfer as BT.709's.
func toSDR(c Colour) string {
	if !c.HDR() && !c.WideGamut() {
		return ""
	}
	known := func(v string, names []string, def string) string {
		if slices.Contains(names, v) {
			return v
		}
		return def
	}
	rng := "tv"
	if c.Range == "pc" {
		rng = "pc"
	}
	source := fmt.Sprintf("zscale=tin=%s:min=%s:pin=%s:rin=%s",
		known(c.Transfer, zscaleTransfers, "bt709"), known(c.Matrix, zscaleMatrices, "bt2020nc"), known(c.Primaries, zscalePrimaries, "bt2020"), rng)
	if c.Transfer == "smpte2084" {
		return source + ":t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=tonemap=mobius:desat=0,zscale=t=bt709:m=bt709:r=tv,format=yuv420p,"
	}
	return source + ":t=bt709:m=bt709:p=bt709:r=tv,format=yuv420p,"
}

// The names, as ffprobe gives them, that zscale reads as input
// properties.
var (
	zscaleTransfers = []string{"bt709", "smpte170m", "bt470m", "bt470bg", "linear", "log100", "log316", "bt2020-10", "bt2020-12",
		"smpte2084", "iec61966-2-4", "iec61966-2-1", "arib-std-b67"}
	zscaleMatrices  = []string{"bt709", "fcc", "bt470bg", "smpte170m", "ycgco", "bt2020nc", "bt2020c"}
	zscalePrimaries = []string{"bt709", "bt470m", "bt470bg", "smpte170m", "smpte240m", "film", "bt2020", "smpte428", "smpte431", "smpte432"}
)

// encoderLag is how far behind the source's end ffmpeg's last progress
// report may be for a whole encode: it gives the time of the last packet
// written in decoding order, which x264's B-frames hold back by a few
// frames. At 25 frames a second that is a tenth of a second; at 5 (a
// slide show, a screen recording) it is most of a second, more than a
// tenth of a short clip.
func encoderLag(src *Probe) time.Duration {
	const frames = 4
	fps := 25.0
	if src.Video != nil && src.Video.FrameRate.Float() > 0 {
		rate, _ := renditionRate(src.Video.FrameRate)
		fps = rate.Float()
	}
	return time.Duration(frames / fps * float64(time.Second))
}

// maxFrameRate bounds the renditions' frame rate. A phone's 120 or 240
// frames a second would spend the ladder's bitrates, chosen for 24 to 60,
// on two to four times the frames, and decoding them is beyond many of
// the devices that play the low rungs; HLS authoring guidance stops at 60.
const maxFrameRate = 60

// renditionRate is the frame rate of the renditions of a source of frame
// rate r: r itself up to maxFrameRate, else r divided by the smallest
// whole number that brings it there (120 -> 60, 100 -> 50, 90 -> 45), so
// every kept frame is a source frame, evenly spaced. every is that divisor.
func renditionRate(r Rational) (rate Rational, every int) {
	f := r.Float()
	if f <= maxFrameRate || r.Den <= 0 {
		return r, 1
	}
	every = int(math.Ceil(f / maxFrameRate))
	num, den := r.Num, r.Den*every
	if g := gcd(num, den); g > 1 {
		num, den = num/g, den/g
	}
	return Rational{Num: num, Den: den}, every
}

// ErrDamagedSource is a source that decodes with errors.
var ErrDamagedSource = errors.New("damaged source")

// lineCounter counts the non-empty lines written to it and keeps the first.
type lineCounter struct {
	mu      sync.Mutex
	lines   int
	first   string
	partial []byte
}

func (c *lineCounter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partial = append(c.partial, p...)
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		c.add(c.partial[:i])
		c.partial = c.partial[i+1:]
	}
	if len(c.partial) > 4096 { // a line that long still counts once
		c.add(c.partial)
		c.partial = c.partial[:0]
	}
	return len(p), nil
}

func (c *lineCounter) add(line []byte) {
	if l := strings.TrimSpace(string(bytes.ToValidUTF8(line, nil))); l != "" {
		c.lines++
		if c.first == "" {
			c.first = l
		}
	}
}

func (c *lineCounter) count() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.partial) > 0 {
		c.add(c.partial)
		c.partial = nil
	}
	return c.lines, c.first
}

// X264Presets are the x264 presets, fastest first.
var X264Presets = []string{"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo"}

// checkPreset refuses a preset x264 does not have, before any work: ffmpeg
// would only say so after the probe, in its own words.
func checkPreset(p string) error {
	if p != "" && !slices.Contains(X264Presets, p) {
		return fmt.Errorf("x264 preset %q: want one of %s", p, strings.Join(X264Presets, ", "))
	}
	return nil
}

// encodeArgs builds the single ffmpeg command line for the whole ladder.
func encodeArgs(src *Probe, dir string, opt EncodeOptions) ([]string, *Encoded) {
	preset := opt.Preset
	if preset == "" {
		preset = "veryfast"
	}
	seg := opt.SegmentDur.Seconds()
	rate, every := renditionRate(src.Video.FrameRate)
	fps := rate.Float()
	gop := max(1, int(seg*fps+0.5))
	segStr := strconv.FormatFloat(seg, 'f', -1, 64)
	// Besides a keyframe at every boundary, force one on the very last frame:
	// then no B-frame trails the stream in decode order. ffmpeg's DASH
	// demuxer stops at the first representation whose last packet has the
	// lowest timestamp, so trailing B-frames in several representations make
	// it drop the final frames of all but one.
	lastT := strconv.FormatFloat(src.Video.Duration-1.5/fps, 'f', 4, 64)
	keyExpr := "expr:gte(t,n_forced*" + segStr + ")+gte(t," + lastT + ")"

	n := len(opt.Ladder)
	var graph strings.Builder
	graph.WriteString("[0:v:0]")
	if src.Video.Interlaced {
		// Fields woven into a frame comb on every moving edge once the
		// frame is scaled and shown progressively, as every rendition is:
		// one deinterlaced frame per source frame, before the split.
		graph.WriteString("bwdif=mode=send_frame:parity=auto:deint=all,")
	}
	graph.WriteString(toSDR(src.Video.Colour))
	if every > 1 {
		fmt.Fprintf(&graph, "fps=%d/%d,", rate.Num, rate.Den)
	}
	branches := n
	if opt.Thumbnails != nil {
		branches++
	}
	fmt.Fprintf(&graph, "split=%d", branches)
	for i := range branches {
		fmt.Fprintf(&graph, "[s%d]", i)
	}
	for i, r := range opt.Ladder {
		fmt.Fprintf(&graph, ";[s%d]scale=%d:%d:flags=bicubic,setsar=1,format=yuv420p[v%d]", i, r.Width, r.Height, i)
	}
	if opt.Thumbnails != nil {
		fmt.Fprintf(&graph, ";[s%d]%s[thumbs]", n, opt.Thumbnails.thumbnailFilter())
	}
	args := []string{"-hide_banner", "-nostdin", "-y", "-v", "error", "-nostats", "-progress", "pipe:1"}
	if src.Untrusted {
		args = append(args, untrustedInputArgs()...)
	}
	args = append(args, "-i", src.Path, "-filter_complex", graph.String())
	enc := &Encoded{}
	for i, r := range opt.Ladder {
		out := filepath.Join(dir, fmt.Sprintf("video%d.mp4", i))
		enc.Video = append(enc.Video, out)
		args = append(args,
			"-map", fmt.Sprintf("[v%d]", i), "-an", "-sn", "-dn",
			"-c:v", "libx264", "-preset", preset, "-profile:v", "high",
			"-b:v", fmt.Sprintf("%dk", r.Kbps),
			"-maxrate", fmt.Sprintf("%dk", r.Kbps*11/10),
			"-bufsize", fmt.Sprintf("%dk", r.Kbps*2),
			"-g", strconv.Itoa(gop), "-keyint_min", strconv.Itoa(gop), "-sc_threshold", "0",
			"-x264-params", "open-gop=0:scenecut=0",
			"-force_key_frames", keyExpr,
			"-map_metadata", "-1", "-f", "mp4", out)
	}
	if opt.Thumbnails != nil {
		enc.Thumbnails = filepath.Join(dir, "thumbs")
		args = append(append(args, "-map", "[thumbs]"), tileOutput(enc.Thumbnails)...)
	}
	sounds := opt.Sounds
	if sounds == nil {
		sounds = Sounds(src.Audios, false)
	}
	for i, a := range sounds {
		out := filepath.Join(dir, fmt.Sprintf("audio%d.mp4", i))
		enc.Audio = append(enc.Audio, out)
		// The sound keeps its place against the picture: a track that
		// starts late (a camera's, an edit's) is padded with silence from
		// the presentation's start, as every segmented track starts there
		// (the picture's own gap is filled by the constant-rate output).
		// Its language goes into the track header, where the segmenter
		// and any player reading the init segment find it. Surround is
		// the standard 5.1 layout whatever the source's (5.1 with side
		// speakers, 6.1, 7.1), the one AAC decoders map to speakers.
		filter, kbps, channels := "aresample=first_pts=0", AudioKbps, "2"
		if a.Surround {
			filter, kbps, channels = filter+",aformat=channel_layouts=5.1", SurroundKbps, "6"
		}
		args = append(args, "-map", fmt.Sprintf("0:%d", a.Stream.Index), "-vn", "-sn", "-dn",
			"-af", filter, "-c:a", "aac", "-b:a", fmt.Sprintf("%dk", kbps), "-ac", channels, "-ar", "48000",
			"-map_metadata", "-1", "-metadata:s:a:0", "language="+mdhdLanguage(a.Stream.Lang), "-f", "mp4", out)
	}
	return args, enc
}

// runFFmpeg runs ffmpeg with args for at most ten minutes (the short jobs
// beside the encode: subtitles, copied renditions' thumbnails), its last
// lines of stderr in the error.
func runFFmpeg(ctx context.Context, args []string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	var stderr tailBuffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("ffmpeg not found on PATH (install ffmpeg)")
		}
		if msg := stderr.lastLines(3); msg != "" {
			return fmt.Errorf("%w: %s", err, msg)
		}
		return err
	}
	return nil
}

// tailBuffer keeps the last few KiB written to it (ffmpeg's stderr).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 8 << 10

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailMax {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailMax:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) lastLines(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(bytes.ToValidUTF8(t.buf, nil))), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	s := strings.Join(lines, " | ")
	if s == "" {
		return noMessage
	}
	return s
}

// noMessage is lastLines of a tail that holds nothing.
const noMessage = "no message"
