package origin

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deepcast/deepcast/media"
)

// Entry is one asset as served: the version folder it was loaded from, its
// metadata and its manifest bytes. An Entry never changes; a replaced asset
// gets a new Entry, so one response never mixes two versions.
type Entry struct {
	Name     string
	Dir      string // resolved version folder
	Asset    *media.Asset
	Manifest []byte
	// manifestTag is the manifest's ETag, computed once.
	manifestTag string
	// lastModified is the asset's creation time as an HTTP date.
	lastModified string
	manifestLen  string
	// manifestHeader is the fast path's header block for the manifest.
	manifestHeader []byte
	hls            *hlsSet      // the HLS playlists; nil when they could not be made
	checked        atomic.Int64 // unix nanos of the last check that Dir is still current
}

// Catalog keeps the assets of a library loaded and notices when one is
// added or replaced from outside (ingest or `deepcast package`): an entry
// older than the check interval is re-resolved before use.
type Catalog struct {
	lib   media.Library
	every time.Duration
	log   *slog.Logger

	mu      sync.RWMutex
	entries map[string]*Entry
}

// NewCatalog serves the library at root, re-checking each asset at most
// every interval.
func NewCatalog(root string, every time.Duration) *Catalog {
	return &Catalog{lib: media.Library{Root: root}, every: every, log: slog.Default(), entries: map[string]*Entry{}}
}

// Root is the library folder.
func (c *Catalog) Root() string { return c.lib.Root }

// Get returns the current version of an asset; the error wraps
// media.ErrNoAsset when there is none.
func (c *Catalog) Get(name string) (*Entry, error) {
	if !media.ValidName(name) {
		return nil, fmt.Errorf("asset %q: %w", name, media.ErrNoAsset)
	}
	now := time.Now().UnixNano()
	c.mu.RLock()
	e := c.entries[name]
	c.mu.RUnlock()
	if e != nil && now-e.checked.Load() < int64(c.every) {
		return e, nil
	}
	return c.reload(name, e, now)
}

// Invalidate drops the cached entry of name, so the next Get re-reads it.
func (c *Catalog) Invalidate(name string) {
	c.mu.Lock()
	delete(c.entries, name)
	c.mu.Unlock()
}

func (c *Catalog) reload(name string, old *Entry, now int64) (*Entry, error) {
	dir, err := c.lib.Resolve(name)
	if err != nil {
		if errors.Is(err, media.ErrNoAsset) {
			c.Invalidate(name)
		}
		return nil, err
	}
	if old != nil && old.Dir == dir {
		old.checked.Store(now)
		return old, nil
	}
	a, err := media.LoadAsset(dir)
	if err != nil {
		return nil, err
	}
	if a.Name != name {
		// A folder copied under another name: serve it, under the name asked for.
		a.Name = name
	}
	m, err := os.ReadFile(filepath.Join(dir, media.ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("asset %s: %w", name, err)
	}
	if sum := sha256.Sum256(m); int64(len(m)) != a.Manifest.Size || hex.EncodeToString(sum[:]) != a.Manifest.SHA256 {
		return nil, fmt.Errorf("asset %s: %s: %w (%d bytes)", name, media.ManifestFile, errDamaged, len(m))
	}
	e := &Entry{Name: name, Dir: dir, Asset: a, Manifest: m, manifestTag: etag(a.Manifest.SHA256),
		lastModified: a.Created.UTC().Format(http.TimeFormat), manifestLen: strconv.Itoa(len(m))}
	e.manifestHeader = appendCommon(nil, hdrDASH[0], cacheManifest, e.manifestTag, e.lastModified)
	if e.hls, err = buildHLS(dir, a, e.lastModified, c.log); err != nil {
		c.log.Error("no HLS playlists", "asset", name, "err", err) // DASH still plays
	}
	e.checked.Store(now)
	c.mu.Lock()
	c.entries[name] = e
	c.mu.Unlock()
	return e, nil
}

// List returns every asset of the library that loads; broken ones are
// skipped (and reported in errs).
func (c *Catalog) List() (entries []*Entry, errs []error) {
	names, err := c.lib.Names()
	if err != nil {
		return nil, []error{err}
	}
	for _, n := range names {
		e, err := c.Get(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		entries = append(entries, e)
	}
	return entries, errs
}
