package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/deepcast/deepcast/edge"
	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/mediatest"
	"github.com/deepcast/deepcast/media/store"
	"github.com/deepcast/deepcast/media/store/storetest"
)

// renditionsFor encodes the test source into two pre-encoded renditions
// with aligned keyframes, for `package -copy`: packaging them is
// deterministic, so two packages of them have the same bytes.
func renditionsFor(t *testing.T) []string {
	t.Helper()
	src := mediatest.Source(t)
	dir := t.TempDir()
	var out []string
	for _, r := range []struct{ size, rate string }{{"640x360", "700k"}, {"320x180", "250k"}} {
		p := filepath.Join(dir, r.size+".mp4")
		cmd := exec.Command("ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", src, "-c:v", "libx264", "-preset", "veryfast",
			"-s", r.size, "-b:v", r.rate, "-bf", "0", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0", "-c:a", "aac", "-b:a", "64k", p)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, b)
		}
		out = append(out, p)
	}
	return out
}

// runCLI runs the deepcast binary to the end, bounded in time.
func runCLI(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

// validateMPD checks an MPD against the DASH schema with xmllint.
func validateMPD(t *testing.T, mpd []byte) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "manifest.mpd")
	if err := os.WriteFile(f, mpd, 0o644); err != nil {
		t.Fatal(err)
	}
	mediatest.ValidateMPD(t, f)
}

// httpGet fetches a URL whole.
func httpGet(t *testing.T, u string) (int, []byte) {
	t.Helper()
	c := http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return resp.StatusCode, body
}

