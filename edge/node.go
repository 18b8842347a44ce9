package edge

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deepcast/deepcast/edge/cmcd"
	"github.com/deepcast/deepcast/edge/httpsem"
	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"
)

// siblingHeader marks a request one bring-home node makes to the sibling
// that owns a key: the owner fetches it upstream instead of passing it on.
const siblingHeader = "X-Deepcast-Sibling"

// MaxUpstreamConns is the most connections a node opens to one upstream
// or sibling (fetches past it wait for one to be free): a parent node
// bounds the connections one client may hold, and must not refuse its
// own children.
const MaxUpstreamConns = 192

// Node is an edge cache node: an http.Handler for the /vod/ URL space and
// its admin API, composed of the memory and disk tiers, the upstream pool,
// the coalescing group and the freshness rules.
type Node struct {
	cfg      Config
	log      *slog.Logger
	mem      *memoryTier
	disk     *diskTier
	pool     *upstreamPool
	rules    atomic.Pointer[[]CacheRule] // longest prefix first; SetCacheRules replaces them
	siblings *upstreamPool               // nil without siblings; includes no self
	// siblingAddrs are the addresses the siblings' URLs resolve to: only
	// a request from one of them is taken as a sibling's (sentBySibling).
	siblingAddrs atomic.Pointer[map[netip.Addr]struct{}]
	members      []string // self + siblings, for rendezvous hashing
	client       *http.Client
	group        singleflight.Group
	stats        counters
	metrics      *nodeMetrics
	handler      http.Handler
	viewers      *cmcd.Viewers // the playback sessions its CMCD reports
	// relayed is the sessions known only from the misses of the nodes
	// below (their CMCD, which they forward): not this node's viewers,
	// but sharers of its egress (see sharingSessions).
	relayed *cmcd.Viewers
	adviser *adviser // what it tells players (CMSD)
	ladders ladders  // of the assets its viewers play, for their shares

	via    []string // this node's Via header value
	loopID string   // this node's identity in CDN-Loop (loop.go)
	// maxMemObject is the largest object read into memory; larger ones
	// are spooled (large.go). inflightBudget bounds the bytes of all
	// in-memory reads at once; a read that does not fit is spooled too.
	maxMemObject   int64
	inflightBudget *semaphore.Weighted
	fillsMu        sync.Mutex
	fills          map[string]*fill
	prefetchSlots  chan struct{}
	prefetched     *prefetchMemo
	negative       negativeCache         // upstream 404s and 410s that may be kept
	heads          expiring[*headAnswer] // upstream answers to HEADs (head.go)
	missLimit      *missLimiter          // nil: misses not limited per client
	missesRefused  atomic.Int64
	fetching       sync.Map // keys whose fetch is running: a miss that joins one costs no upstream trip

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds a node and starts its health checks; Close stops them.
func New(cfg Config) (*Node, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("node", cfg.Name), prefetchSlots: make(chan struct{}, 4), via: []string{"1.1 " + cfg.Name}, loopID: newLoopID()}
	n.heads.max = maxHeads
	tr := cfg.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 1024
		t.MaxIdleConnsPerHost = MaxUpstreamConns
		t.MaxConnsPerHost = MaxUpstreamConns
		t.ResponseHeaderTimeout = cfg.FetchTimeout
		t.DialContext = (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext
		t.TLSHandshakeTimeout = 5 * time.Second
		// What an upstream's headers may take: kept with every object, a
		// megabyte of headers (net/http allows ten) on each would fill the
		// memory tier with headers. deepcast's own are under 2 KiB.
		t.MaxResponseHeaderBytes = MaxUpstreamHeaderBytes
		t.ForceAttemptHTTP2 = true
		if cfg.UpstreamTLS != nil {
			t.TLSClientConfig = cfg.UpstreamTLS.Clone()
		}
		tr = t
	}
	n.client = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var err error
	if n.mem, err = newMemoryTier(cfg.MemBytes); err != nil {
		return nil, err
	}
	n.prefetched = newPrefetchMemo(maxPrefetchMemo)
	n.maxMemObject, n.fills = MaxMemoryObject(cfg.MemBytes), map[string]*fill{}
	n.inflightBudget = semaphore.NewWeighted(InflightBudget(cfg.MemBytes))
	n.missLimit = newMissLimiter(cfg.ClientMissRate)
	n.mem.gone = n.prefetched.forget
	if cfg.DiskDir != "" {
		if n.disk, err = openDiskTier(cfg.DiskDir, cfg.DiskBytes, n.log); err != nil {
			n.mem.close()
			return nil, err
		}
	}
	if err := n.SetCacheRules(cfg.CacheRules); err != nil {
		n.mem.close()
		return nil, err
	}
	if n.pool, err = newUpstreamPool(cfg.Upstreams, n.client, cfg.CheckEvery, n.log); err != nil {
		n.mem.close()
		return nil, err
	}
	if cfg.UpstreamWeights != nil {
		if len(cfg.UpstreamWeights) != len(cfg.Upstreams) {
			n.mem.close()
			return nil, fmt.Errorf("edge: %d weights for %d upstreams", len(cfg.UpstreamWeights), len(cfg.Upstreams))
		}
		pool := make([]WeightedUpstream, len(cfg.Upstreams))
		for i := range pool {
			pool[i] = WeightedUpstream{URL: cfg.Upstreams[i], Weight: cfg.UpstreamWeights[i]}
		}
		if err := n.SetUpstreamPool(pool); err != nil {
			n.mem.close()
			return nil, err
		}
	}
	if len(cfg.Siblings) > 0 {
		if cfg.Self == "" {
			n.mem.close()
			return nil, errors.New("edge: siblings need this node's own URL (Self) to share the key space")
		}
		self, err := parseUpstreamURL(cfg.Self)
		if err != nil {
			n.mem.close()
			return nil, err
		}
		n.members = append(n.members, self.String())
		var sibs []string
		for _, s := range cfg.Siblings {
			u, err := parseUpstreamURL(s)
			if err != nil {
				n.mem.close()
				return nil, err
			}
			if u.String() != self.String() {
				sibs = append(sibs, u.String())
			}
		}
		if len(sibs) > 0 {
			n.siblings, _ = newUpstreamPool(sibs, n.client, cfg.CheckEvery, n.log)
		}
	}
	n.viewers = cmcd.NewViewers(viewerWindow, maxViewers)
	n.viewers.PerClient = maxViewersPerClient
	n.relayed = cmcd.NewViewers(viewerWindow, maxViewers)
	n.relayed.PerClient = maxRelayedPerNode
	n.adviser = newAdviser(cfg.Name, cfg.Advice, time.Now())
	n.metrics = newNodeMetrics(n)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	n.wg.Go(func() { n.pool.run(n.ctx) })
	n.wg.Go(func() { n.runAdviser(n.ctx) })
	if n.siblings != nil {
		n.wg.Go(func() { n.siblings.run(n.ctx) })
		n.wg.Go(func() { n.resolveSiblings(n.ctx) })
	}
	n.handler = n.routes()
	return n, nil
}

