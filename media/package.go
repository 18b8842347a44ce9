package media

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/deepcast/deepcast/manifest"
	"github.com/deepcast/deepcast/media/store"
)

// PackageOptions configure Package.
type PackageOptions struct {
	// Library is a folder or an s3://BUCKET/PREFIX URL; Store, when set,
	// is the library already opened (with its S3 options) and wins.
	Library    string
	Store      store.Store
	Name       string        // asset name; from the first input's file name when empty
	SegmentDur time.Duration // 2 s when zero
	Ladder     Ladder        // the default ladder for the source when nil
	// Copy packages pre-encoded renditions (one input each) without re-encoding.
	Copy     bool
	Preset   string
	Progress ProgressFunc
	// Untrusted inputs (uploads) must be plain media containers and are
	// read with nothing else (see ProbeUpload).
	Untrusted bool
	// AllowDamaged packages a source that decodes with errors; the errors
	// are logged. Without it such a source is refused.
	AllowDamaged bool
	// Encrypt, when set, encrypts every rendition (Common Encryption);
	// the key goes to the asset's private KeysFile.
	Encrypt *Encryption
	// Subtitles are subtitle files to package beside the source's own
	// text subtitle streams.
	Subtitles []Subtitle
	// NoThumbnails leaves out the seek-preview thumbnails (an owner who
	// wants no picture of an encrypted asset in the clear).
	NoThumbnails bool
	// NoSurround makes stereo alone from a source with surround sound,
	// where a 5.1 rendition is otherwise added beside the stereo one.
	NoSurround bool
}

// DefaultSegmentDur is the segment length when none is given.
const DefaultSegmentDur = 2 * time.Second

// Package turns inputs into a DASH asset in the library: probe, encode the
// ladder (or take the inputs as they are with Copy), cut aligned CMAF
// segments, write the MPD and asset.json, and publish the asset atomically.
// On any error nothing is left in the library.
func Package(ctx context.Context, inputs []string, opt PackageOptions) (*Asset, error) {
	if len(inputs) == 0 {
		return nil, fmt.Errorf("package: no input")
	}
	if !opt.Copy && len(inputs) > 1 {
		return nil, fmt.Errorf("package: %d inputs: encoding takes one source (use -copy for pre-encoded renditions)", len(inputs))
	}
	if opt.SegmentDur == 0 {
		opt.SegmentDur = DefaultSegmentDur
	}
	if opt.Encrypt != nil {
		// Checked (and the random key drawn) before any work is done.
		e := *opt.Encrypt
		if err := e.resolve(); err != nil {
			return nil, fmt.Errorf("package: %w", err)
		}
		opt.Encrypt = &e
	}
	if opt.SegmentDur < 500*time.Millisecond || opt.SegmentDur > 30*time.Second {
		return nil, fmt.Errorf("package: segment duration %s outside 0.5s..30s", opt.SegmentDur)
	}
	if err := checkPreset(opt.Preset); err != nil {
		return nil, fmt.Errorf("package: %w", err)
	}
	name := opt.Name
	if name == "" {
		name = NameFromFile(inputs[0])
	}
	if !ValidName(name) {
		return nil, fmt.Errorf("package: asset name %q: %s", name, NameRule)
	}
	probes := make([]*Probe, len(inputs))
	for i, in := range inputs {
		p, err := probeFile(ctx, in, opt.Untrusted)
		if err != nil {
			return nil, err
		}
		probes[i] = p
	}
	lib := opt.Store
	if lib == nil {
		var err error
		if lib, err = store.Open(ctx, opt.Library, store.S3Options{}); err != nil {
			return nil, err
		}
	}
	createdRoot := false
	if f, isFolder := lib.(store.Folder); isFolder {
		if _, err := os.Stat(f.Root); errors.Is(err, os.ErrNotExist) {
			createdRoot = true
		}
	}
	build := newBuildID()
	staging, err := lib.Staging(name)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			store.RemoveWorkFolder(staging)
			if createdRoot {
				os.Remove(lib.String())
			}
		}
	}()
	asset, err := buildAsset(ctx, probes, staging, name, build, opt)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("package %s: %w", name, err)
	}
	var publishProgress func(store.Progress)
	if opt.Progress != nil {
		publishProgress = func(p store.Progress) {
			if p.Live {
				return // the upload's last report already said 100 %
			}
			opt.Progress(Progress{Stage: "publish", Bytes: p.Done, TotalBytes: p.Total, Elapsed: p.Elapsed})
		}
	}
	if err := lib.Publish(ctx, staging, name, build, publishProgress); err != nil {
		return nil, err
	}
	ok = true
	return asset, nil
}

