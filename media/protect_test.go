package media_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/mediatest"
)

// decodeSegment decodes init+segment (one self-contained fragment) with
// ffmpeg, decrypting with key when given, and returns the frames' MD5s
// (framemd5) and ffmpeg's log.
func decodeSegment(t *testing.T, init, seg, key string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := []string{"-hide_banner", "-nostdin", "-v", "verbose"}
	if key != "" {
		args = append(args, "-decryption_key", key)
	}
	args = append(args, "-i", "concat:"+init+"|"+seg, "-map", "0", "-f", "framemd5", "-")
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	var out, log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &log
	cmd.Run() // the log says what was decoded; a wrong key may still exit 0
	var frames []string
	for l := range strings.Lines(out.String()) {
		if !strings.HasPrefix(l, "#") {
			frames = append(frames, strings.TrimSpace(l))
		}
	}
	return strings.Join(frames, "\n"), log.String()
}

// TestEncryptedSegmentsDecryptToTheClearOnes packages one source twice
// without re-encoding (-copy), clear and encrypted (cenc, then cbcs), and
// checks, segment by segment and rendition by rendition, that ffmpeg
// decrypting with the key decodes exactly the clear frames, that a wrong
// key does not, that no run of the clear media bytes is left in an
// encrypted segment, and that asset.json's records (sizes, digests, the
// I-frame prefix) describe the encrypted files.
func TestEncryptedSegmentsDecryptToTheClearOnes(t *testing.T) {
	src := mediatest.Source(t)
	ctx := context.Background()
	lib := t.TempDir()
	clear, err := media.Package(ctx, []string{src}, media.PackageOptions{Library: lib, Name: "clear", Copy: true})
	if err != nil {
		t.Fatal(err)
	}
	kid, key := bytes.Repeat([]byte{0x11}, 16), []byte("0123456789abcdef")
	for _, scheme := range []string{media.SchemeCENC, media.SchemeCBCS} {
		t.Run(scheme, func(t *testing.T) {
			enc, err := media.Package(ctx, []string{src}, media.PackageOptions{Library: lib, Name: "enc-" + scheme, Copy: true,
				Encrypt: &media.Encryption{Scheme: scheme, KeyID: kid, Key: key}})
			if err != nil {
				t.Fatal(err)
			}
			if enc.Protection == nil || enc.Protection.Scheme != scheme || enc.Protection.KeyID != hex.EncodeToString(kid) {
				t.Fatalf("protection %+v", enc.Protection)
			}
			b, _ := os.ReadFile(filepath.Join(lib, enc.Name, media.KeysFile))
			if gotKid, gotKey, err := media.ParseContentKey(b); err != nil || !bytes.Equal(gotKid, kid) || !bytes.Equal(gotKey, key) {
				t.Fatalf("keys.json: %v", err)
			}
			mpd, _ := os.ReadFile(filepath.Join(lib, enc.Name, media.ManifestFile))
			for _, want := range []string{`value="` + scheme + `"`, `cenc:default_KID="11111111-1111-1111-1111-111111111111"`,
				"urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e", "/vod/" + enc.Name + "/clearkey"} {
				if !bytes.Contains(mpd, []byte(want)) {
					t.Errorf("MPD lacks %s", want)
				}
			}
			mediatest.ValidateMPD(t, filepath.Join(lib, enc.Name, media.ManifestFile))
			for ri, r := range enc.Renditions {
				cr := clear.Renditions[ri]
				dir, cdir := filepath.Join(lib, enc.Name, r.ID), filepath.Join(lib, clear.Name, cr.ID)
				for si, s := range r.Segments {
					seg := filepath.Join(dir, fmt.Sprintf("%d.m4s", s.Number))
					cseg := filepath.Join(cdir, fmt.Sprintf("%d.m4s", s.Number))
					want, _ := decodeSegment(t, filepath.Join(cdir, "init.mp4"), cseg, "")
					got, log := decodeSegment(t, filepath.Join(dir, "init.mp4"), seg, hex.EncodeToString(key))
					if want == "" || got != want {
						t.Fatalf("%s segment %d: decrypted frames differ from the clear ones (%d vs %d lines)\n%s",
							r.ID, s.Number, strings.Count(got, "\n"), strings.Count(want, "\n"), tailLines(log, 8))
					}
					if wrong, _ := decodeSegment(t, filepath.Join(dir, "init.mp4"), seg, strings.Repeat("ab", 16)); wrong == want {
						t.Fatalf("%s segment %d: a wrong key decodes the clear frames", r.ID, s.Number)
					}
					data, _ := os.ReadFile(seg)
					if int64(len(data)) != s.Size || s.Size < cr.Segments[si].Size {
						t.Errorf("%s segment %d: %d bytes, asset.json says %d (clear %d)", r.ID, s.Number, len(data), s.Size, cr.Segments[si].Size)
					}
					if r.Type == "video" && s.Key != cr.Segments[si].Key+(s.Size-cr.Segments[si].Size) {
						t.Errorf("%s segment %d: keyframe prefix %d, want the clear %d moved by the boxes added", r.ID, s.Number, s.Key, cr.Segments[si].Key)
					}
					// cenc encrypts whole samples (audio) and all the slice
					// data (video); cbcs video one 16-byte block in ten.
					share, least := changedShare(t, cseg, data), 0.8
					if scheme == media.SchemeCBCS && r.Type == "video" {
						least = 0.08
					}
					if share < least {
						t.Errorf("%s segment %d: only %.1f%% of the media bytes differ from the clear ones (want %.0f%% or more)", r.ID, s.Number, share*100, least*100)
					}
				}
			}
		})
	}
}

// changedShare compares the media data of a clear segment and its
// encrypted twin (CENC keeps every sample's size, so the bytes line up)
// and returns the share of bytes that differ.
func changedShare(t *testing.T, clearSeg string, enc []byte) float64 {
	t.Helper()
	data, _ := os.ReadFile(clearSeg)
	payload := func(b []byte) []byte {
		i := bytes.LastIndex(b, []byte("mdat"))
		if i < 0 {
			t.Fatalf("%s: no mdat", clearSeg)
		}
		return b[i+4:]
	}
	c, e := payload(data), payload(enc)
	if len(c) != len(e) {
		t.Fatalf("%s: media data %d bytes clear, %d encrypted", clearSeg, len(c), len(e))
	}
	diff := 0
	for i := range c {
		if c[i] != e[i] {
			diff++
		}
	}
	return float64(diff) / float64(max(1, len(c)))
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// FuzzParseKeyPair: -key-file contents are read as 16-byte key id and key
// or refused.
func FuzzParseKeyPair(f *testing.F) {
	f.Add("# KID:KEY\na0a1a2a3a4a5a6a7a8a9aaabacadaeaf:3f1e5d7c9b2a4e6f8d0c1b3a5e7f9d2c\n")
	f.Add("01234567-89ab-cdef-0123-456789abcdef:00112233445566778899aabbccddeeff")
	f.Add(":")
	f.Fuzz(func(t *testing.T, s string) {
		kid, key, err := media.ParseKeyPair(s)
		if err == nil && (len(kid) != 16 || len(key) != 16) {
			t.Fatalf("%q read as %d and %d bytes", s, len(kid), len(key))
		}
		if _, _, err := media.ParseContentKey([]byte(s)); err == nil && !strings.Contains(s, "keyId") {
			t.Fatalf("%q read as a key file", s)
		}
	})
}
