package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deepcast/deepcast/cmd/deepcast/internal/connlimit"
	"github.com/deepcast/deepcast/cmd/deepcast/internal/h2front"
	"github.com/deepcast/deepcast/cmd/deepcast/internal/tlsserve"
)

// tlsFlags are the HTTPS flags every server subcommand has.
type tlsFlags struct {
	listen, cert, key                     *string
	acmeDomains, acmeDir, acmeURL, acmeCA *string
	http3, hsts                           *bool
}

func addTLSFlags(fs *flag.FlagSet) tlsFlags {
	return tlsFlags{
		listen:      fs.String("tls-listen", "", "HTTPS address (TLS 1.2/1.3, HTTP/2 and HTTP/1.1 by ALPN); empty: no HTTPS"),
		cert:        fs.String("tls-cert", "", "certificate PEM files, comma-separated, chosen by SNI (reloaded when they change or on SIGHUP)"),
		key:         fs.String("tls-key", "", "key PEM files, comma-separated, one per -tls-cert file in the same order"),
		acmeDomains: fs.String("acme-domains", "", "get certificates for these domains (comma-separated) from an ACME CA instead of -tls-cert"),
		acmeDir:     fs.String("acme-dir", "", "folder for the ACME account and certificates"),
		acmeURL:     fs.String("acme-url", "", "ACME directory URL (default: Let's Encrypt)"),
		acmeCA:      fs.String("acme-ca", "", "PEM roots to verify the ACME server with (a private or test CA)"),
		http3:       fs.Bool("http3", false, "also serve HTTP/3 over QUIC on the -tls-listen port (UDP), advertised with Alt-Svc"),
		hsts:        fs.Bool("hsts", false, "send Strict-Transport-Security on HTTPS answers"),
	}
}

// options returns the HTTPS options, or an error for contradictory flags.
func (f tlsFlags) options() (tlsserve.Options, error) {
	o := tlsserve.Options{Listen: *f.listen, ACMEDomains: splitList(*f.acmeDomains), ACMEDir: *f.acmeDir, ACMEURL: *f.acmeURL,
		ACMECA: *f.acmeCA, HTTP3: *f.http3, HSTS: *f.hsts, Watch: time.Second}
	pairs, err := tlsserve.ParsePairs(*f.cert, *f.key)
	if err != nil {
		return o, err
	}
	o.Pairs = pairs
	if o.Listen == "" && (len(pairs) > 0 || len(o.ACMEDomains) > 0 || o.HTTP3) {
		return o, errors.New("-tls-cert, -acme-domains and -http3 need -tls-listen ADDR")
	}
	if o.Listen != "" && len(pairs) == 0 && len(o.ACMEDomains) == 0 {
		return o, errors.New("-tls-listen needs -tls-cert and -tls-key, or -acme-domains")
	}
	return o, nil
}

// nodeListeners are the addresses a node serves on: cleartext (fast path
// in front of net/http for origin and edge), HTTPS, the operators' one.
type nodeListeners struct {
	plain net.Listener // nil: no cleartext listener
	tls   *tlsserve.Server
	// conns count the connections of the listeners (TCP, then QUIC);
	// none: unbounded.
	conns []*connlimit.Limiter
	// plainHost and tlsHost are the hosts the listen addresses named:
	// a node's URL keeps a name as given (its certificate is for the
	// name, not for the address the name resolved to).
	plainHost, tlsHost string
}

// openNodeListeners opens the cleartext listener (unless addr is empty)
// and the HTTPS one (when o asks for it; its certificates are checked
// now), and checks that at least one is asked for.
func openNodeListeners(addr string, o tlsserve.Options, log *slog.Logger) (nodeListeners, error) {
	var l nodeListeners
	if addr == "" && !o.Enabled() {
		return l, fmt.Errorf("give -listen or -tls-listen (or both): %w", errUsage)
	}
	if addr != "" {
		ln, err := listen(addr)
		if err != nil {
			return l, err
		}
		l.plain = ln
		l.plainHost, _, _ = net.SplitHostPort(addr)
	}
	if o.Enabled() {
		ts, err := tlsserve.New(o, log)
		if err != nil {
			l.close()
			return l, err
		}
		l.tls = ts
		l.tlsHost, _, _ = net.SplitHostPort(o.Listen)
	}
	return l, nil
}

