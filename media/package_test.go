package media_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/deepcast/deepcast/manifest"
	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/mediatest"
)

func TestMain(m *testing.M) { mediatest.Main(m) }

func TestPackagedMPDValidatesAgainstSchema(t *testing.T) {
	mediatest.ValidateMPD(t, filepath.Join(mediatest.Library(t), mediatest.AssetName, "manifest.mpd"))
}

func TestFFmpegDecodesEveryFrameOfEveryRendition(t *testing.T) {
	lib := mediatest.Library(t)
	want := mediatest.CountFrames(t, mediatest.Source(t))
	if want != int(mediatest.Duration.Seconds())*mediatest.FPS {
		t.Fatalf("source has %d frames", want)
	}
	abs, _ := filepath.Abs(filepath.Join(lib, mediatest.AssetName, "manifest.mpd"))
	mediatest.CheckDecodesAll(t, abs, 2, want)
}

// readBack reads every segment of a rendition with mp4ff and checks the
// decode timeline: tfdt of each segment continues the previous one.
func readBack(t *testing.T, dir string, r media.Rendition) (samples int) {
	t.Helper()
	if _, err := mp4.ReadMP4File(filepath.Join(dir, r.ID, "init.mp4")); err != nil {
		t.Fatalf("%s init: %v", r.ID, err)
	}
	var next uint64
	for k := range r.Segments {
		path := filepath.Join(dir, r.ID, strconv.Itoa(k+1)+".m4s")
		f, err := mp4.ReadMP4File(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(f.Segments) != 1 || len(f.Segments[0].Fragments) != 1 {
			t.Fatalf("%s: want one fragment", path)
		}
		traf := f.Segments[0].Fragments[0].Moof.Traf
		tfdt := traf.Tfdt.BaseMediaDecodeTime()
		if k > 0 && tfdt != next {
			t.Errorf("%s: tfdt %d, previous segment ended at %d (gap or overlap)", path, tfdt, next)
		}
		n := 0
		var dur uint64
		for _, trun := range traf.Truns {
			n += int(trun.SampleCount())
			for _, s := range trun.GetSamples() {
				dur += uint64(s.Dur)
			}
		}
		if k == 0 && r.Type == "video" && !trun0Sync(traf) {
			t.Errorf("%s: first sample is not a sync sample", path)
		}
		next = tfdt + dur
		samples += n
		if n != r.Segments[k].Samples {
			t.Errorf("%s: %d samples, asset.json says %d", path, n, r.Segments[k].Samples)
		}
	}
	return samples
}

func trun0Sync(traf *mp4.TrafBox) bool {
	s := traf.Truns[0].GetSamples()
	return len(s) > 0 && s[0].IsSync()
}

func TestSampleConservationAndContinuousDecodeTimes(t *testing.T) {
	// Package the source as it is (-copy): its own tracks are the reference.
	src := mediatest.Source(t)
	lib := t.TempDir()
	a, err := media.Package(context.Background(), []string{src}, media.PackageOptions{Library: lib, Name: "copy", Copy: true})
	if err != nil {
		t.Fatal(err)
	}
	tracks, err := media.ReadTracks(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(lib, "copy")
	for _, r := range a.Renditions {
		got := readBack(t, dir, r)
		var want int
		for _, tr := range tracks {
			if tr.Kind == r.Type {
				want = tr.Len()
			}
		}
		if got != want {
			t.Errorf("%s: segments hold %d samples, source track has %d", r.ID, got, want)
		}
	}
	// And the encoded asset: every video rendition holds every source frame.
	enc := mediatest.Library(t)
	ea, err := media.LoadAsset(filepath.Join(enc, mediatest.AssetName))
	if err != nil {
		t.Fatal(err)
	}
	frames := mediatest.CountFrames(t, src)
	for _, r := range ea.Renditions {
		got := readBack(t, filepath.Join(enc, mediatest.AssetName), r)
		if r.Type == "video" && got != frames {
			t.Errorf("%s: %d samples, source has %d frames", r.ID, got, frames)
		}
	}
}

func TestCutsAreAlignedAcrossRenditions(t *testing.T) {
	a, err := media.LoadAsset(filepath.Join(mediatest.Library(t), mediatest.AssetName))
	if err != nil {
		t.Fatal(err)
	}
	var ref *media.Rendition
	for i, r := range a.Renditions {
		if r.Type != "video" {
			continue
		}
		if len(r.Segments) != 3 {
			t.Errorf("%s: %d segments, want 3 of 2s", r.ID, len(r.Segments))
		}
		if ref == nil {
			ref = &a.Renditions[i]
			continue
		}
		for k := range r.Segments {
			if r.Segments[k].Time*uint64(ref.Timescale) != ref.Segments[k].Time*uint64(r.Timescale) {
				t.Errorf("%s segment %d starts at %d/%d, %s at %d/%d", r.ID, k+1, r.Segments[k].Time, r.Timescale,
					ref.ID, ref.Segments[k].Time, ref.Timescale)
			}
		}
	}
}

// treeHash fingerprints a folder: names, link targets and file contents.
func treeHash(t *testing.T, root string) string {
	t.Helper()
	h := sha256.New()
	if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
		return "absent"
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		h.Write([]byte(rel + "\x00"))
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			h.Write([]byte("->" + target))
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestBadInputsFailCleanly(t *testing.T) {
	src := mediatest.Source(t)
	tmp := t.TempDir()
	lib := mediatest.CopyLibrary(t)
	before := treeHash(t, lib)

	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(tmp, "truncated.mp4")
	os.WriteFile(truncated, data[:len(data)/3], 0o644)
	corrupt := filepath.Join(tmp, "corrupt.mp4")
	bad := append([]byte(nil), data...)
	for i := 0; i < 256 && i < len(bad); i++ { // smash the header boxes
		bad[i] ^= 0x5a
	}
	os.WriteFile(corrupt, bad, 0o644)
	text := filepath.Join(tmp, "notes.mp4")
	os.WriteFile(text, []byte("this is not a video\n"), 0o644)
	empty := filepath.Join(tmp, "empty.mp4")
	os.WriteFile(empty, nil, 0o644)
	audioOnly := filepath.Join(tmp, "audio.m4a")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "sine=d=1", "-c:a", "aac", audioOnly)
	// Wider than any source deepcast encodes from (cheap to make: few pixels).
	tooWide := filepath.Join(tmp, "wide.mkv")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "color=c=black:s=8200x16:d=0.2", "-c:v", "mjpeg", tooWide)

	// Cut with its index first: it probes whole and decodes short.
	faststart := filepath.Join(tmp, "faststart.mp4")
	mediatest.FFmpeg(t, "-i", src, "-c", "copy", "-movflags", "+faststart", faststart)
	whole, err := os.ReadFile(faststart)
	if err != nil {
		t.Fatal(err)
	}
	cutShort := filepath.Join(tmp, "cut-short.mp4")
	os.WriteFile(cutShort, whole[:len(whole)/2], 0o644)

	// Two renditions whose keyframes differ: 2 s GOPs against 1.5 s GOPs.
	gop2 := filepath.Join(tmp, "gop2.mp4")
	gop15 := filepath.Join(tmp, "gop15.mp4")
	for _, g := range []struct{ out, gop string }{{gop2, "60"}, {gop15, "45"}} {
		mediatest.FFmpeg(t, "-i", src, "-an", "-t", "6", "-vf", "scale=320:180", "-c:v", "libx264", "-preset", "ultrafast",
			"-g", g.gop, "-keyint_min", g.gop, "-sc_threshold", "0", "-bf", "0", g.out)
	}

	tests := []struct {
		name   string
		inputs []string
		copy   bool
		want   []string // all must appear in the error
	}{
		{"missing", []string{filepath.Join(tmp, "nope.mp4")}, false, []string{"nope.mp4", "no such file"}},
		{"truncated", []string{truncated}, false, []string{"truncated.mp4"}},
		{"truncated, index first", []string{cutShort}, false, []string{"cut-short.mp4", "could be decoded", "truncated or corrupt"}},
		{"corrupt", []string{corrupt}, false, []string{"corrupt.mp4"}},
		{"not media", []string{text}, false, []string{"notes.mp4", "not a readable media file"}},
		{"empty", []string{empty}, false, []string{"empty.mp4", "empty"}},
		{"audio only", []string{audioOnly}, false, []string{"audio.m4a", "no video stream"}},
		{"directory", []string{tmp}, false, []string{"directory"}},
		{"too large a picture", []string{tooWide}, false, []string{"wide.mkv", "8200x16", "larger than deepcast encodes from"}},
		{"misaligned", []string{gop2, gop15}, true, []string{"not aligned", "gop2.mp4", "gop15.mp4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := media.Package(context.Background(), tt.inputs, media.PackageOptions{Library: lib, Name: mediatest.AssetName, Copy: tt.copy})
			if err == nil {
				t.Fatal("want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if got := treeHash(t, lib); got != before {
				t.Errorf("library changed after a failed package")
			}
		})
	}
	// A preset x264 does not have is refused before the source is probed
	// (it used to surface as ffmpeg's own error after it).
	if _, err := media.Package(context.Background(), []string{filepath.Join(tmp, "nope.mp4")},
		media.PackageOptions{Library: lib, Name: mediatest.AssetName, Preset: "superduper"}); err == nil ||
		!strings.Contains(err.Error(), `x264 preset "superduper": want one of ultrafast, superfast, veryfast`) {
		t.Errorf("preset: %v", err)
	}
	// A failure into a library that did not exist leaves no folder behind.
	fresh := filepath.Join(tmp, "fresh-library")
	if _, err := media.Package(context.Background(), []string{text}, media.PackageOptions{Library: fresh}); err == nil {
		t.Fatal("want an error")
	}
	if _, err := media.Package(context.Background(), []string{gop2, gop15}, media.PackageOptions{Library: fresh, Copy: true}); err == nil {
		t.Fatal("want an error")
	}
	if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed package created %s", fresh)
	}
}

// TestWholeSourcesOfFewFramesPackage: a short clip and a slide show of 5
// frames a second are whole, and package with every frame, though the
// encoder's last progress report is a few frames short of their end (at
// 5 frames a second, more than a tenth of a 4 s clip).
func TestWholeSourcesOfFewFramesPackage(t *testing.T) {
	tmp := t.TempDir()
	for _, c := range []struct {
		name, rate string
		seconds    string
		frames     int
	}{
		{"slides", "5", "4", 20},
		{"blink", "25", "0.4", 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := filepath.Join(tmp, c.name+".mp4")
			mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x180:rate="+c.rate, "-t", c.seconds, "-c:v", "libx264", "-pix_fmt", "yuv420p", src)
			lib := filepath.Join(tmp, "lib-"+c.name)
			if _, err := media.Package(context.Background(), []string{src}, media.PackageOptions{Library: lib}); err != nil {
				t.Fatalf("a whole %s s clip at %s frames a second: %v", c.seconds, c.rate, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			counts, log, err := mediatest.Decode(ctx, filepath.Join(lib, c.name, media.ManifestFile))
			if err != nil || len(counts) == 0 {
				t.Fatalf("decode: %v\n%s", err, log)
			}
			for _, sc := range counts {
				if sc.Kind == "video" && sc.Frames != c.frames {
					t.Errorf("stream %d: %d frames decoded, the source has %d", sc.Index, sc.Frames, c.frames)
				}
			}
		})
	}
}

// TestSourcesArePackagedAsShown: a phone's portrait video, stored
// landscape with a quarter turn in its display matrix, is packaged as the
// portrait picture it shows, on a portrait ladder named by its short
// side; an anamorphic one (a DVD's 720x480 shown at 16:9) at the width it
// is shown at. Their frames are the source's as a player shows it, not
// squeezed.
func TestSourcesArePackagedAsShown(t *testing.T) {
	tmp := t.TempDir()
	stored := filepath.Join(tmp, "stored.mp4")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", stored)
	phone := filepath.Join(tmp, "phone.mp4")
	mediatest.FFmpeg(t, "-i", stored, "-c", "copy", "-metadata:s:v:0", "rotate=90", phone)
	dvd := filepath.Join(tmp, "dvd.mp4")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=720x480:rate=25", "-t", "2", "-vf", "setsar=32/27", "-c:v", "libx264", "-pix_fmt", "yuv420p", dvd)
	for _, c := range []struct {
		src   string
		shown [2]int
		want  []string
	}{
		{phone, [2]int{360, 640}, []string{"360p-800k 360x640", "240p-400k 240x426"}},
		{dvd, [2]int{854, 480}, []string{"480p-1400k 854x480", "360p-800k 640x360", "240p-400k 428x240"}},
	} {
		t.Run(filepath.Base(c.src), func(t *testing.T) {
			lib := filepath.Join(tmp, "lib")
			a, err := media.Package(context.Background(), []string{c.src}, media.PackageOptions{Library: lib})
			if err != nil {
				t.Fatal(err)
			}
			if got := a.Sources[0]; got.Width != c.shown[0] || got.Height != c.shown[1] {
				t.Errorf("source recorded as %dx%d, want %dx%d as shown", got.Width, got.Height, c.shown[0], c.shown[1])
			}
			var ids []string
			for _, r := range a.Renditions {
				if r.Type == "video" {
					ids = append(ids, fmt.Sprintf("%s %dx%d", r.ID, r.Width, r.Height))
				}
			}
			if !slices.Equal(ids, c.want) {
				t.Fatalf("renditions %q, want %q", ids, c.want)
			}
			top := a.Renditions[0]
			if db := psnrAgainst(t, filepath.Join(lib, a.Name, top.ID), c.src, top.Width, top.Height); db < 25 {
				t.Errorf("the top rendition is %.1f dB from the source as shown, want >= 25 (turned or squeezed?)", db)
			}
		})
	}
}

// TestInterlacedSourceIsDeinterlaced: a source of woven fields (a
// broadcast's 576i) is packaged as progressive frames, one per source
// frame, which ffmpeg's field detector no longer finds combed.
func TestInterlacedSourceIsDeinterlaced(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "broadcast.mp4")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=720x576:rate=50", "-t", "2", "-vf", "interlace=scan=tff,setfield=tff",
		"-c:v", "libx264", "-flags", "+ildct+ilme", "-x264opts", "tff=1", "-pix_fmt", "yuv420p", src)
	if tff, progressive := fieldDetection(t, src); tff <= progressive {
		t.Fatalf("the test source is not interlaced: %d frames top field first, %d progressive", tff, progressive)
	}
	ladder, _ := media.ParseLadder("720x576@2000k")
	lib := filepath.Join(tmp, "lib")
	a, err := media.Package(context.Background(), []string{src}, media.PackageOptions{Library: lib, Ladder: ladder})
	if err != nil {
		t.Fatal(err)
	}
	first := joinFirstSegment(t, filepath.Join(lib, a.Name, a.Renditions[0].ID))
	if tff, progressive := fieldDetection(t, first); progressive <= tff {
		t.Errorf("the rendition is still combed: %d frames top field first, %d progressive", tff, progressive)
	}
	if got := mediatest.CountFrames(t, first); got != 50 {
		t.Errorf("first segment: %d frames, want 50 (2 s at 25 frames a second)", got)
	}
}

