package origin

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/store"
)

// Entry is one asset as served: the version it was loaded from, its
// metadata and its manifest bytes. An Entry never changes; a replaced asset
// gets a new Entry, so one response never mixes two versions.
type Entry struct {
	Name    string
	Dir     string // the version folder on disk; empty for an object store
	Version store.Version
	Asset   *media.Asset
	// Manifest is the MPD.
	Manifest []byte
	// inits are the init segments by rendition, for an object store:
	// every session asks for them first, so they are never a store trip.
	inits map[string][]byte
	// mpd is the MPD as served (Manifest, with its ETag, header block
	// and gzip representation).
	mpd document
	// lastModified is the asset's creation time as an HTTP date.
	lastModified string
	hls          *hlsSet // the HLS playlists; nil when they could not be made
	// prev is the version this one replaced, while it is the previous
	// one (the libraries keep its files): sessions that started on it
	// still find what the new version lacks (a rendition of the old
	// ladder, a segment past the new end).
	prev       atomic.Pointer[Entry]
	checked    atomic.Int64 // unix nanos of the last check that the version is still current
	refreshing atomic.Bool  // a background check is under way (object stores)
	// cost is about how many bytes of memory the entry holds; used is
	// when a request last asked for it (unix nanos; 0: only a listing
	// has), for the catalogue's eviction.
	cost int64
	used atomic.Int64
}

// memoryCost estimates the bytes e holds: its documents, init segments and
// playlists, and the parsed asset.json, which is about as large in memory
// as its text (per segment a SHA-256 in hex, a few numbers and the
// headers of both).
func (e *Entry) memoryCost(assetJSON int) int64 {
	n := int64(2*assetJSON + e.mpd.size())
	for _, b := range e.inits {
		n += int64(len(b))
	}
	if e.hls != nil {
		n += int64(e.hls.master.size())
		for _, set := range []map[string]document{e.hls.media, e.hls.iframes} {
			for _, p := range set {
				n += int64(p.size())
			}
		}
	}
	return n
}

// remote reports an entry whose files are in an object store.
func (e *Entry) remote() bool { return e.Dir == "" }

// Catalog keeps the assets of a library loaded and notices when one is
// added or replaced from outside (ingest or `deepcast package`): an entry
// older than the check interval is re-resolved before use. On an object
// store the check runs in the background while the entry keeps being
// served, so no request waits for the store to answer about a pointer,
// and an entry stays served when the store is down.
type Catalog struct {
	lib     store.Store
	remote  bool
	every   time.Duration
	timeout time.Duration
	log     *slog.Logger

	// unknown bounds the store lookups of names not loaded (object
	// stores only).
	unknown *unknownNames

	// budget bounds the bytes of the loaded entries (their cost): past
	// it, the least recently requested ones are dropped and loaded again
	// when next asked for. Each long asset holds megabytes (a hash per
	// segment, the HLS playlists), and a library in an object store may
	// hold more assets than any one origin's memory.
	budget    int64
	evictions atomic.Int64

	mu      sync.RWMutex
	bytes   int64 // the cost of the entries in the map
	entries map[string]*Entry
	loading map[string]*load
	// rejected is, by name, the version that last failed to load while
	// an older one was served instead (see reload and loadCurrent).
	rejected map[string]store.Version
	// evicted is, by name, the version an evicted entry served (up to
	// maxEvictedKept names): what to serve again if the version its
	// pointer names by then cannot be loaded, as for a loaded asset.
	evicted map[string]store.Version
	// unservable is, by name, why an asset not loaded could not be
	// served at all (its live version is damaged and none before it can
	// be served), and when that was found: the answer for the check
	// interval, so that requests for it do not each read the store.
	unservable map[string]failure
}

// failure is a load that failed, and when.
type failure struct {
	at  int64 // UnixNano
	err error
}

// maxUnservable bounds Catalog.unservable: past it, it is forgotten all
// at once (a library with that many damaged assets has worse problems).
const maxUnservable = 4096