// limit bounds the connections of both listeners with lim, and the
// HTTP/3 connections per client as lim does the TCP ones (QUIC
// connections hold no file, so the total is not theirs).
func (l *nodeListeners) limit(lim *connlimit.Limiter, log *slog.Logger) {
	l.conns = []*connlimit.Limiter{lim}
	if l.plain != nil {
		l.plain = lim.Listener(l.plain)
	}
	if l.tls != nil {
		l.tls.WrapListener(lim.Listener)
		if per := lim.Limits().PerClient; per > 0 {
			quic := connlimit.New(connlimit.Limits{PerClient: per}, log)
			l.tls.LimitQUIC(quic.Admit)
			l.conns = append(l.conns, quic)
		}
	}
}

// close closes listeners that will not be served.
func (l nodeListeners) close() {
	if l.plain != nil {
		l.plain.Close()
	}
	if l.tls != nil {
		l.tls.Close()
	}
}

// tlsFronts are the servers of a node's TLS connections (origin and edge;
// none for other handlers or with DEEPCAST_FASTPATH=off): for HTTP/1.1 the
// fast path with a goroutine per connection (a TLS connection cannot move
// to the event loops), handing what it does not answer to a net/http
// server of its own; for HTTP/2 h2front, answering the same plain media
// requests with the same Responders (DEEPCAST_HTTP2=net leaves HTTP/2 to
// net/http, to compare). Both add the TLS listener's Alt-Svc and HSTS
// lines.
func tlsFronts(h http.Handler, ts *tlsserve.Server, log *slog.Logger) tlsserve.Fronts {
	front := fastFront(h, newHTTPServer(ts.Headers(h), log), os.Getenv("DEEPCAST_FASTPATH"))
	if front == nil {
		return tlsserve.Fronts{}
	}
	front.Loops = -1
	front.Secure = true
	front.ExtraHeader = ts.HeaderLines()
	fronts := tlsserve.Fronts{HTTP1: front}
	if os.Getenv("DEEPCAST_HTTP2") != "net" {
		base := front.HTTP // the same timeouts and limits as HTTP/1.1
		h2 := &h2front.Server{Handler: ts.Headers(h), Respond: front.Respond, Instant: front.Instant,
			Claims: front.Claims, ExtraHeader: front.ExtraHeader, ReadHeaderTimeout: base.ReadHeaderTimeout,
			ReadTimeout: base.ReadTimeout, WriteTimeout: base.WriteTimeout, IdleTimeout: base.IdleTimeout,
			MaxHeaderBytes: base.MaxHeaderBytes, Log: log}
		fronts.HTTP2 = h2
		if m, ok := h.(metricsRegistrar); ok {
			if err := m.RegisterMetrics(http2Collectors(h2)...); err != nil {
				log.Warn("http2 metrics not registered", "err", err)
			}
		}
	}
	return fronts
}

// http2Collectors are h2front's series: connections open, and streams by
// who answered them.
func http2Collectors(s *h2front.Server) []prometheus.Collector {
	streams := func(by string, v func(h2front.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "deepcast_http2_streams_total",
			Help:        "HTTP/2 streams (requests), by what answered them: the fast path's responders (front) or the node's handler.",
			ConstLabels: prometheus.Labels{"answered_by": by}}, func() float64 { return float64(v(s.Stats())) })
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "deepcast_http2_connections", Help: "HTTP/2 connections open."},
			func() float64 { return float64(s.Stats().Open) }),
		streams("front", func(st h2front.Stats) int64 { return st.Answered }),
		streams("handler", func(st h2front.Stats) int64 { return st.Handled }),
	}
}