// sentBySibling reports a request that a sibling sent as the owner's
// fetch: it carries siblingHeader and comes from a sibling's address. A
// client that sends the header itself does not make this node skip the
// key's owner and go to its own upstream.
func (n *Node) sentBySibling(r *http.Request) bool {
	if r == nil || r.Header.Get(siblingHeader) == "" {
		return false
	}
	addrs := n.siblingAddrs.Load()
	if addrs == nil {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	_, ok := (*addrs)[ap.Addr().Unmap()]
	return ok
}

// siblingResolveEvery is how often the siblings' host names are looked
// up again.
const siblingResolveEvery = 30 * time.Second

// resolveSiblings keeps siblingAddrs up to date until ctx ends. A name
// that does not resolve keeps the addresses it had.
func (n *Node) resolveSiblings(ctx context.Context) {
	known := map[string][]netip.Addr{}
	for {
		for _, u := range n.siblings.list() {
			host := u.url.Hostname()
			if ip, err := netip.ParseAddr(host); err == nil {
				known[host] = []netip.Addr{ip.Unmap()}
				continue
			}
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			ips, err := net.DefaultResolver.LookupNetIP(lctx, "ip", host)
			cancel()
			if err != nil {
				n.log.Warn("sibling address not resolved", "sibling", u.String(), "err", err)
				continue
			}
			for i := range ips {
				ips[i] = ips[i].Unmap()
			}
			known[host] = ips
		}
		set := map[netip.Addr]struct{}{}
		for _, ips := range known {
			for _, ip := range ips {
				set[ip] = struct{}{}
			}
		}
		n.siblingAddrs.Store(&set)
		select {
		case <-ctx.Done():
			return
		case <-time.After(siblingResolveEvery):
		}
	}
}

// Close stops health checks and background work.
func (n *Node) Close() {
	n.cancel()
	n.wg.Wait()
	n.mem.close()
}

// ServeHTTP implements http.Handler.
func (n *Node) ServeHTTP(w http.ResponseWriter, r *http.Request) { n.handler.ServeHTTP(w, r) }

// SetUpstreams makes urls the node's upstreams, in order, at once (a
// configuration reload); an upstream that stays keeps its health. A bad
// URL refuses the whole list and leaves the old one.
func (n *Node) SetUpstreams(urls []string) error { return n.pool.replace(urls) }

// Name is the node's name in Cache-Status and Via.
func (n *Node) Name() string { return n.cfg.Name }

// lookup finds key in memory, then on disk (promoting it to memory).
func (n *Node) lookup(key string) (*object, string) {
	if o, ok := n.mem.get(key); ok {
		return o, "memory"
	}
	if n.disk != nil && !n.disk.holdsBig(key, n.maxMemObject) {
		if o, ok := n.disk.get(key); ok {
			n.mem.put(o)
			return o, "disk"
		}
	}
	return nil, ""
}

// lookupBig finds a large object: fresh on disk, or being spooled.
func (n *Node) lookupBig(key string, now time.Time) (*bigObject, string) {
	if n.disk != nil {
		if b, ok := n.disk.bigEntry(key, n.maxMemObject); ok && b.meta.fresh(now) {
			return b, "disk"
		}
	}
	if b := n.inflight(key); b != nil {
		return b, "upstream"
	}
	return nil, ""
}

func (n *Node) store(o *object) {
	n.mem.put(o)
	if n.disk != nil {
		if err := n.disk.put(o); err != nil {
			n.log.Warn("disk tier write failed", "key", o.Key, "err", err)
		}
	}
}

// fetchResult is what one (coalesced) upstream fetch produced.
type fetchResult struct {
	obj         *object        // the object to serve (new, or refreshed by a 304)
	status      int            // upstream status
	cacheStatus string         // upstream's Cache-Status, to keep in the chain
	cmsd        upstreamAdvice // upstream's CMSD-Dynamic, to pass on
	passthrough *passResponse  // a non-200 answer relayed to the client
	big         *bigObject     // a large object, streamed through a file
	head        *headAnswer    // the answer to a HEAD asked upstream as one (head.go)
	stored      bool           // obj was put in the cache (not private, not no-store)
	from        string         // the upstream or sibling that answered
}

// passResponse is an upstream answer that is not cached (404, ...).
type passResponse struct {
	status int
	header http.Header
	body   []byte
	// stored is when a negative entry (negative.go) kept it; zero for an
	// answer relayed as it came.
	stored time.Time
	// head: the answer to a HEAD, without the body its Content-Length
	// tells of.
	head bool
}

// age is the Age of a kept answer: what the upstream said plus the time
// it has been here.
func (p *passResponse) age(now time.Time) int {
	up, _ := strconv.Atoi(p.header.Get("Age"))
	return max(0, up) + int(max(0, now.Sub(p.stored)).Seconds())
}

// errUpstream is an upstream that could not be reached or failed (5xx).
type errUpstream struct {
	err     error
	timeout bool
	// answered: the upstream answered, with a 5xx (or a body that failed
	// its digest: one bad object, not a bad upstream). It may be relaying its
	// own upstream's failure (a bring-home parent passing on an origin's
	// 502): that is not this upstream's failure, and does not count
	// against its health (its /healthz probe decides).
	answered bool
	// loop: the upstream answered 508 Loop Detected, which the node passes
	// on, so that the client learns what is wrong.
	loop bool
}

func (e *errUpstream) Error() string { return e.err.Error() }
func (e *errUpstream) Unwrap() error { return e.err }

// fetch gets key from the owner sibling or the upstreams, coalesced: one
// request per key at a time; concurrent callers share its result. A failed
// fetch is not remembered, so the next caller tries again.
func (n *Node) fetch(r *http.Request, key string, stale *object, fromSibling bool) (fetchResult, bool, error) {
	v, err, shared := n.group.Do(key, func() (any, error) {
		n.fetching.Store(key, struct{}{})
		defer n.fetching.Delete(key)
		ctx, cancel := context.WithTimeout(n.ctx, n.cfg.FetchTimeout)
		defer cancel()
		res, err := n.fetchOnce(ctx, r, key, stale, fromSibling)
		if err != nil {
			return nil, err
		}
		if res.passthrough != nil {
			n.negative.put(key, res.passthrough, time.Now())
		}
		if res.obj != nil && res.cacheable {
			n.store(res.obj)
			res.stored = true
		}
		return res.fetchResult, nil
	})
	if err != nil {
		return fetchResult{}, shared, err
	}
	return v.(fetchResult), shared, nil
}

// fetchRunning reports whether key's upstream fetch is under way: a miss
// that joins it costs no upstream trip of its own.
func (n *Node) fetchRunning(key string) bool {
	_, ok := n.fetching.Load(key)
	return ok
}

// defaultTTL applies when an upstream says nothing about freshness:
// manifests are short-lived, segments are immutable by our URL scheme.
func (n *Node) defaultTTL(key string) time.Duration {
	if isManifest(strings.SplitN(key, "?", 2)[0]) {
		return 2 * time.Second
	}
	return 24 * time.Hour
}

// rawFetch carries what fetch needs besides the result.
type rawFetch struct {
	fetchResult
	policy    policy
	cacheable bool
}

func (n *Node) fetchOnce(ctx context.Context, r *http.Request, key string, stale *object, fromSibling bool) (*rawFetch, error) {
	return n.tryUpstreams(ctx, key, fromSibling, func(ctx context.Context, up *upstream, toSibling bool) (*rawFetch, error) {
		return n.fetchFrom(ctx, up, r, key, stale, toSibling)
	})
}

// tryUpstreams asks for key with ask: from the sibling that owns it
// (unless the request came from a sibling), then from the upstreams in
// key's order, the next one once when the first fails.
func (n *Node) tryUpstreams(ctx context.Context, key string, fromSibling bool,
	ask func(ctx context.Context, up *upstream, toSibling bool) (*rawFetch, error)) (*rawFetch, error) {
	if n.siblings != nil && !fromSibling {
		if owner := rendezvousOwner(key, n.liveMembers()); owner > 0 {
			sib := n.siblingByURL(n.liveMembers()[owner])
			if sib != nil {
				res, err := ask(ctx, sib, true)
				if err == nil {
					n.siblings.markSuccess(sib)
					return res, nil
				}
				if eu := (*errUpstream)(nil); !errors.As(err, &eu) || !eu.answered {
					n.siblings.markFailure(sib, err)
				}
				n.log.Warn("sibling fetch failed, going upstream", "sibling", sib.String(), "key", key, "err", err)
			}
		}
	}
	order := n.pool.order(key)
	tries := min(2, len(order)) // an idempotent request is retried once, on the next upstream
	var lastErr error
	for i, up := range order[:tries] {
		// A first attempt that hangs (a partitioned upstream takes
		// requests and never answers) may spend only half of the time
		// left, so the retry on the next upstream still has its half.
		actx, cancel := ctx, context.CancelFunc(func() {})
		if dl, ok := ctx.Deadline(); ok && i < tries-1 {
			actx, cancel = context.WithDeadline(ctx, time.Now().Add(time.Until(dl)/2))
		}
		res, err := ask(actx, up, false)
		cancel()
		if err == nil {
			n.pool.markSuccess(up)
			return res, nil
		}
		if eu := (*errUpstream)(nil); !errors.As(err, &eu) || !eu.answered {
			n.pool.markFailure(up, err)
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// liveMembers is self plus the healthy siblings: a dead sibling's share of
// the keys moves to the others.
func (n *Node) liveMembers() []string {
	out := []string{n.members[0]}
	for _, s := range n.siblings.list() {
		if s.healthy.Load() {
			out = append(out, s.url.String())
		}
	}
	return out
}

func (n *Node) siblingByURL(u string) *upstream {
	for _, s := range n.siblings.list() {
		if s.url.String() == u {
			return s
		}
	}
	return nil
}

// upstreamTarget is the URL of r's object at up: its path, and the part
// of its query that goes upstream.
func (n *Node) upstreamTarget(up *upstream, r *http.Request) string {
	target := up.url.String() + r.URL.EscapedPath()
	if q := forwardedQuery(r.URL.RawQuery, n.queryKeys(r.URL.Path)); q != "" {
		target += "?" + q
	}
	return target
}

// upstreamRequest is the request for target that a client's request r
// makes upstream: its CMCD, this node's Via and CDN-Loop entry, and the
// identity representation.
func (n *Node) upstreamRequest(ctx context.Context, method, target string, r *http.Request, toSibling bool) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range r.Header {
		if strings.HasPrefix(k, "Cmcd-") {
			req.Header[k] = v
		}
	}
	req.Header.Set("Via", "1.1 "+n.cfg.Name)
	// The tiers keep and check the identity representation (the bytes
	// Repr-Digest and the ETag describe) and encode for their own
	// clients; asking for it also keeps Go's transport from asking for
	// gzip and decoding it out of sight.
	req.Header.Set("Accept-Encoding", "identity")
	n.addLoopEntry(req, r)
	if toSibling {
		req.Header.Set(siblingHeader, n.cfg.Name)
	}
	return req, nil
}

func (n *Node) fetchFrom(ctx context.Context, up *upstream, r *http.Request, key string, stale *object, toSibling bool) (*rawFetch, error) {
	target := n.upstreamTarget(up, r)
	// The request outlives ctx (the fetch's time bound) only when its body
	// is spooled: the fill then owns it and bounds it by progress.
	reqCtx, reqCancel := context.WithCancel(n.ctx)
	unlink := context.AfterFunc(ctx, reqCancel)
	spooled := false
	defer func() {
		if !spooled {
			unlink()
			reqCancel()
		}
	}()
	req, err := n.upstreamRequest(reqCtx, http.MethodGet, target, r, toSibling)
	if err != nil {
		return nil, &errUpstream{err: err}
	}
	if stale != nil {
		if stale.ETag != "" {
			req.Header.Set("If-None-Match", stale.ETag)
		}
		if stale.LastModified != "" {
			req.Header.Set("If-Modified-Since", stale.LastModified)
		}
	}
	resp, err := n.send(up, req)
	if err != nil {
		return nil, err
	}
	defer func() {
		if !spooled {
			resp.Body.Close()
		}
	}()
	now := time.Now()
	res, err := n.readAnswer(up, r, resp, now)
	if err != nil {
		return nil, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		p := res.policy
		if isManifest(r.URL.Path) && p.SWR == 0 && p.SIE == 0 {
			p.SWR, p.SIE = n.cfg.ManifestSWR, n.cfg.ManifestSIE
		}
		res.policy = p
		res.cacheable = p.cacheable()
		// The fetch's time bound is for the upstream to answer. A body
		// under way is bounded by its progress instead, as a spooled one
		// is: on a congested link a segment may take longer than
		// FetchTimeout to come whole, and abandoning it there wastes what
		// came, then sends it all again over the same link.
		// The longest pause allowed is what was left of the bound when the
		// answer came, so that a first attempt that stalls still leaves
		// the retry its half (fetchOnce).
		limit := n.cfg.FetchTimeout
		if dl, ok := ctx.Deadline(); ok {
			limit = max(time.Until(dl), n.cfg.FetchTimeout/4)
		}
		unlink()
		ttl := n.defaultTTL(key)
		meta := newObject(key, resp.Header, nil, p, now, ttl)
		var whole func([]byte, [32]byte) *object
		if resp.ContentLength <= n.maxMemObject {
			whole = func(body []byte, sum [32]byte) *object { return newObjectSum(key, resp.Header, body, sum, p, now, ttl) }
		}
		again := newResumeRequest(req, strings.TrimPrefix(target, up.url.String()), meta.ETag, up.url.Host)
		// take is the outcome of a body read through a fill that waits
		// StreamAfter: the object, or the fill still streaming.
		take := func(obj *object, big *bigObject, err error) (*rawFetch, error) {
			switch {
			case errors.Is(err, errDigestMismatch):
				// The upstream is up and answering; one object behind it is
				// bad. Its health stays as it is (answered), or one damaged
				// object would take a healthy origin out of the pool.
				n.log.Warn("upstream body refused", "upstream", up.url.Host, "key", key, "err", err)
				return nil, &errUpstream{err: fmt.Errorf("upstream %s: %w", up.url.Host, err), answered: true}
			case err != nil:
				return nil, &errUpstream{err: fmt.Errorf("upstream %s: %w", up.url.Host, err)}
			case big != nil:
				res.big, res.cacheable = big, false
			default:
				res.obj = obj
			}
			return res, nil
		}
		if size := resp.ContentLength; size >= 0 && size <= n.maxMemObject && n.inflightBudget.TryAcquire(size) {
			spooled = true // the fill owns the request now
			return take(n.readInMemory(key, meta, res.cacheable, resp, reqCancel, limit, whole, again))
		}
		if resp.ContentLength < 0 && n.cfg.StreamAfter > 0 {
			spooled = true
			return take(n.readUnknownLength(key, meta, res.cacheable, resp, reqCancel, limit, whole))
		}
		// Of unknown length (with StreamAfter negative: store and
		// forward), or memory is busy: read at once when it fits, else
		// spooled.
		stalled := time.AfterFunc(limit, reqCancel)
		body := resp.Body
		resp.Body = &progressBody{ReadCloser: body, stalled: stalled, limit: limit}
		prefix, large, err := n.readSmall(resp)
		stalled.Stop()
		resp.Body = body // a spool (large) bounds the rest by its own progress
		if err != nil {
			return nil, &errUpstream{err: fmt.Errorf("upstream %s: %w", up.url.Host, err)}
		}
		if large {
			big, err := n.startFill(key, meta, res.cacheable, resp, prefix, reqCancel, whole, again)
			if err != nil {
				return nil, &errUpstream{err: err}
			}
			spooled = true
			unlink()
			res.big, res.cacheable = big, false
			return res, nil
		}
		res.obj = newObject(key, resp.Header, prefix, p, now, ttl)
		if err := n.checkDigest(res.obj.Digest, res.obj.Sum); err != nil {
			n.log.Warn("upstream body refused", "upstream", up.url.Host, "key", key, "err", err)
			return nil, &errUpstream{err: fmt.Errorf("upstream %s: %w", up.url.Host, err), answered: true}
		}
	case http.StatusNotModified:
		if stale == nil {
			return nil, &errUpstream{err: fmt.Errorf("upstream %s: 304 to an unconditional request", up.url.Host)}
		}
		res.obj = stale.refreshed(resp.Header, res.policy, now, n.defaultTTL(key))
		res.cacheable = true
	case http.StatusPartialContent:
		// The whole-object request asks for no range (only a resumption or
		// a range ahead of a fill does, apart): a 206 is a part taken for
		// the whole, with or without its Content-Range.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, &errUpstream{err: fmt.Errorf("upstream %s: 206 Partial Content to a request without Range", up.url.Host)}
	default:
		if isRedirect(resp.StatusCode) && resp.Header.Get("Location") == "" {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			return nil, &errUpstream{err: fmt.Errorf("upstream %s: %s without Location", up.url.Host, resp.Status)}
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		res.passthrough = &passResponse{status: resp.StatusCode, header: resp.Header.Clone(), body: body}
	}
	return res, nil
}

// send makes req to up. A transport failure or a 5xx answer is an
// errUpstream (the answer's body drained and closed).
func (n *Node) send(up *upstream, req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := n.client.Do(req)
	n.metrics.upstreamLatency.WithLabelValues(up.url.Host).Observe(time.Since(start).Seconds())
	if err != nil {
		var ne net.Error
		return nil, &errUpstream{err: fmt.Errorf("upstream %s: %w", up.url.Host, err), timeout: errors.As(err, &ne) && ne.Timeout()}
	}
	if resp.StatusCode >= 500 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return nil, &errUpstream{err: fmt.Errorf("upstream %s: %s", up.url.Host, resp.Status), answered: true,
			loop: resp.StatusCode == http.StatusLoopDetected}
	}
	return resp, nil
}

// readAnswer is what an upstream's answer to r says besides its body:
// its freshness under the node's rules, status, Cache-Status and CMSD
// (a parent's advice is taken in here). An encoded body is refused.
func (n *Node) readAnswer(up *upstream, r *http.Request, resp *http.Response, now time.Time) (*rawFetch, error) {
	res := &rawFetch{policy: n.applyRule(r.URL.Path, parsePolicy(resp.Header, now))}
	res.from = up.url.Host
	res.status = resp.StatusCode
	res.cacheStatus = resp.Header.Get("Cache-Status")
	res.cmsd = readUpstreamAdvice(resp.Header)
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNotModified {
		if n.adviser.noteParent(res.cmsd.kbps, now) {
			n.refreshAdvice(now) // hits keep to it from now on
		}
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") && resp.StatusCode != http.StatusNotModified {
		// Kept and served as the identity bytes it is not, an encoded body
		// would reach every client undecodable.
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, &errUpstream{err: fmt.Errorf("upstream %s: Content-Encoding %q to a request for identity", up.url.Host, ce), answered: true}
	}
	return res, nil
}

// progressBody is an upstream body bounded by its progress: each read
// may wait up to limit for bytes before stalled fires (which abandons the
// fetch). In memory and in a spool alike.
type progressBody struct {
	io.ReadCloser
	stalled *time.Timer
	limit   time.Duration
}

func (b *progressBody) Read(p []byte) (int, error) {
	b.stalled.Reset(b.limit)
	return b.ReadCloser.Read(p)
}

// errDigestMismatch is a body that does not match its Repr-Digest.
var errDigestMismatch = errors.New("body does not match its Repr-Digest")

// checkDigest compares a body's SHA-256 with the upstream's Repr-Digest
// field, when the field has a sha-256 member: a body altered anywhere
// behind this node (a store object overwritten in place, a damaged disk
// on a parent) is refused rather than kept for a year under an immutable
// ETag. It counts a mismatch; the caller logs it and fails the fetch.
func (n *Node) checkDigest(field string, sum [32]byte) error {
	if field == "" {
		return nil
	}
	want, ok := httpsem.ReprSHA256(field)
	if !ok || want == sum {
		return nil
	}
	n.stats.digestMismatches.Add(1)
	return fmt.Errorf("%w: SHA-256 %x, Repr-Digest says %x", errDigestMismatch, sum[:8], want[:8])
}

// isRedirect reports the statuses that mean nothing without a Location.
func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// passedHeaders are the upstream headers a relayed (uncached) answer keeps:
// what its status needs to mean anything to the client.
var passedHeaders = []string{"Content-Type", "Cache-Control", "Age", "Location", "Retry-After", "WWW-Authenticate", "Allow", "Content-Range"}

// forwardedQuery is the part of a client's query that goes upstream on a
// miss: the parameters that are in the cache key (allow) and CMCD, which
// is telemetry for the origin, in the order the client sent them. The rest
// stays here: a parameter upstream could act on but the key does not hold
// would let one client's variant be served to all.
func forwardedQuery(raw string, allow []string) string {
	if raw == "" {
		return ""
	}
	var kept []string
	for part := range strings.SplitSeq(raw, "&") {
		k, _, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			continue
		}
		if name == "CMCD" || slices.Contains(allow, name) {
			kept = append(kept, part)
		}
	}
	return strings.Join(kept, "&")
}

// MaxUpstreamHeaderBytes bounds the header block of an upstream's answer;
// a larger one fails the fetch.
const MaxUpstreamHeaderBytes = 64 << 10

// MaxMemoryObject is the largest object a node with a memory tier of
// mem bytes reads into memory: a sixteenth of the tier, at most 16 MiB
// (video segments are a few MiB). Larger objects are spooled.
func MaxMemoryObject(mem int64) int64 { return min(16<<20, max(1<<20, mem/16)) }

// InflightBudget bounds the bytes a node with a memory tier of mem bytes
// reads into memory at once, over all upstream fetches: a quarter of the
// tier, at least four of its largest in-memory objects. With the memory
// tier, it is what the node's memory holds besides per-connection buffers
// and the runtime.
func InflightBudget(mem int64) int64 { return max(4*MaxMemoryObject(mem), mem/4) }

// readSmall reads resp's body into memory when it is small enough and
// fits the in-flight budget; else it reports large, with the bytes read
// so far (for a body of unknown length), and the caller spools the rest.
func (n *Node) readSmall(resp *http.Response) (body []byte, large bool, err error) {
	size := resp.ContentLength
	if size > n.maxMemObject {
		return nil, true, nil
	}
	want := size
	if want < 0 {
		want = n.maxMemObject
	}
	if !n.inflightBudget.TryAcquire(want) {
		return nil, true, nil // memory is busy with other reads: stream this one
	}
	defer n.inflightBudget.Release(want)
	if size >= 0 {
		// Exact size: no slack capacity kept alive in the cache.
		body = make([]byte, size)
		if _, err := io.ReadFull(resp.Body, body); err != nil {
			return nil, false, fmt.Errorf("body: %w", err)
		}
		return body, false, nil
	}
	body, err = io.ReadAll(io.LimitReader(resp.Body, n.maxMemObject+1))
	if err != nil {
		return nil, false, fmt.Errorf("body: %w", err)
	}
	if int64(len(body)) > n.maxMemObject {
		return body, true, nil
	}
	return bytes.Clone(body), false, nil
}

// serveObject is the /vod/ handler: hit, stale, or miss, then the bytes.
func (n *Node) serveObject(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		httpError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	p, ok := parseObjectPath(r.URL.EscapedPath())
	if !ok {
		httpError(w, http.StatusNotFound, "not found")
		return
	}
	if !n.guardObject(w, r) {
		return
	}
	key := cacheKey(r.URL.Path, r.URL.RawQuery, n.queryKeys(r.URL.Path))
	out := n.resolve(r, p, key, r.URL.Path)
	if info, ok := r.Context().Value(accessKey{}).(*accessInfo); ok {
		info.cache, info.tier, info.upstream = out.cacheLabel(), out.tier, out.upstream
	}
	n.writeOutcome(w, r, out)
}

// accessKey carries an *accessInfo in a request's context, for the access
// log written when the request ends.
type accessKey struct{}

// accessInfo is what the object handler tells the access log.
type accessInfo struct{ cache, tier, upstream string }

// outcome is what the node decided for one object request: an object to
// send, an upstream answer to relay, or an upstream failure.
type outcome struct {
	obj         *object // sent with 200 (ranges and conditions apply)
	cacheStatus string
	pass        *passResponse // relayed as is
	big         *bigObject    // a large object, sent from its file
	head        *headAnswer   // an upstream's answer to a HEAD, sent without a body
	errCode     int           // an error status: 502 or 504 (the upstream failed, nothing stale to serve), 508, 429
	errMsg      string        // the reason sent with errCode ("upstream unavailable" when empty)
	retryAfter  time.Duration // sent as Retry-After (whole seconds, at least 1) with errCode when set
	tier        string        // where the body came from: memory, disk or upstream (access log)
	upstream    string        // the upstream or sibling fetched from, if any (access log)
	// upstreamCMSD is the CMSD-Dynamic entries of the nodes behind this
	// one, when the answer was fetched for this request (or a request it
	// joined); never kept with an object, since it says how they were at
	// the time.
	upstreamCMSD upstreamAdvice
}

// cacheLabel is the outcome in one word, for the access log: hit, stale,
// miss, pass (an uncached answer relayed) or error.
func (o outcome) cacheLabel() string {
	switch {
	case o.errCode != 0:
		return "error"
	case o.pass != nil:
		return "pass"
	case strings.Contains(o.cacheStatus, "fwd=stale") || strings.Contains(o.cacheStatus, "detail=stale"):
		return "stale"
	case o.cacheStatus == "" || strings.Contains(o.cacheStatus, "; hit"):
		return "hit"
	}
	return "miss"
}

// tlsFailure describes an upstream TLS failure (an untrusted, expired or
// misnamed certificate, a failed handshake), or "" for other errors.
func tlsFailure(err error) string {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
		alert    tls.AlertError
	)
	switch {
	case errors.As(err, &verify):
		return verify.Err.Error()
	case errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid):
		return err.Error()
	case errors.As(err, &record):
		return "the upstream does not speak TLS"
	case errors.As(err, &alert):
		return "TLS alert: " + alert.Error()
	}
	return ""
}

