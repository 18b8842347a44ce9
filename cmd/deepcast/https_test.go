package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/quic-go/quic-go/http3"

	"github.com/deepcast/deepcast/cmd/deepcast/internal/tlsserve"
	"github.com/deepcast/deepcast/media/mediatest"
)

// node is a deepcast server process of a test.
type node struct {
	cmd  *exec.Cmd
	logs *mediatest.Capture
	done chan error
}

// runProcess starts cmd with its output in the node's logs, and at the
// test's end interrupts it (killed if still running 15 s later). done
// receives its exit.
func runProcess(t *testing.T, cmd *exec.Cmd) *node {
	t.Helper()
	n := &node{cmd: cmd, logs: &mediatest.Capture{}, done: make(chan error, 1)}
	n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.done <- n.cmd.Wait() }()
	t.Cleanup(func() {
		n.cmd.Process.Signal(os.Interrupt)
		select {
		case <-n.done:
		case <-time.After(15 * time.Second):
			n.cmd.Process.Kill()
		}
	})
	return n
}

// startNode runs bin with args until the test ends, and waits until addr
// (its TCP listener) accepts connections.
func startNode(t *testing.T, bin, addr string, args ...string) *node {
	t.Helper()
	n := runProcess(t, exec.Command(bin, args...))
	awaitListening(t, n, addr, args[0])
	return n
}