// NameFromFile derives an asset name from a file name: its base without
// extension, with characters outside [A-Za-z0-9._-] replaced by '-'.
func NameFromFile(path string) string {
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	var b strings.Builder
	for _, r := range base {
		if r < 128 && (r == '.' || r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := strings.TrimLeft(b.String(), ".")
	if len(s) > MaxNameLen {
		s = s[:MaxNameLen]
	}
	if s == "" {
		s = "asset"
	}
	return s
}

func newBuildID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// rendition is a track on its way to becoming an on-disk Rendition.
type rendition struct {
	id    string
	track *Track
	cuts  []Cut
	out   Rendition
}

// buildAsset does the work of Package inside the staging folder.
func buildAsset(ctx context.Context, probes []*Probe, staging, name, build string, opt PackageOptions) (*Asset, error) {
	src := probes[0]
	asset := &Asset{Format: assetFormat, Name: name, Build: build, Created: time.Now().UTC().Truncate(time.Second),
		SegmentDuration: opt.SegmentDur.Seconds()}
	for _, p := range probes {
		asset.Sources = append(asset.Sources, Source{File: filepath.Base(p.Path), Size: p.Size, Duration: p.Duration,
			Width: p.Video.Width, Height: p.Video.Height, FrameRate: p.Video.FrameRate.String(), Frames: p.Video.Frames})
	}
	var videoFiles, audioFiles []string
	var sounds []Sound // what the encoded audio files are, in order; nil when copied
	var ids []string
	if opt.Copy {
		videoFiles = make([]string, len(probes))
		for i, p := range probes {
			videoFiles[i] = p.Path
			if len(audioFiles) == 0 && p.Audio != nil {
				audioFiles = []string{p.Path}
			}
		}
	} else {
		ladder := opt.Ladder
		if ladder == nil {
			ladder = DefaultLadder(src.Video.Width, src.Video.Height)
		} else {
			fitted, err := ladder.Fit(src.Video.Width, src.Video.Height)
			if err != nil {
				return nil, fmt.Errorf("package %s: %w", src.Path, err)
			}
			for _, r := range ladder {
				if !slices.Contains(fitted, r) {
					// Never upscaled: said, not silently dropped.
					slog.Warn("ladder rung dropped: larger than the source", "rung", r.String(), "source",
						fmt.Sprintf("%dx%d", src.Video.Width, src.Video.Height))
				}
			}
			ladder = fitted
		}
		asset.Ladder = ladder
		work := filepath.Join(staging, ".encode")
		if err := os.Mkdir(work, 0o755); err != nil {
			return nil, fmt.Errorf("package: %w", err)
		}
		defer os.RemoveAll(work)
		var thumbs *Thumbnails
		if !opt.NoThumbnails {
			plan := planThumbnails(src.Video.Width, src.Video.Height, src.Video.Duration, opt.SegmentDur.Seconds())
			thumbs = &plan
		}
		sounds = Sounds(src.Audios, !opt.NoSurround)
		enc, err := Encode(ctx, src, work, EncodeOptions{Ladder: ladder, SegmentDur: opt.SegmentDur, Preset: opt.Preset, Progress: opt.Progress,
			AllowDamaged: opt.AllowDamaged, Thumbnails: thumbs, Sounds: sounds})
		if err != nil {
			return nil, err
		}
		if thumbs != nil {
			if asset.Thumbnails, err = collectThumbnails(*thumbs, enc.Thumbnails, staging); err != nil {
				return nil, err
			}
		}
		videoFiles, audioFiles = enc.Video, enc.Audio
		if enc.DecodeErrors > 0 {
			asset.DecodeErrors = enc.DecodeErrors
			slog.Warn("packaging a damaged source (-allow-damaged)", "source", src.Path, "decode_errors", enc.DecodeErrors, "first", enc.DecodeErrorSample)
		}
		for _, r := range ladder {
			ids = append(ids, fmt.Sprintf("%dp-%dk", r.Lines(), r.Kbps))
		}
		for _, a := range sounds {
			kbps := AudioKbps
			if a.Surround {
				kbps = SurroundKbps
			}
			ids = append(ids, audioRenditionID(a.Stream.Lang, a.Stream.Role, a.Surround, len(src.Audios) > 1, kbps))
		}
	}
	rends, err := segmentFiles(ctx, videoFiles, audioFiles, ids, opt.SegmentDur, staging, opt.Progress)
	if err != nil {
		return nil, err
	}
	if opt.Encrypt != nil {
		e := *opt.Encrypt
		if err := e.resolve(); err != nil {
			return nil, fmt.Errorf("package %s: %w", name, err)
		}
		for _, r := range rends {
			if err := protectRendition(filepath.Join(staging, r.id), &r.out, e); err != nil {
				return nil, fmt.Errorf("package %s: %w", name, err)
			}
		}
		if err := writeKeys(staging, e); err != nil {
			return nil, err
		}
		asset.Protection = &Protection{Scheme: e.Scheme, KeyID: hex.EncodeToString(e.KeyID)}
	}
	if asset.Texts, err = packageSubtitles(ctx, src, opt.Subtitles, staging); err != nil {
		return nil, err
	}
	if opt.Copy && !opt.NoThumbnails {
		if asset.Thumbnails, err = thumbnailsOf(ctx, probes, opt.SegmentDur.Seconds(), staging); err != nil {
			return nil, err
		}
	}
	lead := rends[0]
	asset.Duration = float64(lead.track.DTS[lead.track.Len()]) / float64(lead.track.Timescale)
	n := 0
	for _, r := range rends {
		if r.out.Type == "audio" {
			describeAudio(&r.out, r.track, sounds, n)
			n++
		}
		asset.Renditions = append(asset.Renditions, r.out)
	}
	pres := asset.Presentation()
	pres.Title, pres.MinBufferTime = name, opt.SegmentDur
	m, err := manifest.Build(pres)
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", name, err)
	}
	xml, err := manifest.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("package %s: %w", name, err)
	}
	if asset.Manifest, err = writeFileSum(filepath.Join(staging, ManifestFile), xml); err != nil {
		return nil, err
	}
	if err := asset.save(staging); err != nil {
		return nil, err
	}
	return asset, nil
}