// resolve finds or fetches the object for key, counts the request, and
// starts prefetching or background revalidation as the case needs. r is
// the client's request; the fast path passes nil (a plain GET of path).
func (n *Node) resolve(r *http.Request, p objectPath, key, path string) outcome {
	o, tier := n.lookup(key)
	return n.resolveFound(r, p, key, path, o, tier, r.RemoteAddr)
}

// resolveFound is resolve for a key already looked up: o and tier are what
// the lookup found (o nil on a miss); remote is the client's address.
func (n *Node) resolveFound(r *http.Request, p objectPath, key, path string, o *object, tier, remote string) outcome {
	n.stats.requests.Add(1)
	fromSibling := n.sentBySibling(r)
	now := time.Now()
	switch {
	case o != nil && o.fresh(now):
		n.stats.hits.Add(1)
		n.stats.addServed(tier, len(o.Body))
		n.maybePrefetch(r, p, o)
		return outcome{obj: o, tier: tier} // cacheStatus: a plain hit, see hitStatus
	case o != nil && now.Before(o.Expires.Add(o.SWR)) && !o.NoCache:
		// stale-while-revalidate: serve now, refresh in the background.
		n.stats.stale.Add(1)
		n.stats.addServed(tier, len(o.Body))
		n.revalidateAsync(orPlain(r, path), key, o)
		return outcome{obj: o, tier: tier, cacheStatus: fmt.Sprintf("%s; hit; ttl=%d; detail=stale-while-revalidate", n.cfg.Name, int(o.ttl(now).Seconds()))}
	}
	if o == nil {
		if b, tier := n.lookupBig(key, now); b != nil {
			if tier == "disk" {
				n.stats.hits.Add(1)
				n.stats.addServed(tier, int(b.size))
				return outcome{big: b, tier: "disk", cacheStatus: n.hitStatus(b.meta, now)}
			}
			n.stats.misses.Add(1)
			n.stats.coalesced.Add(1)
			return outcome{big: b, tier: "upstream", cacheStatus: n.cfg.Name + "; fwd=uri-miss; collapsed; detail=streamed"}
		}
	}
	if o == nil {
		if e, ok := n.negative.get(key, now); ok {
			n.stats.hits.Add(1)
			n.stats.addServed(tier, len(e.pass.body))
			return outcome{pass: e.pass, tier: "memory", cacheStatus: n.hitEntry(e.expires.Sub(now))}
		}
	}
	headUp := o == nil && n.forwardsHead(r)
	if headUp {
		if out, ok := n.heldHead(key, now); ok {
			return out
		}
	}
	if r != nil {
		if why := n.loopedThrough(r.Header[loopHeader]); why != "" {
			n.stats.errors.Add(1)
			n.log.Warn("upstream loop", "key", key, "err", why, "cdn_loop", strings.Join(r.Header[loopHeader], ", "))
			return outcome{errCode: http.StatusLoopDetected, errMsg: loopMessage(why),
				cacheStatus: n.cfg.Name + "; fwd=uri-miss; detail=loop-detected"}
		}
	}
	if o == nil && n.missLimit != nil && !fromSibling && !n.fetchRunning(key) {
		if ok, wait := n.missLimit.allow(remote, now); !ok {
			n.missesRefused.Add(1)
			return outcome{errCode: http.StatusTooManyRequests, retryAfter: wait,
				errMsg:      "too many cache misses from this client: try again after Retry-After",
				cacheStatus: n.cfg.Name + "; fwd=uri-miss; detail=client-miss-rate"}
		}
	}
	if headUp && !n.fetchRunning(key) {
		if out, ok := n.headOutcome(r, key, fromSibling); ok {
			return out
		}
	}
	r = orPlain(r, path)
	res, shared, err := n.fetch(r, key, o, fromSibling)
	collapsed := n.noteCollapsed(shared)
	if err != nil {
		n.stats.errors.Add(1)
		if o != nil && now.Before(o.Expires.Add(o.SIE)) {
			// stale-if-error: the upstream failed, the old copy is better than nothing.
			n.stats.stale.Add(1)
			n.stats.addServed(tier, len(o.Body))
			return outcome{obj: o, tier: tier, cacheStatus: fmt.Sprintf("%s; fwd=stale; fwd-status=502; ttl=%d; detail=stale-if-error", n.cfg.Name, int(o.ttl(now).Seconds()))}
		}
		return n.upstreamFailure(key, "uri-miss", err)
	}
	if res.passthrough != nil {
		n.stats.misses.Add(1)
		return outcome{pass: res.passthrough, tier: "upstream", upstream: res.from, upstreamCMSD: res.cmsd, cacheStatus: chainStatus(res.cacheStatus,
			fmt.Sprintf("%s; fwd=uri-miss; fwd-status=%d%s", n.cfg.Name, res.passthrough.status, collapsed))}
	}
	fwd := "uri-miss"
	if o != nil {
		fwd = "stale"
		n.stats.revalidations.Add(1)
	} else {
		n.stats.misses.Add(1)
	}
	if res.big != nil {
		if f := res.big.fill; res.big.keptWhole() && !shared {
			// The next segment once this one is whole, as after a miss
			// read at once: fetched beside it, the two would share a
			// link that is slow already (which is why this one streams),
			// and the player may not want that rendition next.
			n.wg.Go(func() {
				select {
				case <-f.over:
					if f.failed() == nil {
						n.maybePrefetch(r, p, res.big.meta)
					}
				case <-n.ctx.Done():
				}
			})
		}
		n.stats.addServed("upstream", int(max(0, res.big.size)))
		status := fmt.Sprintf("%s; fwd=%s; fwd-status=%d; detail=streamed%s", n.cfg.Name, fwd, res.status, collapsed)
		return outcome{big: res.big, tier: "upstream", upstream: res.from, upstreamCMSD: res.cmsd, cacheStatus: chainStatus(res.cacheStatus, status)}
	}
	n.stats.addServed("upstream", len(res.obj.Body))
	n.maybePrefetch(r, p, res.obj)
	// RFC 9211: "stored" only when this cache kept the response, and a
	// ttl only for what it keeps.
	status := fmt.Sprintf("%s; fwd=%s; fwd-status=%d", n.cfg.Name, fwd, res.status)
	if res.stored {
		status += fmt.Sprintf("; stored; ttl=%d", int(res.obj.ttl(time.Now()).Seconds()))
	} else {
		status += "; detail=not-stored"
	}
	status += collapsed
	return outcome{obj: res.obj, tier: "upstream", upstream: res.from, upstreamCMSD: res.cmsd, cacheStatus: chainStatus(res.cacheStatus, status)}
}