// TestLateSoundKeepsItsPlace: a source whose sound begins half a second
// after its picture is packaged with that half second silent, not with
// the sound moved to the start (half a second out of sync).
func TestLateSoundKeepsItsPlace(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "late.mp4")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-itsoffset", "0.5", "-f", "lavfi", "-i", "sine=f=440:d=4",
		"-t", "4", "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", src)
	lib := filepath.Join(tmp, "lib")
	a, err := media.Package(context.Background(), []string{src}, media.PackageOptions{Library: lib})
	if err != nil {
		t.Fatal(err)
	}
	var sound string
	for _, r := range a.Renditions {
		if r.Type == "audio" {
			sound = joinFirstSegment(t, filepath.Join(lib, a.Name, r.ID))
		}
	}
	if sound == "" {
		t.Fatal("no audio rendition")
	}
	if peak := maxVolume(t, sound, "0", "0.4"); peak > -60 {
		t.Errorf("the first 0.4 s of the sound peaks at %.1f dB; the source is silent there", peak)
	}
	if peak := maxVolume(t, sound, "0.6", "0.4"); peak < -40 {
		t.Errorf("0.6-1.0 s of the sound peaks at %.1f dB; the source's tone plays there", peak)
	}

	// The other way round: a picture that begins half a second after the
	// sound repeats its first frame from the start.
	lateSrc := filepath.Join(tmp, "late-picture.mp4")
	mediatest.FFmpeg(t, "-itsoffset", "0.5", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:d=3.5", "-f", "lavfi", "-i", "sine=f=440:d=4",
		"-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-fps_mode", "passthrough", "-pix_fmt", "yuv420p", "-c:a", "aac", lateSrc)
	b, err := media.Package(context.Background(), []string{lateSrc}, media.PackageOptions{Library: lib})
	if err != nil {
		t.Fatal(err)
	}
	if got := mediatest.CountFrames(t, joinFirstSegment(t, filepath.Join(lib, b.Name, b.Renditions[0].ID))); got != 50 {
		t.Errorf("the first 2 s segment of a picture that starts 0.5 s late holds %d frames, want 50", got)
	}
}

