// Package tlsserve is the TLS side of deepcast's servers: certificates
// from PEM files (several, chosen by SNI, reloaded when the files change
// or on demand) or from an ACME CA, the server's tls.Config (TLS 1.2 and
// 1.3, HTTP/2 and HTTP/1.1 by ALPN), HTTP/3 over QUIC beside it, and the
// client side for upstreams (extra CAs, a client certificate). Handlers
// never see which transport a request came by.
package tlsserve

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// Pair is one certificate file and its key file (PEM).
type Pair struct{ Cert, Key string }

// ParsePairs zips comma-separated certificate and key file lists, as the
// -tls-cert and -tls-key flags give them: the n-th key belongs to the n-th
// certificate.
func ParsePairs(certs, keys string) ([]Pair, error) {
	split := func(s string) []string {
		var out []string
		for p := range strings.SplitSeq(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	cs, ks := split(certs), split(keys)
	if len(cs) != len(ks) {
		return nil, fmt.Errorf("tls: %d certificate file(s) but %d key file(s): give one key per certificate, in the same order", len(cs), len(ks))
	}
	pairs := make([]Pair, len(cs))
	for i := range cs {
		pairs[i] = Pair{Cert: cs[i], Key: ks[i]}
	}
	return pairs, nil
}

// LoadPair reads and checks one pair: both files readable PEM, the key
// matching the certificate, the certificate valid now. Errors name the
// file and the cause.
func LoadPair(p Pair, now time.Time) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(p.Cert)
	if err != nil {
		return nil, fmt.Errorf("tls certificate %s: %w", p.Cert, err)
	}
	keyPEM, err := os.ReadFile(p.Key)
	if err != nil {
		return nil, fmt.Errorf("tls key %s: %w", p.Key, err)
	}
	if b, _ := pem.Decode(certPEM); b == nil {
		return nil, fmt.Errorf("tls certificate %s: no PEM data", p.Cert)
	}
	if b, _ := pem.Decode(keyPEM); b == nil {
		return nil, fmt.Errorf("tls key %s: no PEM data", p.Key)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls key %s does not go with certificate %s: %w", p.Key, p.Cert, err)
	}
	leaf := c.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls certificate %s: %w", p.Cert, err)
		}
		c.Leaf = leaf
	}
	switch {
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("tls certificate %s: expired on %s", p.Cert, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("tls certificate %s: not valid before %s", p.Cert, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &c, nil
}

// Store holds the certificates a server presents. It chooses one by the
// client's SNI, and reloads the files when they change (Watch) or when
// asked (Reload, on SIGHUP): a bad new file is refused, logged, and the
// old certificate stays. Connections already open keep theirs; new
// handshakes get the new one.
type Store struct {
	pairs []Pair
	log   *slog.Logger

	mu    sync.RWMutex
	certs []*tls.Certificate
	seen  []fileStamp // what the files looked like when loaded
}

type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

func stamp(p Pair) fileStamp {
	var s fileStamp
	if st, err := os.Stat(p.Cert); err == nil {
		s.certMod, s.certSize = st.ModTime(), st.Size()
	}
	if st, err := os.Stat(p.Key); err == nil {
		s.keyMod, s.keySize = st.ModTime(), st.Size()
	}
	return s
}

// NewStore loads every pair; any error fails it.
func NewStore(pairs []Pair, log *slog.Logger) (*Store, error) {
	if len(pairs) == 0 {
		return nil, errors.New("tls: no certificate: give -tls-cert and -tls-key (or -acme-domains)")
	}
	s := &Store{pairs: pairs, log: log}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads every pair again; on any error nothing changes.
func (s *Store) Reload() error {
	now := time.Now()
	certs := make([]*tls.Certificate, len(s.pairs))
	seen := make([]fileStamp, len(s.pairs))
	for i, p := range s.pairs {
		seen[i] = stamp(p)
		c, err := LoadPair(p, now)
		if err != nil {
			return err
		}
		certs[i] = c
	}
	s.mu.Lock()
	s.certs, s.seen = certs, seen
	s.mu.Unlock()
	return nil
}

// changed reports whether a file differs from when it was loaded.
func (s *Store) changed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i, p := range s.pairs {
		if stamp(p) != s.seen[i] {
			return true
		}
	}
	return false
}

// Watch checks the files every interval until stop closes, and reloads
// them when they changed. A pair half written (the certificate replaced,
// not yet its key) fails to load and is tried again at the next check.
func (s *Store) Watch(stop <-chan struct{}, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if !s.changed() {
			continue
		}
		if err := s.Reload(); err != nil {
			if err.Error() != lastErr {
				s.log.Error("certificate not reloaded; the old one stays", "err", err)
				lastErr = err.Error()
			}
			continue
		}
		lastErr = ""
		s.log.Info("certificates reloaded", "files", len(s.pairs))
	}
}

// GetCertificate picks the certificate for the client's server name: the
// first that covers it, else the first of all.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if hello.ServerName != "" {
		for _, c := range s.certs {
			if c.Leaf.VerifyHostname(hello.ServerName) == nil {
				return c, nil
			}
		}
	}
	return s.certs[0], nil
}

// Leaves returns the certificates in use, for logs and tests.
func (s *Store) Leaves() []*x509.Certificate {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]*x509.Certificate, len(s.certs))
	for i, c := range s.certs {
		out[i] = c.Leaf
	}
	return out
}

// CertPool reads PEM CA certificates from files into a pool that also
// holds the system's roots (none when the system has none). Errors name
// the file.
func CertPool(files ...string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("ca %s: %w", f, err)
		}
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("ca %s: no PEM certificate in it", f)
		}
	}
	return pool, nil
}

// ServerConfig is the tls.Config of deepcast's HTTPS listeners: TLS 1.2
// and 1.3, HTTP/2 then HTTP/1.1 by ALPN, certificates from getCert. With
// clientCAs, a client certificate signed by them is verified when given
// (handlers decide which paths require one).
func ServerConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), clientCAs *x509.CertPool) *tls.Config {
	c := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: getCert,
	}
	if clientCAs != nil {
		c.ClientCAs = clientCAs
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return c
}

// ClientConfig is the tls.Config for upstream connections: the system's
// roots plus caFile, and a client certificate when certFile and keyFile
// are given.
func ClientConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	pool, err := CertPool(caFile)
	if err != nil {
		return nil, err
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if certFile != "" || keyFile != "" {
		cert, err := LoadPair(Pair{Cert: certFile, Key: keyFile}, time.Now())
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{*cert}
	}
	return c, nil
}
