package origin

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/deepcast/deepcast/edge/httpsem"
	"github.com/deepcast/deepcast/manifest"
	"github.com/deepcast/deepcast/media"
)

// AssetSummary is one asset in the catalogue API.
type AssetSummary struct {
	Name            string        `json:"name"`
	Build           string        `json:"build"`
	Created         time.Time     `json:"created"`
	Duration        float64       `json:"duration"`
	SegmentDuration float64       `json:"segmentDuration"`
	Segments        int           `json:"segments"`
	ManifestURL     string        `json:"manifestUrl"`
	SizeOnDisk      int64         `json:"sizeOnDisk"`
	Ladder          []LadderEntry `json:"ladder"`
	// Subtitles are the asset's subtitle tracks.
	Subtitles []SubtitleEntry `json:"subtitles,omitempty"`
	// Thumbnails, when the asset has them, lay out its seek-preview tiles.
	Thumbnails *ThumbnailsEntry `json:"thumbnails,omitempty"`
	// Protection, for an encrypted asset, is its scheme and key id (never
	// the key): players need them to set up ClearKey.
	Protection *media.Protection `json:"protection,omitempty"`
}

// LadderEntry is one rendition in the catalogue API.
type LadderEntry struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Width     int    `json:"width,omitempty"`
	Height    int    `json:"height,omitempty"`
	Codecs    string `json:"codecs"`
	Bitrate   int64  `json:"bitrate"`
	Bandwidth int64  `json:"bandwidth"`
	// An audio rendition's language, label and role.
	Lang  string `json:"lang,omitempty"`
	Label string `json:"label,omitempty"`
	Role  string `json:"role,omitempty"`
}

// ThumbnailsEntry describes an asset's thumbnail tiles in the catalogue
// API: Count thumbnails of Width x Height, one every Interval seconds,
// Columns x Rows to a tile, tile n at URL with {n} replaced (from 1).
type ThumbnailsEntry struct {
	Interval float64 `json:"interval"`
	Width    int     `json:"width"`
	Height   int     `json:"height"`
	Columns  int     `json:"columns"`
	Rows     int     `json:"rows"`
	Count    int     `json:"count"`
	Tiles    int     `json:"tiles"`
	URL      string  `json:"url"`
}

// SubtitleEntry is one subtitle track in the catalogue API.
type SubtitleEntry struct {
	ID    string `json:"id"`
	Lang  string `json:"lang,omitempty"`
	Label string `json:"label"`
	Role  string `json:"role"`
	URL   string `json:"url"` // the WebVTT file
}

func summary(e *Entry) AssetSummary {
	a := e.Asset
	out := AssetSummary{Name: e.Name, Build: a.Build, Created: a.Created, Duration: a.Duration, SegmentDuration: a.SegmentDuration,
		ManifestURL: "/vod/" + e.Name + "/manifest.mpd", SizeOnDisk: a.SizeOnDisk(), Protection: a.Protection}
	for _, r := range a.Renditions {
		if r.Type == "video" {
			out.Segments = max(out.Segments, len(r.Segments))
		}
		out.Ladder = append(out.Ladder, LadderEntry{ID: r.ID, Type: r.Type, Width: r.Width, Height: r.Height, Codecs: r.Codecs,
			Bitrate: r.Bitrate, Bandwidth: r.Bandwidth, Lang: r.Lang, Label: r.Label, Role: r.Role})
	}
	if th := a.Thumbnails; th != nil && len(th.Tiles) > 0 {
		out.Thumbnails = &ThumbnailsEntry{Interval: th.Interval, Width: th.Width, Height: th.Height, Columns: th.Columns, Rows: th.Rows,
			Count: th.Count, Tiles: len(th.Tiles), URL: "/vod/" + e.Name + "/" + manifest.ThumbnailsID + "/{n}.jpg"}
	}
	for _, t := range a.Texts {
		out.Subtitles = append(out.Subtitles, SubtitleEntry{ID: t.ID, Lang: t.Lang, Label: t.Label, Role: t.Role,
			URL: "/vod/" + e.Name + "/" + t.ID + "/" + manifest.TextFile})
	}
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", cacheNoStore)
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// DefaultListPage is the most assets one listing gives (and its default)
// unless Config.ListPage says otherwise: a listing loads every asset it
// names, so an unbounded one of a large library in an object store would
// read all of it on every call.
const DefaultListPage = 1000

// listPage is the most assets one listing gives.
func (s *Server) listPage() int {
	if s.cfg.ListPage > 0 {
		return s.cfg.ListPage
	}
	return DefaultListPage
}

// summaries lists up to limit assets that load, by name, after the name
// after; next is where the following page starts ("" at the end). Broken
// assets are logged.
func (s *Server) summaries(ctx context.Context, after string, limit int) (list []AssetSummary, next string) {
	next, errs := s.catalog.Walk(ctx, after, limit, func(e *Entry) { list = append(list, summary(e)) })
	for _, err := range errs {
		s.log.Warn("asset skipped", "err", err)
	}
	return list, next
}

// assetList is the JSON of GET /api/assets.
type assetList struct {
	Assets []AssetSummary `json:"assets"`
	// Next is the after= of the next page, absent on the last one.
	Next string `json:"next,omitempty"`
}

// listAssets answers GET /api/assets?limit=N&after=NAME: up to N assets
// (a page at most, and by default) in name order after NAME.
func (s *Server) listAssets(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page := s.listPage()
	limit := page
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > page {
			httpError(w, http.StatusBadRequest, fmt.Sprintf("limit: want a whole number from 1 to %d, got %q", page, v))
			return
		}
		limit = n
	}
	list, next := s.summaries(r.Context(), q.Get("after"), limit)
	if list == nil {
		list = []AssetSummary{}
	}
	writeJSON(w, http.StatusOK, assetList{Assets: list, Next: next})
}