// requireClientCert refuses /vod/ and /api/ to requests without a verified
// client certificate (the listener verifies one when given: -client-ca),
// cleartext ones included; pages, health and metrics stay open.
func requireClientCert(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (strings.HasPrefix(r.URL.Path, "/vod/") || strings.HasPrefix(r.URL.Path, "/api/")) &&
			(r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "a client certificate is required (mutual TLS)", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// addrs are the listeners' addresses.
func (l nodeListeners) addrs() []net.Addr {
	var out []net.Addr
	if l.plain != nil {
		out = append(out, l.plain.Addr())
	}
	if l.tls != nil {
		out = append(out, l.tls.Addr())
	}
	return out
}

// selfURL is the base URL a node is reached at: HTTPS when it has it.
func (l nodeListeners) selfURL() string {
	if l.tls != nil {
		return "https://" + nodeHostPort(l.tlsHost, l.tls.Addr())
	}
	return "http://" + nodeHostPort(l.plainHost, l.plain.Addr())
}

// nodeHostPort is host (as the listen address gave it) with the port the
// listener got, or the listener's address when host is empty or names
// every interface, which no client can reach it by.
func nodeHostPort(host string, a net.Addr) string {
	_, port, err := net.SplitHostPort(a.String())
	if err != nil || everyInterface(host) {
		return a.String()
	}
	return net.JoinHostPort(host, port)
}

// everyInterface reports a listen host that names no one address (empty,
// 0.0.0.0, ::), so no client can reach a node by it.
func everyInterface(host string) bool {
	ip, err := netip.ParseAddr(host)
	return host == "" || (err == nil && ip.IsUnspecified())
}

// serveNode runs every listener of a node (cleartext, -admin-listen,
// HTTPS) until ctx ends, then shuts them all down gracefully. SIGHUP reloads
// the -config file's live settings and the certificates (a bad file is
// refused and logged; the old settings stay) instead of ending the process.
func serveNode(ctx context.Context, h http.Handler, l nodeListeners, ops opsFlags, opsHandler http.Handler, log *slog.Logger) error {
	var admin net.Listener
	if *ops.listen != "" {
		var err error
		if admin, err = listen(*ops.listen); err != nil {
			l.close()
			return fmt.Errorf("admin listener: %w", err)
		}
		log.Info("admin listening", "url", "http://"+admin.Addr().String())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if takeEarlyHangup() {
		// Sent while the node was starting: reload now. A hangup that
		// came between the two registrations reached hup as well, and
		// one pending reload is enough: a blocking send would wait for
		// ever on the full channel, before anything reads it, and the
		// node would never serve.
		select {
		case hup <- syscall.SIGHUP:
		default:
		}
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reloadConfig(log)
				if l.tls == nil {
					continue
				}
				if err := l.tls.Reload(); err != nil {
					log.Error("SIGHUP: certificates not reloaded; the old ones stay", "err", err)
				}
			}
		}
	}()
	if m, ok := h.(metricsRegistrar); ok && len(l.conns) > 0 {
		if err := m.RegisterMetrics(connCollectors(l.conns...)...); err != nil {
			log.Warn("connection metrics not registered", "err", err)
		}
	}
	errc := make(chan error, 3) // cleartext, admin, HTTPS
	running := 0
	if l.plain != nil {
		running++
		go func() { errc <- serve(ctx, h, l.plain, log) }()
	}
	if admin != nil {
		running++
		go func() { errc <- serveOps(ctx, opsHandler, admin, log) }()
	}
	if l.tls != nil {
		running++
		log.Info("https listening", "url", "https://"+l.tls.Addr().String())
		go func() {
			done := make(chan error, 1)
			go func() { done <- l.tls.Serve(h, newHTTPServer(h, log), tlsFronts(h, l.tls, log)) }()
			select {
			case err := <-done:
				errc <- err
				return
			case <-ctx.Done():
			}
			sctx, scancel := context.WithTimeout(context.Background(), shutdownGrace)
			defer scancel()
			err := l.tls.Shutdown(sctx)
			if errors.Is(err, context.DeadlineExceeded) {
				l.tls.Close()
				err = fmt.Errorf("https shutdown: in-flight requests did not finish within %s", shutdownGrace)
			}
			<-done
			errc <- err
		}()
	}
	var first error
	for range running {
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) && first == nil {
			first = err
			cancel()
		}
		cancel() // one listener ending ends the node
	}
	return first
}
