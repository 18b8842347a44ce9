package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/origin"
)

// benchLibrary packages a 20 s 720p title at ~4 Mbit/s, whose 2 s segments
// are about 1 MiB, into a fresh library.
func benchLibrary(t testing.TB) (lib string, a *media.Asset) {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	src := filepath.Join(dir, "src.mp4")
	ctx := context.Background()
	if err := media.MakeSample(ctx, src, media.SampleOptions{Duration: 20 * time.Second, Width: 1280, Height: 720}); err != nil {
		t.Fatal(err)
	}
	ladder, _ := media.ParseLadder("1280x720@4200k,640x360@4000k")
	lib = filepath.Join(dir, "library")
	a, err := media.Package(ctx, []string{src}, media.PackageOptions{Library: lib, Name: "bench", Ladder: ladder, Preset: "ultrafast"})
	if err != nil {
		t.Fatal(err)
	}
	return lib, a
}

func segmentPaths(a *media.Asset, minSize int64) []string {
	var paths []string
	for _, r := range a.Renditions {
		for _, s := range r.Segments {
			if s.Size >= minSize {
				paths = append(paths, fmt.Sprintf("/vod/%s/%s/%d.m4s", a.Name, r.ID, s.Number))
			}
		}
	}
	return paths
}

// TestBenchOriginVsNginx serves one library from our origin and from nginx
// and loads both with wrk, alternating, for ~1 MiB segments and ~2 KiB
// manifests. Run by `make bench` (DEEPCAST_BENCH=1); it measures, it does not judge.
func TestBenchOriginVsNginx(t *testing.T) {
	if os.Getenv("DEEPCAST_BENCH") == "" {
		t.Skip("set DEEPCAST_BENCH=1 (make bench) to run")
	}
	tuneGC()
	lib, a := benchLibrary(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := origin.New(origin.Config{Library: lib, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ln, err := listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go serve(ctx, srv, ln, log)
	ours := "http://" + ln.Addr().String()
	nport := freePort(t)
	startNginx(t, nport, "", fmt.Sprintf("location /vod/ { alias %s/; add_header Cache-Control \"public, max-age=31536000, immutable\"; }", lib))
	theirs := fmt.Sprintf("http://127.0.0.1:%d", nport)

	segs := segmentPaths(a, 900<<10)
	manifests := []string{"/vod/bench/manifest.mpd"}
	fmt.Printf("origin vs nginx: %d segments of ~1 MiB, manifest of %d bytes; wrk 2 threads, 64 connections, 5 s runs, 3 interleaved rounds\n",
		len(segs), a.Manifest.Size)
	for _, load := range []struct {
		name  string
		paths []string
	}{{"1 MiB segments", segs}, {"2 KiB manifests", manifests}} {
		var o, n []wrkResult
		runWrk(t, ours, load.paths, 64, 2*time.Second) // warm both: page cache, connections
		runWrk(t, theirs, load.paths, 64, 2*time.Second)
		for range 3 {
			o = append(o, runWrk(t, ours, load.paths, 64, 5*time.Second))
			n = append(n, runWrk(t, theirs, load.paths, 64, 5*time.Second))
		}
		mo, mn := medianResult(o), medianResult(n)
		fmt.Printf("  %-16s deepcast %s\n  %-16s nginx    %s\n", load.name, mo, "", mn)
		fmt.Printf("  %-16s ratio deepcast/nginx: req/s %.2fx (target >= 1), p99 %.2fx (target <= 1.5)\n", "",
			mo.RPS/mn.RPS, float64(mo.P99)/float64(mn.P99))
	}
}
