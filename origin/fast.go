package origin

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/deepcast/deepcast/edge/httpsem"
	"github.com/deepcast/deepcast/media"
)

// FastResponse is a whole 200 response to a plain request, for an HTTP/1.1
// front that writes it straight to the connection (deepcast's
// cmd/deepcast/internal/fastpath): header lines without the status line,
// Date and Content-Length, and the body in memory or as a file to send.
type FastResponse struct {
	Header []byte
	Body   []byte
	File   *os.File // closed by the writer
	Size   int64
	// Done records the request in the metrics and the access log.
	Done func(sent int64, elapsed time.Duration, err error)
}

// Route patterns of the media routes, as chi reports them, so both paths
// count into the same series.
const (
	routeManifest = "/vod/{asset}/manifest.mpd"
	routeInit     = "/vod/{asset}/{rendition}/init.mp4"
	routeSegment  = "/vod/{asset}/{rendition}/{segment}"
)

// AnswerPlain answers a plain GET (or HEAD) of a manifest, init segment or
// media segment that exists: the same headers and bytes ServeHTTP sends,
// without net/http's per-request machinery. It reports false, having done
// nothing, for every other request (unknown or invalid paths, errors),
// which ServeHTTP must then answer.
func (s *Server) AnswerPlain(head bool, path, remote string) (FastResponse, bool) {
	return s.AnswerEncoded(head, path, remote, "")
}

// AnswerEncoded is AnswerPlain for a client whose Accept-Encoding field
// (its lines joined with ", ") is acceptEncoding: manifests go out
// gzipped when it takes gzip, as ServeHTTP sends them.
func (s *Server) AnswerEncoded(head bool, path, remote, acceptEncoding string) (FastResponse, bool) {
	rest, ok := strings.CutPrefix(path, "/vod/")
	if !ok {
		return FastResponse{}, false
	}
	name, rest, ok := strings.Cut(rest, "/")
	if !ok || !media.ValidName(name) {
		return FastResponse{}, false
	}
	e, err := s.catalog.Get(name)
	if err != nil {
		return FastResponse{}, false
	}
	method := http.MethodGet
	if head {
		method = http.MethodHead
	}
	done := func(route string) func(int64, time.Duration, error) {
		return func(sent int64, elapsed time.Duration, _ error) {
			s.account(context.Background(), route, method, path, remote, "", http.StatusOK, sent, elapsed)
		}
	}
	if rest == "manifest.mpd" {
		d := e.mpd.forClient([]string{acceptEncoding})
		return FastResponse{Header: d.header, Body: d.body, Done: done(routeManifest)}, true
	}
	if strings.HasSuffix(rest, ".m3u8") {
		p, route, ok := e.findPlaylist(rest)
		if !ok {
			return FastResponse{}, false
		}
		d := p.forClient([]string{acceptEncoding})
		return FastResponse{Header: d.header, Body: d.body, Done: done(route)}, true
	}
	id, file, ok := strings.Cut(rest, "/")
	if !ok || !media.ValidName(id) {
		return FastResponse{}, false
	}
	rd, ok := e.Asset.Rendition(id)
	if !ok {
		return FastResponse{}, false
	}
	var info media.FileInfo
	route, contentType, lastSeg := routeInit, hdrVideoMP4[0], ""
	if file == "init.mp4" {
		info = rd.Init
		if rd.Type == "audio" {
			contentType = hdrAudioMP4[0]
		}
	} else {
		num, found := strings.CutSuffix(file, ".m4s")
		n, valid := parseSegmentNumber(num)
		if !found || !valid {
			return FastResponse{}, false
		}
		seg, ok := rd.Segment(n)
		if !ok {
			return FastResponse{}, false
		}
		info = media.FileInfo{Size: seg.Size, SHA256: seg.SHA256}
		route, contentType, lastSeg = routeSegment, hdrSegment[0], strconv.Itoa(len(rd.Segments))
	}
	var f *os.File
	var body []byte
	switch {
	case !e.remote():
		if f, err = s.openVerified(e, filepath.Join(id, file), info); err != nil {
			return FastResponse{}, false // ServeHTTP reports it (a damaged file, a pruned version)
		}
	case route == routeInit:
		body = e.inits[id]
	default:
		return FastResponse{}, false // streamed from the object store by ServeHTTP
	}
	h := make([]byte, 0, 512)
	h = appendCommon(h, contentType, cacheImmutable, etag(info.SHA256), e.lastModified)
	line := len(h)
	h = append(h, "Repr-Digest: "...)
	value := len(h)
	if h = httpsem.AppendReprDigest(h, info.SHA256); len(h) > value {
		h = append(h, "\r\n"...)
	} else {
		h = h[:line] // no whole SHA-256 on record: no field
	}
	if lastSeg != "" {
		h = append(h, "X-Deepcast-Last-Segment: "...)
		h = append(h, lastSeg...)
		h = append(h, "\r\n"...)
	}
	if body != nil {
		return FastResponse{Header: h, Body: body, Done: done(route)}, true
	}
	return FastResponse{Header: h, File: f, Size: info.Size, Done: done(route)}, true
}

// appendCommon appends the header lines every media response carries.
func appendCommon(h []byte, contentType, cacheControl, tag, lastModified string) []byte {
	for _, kv := range [...][2]string{
		{"Accept-Ranges", "bytes"},
		{"Access-Control-Allow-Origin", hdrAnyOrigin[0]},
		{"Access-Control-Expose-Headers", hdrExposed[0]},
		{"Cache-Control", cacheControl},
		{"Content-Type", contentType},
		{"Etag", tag},
		{"Last-Modified", lastModified},
	} {
		h = append(h, kv[0]...)
		h = append(h, ": "...)
		h = append(h, kv[1]...)
		h = append(h, "\r\n"...)
	}
	return h
}