// TestEveryAudioStreamIsPackaged: a film's French dub, its English
// sound (flagged default, though not first), a director's commentary
// and an audio description each become an audio AdaptationSet and an
// HLS rendition a viewer can choose, named and described as the source
// names them, the default one first and marked main; each carries its
// own stream's sound (told apart by level) and its language in the
// track header.
func TestEveryAudioStreamIsPackaged(t *testing.T) {
	tmp := t.TempDir()
	src := mediatest.Film(t, tmp, 3*time.Second)
	lib := filepath.Join(tmp, "lib")
	ladder, _ := media.ParseLadder("320x180@300k")
	a, err := media.Package(context.Background(), []string{src}, media.PackageOptions{Library: lib, Ladder: ladder})
	if err != nil {
		t.Fatal(err)
	}
	// MP4 track headers hold ISO 639-2/T codes (fra, not fre).
	mdhd := map[string]string{"fr": "fra", "en": "eng"}
	want := mediatest.FilmSounds
	var got []media.Rendition
	for _, r := range a.Renditions {
		if r.Type == "audio" {
			got = append(got, r)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d audio renditions, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		r := got[i]
		if r.ID != w.Rendition || r.Lang != w.Lang || r.Role != w.Role || r.Label != w.Label {
			t.Errorf("audio %d is %s (%s, %s, %q), want %+v", i, r.ID, r.Lang, r.Role, r.Label, w)
			continue
		}
		first := joinFirstSegment(t, filepath.Join(lib, a.Name, r.ID))
		if peak := maxVolume(t, first, "0.5", "1"); math.Abs(peak-w.Peak) > 3 {
			t.Errorf("%s peaks at %.1f dB, want %.0f: another stream's sound", r.ID, peak, w.Peak)
		}
		out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream_tags=language", "-of", "csv=p=0", first).Output()
		if err != nil || strings.TrimSpace(string(out)) != mdhd[w.Lang] {
			t.Errorf("%s's track header says language %q (%v), want %s", r.ID, out, err, mdhd[w.Lang])
		}
		out, err = exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=channels,channel_layout", "-of", "csv=p=0", first).Output()
		layout := map[int]string{2: "2,stereo", 6: "6,5.1"}[w.Channels]
		if err != nil || strings.TrimSpace(string(out)) != layout || r.Channels != w.Channels {
			t.Errorf("%s has channels %q (asset.json: %d), want %s", r.ID, out, r.Channels, layout)
		}
		if w.Channels == 6 {
			// The centre speaker's own sound, from the 7.1 source's
			// centre: a 5.1 mixed from the source, not spread from stereo.
			m := analyse(t, `max_volume: (-?[0-9.]+|-inf) dB`, "-ss", "0.5", "-t", "1", "-i", first, "-af", "pan=mono|c0=c2,volumedetect")
			if peak := decibels(m[1]); math.Abs(peak-mediatest.FilmCentre) > 3 {
				t.Errorf("%s's centre peaks at %.1f dB, want %.0f", r.ID, peak, mediatest.FilmCentre)
			}
		}
	}

	mpdPath := filepath.Join(lib, a.Name, media.ManifestFile)
	mediatest.ValidateMPD(t, mpdPath)
	doc, _ := os.ReadFile(mpdPath)
	m, err := manifest.Parse(doc, &url.URL{Scheme: "http", Host: "origin", Path: "/vod/" + a.Name + "/manifest.mpd"})
	if err != nil {
		t.Fatal(err)
	}
	if main := m.MainAudio(); len(main) != 1 || main[0].ID != "audio-en-128k" || main[0].Lang != "en" {
		t.Errorf("the MPD's main sound is %+v, want audio-en-128k", main)
	}
	for _, w := range []string{`lang="en"`, `lang="fr"`, `<Role schemeIdUri="urn:mpeg:dash:role:2011" value="commentary">`,
		`<Accessibility schemeIdUri="urn:tva:metadata:cs:AudioPurposeCS:2007" value="1">`, `<Label>Director&#39;s commentary</Label>`,
		`selectionPriority="0"`, `<AudioChannelConfiguration schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011" value="6">`} {
		if !strings.Contains(string(doc), w) {
			t.Errorf("the MPD lacks %s", w)
		}
	}
	if i, j := strings.Index(string(doc), `id="audio-en-128k"`), strings.Index(string(doc), `id="audio-fr-128k"`); i < 0 || j < i {
		t.Errorf("the main sound's AdaptationSet is not the first audio one")
	}

	hls, err := manifest.BuildHLS(a.Presentation())
	if err != nil {
		t.Fatal(err)
	}
	mv := string(hls.Multivariant)
	for _, w := range []string{`NAME="français",LANGUAGE="fr",DEFAULT=NO`, `NAME="English",LANGUAGE="en",DEFAULT=YES`,
		`NAME="Director's commentary"`, `CHARACTERISTICS="public.accessibility.describes-video"`} {
		if !strings.Contains(mv, w) {
			t.Errorf("the multivariant playlist lacks %s:\n%s", w, mv)
		}
	}
	if n := strings.Count(mv, "DEFAULT=YES"); n != 1 {
		t.Errorf("%d audio renditions are DEFAULT=YES, want 1", n)
	}
	// HLS offers the stereo English alone (see manifest.hlsSounds).
	if strings.Contains(mv, "surround") || strings.Count(mv, "#EXT-X-MEDIA:TYPE=AUDIO") != len(want)-1 {
		t.Errorf("the multivariant playlist offers the 5.1 sound:\n%s", mv)
	}
	// Without -surround, stereo alone.
	b, err := media.Package(context.Background(), []string{src}, media.PackageOptions{Library: lib, Name: "stereo", Ladder: ladder, NoSurround: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range b.Renditions {
		if r.Type == "audio" && (r.Channels != 2 || strings.Contains(r.ID, "surround")) {
			t.Errorf("NoSurround made %s with %d channels", r.ID, r.Channels)
		}
	}
}

// TestSubtitlesArePackaged: a film's text subtitle streams (SubRip in
// Matroska; one for the hard of hearing) and a subtitle file beside it
// become WebVTT tracks with their cues at their times, in the MPD (an
// AdaptationSet per track, valid against the schema) and in HLS (a
// SUBTITLES group); a file that holds no subtitles is refused by name.
func TestSubtitlesArePackaged(t *testing.T) {
	tmp := t.TempDir()
	d := 6 * time.Second
	src := mediatest.Film(t, tmp, d)
	de := mediatest.WriteSRT(t, filepath.Join(tmp, "de.srt"), "Deutsch", d)
	lib := filepath.Join(tmp, "lib")
	ladder, _ := media.ParseLadder("320x180@300k")
	sub, err := media.ParseSubtitle("ger=" + de)
	if err != nil {
		t.Fatal(err)
	}
	a, err := media.Package(context.Background(), []string{src}, media.PackageOptions{Library: lib, Ladder: ladder, Subtitles: []media.Subtitle{sub}})
	if err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(mediatest.FilmSubtitles), struct{ ID, Lang, Role, Label, Word string }{"text-de", "de", "subtitle", "Deutsch", "Deutsch"})
	if len(a.Texts) != len(want) {
		t.Fatalf("%d subtitle tracks, want %d: %+v", len(a.Texts), len(want), a.Texts)
	}
	// Matroska's muxer started the source's picture and subtitles 23 ms
	// late (AAC priming): the cues keep their place against the picture.
	cue := regexp.MustCompile(`(?m)^(?:00:)?00:(\d\d\.\d\d\d) --> (?:00:)?00:(\d\d\.\d\d\d)\n(\S+) (\d+)$`)
	for i, w := range want {
		tr := a.Texts[i]
		if tr.ID != w.ID || tr.Lang != w.Lang || tr.Role != w.Role || tr.Label != w.Label {
			t.Errorf("subtitles %d are %+v, want %+v", i, tr, w)
			continue
		}
		vtt, err := os.ReadFile(filepath.Join(lib, a.Name, tr.ID, "text.vtt"))
		if err != nil {
			t.Fatal(err)
		}
		cues := cue.FindAllStringSubmatch(string(vtt), -1)
		if !strings.HasPrefix(string(vtt), "WEBVTT") || len(cues) != 3 {
			t.Errorf("%s: %d cues like \"00:02.000 --> 00:04.000 / %s 2\" in:\n%s", tr.ID, len(cues), w.Word, vtt)
			continue
		}
		for _, c := range cues {
			n, _ := strconv.Atoi(c[4])
			if from, _ := strconv.ParseFloat(c[1], 64); math.Abs(from-float64(2*(n-1))) > 0.05 || c[3] != w.Word {
				t.Errorf("%s: cue %q at %ss, want %s %d at %ds", tr.ID, c[3]+" "+c[4], c[1], w.Word, n, 2*(n-1))
			}
		}
	}
	mpdPath := filepath.Join(lib, a.Name, media.ManifestFile)
	mediatest.ValidateMPD(t, mpdPath)
	doc, _ := os.ReadFile(mpdPath)
	for _, w := range []string{`contentType="text"`, `mimeType="text/vtt"`, `<BaseURL>text-fr-caption/text.vtt</BaseURL>`,
		`<Role schemeIdUri="urn:mpeg:dash:role:2011" value="caption">`, `lang="de"`} {
		if !strings.Contains(string(doc), w) {
			t.Errorf("the MPD lacks %s", w)
		}
	}
	hls, err := manifest.BuildHLS(a.Presentation())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`TYPE=SUBTITLES,GROUP-ID="subs",NAME="Deutsch",LANGUAGE="de"`, `SUBTITLES="subs"`, `URI="text-en/media.m3u8"`,
		`CHARACTERISTICS="public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound"`} {
		if !strings.Contains(string(hls.Multivariant), w) {
			t.Errorf("the multivariant playlist lacks %s:\n%s", w, hls.Multivariant)
		}
	}
	if pl := string(hls.Media["text-en"]); !strings.Contains(pl, "\ntext.vtt\n") || !strings.Contains(pl, "#EXT-X-ENDLIST") {
		t.Errorf("text-en/media.m3u8:\n%s", pl)
	}

	// A "subtitle file" that is a video: refused, naming it.
	_, err = media.Package(context.Background(), []string{src}, media.PackageOptions{Library: lib, Name: "bad", Ladder: ladder,
		Subtitles: []media.Subtitle{{Path: mediatest.Source(t), Lang: "en"}}})
	if err == nil || !strings.Contains(err.Error(), "not a subtitle file") || !strings.Contains(err.Error(), mediatest.Source(t)) {
		t.Errorf("a video as subtitles: %v", err)
	}
	if _, err := os.Stat(filepath.Join(lib, "bad")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused asset was published: %v", err)
	}
}

// TestThumbnailsShowTheirTimes: the thumbnail tile holds, at slot k, the
// picture at k x 2 s: a crop of it is nearer (PSNR) to the source's frame
// at that time than to the frame of the next slot's. For the encoded
// clip (made in the encode's run) and for the source packaged as it is
// (-copy: made from its keyframes).
func TestThumbnailsShowTheirTimes(t *testing.T) {
	copied := t.TempDir()
	if _, err := media.Package(context.Background(), []string{mediatest.Source(t)}, media.PackageOptions{Library: copied, Name: mediatest.AssetName, Copy: true}); err != nil {
		t.Fatal(err)
	}
	// Or none, when asked for none.
	none, err := media.Package(context.Background(), []string{mediatest.Source(t)}, media.PackageOptions{Library: copied, Name: "none", Copy: true, NoThumbnails: true})
	if err != nil {
		t.Fatal(err)
	}
	if mpd, _ := os.ReadFile(filepath.Join(copied, "none", media.ManifestFile)); none.Thumbnails != nil || bytes.Contains(mpd, []byte("thumbnail_tile")) {
		t.Errorf("NoThumbnails: %+v, MPD with tiles %v", none.Thumbnails, bytes.Contains(mpd, []byte("thumbnail_tile")))
	}
	for name, lib := range map[string]string{"encoded": mediatest.Library(t), "copied": copied} {
		a, err := media.LoadAsset(filepath.Join(lib, mediatest.AssetName))
		if err != nil {
			t.Fatal(err)
		}
		th := a.Thumbnails
		if th == nil || th.Count != 3 || th.Columns != 3 || th.Rows != 1 || len(th.Tiles) != 1 || th.Width != 160 || th.Height != 90 {
			t.Fatalf("%s: thumbnails of the %v clip: %+v", name, mediatest.Duration, th)
		}
		tile := filepath.Join(lib, mediatest.AssetName, "thumbs", "1.jpg")
		psnr := func(slot int, at float64) float64 {
			graph := fmt.Sprintf("[0:v]crop=160:90:%d:0,format=yuv420p[a];[1:v]scale=160:90,format=yuv420p[b];[a][b]psnr", slot*160)
			m := analyse(t, `PSNR .* average:([0-9.]+|inf)`, "-i", tile, "-ss", strconv.FormatFloat(at, 'f', 2, 64), "-i", mediatest.Source(t),
				"-lavfi", graph, "-frames:v", "1")
			return decibels(m[1])
		}
		for slot := range 2 {
			own, next := psnr(slot, float64(2*slot)), psnr(slot, float64(2*slot+2))
			t.Logf("%s thumbnail %d: %.1f dB against its time, %.1f dB against the next slot's", name, slot, own, next)
			if own < 25 || own <= next {
				t.Errorf("%s thumbnail %d: %.1f dB against the picture at %d s, %.1f dB against %d s", name, slot, own, 2*slot, next, 2*slot+2)
			}
		}
	}
}

// maxVolume is the peak level in dB of the sound of path over length
// seconds from start.
func maxVolume(t *testing.T, path, start, length string) float64 {
	t.Helper()
	m := analyse(t, `max_volume: (-?[0-9.]+|-inf) dB`, "-ss", start, "-t", length, "-i", path, "-af", "volumedetect")
	return decibels(m[1])
}

// analyse runs ffmpeg with args (inputs and an analysing filter; the
// output is discarded) and returns the submatches of pattern in what it
// logs, failing the test when it fails or logs no match.
func analyse(t *testing.T, pattern string, args ...string) [][]byte {
	t.Helper()
	args = append(append([]string{"-hide_banner", "-nostdin"}, args...), "-f", "null", "-")
	out, err := exec.Command("ffmpeg", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
	m := regexp.MustCompile(pattern).FindSubmatch(out)
	if m == nil {
		t.Fatalf("ffmpeg %v logged nothing like %q:\n%s", args, pattern, out)
	}
	return m
}

// decibels reads a figure in dB as ffmpeg logs it, inf and -inf too.
func decibels(b []byte) float64 {
	switch string(b) {
	case "inf":
		return math.Inf(1)
	case "-inf":
		return math.Inf(-1)
	}
	db, _ := strconv.ParseFloat(string(b), 64)
	return db
}

// TestHDRSourcesArePackagedAsSDR: a phone's HLG video and an HDR10 (PQ)
// one are packaged as SDR BT.709, what every rendition is, with their
// colours, not as their HDR values shown as SDR ones (grey and washed
// out). The sources are an SDR picture converted to HDR, so the SDR
// picture is what the renditions must come back to.
func TestHDRSourcesArePackagedAsSDR(t *testing.T) {
	tmp := t.TempDir()
	sdr := filepath.Join(tmp, "sdr.mp4")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-t", "2", "-c:v", "libx264", "-crf", "10", "-pix_fmt", "yuv420p", sdr)
	ladder, _ := media.ParseLadder("640x360@2000k")
	for _, c := range []struct {
		name, transfer string
		minDB          float64 // what the SDR picture shown as is scores: 15.7 (HLG), 13.6 (PQ)
	}{
		{"hlg", "arib-std-b67", 25},
		{"pq", "smpte2084", 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := filepath.Join(tmp, c.name+".mp4")
			mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-t", "2",
				"-vf", "zscale=tin=bt709:min=bt709:pin=bt709:rin=tv:t="+c.transfer+":m=bt2020nc:p=bt2020:r=tv:npl=100,format=yuv420p10le",
				"-c:v", "libx264", "-pix_fmt", "yuv420p10le", "-color_primaries", "bt2020", "-color_trc", c.transfer, "-colorspace", "bt2020nc", src)
			lib := filepath.Join(tmp, "lib-"+c.name)
			a, err := media.Package(context.Background(), []string{src}, media.PackageOptions{Library: lib, Ladder: ladder})
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(lib, a.Name, a.Renditions[0].ID)
			out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=pix_fmt,color_transfer,color_primaries",
				"-of", "compact=p=0:nk=1", joinFirstSegment(t, dir)).Output()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(out)); got != "yuv420p|bt709|bt709" {
				t.Errorf("rendition pixels and colour: %s, want yuv420p|bt709|bt709", got)
			}
			if db := psnrAgainst(t, dir, sdr, 640, 360); db < c.minDB {
				t.Errorf("the rendition is %.1f dB from the SDR picture, want >= %.0f", db, c.minDB)
			}
		})
	}
}