// describeAudio gives the n-th audio rendition its language, role and
// label: from the sound it was encoded as (sounds[n]) or, copied, from
// its track header, the first being the main one.
func describeAudio(out *Rendition, track *Track, sounds []Sound, n int) {
	out.Lang = LanguageTag(track.Lang)
	title := ""
	out.Role = "alternate"
	if n == 0 {
		out.Role = "main"
	}
	number := n + 1
	if n < len(sounds) {
		a := sounds[n].Stream
		out.Role, title = a.Role, a.Title
		if a.Lang != "" {
			out.Lang = a.Lang
		}
		// The stream's number (a 5.1 rendition's is its stereo twin's),
		// none for a sole stream ("Audio", "Audio (5.1)").
		streams := 0
		for i, s := range sounds {
			if !s.Surround {
				streams++
				if i <= n {
					number = streams
				}
			}
		}
		if streams == 1 {
			number = 0
		}
	}
	out.Label = audioLabel(out.Lang, title, out.Role, number)
	if track.Channels >= surroundChannels {
		out.Label = withChannels(out.Label, track.Channels)
	}
}

// SegmentFiles cuts pre-encoded single-title files into CMAF renditions
// under outDir (one folder per rendition: init.mp4 and N.m4s): the video
// track of each of videoFiles, aligned at segDur, and the audio tracks of
// audioFiles following the video's cuts. ids name the renditions, video
// then audio (from the picture height and the language when missing).
func SegmentFiles(ctx context.Context, videoFiles, audioFiles []string, ids []string, segDur time.Duration, outDir string, progress ProgressFunc) ([]Rendition, error) {
	rends, err := segmentFiles(ctx, videoFiles, audioFiles, ids, segDur, outDir, progress)
	if err != nil {
		return nil, err
	}
	out := make([]Rendition, len(rends))
	for i, r := range rends {
		out[i] = r.out
	}
	return out, nil
}