// maxEvictedKept bounds Catalog.evicted (a version is some 100 bytes).
const maxEvictedKept = 1 << 16

// load is one first load of an asset that concurrent requests share.
type load struct {
	done chan struct{}
	e    *Entry
	err  error
}

// maxDocument bounds asset.json and manifest.mpd read from a library.
const maxDocument = 64 << 20

// NewStoreCatalog serves the library in lib, re-checking each asset at
// most every interval; timeout bounds each trip to an object store (10 s
// when zero).
func NewStoreCatalog(lib store.Store, every, timeout time.Duration) *Catalog {
	_, folder := lib.(store.Folder)
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &Catalog{lib: lib, remote: !folder, every: every, timeout: timeout, log: slog.Default(), budget: DefaultCatalogBytes,
		unknown: newUnknownNames(every), entries: map[string]*Entry{}, loading: map[string]*load{}, rejected: map[string]store.Version{},
		evicted: map[string]store.Version{}, unservable: map[string]failure{}}
}

// DefaultCatalogBytes is the default bound on a catalogue's loaded entries:
// about 150 two-hour assets of four renditions (some 3 MB each: a hash per
// segment, the HLS playlists), or thousands of short ones.
const DefaultCatalogBytes = 512 << 20

// SetMemory bounds the bytes of the loaded entries (DefaultCatalogBytes
// when n <= 0).
func (c *Catalog) SetMemory(n int64) {
	if n <= 0 {
		n = DefaultCatalogBytes
	}
	c.mu.Lock()
	c.budget = n
	c.evictLocked("")
	c.mu.Unlock()
}

// Memory reports the loaded entries, their cost in bytes, and how many
// have been dropped to stay within the bound.
func (c *Catalog) Memory() (entries int, bytes, evictions int64) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries), c.bytes, c.evictions.Load()
}

// evictLocked drops the least recently requested entries, never keep's,
// until the rest fit nine tenths of the budget, so that a catalogue at
// its bound does not sort for every load.
func (c *Catalog) evictLocked(keep string) {
	if c.bytes <= c.budget {
		return
	}
	type byUse struct {
		name string
		used int64
	}
	all := make([]byUse, 0, len(c.entries))
	for name, e := range c.entries {
		if name != keep {
			all = append(all, byUse{name, e.used.Load()})
		}
	}
	slices.SortFunc(all, func(a, b byUse) int { return cmp.Compare(a.used, b.used) })
	for _, it := range all {
		if c.bytes <= c.budget*9/10 {
			break
		}
		e := c.entries[it.name]
		c.bytes -= e.cost
		delete(c.entries, it.name)
		c.evictions.Add(1)
		if len(c.evicted) < maxEvictedKept {
			c.evicted[it.name] = e.Version
		}
	}
}

// Root names the library: its folder or its URL.
func (c *Catalog) Root() string { return c.lib.String() }

// Store is the library's store.
func (c *Catalog) Store() store.Store { return c.lib }

// Get returns the current version of an asset; the error wraps
// media.ErrNoAsset when there is none.
func (c *Catalog) Get(name string) (*Entry, error) { return c.GetContext(context.Background(), name) }

// GetContext is Get for a request: ctx bounds a load from the store.
func (c *Catalog) GetContext(ctx context.Context, name string) (*Entry, error) {
	e, err := c.get(ctx, name)
	if e != nil {
		e.used.Store(time.Now().UnixNano())
	}
	return e, err
}

// get is GetContext without marking the entry as requested: what a
// listing uses, so that listing the library does not count as viewers'
// demand for every asset in it.
func (c *Catalog) get(ctx context.Context, name string) (*Entry, error) {
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
	if e == nil {
		if err := c.knownUnservable(name, now); err != nil {
			return nil, err
		}
	}
	if e == nil && c.remote {
		return c.loadUnknown(ctx, name, now)
	}
	if e == nil || !c.remote {
		return c.loadShared(ctx, name, e, now)
	}
	if e.refreshing.CompareAndSwap(false, true) {
		go func() {
			defer e.refreshing.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
			defer cancel()
			_, _ = c.reload(ctx, name, e, now)
		}()
	}
	return e, nil
}