// noteCollapsed counts a request that shared another's upstream fetch
// (shared) and returns what its Cache-Status entry then ends with.
func (n *Node) noteCollapsed(shared bool) string {
	if !shared {
		return ""
	}
	n.stats.coalesced.Add(1)
	return "; collapsed"
}

// upstreamFailure is the answer to a request whose upstream fetch failed
// with err and that has nothing stale to fall back on; fwd is why it
// went upstream (RFC 9211).
func (n *Node) upstreamFailure(key, fwd string, err error) outcome {
	var ue *errUpstream
	code := http.StatusBadGateway
	if errors.As(err, &ue) && ue.timeout || errors.Is(err, context.DeadlineExceeded) {
		code = http.StatusGatewayTimeout
	}
	n.log.Warn("upstream fetch failed", "key", key, "err", err)
	if errors.As(err, &ue) && ue.loop {
		return outcome{errCode: http.StatusLoopDetected, errMsg: loopUpstreamMessage,
			cacheStatus: n.cfg.Name + "; fwd=" + fwd + "; fwd-status=508; detail=loop-detected"}
	}
	if reason := tlsFailure(err); reason != "" {
		return outcome{errCode: http.StatusBadGateway, errMsg: "upstream certificate rejected: " + reason,
			cacheStatus: n.cfg.Name + "; fwd=" + fwd + "; detail=upstream-tls-error"}
	}
	return outcome{errCode: code, cacheStatus: n.cfg.Name + "; fwd=" + fwd + "; detail=upstream-error"}
}

