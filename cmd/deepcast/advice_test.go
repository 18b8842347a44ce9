package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deepcast/deepcast/edge"
	"github.com/deepcast/deepcast/edge/cmsd"
	"github.com/deepcast/deepcast/manifest"
	"github.com/deepcast/deepcast/media/mediatest"
)

// TestPlayerKeepsToTheEdgesSuggestedBitrate: an enter-deep edge that
// suggests 600 kbit/s (CMSD mb) in front of the origin; deepcast play
// with the throughput rule, which on loopback would take the 800k
// rendition from the second chunk on, keeps to the 250k one (250 kbit/s
// of video plus the sound fit in 600, 800k does not) and says so; with
// -cmsd=false it takes the 800k rendition as before. An edge with an
// egress limit the viewers go far past says duress and suggests each
// session its share of the limit.
func TestPlayerKeepsToTheEdgesSuggestedBitrate(t *testing.T) {
	o := startOrigin(t, mediatest.Library(t))
	no := false
	n, err := edge.New(edge.Config{Profile: edge.EnterDeep, Name: "deep", Upstreams: []string{serveLoopback(t, o)}, MemBytes: 32 << 20,
		Prefetch: &no, Logger: discard(), Advice: edge.AdviceConfig{MaxBitrateKbps: 600}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	mpd := serveLoopback(t, n) + "/vod/" + mediatest.AssetName + "/manifest.mpd"
	dir := t.TempDir()
	session := func(name string, extra ...string) (renditions []int, capped int, serverCap int64, summary string) {
		t.Helper()
		log, report := filepath.Join(dir, name+".csv"), filepath.Join(dir, name+".json")
		args := append([]string{"play", "-abr", "throughput", "-out", log, "-json", report}, extra...)
		var out, errb bytes.Buffer
		if code := run(append(args, mpd), &out, &errb); code != 0 {
			t.Fatalf("play %v: exit %d\n%s", extra, code, errb.String())
		}
		rows := readCSVFile(t, log)
		if len(rows) < 2 {
			t.Fatalf("%s: %q", log, rows)
		}
		col := slices.Index(rows[0], "rendition")
		for _, row := range rows[1:] {
			r, _ := strconv.Atoi(row[col])
			renditions = append(renditions, r)
		}
		var r struct {
			Capped        int   `json:"capped"`
			ServerCapKbps int64 `json:"serverCapKbps"`
		}
		if data, err := os.ReadFile(report); err != nil || json.Unmarshal(data, &r) != nil {
			t.Fatalf("play -json: %s (%v)", data, err)
		}
		return renditions, r.Capped, r.ServerCapKbps, out.String()
	}
	got, capped, serverCap, summary := session("capped")
	if len(got) != 3 || got[1] != 0 || got[2] != 0 || capped < 2 || serverCap != 600 {
		t.Errorf("with the edge suggesting 600 kbit/s: renditions %v, %d capped, last suggestion %d; want 0 from the second chunk, at least 2 capped, 600\n%s",
			got, capped, serverCap, summary)
	}
	if !bytes.Contains([]byte(summary), []byte("lowered to the bitrate the serving node suggested")) {
		t.Errorf("the summary does not say the node's suggestion lowered chunks:\n%s", summary)
	}
	got, capped, _, summary = session("ignored", "-cmsd=false")
	if len(got) != 3 || got[1] != 1 || got[2] != 1 || capped != 0 {
		t.Errorf("with -cmsd=false: renditions %v, %d capped; want the 800k rendition from the second chunk, none capped\n%s", got, capped, summary)
	}

	// Behind an enter-deep node with nothing to say of its own, a
	// bring-home parent suggesting 600 kbit/s: the deep node passes the
	// parent's entry on with what it fetched from it (every chunk here:
	// nothing is cached yet), and the player keeps to it.
	home, err := edge.New(edge.Config{Profile: edge.BringHome, Name: "home", Upstreams: []string{serveLoopback(t, o)}, MemBytes: 32 << 20,
		Prefetch: &no, Logger: discard(), Advice: edge.AdviceConfig{MaxBitrateKbps: 600}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(home.Close)
	quiet, err := edge.New(edge.Config{Profile: edge.EnterDeep, Name: "quiet", Upstreams: []string{serveLoopback(t, home)}, MemBytes: 32 << 20,
		Prefetch: &no, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(quiet.Close)
	mpd = serveLoopback(t, quiet) + "/vod/" + mediatest.AssetName + "/manifest.mpd"
	got, capped, serverCap, summary = session("behind a parent")
	if len(got) != 3 || got[1] != 0 || got[2] != 0 || capped < 2 || serverCap != 600 {
		t.Errorf("through a deep node, its parent suggesting 600 kbit/s: renditions %v, %d capped, last suggestion %d; want 0 from the second chunk, at least 2 capped, 600\n%s",
			got, capped, serverCap, summary)
	}

	// An edge with a 100 kbit/s egress limit: a viewer reporting CMCD
	// plays the clip in well under a second, far past the limit, so the
	// node says duress and gives that one session 90 % of the limit; the
	// next session keeps to it.
	limited, err := edge.New(edge.Config{Profile: edge.EnterDeep, Name: "small", Upstreams: []string{serveLoopback(t, o)}, MemBytes: 32 << 20,
		Prefetch: &no, Logger: discard(), Advice: edge.AdviceConfig{EgressLimit: 100e3}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(limited.Close)
	mpd = serveLoopback(t, limited) + "/vod/" + mediatest.AssetName + "/manifest.mpd"
	if _, _, _, summary := session("first", "-cmcd"); !bytes.Contains([]byte(summary), []byte("QoE")) {
		t.Fatalf("play: %s", summary)
	}
	var adv edge.AdviceStats
	// The advice is worked out again at most once a second.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if adv = limited.Stats().Advice; adv.Duress {
			break
		}
	}
	if !adv.Duress || !adv.Capping || adv.Sessions != 1 || adv.MaxBitrateKbps != 90 || adv.EgressBitsPerSecond < 100e3 {
		t.Fatalf("after a viewer far past the 100 kbit/s limit the edge advises %+v; want duress and 90 kbit/s for its one session", adv)
	}
	got, capped, serverCap, summary = session("second", "-cmcd")
	if got[1] != 0 || got[2] != 0 || capped < 2 || serverCap != 90 {
		t.Errorf("the next viewer: renditions %v, %d capped, last suggestion %d; want 0 from the second chunk, 90\n%s", got, capped, serverCap, summary)
	}

	// An edge whose share fits the clip's top rung (its video and sound,
	// as the packager declared them) with 10 kbit/s to spare: a session
	// whose ladder the node holds, once it reports a buffer to spare (the
	// clip is too short for one), is told its rung exactly, an answer to
	// no session the whole share.
	resp, err := http.Get(serveLoopback(t, o) + "/vod/" + mediatest.AssetName + "/manifest.mpd")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	rates, err := manifest.ReadBitrates(body)
	if err != nil || len(rates.Audio) == 0 {
		t.Fatalf("the clip's ladder: %+v, %v", rates, err)
	}
	top := int64(rates.Video[len(rates.Video)-1]+rates.Audio[len(rates.Audio)-1]+999) / 1000
	roomy, err := edge.New(edge.Config{Profile: edge.EnterDeep, Name: "roomy", Upstreams: []string{serveLoopback(t, o)}, MemBytes: 32 << 20,
		// Half a kbit/s over, so that 0.9 of the limit, which the node
		// rounds down to whole kbit/s, is not a hair under top+10 for
		// some ladders (1044.9999 for a top of 1035).
		Prefetch: &no, Logger: discard(), Advice: edge.AdviceConfig{EgressLimit: (float64(top+10)*1000 + 500) / 0.9, ShareByLadder: true}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(roomy.Close)
	base := serveLoopback(t, roomy)
	mpd = base + "/vod/" + mediatest.AssetName + "/manifest.mpd"
	session("roomy", "-cmcd", "-cmcd-sid", "viewer-1")
	full := "?CMCD=" + url.QueryEscape(`bl=30000,ot=v,sid="viewer-1"`)
	if resp, err := http.Get(base + "/vod/" + mediatest.AssetName + "/manifest.mpd" + full); err == nil {
		resp.Body.Close()
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if adv = roomy.Stats().Advice; adv.Capping && adv.ByLadder == 1 {
			break
		}
	}
	if !adv.Capping || adv.Sessions != 1 || adv.ByLadder != 1 || adv.MaxBitrateKbps != top+10 {
		t.Fatalf("after a viewer past the limit the edge advises %+v; want a share of %d kbit/s, its one session told by its ladder", adv, top+10)
	}
	for _, tc := range []struct {
		query string
		want  int64
	}{{"?CMCD=" + url.QueryEscape(`sid="viewer-1"`), top}, {"", top + 10}} {
		resp, err := http.Get(base + "/vod/" + mediatest.AssetName + "/manifest.mpd" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if e, ok := cmsd.Nearest(resp.Header.Get(cmsd.Header)); !ok || e.MaxBitrateKbps != tc.want {
			// (Duress, du, may be over already: the share holds 30 s.)
			t.Errorf("an answer to %q carries %q, want mb=%d", tc.query, resp.Header.Get(cmsd.Header), tc.want)
		}
	}
	for _, bad := range []struct{ sid, says string }{{strings.Repeat("x", 65), "at most 64"}, {"zoë", "printable ASCII"}} {
		var out, errb bytes.Buffer
		if code := run([]string{"play", "-cmcd", "-cmcd-sid", bad.sid, mpd}, &out, &errb); code != 2 || !strings.Contains(errb.String(), bad.says) {
			t.Errorf("play -cmcd-sid %q: exit %d, %q; want 2 saying %q", bad.sid, code, errb.String(), bad.says)
		}
	}
}
