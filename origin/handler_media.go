package origin

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/deepcast/deepcast/edge/httpsem"
	"github.com/deepcast/deepcast/manifest"
	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/store"
)

// maxSegmentDigits bounds a segment number's text: no VOD asset has more
// than a billion segments, and longer digits are a probe, not a request.
const maxSegmentDigits = 9

// etag makes the strong ETag of a file from its SHA-256: the same bytes give
// the same tag on every replica and after every restart.
func etag(sha256hex string) string {
	if len(sha256hex) > 32 {
		sha256hex = sha256hex[:32]
	}
	return `"` + sha256hex + `"`
}

// lookup resolves the asset URL parameter, answering 400/404 itself.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request) (*Entry, bool) {
	name := chi.URLParam(r, "asset")
	if !media.ValidName(name) {
		httpError(w, http.StatusBadRequest, "invalid asset name")
		return nil, false
	}
	e, err := s.catalog.GetContext(r.Context(), name)
	if err != nil {
		switch {
		case errors.Is(err, media.ErrNoAsset):
			missing(w, r, "no such asset")
		case errors.Is(err, store.ErrUnavailable):
			s.storeDown(w, name, media.AssetFile, err)
		case errors.Is(err, errDamaged):
			s.noteDamaged(name, media.ManifestFile, "", err)
			httpError(w, http.StatusInternalServerError, "damaged object: the library file does not match asset.json")
		default:
			s.log.Error("asset unreadable", "asset", name, "err", err)
			httpError(w, http.StatusInternalServerError, "asset unreadable")
		}
		return nil, false
	}
	return e, true
}

// rendition resolves the asset and rendition URL parameters, answering
// 400/404 itself.
func (s *Server) rendition(w http.ResponseWriter, r *http.Request) (*Entry, *media.Rendition, bool) {
	e, ok := s.lookup(w, r)
	if !ok {
		return nil, nil, false
	}
	id := chi.URLParam(r, "rendition")
	if !media.ValidName(id) {
		httpError(w, http.StatusBadRequest, "invalid rendition name")
		return nil, nil, false
	}
	// A rendition of the previous ladder too, for sessions that began on it.
	if e = e.holding(func(a *media.Asset) bool { _, ok := a.Rendition(id); return ok }); e == nil {
		missing(w, r, "no such rendition")
		return nil, nil, false
	}
	rd, _ := e.Asset.Rendition(id)
	return e, rd, true
}

// holding is the version of the entry's asset that has what found looks
// for: this one, else the previous one (for sessions that began on it);
// nil when neither has it.
func (e *Entry) holding(found func(*media.Asset) bool) *Entry {
	if found(e.Asset) {
		return e
	}
	if p := e.prev.Load(); p != nil && found(p.Asset) {
		return p
	}
	return nil
}

func (s *Server) serveManifest(w http.ResponseWriter, r *http.Request) {
	e, ok := s.lookup(w, r)
	if !ok {
		return
	}
	serveDocument(w, r, e, hdrDASH, &e.mpd)
}

// setEntity sets the headers every answer about a library file carries.
func setEntity(h http.Header, contentType, cacheControl []string, tag string) {
	h["Content-Type"] = contentType
	h["Cache-Control"] = cacheControl
	h["Etag"] = []string{tag}
}

// setDigest sets Repr-Digest (RFC 9530) for a library file: the SHA-256
// of its whole bytes as asset.json records it, on 200 and 206 alike (it
// names the representation, not the part sent). Edges check what they
// fetch against it before they keep it, so a store object altered in
// place, which an origin streaming from the store cannot see, is never
// cached; players may check it too.
func setDigest(h http.Header, sha256hex string) {
	if d := httpsem.ReprDigest(sha256hex); d != "" {
		h["Repr-Digest"] = []string{d}
	}
}

// setWhole sets the rest of the headers of a whole-file 200, written
// without http.ServeContent.
func setWhole(h http.Header, lastModified, length string) {
	h["Accept-Ranges"] = hdrBytes
	h["Last-Modified"] = []string{lastModified}
	h["Content-Length"] = []string{length}
}