// awaitListening waits, up to 15 s, until n's listener on addr accepts
// connections; what names n in the failure.
func awaitListening(t *testing.T, n *node, addr, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-n.done:
			t.Fatalf("%s exited: %v\n%s", what, err, n.logs.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never listened on %s:\n%s", what, addr, n.logs.String())
}

// testCerts makes a local CA and a leaf for 127.0.0.1 and localhost.
func testCerts(t *testing.T) (ca string, leaf tlsserve.Pair) {
	t.Helper()
	ca, leaf, _, err := tlsserve.LocalCA(t.TempDir(), []string{"127.0.0.1", "localhost"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca, leaf
}

// clientFor trusts ca, presenting cert when given; over HTTP/3 with h3.
func clientFor(t *testing.T, ca string, cert *tlsserve.Pair, h3 bool) *http.Client {
	t.Helper()
	var c *tls.Config
	var err error
	if cert != nil {
		c, err = tlsserve.ClientConfig(ca, cert.Cert, cert.Key)
	} else {
		c, err = tlsserve.ClientConfig(ca, "", "")
	}
	if err != nil {
		t.Fatal(err)
	}
	if h3 {
		tr := &http3.Transport{TLSClientConfig: c}
		t.Cleanup(func() { tr.Close() })
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	tr := &http.Transport{TLSClientConfig: c, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// getBody GETs url through c, with header name/value pairs, and reads the
// body.
func getBody(t *testing.T, c *http.Client, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	return doBody(t, c, http.MethodGet, url, "", hdr...)
}

// doBody sends a request with a body (none when empty) and header
// name/value pairs through c, and reads the answer's body.
func doBody(t *testing.T, c *http.Client, method, url, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s body: %v", method, url, err)
	}
	return resp, b
}

var ttlRE = regexp.MustCompile(`ttl=-?\d+`)

// TestHTTPSThreeTiers: origin, bring-home and enter-deep all on TLS with
// verification on, the origin requiring the edges' client certificate
// (mutual TLS); ffmpeg decodes every frame through all three with the CA;
// HTTP/1.1 in the clear, HTTP/2 (curl and Go) and HTTP/3 (Go) fetch the
// same bytes and headers from the enter-deep node.
func TestHTTPSThreeTiers(t *testing.T) {
	bin := buildBinary(t)
	lib := mediatest.CopyLibrary(t)
	ca, leaf := testCerts(t)
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }
	oTLS, hTLS, dTLS, dPlain := port(), port(), port(), port()
	tlsArgs := []string{"-tls-cert", leaf.Cert, "-tls-key", leaf.Key}
	startNode(t, bin, oTLS, append([]string{"origin", "-library", lib, "-listen", "", "-tls-listen", oTLS, "-client-ca", ca, "-access-log=false"}, tlsArgs...)...)
	startNode(t, bin, hTLS, append([]string{"edge", "-profile", "bring-home", "-listen", "", "-tls-listen", hTLS, "-upstream", "https://" + oTLS,
		"-upstream-ca", ca, "-upstream-cert", leaf.Cert, "-upstream-key", leaf.Key, "-name", "home"}, tlsArgs...)...)
	startNode(t, bin, dTLS, append([]string{"edge", "-profile", "enter-deep", "-listen", dPlain, "-tls-listen", dTLS, "-http3", "-upstream", "https://" + hTLS,
		"-upstream-ca", ca, "-name", "deep"}, tlsArgs...)...)

	// Mutual TLS: the origin refuses /vod/ without a client certificate.
	mpdPath := "/vod/" + mediatest.AssetName + "/manifest.mpd"
	if resp, _ := getBody(t, clientFor(t, ca, nil, false), "https://"+oTLS+mpdPath); resp.StatusCode != http.StatusForbidden {
		t.Errorf("origin without a client certificate: %s, want 403", resp.Status)
	}
	if resp, _ := getBody(t, clientFor(t, ca, &leaf, false), "https://"+oTLS+mpdPath); resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Errorf("origin with a client certificate: %s over %s, want 200 over HTTP/2", resp.Status, resp.Proto)
	}

	frames := mediatest.CountFrames(t, mediatest.Source(t))
	mediatest.CheckDecodesAll(t, "https://"+dTLS+mpdPath, 2, frames, "-ca_file", ca)
	// The simulator reads a video from an https:// MPD with the same CA.
	trace := filepath.Join(repoRoot(), "testdata", "traces", "fcc", "trace_10322_http---edition.cnn.com")
	if out, err := exec.Command(bin, "sim", "-video", "https://"+dTLS+mpdPath, "-ca", ca, "-traces", trace, "-abr", "bba").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "1 sessions") {
		t.Errorf("sim -video https://: %v\n%s", err, out)
	}

	// The same object over every protocol.
	a, err := startOrigin(t, lib).Catalog().Get(mediatest.AssetName)
	if err != nil {
		t.Fatal(err)
	}
	seg := "/vod/" + mediatest.AssetName + "/" + a.Asset.Renditions[0].ID + "/2.m4s"
	type answer struct {
		proto string
		sum   string
		hdr   string
	}
	describe := func(resp *http.Response, body []byte) answer {
		sum := sha256.Sum256(body)
		return answer{proto: resp.Proto, sum: hex.EncodeToString(sum[:8]), hdr: fmt.Sprintf("%d ETag=%s Cache-Control=%s Cache-Status=%s",
			resp.StatusCode, resp.Header.Get("ETag"), resp.Header.Get("Cache-Control"), ttlRE.ReplaceAllString(resp.Header.Get("Cache-Status"), "ttl=N"))}
	}
	getBody(t, http.DefaultClient, "http://"+dPlain+seg) // warm: every answer below is a hit
	var answers []answer
	answers = append(answers, describe(getBody(t, http.DefaultClient, "http://"+dPlain+seg)))
	answers = append(answers, describe(getBody(t, clientFor(t, ca, nil, false), "https://"+dTLS+seg)))
	h3resp, h3body := getBody(t, clientFor(t, ca, nil, true), "https://"+dTLS+seg)
	answers = append(answers, describe(h3resp, h3body))
	// HTTP/1.1 over TLS: the fast path answers it, with the listener's
	// Alt-Svc like net/http's answers.
	roots, err := tlsserve.ClientConfig(ca, "", "")
	if err != nil {
		t.Fatal(err)
	}
	h1 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: roots, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}}
	h1resp, h1body := getBody(t, h1, "https://"+dTLS+seg)
	if h1resp.ProtoMajor != 1 || !strings.HasPrefix(h1resp.Header.Get("Alt-Svc"), "h3=") {
		t.Errorf("HTTP/1.1 over TLS: %s, Alt-Svc %q", h1resp.Proto, h1resp.Header.Get("Alt-Svc"))
	}
	tlsAnswer := describe(h1resp, h1body)
	tlsAnswer.proto = "HTTP/1.1 over TLS"
	answers = append(answers, tlsAnswer)
	if _, err := exec.LookPath("curl"); err == nil {
		bodyFile := filepath.Join(t.TempDir(), "body")
		out, err := exec.Command("curl", "-s", "--http2", "--cacert", ca, "-D", "-", "-o", bodyFile, "-w", "%{http_version}", "https://"+dTLS+seg).Output()
		if err != nil {
			t.Fatalf("curl --http2: %v", err)
		}
		if !strings.HasSuffix(string(out), "2") || !strings.Contains(strings.ToLower(string(out)), "alt-svc: h3=") {
			t.Errorf("curl --http2 did not speak HTTP/2 or saw no Alt-Svc:\n%s", out)
		}
		got, _ := os.ReadFile(bodyFile)
		sum := sha256.Sum256(got)
		if hex.EncodeToString(sum[:8]) != answers[0].sum {
			t.Errorf("curl --http2 got other bytes than cleartext HTTP/1.1")
		}
		for _, h := range []string{"etag: " + strings.Split(strings.Split(answers[0].hdr, "ETag=")[1], " ")[0], "cache-control: public, max-age=31536000, immutable"} {
			if !strings.Contains(strings.ToLower(string(out)), strings.ToLower(h)) {
				t.Errorf("curl --http2 headers lack %q:\n%s", h, out)
			}
		}
	}
	for _, w := range []string{"HTTP/1.1", "HTTP/2.0", "HTTP/3.0"} {
		found := false
		for _, a := range answers {
			found = found || a.proto == w
		}
		if !found {
			t.Errorf("no answer over %s: %+v", w, answers)
		}
	}
	for _, a := range answers[1:] {
		if a.sum != answers[0].sum || a.hdr != answers[0].hdr {
			t.Errorf("%s answered %+v, cleartext %+v", a.proto, a, answers[0])
		}
	}
	if !strings.Contains(answers[0].hdr, "hit") {
		t.Errorf("not a hit: %s", answers[0].hdr)
	}
}