// orPlain returns r, or for the fast path (r nil) a plain GET of path.
func orPlain(r *http.Request, path string) *http.Request {
	if r != nil {
		return r
	}
	return plainRequest(path, "")
}

// plainRequest is a GET of path?query with no headers: what the fast path
// answers, for the code that takes a request.
func plainRequest(path, query string) *http.Request {
	return &http.Request{Method: http.MethodGet, URL: &url.URL{Path: path, RawQuery: query}, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
}

// hitStatus is the Cache-Status of a fresh hit.
func (n *Node) hitStatus(o *object, now time.Time) string { return n.hitEntry(o.ttl(now)) }

// hitEntry is this node's Cache-Status entry for a hit with ttl left.
func (n *Node) hitEntry(ttl time.Duration) string {
	return n.cfg.Name + "; hit; ttl=" + strconv.Itoa(int(ttl.Seconds()))
}

// writeOutcome sends an outcome through net/http.
func (n *Node) writeOutcome(w http.ResponseWriter, r *http.Request, out outcome) {
	switch {
	case out.errCode != 0:
		w.Header().Set("Cache-Status", out.cacheStatus)
		if out.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(max(1, math.Ceil(out.retryAfter.Seconds())))))
		}
		msg := out.errMsg
		if msg == "" {
			msg = "upstream unavailable"
		}
		httpError(w, out.errCode, msg)
	case out.pass != nil:
		h := w.Header()
		for _, k := range passedHeaders {
			if v := out.pass.header.Get(k); v != "" {
				h.Set(k, v)
			}
		}
		if !out.pass.stored.IsZero() {
			h.Set("Age", strconv.Itoa(out.pass.age(time.Now())))
		}
		h.Set("Cache-Status", out.cacheStatus)
		n.adviseIn(h, r, out.upstreamCMSD)
		via := "1.1 " + n.cfg.Name
		if up := strings.Join(out.pass.header.Values("Via"), ", "); up != "" {
			via = up + ", " + via
		}
		h.Set("Via", via)
		h.Set("Content-Length", strconv.Itoa(len(out.pass.body)))
		if v := out.pass.header.Get("Content-Length"); out.pass.head && v != "" {
			h.Set("Content-Length", v)
		}
		w.WriteHeader(out.pass.status)
		if r.Method != http.MethodHead {
			w.Write(out.pass.body)
		}
	case out.big != nil:
		n.respondBig(w, r, out.big, out.cacheStatus, out.upstreamCMSD)
	case out.head != nil:
		n.respondHead(w, r, out)
	default:
		cs := out.cacheStatus
		if cs == "" {
			cs = n.hitStatus(out.obj, time.Now())
		}
		n.respond(w, r, out.obj, cs, out.upstreamCMSD)
	}
}

