package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/mediatest"
)

// deployDir is the operator's kit in the repository.
func deployDir() string { return filepath.Join(repoRoot(), "cmd", "deepcast", "deploy") }

// TestSystemdUnitsVerify: the service units pass systemd-analyze verify
// (with the binary where they expect it).
func TestSystemdUnitsVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatalf("systemd-analyze not found (Debian: systemd): %v", err)
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	units, _ := filepath.Glob(filepath.Join(deployDir(), "systemd", "*.service"))
	if len(units) < 3 {
		t.Fatalf("units: %v", units)
	}
	var names []string
	for _, u := range units {
		data, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(data), "/usr/local/bin/deepcast", bin)
		for _, want := range []string{"DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "ExecReload=/bin/kill -HUP $MAINPID"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %s", filepath.Base(u), want)
			}
		}
		name := filepath.Join(dir, filepath.Base(u))
		os.WriteFile(name, []byte(text), 0o644)
		names = append(names, name)
	}
	out, err := exec.Command("systemd-analyze", append([]string{"verify"}, names...)...).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestUnitsAllowWhatTheConfigsAsk: each deploy config's service unit lets
// the node do what the config asks: a listener below port 1024 needs
// CAP_NET_BIND_SERVICE, a TLS key needs the group it is read through (the
// units run as a throwaway user).
func TestUnitsAllowWhatTheConfigsAsk(t *testing.T) {
	configs, _ := filepath.Glob(filepath.Join(deployDir(), "config", "*.yaml"))
	checked := 0
	for _, c := range configs {
		unit := map[string]string{"origin": "deepcast-origin", "home": "deepcast-edge", "deep": "deepcast-edge", "router": "deepcast-router"}[strings.SplitN(strings.TrimSuffix(filepath.Base(c), ".yaml"), "-", 2)[0]]
		if unit == "" {
			continue // edges.yaml: the router's edge list
		}
		data, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		var cfg map[string]any
		if err := yaml.Unmarshal(data, &cfg); err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		text, err := os.ReadFile(filepath.Join(deployDir(), "systemd", unit+".service"))
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, key := range []string{"listen", "tls-listen", "dns", "admin-listen"} {
			addr, _ := cfg[key].(string)
			if _, port, err := net.SplitHostPort(addr); err == nil {
				if n, _ := strconv.Atoi(port); n < 1024 && (!strings.Contains(string(text), "\nAmbientCapabilities=CAP_NET_BIND_SERVICE") ||
					!strings.Contains(string(text), "\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE")) {
					t.Errorf("%s: %s %s, and %s cannot bind below 1024", filepath.Base(c), key, addr, unit)
				}
			}
		}
		if cfg["tls-key"] != nil && !strings.Contains(string(text), "\nSupplementaryGroups=ssl-cert") {
			t.Errorf("%s: a TLS key, which %s's throwaway user cannot read", filepath.Base(c), unit)
		}
		if !strings.Contains(string(text), "\nStateDirectory="+unit+"\n") {
			t.Errorf("%s: no StateDirectory=%s for -acme-dir /var/lib/%s/acme", unit, unit, unit)
		}
	}
	if checked < 7 {
		t.Errorf("%d configs checked, want the fleet's 7", checked)
	}
}

