package origin

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/deepcast/deepcast/edge/httpsem"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

// Cache-Control values of the ARCHITECTURE table.
const (
	cacheManifest  = "public, max-age=60"
	cacheImmutable = "public, max-age=31536000, immutable"
	cacheNoStore   = "no-store"
	cacheMissing   = "public, max-age=2"
)

func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.observe, cors, httpsem.Ranges, httpsem.CloseAfterTransferCoding, middleware.GetHead)
	r.Get("/vod/{asset}/manifest.mpd", s.serveManifest)
	r.Head("/vod/{asset}/manifest.mpd", s.serveManifest)
	r.Get("/vod/{asset}/master.m3u8", s.servePlaylist)
	r.Head("/vod/{asset}/master.m3u8", s.servePlaylist)
	r.Get("/vod/{asset}/{rendition}/{playlist:(media|iframes)\\.m3u8}", s.servePlaylist)
	r.Head("/vod/{asset}/{rendition}/{playlist:(media|iframes)\\.m3u8}", s.servePlaylist)
	r.Get("/vod/{asset}/thumbs/{tile}", s.serveTile)
	r.Head("/vod/{asset}/thumbs/{tile}", s.serveTile)
	r.Get("/vod/{asset}/{rendition}/text.vtt", s.serveText)
	r.Head("/vod/{asset}/{rendition}/text.vtt", s.serveText)
	r.Get("/vod/{asset}/{rendition}/init.mp4", s.serveInit)
	r.Head("/vod/{asset}/{rendition}/init.mp4", s.serveInit)
	r.Get("/vod/{asset}/{rendition}/{segment}", s.serveSegment)
	r.Head("/vod/{asset}/{rendition}/{segment}", s.serveSegment)
	r.Post("/vod/{asset}/clearkey", s.serveLicence)
	r.Get("/api/assets", s.listAssets)
	r.Post("/api/assets", s.requireAdmin(s.ingest))
	r.Get("/api/assets/{asset}", s.getAsset)
	r.Get("/api/jobs/{id}", s.getJob)
	r.Get("/api/stats", s.opsGuard(s.stats))
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.Get("/metrics", s.opsGuard(s.metricsHandler().ServeHTTP))
	if s.cfg.Web != nil {
		// The pages are read-only (GetHead gives them HEAD): a POST to a
		// segment is then a 405 with Allow, not the pages' 404.
		r.Get("/*", s.cfg.Web.ServeHTTP)
	} else {
		r.Get("/", s.index)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { httpError(w, http.StatusNotFound, "not found") })
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", httpsem.Allow(r, req))
		httpError(w, http.StatusMethodNotAllowed, "method not allowed")
	})
	return r
}

// cors lets dash.js on another origin play, read the headers it needs, and
// send the conditional, range and CMCD headers it uses.
var cors = httpsem.CORS("GET, HEAD, POST, OPTIONS", hdrExposed[0])

var (
	hdrAnyOrigin = []string{"*"}
	hdrExposed   = []string{"Content-Length, Content-Range, ETag, Last-Modified, Age, Cache-Status, Via, X-Deepcast-Last-Segment, Repr-Digest"}
)

// httpError writes a short plain-text error that is never cached.
func httpError(w http.ResponseWriter, code int, msg string) {
	writeError(w, code, msg, cacheNoStore)
}

// missing answers 404 for an asset, rendition, segment or playlist the
// library does not hold. Caches may keep the answer to a GET or HEAD of a
// media path for two seconds: a flood of requests for one missing object
// then costs the origin one request per edge every two seconds, rather
// than most of the flood; an asset published meanwhile is seen a moment
// later. Everything else (the API, licences) stays no-store.
func missing(w http.ResponseWriter, r *http.Request, msg string) {
	cc := cacheNoStore
	if (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasPrefix(r.URL.Path, "/vod/") {
		cc = cacheMissing
	}
	writeError(w, http.StatusNotFound, msg, cc)
}

// writeError answers code with msg as plain text and cc as Cache-Control.
func writeError(w http.ResponseWriter, code int, msg, cc string) {
	h := w.Header()
	h.Del("ETag")
	h.Del("Last-Modified")
	h.Set("Cache-Control", cc)
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(msg)+1))
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg + "\n"))
}
