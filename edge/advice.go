package edge

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deepcast/deepcast/edge/cmcd"
	"github.com/deepcast/deepcast/edge/cmsd"
	"github.com/prometheus/client_golang/prometheus"
)

// What the node tells players (CMSD-Dynamic, CTA-5006) is worked out
// again once per adviceEvery, from the bytes it served since and the
// sessions its viewers' CMCD reports; answers only read the result.
//
// With an egress limit, the node is congested when its egress (smoothed
// over about egressSmoothing) reaches congestedShare of the limit. It is
// then under duress (du), and for the next holdCap it suggests each
// session an equal part of fairShare of the limit (mb). The hold renews
// while the egress stays above holdShare of the limit: players keeping
// to their parts hold it there, so the cap stays while the demand does,
// instead of being lifted the moment it works and the players climbing
// back into the congestion.
//
// A link that is full caps the egress at the limit itself, so the
// smoothed figure only creeps towards it: it crosses congestedShare
// egressSmoothing·ln 10 after the link filled (2.3 s; 6.9 s with the 3-s
// smoothing first used, which let players stall at the start).
const (
	adviceEvery     = time.Second
	egressSmoothing = time.Second
	congestedShare  = 0.9
	holdShare       = 0.75
	fairShare       = 0.9
	holdCap         = 30 * time.Second
)

// AdviceConfig is what an operator sets for the node's CMSD: both zero
// sends none.
type AdviceConfig struct {
	// MaxBitrateKbps caps every viewer's bitrate (video and sound
	// together), in kbit/s: the node always suggests at most this.
	MaxBitrateKbps int64
	// EgressLimit is the node's outgoing capacity in bits/s. Below it the
	// node suggests the limit itself (no viewer gains by more); when its
	// egress nears it, a share per playback session (see above): by the
	// rungs of the ladder each plays with ShareByLadder, else an equal
	// one.
	// Sessions are known from CMCD: with none, the node only says duress.
	EgressLimit float64
	// ShareByLadder splits a congested node's egress by the ladder of
	// what each session plays where the node holds its manifest, instead
	// of in equal parts, whose room between two rungs stays unused (see
	// splitByRungs).
	ShareByLadder bool
}

// Check refuses settings that cannot be advice.
func (c AdviceConfig) Check() error {
	if c.MaxBitrateKbps < 0 {
		return fmt.Errorf("maximum bitrate %d kbit/s: want 0 (none) or more", c.MaxBitrateKbps)
	}
	if c.EgressLimit < 0 || math.IsNaN(c.EgressLimit) || math.IsInf(c.EgressLimit, 0) {
		return fmt.Errorf("egress limit %v bit/s: want 0 (none) or more", c.EgressLimit)
	}
	return nil
}

// advice is one state of what the node tells players; a new one replaces
// it whole.
type advice struct {
	gen   uint64 // changes with value
	entry cmsd.Entry
	value []string // the CMSD-Dynamic field value; nil when off
	line  []byte   // the header line, for the fronts
	// egress is the smoothed egress (bits/s); sessions the sessions the
	// share was worked out for; capping that a share is in force.
	egress   float64
	sessions int
	capping  bool
	byLadder bool // the operator wants shares by the ladder
	// parentKbps is the upstream's suggestion the entry keeps to (0:
	// none in force).
	parentKbps int64
	// shares is each session's own advice while the share follows the
	// ladders (splitByRungs); answers to other sessions carry value.
	shares map[string]*sessionAdvice
}

// sessionAdvice is one session's CMSD-Dynamic.
type sessionAdvice struct {
	entry cmsd.Entry
	value []string
	line  []byte
}

// forSession is the advice for an answer to the request with rawQuery and
// h (nil for none): the session's own when its CMCD sid has one, else
// nil. CMCD is read only while shares are in force.
func (a *advice) forSession(rawQuery string, h http.Header) *sessionAdvice {
	if len(a.shares) == 0 {
		return nil
	}
	d, found, err := cmcd.FromRequest(rawQuery, h)
	if !found || err != nil || d.Session == "" {
		return nil
	}
	return a.shares[d.Session]
}

// withSessionLine is block (a header ending with a's line) with the line
// of the session the request with rawQuery names instead, if it has one.
func (a *advice) withSessionLine(block []byte, rawQuery string) []byte {
	s := a.forSession(rawQuery, nil)
	if s == nil || !bytes.HasSuffix(block, a.line) {
		return block
	}
	return append(bytes.Clone(block[:len(block)-len(a.line)]), s.line...)
}

// adviser keeps the node's advice current: a background loop works it
// out once per adviceEvery (refresh), and answers read the last one.
type adviser struct {
	node string
	cur  atomic.Pointer[advice]

	mu        sync.Mutex
	cfg       AdviceConfig
	lastAt    time.Time
	lastBytes int64
	egress    float64
	holdUntil time.Time
	// parentKbps is the lowest mb in the latest answer from upstream that
	// carried CMSD-Dynamic, kept until parentUntil (see noteParent).
	parentKbps  int64
	parentUntil time.Time
}

