package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"
)

// TestBenchCMCDCost: what reading viewers' CMCD costs an enter-deep
// process on hot hits. The same 200 cached manifests (2 KiB) through one
// edge, asked for bare and with the CMCD list dash.js writes (its keys
// and sizes; 50 sessions), wrk 2 threads, 64 connections, 5 s runs,
// interleaved rounds. The ratio is the whole price of CMCD at the edge:
// the longer request, the front's query handling and the reading.
func TestBenchCMCDCost(t *testing.T) {
	if os.Getenv("DEEPCAST_BENCH") == "" {
		t.Skip("set DEEPCAST_BENCH=1 (make bench) to run")
	}
	raiseFileLimit(discard())
	lib, a := benchLibrary(t)
	bare := benchManifests(lib, a.Name, 200)
	withCMCD := make([]string, len(bare))
	for i, p := range bare {
		list := fmt.Sprintf(`bl=%d,br=2800,cid="%s",d=2000,mtp=%d,ot=m,sf=d,sid="6e2fb550-c457-11e9-bb97-08002%07d",st=v,su,tb=6000`,
			1000+100*i, a.Name, 20000+100*i, i%50)
		withCMCD[i] = p + "?CMCD=" + url.QueryEscape(list)
	}
	bin := buildBinary(t)
	_, addr := startMemEdge(t, bin, startBenchOrigin(t, lib), "2GiB")
	base := "http://" + addr
	loads := []struct {
		name  string
		paths []string
	}{{"bare", bare}, {"cmcd", withCMCD}}
	for _, l := range loads {
		if r := runWrkWith(t, base, l.paths, 64, 3*time.Second, nil); r.Errors > 0 {
			t.Fatalf("%s: %d errors while warming", l.name, r.Errors)
		}
	}
	// The edge read the lists: 50 sessions.
	resp, err := http.Get(base + "/api/stats")
	if err != nil {
		t.Fatal(err)
	}
	var s struct{ Viewers struct{ Sessions int } }
	err = json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	if err != nil || s.Viewers.Sessions != 50 {
		t.Fatalf("the edge counted %d sessions (%v), want the 50 the lists name", s.Viewers.Sessions, err)
	}
	const rounds = 5
	fmt.Printf("reading CMCD on hot hits: one enter-deep process, 200 cached 2 KiB manifests bare and with dash.js's CMCD list (50 sessions); wrk 2 threads, 64 connections, 5 s runs, %d interleaved rounds\n", rounds)
	res := map[string][]wrkResult{}
	for round := range rounds {
		for i := range loads {
			l := loads[(round+i)%len(loads)]
			res[l.name] = append(res[l.name], runWrkWith(t, base, l.paths, 64, 5*time.Second, nil))
		}
	}
	var ratio []float64
	for r := range rounds {
		ratio = append(ratio, res["cmcd"][r].RPS/res["bare"][r].RPS)
	}
	for _, l := range loads {
		fmt.Printf("  %-5s %s\n", l.name, medianResult(res[l.name]))
	}
	fmt.Printf("  with CMCD vs bare: req/s per round %s, median %.3fx\n", ratios(ratio), median(ratio))
}
