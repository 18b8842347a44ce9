package media

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/deepcast/deepcast/manifest"
	"github.com/deepcast/deepcast/media/store"
)

// AssetFile is the metadata file inside every asset folder.
const AssetFile = "asset.json"

// ManifestFile is the MPD inside every asset folder.
const ManifestFile = "manifest.mpd"

// assetFormat is the version of the asset.json layout.
const assetFormat = 1

// Asset is the content of asset.json: everything a server needs to know about
// a packaged title without touching its segments.
type Asset struct {
	Format  int       `json:"format"`
	Name    string    `json:"name"`
	Build   string    `json:"build"` // unique per packaging run; names the version folder
	Created time.Time `json:"created"`
	Sources []Source  `json:"sources"`
	// SegmentDuration is the target segment length in seconds.
	SegmentDuration float64 `json:"segmentDuration"`
	// Duration is the presentation length in seconds.
	Duration   float64     `json:"duration"`
	Ladder     Ladder      `json:"ladder,omitempty"`
	Renditions []Rendition `json:"renditions"`
	// Texts are the subtitle tracks, each one WebVTT file.
	Texts []TextTrack `json:"texts,omitempty"`
	// Thumbnails are the seek-preview tiles (none for copied renditions).
	Thumbnails *Thumbnails `json:"thumbnails,omitempty"`
	Manifest   FileInfo    `json:"manifest"`
	// DecodeErrors counts the errors met decoding a source packaged with
	// AllowDamaged: its frames may show damage.
	DecodeErrors int `json:"decodeErrors,omitempty"`
	// Protection, when set, says the media are encrypted; the key is in
	// KeysFile, not here.
	Protection *Protection `json:"protection,omitempty"`
}

// LicencePath is the ClearKey licence endpoint of an asset, under the
// asset's folder so that an edge's token for the asset covers it.
func LicencePath(asset string) string { return "/vod/" + asset + "/clearkey" }

// Source records an input file of the asset.
type Source struct {
	File      string  `json:"file"`
	Size      int64   `json:"size"`
	Duration  float64 `json:"duration"`
	Width     int     `json:"width"`
	Height    int     `json:"height"`
	FrameRate string  `json:"frameRate"`
	Frames    int     `json:"frames,omitempty"`
}

// Rendition is one Representation on disk: a folder with init.mp4 and N.m4s.
type Rendition struct {
	ID     string `json:"id"`
	Type   string `json:"type"` // "video" or "audio"
	Codecs string `json:"codecs"`
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
	// Sar is a video rendition's pixel aspect ratio ("32:27"); "" is
	// square, as every encoded rendition is.
	Sar        string `json:"sar,omitempty"`
	FrameRate  string `json:"frameRate,omitempty"`
	SampleRate int    `json:"sampleRate,omitempty"`
	Channels   int    `json:"channels,omitempty"`
	Lang       string `json:"lang,omitempty"` // audio: BCP 47 ("en"), "" when unknown
	// Label is what a player's menu shows for an audio track ("English",
	// "Director's commentary").
	Label string `json:"label,omitempty"`
	// Role is what an audio track is to a viewer: "main", "alternate",
	// "commentary", "description" or "dub" (DASH's Role words).
	Role string `json:"role,omitempty"`
	// Bitrate is the mean bitrate over the whole rendition (bit/s).
	Bitrate int64 `json:"bitrate"`
	// Bandwidth is the peak segment bitrate (bit/s), the MPD's @bandwidth.
	Bandwidth int64         `json:"bandwidth"`
	Timescale uint32        `json:"timescale"`
	PTO       uint64        `json:"presentationTimeOffset"`
	Samples   int           `json:"samples"`
	Init      FileInfo      `json:"init"`
	Segments  []SegmentInfo `json:"segments"`
}

// SizeOnDisk is the byte count of every file of the asset.
func (a *Asset) SizeOnDisk() int64 {
	total := a.Manifest.Size
	for _, t := range a.Texts {
		total += t.File.Size
	}
	if a.Thumbnails != nil {
		for _, f := range a.Thumbnails.Tiles {
			total += f.Size
		}
	}
	for _, r := range a.Renditions {
		total += r.Init.Size
		for _, s := range r.Segments {
			total += s.Size
		}
	}
	return total
}

