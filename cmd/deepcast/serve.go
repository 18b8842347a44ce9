package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/deepcast/deepcast/cmd/deepcast/internal/fastpath"
	"github.com/deepcast/deepcast/edge"
	"github.com/deepcast/deepcast/origin"
	"github.com/prometheus/client_golang/prometheus"
)

// shutdownGrace bounds how long in-flight responses may take after SIGINT/SIGTERM.
const shutdownGrace = 10 * time.Second

// newHTTPServer wraps h with the timeouts and limits every deepcast server uses.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second, // uploads extend their own deadline
		WriteTimeout:      2 * time.Minute,  // streams (SSE) extend their own
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// tuneGC trades memory for CPU in the servers: a server's live heap is
// small (metadata, buffers) while its allocation rate is high, so the
// default GOGC=100 spends CPU collecting little. It also runs one more P
// than there are CPUs. With goroutines per connection one spare P kept
// ready goroutines running while others sat in write(2) (on loopback the
// kernel does the receiver's work inline too): p99 under load -40%. The
// fast path's event loops add a P each on top of this while they run.
// Explicit GOGC and GOMAXPROCS settings win.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(800)
	}
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(runtime.NumCPU() + 1)
	}
}

// listen opens a TCP listener; a clear error names the address.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	return ln, nil
}

// server is what serve runs: net/http alone, or the fast path in front of it.
type server interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// fastFront puts the fast path in front of the origin's and the edge's
// net/http server; nil for other handlers, or when DEEPCAST_FASTPATH=off
// asks for net/http alone. DEEPCAST_FASTPATH=goroutines runs it with a
// goroutine per connection instead of event loops. (Both are there to
// compare, as make bench does.)
func fastFront(h http.Handler, hs *http.Server, mode string) *fastpath.Server {
	if mode == "off" {
		return nil
	}
	// Both answer media paths only: a connection handed to net/http for
	// anything else comes back for the next media request.
	front := &fastpath.Server{HTTP: hs, Claims: func(q fastpath.Request) bool { return strings.HasPrefix(q.Path, "/vod/") }}
	if mode == "goroutines" {
		front.Loops = -1
	}
	if n, err := strconv.Atoi(os.Getenv("DEEPCAST_LOOPS")); err == nil && n > 0 {
		front.Loops = n
	}
	switch s := h.(type) {
	case *origin.Server:
		// The origin answers from its folders and memory: never waits on
		// the network, so the loops call it directly.
		// It has no use for a query (CMCD is the caches' business), as on
		// its net/http routes, which route by path alone.
		front.Respond = func(q fastpath.Request) (fastpath.Response, bool) {
			r, ok := s.AnswerEncoded(q.Head, q.Path, q.Remote, q.AcceptEncoding)
			return fastpath.Response{Header: r.Header, Body: r.Body, File: r.File, Size: r.Size, Done: r.Done}, ok
		}
	case *edge.Node:
		edgeResponse := func(r edge.FastResponse, ok bool) (fastpath.Response, bool) {
			return fastpath.Response{Status: r.Status, Header: r.Header, Body: r.Body, Done: r.Done}, ok
		}
		plain := func(q fastpath.Request) edge.PlainRequest {
			return edge.PlainRequest{Head: q.Head, Path: q.Path, Query: q.Query, Remote: q.Remote, Host: q.Host,
				Secure: q.Secure, Token: q.Token, Cookie: q.Cookie, Loop: q.Loop, AcceptEncoding: q.AcceptEncoding}
		}
		front.Instant = func(q fastpath.Request) (fastpath.Response, bool) {
			return edgeResponse(s.AnswerInstant(plain(q)))
		}
		front.Respond = func(q fastpath.Request) (fastpath.Response, bool) {
			return edgeResponse(s.Answer(plain(q)))
		}
	default:
		return nil
	}
	return front
}

// metricsRegistrar is a handler whose /metrics can take more collectors.
type metricsRegistrar interface {
	RegisterMetrics(...prometheus.Collector) error
}