func (s *Server) getAsset(w http.ResponseWriter, r *http.Request) {
	e, ok := s.lookup(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, summary(e))
}

// Stats is the JSON of GET /api/stats, read by the dashboard.
type Stats struct {
	Name        string `json:"name"`
	Role        string `json:"role"`
	Requests    int64  `json:"requests"`
	BytesSent   int64  `json:"bytesSent"`
	Assets      int    `json:"assets"`
	JobsRunning int    `json:"jobsRunning"`
	// HeldBack counts the assets served as the version before their live
	// one, which cannot be served (deepcast_origin_assets_held_back).
	HeldBack int `json:"heldBack"`
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	assets, _ := s.catalog.Count(r.Context())
	writeJSON(w, http.StatusOK, Stats{Name: "origin", Role: "origin", Requests: s.requests.Load(), BytesSent: s.sent.Load(),
		Assets: assets, JobsRunning: s.jobs.running(), HeldBack: s.catalog.HeldBack()})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", cacheNoStore)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz is ready when the library answers: its folder can be listed,
// or its object store answers about the bucket within 2 s.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.catalog.Store().Check(ctx); err != nil {
		s.log.Warn("not ready", "err", err)
		httpError(w, http.StatusServiceUnavailable, "library unreadable")
		return
	}
	s.healthz(w, r)
}

func (s *Server) metricsHandler() http.Handler {
	h := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", cacheNoStore)
		h.ServeHTTP(w, r)
	})
}

var indexPage = template.Must(template.New("index").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>deepcast origin</title>
<style>body{font:15px/1.5 system-ui,sans-serif;margin:2rem;max-width:60rem}td,th{padding:.2rem .8rem;text-align:left}</style>
</head><body><h1>deepcast origin</h1>
<table><tr><th>asset</th><th>duration</th><th>renditions</th><th>manifest</th></tr>
{{range .Assets}}<tr><td>{{.Name}}</td><td>{{printf "%.1f" .Duration}} s</td><td>{{len .Ladder}}</td><td><a href="{{.ManifestURL}}">{{.ManifestURL}}</a></td></tr>
{{else}}<tr><td colspan="4">The library is empty: add an asset with <code>deepcast package</code>.</td></tr>{{end}}
</table>{{if .Next}}<p>The first assets only: <a href="/api/assets?after={{.Next}}">/api/assets?after={{.Next}}</a> lists the next ones.</p>{{end}}<p><a href="/api/assets">/api/assets</a> · <a href="/metrics">/metrics</a></p></body></html>
`))

// indexAssets is how many assets the origin's index page lists.
const indexAssets = 200

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", cacheNoStore)
	list, next := s.summaries(r.Context(), "", min(indexAssets, s.listPage()))
	_ = indexPage.Execute(w, struct {
		Assets []AssetSummary
		Next   string
	}{list, next})
}

// requireAdmin answers 401 without credentials and 403 with wrong ones.
func (s *Server) requireAdmin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.AdminToken == "" {
			httpError(w, http.StatusForbidden, "write endpoints are disabled: start the origin with -admin-token")
			return
		}
		if checkBearer(w, r, s.cfg.AdminToken, "deepcast") {
			next(w, r)
		}
	}
}

// opsGuard keeps /metrics and /api/stats off the viewers' listener
// (OpsHidden: they are on OpsHandler) or behind MetricsToken.
func (s *Server) opsGuard(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch {
		case s.cfg.OpsHidden:
			httpError(w, http.StatusNotFound, "not served on this listener: see the origin's -admin-listen address, or start it with -metrics-token")
		case s.cfg.MetricsToken != "":
			if checkBearer(w, r, s.cfg.MetricsToken, "deepcast-metrics") {
				next(w, r)
			}
		default:
			next(w, r)
		}
	}
}

// checkBearer reports whether r carries the bearer token want, having
// answered 401 (none) or 403 (another) when it does not. The scheme's
// name is case-insensitive (RFC 9110, 11.1).
func checkBearer(w http.ResponseWriter, r *http.Request, want, realm string) bool {
	scheme, token, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`"`)
		httpError(w, http.StatusUnauthorized, "missing bearer token")
		return false
	}
	if subtle.ConstantTimeCompare([]byte(token), []byte(want)) != 1 {
		httpError(w, http.StatusForbidden, "wrong token")
		return false
	}
	return true
}

