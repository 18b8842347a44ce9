package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deepcast/deepcast/edge/auth"
)

// TestBenchTokenCheckCost measures what checking Common Access Tokens
// costs on hot hits: two enter-deep processes on the same origin, one
// with -auth cat, one without, loaded by wrk with the same requests (the
// token header on both, so the bytes on the wire are equal), interleaved
// rounds, for ~2 KiB manifests (where a per-request cost shows most) and
// ~1 MiB segments. Target: the protected node keeps >= 0.95x the open
// node's req/s. Run by `make bench`.
func TestBenchTokenCheckCost(t *testing.T) {
	if os.Getenv("DEEPCAST_BENCH") == "" {
		t.Skip("set DEEPCAST_BENCH=1 (make bench) to run")
	}
	raiseFileLimit(discard())
	lib, a := benchLibrary(t)
	manifests := benchManifests(lib, a.Name, 200)
	var segObjs []string
	for i := 0; len(segObjs) < 200; i++ {
		for _, s := range segmentPaths(a, 0) {
			if len(segObjs) < 200 {
				segObjs = append(segObjs, strings.Replace(s, "/vod/"+a.Name+"/", fmt.Sprintf("/vod/m%03d/", i), 1))
			}
		}
	}
	originURL := startBenchOrigin(t, lib)
	key, _ := auth.NewKey("bench", "HS256")
	keyFile := filepath.Join(t.TempDir(), "key.json")
	b, _ := auth.MarshalKeys(key)
	os.WriteFile(keyFile, b, 0o600)
	tok, err := auth.Mint(key, auth.TokenSpec{Issuer: "bench", Expires: time.Now().Add(time.Hour), PathPrefix: "/vod/", Methods: []string{"GET", "HEAD"}})
	if err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	start := func(extra ...string) string {
		_, addr := startMemEdge(t, bin, originURL, "2GiB", extra...)
		return "http://" + addr
	}
	systems := []struct{ name, url string }{{"open", start()}, {"cat", start("-auth", "cat", "-auth-key", keyFile, "-auth-issuer", "bench")}}
	header := []string{auth.HeaderName, tok}
	const rounds = 5
	fmt.Printf("token checking on hot hits: an enter-deep node with -auth cat vs the same without; wrk 2 threads, 64 connections, 200 objects, 5 s runs, %d interleaved rounds\n", rounds)
	for _, load := range []struct {
		name  string
		paths []string
	}{{"2 KiB manifests", manifests}, {"1 MiB segments", segObjs}} {
		res := map[string][]wrkResult{}
		for _, s := range systems {
			if r := runWrkWith(t, s.url, load.paths, 64, 3*time.Second, header); r.Errors > 0 {
				t.Fatalf("%s: %d errors while warming (is the token refused?)", s.name, r.Errors)
			}
		}
		for round := range rounds {
			for i := range systems {
				s := systems[(round+i)%len(systems)]
				res[s.name] = append(res[s.name], runWrkWith(t, s.url, load.paths, 64, 5*time.Second, header))
			}
		}
		var ratio []float64
		for r := range rounds {
			ratio = append(ratio, res["cat"][r].RPS/res["open"][r].RPS)
		}
		for _, s := range systems {
			fmt.Printf("  %-16s %-5s %s\n", load.name, s.name, medianResult(res[s.name]))
		}
		fmt.Printf("  %-16s with tokens vs without: req/s per round %s, median %.3fx (target >= 0.95)\n", load.name, ratios(ratio), median(ratio))
	}
}