// TestHighFrameRateSourceIsPackagedAt60: a phone's 120 frames a second
// are packaged at 60, every other frame, so the ladder's bitrates buy the
// picture they were chosen for.
func TestHighFrameRateSourceIsPackagedAt60(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "slowmo.mp4")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=120", "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", src)
	lib := filepath.Join(tmp, "lib")
	a, err := media.Package(context.Background(), []string{src}, media.PackageOptions{Library: lib})
	if err != nil {
		t.Fatal(err)
	}
	top := a.Renditions[0]
	if top.FrameRate != "60" {
		t.Errorf("rendition %s at %q frames a second, want 60", top.ID, top.FrameRate)
	}
	if got := mediatest.CountFrames(t, joinFirstSegment(t, filepath.Join(lib, a.Name, top.ID))); got != 120 {
		t.Errorf("the first 2 s segment holds %d frames, want 120", got)
	}
}

// fieldDetection runs ffmpeg's idet filter over path and returns its
// multi-frame counts of top-field-first and progressive frames.
func fieldDetection(t *testing.T, path string) (tff, progressive int) {
	t.Helper()
	m := analyse(t, `Multi frame detection: TFF:\s*(\d+) BFF:\s*\d+ Progressive:\s*(\d+)`, "-i", path, "-vf", "idet")
	tff, _ = strconv.Atoi(string(m[1]))
	progressive, _ = strconv.Atoi(string(m[2]))
	return tff, progressive
}

