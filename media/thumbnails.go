package media

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/deepcast/deepcast/manifest"
)

// Thumbnails are an asset's seek-preview pictures (DASH-IF thumbnail
// tiles): one every Interval seconds from the start, Width x Height each,
// laid out Columns x Rows in each JPEG tile, thumbs/1.jpg, 2.jpg, ...
type Thumbnails struct {
	Interval float64    `json:"interval"` // seconds
	Width    int        `json:"width"`
	Height   int        `json:"height"`
	Columns  int        `json:"columns"`
	Rows     int        `json:"rows"`
	Count    int        `json:"count"` // thumbnails in all
	Tiles    []FileInfo `json:"tiles"`
}

// thumbnailSide is a thumbnail's long side in pixels: a seek bar's
// preview, not a picture to watch.
const thumbnailSide = 160

// maxThumbnails bounds the thumbnails of an asset: past it, they are
// spaced further apart than a segment.
const maxThumbnails = 3600

// maxTileGrid is the most thumbnails a tile holds across and down.
const maxTileGrid = 10

// planThumbnails lays out the thumbnails of a source of w x h shown for
// duration seconds, one a segment (segDur seconds) or, for a long source,
// one every few segments.
func planThumbnails(w, h int, duration, segDur float64) Thumbnails {
	t := Thumbnails{Interval: segDur}
	if n := math.Ceil(duration / segDur); n > maxThumbnails {
		t.Interval = segDur * math.Ceil(n/maxThumbnails)
	}
	t.Count = max(1, int(math.Ceil(duration/t.Interval-1e-9)))
	// The long side thumbnailSide, the other as the picture's shape makes
	// it, even (JPEG's chroma is subsampled by two).
	if w >= h {
		t.Width, t.Height = min(thumbnailSide, w), max(2, even(float64(min(thumbnailSide, w))*float64(h)/float64(w)))
	} else {
		t.Width, t.Height = max(2, even(float64(min(thumbnailSide, h))*float64(w)/float64(h))), min(thumbnailSide, h)
	}
	t.Columns = min(maxTileGrid, t.Count)
	t.Rows = min(maxTileGrid, (t.Count+t.Columns-1)/t.Columns)
	return t
}

// thumbnailFilter is the filter-graph branch that makes the tiles from
// the decoded picture.
func (t Thumbnails) thumbnailFilter() string {
	return fmt.Sprintf("fps=1/%s:round=up,scale=%d:%d:flags=bicubic,setsar=1,format=yuvj420p,tile=%dx%d",
		strconv.FormatFloat(t.Interval, 'f', -1, 64), t.Width, t.Height, t.Columns, t.Rows)
}

// tileOutput is the ffmpeg output of tiles made by thumbnailFilter: JPEGs
// dir/1.jpg, 2.jpg, ... and nothing else of the source.
func tileOutput(dir string) []string {
	return []string{"-an", "-sn", "-dn", "-c:v", "mjpeg", "-q:v", "5", "-map_metadata", "-1",
		"-f", "image2", "-start_number", "1", filepath.Join(dir, "%d.jpg")}
}

// tiles is how many tile images the thumbnails fill.
func (t Thumbnails) tiles() int {
	per := t.Columns * t.Rows
	return (t.Count + per - 1) / per
}

// thumbnailsOf makes the thumbnails of copied renditions (probes) from
// one of them: the smallest whose long side reaches thumbnailSide, the
// cheapest to decode. Every frame is decoded: a rendition's keyframes
// alone may be too few (a source copied as it is may have one).
func thumbnailsOf(ctx context.Context, probes []*Probe, segDur float64, staging string) (*Thumbnails, error) {
	long := func(p *Probe) int { return max(p.Video.Width, p.Video.Height) }
	pick := probes[0]
	for _, p := range probes[1:] {
		if l := long(p); l >= thumbnailSide && (l < long(pick) || long(pick) < thumbnailSide) {
			pick = p
		}
	}
	plan := planThumbnails(pick.Video.Width, pick.Video.Height, pick.Video.Duration, segDur)
	dir, err := os.MkdirTemp(staging, ".thumbs-")
	if err != nil {
		return nil, fmt.Errorf("thumbnails: %w", err)
	}
	defer os.RemoveAll(dir)
	args := []string{"-hide_banner", "-nostdin", "-y", "-v", "error"}
	if pick.Untrusted {
		args = append(args, untrustedInputArgs()...)
	}
	args = append(append(args, "-i", pick.Path, "-map", "0:v:0", "-vf", plan.thumbnailFilter()), tileOutput(dir)...)
	if err := runFFmpeg(ctx, args); err != nil {
		return nil, fmt.Errorf("thumbnails of %s: %w", pick.Path, err)
	}
	return collectThumbnails(plan, dir, staging)
}

// collectThumbnails moves the tiles ffmpeg wrote into dir (from 1.jpg on)
// to staging/thumbs, recording each. The last tile may be missing when
// the picture ended before its last thumbnail's time: the thumbnails
// are counted from the tiles there are.
func collectThumbnails(t Thumbnails, dir, staging string) (*Thumbnails, error) {
	out := filepath.Join(staging, manifest.ThumbnailsID)
	if err := os.Mkdir(out, 0o755); err != nil {
		return nil, fmt.Errorf("thumbnails: %w", err)
	}
	for n := 1; n <= t.tiles(); n++ {
		name := strconv.Itoa(n) + ".jpg"
		b, err := os.ReadFile(filepath.Join(dir, name))
		if os.IsNotExist(err) && n > 1 {
			t.Count = min(t.Count, (n-1)*t.Columns*t.Rows)
			break
		}
		if err != nil {
			return nil, fmt.Errorf("thumbnails: %w", err)
		}
		info, err := writeFileSum(filepath.Join(out, name), b)
		if err != nil {
			return nil, err
		}
		t.Tiles = append(t.Tiles, info)
	}
	return &t, nil
}
