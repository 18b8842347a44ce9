package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/deepcast/deepcast/media/mediatest"
)

// TestFleetFromTheDeployConfigs starts the README's fleet from the files
// in cmd/deepcast/deploy/config — two origins over one library, two
// bring-home siblings, two enter-deep nodes on HTTPS, the router — with
// the host names and paths rewritten to loopback ports and temporary
// folders, and plays through it: ffmpeg decodes every frame through each
// enter-deep node with certificate verification on, the router sends
// viewers to an enter-deep node, and every node's admin listener serves
// its metrics.
func TestFleetFromTheDeployConfigs(t *testing.T) {
	bin := buildBinary(t)
	lib := mediatest.CopyLibrary(t)
	ca, leaf := testCerts(t)
	dir := t.TempDir()
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }
	// Every address of the files, and what it becomes here.
	addrs := map[string]string{}
	for _, a := range []string{"origin-1.internal:8080", "origin-2.internal:8080", "origin-1.internal:9101", "origin-2.internal:9101",
		"home-1.internal:8080", "home-2.internal:8080", "home-1.internal:9102", "home-2.internal:9102",
		"home-1.cdn.example:443", "home-2.cdn.example:443",
		"deep-1.cdn.example:443", "deep-2.cdn.example:443", "deep-1.internal:9103", "deep-2.internal:9103",
		"router.cdn.example:443", "router.internal:8080", "router.cdn.example:53"} {
		addrs[a] = port()
	}
	// Longest first, so that no name is rewritten inside a longer one.
	keys := make([]string, 0, len(addrs))
	for k := range addrs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	rewrite := func(file string) string {
		data, err := os.ReadFile(filepath.Join(deployDir(), "config", file))
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		for _, k := range keys {
			s = strings.ReplaceAll(s, k, addrs[k])
		}
		// URLs of the HTTPS listeners carry no port in the files (443).
		for _, n := range []string{"deep-1", "deep-2", "home-1", "home-2"} {
			s = strings.ReplaceAll(s, "https://"+n+".cdn.example", "https://"+addrs[n+".cdn.example:443"])
		}
		s = strings.ReplaceAll(s, "/srv/deepcast/library", lib)
		s = strings.ReplaceAll(s, "/var/cache/deepcast-edge", filepath.Join(dir, strings.TrimSuffix(file, ".yaml")+"-disk"))
		s = strings.ReplaceAll(s, "/etc/deepcast/edges.yaml", filepath.Join(dir, "edges.yaml"))
		for _, n := range []string{"deep-1", "deep-2", "home-1", "home-2", "router"} {
			s = strings.ReplaceAll(s, "/etc/deepcast/tls/"+n+"-key.pem", leaf.Key)
			s = strings.ReplaceAll(s, "/etc/deepcast/tls/"+n+".pem", leaf.Cert)
		}
		s = strings.ReplaceAll(s, "zone: cdn.example.", "zone: cdn.deepcast.test.")
		// The test's viewers are on loopback: deep-1's access network.
		s = strings.ReplaceAll(s, "subnets: [198.51.100.0/24]", "subnets: [198.51.100.0/24, 127.0.0.0/8]")
		out := filepath.Join(dir, file)
		os.WriteFile(out, []byte(s), 0o644)
		return out
	}
	rewrite("edges.yaml")
	start := func(cmd, file, listen string, extra ...string) {
		startNode(t, bin, listen, append([]string{cmd, "-config", rewrite(file)}, extra...)...)
	}
	start("origin", "origin-1.yaml", addrs["origin-1.internal:8080"])
	start("origin", "origin-2.yaml", addrs["origin-2.internal:8080"])
	start("edge", "home-1.yaml", addrs["home-1.internal:8080"])
	start("edge", "home-2.yaml", addrs["home-2.internal:8080"])
	// The enter-deep nodes' upstreams are cleartext; their viewers' side is
	// HTTPS, verified against the test CA.
	start("edge", "deep-1.yaml", addrs["deep-1.cdn.example:443"])
	start("edge", "deep-2.yaml", addrs["deep-2.cdn.example:443"])
	start("router", "router.yaml", addrs["router.internal:8080"], "-edge-ca", ca, "-check", "500ms")

	// The bring-home pair finds each other (each probes the other's
	// /healthz every -check; the first to start saw the other down).
	for _, h := range []string{"home-1.internal:9102", "home-2.internal:9102"} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			var st struct{ Siblings []struct{ Healthy bool } }
			if resp, err := http.Get("http://" + addrs[h] + "/api/stats"); err == nil {
				json.NewDecoder(resp.Body).Decode(&st)
				resp.Body.Close()
			}
			if len(st.Siblings) == 1 && st.Siblings[0].Healthy {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never saw its sibling up", h)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	frames := mediatest.CountFrames(t, mediatest.Source(t))
	for _, d := range []string{"deep-1", "deep-2"} {
		mediatest.CheckDecodesAll(t, "https://"+addrs[d+".cdn.example:443"]+"/vod/"+mediatest.AssetName+"/manifest.mpd", 2, frames, "-ca_file", ca)
	}
	// The router reaches every edge at the URL it would send viewers to:
	// the bring-home pair too (its fallback), over HTTPS.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var st struct {
			Edges []struct {
				Name string `json:"name"`
				Up   bool   `json:"up"`
			} `json:"edges"`
		}
		if resp, err := http.Get("http://" + addrs["router.internal:8080"] + "/api/stats"); err == nil {
			json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
		}
		up := 0
		for _, e := range st.Edges {
			if e.Up {
				up++
			}
		}
		if up == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the router sees %+v, want 4 edges up", st.Edges)
		}
	}
	mediatest.CheckDecodesAll(t, "https://"+addrs["home-1.cdn.example:443"]+"/vod/"+mediatest.AssetName+"/manifest.mpd", 2, frames, "-ca_file", ca)
	// The router sends a viewer to an enter-deep node (they are healthy).
	c := clientFor(t, ca, nil, false)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addrs["router.cdn.example:443"]+"/vod/"+mediatest.AssetName+"/manifest.mpd", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			loc := resp.Header.Get("Location")
			if resp.StatusCode == http.StatusFound && strings.HasPrefix(loc, "https://"+addrs["deep-1.cdn.example:443"]) {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("the router sent no viewer to an enter-deep node: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Each node's admin listener serves its metrics (Prometheus scrapes these).
	for _, a := range []string{"origin-1.internal:9101", "home-2.internal:9102", "deep-1.internal:9103"} {
		resp, body := getBody(t, http.DefaultClient, "http://"+addrs[a]+"/metrics")
		if resp.StatusCode != 200 || !strings.Contains(string(body), "deepcast_") {
			t.Errorf("%s /metrics: %d", a, resp.StatusCode)
		}
	}
	// The siblings shared the work: both bring-home nodes cached objects.
	for _, h := range []string{"home-1.internal:9102", "home-2.internal:9102"} {
		hits, misses := edgeStats(t, "http://"+addrs[h])
		t.Logf("%s: %d hits, %d misses", h, hits, misses)
		if misses == 0 {
			t.Errorf("%s fetched nothing: the siblings did not share the key space", h)
		}
	}
}
