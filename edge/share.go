package edge

import (
	"cmp"
	"container/heap"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/deepcast/deepcast/manifest"
)

// A node that splits its egress in equal parts wastes a coarse ladder:
// four viewers on a 4 Mbit/s node are each told 900 kbit/s, which holds
// only the 350k rendition of a 350k/1000k/2000k ladder, and half the link
// stays unused. Knowing each session's ladder (from the manifest of the
// asset it fetches, which the node caches), a node asked to (ShareByLadder;
// not the default, since no bench has shown viewers gain by it) instead
// raises sessions rung by rung, the lowest first, while the sum fits the
// budget: two at 1000k and two at 350k in that example. Each session is
// then told its own bitrate, on the answers that carry its CMCD session
// id.
//
// The split is max-min fair over the rungs: no session is raised while
// another sits lower and could be. What is left between rungs goes to the
// sessions already taking the higher rung (no switch), then by session
// id; so it is not shared out over time, which would cost every viewer
// switches to gain a fairness no one sees.
//
// While any session reports (CMCD bl) less buffer than raiseBuffer, the
// split stays equal. A session raised above its equal part counts on the
// others leaving the link idle between their downloads; one still filling
// its buffer (starting, or back from a stall) leaves none, and the first
// bench of the split by ladder had the sessions that joined last stall
// twice as long as with equal parts, while the one that came first kept
// 1000k.
const raiseBuffer = 10 * time.Second // about the buffer players aim for: Shaka 10 s, dash.js 12 s

// rungLadder is the bitrates a session can take: each rung's video
// bitrate and its total with the presentation's most demanding sound,
// kbit/s, lowest first.
type rungLadder struct {
	video []int64
	total []int64
}

// newRungLadder turns an MPD's bitrates into rungs, leaving out those
// above capKbps (0: none) but the lowest.
func newRungLadder(b manifest.Bitrates, capKbps int64) *rungLadder {
	audio := 0
	if len(b.Audio) > 0 {
		audio = b.Audio[len(b.Audio)-1]
	}
	l := &rungLadder{}
	for i, v := range b.Video {
		total := ceilKbps(v + audio)
		if i > 0 && capKbps > 0 && total > capKbps {
			break
		}
		// What a player reports in CMCD br: the bandwidth rounded.
		l.video = append(l.video, int64(math.Round(float64(v)/1000)))
		l.total = append(l.total, total)
	}
	return l
}

func ceilKbps(bps int) int64 { return (int64(bps) + 999) / 1000 }

// shareSession is a playback session among which a node splits its
// egress.
type shareSession struct {
	id     string
	ladder *rungLadder // nil: not known
	taking int64       // the video bitrate it last took (CMCD br), kbit/s; -1: not known
	buffer int64       // the buffer it last reported (CMCD bl), ms; -1: not known
}

// splitByRungs gives each session whose ladder is known a bitrate, kbit/s
// with its sound, so that the sum with an equal share for each of the
// others stays within budget. It returns nil when no session's ladder is
// known, when the lowest rungs alone do not fit, or when a session is
// short of buffer: every session then gets the equal share.
func splitByRungs(budget float64, sessions []shareSession) map[string]int64 {
	if len(sessions) == 0 {
		return nil
	}
	for _, s := range sessions {
		if s.buffer >= 0 && s.buffer < raiseBuffer.Milliseconds() {
			return nil
		}
	}
	equal := budget / float64(len(sessions))
	left := budget
	var climbing rungHeap
	for i := range sessions {
		s := &sessions[i]
		if s.ladder == nil || len(s.ladder.total) == 0 {
			left -= equal
			continue
		}
		left -= float64(s.ladder.total[0])
		climbing = append(climbing, &climber{s: s})
	}
	if len(climbing) == 0 || left < 0 {
		return nil
	}
	all := slices.Clone(climbing)
	heap.Init(&climbing)
	for climbing.Len() > 0 {
		c := climbing[0]
		l := c.s.ladder
		if c.rung+1 >= len(l.total) || float64(l.total[c.rung+1]-l.total[c.rung]) > left {
			// At its top, or its next rung does not fit: what is left
			// only shrinks, so it never will.
			heap.Pop(&climbing)
			continue
		}
		left -= float64(l.total[c.rung+1] - l.total[c.rung])
		c.rung++
		heap.Fix(&climbing, 0)
	}
	out := make(map[string]int64, len(all))
	for _, c := range all {
		out[c.s.id] = c.s.ladder.total[c.rung]
	}
	return out
}