// joinFirstSegment writes the init segment and first media segment of
// the rendition in dir into one playable file and returns its path.
func joinFirstSegment(t *testing.T, dir string) string {
	t.Helper()
	var whole []byte
	for _, f := range []string{"init.mp4", "1.m4s"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		whole = append(whole, b...)
	}
	joined := filepath.Join(t.TempDir(), "first.mp4")
	if err := os.WriteFile(joined, whole, 0o644); err != nil {
		t.Fatal(err)
	}
	return joined
}

// psnrAgainst is the PSNR of the first segment of the rendition in dir
// against src as ffmpeg shows it, scaled to w x h square pixels.
func psnrAgainst(t *testing.T, dir, src string, w, h int) float64 {
	t.Helper()
	graph := fmt.Sprintf("[1:v]scale=%d:%d,setsar=1[ref];[0:v][ref]psnr", w, h)
	m := analyse(t, `PSNR .* average:([0-9.]+|inf)`, "-i", joinFirstSegment(t, dir), "-i", src, "-lavfi", graph, "-frames:v", "25")
	db := decibels(m[1])
	t.Logf("PSNR %.1f dB", db)
	return db
}

func TestRepackageReplacesAtomicallyAndCancelLeavesNothing(t *testing.T) {
	src := mediatest.Source(t)
	lib := mediatest.CopyLibrary(t)
	old, err := media.LoadAsset(filepath.Join(lib, mediatest.AssetName))
	if err != nil {
		t.Fatal(err)
	}
	ladder, _ := media.ParseLadder("320x180@300k")
	a, err := media.Package(context.Background(), []string{src}, media.PackageOptions{Library: lib, Name: mediatest.AssetName, Ladder: ladder})
	if err != nil {
		t.Fatal(err)
	}
	cur, err := media.LoadAsset(filepath.Join(lib, mediatest.AssetName))
	if err != nil || cur.Build != a.Build || cur.Build == old.Build {
		t.Fatalf("after repackage the library serves build %v (err %v), want %s", cur, err, a.Build)
	}
	if len(cur.Renditions) != 2 {
		t.Errorf("new version has %d renditions, want 1 video + audio", len(cur.Renditions))
	}
	// The previous version stays for clients still streaming it.
	if _, err := media.LoadAsset(filepath.Join(lib, ".versions", mediatest.AssetName+"."+old.Build)); err != nil {
		t.Errorf("previous version gone: %v", err)
	}

	// Cancel during the encode: no staging folder, no new version.
	before := treeHash(t, lib)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Cancel as soon as ffmpeg reports progress: the encode is under way.
	stop := func(p media.Progress) {
		if p.Stage == "encode" {
			cancel()
		}
	}
	_, err = media.Package(ctx, []string{src}, media.PackageOptions{Library: lib, Name: mediatest.AssetName, Preset: "veryslow", Progress: stop})
	if err == nil {
		t.Fatal("cancelled package succeeded")
	}
	if got := treeHash(t, lib); got != before {
		entries, _ := os.ReadDir(lib)
		t.Errorf("cancelled package changed the library: %v", entries)
	}
}