// writeCert writes a self-signed ECDSA certificate (and its key) valid
// from notBefore to notAfter for hosts.
func writeCert(t *testing.T, dir, name string, hosts []string, notBefore, notAfter time.Time) tlsserve.Pair {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	p := tlsserve.Pair{Cert: filepath.Join(dir, name+".pem"), Key: filepath.Join(dir, name+"-key.pem")}
	os.WriteFile(p.Cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(p.Key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return p
}

// TestBadCertificatesFailClearly: a server with a bad certificate stops at
// once, naming the file and the cause; an edge whose upstream presents a
// bad one answers 502 with the reason and logs it, without hanging.
func TestBadCertificatesFailClearly(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	now := time.Now()
	good := writeCert(t, dir, "good", []string{"127.0.0.1"}, now.Add(-time.Hour), now.Add(time.Hour))
	other := writeCert(t, dir, "other", []string{"127.0.0.1"}, now.Add(-time.Hour), now.Add(time.Hour))
	expired := writeCert(t, dir, "expired", []string{"127.0.0.1"}, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not a certificate\n"), 0o644)
	for _, c := range []struct {
		name      string
		cert, key string
		want      []string
	}{
		{"expired", expired.Cert, expired.Key, []string{expired.Cert, "expired"}},
		{"key of another certificate", good.Cert, other.Key, []string{other.Key, good.Cert, "does not go with"}},
		{"missing file", filepath.Join(dir, "nope.pem"), good.Key, []string{"nope.pem", "no such file"}},
		{"not PEM", junk, good.Key, []string{"junk.pem", "no PEM"}},
		{"keys without certificates", good.Cert + "," + other.Cert, good.Key, []string{"2 certificate file(s) but 1 key file(s)"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "origin", "-library", dir, "-listen", "", "-tls-listen", "127.0.0.1:0",
				"-tls-cert", c.cert, "-tls-key", c.key).CombinedOutput()
			if err == nil || ctx.Err() != nil {
				t.Fatalf("started anyway (or hung): %v\n%s", err, out)
			}
			for _, w := range c.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("error does not mention %q:\n%s", w, out)
				}
			}
		})
	}
	// Upstreams: an unknown CA and a certificate for another host.
	lib := mediatest.CopyLibrary(t)
	_, leaf := testCerts(t)
	wrongHost := writeCert(t, dir, "wronghost", []string{"elsewhere.example"}, now.Add(-time.Hour), now.Add(time.Hour))
	for _, c := range []struct {
		name   string
		pair   tlsserve.Pair
		edgeCA string
	}{
		{"unknown CA", leaf, ""},
		{"wrong host", wrongHost, wrongHost.Cert},
	} {
		t.Run("upstream "+c.name, func(t *testing.T) {
			o, e := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
			startNode(t, bin, o, "origin", "-library", lib, "-listen", "", "-tls-listen", o, "-tls-cert", c.pair.Cert, "-tls-key", c.pair.Key)
			args := []string{"edge", "-listen", e, "-upstream", "https://" + o, "-prefetch", "false"}
			if c.edgeCA != "" {
				args = append(args, "-upstream-ca", c.edgeCA)
			}
			n := startNode(t, bin, e, args...)
			start := time.Now()
			resp, body := getBody(t, http.DefaultClient, "http://"+e+"/vod/"+mediatest.AssetName+"/manifest.mpd")
			if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "certificate") {
				t.Errorf("%s: %d %q, want a 502 naming the certificate", c.name, resp.StatusCode, body)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
			// The log line may follow the answer by a moment (a health
			// probe of the upstream writes it): wait for it, boundedly.
			for deadline := time.Now().Add(5 * time.Second); !strings.Contains(n.logs.String(), "certificate") && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
			}
			if !strings.Contains(n.logs.String(), "certificate") {
				t.Errorf("no log line about the certificate:\n%s", n.logs.String())
			}
		})
	}
}