func segmentFiles(ctx context.Context, videoFiles, audioFiles []string, ids []string, segDur time.Duration, outDir string, progress ProgressFunc) ([]*rendition, error) {
	if len(videoFiles) == 0 {
		return nil, fmt.Errorf("segment: no video files")
	}
	rends, err := planRenditions(videoFiles, audioFiles, ids, segDur)
	if err != nil {
		return nil, err
	}
	if err := writeRenditions(ctx, rends, outDir, progress); err != nil {
		return nil, err
	}
	return rends, nil
}

// planRenditions reads the tracks and plans aligned cuts for all of them,
// refusing renditions whose keyframes do not line up.
func planRenditions(videoFiles, audioFiles []string, ids []string, segDur time.Duration) ([]*rendition, error) {
	var rends []*rendition
	used := map[string]bool{}
	for i, f := range videoFiles {
		tracks, err := ReadTracks(f)
		if err != nil {
			return nil, err
		}
		var vt *Track
		for _, t := range tracks {
			if t.Kind == "video" {
				vt = t
				break
			}
		}
		if vt == nil {
			return nil, fmt.Errorf("package %s: no video track", f)
		}
		vt.MoveShiftIntoCTO()
		seg := int64(segDur.Seconds()*float64(vt.Timescale) + 0.5)
		cuts, err := PlanVideoCuts(vt, seg)
		if err != nil {
			return nil, err
		}
		lines := min(vt.Width, vt.Height)
		id := fmt.Sprintf("%dp", lines)
		if i < len(ids) {
			id = ids[i]
		}
		for n := 2; used[id]; n++ {
			id = fmt.Sprintf("%dp-%d", lines, n)
		}
		used[id] = true
		rends = append(rends, &rendition{id: id, track: vt, cuts: cuts})
	}
	lead := rends[0]
	for _, r := range rends[1:] {
		if same, k := SameInstants(lead.cuts, lead.track.Timescale, r.cuts, r.track.Timescale); !same {
			return nil, fmt.Errorf("renditions not aligned: %s and %s differ at segment %d (%s vs %s): "+
				"every rendition needs keyframes at the same instants (closed GOPs, forced keyframes every segment)",
				filepath.Base(lead.track.Path), filepath.Base(r.track.Path), k+1,
				cutDesc(lead.cuts, k, lead.track.Timescale), cutDesc(r.cuts, k, r.track.Timescale))
		}
	}
	var sound []*Track
	for _, f := range audioFiles {
		tracks, err := ReadTracks(f)
		if err != nil {
			return nil, err
		}
		for _, t := range tracks {
			if t.Kind == "audio" && len(sound) < MaxAudioStreams {
				sound = append(sound, t)
			}
		}
	}
	for k, t := range sound {
		// A copied sound is named for what it is: its channels and its
		// mean bitrate, to the nearest 8 kbit/s (AAC's rates are steps
		// of 8 or 16: 96k, 128k, 384k).
		kbps := int(math.Round(t.MeanBitrate()/8000)) * 8
		id := audioRenditionID(LanguageTag(t.Lang), "", t.Channels >= 6, len(sound) > 1, max(kbps, 8))
		if i := len(videoFiles) + k; i < len(ids) {
			id = ids[i]
		}
		base := id
		for n := 2; used[id]; n++ {
			id = fmt.Sprintf("%s-%d", base, n)
		}
		used[id] = true
		rends = append(rends, &rendition{id: id, track: t, cuts: PlanFollowerCuts(t, lead.cuts, lead.track.Timescale)})
	}
	return rends, nil
}