// chainStatus appends this node's Cache-Status entry to the upstream's
// (RFC 9211: the entry closest to the origin comes first).
func chainStatus(upstream, ours string) string {
	if upstream == "" {
		return ours
	}
	return upstream + ", " + ours
}

// revalidateAsync refreshes a stale object in the background (coalesced).
func (n *Node) revalidateAsync(r *http.Request, key string, o *object) {
	req := r.Clone(context.Background())
	n.wg.Go(func() {
		if _, _, err := n.fetch(req, key, o, n.sentBySibling(req)); err != nil {
			n.log.Warn("background revalidation failed", "key", key, "err", err)
		}
	})
}

// respond writes o with its headers; ranges and conditional requests are
// answered from the whole cached object. The header values that never
// change are built once per object. upstreamCMSD is the CMSD-Dynamic
// entries of the nodes behind when o was fetched for r (none for a hit).
func (n *Node) respond(w http.ResponseWriter, r *http.Request, o *object, cacheStatus string, upstreamCMSD upstreamAdvice) {
	o = o.forClient(r.Header.Values("Accept-Encoding"))
	h := w.Header()
	for k, v := range o.headers(n.via) {
		h[k] = v
	}
	h["Age"] = []string{strconv.Itoa(int(o.age(time.Now()).Seconds()))}
	h["Cache-Status"] = []string{cacheStatus}
	n.adviseIn(h, r, upstreamCMSD)
	if plainGet(r) {
		h["Content-Length"] = o.contentLength
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write(o.Body)
		}
		return
	}
	lm, _ := http.ParseTime(o.LastModified)
	http.ServeContent(writeOnly{w}, r, "", lm, bytes.NewReader(o.Body))
}

