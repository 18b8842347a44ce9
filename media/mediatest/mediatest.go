// Package mediatest gives tests of every package real packaged content and
// an independent client (ffmpeg) to check it with. It makes its content once
// per test binary with the real ffmpeg and packager, kept small so the whole
// suite stays fast on two cores.
package mediatest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deepcast/deepcast/media"
)

// AssetName is the name of the packaged test asset.
const AssetName = "clip"

// Test content: short, small, two rungs and audio.
const (
	Duration = 6 * time.Second
	Width    = 640
	Height   = 360
	Ladder   = "640x360@800k,320x180@250k"
	FPS      = 30
)

var (
	once    sync.Once
	dir     string
	onceErr error
)

// setup makes the sample and packages it, once per test binary.
func setup() {
	dir, onceErr = os.MkdirTemp("", "deepcast-mediatest-")
	if onceErr != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	src := filepath.Join(dir, "source.mp4")
	if onceErr = media.MakeSample(ctx, src, media.SampleOptions{Duration: Duration, Width: Width, Height: Height, FPS: FPS}); onceErr != nil {
		return
	}
	ladder, err := media.ParseLadder(Ladder)
	if err != nil {
		onceErr = err
		return
	}
	_, onceErr = media.Package(ctx, []string{src}, media.PackageOptions{Library: filepath.Join(dir, "library"), Name: AssetName, Ladder: ladder})
}

// Source returns the path of the synthetic source video.
func Source(tb testing.TB) string {
	tb.Helper()
	once.Do(setup)
	if onceErr != nil {
		tb.Fatalf("mediatest: %v", onceErr)
	}
	return filepath.Join(dir, "source.mp4")
}

// Library returns a library folder holding the packaged asset AssetName.
// Tests must not modify it; use CopyLibrary for that.
func Library(tb testing.TB) string {
	Source(tb)
	return filepath.Join(dir, "library")
}

// CopyLibrary copies the packaged library into a fresh test folder (symlinks kept).
func CopyLibrary(tb testing.TB) string {
	tb.Helper()
	dst := filepath.Join(tb.TempDir(), "library")
	out, err := exec.Command("cp", "-a", Library(tb), dst).CombinedOutput()
	if err != nil {
		tb.Fatalf("copy library: %v: %s", err, out)
	}
	return dst
}

// Main runs a package's tests and then removes the per-process content:
// use it as the package's TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// CountFrames counts the video packets of a file with ffprobe.
func CountFrames(tb testing.TB, path string) int {
	tb.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
		"-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path).Output()
	if err != nil {
		tb.Fatalf("ffprobe %s: %v", path, err)
	}
	n, err := strconv.Atoi(string(bytes.TrimSpace(out)))
	if err != nil {
		tb.Fatalf("ffprobe %s: %q", path, out)
	}
	return n
}

// StreamCount is what ffmpeg reported for one input stream.
type StreamCount struct {
	Index   int
	Kind    string // "video" or "audio"
	Packets int
	Frames  int
}

var streamLine = regexp.MustCompile(`Input stream #0:(\d+) \((video|audio)\): (\d+) packets read \(\d+ bytes\); (\d+) frames decoded`)

// Decode plays url (a path or an http URL of an MPD) with ffmpeg, mapping
// every stream, and returns the per-stream counts from its verbose log.
// ffmpeg's exit status is not trusted: it exits 0 even when segments 404.
// Input options (such as -ca_file for https URLs) go before -i.
func Decode(ctx context.Context, url string, inputOpts ...string) ([]StreamCount, string, error) {
	args := append([]string{"-hide_banner", "-nostdin", "-v", "verbose"}, inputOpts...)
	cmd := exec.CommandContext(ctx, "ffmpeg", append(args, "-i", url, "-map", "0", "-f", "null", "-")...)
	var log bytes.Buffer
	cmd.Stderr = &log
	err := cmd.Run()
	var counts []StreamCount
	for _, m := range streamLine.FindAllStringSubmatch(log.String(), -1) {
		idx, _ := strconv.Atoi(m[1])
		p, _ := strconv.Atoi(m[3])
		f, _ := strconv.Atoi(m[4])
		counts = append(counts, StreamCount{Index: idx, Kind: m[2], Packets: p, Frames: f})
	}
	if err != nil {
		return counts, log.String(), fmt.Errorf("ffmpeg: %w", err)
	}
	return counts, log.String(), nil
}

