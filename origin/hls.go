package origin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/deepcast/deepcast/manifest"
	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/store"
)

// The HLS playlists are made from asset.json when an asset is loaded, not
// written by the packager: every asset gets them, those packaged before
// HLS existed included, with no re-packaging and no second copy of the
// media; they are a few KiB, built once per version.

// hlsSet is an asset's playlists.
type hlsSet struct {
	master  document
	media   map[string]document // by rendition
	iframes map[string]document // by video rendition
}

func newPlaylist(body []byte, lastModified string) document {
	sum := sha256.Sum256(body)
	return newDocument(body, manifest.HLSContentType, etag(hex.EncodeToString(sum[:])), lastModified)
}

// buildHLS makes the playlists of an asset loaded from dir. Segments
// packaged before their keyframe ranges were recorded are read for them
// (one small read each); if that fails the asset has no I-frame
// playlists, and the log says why.
func buildHLS(ctx context.Context, lib store.Store, v store.Version, a *media.Asset, lastModified string, log *slog.Logger) (*hlsSet, error) {
	p := a.Presentation()
	for i, t := range p.Video {
		if len(t.Keyframes) > 0 {
			continue
		}
		keys, err := readKeyframes(ctx, lib, v, a, t.ID)
		if err != nil {
			log.Warn("no I-frame playlist", "asset", a.Name, "rendition", t.ID, "err", err)
			continue
		}
		p.Video[i].Keyframes = keys
	}
	h, err := manifest.BuildHLS(p)
	if err != nil {
		return nil, fmt.Errorf("asset %s: %w", a.Name, err)
	}
	set := &hlsSet{master: newPlaylist(h.Multivariant, lastModified), media: map[string]document{}, iframes: map[string]document{}}
	for id, b := range h.Media {
		set.media[id] = newPlaylist(b, lastModified)
	}
	for id, b := range h.IFrames {
		set.iframes[id] = newPlaylist(b, lastModified)
	}
	return set, nil
}

// readKeyframes finds the keyframe range of every segment of a video
// rendition from the files.
func readKeyframes(ctx context.Context, lib store.Store, v store.Version, a *media.Asset, id string) ([]int64, error) {
	r, ok := a.Rendition(id)
	if !ok {
		return nil, fmt.Errorf("no rendition %s", id)
	}
	keys := make([]int64, len(r.Segments))
	for k, s := range r.Segments {
		var err error
		f := storeFile{ctx: ctx, lib: lib, v: v, rel: id + "/" + strconv.Itoa(s.Number) + ".m4s"}
		if keys[k], err = media.KeyframeLength(f, s.Size); err != nil {
			return nil, fmt.Errorf("segment %d: %w", s.Number, err)
		}
	}
	return keys, nil
}

// storeFile reads a library file at offsets, one store read each.
type storeFile struct {
	ctx context.Context
	lib store.Store
	v   store.Version
	rel string
}

// ReadAt implements io.ReaderAt.
func (f storeFile) ReadAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	body, _, err := f.lib.Open(f.ctx, f.v, f.rel, off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	defer body.Close()
	return io.ReadFull(body, p)
}

// Routes of the playlists, as chi reports them.
const (
	routeMaster  = "/vod/{asset}/master.m3u8"
	routeMedia   = "/vod/{asset}/{rendition}/media.m3u8"
	routeIFrames = "/vod/{asset}/{rendition}/iframes.m3u8"
)

var hdrHLS = []string{manifest.HLSContentType}

// findPlaylist returns the playlist a path names inside an entry: the
// multivariant one ("master.m3u8") or a rendition's ("ID/media.m3u8",
// "ID/iframes.m3u8").
func (e *Entry) findPlaylist(rel string) (document, string, bool) {
	if e.hls == nil {
		return document{}, "", false
	}
	if rel == manifest.HLSMultivariant {
		return e.hls.master, routeMaster, true
	}
	dir, file := filepath.Split(rel)
	if dir == "" {
		return document{}, "", false
	}
	id := dir[:len(dir)-1]
	var p document
	var ok bool
	switch file {
	case manifest.HLSMedia:
		p, ok = e.hls.media[id]
		return p, routeMedia, ok
	case manifest.HLSIFrames:
		p, ok = e.hls.iframes[id]
		return p, routeIFrames, ok
	}
	return document{}, "", false
}

// servePlaylist answers the playlist routes, with the same cache rules
// as the MPD.
func (s *Server) servePlaylist(w http.ResponseWriter, r *http.Request) {
	e, ok := s.lookup(w, r)
	if !ok {
		return
	}
	rel := manifest.HLSMultivariant
	if id := chi.URLParam(r, "rendition"); id != "" {
		if !media.ValidName(id) {
			httpError(w, http.StatusBadRequest, "invalid rendition name")
			return
		}
		rel = id + "/" + chi.URLParam(r, "playlist")
	}
	s.serveEntryPlaylist(w, r, e, rel)
}

// serveEntryPlaylist answers with the entry's playlist at rel (relative
// to the asset), or 404.
func (s *Server) serveEntryPlaylist(w http.ResponseWriter, r *http.Request, e *Entry, rel string) {
	p, _, ok := e.findPlaylist(rel)
	if !ok {
		missing(w, r, "no such playlist")
		return
	}
	serveDocument(w, r, e, hdrHLS, &p)
}
