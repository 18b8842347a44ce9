package media_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/deepcast/deepcast/media"
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
		out, err := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=d=0.5",
			"-af", "aformat=channel_layouts="+c.layout, "-c:a", "aac", path).CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, out)
		}
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
