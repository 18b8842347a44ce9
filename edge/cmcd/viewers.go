package cmcd

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Viewers keeps, for each playback session (sid) seen within a window,
// the last state it reported: what a node's operator wants to know of
// the people it serves right now (how many, how much buffer they hold,
// which bitrate they get, who stalled). Its memory is bounded: sessions
// past Max are counted but not kept.
type Viewers struct {
	// Window is how long a session that sent nothing more is counted.
	Window time.Duration
	// Max bounds the sessions kept.
	Max int
	// PerClient bounds the sessions kept from one client (ObserveFrom), 0
	// for no bound: one address that makes up session ids cannot pass
	// for a crowd, whose number divides a node's egress into shares.
	PerClient int

	mu        sync.Mutex
	sessions  map[string]*viewer
	perClient map[netip.Prefix]int
	lastSweep time.Time
	untracked int64
}

// viewer is one session's last report.
type viewer struct {
	seen    time.Time
	starved time.Time // last report of a starvation; zero: none
	buffer  int64     // bl of its last media request, ms (-1: none)
	bitrate int64     // br of its last video request, kbit/s (-1: none)
	live    bool
	client  netip.Prefix // who first reported it (invalid: unknown)
	asset   string       // what it last asked for a part of ("": not known)
}

// maxSession is the longest session id kept (CTA-5004 allows 64
// characters): a longer one is not a player's, and would let a client
// make each entry weigh more.
const maxSession = 64

// NewViewers keeps up to max sessions for window each.
func NewViewers(window time.Duration, max int) *Viewers {
	return &Viewers{Window: window, Max: max, sessions: map[string]*viewer{}, perClient: map[netip.Prefix]int{}}
}

// ObserveFrom records a request's data at now from client (an address or
// a /64; invalid when not known, which no PerClient bound applies to) for
// a part of asset (the presentation it plays; "": not known, which keeps
// the last one known).
// Requests without a session id, or with one longer than CTA-5004 allows,
// count nowhere here (the node's counters take them); a new session past
// Max, or past PerClient of its client's, is counted as untracked.
func (v *Viewers) ObserveFrom(d *Data, client netip.Prefix, asset string, now time.Time) {
	if d.Session == "" || len(d.Session) > maxSession {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	s := v.sessions[d.Session]
	if s == nil {
		if len(v.sessions) >= v.Max || v.full(client) {
			v.sweep(now)
		}
		if len(v.sessions) >= v.Max || v.full(client) {
			v.untracked++
			return
		}
		s = &viewer{buffer: -1, bitrate: -1, client: client}
		// A copy: the id is a slice of the whole list it came in.
		v.sessions[strings.Clone(d.Session)] = s
		if client.IsValid() {
			v.perClient[client]++
		}
	}
	s.seen = now
	if asset != "" && asset != s.asset {
		s.asset = strings.Clone(asset) // a copy: it is a slice of the request's path
	}
	if d.Starved {
		s.starved = now
	}
	if d.StreamType != "" {
		s.live = d.StreamType == "l"
	}
	switch d.Object {
	case "v", "av", "":
		// Video (or a player that does not say): its buffer is the one
		// that stalls playback, its bitrate the picture's.
		if d.Buffer >= 0 {
			s.buffer = d.Buffer
		}
		if d.Bitrate >= 0 && d.Object != "" {
			s.bitrate = d.Bitrate
		}
	case "a":
		if d.Buffer >= 0 && s.buffer < 0 {
			s.buffer = d.Buffer // a sound-only session's
		}
	}
}

// sweep forgets the sessions past the window, at most once a second (a
// flood of new session ids must not make every request walk the map).
func (v *Viewers) sweep(now time.Time) {
	if now.Sub(v.lastSweep) < time.Second {
		return
	}
	v.lastSweep = now
	v.forget(now)
}

// full reports whether client has as many sessions as PerClient allows.
func (v *Viewers) full(client netip.Prefix) bool {
	return v.PerClient > 0 && client.IsValid() && v.perClient[client] >= v.PerClient
}

// forget drops the sessions past the window.
func (v *Viewers) forget(now time.Time) {
	for id, s := range v.sessions {
		if now.Sub(s.seen) > v.Window {
			delete(v.sessions, id)
			if s.client.IsValid() {
				if v.perClient[s.client]--; v.perClient[s.client] <= 0 {
					delete(v.perClient, s.client)
				}
			}
		}
	}
}

// Active counts the sessions that asked for something within the last
// within (at most the window) at now: the players fetching now, whose
// shares of a link are worked out from their number.
func (v *Viewers) Active(now time.Time, within time.Duration) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, s := range v.sessions {
		if now.Sub(s.seen) <= within {
			n++
		}
	}
	return n
}

