package edge

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
)

// maxLicenceBody bounds a ClearKey licence request and its answer: a few
// key ids and keys.
const maxLicenceBody = 4 << 10

// relayLicence passes a ClearKey licence request (POST
// /vod/{asset}/clearkey) to the upstreams after the node's token check:
// an edge with -auth hands keys only to viewers with a token for the
// asset. Nothing of it is cached; the answer is the upstream's.
func (n *Node) relayLicence(w http.ResponseWriter, r *http.Request) {
	asset := chi.URLParam(r, "asset")
	if !validName(asset) || strings.Contains(r.URL.EscapedPath(), "%") {
		httpError(w, http.StatusNotFound, "not found")
		return
	}
	if !n.guardObject(w, r) {
		return
	}
	if why := n.loopedThrough(r.Header[loopHeader]); why != "" {
		httpError(w, http.StatusLoopDetected, loopMessage(why))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxLicenceBody+1))
	if err != nil || len(body) > maxLicenceBody {
		httpError(w, http.StatusRequestEntityTooLarge, "licence request too large")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), n.cfg.FetchTimeout)
	defer cancel()
	path := "/vod/" + asset + "/clearkey"
	looped := false
	for _, up := range n.pool.order(path) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, up.url.String()+path, bytes.NewReader(body))
		if err != nil {
			continue
		}
		req.Header.Set("Content-Type", r.Header.Get("Content-Type"))
		req.Header["Via"] = n.via
		n.addLoopEntry(req, r)
		resp, err := n.client.Do(req)
		if err != nil {
			n.pool.markFailure(up, err)
			continue
		}
		answer, err := io.ReadAll(io.LimitReader(resp.Body, maxLicenceBody+1))
		resp.Body.Close()
		looped = looped || resp.StatusCode == http.StatusLoopDetected
		if err != nil || len(answer) > maxLicenceBody || resp.StatusCode >= 500 {
			continue // the next upstream may do better
		}
		n.pool.markSuccess(up)
		h := w.Header()
		h.Set("Content-Type", resp.Header.Get("Content-Type"))
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(answer)
		return
	}
	if looped {
		httpError(w, http.StatusLoopDetected, loopUpstreamMessage)
		return
	}
	w.Header().Set("Retry-After", "2")
	httpError(w, http.StatusBadGateway, "no upstream answered the licence request")
}