// climber is a session being raised: rung is the one it has reached.
type climber struct {
	s    *shareSession
	rung int
}

// rungHeap orders climbers lowest total first; among equals, those taking
// their next rung already, then by session id.
type rungHeap []*climber

func (h rungHeap) Len() int { return len(h) }
func (h rungHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if ta, tb := a.s.ladder.total[a.rung], b.s.ladder.total[b.rung]; ta != tb {
		return ta < tb
	}
	if sa, sb := a.takingNext(), b.takingNext(); sa != sb {
		return sa
	}
	return cmp.Less(a.s.id, b.s.id)
}
func (h rungHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *rungHeap) Push(x any)   { *h = append(*h, x.(*climber)) }
func (h *rungHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}

// takingNext reports whether the session already takes its next rung (a
// rounding of one kbit/s either way allowed).
func (c *climber) takingNext() bool {
	l := c.s.ladder
	return c.rung+1 < len(l.video) && c.s.taking >= l.video[c.rung+1]-1
}

// ladders keeps the bitrates of the assets sessions play, read from the
// MPDs the node caches: again only when the cached MPD changes.
type ladders struct {
	mu      sync.Mutex
	byAsset map[string]*ladderMemo
}

// ladderMemo is an asset's bitrates as read from the cached MPD obj.
type ladderMemo struct {
	obj      *object
	bitrates *manifest.Bitrates // nil: the MPD could not be read
	seen     time.Time
}

// ladderIdle is how long an asset no session plays keeps its ladder.
const ladderIdle = time.Minute

// shareSessions lists the sessions fetching at now with the ladders of
// what they play, without the rungs above capKbps (0: none). A session
// whose asset's manifest the node does not hold in memory has no ladder.
func (n *Node) shareSessions(now time.Time, capKbps int64) []shareSession {
	list := n.sharingSessions(now)
	out := make([]shareSession, len(list))
	rungs := map[string]*rungLadder{}
	n.ladders.mu.Lock()
	defer n.ladders.mu.Unlock()
	for i, s := range list {
		out[i] = shareSession{id: s.ID, taking: s.BitrateKbps, buffer: s.BufferMs}
		if s.Asset == "" {
			continue
		}
		l, done := rungs[s.Asset]
		if !done {
			if b := n.bitratesOf(s.Asset, now); b != nil {
				l = newRungLadder(*b, capKbps)
			}
			rungs[s.Asset] = l
		}
		out[i].ladder = l
	}
	for asset, m := range n.ladders.byAsset {
		if now.Sub(m.seen) > ladderIdle {
			delete(n.ladders.byAsset, asset)
		}
	}
	return out
}

// bitratesOf is asset's ladder from its MPD in the memory tier, else from
// its HLS multivariant playlist (for an asset only hls.js plays), nil when
// the node has neither or cannot read it; n.ladders.mu is held.
func (n *Node) bitratesOf(asset string, now time.Time) *manifest.Bitrates {
	read := manifest.ReadBitrates
	o, _ := n.mem.get("/vod/" + asset + "/manifest.mpd")
	if o == nil || o.encoding != "" {
		read = manifest.ReadHLSBitrates
		if o, _ = n.mem.get("/vod/" + asset + "/master.m3u8"); o == nil || o.encoding != "" {
			return nil
		}
	}
	if n.ladders.byAsset == nil {
		n.ladders.byAsset = map[string]*ladderMemo{}
	}
	m := n.ladders.byAsset[asset]
	if m == nil || m.obj != o {
		m = &ladderMemo{obj: o}
		if b, err := read(o.Body); err == nil {
			m.bitrates = &b
		} else {
			n.log.Debug("no ladder for the fair share", "asset", asset, "err", err)
		}
		n.ladders.byAsset[asset] = m
	}
	m.seen = now
	return m.bitrates
}