// Presentation describes the asset for the manifest builders (the MPD and
// the HLS playlists), from its metadata alone.
func (a *Asset) Presentation() manifest.Presentation {
	p := manifest.Presentation{Title: a.Name, Duration: time.Duration(a.Duration * float64(time.Second)),
		MinBufferTime: time.Duration(a.SegmentDuration * float64(time.Second))}
	if a.Protection != nil {
		kid, _ := parseHex16(a.Protection.KeyID)
		p.Protection = &manifest.Protection{Scheme: a.Protection.Scheme, KeyID: uuidString(kid), LicenceURL: LicencePath(a.Name)}
	}
	if th := a.Thumbnails; th != nil && len(th.Tiles) > 0 {
		p.Thumbnails = &manifest.Thumbnails{Interval: time.Duration(th.Interval * float64(time.Second)), Width: th.Width, Height: th.Height,
			Columns: th.Columns, Rows: th.Rows}
		for _, f := range th.Tiles {
			p.Thumbnails.MaxTile = max(p.Thumbnails.MaxTile, f.Size)
		}
	}
	for _, t := range a.Texts {
		p.Text = append(p.Text, manifest.TextTrack{ID: t.ID, Lang: LanguageTag(t.Lang), Label: t.Label, Role: t.Role, Size: t.File.Size})
	}
	for _, r := range a.Renditions {
		t := manifest.Track{ID: r.ID, Codecs: r.Codecs, Bandwidth: uint32(min(r.Bandwidth, 1<<32-1)),
			AvgBandwidth: uint32(min(r.Bitrate, 1<<32-1)), Width: r.Width, Height: r.Height, Sar: r.Sar, FrameRate: r.FrameRate,
			SampleRate: r.SampleRate, Channels: r.Channels, Lang: LanguageTag(r.Lang), Label: r.Label, Role: r.Role, Timescale: r.Timescale, PTO: r.PTO}
		keys := r.Type == "video"
		for _, s := range r.Segments {
			t.Segments = append(t.Segments, manifest.Span{Time: s.Time, Duration: s.Duration})
			keys = keys && s.Key > 0
		}
		if keys {
			for _, s := range r.Segments {
				t.Keyframes = append(t.Keyframes, s.Key)
			}
		}
		if r.Type == "video" {
			p.Video = append(p.Video, t)
		} else {
			p.Audio = append(p.Audio, t)
		}
	}
	return p
}

// Text returns the subtitle track with the given ID.
func (a *Asset) Text(id string) (*TextTrack, bool) {
	for i := range a.Texts {
		if a.Texts[i].ID == id {
			return &a.Texts[i], true
		}
	}
	return nil, false
}

// Rendition returns the rendition with the given ID.
func (a *Asset) Rendition(id string) (*Rendition, bool) {
	for i := range a.Renditions {
		if a.Renditions[i].ID == id {
			return &a.Renditions[i], true
		}
	}
	return nil, false
}

// Segment returns media segment n (1-based) of the rendition.
func (r *Rendition) Segment(n int) (SegmentInfo, bool) {
	if n < 1 || n > len(r.Segments) {
		return SegmentInfo{}, false
	}
	return r.Segments[n-1], true
}

// LoadAsset reads and checks the asset.json in dir.
func LoadAsset(dir string) (*Asset, error) {
	data, err := os.ReadFile(filepath.Join(dir, AssetFile))
	if err != nil {
		return nil, fmt.Errorf("asset %s: %w", dir, err)
	}
	a, err := ParseAsset(data)
	if err != nil {
		return nil, fmt.Errorf("asset %s: %w", dir, err)
	}
	return a, nil
}

// ParseAsset decodes and validates asset.json content.
func ParseAsset(data []byte) (*Asset, error) {
	var a Asset
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("asset.json: %w", err)
	}
	if a.Format != assetFormat {
		return nil, fmt.Errorf("asset.json: format %d, want %d", a.Format, assetFormat)
	}
	if !ValidName(a.Name) {
		return nil, fmt.Errorf("asset.json: invalid name %q", a.Name)
	}
	if len(a.Renditions) == 0 {
		return nil, fmt.Errorf("asset.json: no renditions")
	}
	seen := map[string]bool{}
	for _, r := range a.Renditions {
		if !ValidName(r.ID) || seen[r.ID] {
			return nil, fmt.Errorf("asset.json: invalid or repeated rendition id %q", r.ID)
		}
		seen[r.ID] = true
		for k, s := range r.Segments {
			if s.Number != k+1 {
				return nil, fmt.Errorf("asset.json: rendition %s: segment %d numbered %d", r.ID, k+1, s.Number)
			}
		}
	}
	return &a, nil
}

func (a *Asset) save(dir string) error {
	data, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return fmt.Errorf("asset.json: %w", err)
	}
	return os.WriteFile(filepath.Join(dir, AssetFile), append(data, '\n'), 0o644)
}

// MaxNameLen bounds asset and rendition names.
const MaxNameLen = store.MaxNameLen

// ValidName reports whether s may name an asset or rendition: it matches
// [A-Za-z0-9._-]+, is at most MaxNameLen bytes, is not "." or "..", and does
// not start with "." (hidden names are the library's own).
func ValidName(s string) bool { return store.ValidName(s) }

// NameRule says in words what ValidName checks.
var NameRule = store.NameRule

// ErrNoAsset is returned for a name that is not in the library.
var ErrNoAsset = store.ErrNoAsset

// Library is a library folder (see store.Folder).
type Library = store.Folder
