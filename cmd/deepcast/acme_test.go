package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deepcast/deepcast/media/mediatest"
)

// TestACMEWithPebble: a node started with -acme-domains gets its
// certificate from a real ACME server run here (Let's Encrypt's pebble, a
// tool of this module), which validates the TLS-ALPN-01 challenge by
// connecting to the node over loopback; the name resolves through
// deepcast's own router DNS, which pebble is told to use.
func TestACMEWithPebble(t *testing.T) {
	if testing.Short() {
		t.Skip("builds pebble and the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	pebble := filepath.Join(dir, "pebble")
	if out, err := exec.Command("go", "build", "-o", pebble, "github.com/letsencrypt/pebble/v2/cmd/pebble").CombinedOutput(); err != nil {
		t.Fatalf("build pebble: %v\n%s", err, out)
	}
	modDir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/letsencrypt/pebble/v2").Output()
	if err != nil {
		t.Fatal(err)
	}
	certs := filepath.Join(strings.TrimSpace(string(modDir)), "test", "certs")
	const domain = "video.cdn.deepcast.test"
	plainPort, tlsPort, acmePort, mgmtPort, httpPort := freePort(t), freePort(t), freePort(t), freePort(t), freePort(t)
	dnsPort := freePort(t) // the router serves DNS on UDP and TCP

	// The router answers video.cdn.deepcast.test with the node's address.
	edges := filepath.Join(dir, "edges.yaml")
	os.WriteFile(edges, []byte(fmt.Sprintf("edges:\n  - {name: node, url: http://127.0.0.1:%d, addresses: [127.0.0.1], profile: bring-home}\n", plainPort)), 0o644)
	routerPort := freePort(t)
	startNode(t, bin, fmt.Sprintf("127.0.0.1:%d", routerPort), "router", "-edges", edges, "-listen", fmt.Sprintf("127.0.0.1:%d", routerPort),
		"-dns", fmt.Sprintf("127.0.0.1:%d", dnsPort), "-check", "500ms")

	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": fmt.Sprintf("127.0.0.1:%d", acmePort), "managementListenAddress": fmt.Sprintf("127.0.0.1:%d", mgmtPort),
		"certificate": filepath.Join(certs, "localhost", "cert.pem"), "privateKey": filepath.Join(certs, "localhost", "key.pem"),
		"httpPort": httpPort, "tlsPort": tlsPort, "ocspResponderURL": "", "externalAccountBindingRequired": false,
		"retryAfter": map[string]int{"authz": 1, "order": 1}, "keyAlgorithm": "ecdsa",
		"profiles": map[string]any{"default": map[string]any{"description": "test", "validityPeriod": 7776000}},
	}}
	data, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "pebble.json")
	os.WriteFile(cfgFile, data, 0o644)
	pcmd := exec.Command(pebble, "-config", cfgFile, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort))
	pcmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	plog := &mediatest.Capture{}
	pcmd.Stdout, pcmd.Stderr = plog, plog
	if err := pcmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pcmd.Process.Kill(); pcmd.Wait() })
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", acmePort))

	node := startNode(t, bin, fmt.Sprintf("127.0.0.1:%d", tlsPort), "origin", "-library", mediatest.CopyLibrary(t),
		"-listen", fmt.Sprintf("127.0.0.1:%d", plainPort), "-tls-listen", fmt.Sprintf("127.0.0.1:%d", tlsPort),
		"-acme-domains", domain, "-acme-dir", filepath.Join(dir, "acme"),
		"-acme-url", fmt.Sprintf("https://localhost:%d/dir", acmePort), "-acme-ca", filepath.Join(certs, "pebble.minica.pem"))

	// The router answers the name once it sees the node up.
	deadline := time.Now().Add(15 * time.Second)
	for {
		var st struct {
			Edges []struct {
				Up bool `json:"up"`
			} `json:"edges"`
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/stats", routerPort))
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		if len(st.Edges) == 1 && st.Edges[0].Up {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the router never saw the node up")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Pebble's issuing root, from its management interface.
	minica, err := os.ReadFile(filepath.Join(certs, "pebble.minica.pem"))
	if err != nil {
		t.Fatal(err)
	}
	mpool := x509.NewCertPool()
	mpool.AppendCertsFromPEM(minica)
	mgmt := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: mpool}}}
	resp, err := mgmt.Get(fmt.Sprintf("https://localhost:%d/roots/0", mgmtPort))
	if err != nil {
		t.Fatal(err)
	}
	root, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(root) {
		t.Fatalf("pebble root: %q", root)
	}
	// The first handshake for the name makes the node order its
	// certificate; it is served once pebble has validated and issued it.
	dial := &net.Dialer{Timeout: 5 * time.Second}
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: domain},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dial.DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", tlsPort))
		}}}
	resp, err = client.Get(fmt.Sprintf("https://%s:%d/vod/%s/manifest.mpd", domain, tlsPort, mediatest.AssetName))
	if err != nil {
		t.Fatalf("HTTPS with the ACME certificate: %v\nnode:\n%s\npebble:\n%s", err, node.logs.String(), tailLines(plog.String(), 30))
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %s", resp.Status)
	}
	leaf := resp.TLS.PeerCertificates[0]
	if !strings.Contains(leaf.Issuer.CommonName, "Pebble") || leaf.VerifyHostname(domain) != nil {
		t.Errorf("served certificate issued by %q for %v", leaf.Issuer.CommonName, leaf.DNSNames)
	}
	t.Logf("certificate for %v issued by %s", leaf.DNSNames, leaf.Issuer.CommonName)
}