// TestPrometheusRulesAndDashboard: promtool accepts the alert rules; a
// real Prometheus scrapes an origin, a bring-home and an enter-deep node
// and a router while ffmpeg plays through them, and every query of the
// Grafana dashboard returns data.
func TestPrometheusRulesAndDashboard(t *testing.T) {
	for _, tool := range []string{"prometheus", "promtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: `make deps` installs it (Debian: prometheus)", tool)
		}
	}
	rules := filepath.Join(deployDir(), "prometheus", "deepcast-rules.yml")
	if out, err := exec.Command("promtool", "check", "rules", rules).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	bin := buildBinary(t)
	lib := mediatest.CopyLibrary(t)
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }
	o, h, d, r, p := port(), port(), port(), port(), port()
	startNode(t, bin, o, "origin", "-library", lib, "-listen", o)
	startNode(t, bin, h, "edge", "-profile", "bring-home", "-name", "home-1", "-upstream", "http://"+o, "-listen", h, "-disk", t.TempDir())
	startNode(t, bin, d, "edge", "-name", "deep-1", "-upstream", "http://"+h, "-listen", d)
	edges := filepath.Join(t.TempDir(), "edges.yaml")
	os.WriteFile(edges, []byte(fmt.Sprintf("edges:\n  - {name: deep-1, url: http://%s, addresses: [127.0.0.1], profile: enter-deep, subnets: [127.0.0.0/8]}\n", d)), 0o644)
	startNode(t, bin, r, "router", "-edges", edges, "-listen", r, "-dns", "", "-check", "500ms")

	dir := t.TempDir()
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - {job_name: deepcast-origin, static_configs: [{targets: [%q]}]}
  - {job_name: deepcast-bring-home, static_configs: [{targets: [%q]}]}
  - {job_name: deepcast-enter-deep, static_configs: [{targets: [%q]}]}
  - {job_name: deepcast-router, static_configs: [{targets: [%q]}]}
