package media_test

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/mediatest"
)

// TestAudioChannelsFromTheDecoderConfig: an AAC track's channel count is
// its decoder configuration's, not the sample entry's (which ffmpeg sets
// to 2 for 5.1 and 7.1 alike), so a copied 5.1 rendition is described as
// 5.1 in the MPD and the playlists.
func TestAudioChannelsFromTheDecoderConfig(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		layout string
		want   int
	}{{"mono", 1}, {"stereo", 2}, {"5.1", 6}, {"7.1", 8}} {
		path := filepath.Join(dir, c.layout+".mp4")
		mediatest.FFmpeg(t, "-f", "lavfi", "-i", "sine=d=0.5", "-af", "aformat=channel_layouts="+c.layout, "-c:a", "aac", path)
		tracks, err := media.ReadTracks(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(tracks) != 1 {
			t.Fatalf("%s: %d tracks", c.layout, len(tracks))
		}
		if tracks[0].Channels != c.want {
			t.Errorf("%s: %d channels, want %d", c.layout, tracks[0].Channels, c.want)
		}
	}
}

// FuzzReadTracks: no file, however hostile, panics the MP4 reader that
// -copy and the segmenter rely on; what it accepts has sane tracks.
func FuzzReadTracks(f *testing.F) {
	dir := f.TempDir()
	for _, args := range [][]string{
		{"-f", "lavfi", "-i", "testsrc2=size=64x48:rate=5", "-f", "lavfi", "-i", "sine", "-t", "0.6", "-c:v", "libx264", "-c:a", "aac", "-vf", "setsar=4/3"},
		{"-f", "lavfi", "-i", "sine", "-t", "0.2", "-af", "aformat=channel_layouts=5.1", "-c:a", "aac"},
	} {
		path := filepath.Join(dir, "seed.mp4")
		mediatest.FFmpeg(f, append(args, path)...)
		seed, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(seed)
	}
	// One file for every input of this process (they run one at a time).
	path := filepath.Join(dir, "in.mp4")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		tracks, err := media.ReadTracks(path)
		if err != nil {
			return
		}
		for _, tr := range tracks {
			if tr.Timescale == 0 || len(tr.DTS) != tr.Len()+1 {
				t.Fatalf("accepted a track with timescale %d and %d decode times for %d samples", tr.Timescale, len(tr.DTS), tr.Len())
			}
		}
	})
}

// TestReadTracksRefusesMalformedTables: an MP4 whose track lacks its
// header, claims billions of samples in a few bytes, or puts samples past
// its end is refused with an error, never a crash or a huge allocation.
func TestReadTracksRefusesMalformedTables(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.mp4")
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=5", "-t", "1", "-c:v", "libx264", "-movflags", "+faststart", src)
	good, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	// box finds a box's header by its type: its size field is at i-4.
	box := func(b []byte, kind string) int {
		i := bytes.Index(b, []byte(kind))
		if i < 4 {
			t.Fatalf("no %s box", kind)
		}
		return i
	}
	for _, c := range []struct {
		name, want string
		mangle     func(b []byte)
	}{
		{"no track header", "incomplete trak", func(b []byte) { copy(b[box(b, "tkhd"):], "free") }},
		{"billions of samples", "more than", func(b []byte) {
			// A uniform size and a count, the table's entries made a
			// free box.
			start := box(b, "stsz") - 4
			size := binary.BigEndian.Uint32(b[start:])
			binary.BigEndian.PutUint32(b[start:], 20)
			binary.BigEndian.PutUint32(b[start+12:], 100)
			binary.BigEndian.PutUint32(b[start+16:], 0x7fffffff)
			binary.BigEndian.PutUint32(b[start+20:], size-20)
			copy(b[start+24:], "free")
		}},
		{"samples past the end", "of a", func(b []byte) {
			i := box(b, "stco") + 4 + 4 + 4 // type, version and flags, entry count
			binary.BigEndian.PutUint32(b[i:], uint32(len(b)-10))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(good)
			c.mangle(b)
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".mp4")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := media.ReadTracks(path); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("read as %v, want an error saying %q", err, c.want)
			}
		})
	}
}