// Session is what a node needs of a session to give it a share of its
// egress.
type Session struct {
	ID string
	// Asset is what it last asked for a part of ("": not known).
	Asset string
	// BitrateKbps is the video bitrate (br) of its last request for
	// video, -1 when it reported none.
	BitrateKbps int64
	// BufferMs is the buffer (bl) of its last media request, ms, -1 when
	// it reported none.
	BufferMs int64
}

// Sessions lists the sessions that asked for something within the last
// within (at most the window) at now, in no order.
func (v *Viewers) Sessions(now time.Time, within time.Duration) []Session {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []Session
	for id, s := range v.sessions {
		if now.Sub(s.seen) <= within {
			out = append(out, Session{ID: id, Asset: s.asset, BitrateKbps: s.bitrate, BufferMs: s.buffer})
		}
	}
	return out
}

// Summary is the viewers of a node within the window, as /api/stats
// reports them.
type Summary struct {
	// Sessions reported within the window; Live of them live streams.
	Sessions int `json:"sessions"`
	Live     int `json:"live"`
	// Starved is how many of them reported a stall within the window.
	Starved int `json:"starved"`
	// BufferMedianSeconds is the median of each session's last reported
	// buffer, -1 when none reported one.
	BufferMedianSeconds float64 `json:"bufferMedianSeconds"`
	// BufferMinSeconds is the lowest of them: the viewer nearest a stall.
	BufferMinSeconds float64 `json:"bufferMinSeconds"`
	// BitrateMeanKbps is the mean of each session's last video bitrate,
	// -1 when none reported one.
	BitrateMeanKbps float64 `json:"bitrateMeanKbps"`
	// Untracked counts session ids not kept because Max were.
	Untracked int64 `json:"untracked"`
}

// Summary reads the sessions at now, forgetting those past the window.
func (v *Viewers) Summary(now time.Time) Summary {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.forget(now)
	sum := Summary{Sessions: len(v.sessions), BufferMedianSeconds: -1, BufferMinSeconds: -1, BitrateMeanKbps: -1, Untracked: v.untracked}
	var buffers []int64
	var rate float64
	rated := 0
	for _, s := range v.sessions {
		if s.live {
			sum.Live++
		}
		if !s.starved.IsZero() && now.Sub(s.starved) <= v.Window {
			sum.Starved++
		}
		if s.buffer >= 0 {
			buffers = append(buffers, s.buffer)
		}
		if s.bitrate >= 0 {
			rate += float64(s.bitrate)
			rated++
		}
	}
	if len(buffers) > 0 {
		slices.Sort(buffers)
		m := len(buffers) / 2
		med := float64(buffers[m])
		if len(buffers)%2 == 0 {
			med = float64(buffers[m-1]+buffers[m]) / 2
		}
		sum.BufferMedianSeconds = med / 1000
		sum.BufferMinSeconds = float64(buffers[0]) / 1000
	}
	if rated > 0 {
		sum.BitrateMeanKbps = rate / float64(rated)
	}
	return sum
}