// TestCertificateReplacedOnDiskIsServed: new connections get a replaced
// certificate within seconds while an open connection goes on; a bad
// replacement (and SIGHUP with it) leaves the old one serving.
func TestCertificateReplacedOnDiskIsServed(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	now := time.Now()
	first := writeCert(t, dir, "first", []string{"127.0.0.1"}, now.Add(-time.Hour), now.Add(time.Hour))
	live := tlsserve.Pair{Cert: filepath.Join(dir, "live.pem"), Key: filepath.Join(dir, "live-key.pem")}
	copyFile := func(src, dst string) {
		b, _ := os.ReadFile(src)
		tmp := dst + ".tmp"
		os.WriteFile(tmp, b, 0o600)
		os.Rename(tmp, dst)
	}
	copyFile(first.Cert, live.Cert)
	copyFile(first.Key, live.Key)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	n := startNode(t, bin, addr, "origin", "-library", mediatest.CopyLibrary(t), "-listen", "", "-tls-listen", addr, "-tls-cert", live.Cert, "-tls-key", live.Key)
	served := func() *x509.Certificate {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // only to read which certificate is served
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	// An open connection, kept across the swap.
	pool := x509.NewCertPool()
	b, _ := os.ReadFile(first.Cert)
	pool.AppendCertsFromPEM(b)
	old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	if resp, _ := getBody(t, old, "https://"+addr+"/healthz"); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	second := writeCert(t, dir, "second", []string{"127.0.0.1"}, now.Add(-time.Hour), now.Add(time.Hour))
	copyFile(second.Key, live.Key)
	copyFile(second.Cert, live.Cert)
	deadline := time.Now().Add(8 * time.Second)
	for served().SerialNumber.Cmp(mustParse(t, second.Cert).SerialNumber) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the replaced certificate was not served within 8 s:\n%s", n.logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if resp, _ := getBody(t, old, "https://"+addr+"/healthz"); resp.StatusCode != 200 {
		t.Errorf("the open connection broke: %s", resp.Status)
	}
	// A broken replacement and a SIGHUP: refused, the second stays.
	os.WriteFile(live.Cert, []byte("garbage"), 0o644)
	n.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(3 * time.Second)
	if got := served(); got.SerialNumber.Cmp(mustParse(t, second.Cert).SerialNumber) != 0 {
		t.Errorf("a broken file replaced the certificate")
	}
	select {
	case err := <-n.done:
		t.Fatalf("SIGHUP ended the node: %v", err)
	default:
	}
	if !strings.Contains(n.logs.String(), "not reloaded") {
		t.Errorf("no log line about the refused certificate:\n%s", n.logs.String())
	}
}