// loadUnknown loads a name not loaded yet from an object store, when
// c.unknown lets it ask the store.
func (c *Catalog) loadUnknown(ctx context.Context, name string, now int64) (*Entry, error) {
	if err := c.unknown.admit(ctx, name, c.listNames); err != nil {
		return nil, err
	}
	e, err := c.loadShared(ctx, name, nil, now)
	if errors.Is(err, media.ErrNoAsset) {
		c.unknown.noteAbsent(name)
	}
	return e, err
}

// listNames reads the library's names, within the store timeout.
func (c *Catalog) listNames(ctx context.Context) ([]string, error) {
	lctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.lib.Names(lctx)
}

// SparedLookups is how many requests for names not in the library were
// answered without asking its object store (see unknownNames).
func (c *Catalog) SparedLookups() int64 { return c.unknown.spared.Load() }

// loadShared runs one reload of name for all the requests that need it
// at once.
func (c *Catalog) loadShared(ctx context.Context, name string, old *Entry, now int64) (*Entry, error) {
	if !c.remote {
		return c.reload(ctx, name, old, now) // a few syscalls: nothing to share
	}
	c.mu.Lock()
	l := c.loading[name]
	if l == nil {
		l = &load{done: make(chan struct{})}
		c.loading[name] = l
		c.mu.Unlock()
		go func() {
			defer close(l.done)
			lctx, cancel := context.WithTimeout(context.Background(), c.timeout)
			defer cancel()
			l.e, l.err = c.reload(lctx, name, old, now)
			c.mu.Lock()
			delete(c.loading, name)
			c.mu.Unlock()
		}()
	} else {
		c.mu.Unlock()
	}
	select {
	case <-l.done:
		return l.e, l.err
	case <-ctx.Done():
		return nil, fmt.Errorf("asset %s: %w: %w", name, store.ErrUnavailable, ctx.Err())
	}
}

// Refresh re-resolves name now (after an ingest on this origin), keeping
// the entry it replaces as the previous version.
func (c *Catalog) Refresh(ctx context.Context, name string) (*Entry, error) {
	c.mu.RLock()
	old := c.entries[name]
	c.mu.RUnlock()
	return c.reload(ctx, name, old, time.Now().UnixNano())
}

// Invalidate drops the cached entry of name, so the next Get re-reads it.
func (c *Catalog) Invalidate(name string) {
	c.mu.Lock()
	if e := c.entries[name]; e != nil {
		c.bytes -= e.cost
		delete(c.entries, name)
	}
	c.mu.Unlock()
}

func (c *Catalog) reload(ctx context.Context, name string, old *Entry, now int64) (*Entry, error) {
	var prev store.Version
	if old != nil {
		prev = old.Version
	}
	v, err := c.lib.Current(ctx, name, prev)
	if err != nil {
		if errors.Is(err, media.ErrNoAsset) {
			c.Invalidate(name)
			c.forget(name)
			return nil, err
		}
		if old != nil && c.remote {
			// The store does not answer: keep serving what is loaded.
			c.log.Warn("library store unavailable, serving the loaded version", "asset", name, "err", err)
			old.checked.Store(now)
			return old, nil
		}
		return nil, err
	}
	if old == nil {
		e, latest, err := c.loadCurrent(ctx, name, v)
		if err != nil {
			if !errors.Is(err, store.ErrUnavailable) && !errors.Is(err, media.ErrNoAsset) {
				c.noteUnservable(name, now, err)
			}
			return nil, err
		}
		return c.install(name, e, nil, now, latest), nil
	}
	if old.Version.ID == v.ID && old.Dir == v.Dir {
		// The pointer names what is served (again, if it had moved to a
		// version that could not be served).
		c.forgetRejected(name)
		old.checked.Store(now)
		return old, nil
	}
	if c.isRejected(name, v) {
		old.checked.Store(now)
		return old, nil
	}
	e, err := c.loadEntry(ctx, name, v)
	if err != nil {
		if c.remote && errors.Is(err, store.ErrUnavailable) {
			old.checked.Store(now)
			return old, nil
		}
		if !errors.Is(err, store.ErrUnavailable) {
			// The new version cannot be served (damaged, unparsable, a
			// file missing): the loaded one is whole, and the library
			// keeps the version it replaced. Its viewers keep playing
			// and the operator hears of it, once per version.
			c.reject(name, v, old.Version, err)
			old.checked.Store(now)
			return old, nil
		}
		return nil, err
	}
	c.log.Info("asset version changed", "asset", name, "version", v.ID)
	return c.install(name, e, old, now, true), nil
}

