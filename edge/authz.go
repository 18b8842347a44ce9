package edge

import (
	"net/http"
	"strings"
	"time"

	"github.com/deepcast/deepcast/edge/accesslog"
	"github.com/deepcast/deepcast/edge/auth"
	"github.com/prometheus/client_golang/prometheus"
)

// authReasonHeader names why a request was refused: "missing", "expired",
// "signature", "uri", … (the reasons of package auth, and the label of
// deepcast_edge_auth_refused_total).
const authReasonHeader = "X-Deepcast-Auth"

// authMetrics count the token checks of a node with Config.Auth.
type authMetrics struct {
	refused *prometheus.CounterVec
	renewed prometheus.Counter
}

func newAuthMetrics(reg prometheus.Registerer) *authMetrics {
	m := &authMetrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deepcast_edge_auth_refused_total",
			Help: "Requests refused for their access token, by reason (missing, malformed, signature, expired, uri, method, replay, …)."}, []string{"reason"}),
		renewed: prometheus.NewCounter(prometheus.CounterOpts{Name: "deepcast_edge_auth_renewed_total",
			Help: "Responses that carried a renewed token (catr) or a redirect to one."}),
	}
	reg.MustRegister(m.refused, m.renewed)
	return m
}

// checkAccess runs the node's token check on a /vod/ request; the zero
// Decision (allowed) when the node checks no tokens.
func (n *Node) checkAccess(q *auth.Request) auth.Decision {
	if n.cfg.Auth == nil {
		return auth.Decision{}
	}
	d := n.cfg.Auth.Check(q)
	switch {
	case !d.Allowed():
		n.metrics.auth.refused.WithLabelValues(d.Reason).Inc()
	case d.Renewed:
		n.metrics.auth.renewed.Inc()
	}
	return d
}

// authRequest is the token check's view of a net/http request.
func authRequest(r *http.Request) *auth.Request {
	return &auth.Request{Method: r.Method, Secure: r.TLS != nil, Host: r.Host, Path: r.URL.EscapedPath(),
		Query: r.URL.RawQuery, Remote: r.RemoteAddr, Header: r.Header.Get(auth.HeaderName),
		Cookie: strings.Join(r.Header.Values("Cookie"), "; ")}
}

// refusal writes a refused request's answer: the status, the reason in a
// header and the body, nothing a cache keeps.
func refusal(w http.ResponseWriter, d auth.Decision) {
	w.Header().Set(authReasonHeader, d.Reason)
	httpError(w, d.Status, "access refused: "+d.Reason)
}

// guardObject applies the node's token check to a net/http /vod/ request.
// It reports false when it has answered (a refusal or a renewal
// redirect); otherwise the response gets the decision's headers and the
// request loses the token's query parameters, so that neither the cache
// key nor the upstream ever sees them.
func (n *Node) guardObject(w http.ResponseWriter, r *http.Request) bool {
	if n.cfg.Auth == nil {
		return true
	}
	d := n.checkAccess(authRequest(r))
	if !d.Allowed() {
		refusal(w, d)
		return false
	}
	if d.Redirect != "" {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, d.Redirect, d.RedirectCode)
		return false
	}
	for _, h := range d.Headers {
		w.Header().Add(h[0], h[1])
	}
	r.URL.RawQuery = auth.StripQuery(r.URL.RawQuery, n.cfg.Auth.Strip())
	return true
}

// PlainRequest is a plain GET or HEAD of an object path as the fast
// fronts parse it, with what a token check needs.
type PlainRequest struct {
	Head   bool
	Path   string // escaped: only unreserved characters and slashes
	Query  string // raw; "" for none
	Remote string
	Host   string
	Secure bool   // arrived over TLS
	Token  string // the CTA-Common-Access-Token header
	Cookie string // the Cookie header(s)
	Loop   string // the CDN-Loop header(s), joined with ", "; "" for none
	// AcceptEncoding is the Accept-Encoding header(s), joined with ", ";
	// "" for none.
	AcceptEncoding string
}

// fastAuth runs the token check for a fast-path request. It returns the
// response to send instead (a refusal or redirect) with answered true,
// or the header lines to add to the normal answer.
func (n *Node) fastAuth(q *PlainRequest, remote string, method string) (fr FastResponse, answered bool, extra []byte) {
	ar := &auth.Request{Method: method, Secure: q.Secure, Host: q.Host, Path: q.Path, Query: q.Query,
		Remote: remote, Header: q.Token, Cookie: q.Cookie}
	d := n.checkAccess(ar)
	switch {
	case !d.Allowed():
		rec := &bufferedResponse{header: http.Header{"Access-Control-Allow-Origin": hdrAnyOrigin, "Access-Control-Expose-Headers": hdrExposed}}
		refusal(rec, d)
		return n.fastRecorded(rec, q.Path, method, remote), true, nil
	case d.Redirect != "":
		rec := &bufferedResponse{header: http.Header{"Access-Control-Allow-Origin": hdrAnyOrigin, "Access-Control-Expose-Headers": hdrExposed}}
		rec.header.Set("Cache-Control", "no-store")
		http.Redirect(rec, plainRequest(q.Path, q.Query), d.Redirect, d.RedirectCode)
		return n.fastRecorded(rec, q.Path, method, remote), true, nil
	}
	for _, h := range d.Headers {
		extra = appendHeaderLine(extra, h[0], h[1])
	}
	return FastResponse{}, false, extra
}

// fastRecorded turns a recorded answer into a FastResponse that counts
// itself like the others.
func (n *Node) fastRecorded(rec *bufferedResponse, path, method, remote string) FastResponse {
	h := headerLines(rec.header)
	status := rec.status
	body := rec.body.Bytes()
	if method == http.MethodHead {
		body = nil
	}
	return FastResponse{Status: status, Header: h, Body: body, Done: func(sent int64, elapsed time.Duration, _ error) {
		n.metrics.countRequest(routeObjects, method, status)
		n.metrics.latency.Observe(elapsed.Seconds())
		if n.cfg.AccessLog != nil {
			n.cfg.AccessLog.Log(accesslog.Record{Remote: remote, Method: method, Path: path, Status: status, Bytes: sent, Duration: elapsed})
		}
	}}
}