// noteParent takes what the upstream's latest answer (a 200 or 304)
// suggested: the lowest mb of its CMSD-Dynamic entries (0 when it
// suggested none). The node's own suggestion keeps to it, on hits too,
// for holdCap after the latest such answer: a player that the node
// tells more than its parent can give would climb to a rendition the
// node does not hold, and its next fetch would load the parent past what
// it asked for. It reports whether the suggestion changed.
func (a *adviser) noteParent(kbps int64, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	was := a.parentKbps
	if !now.Before(a.parentUntil) {
		was = 0
	}
	a.parentKbps, a.parentUntil = kbps, now.Add(holdCap)
	return kbps != was
}

// newAdviser starts at now with nothing served.
func newAdviser(node string, cfg AdviceConfig, now time.Time) *adviser {
	a := &adviser{node: node, cfg: cfg}
	a.cur.Store(&advice{})
	a.publish(a.compute(now, 0, 0, nil))
	return a
}

// refresh works the advice out at now from the bytes served so far and
// the sessions fetching (read only with an egress limit): how many, and
// with ShareByLadder each with its ladder, without the rungs above
// capKbps (the operator's cap, 0 for none).
func (a *adviser) refresh(now time.Time, served int64, sessions func(ladders bool, capKbps int64) (int, []shareSession)) *advice {
	a.mu.Lock()
	defer a.mu.Unlock()
	count, list := 0, []shareSession(nil)
	if a.cfg.EgressLimit > 0 {
		count, list = sessions(a.cfg.ShareByLadder, a.cfg.MaxBitrateKbps)
	}
	return a.publish(a.compute(now, served, count, list))
}

// set replaces the operator's settings; the next refresh applies them. A
// share held for the old egress limit does not carry over to a new one.
func (a *adviser) set(cfg AdviceConfig) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cfg.EgressLimit != a.cfg.EgressLimit {
		a.holdUntil = time.Time{}
	}
	a.cfg = cfg
}

// compute works out the advice at now from the bytes served so far and
// the number of sessions known (list: them, for a split by ladder); a.mu
// is held.
func (a *adviser) compute(now time.Time, served int64, sessions int, list []shareSession) *advice {
	if !a.lastAt.IsZero() {
		if dt := now.Sub(a.lastAt); dt > 0 {
			rate := float64(max(0, served-a.lastBytes)) * 8 / dt.Seconds()
			w := 1 - math.Exp(-dt.Seconds()/egressSmoothing.Seconds())
			a.egress += w * (rate - a.egress)
		}
	}
	a.lastAt, a.lastBytes = now, served
	e := cmsd.Entry{Node: a.node, MaxBitrateKbps: a.cfg.MaxBitrateKbps}
	ad := &advice{egress: a.egress, sessions: sessions, byLadder: a.cfg.ShareByLadder}
	if limit := a.cfg.EgressLimit; limit > 0 {
		switch {
		case a.egress >= congestedShare*limit:
			e.Duress = true
			a.holdUntil = now.Add(holdCap)
		case a.egress >= holdShare*limit && now.Before(a.holdUntil):
			a.holdUntil = now.Add(holdCap)
		}
		suggest := int64(limit / 1000)
		var byRungs map[string]int64
		if now.Before(a.holdUntil) && sessions > 0 {
			suggest = max(1, int64(fairShare*limit/float64(sessions)/1000))
			ad.capping = true
			if a.cfg.ShareByLadder && len(list) > 0 {
				byRungs = splitByRungs(fairShare*limit/1000, list)
			}
		}
		if e.MaxBitrateKbps == 0 || suggest < e.MaxBitrateKbps {
			e.MaxBitrateKbps = suggest
		}
		if len(byRungs) > 0 {
			ad.shares = make(map[string]*sessionAdvice, len(byRungs))
			same := map[int64]*sessionAdvice{} // few rungs: one line each
			for id, mb := range byRungs {
				if a.cfg.MaxBitrateKbps > 0 {
					mb = min(mb, a.cfg.MaxBitrateKbps)
				}
				sa := same[mb]
				if sa == nil {
					sa = newSessionAdvice(e, mb)
					same[mb] = sa
				}
				ad.shares[id] = sa
			}
		}
	}
	if a.parentKbps > 0 && now.Before(a.parentUntil) {
		ad.parentKbps = a.parentKbps
		e.MaxBitrateKbps = lowerCap(e.MaxBitrateKbps, a.parentKbps)
		for id, sa := range ad.shares {
			if mb := lowerCap(sa.entry.MaxBitrateKbps, a.parentKbps); mb != sa.entry.MaxBitrateKbps {
				ad.shares[id] = newSessionAdvice(sa.entry, mb)
			}
		}
	}
	ad.entry = e
	return ad
}