func mustParse(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, _ := os.ReadFile(file)
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", file)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBrowserPlaysOverHTTP2AndHTTP3: dash.js in Chromium plays from an
// enter-deep node over HTTPS, trusting the test certificate by its public
// key (never by turning verification off in deepcast), and the Resource
// Timing API says its segments came over h2, then, with QUIC forced for
// the node, over h3.
func TestBrowserPlaysOverHTTP2AndHTTP3(t *testing.T) {
	bin := buildBinary(t)
	lib := packageClip(t, 20*time.Second, "640x360@900k,320x180@300k")
	ca, leaf := testCerts(t)
	o, d := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startNode(t, bin, o, "origin", "-library", lib, "-listen", o, "-access-log=false")
	startNode(t, bin, d, "edge", "-listen", "", "-tls-listen", d, "-http3", "-tls-cert", leaf.Cert, "-tls-key", leaf.Key,
		"-upstream", "http://"+o, "-web-modules", webModulesForTest(t))
	spki, err := spkiHash(leaf.Cert)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		want  string
		flags []chromedp.ExecAllocatorOption
	}{
		{"h2", []chromedp.ExecAllocatorOption{chromedp.Flag("disable-quic", true), chromedp.Flag("ignore-certificate-errors-spki-list", spki)}},
		{"h3", []chromedp.ExecAllocatorOption{chromedp.Flag("enable-quic", true), chromedp.Flag("origin-to-force-quic-on", d),
			chromedp.Flag("ignore-certificate-errors-spki-list", spki)}},
	} {
		t.Run(c.want, func(t *testing.T) {
			bctx := browserWith(t, c.flags...)
			mpd := "https://" + d + "/vod/clip/manifest.mpd"
			if err := chromedp.Do(bctx, chromedp.Navigate("https://"+d+"/?buffer=6&mpd="+url.QueryEscape(mpd))); err != nil {
				t.Fatal(err)
			}
			waitFor(t, bctx, 40*time.Second, "playback past 6 s", func(s pageStats) bool { return s.CurrentTime > 6 })
			protos, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](
				`performance.getEntriesByType('resource').filter(e => new URL(e.name).pathname.endsWith('.m4s')).map(e => e.nextHopProtocol)`))
			if err != nil {
				t.Fatal(err)
			}
			if len(protos) == 0 {
				t.Fatal("no segment in the Resource Timing entries")
			}
			for _, p := range protos {
				if p != c.want {
					t.Errorf("segments came over %v, want all %s", protos, c.want)
					break
				}
			}
			t.Logf("%d segments over %s", len(protos), c.want)
			if c.want != "h2" {
				return
			}
			// Over h2 the segments were answered by h2front's fast path,
			// not left to the node's handler.
			_, body := getBody(t, clientFor(t, ca, nil, false), "https://"+d+"/metrics")
			m := regexp.MustCompile(`deepcast_http2_streams_total\{answered_by="front"\} (\d+)`).FindStringSubmatch(string(body))
			if m == nil {
				t.Fatalf("no deepcast_http2_streams_total{answered_by=\"front\"} in /metrics")
			}
			if n, _ := strconv.Atoi(m[1]); n < len(protos) {
				t.Errorf("h2front answered %d streams itself, fewer than the %d segments played", n, len(protos))
			}
		})
	}
}