// plainGet is a GET or HEAD with no Range and no conditions.
func plainGet(r *http.Request) bool {
	h := r.Header
	return h["Range"] == nil && h["If-None-Match"] == nil && h["If-Modified-Since"] == nil &&
		h["If-Match"] == nil && h["If-Unmodified-Since"] == nil && h["If-Range"] == nil
}

// writeOnly hides io.ReaderFrom: an in-memory body is one buffered write.
type writeOnly struct{ http.ResponseWriter }

var hdrBytes = []string{"bytes"}

// maybePrefetch fetches the next segment of the rendition in the background
// (enter-deep): the one CMCD's nor names, else n+1 (r is nil on the fast
// path for requests with no query, so no CMCD); never past the last
// segment the origin announced; once while the segment is cached; bounded
// concurrency. A nor is followed only when it is a relative reference to a
// segment of the same asset and rendition: the client chooses which
// segment, never which path the edge fetches.
func (n *Node) maybePrefetch(r *http.Request, p objectPath, o *object) {
	if !*n.cfg.Prefetch || p.Kind != "segment" {
		return
	}
	next := p.segmentPath(p.Segment + 1)
	if r != nil { // nil: a fast-path request with no query, so no CMCD
		if np, ok := sameRenditionSegment(r, p, cmcdNextObject(r)); ok {
			next, p = np.segmentPath(np.Segment), np
			p.Segment-- // so the bound below checks the named segment
		}
	}
	if last, err := strconv.Atoi(o.LastSegment); err == nil && p.Segment+1 > last {
		return
	}
	key := next
	if _, ok := n.mem.get(key); ok || n.inflight(key) != nil {
		return
	}
	if !n.prefetched.mark(key) {
		return
	}
	select {
	case n.prefetchSlots <- struct{}{}:
	default:
		n.prefetched.forget(key) // busy: a later request may try again
		return
	}
	req := orPlain(r, next).Clone(context.Background())
	req.URL = &url.URL{Path: next}
	n.wg.Go(func() {
		defer func() { <-n.prefetchSlots }()
		n.stats.prefetches.Add(1)
		res, _, err := n.fetch(req, key, nil, false)
		if err != nil || !res.stored && !res.big.keptWhole() {
			n.prefetched.forget(key)
		}
		if err != nil {
			n.log.Debug("prefetch failed", "key", key, "err", err)
		}
	})
}

