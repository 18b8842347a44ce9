package main

import (
	"flag"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deepcast/deepcast/cmd/deepcast/internal/connlimit"
)

// Default -max-conns-per-client. A browser holds one HTTP/2 connection
// to a node, or six over HTTP/1.1; a household, a few browsers.
//   - An enter-deep node sits inside an access network and sees its
//     viewers' own addresses, before any carrier NAT: 256.
//   - A bring-home node and the router may see viewers through carrier
//     NAT, hundreds of subscribers behind one address, idle keep-alive
//     connections included: 1024. A bring-home node's busiest clients
//     are the edges below it, which open at most edge.MaxUpstreamConns
//     to one upstream.
const (
	deepConnsPerClient   = 256
	sharedConnsPerClient = 1024
)

// connFlags bound the connections a node holds (see connlimit).
type connFlags struct {
	perClient, total *int
}

// addConnFlags adds -max-conns-per-client (default perClient, whose
// meaning usage says) and -max-conns.
func addConnFlags(fs *flag.FlagSet, perClient int, usage string) connFlags {
	return connFlags{
		perClient: fs.Int("max-conns-per-client", perClient,
			"connections one client address (an IPv6 /64) may hold open; more are closed as they are accepted; 0: no limit"+usage),
		total: fs.Int("max-conns", 0,
			"connections the node holds in all; more are closed as they are accepted (default: the open-file limit less a fifth, kept for upstream connections and files; -1: no limit)"),
	}
}

// check refuses bounds below -1 (no limit, or the default).
func (f connFlags) check() error {
	if *f.perClient < -1 || *f.total < -1 {
		return fmt.Errorf("-max-conns %d, -max-conns-per-client %d: want a number of connections, 0 or -1 as their help says: %w", *f.total, *f.perClient, errUsage)
	}
	return nil
}

// limitConns raises the open-file limit (see raiseFileLimit) and bounds
// the connections of l's listeners as the flags ask: perClientDefault is
// the per-client bound when the flag was left at -1.
func (f connFlags) limitConns(l *nodeListeners, perClientDefault int, log *slog.Logger) {
	files := raiseFileLimit(log)
	per := *f.perClient
	if per < 0 {
		per = perClientDefault
	}
	l.limit(connlimit.New(connlimit.Limits{PerClient: per, Total: connTotal(*f.total, files)}, log), log)
}

// connTotal is the total bound: the flag's, or by default the open-file
// limit less a reserve (a fifth, at least 64) that a flood of clients
// cannot take, so that upstream fetches, the disk tier and health checks
// always find a descriptor.
func connTotal(flagValue int, fileLimit uint64) int {
	switch {
	case flagValue > 0:
		return flagValue
	case flagValue < 0 || fileLimit == 0 || fileLimit > 1<<30:
		return 0
	}
	reserve := max(64, fileLimit/5)
	if fileLimit <= reserve {
		return 1
	}
	return int(fileLimit - reserve)
}

// connCollectors are the series of a node's Limiters, summed.
func connCollectors(ls ...*connlimit.Limiter) []prometheus.Collector {
	sum := func() (s connlimit.Stats) {
		for _, l := range ls {
			st := l.Stats()
			s.Open += st.Open
			s.RefusedPerClient += st.RefusedPerClient
			s.RefusedTotal += st.RefusedTotal
		}
		return s
	}
	refused := func(reason string, v func(connlimit.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "deepcast_connections_refused_total",
			Help:        "Connections closed as they were accepted (QUIC: once their handshake was done), because of -max-conns-per-client (per-client) or -max-conns (total).",
			ConstLabels: prometheus.Labels{"reason": reason}}, func() float64 { return float64(v(sum())) })
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "deepcast_connections_open", Help: "Client connections open on the node's listeners (cleartext, HTTPS and HTTP/3)."},
			func() float64 { return float64(sum().Open) }),
		refused("per-client", func(s connlimit.Stats) int64 { return s.RefusedPerClient }),
		refused("total", func(s connlimit.Stats) int64 { return s.RefusedTotal }),
	}
}
