package tlsserve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/deepcast/deepcast/cmd/deepcast/internal/fastpath"
)

// Options configure a node's HTTPS side.
type Options struct {
	Listen string // TCP (and with HTTP3, UDP) address
	Pairs  []Pair // certificates from files
	// ACME: certificates for Domains from the CA at URL (Let's Encrypt
	// when empty), kept in Dir; CA, when set, is a PEM file of roots that
	// the ACME server's own HTTPS is verified against (a test CA).
	ACMEDomains []string
	ACMEDir     string
	ACMEURL     string
	ACMECA      string
	HTTP3       bool // HTTP/3 over QUIC on the same port, advertised with Alt-Svc
	HSTS        bool // Strict-Transport-Security on every answer
	ClientCA    string
	// Watch is how often certificate files are checked for changes.
	Watch time.Duration
}

// Enabled reports whether HTTPS is asked for.
func (o Options) Enabled() bool { return o.Listen != "" }

// Server is a node's HTTPS listener (HTTP/2 and HTTP/1.1) and, with
// HTTP3, its QUIC listener on the same port.
type Server struct {
	opts  Options
	log   *slog.Logger
	store *Store // nil with ACME
	cfg   *tls.Config
	http  *http.Server
	h3    *h3Server
	ln    net.Listener
	udp   net.PacketConn
	stop  chan struct{}
	once  sync.Once

	mu     sync.Mutex
	closed bool
	fronts Fronts
	// admitQUIC counts HTTP/3 connections (LimitQUIC).
	admitQUIC func(net.Addr) (func(), bool)
}

// New checks the certificates (a bad one is a clear error now, not at the
// first handshake) and opens the listeners; Serve then serves a handler
// on them.
func New(opts Options, log *slog.Logger) (*Server, error) {
	s := &Server{opts: opts, log: log, stop: make(chan struct{})}
	var getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	acmeOn := len(opts.ACMEDomains) > 0
	switch {
	case acmeOn && len(opts.Pairs) > 0:
		return nil, errors.New("tls: give -tls-cert/-tls-key or -acme-domains, not both")
	case acmeOn:
		m, err := acmeManager(opts)
		if err != nil {
			return nil, err
		}
		getCert = m.GetCertificate
	default:
		st, err := NewStore(opts.Pairs, log)
		if err != nil {
			return nil, err
		}
		s.store, getCert = st, st.GetCertificate
	}
	var clientCAs *x509.CertPool
	if opts.ClientCA != "" {
		data, err := os.ReadFile(opts.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("client ca %s: %w", opts.ClientCA, err)
		}
		clientCAs = x509.NewCertPool()
		if !clientCAs.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("client ca %s: no PEM certificate in it", opts.ClientCA)
		}
	}
	s.cfg = ServerConfig(getCert, clientCAs)
	if acmeOn {
		s.cfg.NextProtos = append(s.cfg.NextProtos, acme.ALPNProto) // TLS-ALPN-01 challenges
	}
	ln, udp, err := listenTCPAndUDP(opts.Listen, opts.HTTP3)
	if err != nil {
		return nil, err
	}
	s.ln, s.udp = ln, udp
	return s, nil
}

// listenTCPAndUDP listens on addr for TLS over TCP and, with h3, on the
// same port for QUIC. Asked for any port (":0"), it retries when the port
// the kernel gave TCP is taken for UDP: the two are separate spaces.
func listenTCPAndUDP(addr string, h3 bool) (net.Listener, net.PacketConn, error) {
	_, port, _ := net.SplitHostPort(addr)
	for attempt := 0; ; attempt++ {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("tls listen %s: %w", addr, err)
		}
		if !h3 {
			return ln, nil, nil
		}
		tcp := ln.Addr().(*net.TCPAddr)
		udp, err := net.ListenPacket("udp", net.JoinHostPort(tcp.IP.String(), strconv.Itoa(tcp.Port)))
		if err == nil {
			return ln, udp, nil
		}
		ln.Close()
		if port != "0" || attempt == 20 {
			return nil, nil, fmt.Errorf("http3 listen udp %s: %w", addr, err)
		}
	}
}