// OpsHandler serves /metrics, /api/stats, /healthz and /readyz with no
// guard: for a listener only operators reach (-admin-listen).
func (s *Server) OpsHandler() http.Handler {
	r := chi.NewRouter()
	r.Use(httpsem.CloseAfterTransferCoding)
	r.Get("/api/stats", s.stats)
	r.Method(http.MethodGet, "/metrics", s.metricsHandler())
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { httpError(w, http.StatusNotFound, "not found") })
	return r
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	j, ok := s.jobs.get(chi.URLParam(r, "id"))
	if !ok {
		httpError(w, http.StatusNotFound, "no such job")
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// ingest streams a multipart upload (fields: file, and optional name and
// ladder) to disk and starts a packaging job.
func (s *Server) ingest(w http.ResponseWriter, r *http.Request) {
	// Uploads may be large and slow: lift the server's read deadline for this request only.
	// Refusals come before the body is read: the uploader learns at once,
	// not after sending gigabytes.
	if r.ContentLength > s.cfg.MaxUpload {
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("upload larger than %d bytes", s.cfg.MaxUpload))
		return
	}
	if !s.jobs.hold() {
		w.Header().Set("Retry-After", "60")
		httpError(w, http.StatusServiceUnavailable, fmt.Sprintf("ingest is full: %d jobs are being uploaded, queued or run; try again later", s.cfg.MaxJobs))
		return
	}
	if free, ok := freeBytes(s.cfg.UploadDir); ok && r.ContentLength > 0 && free < uint64(r.ContentLength) {
		s.jobs.release()
		httpError(w, http.StatusInsufficientStorage, fmt.Sprintf("no room for the upload: %d bytes, %d free where uploads wait", r.ContentLength, free))
		return
	}
	guard := newStallGuard(http.MaxBytesReader(w, r.Body, s.cfg.MaxUpload), http.NewResponseController(w), s.cfg.UploadStall)
	r.Body = guard
	up, err := s.jobs.receive(r)
	if err != nil {
		s.jobs.release()
		var tooBig *http.MaxBytesError
		switch {
		case guard.stalled:
			s.log.Warn("ingest: upload stalled", "remote", r.RemoteAddr, "err", err)
			httpError(w, http.StatusRequestTimeout, fmt.Sprintf("upload stalled: fewer than %d bytes in %s", uploadFloor, s.cfg.UploadStall))
		case errors.As(err, &tooBig):
			httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("upload larger than %d bytes", s.cfg.MaxUpload))
		case errors.Is(err, syscall.ENOSPC):
			s.log.Warn("ingest: the upload disk is full", "dir", s.cfg.UploadDir, "err", err)
			httpError(w, http.StatusInsufficientStorage, "no room for the upload where uploads wait")
		default:
			httpError(w, http.StatusBadRequest, err.Error())
		}
		return
	}
	j := s.jobs.start(up)
	w.Header().Set("Location", "/api/jobs/"+j.ID)
	writeJSON(w, http.StatusAccepted, j.snapshot())
}
