package edge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// upstream is one parent (an origin or a bring-home edge) with its health.
type upstream struct {
	url     *url.URL
	weight  float64 // in a weighted pool
	healthy atomic.Bool
	fails   atomic.Int32 // consecutive failures (active and passive)
}

// upstreamPool chooses among upstreams: active-standby, the first healthy
// one wins. Health is checked actively (GET /healthz every interval) and
// passively (a failed fetch counts); an upstream is down after two
// consecutive failures and up again after one success, so a dead primary
// loses its traffic within two check intervals.
type upstreamPool struct {
	// current is the list in order; replace swaps it whole (a reload), so
	// readers take one consistent list.
	current atomic.Pointer[[]*upstream]
	// weighted: each key goes to the healthy upstream weighted
	// rendezvous hashing picks (SetUpstreamPool); else active-standby.
	weighted atomic.Bool
	client   *http.Client
	every    time.Duration
	log      *slog.Logger
}

// downAfter is how many consecutive failures take an upstream out.
const downAfter = 2

func newUpstreamPool(urls []string, client *http.Client, every time.Duration, log *slog.Logger) (*upstreamPool, error) {
	if len(urls) == 0 {
		return nil, errors.New("edge: at least one upstream is required")
	}
	p := &upstreamPool{client: client, every: every, log: log}
	if err := p.replace(urls); err != nil {
		return nil, err
	}
	return p, nil
}

// list is the upstreams now, in configured order.
func (p *upstreamPool) list() []*upstream { return *p.current.Load() }

// replace makes urls the upstreams, in that order, all or nothing: an
// upstream that stays keeps its health, a new one starts healthy (until a
// check says otherwise).
func (p *upstreamPool) replace(urls []string) error { return p.replaceWeighted(urls, nil) }

// replaceWeighted is replace for a weighted pool (weights nil: an
// active-standby list).
func (p *upstreamPool) replaceWeighted(urls []string, weights []float64) error {
	if len(urls) == 0 {
		return errors.New("edge: at least one upstream is required")
	}
	old := map[string]*upstream{}
	if cur := p.current.Load(); cur != nil {
		for _, u := range *cur {
			old[u.url.String()] = u
		}
	}
	var next []*upstream
	for _, raw := range urls {
		u, err := parseUpstreamURL(raw)
		if err != nil {
			return err
		}
		w := 1.0
		if weights != nil {
			w = weights[len(next)]
		}
		prev, had := old[u.String()]
		if had && prev.weight == w {
			next = append(next, prev)
			continue
		}
		up := &upstream{url: u, weight: w}
		up.healthy.Store(!had || prev.healthy.Load()) // a new one: healthy until a check says otherwise
		next = append(next, up)
	}
	p.weighted.Store(weights != nil)
	p.current.Store(&next)
	return nil
}

// parseUpstreamURL reads an upstream: http(s)://[user:password@]host[:port][/path].
// A request's path is appended to it, so a query or fragment, which would
// end up in the middle of every URL, is refused.
func parseUpstreamURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(raw), "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("edge: upstream %q: want an http(s)://host[:port] URL, with no query or fragment", RedactURL(raw))
	}
	return u, nil
}

// String is the upstream's URL for logs and /api/stats: a password in it
// (sent as HTTP Basic authentication) shows as xxxxx.
func (u *upstream) String() string { return u.url.Redacted() }

// RedactURL is raw with the password of its user information, if any,
// shown as xxxxx: what logs may print of an upstream URL.
func RedactURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		if strings.Contains(raw, "@") {
			return "(an unreadable URL with user information)"
		}
		return raw
	}
	return u.Redacted()
}

// order returns the upstreams to try: healthy ones first, in configured order.
func (p *upstreamPool) order(key string) []*upstream {
	list := p.list()
	out := make([]*upstream, 0, len(list))
	for _, u := range list {
		if u.healthy.Load() {
			out = append(out, u)
		}
	}
	if p.weighted.Load() && len(out) > 1 {
		// Weighted rendezvous: the key's upstream first, the next best as
		// the fallback; a dead upstream's keys spread over the others.
		scores := make(map[*upstream]float64, len(out))
		for _, u := range out {
			scores[u] = hrwScore(key, u.url.String(), u.weight)
		}
		slices.SortStableFunc(out, func(a, b *upstream) int { return cmp.Compare(scores[b], scores[a]) })
	}
	for _, u := range list {
		if !u.healthy.Load() {
			out = append(out, u)
		}
	}
	return out
}

func (p *upstreamPool) markFailure(u *upstream, why error) {
	if u.fails.Add(1) >= downAfter && u.healthy.Swap(false) {
		p.log.Warn("upstream down", "upstream", u.String(), "err", why)
	}
}

func (p *upstreamPool) markSuccess(u *upstream) {
	u.fails.Store(0)
	if !u.healthy.Swap(true) {
		p.log.Info("upstream up", "upstream", u.String())
	}
}

// check probes every upstream's /healthz once, in parallel; a probe that
// fails on an upstream that is still up is repeated at once (one more
// failure takes it out), so a dead upstream is out within two intervals:
// the wait for a tick, then two probes of at most half an interval each.
func (p *upstreamPool) check(ctx context.Context) {
	var wg sync.WaitGroup
	for _, u := range p.list() {
		wg.Go(func() {
			if !p.probe(ctx, u) && u.healthy.Load() && ctx.Err() == nil {
				p.probe(ctx, u)
			}
		})
	}
	wg.Wait()
}

// probe checks u's /healthz once and records the outcome.
func (p *upstreamPool) probe(ctx context.Context, u *upstream) bool {
	// Half an interval: a probe that hangs (a partition) fails in time
	// for the recheck.
	cctx, cancel := context.WithTimeout(ctx, max(p.every/2, 100*time.Millisecond))
	defer cancel()
	req, _ := http.NewRequestWithContext(cctx, http.MethodGet, u.url.String()+"/healthz", nil)
	resp, err := p.client.Do(req)
	if err == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("healthz: %s", resp.Status)
		}
	}
	if err != nil {
		p.markFailure(u, err)
		return false
	}
	p.markSuccess(u)
	return true
}

// run checks health every interval until ctx ends.
func (p *upstreamPool) run(ctx context.Context) {
	t := time.NewTicker(p.every)
	defer t.Stop()
	p.check(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.check(ctx)
		}
	}
}

// UpstreamHealth is one upstream in /api/stats.
type UpstreamHealth struct {
	URL     string `json:"url"`
	Healthy bool   `json:"healthy"`
}

func (p *upstreamPool) health() []UpstreamHealth {
	list := p.list()
	out := make([]UpstreamHealth, len(list))
	for i, u := range list {
		out[i] = UpstreamHealth{URL: u.String(), Healthy: u.healthy.Load()}
	}
	return out
}