// headers adds Alt-Svc (with HTTP/3) and HSTS (when asked) to the answers
// of the TLS listener.
func (s *Server) headers(next http.Handler, port int) http.Handler {
	altSvc := fmt.Sprintf(`h3=":%d"; ma=86400`, port)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.HTTP3 {
			w.Header().Set("Alt-Svc", altSvc)
		}
		if s.opts.HSTS {
			w.Header().Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

// WrapListener puts wrap around the TCP listener (a connection limiter):
// called before Serve, it sees every connection before its handshake.
func (s *Server) WrapListener(wrap func(net.Listener) net.Listener) { s.ln = wrap(s.ln) }

// LimitQUIC has admit count every HTTP/3 connection once its handshake
// is done (a connection it refuses is closed with H3_EXCESSIVE_LOAD), as
// WrapListener's limiter counts TCP connections. Called before Serve.
func (s *Server) LimitQUIC(admit func(net.Addr) (release func(), ok bool)) { s.admitQUIC = admit }

// Addr is the TCP listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Front serves connections whose TLS handshake is done: the fast path for
// HTTP/1.1 (which hands what it does not answer to a net/http server of
// its own) and h2front for HTTP/2.
type Front interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
	Close() error
}

// Fronts are the servers of connections by the protocol their handshake
// chose; a nil one leaves its connections to net/http.
type Fronts struct {
	HTTP1 Front // HTTP/1.1 (or no ALPN)
	HTTP2 Front // h2
}

// Serve serves h until Shutdown or Close, with base's timeouts and
// limits; it returns http.ErrServerClosed then, or a listener's error.
// Connections go to fronts by the protocol they chose by ALPN, after
// their handshake; net/http serves the rest.
func (s *Server) Serve(h http.Handler, base *http.Server, fronts Fronts) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	if s.udp != nil {
		// Its own copy, taken before net/http adds "h2" to s.cfg.
		s.h3 = newH3(h, base, s.cfg.Clone(), s.log)
		s.h3.admit = s.admitQUIC
	}
	s.http = &http.Server{Handler: s.Headers(h), TLSConfig: s.cfg, ReadHeaderTimeout: base.ReadHeaderTimeout,
		ReadTimeout: base.ReadTimeout, WriteTimeout: base.WriteTimeout, IdleTimeout: base.IdleTimeout,
		MaxHeaderBytes: base.MaxHeaderBytes, ErrorLog: base.ErrorLog}
	s.fronts = fronts
	s.mu.Unlock()
	if s.store != nil && s.opts.Watch > 0 {
		go s.store.Watch(s.stop, s.opts.Watch)
	}
	errc := make(chan error, 4)
	if fronts.HTTP1 == nil && fronts.HTTP2 == nil {
		go func() { errc <- s.http.ServeTLS(s.ln, "", "") }()
	} else {
		h1, h2 := fastpath.NewConnListener(s.ln.Addr()), fastpath.NewConnListener(s.ln.Addr())
		// net/http needs one listener: it gets whichever protocol has no
		// front (both ways, it upgrades to h2 itself when ALPN said so).
		for _, p := range []struct {
			front Front
			ln    *fastpath.ConnListener
		}{{fronts.HTTP1, h1}, {fronts.HTTP2, h2}} {
			if p.front != nil {
				go func() { errc <- p.front.Serve(p.ln) }()
			} else {
				go func() { errc <- s.http.Serve(p.ln) }()
			}
		}
		go func() { errc <- s.acceptTLS(base.ReadHeaderTimeout, h1, h2) }()
	}
	if s.h3 != nil {
		go func() { errc <- s.h3.serve(s.udp) }()
	}
	err := <-errc
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) || errors.Is(err, quic.ErrServerClosed) {
		return http.ErrServerClosed
	}
	return err
}