// audioRenditionID names an audio rendition: one sound keeps the name it
// always had; several are told apart by language and by what they are
// when they are not the programme's sound itself; a 5.1 rendition says
// so ("audio-surround-384k", "audio-en-surround-384k"); kbps is its
// bitrate in kbit/s.
func audioRenditionID(lang, role string, surround, several bool, kbps int) string {
	id := "audio"
	if several {
		id += "-" + strings.ToLower(cmp.Or(lang, "und"))
		if role == "commentary" || role == "description" || role == "dub" {
			id += "-" + role
		}
	}
	if surround {
		id += "-surround"
	}
	return fmt.Sprintf("%s-%dk", id, kbps)
}

func cutDesc(cuts []Cut, k int, timescale uint32) string {
	if k >= len(cuts) {
		return fmt.Sprintf("no segment %d (%d segments)", k+1, len(cuts))
	}
	return fmt.Sprintf("%.3fs", float64(cuts[k].Time)/float64(timescale))
}

// writeRenditions segments every rendition, in parallel, into staging/<id>/.
func writeRenditions(ctx context.Context, rends []*rendition, staging string, progress ProgressFunc) error {
	start := time.Now()
	var mu sync.Mutex
	var firstErr error
	done := 0
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	for _, r := range rends {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			err := ctx.Err()
			if err == nil {
				err = r.write(staging)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			done++
			if progress != nil {
				progress(Progress{Stage: "segment", Done: time.Duration(done), Total: time.Duration(len(rends)), Elapsed: time.Since(start)})
			}
		})
	}
	wg.Wait()
	return firstErr
}

func (r *rendition) write(staging string) error {
	t := r.track
	dir := filepath.Join(staging, r.id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("rendition %s: %w", r.id, err)
	}
	init, err := WriteInit(t, filepath.Join(dir, "init.mp4"))
	if err != nil {
		return err
	}
	segs, err := WriteSegments(t, r.cuts, dir)
	if err != nil {
		return err
	}
	var peak float64
	var bytes int64
	for k, s := range segs {
		bytes += s.Size
		secs := float64(s.Duration) / float64(t.Timescale)
		// A short tail segment says little about the stream's peak rate.
		if secs <= 0 || (k == len(segs)-1 && len(segs) > 1 && secs < float64(segs[0].Duration)/float64(t.Timescale)/2) {
			continue
		}
		peak = max(peak, float64(s.Size)*8/secs)
	}
	total := float64(t.DTS[t.Len()]) / float64(t.Timescale)
	r.out = Rendition{ID: r.id, Type: t.Kind, Codecs: t.Codecs, Width: t.Width, Height: t.Height,
		Sar: t.Sar, SampleRate: t.SampleRate, Channels: t.Channels, Bandwidth: int64(peak + 0.5), Timescale: t.Timescale,
		PTO: uint64(max(0, t.Shift)), Samples: t.Len(), Init: init, Segments: segs}
	if total > 0 {
		r.out.Bitrate = int64(float64(bytes) * 8 / total)
	}
	if t.Kind == "video" {
		r.out.FrameRate = frameRate(t)
	}
	return nil
}

// frameRate derives the DASH frameRate from the track's most common sample duration.
func frameRate(t *Track) string {
	counts := map[uint32]int{}
	best, bestN := uint32(0), 0
	for _, d := range t.Durs {
		counts[d]++
		if counts[d] > bestN {
			best, bestN = d, counts[d]
		}
	}
	if best == 0 {
		return ""
	}
	r := Rational{Num: int(t.Timescale), Den: int(best)}
	g := gcd(r.Num, r.Den)
	return Rational{Num: r.Num / g, Den: r.Den / g}.String()
}
