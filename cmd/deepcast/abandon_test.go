package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deepcast/deepcast/media/mediatest"
	"github.com/deepcast/deepcast/player"
)

// TestPlayAbandonsASegmentTheLinkCannotBring: play -abandon stall through
// a proxy in front of a real origin that trickles the top rendition's
// media segments at 30 kB/s (a link that fell while they came) and passes
// the rest at full speed. The throughput rule asks for the top rendition
// once the first segment came fast; each such download would stall, so
// play gives it up, the proxy sees the request go, and the chunk comes
// at the lower rendition. The report, the -json and the -out log agree
// on how many were given up, and the session ends without waiting out a
// single trickle (each would take about 7 s).
func TestPlayAbandonsASegmentTheLinkCannotBring(t *testing.T) {
	o := startOrigin(t, mediatest.Library(t))
	target, err := url.Parse(serveLoopback(t, o))
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var trickled, cut atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/360p-800k/") || !strings.HasSuffix(r.URL.Path, ".m4s") {
			proxy.ServeHTTP(w, r)
			return
		}
		trickled.Add(1)
		if !trickle(w, r, proxy, 3000) {
			cut.Add(1)
		}
	}))
	defer srv.Close()

	dir := t.TempDir()
	report, chunkLog := filepath.Join(dir, "play.json"), filepath.Join(dir, "chunks.csv")
	var out, errb bytes.Buffer
	start := time.Now()
	code := run([]string{"play", "-abr", "throughput", "-abandon", "stall", "-json", report, "-out", chunkLog,
		srv.URL + "/vod/" + mediatest.AssetName + "/manifest.mpd"}, &out, &errb)
	took := time.Since(start)
	t.Log(out.String())
	if code != 0 {
		t.Fatalf("play: exit %d\n%s", code, errb.String())
	}
	var r struct {
		Chunks         int   `json:"chunks"`
		Abandoned      int   `json:"abandoned"`
		AbandonedBytes int64 `json:"abandonedBytes"`
	}
	if data, err := os.ReadFile(report); err != nil || json.Unmarshal(data, &r) != nil {
		t.Fatalf("play -json: %s (%v)", data, err)
	}
	if r.Chunks != 3 || r.Abandoned < 1 || r.AbandonedBytes <= 0 || int(cut.Load()) < r.Abandoned || trickled.Load() < int32(r.Abandoned) {
		t.Errorf("play -json %+v; the proxy trickled %d segments, saw %d cut short", r, trickled.Load(), cut.Load())
	}
	if !strings.Contains(out.String(), "ABANDONED 1 download(s) of it") ||
		!strings.Contains(out.String(), strconv.Itoa(r.Abandoned)+" downloads given up for a lower rendition") {
		t.Errorf("play does not say what it gave up:\n%s", out.String())
	}
	if took > 20*time.Second {
		t.Errorf("play took %v", took)
	}
	rows := readCSVFile(t, chunkLog)
	if len(rows) != 4 || !slices.Equal(rows[0], append(slices.Clone(player.LogColumns), player.AbandonColumn)) {
		t.Fatalf("play -out: %v", rows)
	}
	logged := 0
	for _, row := range rows[1:] {
		n, _ := strconv.Atoi(row[len(row)-1])
		logged += n
		if n > 0 && row[slices.Index(player.LogColumns, "rendition")] != "0" {
			t.Errorf("chunk %s: %d abandoned, then played at rendition %s, want 0", row[1], n, row[2])
		}
	}
	if logged != r.Abandoned {
		t.Errorf("the log counts %d abandoned, the report %d", logged, r.Abandoned)
	}
}

// trickle answers r as next would, its body chunk bytes every 100 ms
// (10 × chunk bytes a second), as a link that fell; false when the
// client went before the end.
func trickle(w http.ResponseWriter, r *http.Request, next http.Handler, chunk int) bool {
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, r)
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	body := rec.Body.Bytes()
	for i := 0; i < len(body); i += chunk {
		w.Write(body[i:min(i+chunk, len(body))])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	return true
}

// TestSimAbandons: sim -abandon says so in its heading, adds the
// abandoned column to its table (a dash for the optimum, which never
// abandons) and to -out and -log, and refuses a rule it does not know
// before simulating anything.
func TestSimAbandons(t *testing.T) {
	dir := t.TempDir()
	traces := filepath.Join(dir, "falls")
	os.MkdirAll(traces, 0o755)
	// 8 Mbit/s for 10 s, then 0.3 Mbit/s for a minute, looped.
	os.WriteFile(filepath.Join(traces, "fall.json"), []byte(`[{"duration_ms": 10000, "bandwidth_kbps": 8000}, {"duration_ms": 60000, "bandwidth_kbps": 300}]`), 0o644)
	results, logs := filepath.Join(dir, "r.csv"), filepath.Join(dir, "logs")
	var out, errb bytes.Buffer
	code := run([]string{"sim", "-video", filepath.Join(repoRoot(), "testdata", "videos", "envivio-4s-48.csv"), "-traces", traces,
		"-abr", "robustmpc,optimal", "-abandon", "stall", "-out", results, "-log", logs}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), ", abandoning downloads by the stall rule") {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	var abandoned string
	for line := range strings.Lines(out.String()) {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == "abr" && f[len(f)-1] != "abandoned":
			t.Errorf("the table's last column is not abandoned: %q", line)
		case len(f) > 0 && f[0] == "optimal" && f[len(f)-1] != "-":
			t.Errorf("the optimum's row: %q", line)
		case len(f) > 0 && f[0] == "robustmpc":
			abandoned = f[len(f)-1]
		}
	}
	n, err := strconv.ParseFloat(abandoned, 64)
	if err != nil || n < 1 {
		t.Errorf("robustMPC abandoned %q downloads, want at least one\n%s", abandoned, out.String())
	}
	data, _ := os.ReadFile(results)
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil || len(rows) != 3 || !slices.Equal(rows[0], append(slices.Clone(player.ResultColumns), player.AbandonColumn)) ||
		rows[1][len(rows[1])-1] != strconv.Itoa(int(n)) || rows[2][1] != "optimal" || rows[2][len(rows[2])-1] != "0" {
		t.Errorf("-out:\n%s", data)
	}
	data, _ = os.ReadFile(filepath.Join(logs, "fall.json__robustmpc.csv"))
	if head, _, _ := strings.Cut(string(data), "\n"); head != strings.Join(append(slices.Clone(player.LogColumns), player.AbandonColumn), ",") {
		t.Errorf("-log's head %q", head)
	}

	out.Reset()
	errb.Reset()
	if code := run([]string{"sim", "-video", filepath.Join(repoRoot(), "testdata", "videos", "envivio-4s-48.csv"), "-traces", traces,
		"-abandon", "bola"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `-abandon: unknown abandonment rule "bola" (have none, stall, throughput)`) || out.Len() > 0 {
		t.Errorf("sim -abandon bola: exit %d\n%s%s", code, out.String(), errb.String())
	}
}