`, rules, o, h, d, r)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(cfgFile, []byte(cfg), 0o644)
	if out, err := exec.Command("promtool", "check", "config", cfgFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	startNode(t, "prometheus", p, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p)

	// Traffic: ffmpeg through the enter-deep node (misses, then hits),
	// redirects from the router.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for range 2 {
		if _, log, err := mediatest.Decode(ctx, "http://"+d+"/vod/"+mediatest.AssetName+"/manifest.mpd"); err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, log)
		}
		http.Get("http://" + r + "/vod/" + mediatest.AssetName + "/manifest.mpd")
	}
	time.Sleep(3 * time.Second) // scrapes after the traffic

	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	data, err := os.ReadFile(filepath.Join(deployDir(), "grafana", "deepcast-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	query := func(expr string) (int, error) {
		resp, err := http.Get("http://" + p + "/api/v1/query?query=" + url.QueryEscape(expr))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var res struct {
			Status string
			Error  string
			Data   struct{ Result []json.RawMessage }
		}
		json.NewDecoder(resp.Body).Decode(&res)
		if res.Status != "success" {
			return 0, fmt.Errorf("%s: %s", res.Status, res.Error)
		}
		return len(res.Data.Result), nil
	}
	// Rates need two scrapes of the traffic, recording rules an evaluation
	// after that: each query gets a little time to return series.
	eventually := func(expr string) (int, error) {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			n, err := query(expr)
			if (err == nil && n > 0) || time.Now().After(deadline) {
				return n, err
			}
		}
	}
	queries := 0
	for _, panel := range dash.Panels {
		for _, target := range panel.Targets {
			expr := strings.ReplaceAll(target.Expr, "$__rate_interval", "20s")
			queries++
			if n, err := eventually(expr); err != nil || n == 0 {
				t.Errorf("panel %q: %s: %d series, %v", panel.Title, expr, n, err)
			}
		}
	}
	if queries < 10 {
		t.Errorf("only %d dashboard queries", queries)
	}
	// The recording rules evaluate too.
	for _, rec := range []string{"deepcast:origin_offload:ratio_rate5m", "deepcast:hit_ratio:ratio_rate5m"} {
		if n, err := eventually(rec); err != nil || n == 0 {
			t.Errorf("recording rule %s: %d series, %v", rec, n, err)
		}
	}
}

// TestBuiltBinaryServesPagesAlone: `make build` makes one binary that,
// copied alone to an empty folder, serves working pages (the npm packages
// and their licences embedded) and says its version.
func TestBuiltBinaryServesPagesAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("runs make build")
	}
	dir := t.TempDir()
	built := filepath.Join(dir, "build", "deepcast")
	if out, err := exec.Command("make", "-C", repoRoot(), "build", "BIN="+built).CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	alone := filepath.Join(dir, "elsewhere")
	os.MkdirAll(alone, 0o755)
	data, err := os.ReadFile(built)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(alone, "deepcast")
	os.WriteFile(bin, data, 0o755)

	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.Contains(string(out), "web packages embedded") || !regexp.MustCompile(`commit [0-9a-f]{40}`).Match(out) {
		t.Errorf("deepcast version: %v\n%s", err, out)
	}
	lib := mediatest.CopyLibrary(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "origin", "-library", lib, "-listen", addr)
	cmd.Dir = alone // no web/node_modules anywhere near
	cmd.Env = append(os.Environ(), "DEEPCAST_WEB_MODULES=")
	logs := &mediatest.Capture{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	waitListening(t, addr)
	// An edge from the same lone binary, in front of it.
	edgeAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ecmd := exec.Command(bin, "edge", "-upstream", "http://"+addr, "-listen", edgeAddr)
	ecmd.Dir, ecmd.Env, ecmd.Stdout, ecmd.Stderr = alone, cmd.Env, logs, logs
	if err := ecmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ecmd.Process.Signal(os.Interrupt); ecmd.Wait() })
	waitListening(t, edgeAddr)
	for _, node := range []string{addr, edgeAddr} {
		for path, want := range map[string]string{
			"/": "deepcast player", "/vendor/dash.all.min.js": "dashjs", "/vendor/hls.min.js": "Hls",
			"/vendor/shaka-player.compiled.js": "shaka", "/vendor/uPlot.iife.min.js": "uPlot", "/licenses/hls.js.LICENSE": "Apache",
		} {
			resp, body := getBody(t, http.DefaultClient, "http://"+node+path)
			if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
				t.Errorf("%s%s: %d, %d bytes without %q", node, path, resp.StatusCode, len(body), want)
			}
		}
	}
	if strings.Contains(logs.String(), "not installed") {
		t.Errorf("the copied binary says its packages are missing:\n%s", logs.String())
	}
}

// TestAccessLogsOneFormat: with -access-log, the origin, an edge and the
// router each write a JSON line per request with the same fields (cache,
// tier and upstream filled where the node knows them), through the fast
// path and net/http alike; without it they write none.
func TestAccessLogsOneFormat(t *testing.T) {
	bin := buildBinary(t)
	lib := mediatest.CopyLibrary(t)
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }
	o, d, r, quiet := port(), port(), port(), port()
	on := startNode(t, bin, o, "origin", "-library", lib, "-listen", o, "-access-log")
	dn := startNode(t, bin, d, "edge", "-name", "deep-1", "-upstream", "http://"+o, "-listen", d, "-access-log", "-prefetch", "false")
	edges := filepath.Join(t.TempDir(), "edges.yaml")
	os.WriteFile(edges, []byte(fmt.Sprintf("edges:\n  - {name: deep-1, url: http://%s, addresses: [127.0.0.1], profile: enter-deep, subnets: [127.0.0.0/8]}\n", d)), 0o644)
	rn := startNode(t, bin, r, "router", "-edges", edges, "-listen", r, "-dns", "", "-access-log")
	qn := startNode(t, bin, quiet, "edge", "-upstream", "http://"+o, "-listen", quiet)

	seg := "/vod/" + mediatest.AssetName + "/" + firstVideoRendition(t, lib) + "/1.m4s"
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp, _ := getBody(t, noRedirect, "http://"+r+seg)
		if resp.StatusCode == http.StatusFound || time.Now().After(deadline) {
			break
		}
	}
	getBody(t, http.DefaultClient, "http://"+d+seg)                        // miss (fast path)
	getBody(t, http.DefaultClient, "http://"+d+seg)                        // hit (fast path)
	getBody(t, http.DefaultClient, "http://"+d+seg, "Range", "bytes=0-99") // hit (net/http)
	getBody(t, http.DefaultClient, "http://"+quiet+seg)

	type line struct {
		Time, Msg, Node, Remote, Method, Path, Cache, Tier, Upstream string
		Status                                                       int
		Bytes                                                        int64
		DurationMS                                                   *float64 `json:"duration_ms"`
	}
	read := func(n *node, want int) []line {
		t.Helper()
		var out []line
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			out = out[:0]
			for _, l := range strings.Split(n.logs.String(), "\n") {
				var rec line
				if json.Unmarshal([]byte(l), &rec) == nil && rec.Msg == "access" && rec.Path == seg {
					out = append(out, rec)
				}
			}
			if len(out) >= want || time.Now().After(deadline) {
				return out
			}
		}
	}
	deep := read(dn, 3)
	if len(deep) != 3 {
		t.Fatalf("edge access lines %+v\n%s", deep, dn.logs.String())
	}
	for i, want := range []struct {
		status      int
		cache, tier string
		upstream    bool
	}{{200, "miss", "upstream", true}, {200, "hit", "memory", false}, {206, "hit", "memory", false}} {
		l := deep[i]
		if l.Node != "deep-1" || l.Method != "GET" || l.Status != want.status || l.Cache != want.cache || l.Tier != want.tier ||
			(l.Upstream == o) != want.upstream || l.Bytes <= 0 || l.DurationMS == nil || l.Time == "" || !strings.HasPrefix(l.Remote, "127.0.0.1:") {
			t.Errorf("edge line %d: %+v, want %+v", i, l, want)
		}
	}
	if org := read(on, 2); len(org) != 2 || org[0].Node != "origin" || org[0].Tier != "library" || org[0].Status != 200 || org[0].Bytes <= 0 {
		t.Errorf("origin access lines %+v", org)
	}
	if rt := read(rn, 1); len(rt) < 1 || rt[0].Node != "router" || rt[0].Status != http.StatusFound || rt[0].Upstream != "deep-1" {
		t.Errorf("router access lines %+v", rt)
	}
	if strings.Contains(qn.logs.String(), `"msg":"access"`) || strings.Contains(qn.logs.String(), "msg=access") {
		t.Errorf("an edge without -access-log logged requests:\n%s", qn.logs.String())
	}
}

// firstVideoRendition names a video rendition of the test asset.
func firstVideoRendition(t *testing.T, lib string) string {
	t.Helper()
	a, err := media.LoadAsset(filepath.Join(lib, mediatest.AssetName))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range a.Renditions {
		if r.Type == "video" {
			return r.ID
		}
	}
	t.Fatal("no video rendition")
	return ""
}

// TestContainerImage: `make image` builds an OCI image without a
// container daemon; skopeo reads it (entrypoint, user) and converts it to
// a docker-archive, umoci unpacks it, and the binary inside runs with its
// web packages.
func TestContainerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the image")
	}
	for _, tool := range []string{"skopeo", "umoci"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: `make deps` installs it", tool)
		}
	}
	dir := t.TempDir()
	image := filepath.Join(dir, "image")
	if out, err := exec.Command("make", "-C", repoRoot(), "image", "IMAGE="+image, "VERSION=test").CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	out, err := exec.Command("skopeo", "inspect", "--config", "oci:"+image+":test").Output()
	if err != nil {
		t.Fatalf("skopeo inspect: %v", err)
	}
	var cfg struct {
		Config struct {
			User       string
			Entrypoint []string
		}
	}
	if json.Unmarshal(out, &cfg) != nil || cfg.Config.User != "65532:65532" || strings.Join(cfg.Config.Entrypoint, " ") != "/usr/local/bin/deepcast" {
		t.Errorf("image config: %s", out)
	}
	if out, err := exec.Command("skopeo", "copy", "oci:"+image+":test", "docker-archive:"+filepath.Join(dir, "docker.tar")+":deepcast:test").CombinedOutput(); err != nil {
		t.Errorf("skopeo copy to a docker archive: %v\n%s", err, out)
	}
	bundle := filepath.Join(dir, "bundle")
	if out, err := exec.Command("umoci", "unpack", "--rootless", "--image", image+":test", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	out, err = exec.Command(filepath.Join(bundle, "rootfs", "usr", "local", "bin", "deepcast"), "version").Output()
	if err != nil || !strings.Contains(string(out), "deepcast test") || !strings.Contains(string(out), "web packages embedded") {
		t.Errorf("the image's binary: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(bundle, "rootfs", "etc", "ssl", "certs", "ca-certificates.crt")); err != nil {
		t.Errorf("no CA bundle in the image: %v", err)
	}
}