// damagedCopy writes src with 200 bytes flipped through the middle of its
// media data: the container stays readable, frames fail to decode.
func damagedCopy(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		data[len(data)*3/10+i*(len(data)/2/200)] ^= 0xa5
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedSourceIsRefusedUnlessAllowed: a corrupt but decodable source
// used to be packaged without a word (ffmpeg exits 0 after decode errors).
func TestDamagedSourceIsRefusedUnlessAllowed(t *testing.T) {
	src := filepath.Join(t.TempDir(), "damaged.mp4")
	damagedCopy(t, mediatest.Source(t), src)
	lib := mediatest.CopyLibrary(t)
	before := treeHash(t, lib)
	_, err := media.Package(context.Background(), []string{src}, media.PackageOptions{Library: lib, Name: "damaged", Ladder: media.Ladder{{Width: 320, Height: 180, Kbps: 250}}, Preset: "ultrafast"})
	if !errors.Is(err, media.ErrDamagedSource) || !strings.Contains(err.Error(), "decode error") || !strings.Contains(err.Error(), "-allow-damaged") {
		t.Fatalf("damaged source: %v", err)
	}
	if treeHash(t, lib) != before {
		t.Error("a refused source changed the library")
	}
	a, err := media.Package(context.Background(), []string{src}, media.PackageOptions{Library: lib, Name: "damaged", Ladder: media.Ladder{{Width: 320, Height: 180, Kbps: 250}}, Preset: "ultrafast", AllowDamaged: true})
	if err != nil {
		t.Fatalf("with AllowDamaged: %v", err)
	}
	if a.DecodeErrors == 0 {
		t.Error("asset.json does not record the decode errors")
	}
}

// TestUploadsMustBePlainContainers: a playlist naming a file of the
// server's used to be packaged from that file; uploads now must be plain
// containers, and what names other files is refused.
func TestUploadsMustBePlainContainers(t *testing.T) {
	src := mediatest.Source(t)
	tmp := t.TempDir()
	hls := filepath.Join(tmp, "upload.m3u8")
	os.WriteFile(hls, []byte("#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:6.0,\n"+src+"\n#EXT-X-ENDLIST\n"), 0o644)
	concat := filepath.Join(tmp, "upload.ffconcat")
	os.WriteFile(concat, []byte("ffconcat version 1.0\nfile '"+src+"'\n"), 0o644)
	lib := mediatest.CopyLibrary(t)
	before := treeHash(t, lib)
	for _, in := range []string{hls, concat} {
		_, err := media.Package(context.Background(), []string{in}, media.PackageOptions{Library: lib, Name: "leak", Untrusted: true})
		if err == nil || !strings.Contains(err.Error(), "plain media container") {
			t.Errorf("%s: %v, want a refusal", filepath.Base(in), err)
		}
	}
	if treeHash(t, lib) != before {
		t.Error("a refused upload changed the library")
	}
	// The operator's own playlist is still theirs to package (trusted).
	if _, err := media.ProbeFile(context.Background(), hls); err != nil {
		t.Errorf("trusted probe of a playlist: %v", err)
	}
	if p, err := media.ProbeUpload(context.Background(), src); err != nil || p.Format == "" {
		t.Errorf("plain MP4 upload: %v", err)
	}
}

// TestCopiedRenditionKeepsItsTurn: a phone's video stored landscape with
// a quarter turn in its display matrix, packaged as it is (-copy), keeps
// the turn in its init segment, so players (ffmpeg here, through the
// MPD) show it upright, as the encoded renditions are.
func TestCopiedRenditionKeepsItsTurn(t *testing.T) {
	dir := t.TempDir()
	turned := mediatest.Turned(t, dir)
	lib := filepath.Join(dir, "lib")
	a, err := media.Package(context.Background(), []string{turned}, media.PackageOptions{Library: lib, Name: "turned", Copy: true})
	if err != nil {
		t.Fatal(err)
	}
	rotation := func(path string) string {
		out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream_side_data=rotation", "-of", "csv=p=0", path).Output()
		if err != nil {
			t.Fatalf("ffprobe %s: %v", path, err)
		}
		return strings.TrimSpace(string(out))
	}
	if got, want := rotation(filepath.Join(lib, "turned", a.Renditions[0].ID, "init.mp4")), rotation(turned); got != want || want == "" {
		t.Errorf("the init segment's rotation is %q, want the source's %q", got, want)
	}
	frame := filepath.Join(dir, "frame.png")
	mediatest.FFmpeg(t, "-i", filepath.Join(lib, "turned", media.ManifestFile), "-frames:v", "1", frame)
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "stream=width,height", "-of", "csv=p=0", frame).Output()
	if err != nil || strings.TrimSpace(string(out)) != "180,320" {
		t.Errorf("ffmpeg shows the copied rendition %q (%v), want upright 180,320", out, err)
	}
}

