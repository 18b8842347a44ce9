package tlsserve

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestStoreChoosesBySNI: with several pairs the certificate covering the
// client's server name is served, the first one otherwise.
func TestStoreChoosesBySNI(t *testing.T) {
	dir := t.TempDir()
	_, a, _, err := LocalCA(filepath.Join(dir, "a"), []string{"a.example", "*.cdn.a.example"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, b, _, err := LocalCA(filepath.Join(dir, "b"), []string{"b.example", "127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewStore([]Pair{a, b}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, want string }{
		{"a.example", "a.example"}, {"x.cdn.a.example", "a.example"}, {"b.example", "b.example"},
		{"", "a.example"}, {"other.example", "a.example"},
	} {
		cert, err := st.GetCertificate(&tls.ClientHelloInfo{ServerName: c.name})
		if err != nil {
			t.Fatal(err)
		}
		if cert.Leaf.Subject.CommonName != c.want {
			t.Errorf("SNI %q: served %q, want %q", c.name, cert.Leaf.Subject.CommonName, c.want)
		}
	}
}

// TestStoreReloadKeepsTheOldOnABadFile: a reload that fails changes nothing;
// one that succeeds serves the new certificate.
func TestStoreReloadKeepsTheOldOnABadFile(t *testing.T) {
	dir := t.TempDir()
	_, p, _, err := LocalCA(dir, []string{"one.example"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewStore([]Pair{p}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	before := st.Leaves()[0].SerialNumber
	good, _ := os.ReadFile(p.Cert)
	os.WriteFile(p.Cert, []byte("garbage"), 0o644)
	if err := st.Reload(); err == nil || !strings.Contains(err.Error(), p.Cert) {
		t.Errorf("reload of a broken file: %v", err)
	}
	if st.Leaves()[0].SerialNumber.Cmp(before) != 0 {
		t.Error("a failed reload replaced the certificate")
	}
	os.WriteFile(p.Cert, good, 0o644)
	if _, _, _, err := LocalCA(dir, []string{"two.example"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go st.Watch(stop, 20*time.Millisecond)
	deadline := time.Now().Add(5 * time.Second)
	for st.Leaves()[0].Subject.CommonName != "two.example" {
		if time.Now().After(deadline) {
			t.Fatal("the watcher did not load the new certificate")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLocalCARefusesNamesNoClientMatches: a host that is not a host name
// is refused before anything is written (it used to be signed into a
// certificate every client rejected); good ones, repeats dropped, are
// signed.
func TestLocalCARefusesNamesNoClientMatches(t *testing.T) {
	for _, c := range []struct {
		hosts []string
		want  string // in the error
	}{
		{[]string{"bad host!"}, `host "bad host!": label "bad host!": ' ' is not allowed`},
		{[]string{"a..b"}, `host "a..b": label ""`},
		{[]string{"-a.example"}, `label "-a"`},
		{[]string{"300.1.1.1"}, "not an IP address"},
		{[]string{"*.*.example"}, "only allowed as the whole first label"},
		{[]string{"cdn.*.example"}, "only allowed as the whole first label"},
		{[]string{"*.test"}, "two labels after it"},
		{[]string{"x" + strings.Repeat(".abcdefgh", 30)}, "longer than 253 bytes"},
		{[]string{strings.Repeat("a", 64) + ".example"}, "1 to 63"},
		{[]string{" ", ""}, "give at least one host"},
		{[]string{"fe80::1%eth0"}, "':' is not allowed"}, // a zone is not for a certificate
	} {
		dir := filepath.Join(t.TempDir(), "ca")
		if _, _, _, err := LocalCA(dir, c.hosts, time.Now()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.hosts, err, c.want)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("%q: the folder was made before the refusal", c.hosts)
		}
	}
	dir := t.TempDir()
	_, leaf, _, err := LocalCA(dir, []string{"localhost", " localhost ", "*.cdn.deepcast.test", "edge_1.internal", "::1", "127.0.0.1", "example.com."}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(leaf.Cert)
	block, _ := pem.Decode(data)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cert.DNSNames, " ") != "localhost *.cdn.deepcast.test edge_1.internal example.com." || len(cert.IPAddresses) != 2 {
		t.Errorf("names %q, addresses %v", cert.DNSNames, cert.IPAddresses)
	}
}

// TestLocalCAKeepsItsCA: a second run reuses the CA and signs a new leaf
// with it.
func TestLocalCAKeepsItsCA(t *testing.T) {
	dir := t.TempDir()
	ca1, leaf1, made1, err := LocalCA(dir, []string{"127.0.0.1"}, time.Now())
	if err != nil || !made1 {
		t.Fatalf("first run: %v, made %v", err, made1)
	}
	caPEM1, _ := os.ReadFile(ca1)
	leafPEM1, _ := os.ReadFile(leaf1.Cert)
	ca2, leaf2, made2, err := LocalCA(dir, []string{"127.0.0.1", "localhost"}, time.Now())
	if err != nil || made2 {
		t.Fatalf("second run: %v, made %v", err, made2)
	}
	caPEM2, _ := os.ReadFile(ca2)
	leafPEM2, _ := os.ReadFile(leaf2.Cert)
	if string(caPEM1) != string(caPEM2) || string(leafPEM1) == string(leafPEM2) {
		t.Error("the CA changed, or the leaf did not")
	}
	cfg, err := ClientConfig(ca2, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadPair(leaf2, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Leaf.Verify(x509VerifyOptions(cfg, "localhost")); err != nil {
		t.Errorf("the new leaf does not chain to the kept CA: %v", err)
	}
}

func TestParsePairs(t *testing.T) {
	for _, c := range []struct {
		certs, keys string
		n           int
		err         bool
	}{
		{"", "", 0, false}, {"a.pem", "a.key", 1, false}, {"a.pem, b.pem", "a.key,b.key", 2, false},
		{"a.pem,b.pem", "a.key", 0, true}, {"a.pem", "", 0, true}, {",,", ",", 0, false},
	} {
		p, err := ParsePairs(c.certs, c.keys)
		if (err != nil) != c.err || len(p) != c.n {
			t.Errorf("ParsePairs(%q, %q) = %v, %v", c.certs, c.keys, p, err)
		}
	}
}

func FuzzParsePairs(f *testing.F) {
	f.Add("a.pem,b.pem", "a.key,b.key")
	f.Add(",", "x")
	f.Fuzz(func(t *testing.T, certs, keys string) {
		p, err := ParsePairs(certs, keys)
		if err != nil {
			return
		}
		nonEmpty := 0
		for c := range strings.SplitSeq(certs, ",") {
			if strings.TrimSpace(c) != "" {
				nonEmpty++
			}
		}
		if len(p) != nonEmpty {
			t.Fatalf("%d pairs from %d certificate names in %q", len(p), nonEmpty, certs)
		}
		for _, pair := range p {
			if pair.Cert == "" || pair.Key == "" || strings.Contains(pair.Cert, ",") || strings.Contains(pair.Key, ",") {
				t.Fatalf("pair %+v from %q, %q", pair, certs, keys)
			}
		}
	})
}

func x509VerifyOptions(cfg *tls.Config, host string) x509.VerifyOptions {
	return x509.VerifyOptions{Roots: cfg.RootCAs, DNSName: host}
}