// newSessionAdvice is e told to one session, with mb as its bitrate.
func newSessionAdvice(e cmsd.Entry, mb int64) *sessionAdvice {
	e.MaxBitrateKbps = mb
	v := e.String()
	return &sessionAdvice{entry: e, value: []string{v}, line: appendHeaderLine(nil, cmsd.Header, v)}
}

// lowerCap is the lower of two suggested bitrates, 0 meaning none.
func lowerCap(a, b int64) int64 {
	if a == 0 || (b > 0 && b < a) {
		return b
	}
	return a
}

// publish makes ad the current advice, keeping the last one's header
// (and generation) when it says the same.
func (a *adviser) publish(ad *advice) *advice {
	last := a.cur.Load()
	if ad.entry == last.entry {
		ad.gen, ad.value, ad.line = last.gen, last.value, last.line
	} else {
		ad.gen = last.gen + 1
		if ad.entry.MaxBitrateKbps > 0 || ad.entry.Duress {
			v := ad.entry.String()
			ad.value = []string{v}
			ad.line = appendHeaderLine(nil, cmsd.Header, v)
		}
	}
	a.cur.Store(ad)
	return ad
}

// advice is the node's current CMSD advice.
func (n *Node) advice() *advice { return n.adviser.cur.Load() }

// refreshAdvice works the node's advice out again at now.
func (n *Node) refreshAdvice(now time.Time) *advice {
	return n.adviser.refresh(now, n.stats.servedBytes(), func(ladders bool, capKbps int64) (int, []shareSession) {
		if !ladders {
			// Equal shares need only the count.
			return len(n.sharingSessions(now)), nil
		}
		list := n.shareSessions(now, capKbps)
		return len(list), list
	})
}

// sharingSessions lists the sessions that share the node's egress, each
// once: its own viewers, and those of the nodes below it whose misses it
// served (relayed). A bring-home shield has few viewers of its own, and
// without the others an egress limit could only make it say duress.
func (n *Node) sharingSessions(now time.Time) []cmcd.Session {
	list := n.viewers.Sessions(now, activeWithin)
	more := n.relayed.Sessions(now, activeWithin)
	if len(more) == 0 {
		return list
	}
	seen := make(map[string]bool, len(list))
	for _, s := range list {
		seen[s.ID] = true
	}
	for _, s := range more {
		if !seen[s.ID] {
			list = append(list, s)
		}
	}
	return list
}

// runAdviser refreshes the advice every adviceEvery until ctx ends.
func (n *Node) runAdviser(ctx context.Context) {
	t := time.NewTicker(adviceEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			n.refreshAdvice(now)
		}
	}
}

// activeWithin is how recently a session must have asked for something to
// take a share of the egress: a player with a full buffer still asks for
// a segment every segment's duration, one that left or paused stops.
const activeWithin = 15 * time.Second

// AdviceStats is the advice in /api/stats.
type AdviceStats struct {
	// Header is the CMSD-Dynamic the node sends ("" for none).
	Header string `json:"header"`
	// MaxBitrateKbps is the bitrate it suggests (mb; 0 for none); Duress
	// whether it says du.
	MaxBitrateKbps int64 `json:"maxBitrateKbps"`
	Duress         bool  `json:"duress"`
	// Capping is whether a fair share of the egress limit is in force,
	// worked out for Sessions sessions; ByLadder of them were each told
	// their own bitrate, from the ladder of what they play.
	Capping  bool `json:"capping"`
	Sessions int  `json:"sessions"`
	ByLadder int  `json:"byLadder"`
	// ShareByLadder is whether the operator asked for shares by the
	// ladder (-cmsd-share ladder), not equal ones.
	ShareByLadder bool `json:"shareByLadder"`
	// EgressBitsPerSecond is the node's egress, smoothed over about a
	// second, as the advice last read it.
	EgressBitsPerSecond float64 `json:"egressBitsPerSecond"`
	// ParentMaxBitrateKbps is the upstream's latest suggestion, which
	// MaxBitrateKbps keeps to (0: none in force).
	ParentMaxBitrateKbps int64 `json:"parentMaxBitrateKbps"`
}

func (a *advice) stats() AdviceStats {
	s := AdviceStats{MaxBitrateKbps: a.entry.MaxBitrateKbps, Duress: a.entry.Duress, Capping: a.capping, Sessions: a.sessions,
		ByLadder: len(a.shares), ShareByLadder: a.byLadder, EgressBitsPerSecond: a.egress,
		ParentMaxBitrateKbps: a.parentKbps}
	if a.value != nil {
		s.Header = a.value[0]
	}
	return s
}