// serveBytes is serveDocument for an immutable file held in memory.
func serveBytes(w http.ResponseWriter, r *http.Request, e *Entry, contentType []string, info media.FileInfo, body []byte) {
	setEntity(w.Header(), contentType, hdrCacheImmutable, etag(info.SHA256))
	setDigest(w.Header(), info.SHA256)
	if plainGet(r) {
		setWhole(w.Header(), e.lastModified, strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
		return
	}
	http.ServeContent(writeOnly{w}, r, "", e.Asset.Created, bytes.NewReader(body))
}

// serveDocument answers for a manifest or playlist of the entry: its
// cache rules and validators, the whole body at once for a plain GET,
// http.ServeContent for ranges and conditions.
func serveDocument(w http.ResponseWriter, r *http.Request, e *Entry, contentType []string, doc *document) {
	if doc.gz != nil {
		w.Header()["Vary"] = hdrVaryEncoding
		doc = doc.forClient(r.Header.Values("Accept-Encoding"))
	}
	if doc.encoding != "" {
		w.Header()["Content-Encoding"] = []string{doc.encoding}
	}
	body := doc.body
	setEntity(w.Header(), contentType, hdrCacheManifest, doc.tag)
	if plainGet(r) {
		setWhole(w.Header(), e.lastModified, doc.length)
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(body)
		}
		return
	}
	// Small bodies go out through Write, not ReadFrom: the response is then
	// one buffered write (headers and body in one syscall) instead of a
	// flush of the headers followed by a copy.
	http.ServeContent(writeOnly{w}, r, "", e.Asset.Created, bytes.NewReader(body))
}

// plainGet reports a GET or HEAD with no Range and no conditions, which
// needs none of http.ServeContent's negotiation.
func plainGet(r *http.Request) bool {
	h := r.Header
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		h["Range"] == nil && h["If-None-Match"] == nil && h["If-Modified-Since"] == nil &&
		h["If-Match"] == nil && h["If-Unmodified-Since"] == nil && h["If-Range"] == nil
}

// writeOnly hides the ResponseWriter's io.ReaderFrom.
type writeOnly struct{ http.ResponseWriter }

// Shared, never modified header values: no allocation per response.
var (
	hdrDASH           = []string{"application/dash+xml"}
	hdrVaryEncoding   = []string{"Accept-Encoding"}
	hdrCacheManifest  = []string{cacheManifest}
	hdrCacheImmutable = []string{cacheImmutable}
	hdrVideoMP4       = []string{"video/mp4"}
	hdrAudioMP4       = []string{"audio/mp4"}
	hdrSegment        = []string{"video/iso.segment"}
	hdrWebVTT         = []string{"text/vtt; charset=utf-8"}
	hdrJPEG           = []string{"image/jpeg"}
	hdrBytes          = []string{"bytes"}
)

func (s *Server) serveInit(w http.ResponseWriter, r *http.Request) {
	e, rd, ok := s.rendition(w, r)
	if !ok {
		return
	}
	ct := hdrVideoMP4
	if rd.Type == "audio" {
		ct = hdrAudioMP4
	}
	if e.remote() {
		serveBytes(w, r, e, ct, rd.Init, e.inits[rd.ID])
		return
	}
	s.serveFile(w, r, e, filepath.Join(rd.ID, "init.mp4"), ct, rd.Init)
}

// serveText serves a subtitle track's WebVTT file.
func (s *Server) serveText(w http.ResponseWriter, r *http.Request) {
	e, ok := s.lookup(w, r)
	if !ok {
		return
	}
	id := chi.URLParam(r, "rendition")
	if !media.ValidName(id) {
		httpError(w, http.StatusBadRequest, "invalid rendition name")
		return
	}
	if e = e.holding(func(a *media.Asset) bool { _, ok := a.Text(id); return ok }); e == nil {
		missing(w, r, "no such subtitle track")
		return
	}
	t, _ := e.Asset.Text(id)
	s.serveFile(w, r, e, filepath.Join(t.ID, manifest.TextFile), hdrWebVTT, t.File)
}

