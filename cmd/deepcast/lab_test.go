package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/deepcast/deepcast/cmd/deepcast/internal/tlsserve"
	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/player"
)

// The fault lab: the whole CDN on a network of namespaces (labnet_test.go)
// — two origins over one library, two bring-home siblings, three
// enter-deep nodes, the router, and a client network of viewers, each a
// `deepcast play` process with its own bandwidth trace and round trip,
// plus one Chromium with dash.js — while faults are injected on a
// schedule. It measures what viewers got and how fast the fleet noticed.
// `make test` runs the short version; `make lab` the long one
// (DEEPCAST_LAB=full).

// labToken guards the nodes' stats: they listen on addresses other hosts
// reach, so /metrics and /api/stats need it (see -metrics-token).
const labToken = "lab-metrics-token"

// labCheck is every health check interval of the lab: edges' upstream
// checks and the router's edge checks. Recovery is measured against it.
const labCheck = time.Second

// labScale is the short or the full lab.
type labScale struct {
	asset   time.Duration // length of the packaged asset
	viewers int
	stretch float64 // fault schedule times are multiplied by this
}

// labProc is one node process.
type labProc struct {
	name string
	host *labHost
	args []string
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// lab is a running lab.
type lab struct {
	t     *testing.T
	net   *labNet
	bin   string
	dir   string
	procs map[string]*labProc
	urls  map[string]string // node name -> base URL (cleartext: tiers and the harness)
	// viewer is what viewers reach over HTTPS: the enter-deep nodes and
	// the router, with the lab's own CA (ca).
	viewer map[string]string
	ca     string
	// stats are accumulated over each node's restarts.
	stats *labStats
}

func (l *lab) start(p *labProc) {
	l.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := l.net.command(p.host, l.bin, p.args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("%s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); f.Close(); close(done) }()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
}

// signal sends sig and, for a kill or a stop, waits for the exit.
func (l *lab) signal(p *labProc, sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// waitUp waits until the node answers /healthz from the test's namespace.
func (l *lab) waitUp(name string, within time.Duration) {
	l.t.Helper()
	c := &http.Client{Timeout: 500 * time.Millisecond}
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if resp, err := c.Get(l.urls[name] + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(l.procs[name].log)
	l.t.Fatalf("%s did not come up within %s:\n%s", name, within, tailLines(string(log), 20))
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// getJSON reads url's JSON with the lab's token.
func getJSON(c *http.Client, url string, into any) error {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+labToken)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return errors.New(resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

// nodeSample is what the lab reads of a node's /api/stats.
type nodeSample struct {
	Requests      int64            `json:"requests"`
	Hits          int64            `json:"hits"`
	Misses        int64            `json:"misses"`
	Stale         int64            `json:"stale"`
	Revalidations int64            `json:"revalidations"`
	Errors        int64            `json:"errors"`
	BytesServed   map[string]int64 `json:"bytesServed"`
	BytesSent     int64            `json:"bytesSent"` // origins
	Upstreams     []struct {
		URL     string `json:"url"`
		Healthy bool   `json:"healthy"`
	} `json:"upstreams"`
	Siblings []struct {
		URL     string `json:"url"`
		Healthy bool   `json:"healthy"`
	} `json:"siblings"`
}

// served is the bytes a node sent: to clients (edges) or to edges (origins).
func (s nodeSample) served() int64 {
	return s.BytesSent + s.BytesServed["memory"] + s.BytesServed["disk"] + s.BytesServed["upstream"]
}

// labStats accumulates each node's counters over its restarts: a counter
// that goes down is a new process, whose counts add to the last one's.
type labStats struct {
	mu     sync.Mutex
	base   map[string]nodeSample
	latest map[string]nodeSample
	series []labPoint
}

// labPoint is the fleet's totals at one moment.
type labPoint struct {
	at                      time.Time
	originBytes, deepBytes  int64
	deepHitish, deepLookups int64
	homeHitish, homeLookups int64
}

func add(a, b nodeSample) nodeSample {
	a.Requests += b.Requests
	a.Hits += b.Hits
	a.Misses += b.Misses
	a.Stale += b.Stale
	a.Revalidations += b.Revalidations
	a.Errors += b.Errors
	a.BytesSent += b.BytesSent
	m := map[string]int64{}
	for k, v := range a.BytesServed {
		m[k] += v
	}
	for k, v := range b.BytesServed {
		m[k] += v
	}
	a.BytesServed = m
	return a
}

func (s *labStats) record(name string, cur nodeSample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.latest[name]; ok && cur.Requests < last.Requests {
		s.base[name] = add(s.base[name], last) // restarted
	}
	s.latest[name] = cur
}

func (s *labStats) total(name string) nodeSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return add(s.base[name], s.latest[name])
}

// sample reads every node once and adds a point to the series.
func (l *lab) sample(c *http.Client) {
	var wg sync.WaitGroup
	for name := range l.procs {
		if name == "router" {
			continue
		}
		wg.Go(func() {
			var s nodeSample
			if getJSON(c, l.urls[name]+"/api/stats", &s) == nil {
				l.stats.record(name, s)
			}
		})
	}
	wg.Wait()
	p := labPoint{at: time.Now()}
	for name := range l.procs {
		s := l.stats.total(name)
		switch {
		case strings.HasPrefix(name, "origin"):
			p.originBytes += s.BytesSent
		case strings.HasPrefix(name, "deep"):
			p.deepBytes += s.served()
			p.deepHitish += s.Hits + s.Stale
			p.deepLookups += s.Hits + s.Stale + s.Misses + s.Revalidations
		case strings.HasPrefix(name, "home"):
			p.homeHitish += s.Hits + s.Stale
			p.homeLookups += s.Hits + s.Stale + s.Misses + s.Revalidations
		}
	}
	l.stats.mu.Lock()
	l.stats.series = append(l.stats.series, p)
	l.stats.mu.Unlock()
}

// upstreamHealthy reads whether node sees target (a base URL) as healthy
// among its upstreams or siblings.
func (l *lab) upstreamHealthy(c *http.Client, node, target string) (bool, error) {
	var s nodeSample
	if err := getJSON(c, l.urls[node]+"/api/stats", &s); err != nil {
		return false, err
	}
	for _, u := range append(s.Upstreams, s.Siblings...) {
		if u.URL == target {
			return u.Healthy, nil
		}
	}
	return false, fmt.Errorf("%s does not list %s", node, target)
}

// routerSeesUp reads whether the router has edge up.
func (l *lab) routerSeesUp(c *http.Client, edgeName string) (bool, error) {
	var st struct {
		Edges []struct {
			Name string `json:"name"`
			Up   bool   `json:"up"`
		} `json:"edges"`
	}
	if err := getJSON(c, l.urls["router"]+"/api/stats", &st); err != nil {
		return false, err
	}
	for _, e := range st.Edges {
		if e.Name == edgeName {
			return e.Up, nil
		}
	}
	return false, fmt.Errorf("router does not list %s", edgeName)
}

// faultResult is one injected fault and how the fleet took it.
type faultResult struct {
	at       time.Duration // since viewers started
	name     string
	detected time.Duration // until the nodes next to it saw it; -1: never
	noticed  bool          // whether detection applies
	probeErr time.Duration // span of failed probe requests after it
}

// probe is a viewer-like client in the test's namespace: a segment
// through the router every 100 ms, checked against its ETag.
type probe struct {
	mu   sync.Mutex
	fail []time.Time
	oks  atomic.Int64
}

func (l *lab) runProbe(ctx context.Context, p *probe, segs []string) {
	roots, err := tlsserve.ClientConfig(l.ca, "", "")
	if err != nil {
		l.t.Error(err)
		return
	}
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: roots}}
	for i := 0; ctx.Err() == nil; i++ {
		err := func() error {
			resp, err := c.Get(l.viewer["router"] + segs[i%len(segs)])
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			h := sha256.New()
			if _, err := io.Copy(h, resp.Body); err != nil {
				return err
			}
			if resp.StatusCode != 200 {
				return errors.New(resp.Status)
			}
			if tag := strings.Trim(resp.Header.Get("ETag"), `"`); !strings.HasPrefix(hex.EncodeToString(h.Sum(nil)), tag) {
				return errors.New("body does not match its ETag")
			}
			return nil
		}()
		if err != nil {
			p.mu.Lock()
			p.fail = append(p.fail, time.Now())
			p.mu.Unlock()
		} else {
			p.oks.Add(1)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// errorSpan is how long after from probe requests kept failing, up to to.
func (p *probe) errorSpan(from, to time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var last time.Time
	for _, f := range p.fail {
		if !f.Before(from) && f.Before(to) {
			last = f
		}
	}
	if last.IsZero() {
		return 0
	}
	return last.Sub(from)
}

// viewerReport is a play -json file.
type viewerReport struct {
	OK           bool              `json:"ok"`
	Error        string            `json:"error"`
	QoE          float64           `json:"qoe"`
	Chunks       int               `json:"chunks"`
	Stalls       int               `json:"stalls"`
	StallSeconds float64           `json:"stallSeconds"`
	MeanBitrate  float64           `json:"meanBitrateKbps"`
	Requests     player.FetchStats `json:"requests"`
}

func packageLabAsset(t *testing.T, d time.Duration) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.mp4")
	ctx := context.Background()
	if err := media.MakeSample(ctx, src, media.SampleOptions{Duration: d, Width: 854, Height: 480}); err != nil {
		t.Fatal(err)
	}
	ladder, err := media.ParseLadder("854x480@1200k,640x360@700k,320x180@250k")
	if err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(dir, "lib")
	if _, err := media.Package(ctx, []string{src}, media.PackageOptions{Library: lib, Name: "lab", Ladder: ladder, Preset: "ultrafast"}); err != nil {
		t.Fatal(err)
	}
	return lib
}

// labTraces picks bandwidth traces a viewer can mostly play the ladder
// over (mean of at least 1 Mbit/s), from the repository's FCC set.
func labTraces(t *testing.T) []string {
	t.Helper()
	dir := filepath.Join(repoRoot(), "testdata", "traces", "fcc")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() || strings.HasSuffix(e.Name(), ".md") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		ts, err := player.LoadTraces([]string{p})
		if err != nil || len(ts) == 0 {
			continue
		}
		var sum float64
		for _, v := range ts[0].Mbps {
			sum += v
		}
		if len(ts[0].Mbps) > 0 && sum/float64(len(ts[0].Mbps)) >= 1 {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Fatal("no usable FCC traces in testdata")
	}
	return out
}

func TestFaultLab(t *testing.T) {
	if why := labNamespacesSupported(); why != "" {
		t.Skip("fault lab: " + why)
	}
	// It runs on its own (make test runs it after the other tests): it
	// loads both cores for a minute, which would put other packages'
	// timing-bound tests at the mercy of the scheduler.
	var scale labScale
	switch os.Getenv("DEEPCAST_LAB") {
	case "short":
		scale = labScale{asset: 40 * time.Second, viewers: 16, stretch: 1}
	case "full":
		scale = labScale{asset: 120 * time.Second, viewers: 40, stretch: 2.5}
	default:
		t.Skip("the fault lab runs with DEEPCAST_LAB=short (make test) or full (make lab)")
	}
	runLab(t, scale)
}

func runLab(t *testing.T, scale labScale) {
	bin := buildBinary(t)
	lib := packageLabAsset(t, scale.asset)
	names := []string{"origin1", "origin2", "home1", "home2", "deep1", "deep2", "deep3", "router", "clients"}
	kinds := map[string]string{"origin1": "origin", "origin2": "origin", "home1": "home", "home2": "home",
		"deep1": "deep", "deep2": "deep", "deep3": "deep", "router": "router", "clients": "clients"}
	nw := newLabNet(t, names, kinds)
	dir := t.TempDir()
	l := &lab{t: t, net: nw, bin: bin, dir: dir, procs: map[string]*labProc{}, urls: map[string]string{}, viewer: map[string]string{},
		stats: &labStats{base: map[string]nodeSample{}, latest: map[string]nodeSample{}}}
	ports := map[string]string{"origin": "8080", "home": "9200", "deep": "9100", "router": "8000"}
	for _, n := range names[:8] {
		l.urls[n] = "http://" + nw.host(n).IP + ":" + ports[kinds[n]]
	}
	// Viewers use HTTPS: a lab CA, one certificate per viewer-facing node
	// (so one can be swapped), and a second certificate ready for the swap.
	var labHosts []string
	for _, n := range names {
		labHosts = append(labHosts, nw.host(n).IP)
	}
	ca, first, _, err := tlsserve.LocalCA(filepath.Join(dir, "tls"), labHosts, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l.ca = ca
	swapDir := filepath.Join(dir, "tls-next")
	os.MkdirAll(swapDir, 0o755)
	for _, f := range []string{tlsserve.CAFile, tlsserve.CAKeyFile} {
		b, _ := os.ReadFile(filepath.Join(dir, "tls", f))
		os.WriteFile(filepath.Join(swapDir, f), b, 0o600)
	}
	_, next, _, err := tlsserve.LocalCA(swapDir, labHosts, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	nodeCert := map[string]tlsserve.Pair{}
	for _, n := range []string{"deep1", "deep2", "deep3", "router"} {
		p := tlsserve.Pair{Cert: filepath.Join(dir, "tls", n+".pem"), Key: filepath.Join(dir, "tls", n+"-key.pem")}
		copyAtomically(t, first.Cert, p.Cert)
		copyAtomically(t, first.Key, p.Key)
		nodeCert[n] = p
		l.viewer[n] = "https://" + nw.host(n).IP + ":8443"
	}
	// home2's disk tier is a small tmpfs of its own, so the lab can fill it.
	homeDisk := map[string]string{"home1": filepath.Join(dir, "disk-home1"), "home2": filepath.Join(dir, "disk-home2")}
	for _, d := range homeDisk {
		os.MkdirAll(d, 0o755)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=192m", "tmpfs", homeDisk["home2"]).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs for home2's disk tier: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", homeDisk["home2"]).Run() })
	common := []string{"-metrics-token", labToken}
	check := labCheck.String()
	origins := l.urls["origin1"] + "," + l.urls["origin2"]
	homes := l.urls["home1"] + "," + l.urls["home2"]
	modules := filepath.Join(repoRoot(), "web", "node_modules")
	args := map[string][]string{
		"origin1": {"origin", "-library", lib, "-listen", nw.host("origin1").IP + ":8080", "-access-log=false"},
		"origin2": {"origin", "-library", lib, "-listen", nw.host("origin2").IP + ":8080", "-access-log=false"},
		"router": {"router", "-edges", filepath.Join(dir, "edges.yaml"), "-listen", nw.host("router").IP + ":8000", "-dns", "",
			"-strategy", "round-robin", "-check", check, "-edge-token", labToken, "-edge-ca", ca,
			"-tls-listen", nw.host("router").IP + ":8443", "-tls-cert", nodeCert["router"].Cert, "-tls-key", nodeCert["router"].Key},
	}
	for _, h := range []string{"home1", "home2"} {
		args[h] = []string{"edge", "-profile", "bring-home", "-name", h, "-listen", nw.host(h).IP + ":9200", "-upstream", origins,
			"-siblings", homes, "-self", l.urls[h], "-disk", homeDisk[h], "-disk-size", "1GiB", "-mem", "256MiB",
			"-check", check, "-fetch-timeout", "4s"}
	}
	for _, d := range []string{"deep1", "deep2", "deep3"} {
		args[d] = []string{"edge", "-profile", "enter-deep", "-name", d, "-listen", nw.host(d).IP + ":9100", "-upstream", homes,
			"-mem", "128MiB", "-check", check, "-fetch-timeout", "4s", "-web-modules", modules,
			"-tls-listen", nw.host(d).IP + ":8443", "-tls-cert", nodeCert[d].Cert, "-tls-key", nodeCert[d].Key}
	}
	var edgesYAML strings.Builder
	edgesYAML.WriteString("edges:\n")
	for i, d := range []string{"deep1", "deep2", "deep3"} {
		fmt.Fprintf(&edgesYAML, "  - {name: %s, url: %s, addresses: [%s], profile: enter-deep, subnets: [10.99.%d.0/24]}\n", d, l.viewer[d], nw.host(d).IP, 90+i)
	}
	os.WriteFile(filepath.Join(dir, "edges.yaml"), []byte(edgesYAML.String()), 0o644)
	for _, n := range names[:8] {
		a := args[n]
		if n != "router" {
			a = append(a, common...)
		}
		p := &labProc{name: n, host: nw.host(n), args: a, log: filepath.Join(dir, n+".log")}
		l.procs[n] = p
	}
	t.Cleanup(func() {
		for _, p := range l.procs {
			l.signal(p, syscall.SIGKILL)
		}
	})
	for _, n := range names[:8] {
		l.start(l.procs[n])
	}
	for _, n := range names[:8] {
		l.waitUp(n, 20*time.Second)
	}
	t.Logf("lab up: %d nodes in %d namespaces; logs in %s", len(l.procs), len(names)+1, dir)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &http.Client{Timeout: time.Second}
	var bg sync.WaitGroup
	bg.Go(func() {
		for ctx.Err() == nil {
			l.sample(c)
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	})
	// Segments the probe asks the router for, every rendition.
	var segs []string
	a, err := media.LoadAsset(mustResolve(t, lib, "lab"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range a.Renditions {
		for n := 1; n <= len(r.Segments); n++ {
			segs = append(segs, fmt.Sprintf("/vod/lab/%s/%d.m4s", r.ID, n))
		}
	}
	pr := &probe{}
	bg.Go(func() { l.runProbe(ctx, pr, segs) })

	// Viewers.
	traces := labTraces(t)
	abrs := []string{"robustmpc", "bola", "dynamic", "throughput"}
	mpd := l.viewer["router"] + "/vod/lab/manifest.mpd?route=steering"
	reports := make([]viewerReport, scale.viewers)
	viewersStart := time.Now()
	var viewers sync.WaitGroup
	for i := range scale.viewers {
		viewers.Go(func() {
			time.Sleep(time.Duration(i) * 4 * time.Second / time.Duration(scale.viewers))
			out := filepath.Join(dir, fmt.Sprintf("viewer%02d.json", i))
			vctx, vcancel := context.WithTimeout(ctx, scale.asset*3+60*time.Second)
			defer vcancel()
			cmd := exec.CommandContext(vctx, "ip", "netns", "exec", nw.host("clients").NS, bin, "play", "-abr", abrs[i%len(abrs)],
				"-trace", traces[i%len(traces)], "-rtt", "40ms", "-verify", "-quiet", "-json", out, "-ca", ca, mpd)
			logs, err := cmd.CombinedOutput()
			data, rerr := os.ReadFile(out)
			if rerr == nil {
				json.Unmarshal(data, &reports[i])
			}
			if err != nil && reports[i].Error == "" {
				reports[i].OK = false
				reports[i].Error = fmt.Sprintf("%v: %s", err, tailLines(string(logs), 3))
			}
		})
	}
	// One browser with dash.js, its page from deep3, the MPD from the router.
	var browserStats pageStats
	var browserErr error
	var browserNet *networkLog
	viewers.Go(func() {
		spkis := []string{}
		for _, p := range []tlsserve.Pair{first, next} {
			h, err := spkiHash(p.Cert)
			if err != nil {
				browserErr = err
				return
			}
			spkis = append(spkis, h)
		}
		bctx := browserWith(t, chromedp.Flag("disable-quic", true), chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(spkis, ",")))
		page := l.viewer["deep3"] + "/?buffer=6&mpd=" + url.QueryEscape(mpd)
		browserNet = watchNetwork(t, bctx)
		if err := chromedp.Do(bctx, chromedp.Navigate(page)); err != nil {
			browserErr = err
			return
		}
		deadline := time.Now().Add(scale.asset + 60*time.Second)
		for time.Now().Before(deadline) {
			s, err := chromedp.Run(bctx, chromedp.Evaluate[pageStats](`window.deepcast || {}`))
			if err != nil {
				browserErr = err
				return
			}
			browserStats = s
			// dash.js reports a failed request (say, to a node just
			// killed) as an error and goes on at another BaseURL: what
			// counts is that playback goes on.
			if s.CurrentTime >= scale.asset.Seconds()-3 {
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
	})

	// The faults.
	at := func(sec float64) time.Time {
		return viewersStart.Add(time.Duration(sec * scale.stretch * float64(time.Second)))
	}
	var faults []*faultResult
	inject := func(when time.Time, name string, do func(), seen func() (bool, error)) {
		time.Sleep(time.Until(when))
		f := &faultResult{at: time.Since(viewersStart), name: name, detected: -1}
		start := time.Now()
		do()
		if seen != nil {
			f.noticed = true
			for time.Since(start) < 10*labCheck {
				if ok, err := seen(); err == nil && ok {
					f.detected = time.Since(start)
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		faults = append(faults, f)
		t.Logf("%6.1fs  %-40s detected after %v", f.at.Seconds(), name, f.detected.Round(10*time.Millisecond))
	}
	not := func(f func() (bool, error)) func() (bool, error) {
		return func() (bool, error) { ok, err := f(); return !ok, err }
	}
	all := func(fs ...func() (bool, error)) func() (bool, error) {
		return func() (bool, error) {
			for _, f := range fs {
				if ok, err := f(); err != nil || !ok {
					return false, err
				}
			}
			return true, nil
		}
	}
	routerUp := func(e string) func() (bool, error) { return func() (bool, error) { return l.routerSeesUp(c, e) } }
	sees := func(node, target string) func() (bool, error) {
		return func() (bool, error) { return l.upstreamHealthy(c, node, l.urls[target]) }
	}
	inject(at(8), "kill -9 enter-deep deep1", func() { l.signal(l.procs["deep1"], syscall.SIGKILL) }, not(routerUp("deep1")))
	inject(at(13), "kill -9 origin origin1", func() { l.signal(l.procs["origin1"], syscall.SIGKILL) },
		all(not(sees("home1", "origin1")), not(sees("home2", "origin1"))))
	inject(at(18), "partition bring-home home1 (link down)", func() { nw.partition("home1", true) },
		all(not(sees("deep2", "home1")), not(sees("deep3", "home1")), not(sees("home2", "home1"))))
	inject(at(22), "fill home2's disk tier (ENOSPC)", func() {
		if err := fillDisk(homeDisk["home2"]); !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("filling home2's disk tier stopped with %v, not ENOSPC: the fault did not take", err)
		}
	}, nil)
	inject(at(26), "heal home1's link", func() { nw.partition("home1", false) },
		all(sees("deep2", "home1"), sees("deep3", "home1"), sees("home2", "home1")))
	inject(at(29), "restart origin1", func() { l.start(l.procs["origin1"]) }, all(sees("home1", "origin1"), sees("home2", "origin1")))
	nextSerial := mustParse(t, next.Cert).SerialNumber
	inject(at(30.5), "swap deep3's certificate on disk", func() {
		copyAtomically(t, next.Key, nodeCert["deep3"].Key)
		copyAtomically(t, next.Cert, nodeCert["deep3"].Cert)
	}, func() (bool, error) {
		cs, err := tls.Dial("tcp", nw.host("deep3").IP+":8443", &tls.Config{InsecureSkipVerify: true}) // reads which certificate is served
		if err != nil {
			return false, err
		}
		defer cs.Close()
		return cs.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(nextSerial) == 0, nil
	})
	inject(at(32), "restart deep1", func() { l.start(l.procs["deep1"]) }, routerUp("deep1"))
	inject(at(33.5), "SIGHUP home1 and deep3", func() {
		for _, n := range []string{"home1", "deep3"} {
			l.procs[n].mu.Lock()
			l.procs[n].cmd.Process.Signal(syscall.SIGHUP)
			l.procs[n].mu.Unlock()
		}
	}, func() (bool, error) {
		time.Sleep(300 * time.Millisecond) // a node that SIGHUP ended would be gone by now
		for _, n := range []string{"home1", "deep3"} {
			select {
			case <-l.procs[n].done:
				return false, fmt.Errorf("%s exited on SIGHUP", n)
			default:
			}
			resp, err := c.Get(l.urls[n] + "/healthz")
			if err != nil {
				return false, err
			}
			resp.Body.Close()
		}
		return true, nil
	})
	// Detection is timed from the moment the new process answers: how
	// long the router takes to send viewers to it again.
	inject(at(35), "restart deep2 (SIGTERM, start again)", func() {
		l.signal(l.procs["deep2"], syscall.SIGTERM)
		l.start(l.procs["deep2"])
		l.waitUp("deep2", 10*time.Second)
	}, routerUp("deep2"))
	inject(at(38), "free home2's disk tier", func() { os.Remove(filepath.Join(homeDisk["home2"], "ballast")) }, nil)

	viewers.Wait()
	end := time.Now()
	cancel()
	bg.Wait()
	l.sample(c)
	for i := range faults {
		to := end
		if i+1 < len(faults) {
			to = viewersStart.Add(faults[i+1].at)
		}
		faults[i].probeErr = pr.errorSpan(viewersStart.Add(faults[i].at), to)
	}

	rep := summarizeLab(l, reports, faults, pr, viewersStart, end)
	rep.browser, rep.browserErr = browserStats, browserErr
	text := rep.String(scale)
	t.Log("\n" + text)
	if browserNet != nil {
		t.Logf("what the browser's requests met (faults fail some on purpose):\n%s", browserNet)
	}
	if out := os.Getenv("DEEPCAST_LAB_OUT"); out != "" {
		os.WriteFile(out, []byte(text), 0o644)
	}
	for name, p := range l.procs {
		if log, _ := os.ReadFile(p.log); strings.Contains(string(log), "panic") {
			t.Errorf("%s logged a panic:\n%s", name, tailLines(string(log), 30))
		}
	}
	// The targets.
	if rep.failedSessions > 0 {
		t.Errorf("%d of %d viewer sessions failed", rep.failedSessions, len(reports))
	}
	if rep.corrupt > 0 {
		t.Errorf("%d corrupt bodies reached viewers", rep.corrupt)
	}
	if rep.steadyOffload < 0.95 {
		t.Errorf("origin offload in steady state %.1f%%, target 95%%", 100*rep.steadyOffload)
	}
	for _, f := range faults {
		if f.noticed && (f.detected < 0 || f.detected > 2*labCheck+labCheck/2) {
			t.Errorf("%s: detected after %v, target 2 health intervals (%v)", f.name, f.detected, 2*labCheck)
		}
	}
	if browserErr != nil || browserStats.CurrentTime < scale.asset.Seconds()-5 {
		t.Errorf("the browser viewer: %v, %+v", browserErr, browserStats)
		if browserNet != nil {
			t.Logf("the browser's failed requests:\n%s", browserNet)
		}
		if log, err := os.ReadFile(l.procs["deep3"].log); err == nil {
			t.Logf("deep3, which served the page, logged:\n%s", tailLines(string(log), 40))
		}
	}
}

// copyAtomically copies src over dst through a temporary file and a
// rename, as an operator's deploy tool replaces a certificate.
func copyAtomically(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// fillDisk writes a ballast file into dir until the file system is full.
// It returns the error that stopped it: ENOSPC when the fault took.
func fillDisk(dir string) error {
	f, err := os.Create(filepath.Join(dir, "ballast"))
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			return err
		}
	}
}

func mustResolve(t *testing.T, lib, name string) string {
	t.Helper()
	dir, err := (media.Library{Root: lib}).Resolve(name)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// labReport is what a lab run measured.
type labReport struct {
	sessions, failedSessions int
	failures                 []string
	qoeMean, qoeP10          float64
	stalls                   int
	stallSeconds             float64
	failedRequests, corrupt  int64
	verified, switches       int64
	offload, steadyOffload   float64
	deepHit, homeHit         float64
	faults                   []*faultResult
	probeOK, probeFail       int
	browser                  pageStats
	browserErr               error
	duration                 time.Duration
}

func summarizeLab(l *lab, reports []viewerReport, faults []*faultResult, pr *probe, start, end time.Time) *labReport {
	r := &labReport{sessions: len(reports), faults: faults, duration: end.Sub(start)}
	var qoes []float64
	for _, v := range reports {
		if !v.OK {
			r.failedSessions++
			r.failures = append(r.failures, v.Error)
			continue
		}
		qoes = append(qoes, v.QoE)
		r.stalls += v.Stalls
		r.stallSeconds += v.StallSeconds
		r.failedRequests += v.Requests.Failed
		r.corrupt += v.Requests.Corrupt
		r.verified += v.Requests.Verified
		r.switches += v.Requests.Switches
	}
	if len(qoes) > 0 {
		slices.Sort(qoes)
		var sum float64
		for _, q := range qoes {
			sum += q
		}
		r.qoeMean = sum / float64(len(qoes))
		r.qoeP10 = qoes[int(math.Floor(0.1*float64(len(qoes)-1)))]
	}
	l.stats.mu.Lock()
	series := slices.Clone(l.stats.series)
	l.stats.mu.Unlock()
	if len(series) > 1 {
		first, last := series[0], series[len(series)-1]
		ratio := func(a, b labPoint) float64 {
			if d := b.deepBytes - a.deepBytes; d > 0 {
				return 1 - float64(b.originBytes-a.originBytes)/float64(d)
			}
			return 0
		}
		r.offload = ratio(first, last)
		// Steady state: the second half of the viewing time.
		mid := series[0]
		for _, p := range series {
			if p.at.Before(start.Add(end.Sub(start) / 2)) {
				mid = p
			}
		}
		r.steadyOffload = ratio(mid, last)
		if last.deepLookups > 0 {
			r.deepHit = float64(last.deepHitish) / float64(last.deepLookups)
		}
		if last.homeLookups > 0 {
			r.homeHit = float64(last.homeHitish) / float64(last.homeLookups)
		}
	}
	pr.mu.Lock()
	r.probeFail = len(pr.fail)
	pr.mu.Unlock()
	r.probeOK = int(pr.oks.Load())
	return r
}

func (r *labReport) String(scale labScale) string {
	var b strings.Builder
	fmt.Fprintf(&b, "fault lab: %d play viewers + 1 Chromium (dash.js), %s asset, %s of viewing, health interval %s\n\n",
		r.sessions, scale.asset, r.duration.Round(time.Second), labCheck)
	fmt.Fprintf(&b, "| viewers | failed sessions | QoE mean | QoE p10 | stalls (s) | failed requests | corrupt bodies (of verified) | BaseURL failovers |\n|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| %d | %d | %.1f | %.1f | %d (%.1f) | %d | %d (%d) | %d |\n\n", r.sessions, r.failedSessions, r.qoeMean, r.qoeP10,
		r.stalls, r.stallSeconds, r.failedRequests, r.corrupt, r.verified, r.switches)
	fmt.Fprintf(&b, "| origin offload (whole run) | origin offload (steady state: 2nd half) | hit ratio enter-deep | hit ratio bring-home | probe requests ok / failed |\n|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| %.1f%% | %.1f%% | %.1f%% | %.1f%% | %d / %d |\n\n", 100*r.offload, 100*r.steadyOffload, 100*r.deepHit, 100*r.homeHit, r.probeOK, r.probeFail)
	fmt.Fprintf(&b, "| at | fault | detected by its neighbours after | probe errors for |\n|---|---|---|---|\n")
	for _, f := range r.faults {
		det := "n/a"
		if f.noticed {
			det = "never"
			if f.detected >= 0 {
				det = f.detected.Round(10 * time.Millisecond).String()
			}
		}
		fmt.Fprintf(&b, "| %.1fs | %s | %s | %s |\n", f.at.Seconds(), f.name, det, f.probeErr.Round(10*time.Millisecond))
	}
	fmt.Fprintf(&b, "\nbrowser (dash.js): played to %.1fs, %d frames decoded, %d dash.js errors on the way %v %v\n", r.browser.CurrentTime, r.browser.DecodedFrames, len(r.browser.Errors), r.browser.Errors, r.browserErr)
	for _, f := range r.failures {
		fmt.Fprintf(&b, "failed session: %s\n", f)
	}
	return b.String()
}
