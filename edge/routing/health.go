package routing

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Hysteresis of edge health: down after this many failed checks in a row,
// up after this many good ones.
const (
	downAfter = 2
	upAfter   = 2
)

// EdgeState is an edge with what the last checks found.
type EdgeState struct {
	*Edge
	mu       sync.Mutex
	up       bool
	fails    int
	oks      int
	load     float64 // requests per second, from /api/stats
	hitRatio float64
	lastReq  int64
	lastAt   time.Time
}

// Up reports whether the edge takes new viewers.
func (s *EdgeState) Up() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.up
}

// Load is the edge's request rate per unit of weight.
func (s *EdgeState) Load() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.load / float64(s.Weight)
}

// Monitor polls every edge's /healthz (its health) and /api/stats (its
// load, when the edge lets the router read it).
type Monitor struct {
	Edges  []*EdgeState
	client *http.Client
	every  time.Duration
	log    *slog.Logger
	// OnChange is called when an edge goes up or down.
	OnChange func(e *EdgeState, up bool)
	// StatsToken is sent as a bearer token for /api/stats.
	StatsToken string
}

// NewMonitor watches edges; all start up (a router must answer at once) and
// the first failed checks take dead ones out.
func NewMonitor(edges []*Edge, every time.Duration, log *slog.Logger) *Monitor {
	// Half an interval per probe, and a failed probe checked again at
	// once (see Run): a dead edge is out within two intervals.
	m := &Monitor{client: &http.Client{Timeout: max(every/2, 100*time.Millisecond)}, every: every, log: log}
	for _, e := range edges {
		m.Edges = append(m.Edges, &EdgeState{Edge: e, up: true})
	}
	return m
}

// Run checks every interval until ctx ends.
func (m *Monitor) Run(ctx context.Context) {
	t := time.NewTicker(m.every)
	defer t.Stop()
	m.CheckAll(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.CheckAll(ctx)
		}
	}
}

// CheckAll checks every edge once, in parallel. A check that disagrees
// with an edge's state (fails on one that is up, passes on one that is
// down) is repeated at once, so a change takes two checks in a row but
// not two intervals, and no edge waits for another's check.
func (m *Monitor) CheckAll(ctx context.Context) {
	var wg sync.WaitGroup
	for _, e := range m.Edges {
		wg.Go(func() {
			if m.check(ctx, e) != e.Up() && ctx.Err() == nil {
				m.check(ctx, e)
			}
		})
	}
	wg.Wait()
}

type edgeStats struct {
	Requests int64   `json:"requests"`
	HitRatio float64 `json:"hitRatio"`
}

// check checks e once and reports whether it passed.
func (m *Monitor) check(ctx context.Context, e *EdgeState) bool {
	err := m.get(ctx, e.URL.String()+"/healthz", nil)
	var st edgeStats
	statsOK := false
	if err == nil && e.Up() {
		// Stats only weigh an edge that is up; a recovering one is judged
		// by /healthz alone, so its checks stay quick.
		// Stats only weigh the edge; an edge that keeps them private (a
		// public listener without the router's token) is still up.
		statsOK = m.get(ctx, e.URL.String()+"/api/stats", &st) == nil
	}
	now := time.Now()
	e.mu.Lock()
	changed := false
	if err != nil {
		e.oks = 0
		e.fails++
		if e.up && e.fails >= downAfter {
			e.up, changed = false, true
		}
	} else {
		e.fails = 0
		e.oks++
		if !e.up && e.oks >= upAfter {
			e.up, changed = true, true
		}
		if statsOK {
			if !e.lastAt.IsZero() && st.Requests >= e.lastReq {
				e.load = float64(st.Requests-e.lastReq) / now.Sub(e.lastAt).Seconds()
			}
			e.lastReq, e.lastAt, e.hitRatio = st.Requests, now, st.HitRatio
		}
	}
	up := e.up
	e.mu.Unlock()
	if changed {
		m.log.Info("edge health changed", "edge", e.Name, "up", up, "err", err)
		if m.OnChange != nil {
			m.OnChange(e, up)
		}
	}
	return err == nil
}

func (m *Monitor) get(ctx context.Context, url string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if into != nil && m.StatsToken != "" {
		req.Header.Set("Authorization", "Bearer "+m.StatsToken)
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	if into == nil {
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return err
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(into)
}

// Healthy returns the edges that are up.
func (m *Monitor) Healthy() []*EdgeState {
	var out []*EdgeState
	for _, e := range m.Edges {
		if e.Up() {
			out = append(out, e)
		}
	}
	return out
}