// serveTile serves a tile of the asset's thumbnails, thumbs/N.jpg.
func (s *Server) serveTile(w http.ResponseWriter, r *http.Request) {
	e, ok := s.lookup(w, r)
	if !ok {
		return
	}
	if chi.URLParam(r, "tile") == manifest.HLSMedia {
		// The thumbnails' HLS image playlist: this static route catches
		// it before the playlist routes' {rendition} can.
		s.serveEntryPlaylist(w, r, e, manifest.ThumbnailsID+"/"+manifest.HLSMedia)
		return
	}
	num, found := strings.CutSuffix(chi.URLParam(r, "tile"), ".jpg")
	n, valid := parseSegmentNumber(num)
	if !found || !valid {
		missing(w, r, "no such thumbnail tile")
		return
	}
	if e = e.holding(func(a *media.Asset) bool { return a.Thumbnails != nil && n <= len(a.Thumbnails.Tiles) }); e == nil {
		missing(w, r, "no such thumbnail tile")
		return
	}
	s.serveFile(w, r, e, path.Join(manifest.ThumbnailsID, num+".jpg"), hdrJPEG, e.Asset.Thumbnails.Tiles[n-1])
}

func (s *Server) serveSegment(w http.ResponseWriter, r *http.Request) {
	e, rd, ok := s.rendition(w, r)
	if !ok {
		return
	}
	seg := chi.URLParam(r, "segment")
	num, found := strings.CutSuffix(seg, ".m4s")
	if !found {
		httpError(w, http.StatusNotFound, "not found")
		return
	}
	n, ok := parseSegmentNumber(num)
	if !ok {
		httpError(w, http.StatusBadRequest, "segment number must be a positive integer")
		return
	}
	// Past the new version's end, the previous one may have it.
	if e = e.holding(func(a *media.Asset) bool {
		prd, ok := a.Rendition(rd.ID)
		if ok {
			_, ok = prd.Segment(n)
		}
		return ok
	}); e == nil {
		missing(w, r, "no such segment")
		return
	}
	rd, _ = e.Asset.Rendition(rd.ID)
	info, _ := rd.Segment(n)
	// Edges bound their prefetching by this: no request past the last segment.
	w.Header()["X-Deepcast-Last-Segment"] = []string{strconv.Itoa(len(rd.Segments))}
	s.serveFile(w, r, e, filepath.Join(rd.ID, strconv.Itoa(n)+".m4s"), hdrSegment, media.FileInfo{Size: info.Size, SHA256: info.SHA256})
}

// parseSegmentNumber accepts a positive decimal integer without sign or
// leading zeros, so each segment has exactly one URL (one cache key).
func parseSegmentNumber(s string) (int, bool) {
	if s == "" || len(s) > maxSegmentDigits || s[0] == '0' {
		return 0, false
	}
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// serveFile serves rel (a path made only of validated names) inside the
// entry's version folder through http.ServeContent: ranges, conditional
// requests and HEAD, with sendfile for the body.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, e *Entry, rel string, contentType []string, info media.FileInfo) {
	if e.remote() {
		s.serveObject(w, r, e, filepath.ToSlash(rel), contentType, info)
		return
	}
	sum := info.SHA256
	f, err := s.openVerified(e, rel, info)
	if err != nil {
		if errors.Is(err, errDamaged) {
			// The same answer on both paths (the fast path leaves damaged
			// files to this one): 500, never cached, nothing of the file.
			httpError(w, http.StatusInternalServerError, "damaged object: the library file does not match asset.json")
			return
		}
		if errors.Is(err, os.ErrNotExist) {
			// The version was pruned under us: the client must reload the manifest.
			s.catalog.Invalidate(e.Name)
			httpError(w, http.StatusNotFound, "asset version gone, reload the manifest")
			return
		}
		s.log.Error("open segment", "asset", e.Name, "file", rel, "err", err)
		httpError(w, http.StatusInternalServerError, "segment unreadable")
		return
	}
	defer f.Close()
	setEntity(w.Header(), contentType, hdrCacheImmutable, etag(sum))
	setDigest(w.Header(), sum)
	if plainGet(r) {
		// The common case (a whole object, no conditions): headers first,
		// then sendfile for the body, with no sniffing copy in between.
		st, err := f.Stat()
		if err == nil {
			setWhole(w.Header(), e.lastModified, strconv.FormatInt(st.Size(), 10))
			w.WriteHeader(http.StatusOK)
			if r.Method != http.MethodHead {
				_, _ = io.Copy(w, f)
			}
			return
		}
	}
	http.ServeContent(w, r, "", e.Asset.Created, f)
}