// registerAdviceMetrics adds the advice's series to reg.
func registerAdviceMetrics(reg *prometheus.Registry, n *Node) {
	mb := prometheus.NewDesc("deepcast_edge_cmsd_max_bitrate_kbps", "The bitrate the node suggests to players (CMSD mb), in kbit/s; 0 when it suggests none.", nil, nil)
	du := prometheus.NewDesc("deepcast_edge_cmsd_duress", "1 while the node tells players it is under duress (CMSD du): its egress near its limit.", nil, nil)
	capping := prometheus.NewDesc("deepcast_edge_cmsd_capping", "1 while the node suggests each session a fair share of its egress limit.", nil, nil)
	egress := prometheus.NewDesc("deepcast_edge_egress_bits_per_second", "The node's egress as its advice reads it (bytes answered, smoothed over about a second).", nil, nil)
	reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) {
		s := n.advice().stats()
		ch <- prometheus.MustNewConstMetric(mb, prometheus.GaugeValue, float64(s.MaxBitrateKbps))
		ch <- prometheus.MustNewConstMetric(du, prometheus.GaugeValue, boolValue(s.Duress))
		ch <- prometheus.MustNewConstMetric(capping, prometheus.GaugeValue, boolValue(s.Capping))
		ch <- prometheus.MustNewConstMetric(egress, prometheus.GaugeValue, s.EgressBitsPerSecond)
	}, mb, du, capping, egress))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// adviseIn adds CMSD-Dynamic to the header h of an answer to r: the
// entries of the nodes behind this one when the answer was fetched from
// them for r (upstream; none for an answer from the cache), then the
// node's own if it has something to say (the session's own, when it has
// one).
func (n *Node) adviseIn(h http.Header, r *http.Request, upstream upstreamAdvice) {
	a := n.advice()
	s := a.forSession(r.URL.RawQuery, r.Header)
	switch {
	case upstream.value != "":
		h[cmsdKey] = []string{a.withUpstream(s, upstream)}
	case s != nil:
		h[cmsdKey] = s.value
	case a.value != nil:
		h[cmsdKey] = a.value
	}
}

// withUpstream is the CMSD-Dynamic value of an answer fetched from
// upstream: the upstream's entries as they came (see readUpstreamAdvice), then
// the node's own (s's when the session has one), its mb lowered to the
// lowest any of them suggests. A player that reads only the nearest entry,
// as dash.js does, so keeps to what the whole path can give while its
// requests load the nodes behind; a hit, which loads only this node,
// carries this node's advice alone. A node with nothing of its own to say
// adds no entry and passes the others on.
func (a *advice) withUpstream(s *sessionAdvice, upstream upstreamAdvice) string {
	own, ok := a.entry, a.value != nil
	if s != nil {
		own, ok = s.entry, true
	}
	if !ok {
		return upstream.value
	}
	own.MaxBitrateKbps = lowerCap(own.MaxBitrateKbps, upstream.kbps)
	return string(own.Append([]byte(upstream.value + ", ")))
}

// upstreamAdvice is the CMSD-Dynamic of an upstream's answer, read once
// per fetch for every answer that passes it on.
type upstreamAdvice struct {
	value string // the field, checked ("": none to pass on)
	kbps  int64  // the lowest mb of its entries (0: none suggests one)
}

// maxUpstreamAdvice bounds the CMSD-Dynamic a node passes on: a few
// entries of a few keys each; longer is no parent of ours.
const maxUpstreamAdvice = 1024

// readUpstreamAdvice reads the CMSD-Dynamic of an upstream's answer h, to
// pass on to the client of that fetch: none when there is none, when it is
// not a Structured Field list of entries, or when it is too long.
func readUpstreamAdvice(h http.Header) upstreamAdvice {
	vs := h[cmsdKey]
	if len(vs) == 0 {
		return upstreamAdvice{}
	}
	lines := make([]string, 0, len(vs))
	for _, l := range vs {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	v := strings.Join(lines, ", ")
	if len(v) > maxUpstreamAdvice {
		return upstreamAdvice{}
	}
	entries, err := cmsd.Parse(v)
	if err != nil || len(entries) == 0 {
		return upstreamAdvice{}
	}
	up := upstreamAdvice{value: v}
	for _, e := range entries {
		up.kbps = lowerCap(up.kbps, e.MaxBitrateKbps)
	}
	return up
}

// cmsdKey is cmsd.Header as net/http keys it.
var cmsdKey = http.CanonicalHeaderKey(cmsd.Header)

// SetAdvice replaces what the node tells players through CMSD (a reload);
// settings it refuses change nothing.
func (n *Node) SetAdvice(cfg AdviceConfig) error {
	if err := cfg.Check(); err != nil {
		return err
	}
	n.adviser.set(cfg)
	n.refreshAdvice(time.Now()) // the next answer carries it
	return nil
}
