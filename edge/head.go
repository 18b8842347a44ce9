package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// A HEAD of an object this node does not hold is asked upstream as a HEAD,
// and the answer is kept as headers only (heads). Fetching the whole
// object for it, as a cache filling on every request does, costs the
// link above the body of something nobody asked to see: deepcast play
// asks the size of every rendition's next segments (eight chunks at a
// time), and through a node that filled on HEAD one viewer brought every
// rendition of the asset across the link above, the ones it played
// fighting for that link with all the others.
//
// Only plain HEADs go up as such: one with a Range or a condition, or one
// of an object whose fill is under way, is answered from the object as
// before. Manifests are fetched whole, being small and read by every
// player anyway.

// headAnswer is an upstream's 200 to a HEAD: the headers a GET of the
// object gets, and the object's length.
type headAnswer struct {
	meta *object // its Body is empty
	size int64
}

const (
	// maxHeads bounds the answers kept (a few hundred bytes each).
	maxHeads = 16384
	// maxHeadTTL bounds how long an answer is kept, however long the
	// object is fresh: the object it describes may be purged upstream.
	maxHeadTTL = time.Hour
)

// errHeadUnusable is an upstream answer to a HEAD that says nothing of
// the object: a 200 without its length, which only the object itself can
// then tell, or a 405 from an upstream that takes no HEAD. The object is
// fetched instead.
var errHeadUnusable = errors.New("the upstream's answer to a HEAD does not tell the object's length")

// forwardsHead reports whether r, for an object not held here, is a HEAD
// to ask upstream as a HEAD.
func (n *Node) forwardsHead(r *http.Request) bool {
	return !n.cfg.HeadFills && r != nil && r.Method == http.MethodHead && plainGet(r) && !isManifest(r.URL.Path)
}

// headKey is key's name in the coalescing group, apart from its GETs.
func headKey(key string) string { return "\x00HEAD " + key }

// fetchHead asks the upstreams (the owner sibling first) for key with a
// HEAD, coalesced as fetch is, and keeps a 200 that may be kept.
func (n *Node) fetchHead(r *http.Request, key string, fromSibling bool) (fetchResult, bool, error) {
	v, err, shared := n.group.Do(headKey(key), func() (any, error) {
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.FetchTimeout)
		defer cancel()
		res, err := n.tryUpstreams(ctx, key, fromSibling, func(ctx context.Context, up *upstream, toSibling bool) (*rawFetch, error) {
			return n.headFrom(ctx, up, r, key, toSibling)
		})
		if err != nil {
			return nil, err
		}
		if h := res.head; h != nil && res.cacheable {
			until := time.Now().Add(maxHeadTTL)
			if h.meta.Expires.Before(until) {
				until = h.meta.Expires
			}
			n.heads.put(key, h, until)
			res.stored = true
		}
		return res.fetchResult, nil
	})
	if err != nil {
		return fetchResult{}, shared, err
	}
	return v.(fetchResult), shared, nil
}

// headFrom asks up for r's object with a HEAD.
func (n *Node) headFrom(ctx context.Context, up *upstream, r *http.Request, key string, toSibling bool) (*rawFetch, error) {
	req, err := n.upstreamRequest(ctx, http.MethodHead, n.upstreamTarget(up, r), r, toSibling)
	if err != nil {
		return nil, &errUpstream{err: err}
	}
	resp, err := n.send(up, req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	now := time.Now()
	res, err := n.readAnswer(up, r, resp, now)
	if err != nil {
		return nil, err
	}
	switch code := resp.StatusCode; {
	case code == http.StatusOK && resp.ContentLength < 0, code == http.StatusMethodNotAllowed:
		return nil, &errUpstream{err: fmt.Errorf("upstream %s: %s: %w", up.url.Host, resp.Status, errHeadUnusable), answered: true}
	case code == http.StatusOK:
		meta := newObject(key, resp.Header, nil, res.policy, now, n.defaultTTL(key))
		res.head = &headAnswer{meta: meta, size: resp.ContentLength}
		res.cacheable = res.policy.cacheable() && !res.policy.NoCache && meta.Expires.After(now)
	case code == http.StatusPartialContent || code == http.StatusNotModified:
		return nil, &errUpstream{err: fmt.Errorf("upstream %s: %s to a HEAD without Range or conditions", up.url.Host, resp.Status), answered: true}
	case isRedirect(code) && resp.Header.Get("Location") == "":
		return nil, &errUpstream{err: fmt.Errorf("upstream %s: %s without Location", up.url.Host, resp.Status)}
	default:
		res.passthrough = &passResponse{status: code, header: resp.Header.Clone(), head: true}
	}
	return res, nil
}

// heldHead answers a HEAD of key from a kept upstream answer.
func (n *Node) heldHead(key string, now time.Time) (outcome, bool) {
	h, expires, ok := n.heads.get(key, now)
	if !ok {
		return outcome{}, false
	}
	n.stats.hits.Add(1)
	return outcome{head: h, tier: "memory", cacheStatus: n.hitEntry(expires.Sub(now)) + "; detail=head"}, true
}

// headOutcome asks upstream for a HEAD of key the node does not hold. It
// reports false when the answer cannot do (errHeadUnusable): the object
// must then be fetched.
func (n *Node) headOutcome(r *http.Request, key string, fromSibling bool) (outcome, bool) {
	res, shared, err := n.fetchHead(r, key, fromSibling)
	if errors.Is(err, errHeadUnusable) {
		return outcome{}, false
	}
	collapsed := n.noteCollapsed(shared)
	if err != nil {
		n.stats.errors.Add(1)
		return n.upstreamFailure(key, "method", err), true
	}
	n.stats.misses.Add(1)
	n.stats.headsForwarded.Add(1)
	status := fmt.Sprintf("%s; fwd=method; fwd-status=%d", n.cfg.Name, res.status)
	if res.stored {
		status += "; stored; detail=head"
	}
	out := outcome{tier: "upstream", upstream: res.from, upstreamCMSD: res.cmsd, cacheStatus: chainStatus(res.cacheStatus, status+collapsed)}
	if res.head != nil {
		out.head = res.head
	} else {
		out.pass = res.passthrough
	}
	return out, true
}

// respondHead writes the answer to a HEAD from an upstream's answer.
func (n *Node) respondHead(w http.ResponseWriter, r *http.Request, out outcome) {
	h := w.Header()
	for k, v := range out.head.meta.headers(n.via) {
		h[k] = v
	}
	h["Age"] = []string{strconv.Itoa(int(out.head.meta.age(time.Now()).Seconds()))}
	h["Cache-Status"] = []string{out.cacheStatus}
	n.adviseIn(h, r, out.upstreamCMSD)
	h["Content-Length"] = []string{strconv.FormatInt(out.head.size, 10)}
	w.WriteHeader(http.StatusOK)
}