// TestCopiedRenditionKeepsItsPixelShape: an anamorphic rendition (non
// square pixels, given in its SPS) packaged as it is (-copy) says its
// pixel aspect ratio in asset.json and the MPD, and HLS its shown size.
func TestCopiedRenditionKeepsItsPixelShape(t *testing.T) {
	dir := t.TempDir()
	wide := filepath.Join(dir, "wide.mp4")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=360x270:rate=25", "-t", "2", "-vf", "setsar=4/3", "-c:v", "libx264", "-g", "50",
		"-pix_fmt", "yuv420p", wide)
	lib := filepath.Join(dir, "lib")
	a, err := media.Package(context.Background(), []string{wide}, media.PackageOptions{Library: lib, Name: "wide", Copy: true})
	if err != nil {
		t.Fatal(err)
	}
	if r := a.Renditions[0]; r.Sar != "4:3" || r.Width != 360 {
		t.Errorf("asset.json: %dx%d, sar %q; want 360x270 at 4:3", r.Width, r.Height, r.Sar)
	}
	doc, _ := os.ReadFile(filepath.Join(lib, "wide", media.ManifestFile))
	if !strings.Contains(string(doc), `sar="4:3"`) {
		t.Errorf("the MPD lacks sar=\"4:3\":\n%s", doc)
	}
	h, err := manifest.BuildHLS(a.Presentation())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(h.Multivariant), "RESOLUTION=480x270") {
		t.Errorf("HLS RESOLUTION, want the shown 480x270:\n%s", h.Multivariant)
	}
	// An encoded rendition has square pixels, and says so.
	enc, err := media.LoadAsset(filepath.Join(mediatest.Library(t), mediatest.AssetName))
	if err != nil {
		t.Fatal(err)
	}
	if r := enc.Renditions[0]; r.Sar != "" {
		t.Errorf("an encoded rendition's sar is %q", r.Sar)
	}
}