// homeEdge starts an in-process bring-home node without prefetching in
// front of upstreams (tried in order).
func homeEdge(t *testing.T, upstreams ...string) (*edge.Node, string) {
	t.Helper()
	prefetch := false
	n, err := edge.New(edge.Config{Profile: edge.BringHome, Name: "home", Upstreams: upstreams, DiskDir: t.TempDir(),
		MemBytes: 64 << 20, Prefetch: &prefetch, Logger: discard(), CheckEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n, serveLoopback(t, n)
}

// startS3Origin runs `deepcast origin` on an s3:// library.
func startS3Origin(t *testing.T, bin, library string, extra ...string) (string, *node) {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	n := startNode(t, bin, addr, append([]string{"origin", "-library", library, "-listen", addr, "-check", "200ms"}, extra...)...)
	return "http://" + addr, n
}

// TestS3PackageCommandPlaysThroughTheEdge packages to an object store
// with the package command, serves it with the origin command, and plays
// it through an edge with ffmpeg: every frame of every rendition decodes,
// the MPD is valid, every file is byte for byte what a folder package of
// the same renditions holds, and sim reads the asset from the store.
func TestS3PackageCommandPlaysThroughTheEdge(t *testing.T) {
	srv := storetest.Start(t)
	bucket := srv.Bucket(t, "vod-e2e")
	bin := buildBinary(t)
	inputs := renditionsFor(t)
	lib := "s3://" + bucket + "/library"
	out, err := runCLI(t, bin, append([]string{"package", "-o", lib, "-copy", "-name", "clip"}, inputs...)...)
	if err != nil {
		t.Fatalf("package to %s: %v\n%s", lib, err, out)
	}
	if !strings.Contains(out, "publish") || !strings.Contains(out, "MB/s") || !strings.Contains(out, "published: "+lib+"/clip") {
		t.Errorf("package output shows no upload progress or result:\n%s", out)
	}
	folder := filepath.Join(t.TempDir(), "library")
	if out, err := runCLI(t, bin, append([]string{"package", "-o", folder, "-copy", "-name", "clip"}, inputs...)...); err != nil {
		t.Fatalf("package to a folder: %v\n%s", err, out)
	}
	originURL, _ := startS3Origin(t, bin, lib)
	_, edgeURL := homeEdge(t, originURL)
	mpdURL := edgeURL + "/vod/clip/manifest.mpd"
	mediatest.CheckDecodesAll(t, mpdURL, 2, mediatest.CountFrames(t, inputs[0]))
	_, mpd := httpGet(t, mpdURL)
	validateMPD(t, mpd)

	dir, err := (store.Folder{Root: folder}).Resolve("clip")
	if err != nil {
		t.Fatal(err)
	}
	compared := 0
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == media.AssetFile {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		want, _ := os.ReadFile(p)
		code, got := httpGet(t, edgeURL+"/vod/clip/"+filepath.ToSlash(rel))
		if code != 200 || !bytes.Equal(got, want) {
			t.Errorf("%s: %d, %d bytes through the edge from the store; the folder package has %d", rel, code, len(got), len(want))
		}
		compared++
		return nil
	})
	if err != nil || compared < 10 {
		t.Fatalf("compared %d files: %v", compared, err)
	}

	trace := filepath.Join(repoRoot(), "testdata", "traces", "fcc")
	simOut, err := runCLI(t, bin, "sim", "-video", lib+"/clip", "-traces", trace, "-abr", "bba")
	if err != nil || !strings.Contains(simOut, "bba") {
		t.Errorf("sim -video %s/clip: %v\n%s", lib, err, simOut)
	}
}

// TestS3TwoOriginsOneKilledMidPlay: two origin processes on one bucket
// behind a bring-home edge; the one serving is killed (SIGKILL) while
// ffmpeg plays at real time through the edge; the play completes with
// every frame, and the survivor served the rest.
func TestS3TwoOriginsOneKilledMidPlay(t *testing.T) {
	f := startS3Fleet(t, "vod-fleet")
	o1, o2 := f.origins[0], f.origins[1]
	before := originRequests(t, o2)
	done := playInBackground(f.edge+"/vod/"+mediatest.AssetName+"/manifest.mpd", f.frames, "-re")
	time.Sleep(2 * time.Second)
	if originRequests(t, o1) == 0 {
		t.Fatal("the first origin served nothing in the first 2 s of play")
	}
	if err := f.nodes[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("play through the edge after kill -9 of an origin: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("play did not end")
	}
	if after := originRequests(t, o2); after <= before {
		t.Errorf("the surviving origin served %d requests during the play", after-before)
	}
}

// s3Fleet is the test asset in a bucket, two `deepcast origin` processes
// on it, and a bring-home edge in front of them.
type s3Fleet struct {
	bin, lib string
	origins  []string
	nodes    []*node
	edge     string
	frames   int // of the test source
}

func startS3Fleet(t *testing.T, bucket string) s3Fleet {
	t.Helper()
	srv := storetest.Start(t)
	f := s3Fleet{lib: "s3://" + srv.Bucket(t, bucket) + "/lib", bin: buildBinary(t)}
	copyTestAsset(t, f.lib)
	for range 2 {
		o, n := startS3Origin(t, f.bin, f.lib)
		f.origins, f.nodes = append(f.origins, o), append(f.nodes, n)
	}
	_, f.edge = homeEdge(t, f.origins...)
	f.frames = mediatest.CountFrames(t, mediatest.Source(t))
	return f
}

// playInBackground decodes url with ffmpeg (input options opts) and
// reports on the channel whether both video streams had every frame.
func playInBackground(url string, frames int, opts ...string) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		counts, log, err := mediatest.Decode(ctx, url, opts...)
		if err == nil && (len(counts) != 3 || counts[0].Frames != frames || counts[1].Frames != frames) {
			err = fmt.Errorf("decoded %+v, want 2 video streams of %d frames and audio\n%s", counts, frames, log)
		}
		done <- err
	}()
	return done
}

// copyTestAsset publishes the packaged test asset into an s3:// library.
func copyTestAsset(t *testing.T, lib string) {
	t.Helper()
	s, err := store.Open(context.Background(), lib, store.S3Options{})
	if err != nil {
		t.Fatal(err)
	}
	storetest.CopyAsset(t, s, mediatest.Library(t), mediatest.AssetName)
}

// originRequests reads an origin's request count from /api/stats.
func originRequests(t *testing.T, base string) int64 {
	t.Helper()
	code, body := httpGet(t, base+"/api/stats")
	var st struct{ Requests int64 }
	if code != 200 || json.Unmarshal(body, &st) != nil {
		t.Fatalf("%s/api/stats: %d %s", base, code, body)
	}
	return st.Requests
}

// faultyStore is a proxy in front of a real S3 server that slows down or
// refuses uploads (PUT requests), as a store in trouble does.
type faultyStore struct {
	proxy    *httputil.ReverseProxy
	putDelay time.Duration
	failPuts atomic.Bool
	puts     atomic.Int64
}