// frontCollectors are the fast path's series: connections it holds, and
// how many it handed to net/http, answered off a loop, or timed out.
func frontCollectors(f *fastpath.Server) []prometheus.Collector {
	counter := func(name, help string, v func(fastpath.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v(f.Stats())) })
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "deepcast_fastpath_connections", Help: "Connections the HTTP/1.1 fast path holds (not handed to net/http)."},
			func() float64 { return float64(f.Stats().Open) }),
		counter("deepcast_fastpath_handoffs_total", "Connections the fast path handed to net/http (requests it does not answer itself).",
			func(s fastpath.Stats) int64 { return s.HandedOff }),
		counter("deepcast_fastpath_takebacks_total", "Handed-off connections the fast path took back from net/http for a media request.",
			func(s fastpath.Stats) int64 { return s.TakenBack }),
		counter("deepcast_fastpath_answered_total", "Requests the fast path answered itself (on a loop, or on a goroutine for a waiting answer).",
			func(s fastpath.Stats) int64 { return s.Answered }),
		counter("deepcast_fastpath_waited_total", "Requests an event loop had answered on a goroutine because the answer had to wait (edge misses).",
			func(s fastpath.Stats) int64 { return s.Waited }),
		counter("deepcast_fastpath_accept_retries_total", "Accepts that failed (out of file descriptors, mostly) and were retried after a pause.",
			func(s fastpath.Stats) int64 { return s.AcceptRetries }),
		counter("deepcast_fastpath_timeouts_total", "Connections the fast path closed at a read, write or idle deadline.",
			func(s fastpath.Stats) int64 { return s.TimedOut }),
	}
}

// serve runs h on ln until ctx ends, then shuts down gracefully: in-flight
// responses get shutdownGrace to finish. The origin and the edge get the
// fast path in front of net/http.
func serve(ctx context.Context, h http.Handler, ln net.Listener, log *slog.Logger) error {
	return serveMode(ctx, h, ln, log, os.Getenv("DEEPCAST_FASTPATH"))
}

// serveMode is serve with the fast path's mode given: "" (event loops),
// "goroutines", or "off" (net/http alone).
func serveMode(ctx context.Context, h http.Handler, ln net.Listener, log *slog.Logger, mode string) error {
	hs := newHTTPServer(h, log)
	var srv server = hs
	if front := fastFront(h, hs, mode); front != nil {
		srv = front
		if m, ok := h.(metricsRegistrar); ok {
			if err := m.RegisterMetrics(frontCollectors(front)...); err != nil {
				// Served twice in one process (tests): the first front's
				// series stay; serving is not worth failing for this.
				log.Warn("fast path metrics not registered", "err", err)
			}
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "addr", ln.Addr().String())
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		srv.Close()
		return fmt.Errorf("shutdown: in-flight requests did not finish within %s", shutdownGrace)
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return err
}

// opsFlags are the flags that say where an operator reads a node's metrics
// and stats (-admin-listen, -metrics-token).
type opsFlags struct {
	listen, token *string
}

// noOps is the ops flags of a node without them (router, demo): no admin
// listener, no token.
func noOps() opsFlags {
	var listen, token string
	return opsFlags{listen: &listen, token: &token}
}

func addOpsFlags(fs *flag.FlagSet) opsFlags {
	return opsFlags{
		listen: fs.String("admin-listen", "", "separate address for /metrics, /api/stats (and the edge's /api/purge); they leave the main listener"),
		token:  fs.String("metrics-token", "", "bearer token that /metrics and /api/stats ask for on the main listener"),
	}
}

// hidden decides whether /metrics and /api/stats leave the listeners at
// addrs: when an admin listener takes them, or when one of them is
// reachable from other machines and no token guards them (they name
// upstreams and show the traffic), which log says. On loopback they stay
// open, as the demo needs.
func (o opsFlags) hidden(log *slog.Logger, addrs ...net.Addr) bool {
	if *o.listen != "" {
		return true
	}
	if *o.token != "" {
		return false
	}
	if a := reachable(addrs); a != "" {
		log.Warn("/metrics and /api/stats are off on a listener other machines reach: give -admin-listen ADDR or -metrics-token TOKEN", "listen", a)
		return true
	}
	return false
}

// reachable is the first of addrs that other machines can reach (not
// loopback), "" when there is none.
func reachable(addrs []net.Addr) string {
	for _, a := range addrs {
		if tcp, ok := a.(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
			return a.String()
		}
	}
	return ""
}

// minTokenLength is the shortest bearer token that is not warned about
// on a listener other machines reach.
const minTokenLength = 16

// warnShortTokens warns of an -admin-token or -metrics-token short enough
// to guess where other machines reach a listener; on loopback, as in the
// demo and the tests, any token will do.
func (o opsFlags) warnShortTokens(log *slog.Logger, adminToken string, addrs ...net.Addr) {
	a := reachable(addrs)
	if a == "" {
		return
	}
	for _, t := range []struct{ flag, token string }{{"-admin-token", adminToken}, {"-metrics-token", *o.token}} {
		if n := len(t.token); n > 0 && n < minTokenLength {
			log.Warn(fmt.Sprintf("%s is %d characters, short enough to guess: other machines reach this node, so give at least %d random ones", t.flag, n, minTokenLength), "listen", a)
		}
	}
}

// serveOps serves h with net/http alone until ctx ends.
func serveOps(ctx context.Context, h http.Handler, ln net.Listener, log *slog.Logger) error {
	hs := newHTTPServer(h, log)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := hs.Shutdown(sctx)
	<-errc
	return err
}