// loadCurrent loads name, not loaded, whose pointer names v. If v
// cannot be served (or already failed to), name is served as a loaded
// asset would be, with the version before v, and latest is false: the
// version it served when it was evicted, or, if this catalogue never
// served it (a fresh origin, or one more in a fleet whose others kept
// serving the version v replaced), the version the library kept from
// before v. Only with neither is v's failure the answer.
func (c *Catalog) loadCurrent(ctx context.Context, name string, v store.Version) (e *Entry, latest bool, err error) {
	c.mu.RLock()
	served, known := c.evicted[name]
	c.mu.RUnlock()
	if known && served == v {
		e, err = c.loadEntry(ctx, name, v)
		return e, true, err
	}
	var failed error // why v cannot be served; nil if that was found before
	if !c.isRejected(name, v) {
		e, err = c.loadEntry(ctx, name, v)
		if err == nil || errors.Is(err, store.ErrUnavailable) {
			return e, true, err
		}
		failed = err
	}
	if !known {
		// Asked only now that v failed: a folder library lists its
		// versions for it.
		var perr error
		if served, perr = c.lib.Previous(ctx, name, v); perr != nil {
			if failed == nil { // rejected before: find out why again
				if e, failed = c.loadEntry(ctx, name, v); failed == nil {
					return e, true, nil
				}
			}
			return nil, false, failed
		}
	}
	if failed != nil {
		c.reject(name, v, served, failed)
	}
	if e, err = c.loadEntry(ctx, name, served); err != nil {
		return nil, false, fmt.Errorf("asset %s: version %s cannot be served, nor %s before it: %w", name, v.ID, served.ID, err)
	}
	return e, false, nil
}

// install makes e the loaded entry of name, replacing old (nil: none),
// and evicts past the budget. latest says e is the version the pointer
// names, so no version of name is rejected any more.
func (c *Catalog) install(name string, e, old *Entry, now int64, latest bool) *Entry {
	c.loaded(name, e, now, latest)
	if old != nil {
		old.prev.Store(nil) // one version back, no chain
		e.prev.Store(old)
		e.used.Store(old.used.Load())
	}
	c.mu.Lock()
	c.putLocked(name, e)
	c.evictLocked(name)
	c.mu.Unlock()
	return e
}

// loaded records what loading e, the version of name checked at now,
// tells: name exists and can be served, and, when e is the version its
// pointer names (latest), no version of it is rejected any more.
func (c *Catalog) loaded(name string, e *Entry, now int64, latest bool) {
	if latest {
		c.forgetRejected(name)
	}
	c.forgetUnservable(name)
	e.checked.Store(now)
	c.unknown.forget(name)
}

// putLocked makes e the loaded entry of name, in place of any other.
func (c *Catalog) putLocked(name string, e *Entry) {
	if was := c.entries[name]; was != nil {
		c.bytes -= was.cost
	}
	c.entries[name] = e
	c.bytes += e.cost
	delete(c.evicted, name)
}