// TestCopiedSoundIsNamedForWhatItIs: -copy names a sound by its channels
// and its own bitrate, not as the 128 kbit/s stereo the encoder makes.
func TestCopiedSoundIsNamedForWhatItIs(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		layout, rate, want string
		channels           int
	}{
		{"5.1", "256k", "audio-surround-256k", 6},
		{"stereo", "96k", "audio-96k", 2},
	} {
		src := filepath.Join(dir, c.layout+".mp4")
		mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25", "-f", "lavfi", "-i", "anoisesrc=d=6:c=pink:a=0.5",
			"-t", "6", "-c:v", "libx264", "-g", "50", "-pix_fmt", "yuv420p",
			"-af", "aformat=channel_layouts="+c.layout, "-c:a", "aac", "-b:a", c.rate, "-ar", "48000", src)
		a, err := media.Package(context.Background(), []string{src}, media.PackageOptions{Library: filepath.Join(dir, "lib"), Name: "copied-" + c.rate, Copy: true, NoThumbnails: true})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range a.Renditions {
			if r.Type == "audio" {
				got = append(got, fmt.Sprintf("%s x%d", r.ID, r.Channels))
			}
		}
		if want := fmt.Sprintf("%s x%d", c.want, c.channels); len(got) != 1 || got[0] != want {
			t.Errorf("%s at %s copied as %v, want %s", c.layout, c.rate, got, want)
		}
	}
}
