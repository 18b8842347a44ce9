package edge

import (
	"net/http"
	"strings"
	"time"

	"github.com/deepcast/deepcast/edge/cmcd"
	"github.com/prometheus/client_golang/prometheus"
)

// viewerWindow is how long a playback session that sent nothing more
// still counts as watching; maxViewers bounds the sessions a node keeps
// (some 200 bytes each), maxViewersPerClient those of one client (an
// address, an IPv6 /64): enough for a household or an office, while a
// carrier's NAT, with more behind one address, only makes a node count
// fewer sessions (larger egress shares) than it serves.
const (
	viewerWindow        = time.Minute
	maxViewers          = 50_000
	maxViewersPerClient = 32
	// maxRelayedPerNode bounds the sessions one node below may report
	// through its misses: a deep node serves thousands, while a client
	// that sends a CDN-Loop header to pass for a node cannot shrink the
	// shares past this many.
	maxRelayedPerNode = 4096
)

// viewerMetrics are the series read from the CMCD players send.
type viewerMetrics struct {
	requests  *prometheus.CounterVec // by ot
	byObject  map[string]prometheus.Counter
	starved   prometheus.Counter
	malformed prometheus.Counter
	buffer    prometheus.Histogram
}

func newViewerMetrics(reg *prometheus.Registry, v *cmcd.Viewers) *viewerMetrics {
	m := &viewerMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deepcast_edge_cmcd_requests_total", Help: "Viewer requests that carried CMCD (CTA-5004), by object type (ot).",
		}, []string{"ot"}),
		starved: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "deepcast_edge_cmcd_buffer_starvations_total", Help: "Viewer requests reporting that playback stalled since the previous one (CMCD bs).",
		}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "deepcast_edge_cmcd_malformed_total", Help: "Viewer requests whose CMCD could not be read (served all the same).",
		}),
		buffer: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "deepcast_edge_cmcd_buffer_seconds", Help: "Buffer the viewer held when it asked for a video segment (CMCD bl).",
			Buckets: []float64{0.5, 1, 2, 4, 6, 8, 10, 15, 20, 30, 45, 60, 120},
		}),
		byObject: map[string]prometheus.Counter{},
	}
	for _, ot := range []string{"m", "a", "v", "av", "i", "c", "tt", "k", "o", "none", "other"} {
		m.byObject[ot] = m.requests.WithLabelValues(ot)
	}
	sessions := prometheus.NewDesc("deepcast_edge_cmcd_sessions", "Playback sessions (CMCD sid) that asked for something within the last minute.", nil, nil)
	starvedSessions := prometheus.NewDesc("deepcast_edge_cmcd_starved_sessions", "Of those, the sessions that reported a stall within the last minute.", nil, nil)
	reg.MustRegister(m.requests, m.starved, m.malformed, m.buffer, collectorFunc(func(ch chan<- prometheus.Metric) {
		s := v.Summary(time.Now())
		ch <- prometheus.MustNewConstMetric(sessions, prometheus.GaugeValue, float64(s.Sessions))
		ch <- prometheus.MustNewConstMetric(starvedSessions, prometheus.GaugeValue, float64(s.Starved))
	}, sessions, starvedSessions))
	return m
}

// assetOf is the asset a /vod/ path is a part of ("" for another path),
// without allocating: every hit with CMCD asks.
func assetOf(path string) string {
	rest, ok := strings.CutPrefix(path, "/vod/")
	if !ok {
		return ""
	}
	asset, _, ok := strings.Cut(rest, "/")
	if !ok || !validName(asset) {
		return ""
	}
	return asset
}

// noteViewer reads the CMCD of a viewer's request for an object the node
// answered (status below 400), counts it and keeps its session's state;
// it returns what it read for the access log (nil: nothing, or no access
// log). A request another deepcast node sent (loop, its CDN-Loop header)
// is a child's miss, whose viewer that node counts already: it is only
// kept among the sessions that share this node's egress (relayed). remote
// is the client's address, which bounds the sessions one client may add;
// path the object's, which names the asset the session plays.
func (n *Node) noteViewer(rawQuery string, h http.Header, loop, remote, path string, status int) *cmcd.Data {
	if status >= 400 || rawQuery == "" && len(h) == 0 {
		return nil
	}
	if loop != "" {
		if d, found, err := cmcd.FromRequest(rawQuery, h); found && err == nil {
			client, _ := clientPrefix(remote)
			n.relayed.ObserveFrom(&d, client, assetOf(path), time.Now())
		}
		return nil
	}
	d, found, err := cmcd.FromRequest(rawQuery, h)
	if !found {
		return nil
	}
	m := n.metrics.viewers
	if err != nil {
		m.malformed.Inc()
		return nil
	}
	m.byObject[cmcd.ObjectLabel(d.Object)].Inc()
	if d.Starved {
		m.starved.Inc()
	}
	if d.Buffer >= 0 && (d.Object == "v" || d.Object == "av") {
		m.buffer.Observe(float64(d.Buffer) / 1000)
	}
	client, _ := clientPrefix(remote)
	n.viewers.ObserveFrom(&d, client, assetOf(path), time.Now())
	if n.cfg.AccessLog == nil {
		return nil // d stays on the stack: every hit with CMCD passes here
	}
	logged := d
	return &logged
}