// isRejected reports whether v is the version of name that failed to
// load last.
func (c *Catalog) isRejected(name string, v store.Version) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	r, ok := c.rejected[name]
	return ok && r == v
}

// reject remembers that v of name cannot be served, and says so and
// what is served instead.
func (c *Catalog) reject(name string, v, served store.Version, err error) {
	c.mu.Lock()
	c.rejected[name] = v
	c.mu.Unlock()
	c.log.Error("new version of the asset cannot be served; serving the version before it until the asset is published again",
		"asset", name, "version", v.ID, "serving", served.ID, "err", err)
}

// HeldBack is how many assets are served as the version before their
// live one, which cannot be served: an alert for the operator, who must
// publish them again.
func (c *Catalog) HeldBack() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.rejected)
}

// forgetRejected drops the rejected version of name: a good one loaded.
func (c *Catalog) forgetRejected(name string) { dropName(&c.mu, c.rejected, name) }

// dropName deletes name from m, which mu guards. Most calls find nothing
// (a catalogue calls it for every load), and take only the read lock.
func dropName[V any](mu *sync.RWMutex, m map[string]V, name string) {
	mu.RLock()
	_, ok := m[name]
	mu.RUnlock()
	if !ok {
		return
	}
	mu.Lock()
	delete(m, name)
	mu.Unlock()
}

// forget drops what is remembered of name: it left the library.
func (c *Catalog) forget(name string) {
	c.mu.Lock()
	delete(c.rejected, name)
	delete(c.evicted, name)
	delete(c.unservable, name)
	c.mu.Unlock()
}

// knownUnservable is why name could not be served, if that was found
// less than a check interval before now: a damaged asset is looked at
// again as often as a served one is checked for a new version, not once
// per request (a store read or three each, from a client that asks in a
// loop, or from every player of a popular asset).
func (c *Catalog) knownUnservable(name string, now int64) error {
	c.mu.RLock()
	f, ok := c.unservable[name]
	c.mu.RUnlock()
	if ok && now-f.at < int64(c.every) {
		return f.err
	}
	return nil
}

// noteUnservable remembers that name, not loaded, could not be served
// when checked at now, and why.
func (c *Catalog) noteUnservable(name string, now int64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.unservable) >= maxUnservable {
		clear(c.unservable)
	}
	c.unservable[name] = failure{at: now, err: err}
}

// forgetUnservable drops why name could not be served: it loaded.
func (c *Catalog) forgetUnservable(name string) { dropName(&c.mu, c.unservable, name) }

// loadEntry reads a version's metadata and manifest (and, from an object
// store, its init segments) and makes its Entry.
func (c *Catalog) loadEntry(ctx context.Context, name string, v store.Version) (*Entry, error) {
	data, err := c.lib.ReadFile(ctx, v, media.AssetFile, maxDocument)
	if err != nil {
		return nil, fmt.Errorf("asset %s: %w", name, err)
	}
	a, err := media.ParseAsset(data)
	if err != nil {
		return nil, fmt.Errorf("asset %s: %w", name, err)
	}
	if a.Name != name {
		// A folder copied under another name: serve it, under the name asked for.
		a.Name = name
	}
	m, err := c.lib.ReadFile(ctx, v, media.ManifestFile, maxDocument)
	if err != nil {
		return nil, fmt.Errorf("asset %s: %w", name, err)
	}
	if !matches(m, a.Manifest) {
		return nil, fmt.Errorf("asset %s: %s: %w (%d bytes)", name, media.ManifestFile, errDamaged, len(m))
	}
	e := &Entry{Name: name, Dir: v.Dir, Version: v, Asset: a, Manifest: m, lastModified: a.Created.UTC().Format(http.TimeFormat)}
	if e.remote() {
		e.inits = make(map[string][]byte, len(a.Renditions))
		for _, r := range a.Renditions {
			rel := r.ID + "/init.mp4"
			b, err := c.lib.ReadFile(ctx, v, rel, max(r.Init.Size, 1))
			if err != nil {
				return nil, fmt.Errorf("asset %s: %w", name, err)
			}
			if !matches(b, r.Init) {
				return nil, fmt.Errorf("asset %s: %s: %w (%d bytes)", name, rel, errDamaged, len(b))
			}
			e.inits[r.ID] = b
		}
	}
	e.mpd = newDocument(m, hdrDASH[0], etag(a.Manifest.SHA256), e.lastModified)
	switch {
	case a.Protection != nil:
		// Encrypted assets are DASH only: their HLS playlists would need
		// key tags (EXT-X-KEY) that no ClearKey HLS player agrees on, and a
		// playlist without them would only fail in the decoder.
	default:
		if e.hls, err = buildHLS(ctx, c.lib, v, a, e.lastModified, c.log); err != nil {
			c.log.Error("no HLS playlists", "asset", name, "err", err) // DASH still plays
		}
	}
	e.cost = e.memoryCost(len(data))
	return e, nil
}