// TestRouterOverHTTPS: the router answers over HTTPS and sends viewers to
// the https:// edges its edges file names (302, steering MPD), checking
// their health over TLS with its CA.
func TestRouterOverHTTPS(t *testing.T) {
	bin := buildBinary(t)
	lib := mediatest.CopyLibrary(t)
	ca, leaf := testCerts(t)
	// The router listens on a name, as deployments do: the URLs it hands
	// out keep the name its certificate is for, not the address.
	o, d, r := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("localhost:%d", freePort(t))
	startNode(t, bin, o, "origin", "-library", lib, "-listen", o, "-access-log=false")
	startNode(t, bin, d, "edge", "-listen", "", "-tls-listen", d, "-tls-cert", leaf.Cert, "-tls-key", leaf.Key, "-upstream", "http://"+o)
	edges := filepath.Join(t.TempDir(), "edges.yaml")
	os.WriteFile(edges, []byte(fmt.Sprintf("edges:\n  - {name: deep, url: https://%s, addresses: [127.0.0.1], profile: enter-deep, subnets: [127.0.0.0/8]}\n", d)), 0o644)
	rn := startNode(t, bin, r, "router", "-edges", edges, "-listen", "", "-tls-listen", r, "-tls-cert", leaf.Cert, "-tls-key", leaf.Key,
		"-edge-ca", ca, "-dns", "", "-check", "500ms", "-log-format", "json")
	t.Cleanup(func() {
		// The router names itself once per line, in JSON lines as asked.
		logs := rn.logs.String()
		if strings.Contains(logs, `"node":"router","node":"router"`) || !strings.Contains(logs, `"node":"router"`) {
			t.Errorf("router logs:\n%s", logs)
		}
	})
	c := clientFor(t, ca, nil, false)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	seg := "/vod/" + mediatest.AssetName + "/manifest.mpd"
	var resp *http.Response
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, _ = getBody(t, c, "https://"+r+seg)
		if resp.StatusCode == http.StatusFound || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://"+d+seg {
		t.Errorf("302: %s to %q, want https://%s%s", resp.Status, resp.Header.Get("Location"), d, seg)
	}
	resp, body := getBody(t, c, "https://"+r+seg+"?route=steering")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<BaseURL serviceLocation=\"deep\">https://"+d+"/vod/") ||
		!strings.Contains(string(body), "https://"+r+"/steering") {
		t.Errorf("steering MPD over HTTPS: %s\n%s", resp.Status, body)
	}
	resp, body = getBody(t, c, "https://"+r+"/steering?asset="+mediatest.AssetName+"&_DASH_pathway=deep")
	var sm struct {
		Reload string `json:"RELOAD-URI"`
	}
	if err := json.Unmarshal(body, &sm); err != nil || !strings.HasPrefix(sm.Reload, "https://"+r+"/steering?") {
		t.Errorf("steering manifest: %s %s, want RELOAD-URI on https://%s", resp.Status, body, r)
	}
	c.CheckRedirect = nil
	if resp, _ := getBody(t, c, "https://"+r+seg); resp.StatusCode != 200 || resp.Request.URL.Host != d {
		t.Errorf("following the redirect: %s from %s", resp.Status, resp.Request.URL)
	}

	// -self names the router as viewers reach it (a load balancer's name).
	r2 := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startNode(t, bin, r2, "router", "-edges", edges, "-listen", r2, "-self", "https://steer.example/", "-edge-ca", ca, "-dns", "", "-check", "500ms")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp, body = getBody(t, http.DefaultClient, "http://"+r2+seg+"?route=steering")
		if resp.StatusCode == 200 || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(string(body), "https://steer.example/steering?asset=") {
		t.Errorf("steering MPD of a router with -self: %s\n%s", resp.Status, body)
	}
	for _, bad := range []string{"ftp://steer.example", "https://", "https://steer.example/path", "steer.example"} {
		out, err := exec.Command(bin, "router", "-edges", edges, "-listen", "127.0.0.1:0", "-dns", "", "-self", bad).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "-self") {
			t.Errorf("-self %q: %v\n%s", bad, err, out)
		}
	}
}