// acceptTLS accepts TCP connections, completes each one's handshake on a
// goroutine of its own (bounded by timeout), and passes it on by the
// protocol it chose: h2 to h2, anything else to h1.
func (s *Server) acceptTLS(timeout time.Duration, h1, h2 *fastpath.ConnListener) error {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	var backoff fastpath.AcceptBackoff
	for {
		raw, err := s.ln.Accept()
		if err != nil {
			if backoff.Retry(err) {
				continue
			}
			h1.Close()
			h2.Close()
			return err
		}
		backoff.Reset()
		go func() {
			tc := tls.Server(raw, s.cfg)
			tc.SetDeadline(time.Now().Add(timeout))
			if err := tc.Handshake(); err != nil {
				raw.Close()
				return
			}
			tc.SetDeadline(time.Time{})
			if tc.ConnectionState().NegotiatedProtocol == "h2" {
				h2.Push(tc)
			} else {
				h1.Push(tc)
			}
		}()
	}
}

// Headers wraps next with the headers of this listener's answers: Alt-Svc
// (with HTTP/3) and Strict-Transport-Security (when asked).
func (s *Server) Headers(next http.Handler) http.Handler {
	return s.headers(next, s.ln.Addr().(*net.TCPAddr).Port)
}

// HeaderLines are the same headers as CRLF-ended lines, for a front that
// writes its answers itself.
func (s *Server) HeaderLines() []byte {
	var b []byte
	if s.opts.HTTP3 {
		b = fmt.Appendf(b, "Alt-Svc: h3=\":%d\"; ma=86400\r\n", s.ln.Addr().(*net.TCPAddr).Port)
	}
	if s.opts.HSTS {
		b = append(b, "Strict-Transport-Security: max-age=31536000\r\n"...)
	}
	return b
}

// Reload reads the certificate files again (SIGHUP); a bad file is
// refused and the old certificates stay.
func (s *Server) Reload() error {
	if s.store == nil {
		return nil
	}
	if err := s.store.Reload(); err != nil {
		return err
	}
	s.log.Info("certificates reloaded", "files", len(s.opts.Pairs))
	return nil
}

// Shutdown stops accepting and lets in-flight requests finish until ctx
// ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.once.Do(func() { close(s.stop) })
	s.mu.Lock()
	s.closed = true
	hs, h3, fronts := s.http, s.h3, s.fronts
	s.mu.Unlock()
	var err error
	if h3 != nil {
		err = h3.shutdown(ctx)
	}
	if s.udp != nil {
		s.udp.Close()
	}
	if hs == nil {
		return s.ln.Close()
	}
	s.ln.Close() // the fronts and net/http are served from channels
	for _, f := range []Front{fronts.HTTP1, fronts.HTTP2} {
		if f == nil {
			continue
		}
		if ferr := f.Shutdown(ctx); err == nil {
			err = ferr
		}
	}
	if herr := hs.Shutdown(ctx); err == nil && !errors.Is(herr, net.ErrClosed) {
		// net/http closes the listeners it serves too: the one closed
		// above, when it serves s.ln itself, is no error.
		err = herr
	}
	return err
}

// Close closes everything at once.
func (s *Server) Close() error {
	s.once.Do(func() { close(s.stop) })
	s.mu.Lock()
	s.closed = true
	hs, h3, fronts := s.http, s.h3, s.fronts
	s.mu.Unlock()
	if h3 != nil {
		h3.close()
	}
	if s.udp != nil {
		s.udp.Close()
	}
	if hs == nil {
		return s.ln.Close()
	}
	s.ln.Close()
	for _, f := range []Front{fronts.HTTP1, fronts.HTTP2} {
		if f != nil {
			f.Close()
		}
	}
	if err := hs.Close(); !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// acmeManager configures autocert for the options.
func acmeManager(o Options) (*autocert.Manager, error) {
	if o.ACMEDir == "" {
		return nil, errors.New("tls: -acme-dir is needed to keep the ACME account and certificates")
	}
	m := &autocert.Manager{Prompt: autocert.AcceptTOS, Cache: autocert.DirCache(o.ACMEDir), HostPolicy: autocert.HostWhitelist(o.ACMEDomains...)}
	client := &acme.Client{DirectoryURL: o.ACMEURL}
	if client.DirectoryURL == "" {
		client.DirectoryURL = autocert.DefaultACMEDirectory
	}
	if o.ACMECA != "" {
		pool, err := CertPool(o.ACMECA)
		if err != nil {
			return nil, err
		}
		client.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	}
	m.Client = client
	return m, nil
}