// CheckDecodesAll fails the test unless ffmpeg decodes, for every video
// stream of the MPD at url, exactly wantFrames frames, and some audio.
// Input options go to ffmpeg before -i.
func CheckDecodesAll(tb testing.TB, url string, wantVideoStreams, wantFrames int, inputOpts ...string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	counts, log, err := Decode(ctx, url, inputOpts...)
	if err != nil {
		tb.Fatalf("decode %s: %v\n%s", url, err, tail(log))
	}
	videos, audio := 0, 0
	for _, c := range counts {
		switch c.Kind {
		case "video":
			videos++
			if c.Frames != wantFrames {
				tb.Errorf("decode %s: stream %d decoded %d frames, source has %d", url, c.Index, c.Frames, wantFrames)
			}
		case "audio":
			audio++
			if c.Frames == 0 {
				tb.Errorf("decode %s: audio stream %d decoded nothing", url, c.Index)
			}
		}
	}
	if videos != wantVideoStreams || audio == 0 {
		tb.Fatalf("decode %s: %d video and %d audio streams, want %d and 1\n%s", url, videos, audio, wantVideoStreams, tail(log))
	}
}

func tail(s string) string {
	if len(s) > 3000 {
		return "..." + s[len(s)-3000:]
	}
	return s
}

// ValidateMPD checks the MPD file at path against the DASH schema in the
// repository's testdata (xmllint, offline).
func ValidateMPD(tb testing.TB, path string) {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	schema := filepath.Join(filepath.Dir(file), "..", "..", "testdata", "dash-schema")
	cmd := exec.Command("xmllint", "--nonet", "--noout", "--schema", "DASH-MPD.xsd", path)
	cmd.Dir = schema
	cmd.Env = append(os.Environ(), "XML_CATALOG_FILES="+filepath.Join(schema, "catalog.xml"))
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "validates") {
		tb.Fatalf("%s against the DASH schema: %v\n%s", path, err, out)
	}
}

// Sound is one of FilmWithSounds' audio streams and what packaging it
// must make of it.
type Sound struct {
	Rendition, Lang, Role, Label string
	// Peak is the tone's level in dB: each stream's is its own, which
	// tells them apart in what is played.
	Peak float64
	// Channels is the rendition's channel count: 2, or 6 for 5.1.
	Channels int
}

// FilmSounds are the audio renditions of Film's audio streams in the
// file's order: a French dub first; the English sound, flagged default,
// second: a 7.1 stream (its tone in the front left and right speakers,
// and at FilmCentre in the centre one), so in stereo and in 5.1; then
// an English director's commentary and an English audio description.
var FilmSounds = []Sound{
	{"audio-fr-128k", "fr", "alternate", "français", -30, 2},
	{"audio-en-128k", "en", "main", "English", -18, 2},
	{"audio-en-surround-384k", "en", "main", "English (5.1)", -18, 6},
	{"audio-en-commentary-128k", "en", "commentary", "Director's commentary", -42, 2},
	{"audio-en-description-128k", "en", "description", "English (audio description)", -24, 2},
}

// FilmCentre is the level in dB of the English sound's centre speaker.
const FilmCentre = -42.0

// FilmSubtitles are Film's subtitle streams in the file's order, and
// the tracks packaging must make of them. Cue n of each covers
// [2(n-1), 2n) seconds and reads "<Word> n".
var FilmSubtitles = []struct{ ID, Lang, Role, Label, Word string }{
	{"text-en", "en", "subtitle", "English", "English"},
	{"text-fr-caption", "fr", "caption", "français (captions)", "Français"},
}

