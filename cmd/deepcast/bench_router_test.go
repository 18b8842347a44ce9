package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deepcast/deepcast/edge/routing"
	"github.com/deepcast/deepcast/media/mediatest"
)

var dnsperfQPS = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)

// runDNSPerf loads a DNS server with dnsperf for d and returns queries/s.
func runDNSPerf(t *testing.T, addr, queries string, d time.Duration) float64 {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	out, err := exec.Command("dnsperf", "-s", host, "-p", port, "-d", queries, "-l", strconv.Itoa(int(d.Seconds())),
		"-c", "4", "-T", "2", "-q", "200").CombinedOutput()
	if err != nil {
		t.Fatalf("dnsperf: %v\n%s", err, out)
	}
	m := dnsperfQPS.FindSubmatch(out)
	if m == nil {
		t.Fatalf("dnsperf printed no rate:\n%s", out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// startNSD serves an equivalent static zone with Debian's NSD.
func startNSD(t *testing.T, port int) {
	t.Helper()
	if _, err := exec.LookPath("nsd"); err != nil {
		t.Skip("nsd not installed (make bench installs it)")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	zone := `$ORIGIN cdn.deepcast.test.
$TTL 300
@      IN SOA ns1 hostmaster 1 3600 600 86400 5
@      IN NS  ns1
ns1    IN A   127.0.0.1
video 5 IN A  127.0.0.3
`
	os.WriteFile(filepath.Join(dir, "zone"), []byte(zone), 0o644)
	conf := fmt.Sprintf(`server:
  ip-address: 127.0.0.1@%d
  username: ""
  chroot: ""
  zonesdir: %[2]s
  database: ""
  pidfile: %[2]s/nsd.pid
  xfrdfile: %[2]s/xfrd.state
  zonelistfile: %[2]s/zone.list
  logfile: %[2]s/nsd.log
  server-count: 2
  rrl-ratelimit: 0
  verbosity: 1
remote-control:
  control-enable: no
zone:
  name: cdn.deepcast.test.
  zonefile: %[2]s/zone
`, port, dir)
	os.WriteFile(filepath.Join(dir, "nsd.conf"), []byte(conf), 0o644)
	cmd := exec.Command("nsd", "-d", "-c", filepath.Join(dir, "nsd.conf"))
	out := &mediatest.Capture{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("nsd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	// Wait until it has read the zone and answers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		log, _ := os.ReadFile(filepath.Join(dir, "nsd.log"))
		if strings.Contains(string(log), "nsd started") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nsd did not start:\n%s\n%s", log, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBenchRouterDNSVsNSD loads our router's DNS and NSD serving an
// equivalent static zone with dnsperf, interleaved; then HTTP redirect
// decisions per second with wrk. Run by `make bench`.
func TestBenchRouterDNSVsNSD(t *testing.T) {
	if os.Getenv("DEEPCAST_BENCH") == "" {
		t.Skip("set DEEPCAST_BENCH=1 (make bench) to run")
	}
	if _, err := exec.LookPath("dnsperf"); err != nil {
		t.Skip("dnsperf not installed (make bench installs it)")
	}
	tuneGC()
	var yaml strings.Builder
	yaml.WriteString("edges:\n")
	for i, sub := range []string{"10.1.0.0/16", "10.2.0.0/16", "", ""} {
		e := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/api/stats" {
				w.Write([]byte(`{"requests": 1}`))
			}
		}))
		defer e.Close()
		profile, subnets := "bring-home", ""
		if sub != "" {
			profile, subnets = "enter-deep", ", subnets: ["+sub+"]"
		}
		fmt.Fprintf(&yaml, "  - {name: e%d, url: %s, addresses: [127.0.0.%d], profile: %s%s}\n", i, e.URL, i+2, profile, subnets)
	}
	edges, err := routing.ParseEdges([]byte(yaml.String()))
	if err != nil {
		t.Fatal(err)
	}
	r, err := routing.New(routing.Config{Edges: edges, Strategy: "nearest", Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	ready := make(chan string, 1)
	go r.ServeDNSOn(ctx, "127.0.0.1:0", ready)
	var ours string
	select {
	case ours = <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("the router's DNS never listened")
	}
	nport := freePort(t)
	startNSD(t, nport)
	theirs := fmt.Sprintf("127.0.0.1:%d", nport)
	queries := filepath.Join(t.TempDir(), "queries")
	os.WriteFile(queries, []byte(strings.Repeat("video.cdn.deepcast.test A\n", 100)), 0o644)
	runDNSPerf(t, ours, queries, 2*time.Second)
	runDNSPerf(t, theirs, queries, 2*time.Second)
	var a, b []float64
	for range 3 {
		a = append(a, runDNSPerf(t, ours, queries, 5*time.Second))
		b = append(b, runDNSPerf(t, theirs, queries, 5*time.Second))
	}
	slices.Sort(a)
	slices.Sort(b)
	fmt.Printf("router DNS vs NSD (static zone), dnsperf 4 clients, 5 s runs, median of 3 interleaved:\n")
	fmt.Printf("  deepcast router  %9.0f answers/s (each computed from live edge state)\n  NSD              %9.0f answers/s\n", a[1], b[1])
	fmt.Printf("  ratio            %9.2fx (target >= 0.5)\n", a[1]/b[1])

	hs := httptest.NewServer(r)
	defer hs.Close()
	res := runWrk(t, hs.URL, []string{"/vod/demo/v/1.m4s", "/vod/demo/v/2.m4s"}, 64, 5*time.Second)
	fmt.Printf("  HTTP 302 decisions: %s\n", res)
}