// maxNorAhead is how far past the requested segment a CMCD nor may point:
// a player names the next request there, while any farther segment would
// let each cache hit make the node fetch a segment of the client's choice.
const maxNorAhead = 4

// sameRenditionSegment resolves a CMCD nor against the request r for the
// segment p and returns the segment it names, when nor is a relative
// reference (no scheme, no host, no absolute path) to one of the next
// maxNorAhead segments of the same asset and rendition.
func sameRenditionSegment(r *http.Request, p objectPath, nor string) (objectPath, bool) {
	if nor == "" || strings.HasPrefix(nor, "/") || strings.Contains(nor, "\\") {
		return objectPath{}, false
	}
	ref, err := url.Parse(nor)
	if err != nil || ref.Scheme != "" || ref.Host != "" || ref.User != nil {
		return objectPath{}, false
	}
	base := &url.URL{Path: p.segmentPath(p.Segment)}
	if r != nil && r.URL != nil && r.URL.Path != "" {
		base = &url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath}
	}
	u := base.ResolveReference(&url.URL{Path: ref.Path, RawPath: ref.RawPath})
	np, ok := parseObjectPath(u.EscapedPath())
	if !ok || np.Kind != "segment" || np.Asset != p.Asset || np.Rendition != p.Rendition || np.Segment <= p.Segment || np.Segment > p.Segment+maxNorAhead {
		return objectPath{}, false
	}
	return np, true
}

// maxPrefetchMemo bounds the segments remembered as prefetched.
const maxPrefetchMemo = 1 << 16

// prefetchMemo remembers the segments prefetched and still cached, so many
// requests naming the same next segment cause one prefetch. A key is
// forgotten when it leaves the memory tier (so an evicted segment can be
// prefetched again) or its prefetch fails; past its bound the memo starts
// over, which costs at most one more prefetch per segment.
type prefetchMemo struct {
	mu   sync.Mutex
	keys map[string]struct{}
	max  int
}

func newPrefetchMemo(max int) *prefetchMemo {
	return &prefetchMemo{keys: map[string]struct{}{}, max: max}
}

// mark records key and reports whether it was not recorded yet.
func (m *prefetchMemo) mark(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.keys[key]; ok {
		return false
	}
	if len(m.keys) >= m.max {
		clear(m.keys)
	}
	m.keys[key] = struct{}{}
	return true
}

func (m *prefetchMemo) forget(key string) {
	m.mu.Lock()
	delete(m.keys, key)
	m.mu.Unlock()
}

func (m *prefetchMemo) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.keys)
}

// cmcdNextObject returns CMCD's nor (next object request) from the CMCD
// query argument or the CMCD-Request header (CTA-5004): what a player
// will ask for next, even when the rest of its list is malformed.
func cmcdNextObject(r *http.Request) string {
	d, _, _ := cmcd.FromRequest(r.URL.RawQuery, r.Header)
	return d.Next
}