func (f *faultyStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPut {
		f.puts.Add(1)
		if f.failPuts.Load() {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected</Message></Error>`)
			return
		}
		select {
		case <-time.After(f.putDelay):
		case <-r.Context().Done():
			return
		}
	}
	f.proxy.ServeHTTP(w, r)
}

// TestS3InterruptedPublishLeavesTheOldVersion: a packager killed in the
// middle of its upload, and one whose store starts refusing writes, both
// leave the previous version live and complete on the origin; the killed
// one's partial upload is pruned by the next publish.
func TestS3InterruptedPublishLeavesTheOldVersion(t *testing.T) {
	srv := storetest.Start(t)
	bucket := srv.Bucket(t, "vod-interrupt")
	lib := "s3://" + bucket + "/lib"
	copyTestAsset(t, lib)
	bin := buildBinary(t)
	target, _ := url.Parse(srv.Endpoint)
	faulty := &faultyStore{proxy: httputil.NewSingleHostReverseProxy(target), putDelay: 300 * time.Millisecond}
	proxyURL := serveLoopback(t, faulty)
	originURL, _ := startS3Origin(t, bin, lib)
	mpdURL := originURL + "/vod/" + mediatest.AssetName + "/manifest.mpd"
	_, oldMPD := httpGet(t, mpdURL)
	inputs := renditionsFor(t)
	frames := mediatest.CountFrames(t, mediatest.Source(t))
	versions := func() []string {
		var vs []string
		for _, k := range srv.Keys(t, bucket, "lib/.versions/") {
			v := strings.SplitN(strings.TrimPrefix(k, "lib/.versions/"), "/", 2)[0]
			if len(vs) == 0 || vs[len(vs)-1] != v {
				vs = append(vs, v)
			}
		}
		return vs
	}
	unchanged := func(when string) {
		t.Helper()
		time.Sleep(500 * time.Millisecond) // past the origin's -check
		if code, mpd := httpGet(t, mpdURL); code != 200 || !bytes.Equal(mpd, oldMPD) {
			t.Fatalf("%s: the origin serves another manifest (%d)", when, code)
		}
		mediatest.CheckDecodesAll(t, mpdURL, 2, frames)
	}

	// 1. kill -9 during the upload. The packagers stage in a temporary
	// folder of this test's, to see what a killed one leaves there.
	tmp := t.TempDir()
	staged := func() []string { m, _ := filepath.Glob(filepath.Join(tmp, "deepcast-staging-*")); return m }
	cmd := exec.Command(bin, append([]string{"package", "-o", lib, "-s3-endpoint", proxyURL, "-s3-parallel", "2", "-copy", "-name", mediatest.AssetName}, inputs...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	stderr, _ := cmd.StderrPipe()
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	sc.Split(scanLinesOrCR)
	killed := false
	deadline := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	for sc.Scan() {
		if strings.HasPrefix(strings.TrimSpace(sc.Text()), "publish") && faulty.puts.Load() > 0 {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
			break
		}
	}
	go io.Copy(io.Discard, stderr)
	cmd.Wait()
	killedAt := time.Now()
	deadline.Stop()
	if !killed {
		t.Fatal("the packager never reached its upload")
	}
	unchanged("after kill -9 of the packager mid-upload")
	if len(staged()) == 0 {
		t.Errorf("the killed packager left no staging folder in %s: the sweep below tests nothing", tmp)
	}
	if vs := versions(); len(vs) != 2 {
		t.Errorf("versions after the killed publish: %v, want the live one and the partial one", vs)
	}

	// 2. the store refuses writes: the packager fails cleanly and removes
	// what it uploaded.
	faulty.putDelay = 0
	faulty.failPuts.Store(true)
	out, err := runCLI(t, bin, append([]string{"package", "-o", lib, "-s3-endpoint", proxyURL, "-copy", "-name", mediatest.AssetName}, inputs...)...)
	if err == nil || !strings.Contains(out, "publish") || !strings.Contains(out, "500") {
		t.Errorf("package to a store refusing writes: %v\n%s", err, out)
	}
	unchanged("after a publish the store refused")

	// 3. a good publish replaces the asset and prunes the partial upload,
	// once its marker has gone stale (store.StalePublish after the last
	// beat, plus the store's one-second clock).
	faulty.failPuts.Store(false)
	time.Sleep(time.Until(killedAt.Add(store.StalePublish + 2*time.Second)))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	good := exec.CommandContext(ctx, bin, append([]string{"package", "-o", lib, "-copy", "-name", mediatest.AssetName}, inputs...)...)
	good.Env = append(os.Environ(), "TMPDIR="+tmp)
	if out, err := good.CombinedOutput(); err != nil {
		t.Fatalf("package: %v\n%s", err, out)
	}
	// It swept away what the killed one staged, and left nothing of its own.
	if left := staged(); len(left) != 0 {
		t.Errorf("staging folders left in %s after a good publish: %v", tmp, left)
	}
	if vs := versions(); len(vs) != 2 {
		t.Errorf("versions after a good publish: %v, want the new one and the previous one", vs)
	}
	deadlineNew := time.Now().Add(10 * time.Second)
	for {
		if _, mpd := httpGet(t, mpdURL); !bytes.Equal(mpd, oldMPD) {
			break
		}
		if time.Now().After(deadlineNew) {
			t.Fatal("the new version not served within 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scanLinesOrCR splits progress output at newlines and carriage returns.
func scanLinesOrCR(data []byte, atEOF bool) (int, []byte, error) {
	for i, c := range data {
		if c == '\n' || c == '\r' {
			return i + 1, data[:i], nil
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// TestS3RepackageWhileAPlayerStreams: while ffmpeg plays the asset at
// half speed through an edge in front of two origins on one bucket, the
// asset is packaged again with another ladder. The player finishes with
// every frame (the renditions of its manifest come from the previous
// version), and new sessions get the new manifest from both origins
// within a few seconds, without a restart.
func TestS3RepackageWhileAPlayerStreams(t *testing.T) {
	f := startS3Fleet(t, "vod-repackage")
	o1, o2, frames, bin, lib := f.origins[0], f.origins[1], f.frames, f.bin, f.lib
	_, oldMPD := httpGet(t, o1+"/vod/"+mediatest.AssetName+"/manifest.mpd")
	done := playInBackground(f.edge+"/vod/"+mediatest.AssetName+"/manifest.mpd", frames, "-readrate", "0.5")
	time.Sleep(time.Second)
	out, err := runCLI(t, bin, "package", "-o", lib, "-name", mediatest.AssetName, "-ladder", "320x180@300k", "-preset", "ultrafast", mediatest.Source(t))
	if err != nil {
		t.Fatalf("package again: %v\n%s", err, out)
	}
	published := time.Now()
	for _, o := range []string{o1, o2} {
		for {
			_, mpd := httpGet(t, o+"/vod/"+mediatest.AssetName+"/manifest.mpd")
			if !bytes.Equal(mpd, oldMPD) {
				break
			}
			if time.Since(published) > 5*time.Second {
				t.Fatalf("%s still serves the old manifest 5 s after the publish", o)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the session on the old version: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("play did not end")
	}
	// A new session on either origin plays the new version whole (edges
	// move to it when their copy of the manifest expires).
	mediatest.CheckDecodesAll(t, o2+"/vod/"+mediatest.AssetName+"/manifest.mpd", 1, frames)
}

// TestDemoS3 runs `deepcast demo -s3`: the library in its own versitygw,
// two origins on it; a viewer plays through an enter-deep edge, and
// SIGINT stops every node and the S3 server.
func TestDemoS3(t *testing.T) {
	if _, err := storetest.Binary(); err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	cmd, out, done := startDemo(t, bin, "-s3", "-dir", dir, "-sample-duration", "6s", "-sample-size", "320x180", "-play", "0")
	var origins, deeps []string
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[1] == "origin" {
			origins = append(origins, f[0])
		}
		if len(f) >= 3 && f[1] == edge.EnterDeep {
			deeps = append(deeps, f[2])
		}
	}
	if len(origins) != 2 || !strings.Contains(out.String(), "library s3://"+demoBucket+"/library") || len(deeps) == 0 {
		t.Fatalf("demo -s3 shows origins %v and no S3 library:\n%s", origins, out.String())
	}
	checkDecodes(t, deeps[0]+"/vod/sample/manifest.mpd", 6*30, "-ca_file", filepath.Join(dir, "tls", "ca.pem"))
	cmd.Process.Signal(os.Interrupt)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("demo -s3 still running 15 s after SIGINT")
	}
	if procs, _ := exec.Command("pgrep", "-f", dir).Output(); len(strings.TrimSpace(string(procs))) > 0 {
		t.Errorf("processes left behind (the S3 server?): %s", procs)
	}
}
