package edge

import (
	"bytes"
	"net/http"
	"strconv"
	"time"

	"github.com/deepcast/deepcast/edge/accesslog"
	"github.com/deepcast/deepcast/edge/auth"
	"github.com/deepcast/deepcast/edge/cmcd"
	"github.com/deepcast/deepcast/edge/cmsd"
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

// AnswerPlain answers a plain GET (or HEAD) of an object path, with query
// the raw query ("" for none; players put CMCD there), with the
// same status, headers and bytes ServeHTTP sends, deciding through the
// same resolve: a fresh hit costs no allocation beyond the response's
// bookkeeping, and a miss hands the shared cached object on without a copy
// (a cold storm of a thousand clients shares one body). It reports false,
// having done nothing, for paths that are not objects and for HEAD
// requests that are not fresh hits; ServeHTTP must then answer them.
func (n *Node) AnswerPlain(head bool, path, query, remote string) (FastResponse, bool) {
	return n.answerPlain(PlainRequest{Head: head, Path: path, Query: query, Remote: remote}, false)
}

// AnswerHit is AnswerPlain for an event loop that must not wait: it
// answers fresh hits in memory only and reports false, having done
// nothing, for everything else (misses, stale objects, the disk tier),
// which AnswerPlain then answers on a goroutine.
func (n *Node) AnswerHit(head bool, path, query, remote string) (FastResponse, bool) {
	return n.answerPlain(PlainRequest{Head: head, Path: path, Query: query, Remote: remote}, true)
}

// Answer is AnswerPlain with everything a front parsed: what a node that
// checks tokens needs (Config.Auth).
func (n *Node) Answer(q PlainRequest) (FastResponse, bool) { return n.answerPlain(q, false) }

// AnswerInstant is AnswerHit with everything a front parsed.
func (n *Node) AnswerInstant(q PlainRequest) (FastResponse, bool) { return n.answerPlain(q, true) }

func (n *Node) answerPlain(q PlainRequest, hitsOnly bool) (FastResponse, bool) {
	head, path, remote := q.Head, q.Path, q.Remote
	p, ok := parseObjectPath(path)
	if !ok {
		return FastResponse{}, false
	}
	method := http.MethodGet
	if head {
		method = http.MethodHead
	}
	query := q.Query
	if n.cfg.Auth != nil {
		// Token parameters are never part of a key nor sent upstream.
		query = auth.StripQuery(query, n.cfg.Auth.Strip())
	}
	key := cacheKey(path, query, n.queryKeys(path))
	var r *http.Request // nil: a plain GET of path, which resolve needs no request for
	if query != "" || q.Loop != "" {
		// The query (CMCD, usually) names the prefetch target (nor) and
		// goes upstream untouched on a miss, as it does from ServeHTTP;
		// so does a parent's CDN-Loop, which a miss must check.
		r = plainRequest(path, query)
		if q.Loop != "" {
			r.Header[loopHeader] = []string{q.Loop}
		}
	}
	var o *object
	tier := "memory"
	if hitsOnly {
		o, _ = n.mem.get(key)
	} else {
		o, tier = n.lookup(key)
	}
	if hitsOnly || head {
		// Only fresh hits: a miss or a revalidation waits, and a HEAD of
		// one is net/http's (it must not fetch the body).
		if o == nil || !o.fresh(time.Now()) {
			return FastResponse{}, false
		}
	}
	if o == nil {
		if b, _ := n.lookupBig(key, time.Now()); b != nil {
			return FastResponse{}, false // streamed from a file: net/http's
		}
	}
	var authHeader []byte
	if n.cfg.Auth != nil {
		// Checked here, once the front is sure to answer (a check records
		// the use of a single-use token) and before anything goes
		// upstream: a refused request costs the upstream nothing.
		fr, answered, extra := n.fastAuth(&q, remote, method)
		if answered {
			return fr, true
		}
		authHeader = extra
	}
	out := n.resolveFound(r, p, key, path, o, tier, remote)
	if out.big != nil {
		// A miss that turned out large: net/http joins the spool this
		// fetch started; the request is counted there, not twice.
		n.stats.requests.Add(-1)
		n.stats.misses.Add(-1)
		n.stats.addServed("upstream", -int(max(0, out.big.size)))
		return FastResponse{}, false
	}
	var fr FastResponse
	if out.obj != nil {
		out.obj = out.obj.forClient([]string{q.AcceptEncoding})
		fr = FastResponse{Status: http.StatusOK, Body: out.obj.Body}
		adv := n.advice()
		if out.cacheStatus == "" {
			fr.Header = adv.withSessionLine(n.hitHeader(out.obj, adv), q.Query)
		} else {
			fr.Header = appendAgeAndStatus(bytes.Clone(out.obj.headerBlock(n.via[0])), out.obj, time.Now(), out.cacheStatus)
			if out.upstreamCMSD.value != "" {
				fr.Header = appendHeaderLine(fr.Header, cmsd.Header, adv.withUpstream(adv.forSession(q.Query, nil), out.upstreamCMSD))
			} else {
				fr.Header = adv.withSessionLine(append(fr.Header, adv.line...), q.Query)
			}
		}
	} else {
		fr = n.recorded(out, orPlain(r, path))
	}
	if authHeader != nil {
		fr.Header = append(bytes.Clone(fr.Header), authHeader...)
	}
	status := fr.Status
	fr.Done = func(sent int64, elapsed time.Duration, _ error) {
		n.metrics.countRequest(routeObjects, method, status)
		n.metrics.latency.Observe(elapsed.Seconds())
		var viewer *cmcd.Data
		if q.Query != "" {
			viewer = n.noteViewer(q.Query, nil, q.Loop, remote, path, status)
		}
		if n.cfg.AccessLog != nil { // every hot hit passes here: no record to build when off
			n.cfg.AccessLog.Log(accesslog.Record{Remote: remote, Method: method, Path: path, Status: status, Bytes: sent,
				Duration: elapsed, Cache: out.cacheLabel(), Tier: out.tier, Upstream: out.upstream, CMCD: viewer})
		}
	}
	return fr, true
}

// hitHeader returns the header lines of a fresh hit on o with the node's
// advice adv last, rebuilt only when its Age (whole seconds) or the advice
// changes.
func (n *Node) hitHeader(o *object, adv *advice) []byte {
	now := time.Now()
	age := int64(o.age(now) / time.Second)
	if hb := o.hit.Load(); hb != nil && hb.age == age && hb.advice == adv.gen {
		return hb.block
	}
	block := make([]byte, 0, len(o.headerBlock(n.via[0]))+96+len(adv.line))
	block = append(block, o.headerBlock(n.via[0])...)
	block = appendAgeAndStatus(block, o, now, n.hitStatus(o, now))
	block = append(block, adv.line...)
	o.hit.Store(&hitBlock{age: age, advice: adv.gen, block: block})
	return block
}

// appendAgeAndStatus appends the per-response Age and Cache-Status lines.
func appendAgeAndStatus(h []byte, o *object, now time.Time, cacheStatus string) []byte {
	h = append(h, "Age: "...)
	h = strconv.AppendInt(h, int64(o.age(now)/time.Second), 10)
	h = append(h, "\r\n"...)
	return appendHeaderLine(h, "Cache-Status", cacheStatus)
}

// recorded renders an outcome without an object (a relayed upstream answer
// or an upstream failure) through writeOutcome, with the CORS headers the
// router's middleware adds, so both paths send the same.
func (n *Node) recorded(out outcome, r *http.Request) FastResponse {
	rec := &bufferedResponse{header: http.Header{
		"Access-Control-Allow-Origin":   hdrAnyOrigin,
		"Access-Control-Expose-Headers": hdrExposed,
	}}
	n.writeOutcome(rec, r, out)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return FastResponse{Status: rec.status, Header: headerLines(rec.header), Body: rec.body.Bytes()}
}

// headerLines writes a recorded answer's header as the fronts' header
// lines, without Content-Length and Date, which they add.
func headerLines(header http.Header) []byte {
	var h []byte
	for k, vs := range header {
		if k == "Content-Length" || k == "Date" {
			continue
		}
		for _, v := range vs {
			h = appendHeaderLine(h, k, v)
		}
	}
	return h
}

// appendHeaderLine appends "k: v" and CRLF.
func appendHeaderLine(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = append(b, v...)
	return append(b, "\r\n"...)
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
