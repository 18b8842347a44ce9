package edge

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"time"
)

// FastResponse is a whole response to a plain request, for an HTTP/1.1
// front that writes it straight to the connection (deepcast's
// cmd/deepcast/internal/fastpath): status, header lines without the status
// line, Date and Content-Length, and the body.
type FastResponse struct {
	Status int
	Header []byte
	Body   []byte
	// Done records the request in the metrics and the access log.
	Done func(sent int64, elapsed time.Duration, err error)
}

// routeObjects is the chi pattern of the object routes, so both paths
// count into the same series.
const routeObjects = "/vod/*"

// AnswerPlain answers a plain GET (or HEAD) of an object path: the same
// headers and bytes ServeHTTP sends. A fresh hit is answered without any
// per-request allocation beyond its header block; anything else (miss,
// stale, error) runs the node's handler on a synthetic request and returns
// the recorded response, so every cache rule lives in one place. It reports
// false, having done nothing, for paths that are not objects and for HEAD
// requests that are not fresh hits; ServeHTTP must then answer them.
func (n *Node) AnswerPlain(head bool, path, remote string) (FastResponse, bool) {
	p, ok := parseObjectPath(path)
	if !ok {
		return FastResponse{}, false
	}
	method := http.MethodGet
	if head {
		method = http.MethodHead
	}
	key := cacheKey(path, "", n.cfg.QueryAllow)
	now := time.Now()
	o, tier := n.lookup(key)
	if o == nil || !o.fresh(now) {
		if head {
			return FastResponse{}, false
		}
		return n.answerRecorded(path, remote), true
	}
	n.stats.requests.Add(1)
	n.stats.hits.Add(1)
	n.stats.addServed(tier, len(o.Body))
	h := make([]byte, 0, 640)
	h = append(h, o.headerBlock(n.via[0])...)
	h = append(h, "Age: "...)
	h = strconv.AppendInt(h, int64(o.age(now).Seconds()), 10)
	h = append(h, "\r\nCache-Status: "...)
	h = append(h, n.cfg.Name...)
	h = append(h, "; hit; ttl="...)
	h = strconv.AppendInt(h, int64(o.ttl(now).Seconds()), 10)
	h = append(h, "\r\n"...)
	n.maybePrefetch(nil, p, o)
	return FastResponse{Status: http.StatusOK, Header: h, Body: o.Body, Done: func(int64, time.Duration, error) {
		n.metrics.countRequest(routeObjects, method, http.StatusOK)
		if n.cfg.AccessLog {
			n.log.Info("request", "method", method, "path", path, "status", http.StatusOK, "remote", remote)
		}
	}}, true
}

// answerRecorded runs the node's handler for a GET of path and returns
// what it wrote.
func (n *Node) answerRecorded(path, remote string) FastResponse {
	rec := &bufferedResponse{header: http.Header{}}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, path, nil)
	if err != nil { // the front passes only plain paths; this is a bug, not input
		return FastResponse{Status: http.StatusBadRequest, Header: []byte("Content-Type: text/plain; charset=utf-8\r\n"), Body: []byte("bad request\n")}
	}
	req.RemoteAddr = remote
	req.RequestURI = path
	n.handler.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	var h []byte
	for k, vs := range rec.header {
		if k == "Content-Length" || k == "Date" {
			continue
		}
		for _, v := range vs {
			h = append(h, k...)
			h = append(h, ": "...)
			h = append(h, v...)
			h = append(h, "\r\n"...)
		}
	}
	return FastResponse{Status: rec.status, Header: h, Body: rec.body.Bytes()}
}

// bufferedResponse is an http.ResponseWriter that keeps the response.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