// WriteSRT writes a SubRip file of d whose cue n covers [2(n-1), 2n)
// seconds and reads "word n", and returns its path.
func WriteSRT(tb testing.TB, path, word string, d time.Duration) string {
	tb.Helper()
	var b strings.Builder
	stamp := func(s int) string { return fmt.Sprintf("00:%02d:%02d,000", s/60, s%60) }
	for n := 1; 2*(n-1) < int(d.Seconds()); n++ {
		fmt.Fprintf(&b, "%d\n%s --> %s\n%s %d\n\n", n, stamp(2*(n-1)), stamp(2*n), word, n)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// Film writes a Matroska film of d with a test picture, the four audio
// streams of FilmSounds (tones at their levels) and the two subtitle
// streams of FilmSubtitles, tagged with languages, a title and
// dispositions as a film's are, and returns its path.
func Film(tb testing.TB, dir string, d time.Duration) string {
	tb.Helper()
	src := filepath.Join(dir, "film.mkv")
	en := WriteSRT(tb, filepath.Join(dir, "en.srt"), FilmSubtitles[0].Word, d)
	fr := WriteSRT(tb, filepath.Join(dir, "fr.srt"), FilmSubtitles[1].Word, d)
	FFmpeg(tb, "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=f=880", "-f", "lavfi", "-i", "sine=f=440",
		"-f", "lavfi", "-i", "sine=f=660", "-f", "lavfi", "-i", "sine=f=550", "-i", en, "-i", fr,
		"-t", strconv.FormatFloat(d.Seconds(), 'f', -1, 64),
		"-map", "0:v", "-map", "1:a", "-map", "2:a", "-map", "3:a", "-map", "4:a", "-map", "5:s", "-map", "6:s",
		// lavfi's sine is at -18 dBFS.
		"-filter:a:0", "volume=0.25", "-filter:a:1", "pan=7.1|c0=c0|c1=c0|c2=0.0625*c0", "-filter:a:2", "volume=0.0625", "-filter:a:3", "volume=0.5",
		"-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-c:s", "srt",
		"-metadata:s:a:0", "language=fre", "-metadata:s:a:1", "language=eng", "-metadata:s:a:2", "language=eng",
		"-metadata:s:a:2", "title=Director's commentary", "-metadata:s:a:3", "language=eng",
		"-metadata:s:s:0", "language=eng", "-metadata:s:s:1", "language=fre",
		"-disposition:a:0", "0", "-disposition:a:1", "default", "-disposition:a:2", "comment", "-disposition:a:3", "visual_impaired",
		"-disposition:s:0", "0", "-disposition:s:1", "hearing_impaired", src)
	return src
}

// Turned writes a 2 s 320x180 H.264 video stored as a phone stores a
// portrait one: landscape, with a quarter turn in its display matrix
// (what ffmpeg calls rotate=90), and returns its path.
func Turned(tb testing.TB, dir string) string {
	tb.Helper()
	flat, turned := filepath.Join(dir, "flat.mp4"), filepath.Join(dir, "turned.mp4")
	FFmpeg(tb, "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", "2", "-c:v", "libx264", "-g", "50", "-pix_fmt", "yuv420p", flat)
	FFmpeg(tb, "-i", flat, "-c", "copy", "-metadata:s:v:0", "rotate=90", turned)
	return turned
}

// FFmpeg runs ffmpeg quietly with args (inputs, options, outputs, each
// output overwritten) and fails the test with its messages if it fails.
func FFmpeg(tb testing.TB, args ...string) {
	tb.Helper()
	out, err := exec.Command("ffmpeg", append([]string{"-hide_banner", "-nostdin", "-y", "-v", "error"}, args...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
}