// TestCertCommandAndHSTS: deepcast cert makes the CA once and a leaf for
// the hosts and says how to trust it; a node started with -hsts sends
// Strict-Transport-Security, one without does not.
func TestCertCommandAndHSTS(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	for i, wantMade := range []bool{true, false} {
		out, err := exec.Command(bin, "cert", "-o", dir, "-hosts", "127.0.0.1,localhost,*.cdn.deepcast.test").CombinedOutput()
		if err != nil {
			t.Fatalf("run %d: %v\n%s", i, err, out)
		}
		if made := strings.Contains(string(out), "made a local CA"); made != wantMade ||
			!strings.Contains(string(out), "--ignore-certificate-errors-spki-list=") || !strings.Contains(string(out), "curl --cacert") {
			t.Errorf("run %d output:\n%s", i, out)
		}
	}
	leaf := mustParse(t, filepath.Join(dir, tlsserve.LeafFile))
	if leaf.VerifyHostname("x.cdn.deepcast.test") != nil || leaf.VerifyHostname("127.0.0.1") != nil || leaf.VerifyHostname("localhost") != nil {
		t.Errorf("leaf covers %v %v", leaf.DNSNames, leaf.IPAddresses)
	}
	lib := mediatest.CopyLibrary(t)
	ca := filepath.Join(dir, tlsserve.CAFile)
	for _, hsts := range []bool{false, true} {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		args := []string{"origin", "-library", lib, "-listen", "", "-tls-listen", addr, "-tls-cert", filepath.Join(dir, tlsserve.LeafFile),
			"-tls-key", filepath.Join(dir, tlsserve.LeafKeyFile), "-access-log=false"}
		if hsts {
			args = append(args, "-hsts")
		}
		startNode(t, bin, addr, args...)
		resp, _ := getBody(t, clientFor(t, ca, nil, false), "https://"+addr+"/vod/"+mediatest.AssetName+"/manifest.mpd")
		if got := resp.Header.Get("Strict-Transport-Security") != ""; got != hsts {
			t.Errorf("-hsts=%v: Strict-Transport-Security %q", hsts, resp.Header.Get("Strict-Transport-Security"))
		}
	}
}

// TestNodeHostPort: a node's URL keeps the host its listen address named,
// with the port it got; an address that names every interface (or none)
// gives the listener's own.
func TestNodeHostPort(t *testing.T) {
	for _, c := range []struct{ host, addr, want string }{
		{"router.cdn.example", "203.0.113.5:443", "router.cdn.example:443"},
		{"localhost", "127.0.0.1:34567", "localhost:34567"}, // asked for port 0
		{"::1", "[::1]:80", "[::1]:80"},
		{"", "[::]:443", "[::]:443"},
		{"0.0.0.0", "0.0.0.0:8000", "0.0.0.0:8000"},
		{"::", "[::]:8000", "[::]:8000"},
	} {
		addr, err := net.ResolveTCPAddr("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := nodeHostPort(c.host, addr); got != c.want {
			t.Errorf("%q on %s: %s, want %s", c.host, c.addr, got, c.want)
		}
	}
}

// TestEdgeRingIsRefusedAtOnce runs two edges, each the other's upstream
// (one over HTTPS and HTTP/2, the other over cleartext HTTP/1.1, so that
// both fronts carry CDN-Loop), and checks that a miss is answered 508 Loop
// Detected at once over either protocol, instead of going round the ring
// until -fetch-timeout.
func TestEdgeRingIsRefusedAtOnce(t *testing.T) {
	bin := buildBinary(t)
	ca, leaf := testCerts(t)
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }
	aPlain, aTLS, bTLS := port(), port(), port()
	const fetchTimeout = 8 * time.Second
	common := []string{"edge", "-profile", "bring-home", "-fetch-timeout", fetchTimeout.String(), "-tls-cert", leaf.Cert, "-tls-key", leaf.Key, "-upstream-ca", ca}
	startNode(t, bin, aTLS, append(common, "-name", "a", "-listen", aPlain, "-tls-listen", aTLS, "-upstream", "https://"+bTLS)...)
	startNode(t, bin, bTLS, append(common, "-name", "b", "-listen", "", "-tls-listen", bTLS, "-upstream", "http://"+aPlain)...)
	for i, tc := range []struct {
		client *http.Client
		base   string
	}{{http.DefaultClient, "http://" + aPlain}, {clientFor(t, ca, nil, false), "https://" + aTLS}, {clientFor(t, ca, nil, false), "https://" + bTLS}} {
		start := time.Now()
		resp, body := getBody(t, tc.client, fmt.Sprintf("%s/vod/a/v/%d.m4s", tc.base, i+1))
		if took := time.Since(start); resp.StatusCode != http.StatusLoopDetected || took > fetchTimeout/2 {
			t.Errorf("%s over %s: %s after %v (%q), want 508 at once", tc.base, resp.Proto, resp.Status, took.Round(time.Millisecond), body)
		}
	}
}