// matches reports whether data is the file info describes.
func matches(data []byte, info media.FileInfo) bool {
	sum := sha256.Sum256(data)
	return int64(len(data)) == info.Size && hex.EncodeToString(sum[:]) == info.SHA256
}

// Walk calls fn with the assets of the library that load, in name order,
// one at a time, so that a caller that keeps a little of each (a summary)
// never holds the whole library in memory; broken ones are skipped and
// reported in errs. It starts after the name after ("" for the first)
// and stops once limit assets were given to fn (0: no limit); next is
// the last name it looked at when names are left after it, "" at the end.
// Listing does not count as a request for the assets (see get).
func (c *Catalog) Walk(ctx context.Context, after string, limit int, fn func(*Entry)) (next string, errs []error) {
	names, err := c.names(ctx)
	if err != nil {
		return "", []error{err}
	}
	start, found := slices.BinarySearch(names, after) // a store lists its names sorted
	if found {
		start++
	}
	given := 0
	for i := start; i < len(names); i++ {
		if limit > 0 && given == limit {
			return names[i-1], errs
		}
		n := names[i]
		c.mu.RLock()
		e := c.entries[n]
		c.mu.RUnlock()
		if e != nil {
			e, err = c.get(ctx, n)
		} else {
			e, err = c.loadListed(ctx, n)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fn(e)
		given++
	}
	return "", errs
}

// loadListed loads an asset a listing named and keeps it only if it fits
// the budget as things are: a listing of a library larger than the
// catalogue's memory must not push out what viewers are requesting.
func (c *Catalog) loadListed(ctx context.Context, name string) (*Entry, error) {
	now := time.Now().UnixNano()
	ctx, cancel := context.WithTimeout(ctx, c.timeout) // as every other trip to the store
	defer cancel()
	v, err := c.lib.Current(ctx, name, store.Version{})
	if err != nil {
		return nil, err
	}
	e, latest, err := c.loadCurrent(ctx, name, v)
	if err != nil {
		return nil, err
	}
	c.loaded(name, e, now, latest)
	c.mu.Lock()
	if c.entries[name] == nil && c.bytes+e.cost <= c.budget {
		c.putLocked(name, e)
	}
	c.mu.Unlock()
	return e, nil
}

// Count is how many names the library lists, loaded or not, broken or
// not: what a dashboard polling it needs, without loading (or, from an
// object store, checking) every asset on each poll.
func (c *Catalog) Count(ctx context.Context) (int, error) {
	names, err := c.names(ctx)
	return len(names), err
}

// names reads the library's names. The listing of an object store is a
// paid request, and pages of them for a big library: one read per check
// interval serves every catalogue request.
func (c *Catalog) names(ctx context.Context) ([]string, error) {
	if c.remote {
		return c.unknown.names(ctx, time.Now(), c.listNames)
	}
	return c.listNames(ctx)
}
