package media_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/mediatest"
)

// TestKeyframeLengthMatchesThePackager: what KeyframeLength reads from a
// segment is what the packager recorded while writing it.
func TestKeyframeLengthMatchesThePackager(t *testing.T) {
	lib, a := packagedForKeyframes(t)
	dir, _ := filepath.EvalSymlinks(filepath.Join(lib, a.Name))
	checked := 0
	for _, r := range a.Renditions {
		for _, s := range r.Segments {
			if r.Type != "video" {
				if s.Key != 0 {
					t.Errorf("%s: audio segment %d has a keyframe range", r.ID, s.Number)
				}
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, r.ID, strconv.Itoa(s.Number)+".m4s"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := media.KeyframeLength(bytes.NewReader(data), int64(len(data)))
			if err != nil || got != s.Key || s.Key <= 0 {
				t.Errorf("%s segment %d: read %d (%v), recorded %d", r.ID, s.Number, got, err, s.Key)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no video segment checked")
	}
}

func packagedForKeyframes(t testing.TB) (string, *media.Asset) {
	lib := mediatest.Library(t)
	names, err := media.Library{Root: lib}.Names(context.Background())
	if err != nil || len(names) == 0 {
		t.Fatalf("library: %v %v", names, err)
	}
	dir, err := media.Library{Root: lib}.Resolve(names[0])
	if err != nil {
		t.Fatal(err)
	}
	a, err := media.LoadAsset(dir)
	if err != nil {
		t.Fatal(err)
	}
	return lib, a
}

// FuzzKeyframeLength: no segment, however broken, panics the reader, and
// what it returns lies inside the segment.
func FuzzKeyframeLength(f *testing.F) {
	lib, a := packagedForKeyframes(f)
	dir, _ := filepath.EvalSymlinks(filepath.Join(lib, a.Name))
	for _, r := range a.Renditions {
		if data, err := os.ReadFile(filepath.Join(dir, r.ID, "1.m4s")); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte{0, 0, 0, 8, 'm', 'o', 'o', 'f'})
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := media.KeyframeLength(bytes.NewReader(data), int64(len(data)))
		if err == nil && (n <= 0 || n > int64(len(data))) {
			t.Fatalf("keyframe range %d of a %d-byte segment", n, len(data))
		}
	})
}
