package media

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/deepcast/deepcast/manifest"
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
	Manifest   FileInfo    `json:"manifest"`
	// DecodeErrors counts the errors met decoding a source packaged with
	// AllowDamaged: its frames may show damage.
	DecodeErrors int `json:"decodeErrors,omitempty"`
}

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
	ID         string `json:"id"`
	Type       string `json:"type"` // "video" or "audio"
	Codecs     string `json:"codecs"`
	Width      int    `json:"width,omitempty"`
	Height     int    `json:"height,omitempty"`
	FrameRate  string `json:"frameRate,omitempty"`
	SampleRate int    `json:"sampleRate,omitempty"`
	Channels   int    `json:"channels,omitempty"`
	Lang       string `json:"lang,omitempty"` // audio: the source's language tag
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
	for _, r := range a.Renditions {
		t := manifest.Track{ID: r.ID, Codecs: r.Codecs, Bandwidth: uint32(min(r.Bandwidth, 1<<32-1)),
			AvgBandwidth: uint32(min(r.Bitrate, 1<<32-1)), Width: r.Width, Height: r.Height, FrameRate: r.FrameRate,
			SampleRate: r.SampleRate, Channels: r.Channels, Lang: r.Lang, Timescale: r.Timescale, PTO: r.PTO}
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
const MaxNameLen = 128

// ValidName reports whether s may name an asset or rendition: it matches
// [A-Za-z0-9._-]+, is at most MaxNameLen bytes, is not "." or "..", and does
// not start with "." (hidden names are the library's own).
func ValidName(s string) bool {
	if s == "" || len(s) > MaxNameLen || s[0] == '.' {
		return false
	}
	// A loop, not a regexp: every request to the origin checks one or two
	// names, and the regexp was 3% of the origin's CPU serving manifests.
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// Library is a folder of assets. Each asset name is a symbolic link to an
// immutable version folder under .versions/, so replacing an asset is one
// atomic rename and a reader that resolved a version keeps a consistent view.
type Library struct {
	Root string
}

const versionsDir = ".versions"

// Names lists the assets of the library, sorted.
func (l Library) Names() ([]string, error) {
	entries, err := os.ReadDir(l.Root)
	if err != nil {
		return nil, fmt.Errorf("library %s: %w", l.Root, err)
	}
	var names []string
	for _, e := range entries {
		if ValidName(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// ErrNoAsset is returned for a name that is not in the library.
var ErrNoAsset = errors.New("no such asset")

// Resolve returns the version folder that name currently points to. The
// result never lies outside the library root.
func (l Library) Resolve(name string) (string, error) {
	if !ValidName(name) {
		return "", fmt.Errorf("asset %q: %w", name, ErrNoAsset)
	}
	p := filepath.Join(l.Root, name)
	target, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("asset %q: %w", name, ErrNoAsset)
		}
		return "", fmt.Errorf("asset %q: %w", name, err)
	}
	root, err := filepath.EvalSymlinks(l.Root)
	if err != nil {
		return "", fmt.Errorf("library %s: %w", l.Root, err)
	}
	rel, err := filepath.Rel(root, target)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("asset %q: resolves outside the library", name)
	}
	return target, nil
}

// install moves a finished staging folder into place as the new version of
// name, then drops versions older than the previous one (clients still
// streaming the previous version keep being served until they reload).
func (l Library) install(staging, name, build string) error {
	vdir := filepath.Join(l.Root, versionsDir)
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return fmt.Errorf("library: %w", err)
	}
	version := name + "." + build
	if err := os.Rename(staging, filepath.Join(vdir, version)); err != nil {
		return fmt.Errorf("library: install %s: %w", name, err)
	}
	link := filepath.Join(l.Root, name)
	previous := ""
	if st, err := os.Lstat(link); err == nil {
		if st.Mode()&os.ModeSymlink != 0 {
			if t, err := os.Readlink(link); err == nil {
				previous = filepath.Base(t)
			}
		} else if st.IsDir() {
			// A plain folder (copied in by hand): keep it as the previous version.
			previous = name + ".legacy-" + build
			if err := os.Rename(link, filepath.Join(vdir, previous)); err != nil {
				return fmt.Errorf("library: move aside %s: %w", link, err)
			}
		}
	}
	tmpLink := filepath.Join(l.Root, ".link-"+version)
	if err := os.Symlink(filepath.Join(versionsDir, version), tmpLink); err != nil {
		return fmt.Errorf("library: %w", err)
	}
	if err := os.Rename(tmpLink, link); err != nil {
		os.Remove(tmpLink)
		return fmt.Errorf("library: publish %s: %w", name, err)
	}
	l.prune(name, version, previous)
	return nil
}

// prune removes the versions of name other than current and previous.
func (l Library) prune(name, current, previous string) {
	vdir := filepath.Join(l.Root, versionsDir)
	entries, err := os.ReadDir(vdir)
	if err != nil {
		return
	}
	for _, e := range entries {
		v := e.Name()
		if v == current || v == previous || !strings.HasPrefix(v, name+".") {
			continue
		}
		// Only this asset's versions: the build suffix has no dots.
		if strings.Contains(strings.TrimPrefix(v, name+"."), ".") {
			continue
		}
		_ = os.RemoveAll(filepath.Join(vdir, v))
	}
}
