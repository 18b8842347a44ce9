package origin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/deepcast/deepcast/edge"
	"github.com/deepcast/deepcast/edge/httpsem"
	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/mediatest"
	"github.com/deepcast/deepcast/media/store"
	"github.com/deepcast/deepcast/media/store/storetest"
)

// testSecret is put beside every test library: no request may reach it.
const testSecret = "TOP-SECRET-DO-NOT-SERVE"

// s3Library starts a versitygw and copies the test asset into a library
// at s3://BUCKET/lib, with secrets beside the prefix.
func s3Library(t *testing.T) (store.Store, *storetest.Server) {
	t.Helper()
	srv := storetest.Start(t)
	bucket := srv.Bucket(t, "origin-test")
	lib, err := store.Open(context.Background(), "s3://"+bucket+"/lib", store.S3Options{Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	storetest.CopyAsset(t, lib, mediatest.Library(t), mediatest.AssetName)
	client := srv.Client(t)
	for _, key := range []string{"secret.m4s", "manifest.mpd", "other/" + mediatest.AssetName + "/manifest.mpd", "lib/.versions/secret.m4s"} {
		if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
			Body: strings.NewReader(testSecret)}); err != nil {
			t.Fatal(err)
		}
	}
	return lib, srv
}

// forEachLibrary runs f over the test asset in a library folder (a copy
// the test may change) and in an object store library: lib is the folder,
// on points a Config at the library of the run.
func forEachLibrary(t *testing.T, f func(t *testing.T, lib string, on func(*Config))) {
	t.Run("folder", func(t *testing.T) { f(t, mediatest.CopyLibrary(t), func(*Config) {}) })
	t.Run("s3", func(t *testing.T) {
		s3lib, _ := s3Library(t)
		f(t, mediatest.CopyLibrary(t), func(c *Config) { c.Store = s3lib })
	})
	// Whole segments through the SDK's GetObject instead of a spliced
	// connection of the origin's own.
	t.Run("s3-sdk", func(t *testing.T) {
		s3lib, srv := s3Library(t)
		sdk, err := store.Open(context.Background(), s3lib.String(), store.S3Options{Endpoint: srv.Endpoint, NoDirect: true})
		if err != nil {
			t.Fatal(err)
		}
		f(t, mediatest.CopyLibrary(t), func(c *Config) { c.Store = sdk })
	})
}

// TestS3OriginServesWhatTheFolderOriginServes compares every response of
// an origin on an object store with the same asset's from a folder:
// status, validators and bytes, for whole files, ranges and HEAD.
func TestS3OriginServesWhatTheFolderOriginServes(t *testing.T) {
	lib := mediatest.Library(t)
	s3lib, _ := s3Library(t)
	_, folder := start(t, lib)
	_, objects := start(t, lib, func(c *Config) { c.Store = s3lib })
	a, err := media.LoadAsset(filepath.Join(lib, mediatest.AssetName))
	if err != nil {
		t.Fatal(err)
	}
	paths := []string{"/manifest.mpd", "/master.m3u8", "/thumbs/1.jpg"}
	for _, r := range a.Renditions {
		paths = append(paths, "/"+r.ID+"/init.mp4", "/"+r.ID+"/media.m3u8")
		for _, s := range r.Segments {
			paths = append(paths, "/"+r.ID+"/"+strconv.Itoa(s.Number)+".m4s")
		}
	}
	// Past httpsem.MaxRanges ranges, the whole object: never a ranged
	// GET to the store per range.
	tooMany := "bytes=0-0" + strings.Repeat(",0-0", httpsem.MaxRanges)
	requests := [][]string{nil, {"Range", "bytes=0-0"}, {"Range", "bytes=100-1099"}, {"Range", "bytes=-700"}, {"Range", "bytes=1000-"}, {"Range", tooMany}}
	for _, p := range paths {
		for _, hdr := range requests {
			url := "/vod/" + mediatest.AssetName + p
			want, wantBody := get(t, folder.URL+url, hdr...)
			got, gotBody := get(t, objects.URL+url, hdr...)
			if len(hdr) > 0 && hdr[1] == tooMany && (got.StatusCode != 200 || want.StatusCode != 200) {
				t.Errorf("%s with %d ranges: s3 %d, folder %d, want the whole object", url, httpsem.MaxRanges+1, got.StatusCode, want.StatusCode)
			}
			if isMedia := strings.HasSuffix(p, ".m4s") || strings.HasSuffix(p, ".mp4"); isMedia && got.StatusCode == 200 {
				sum, ok := httpsem.ReprSHA256(got.Header.Get("Repr-Digest"))
				if !ok || sum != sha256.Sum256(gotBody) {
					t.Errorf("%s: Repr-Digest %q is not the body's SHA-256", url, got.Header.Get("Repr-Digest"))
				}
			}
			if got.StatusCode != want.StatusCode || !bytes.Equal(gotBody, wantBody) {
				t.Errorf("%s %v: s3 %d, %d bytes; folder %d, %d bytes", url, hdr, got.StatusCode, len(gotBody), want.StatusCode, len(wantBody))
			}
			for _, h := range []string{"Etag", "Last-Modified", "Content-Type", "Cache-Control", "Content-Range", "Content-Length", "Accept-Ranges", "X-Deepcast-Last-Segment", "Repr-Digest"} {
				if got.Header.Get(h) != want.Header.Get(h) {
					t.Errorf("%s %v: %s %q from s3, %q from the folder", url, hdr, h, got.Header.Get(h), want.Header.Get(h))
				}
			}
		}
		resp, body := do(t, http.MethodHead, objects.URL+"/vod/"+mediatest.AssetName+p)
		if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength <= 0 {
			t.Errorf("HEAD %s: %d, %d bytes, length %d", p, resp.StatusCode, len(body), resp.ContentLength)
		}
	}
}

// TestS3StoreDownAndSlow: with the store gone, what is in memory (the
// manifest, the init segments) is still served, a segment is a 503 with
// Retry-After at once, readiness fails; with the store stalled, a segment
// is a 504 within the store timeout; with the store back, all is served.
func TestS3StoreDownAndSlow(t *testing.T) {
	s3lib, srv := s3Library(t)
	srv0, ts := start(t, mediatest.Library(t), func(c *Config) { c.Store = s3lib; c.StoreTimeout = time.Second })
	a, _ := media.LoadAsset(filepath.Join(mediatest.Library(t), mediatest.AssetName))
	base := ts.URL + "/vod/" + mediatest.AssetName
	seg := base + "/" + a.Renditions[0].ID + "/2.m4s"
	if resp, _ := get(t, base+"/manifest.mpd"); resp.StatusCode != 200 {
		t.Fatalf("manifest with the store up: %d", resp.StatusCode)
	}
	srv.Stop()
	for _, p := range []string{"/manifest.mpd", "/master.m3u8", "/" + a.Renditions[0].ID + "/init.mp4"} {
		if resp, _ := get(t, base+p); resp.StatusCode != 200 {
			t.Errorf("%s with the store down: %d, want 200 from memory", p, resp.StatusCode)
		}
	}
	start := time.Now()
	resp, _ := get(t, seg)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("segment with the store down: %d, Retry-After %q, Cache-Control %q", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Cache-Control"))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the 503 took %s", d)
	}
	if n := testutil.ToFloat64(srv0.metrics.storeErrors); n != 1 {
		t.Errorf("deepcast_origin_store_errors_total %v after one refused segment, want 1", n)
	}
	if resp, _ := get(t, ts.URL+"/readyz"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz with the store down: %d", resp.StatusCode)
	}
	srv.Restart(t)
	if resp, _ := get(t, ts.URL+"/readyz"); resp.StatusCode != 200 {
		t.Errorf("readyz with the store back: %d", resp.StatusCode)
	}
	if resp, body := get(t, seg); resp.StatusCode != 200 || int64(len(body)) != a.Renditions[0].Segments[1].Size {
		t.Errorf("segment with the store back: %d, %d bytes", resp.StatusCode, len(body))
	}

	// A store that accepts connections and never answers.
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	stalled, err := store.Open(context.Background(), s3lib.String(), store.S3Options{Endpoint: "http://" + hang.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	srvStalled, err := New(Config{Library: s3lib.String(), Store: stalled, Logger: quietLogger(), StoreTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer srvStalled.Close()
	// Load the asset from the live store's copy, then serve it from the
	// stalled one: a segment is a store trip.
	e, err := NewStoreCatalog(s3lib, time.Hour, time.Second).Get(mediatest.AssetName)
	if err != nil {
		t.Fatal(err)
	}
	e.checked.Store(time.Now().UnixNano())
	srvStalled.catalog.entries[mediatest.AssetName] = e
	srvStalled.catalog.every = time.Hour
	start = time.Now()
	rec := &recorder{header: http.Header{}}
	req, _ := http.NewRequest(http.MethodGet, "/vod/"+mediatest.AssetName+"/"+a.Renditions[0].ID+"/2.m4s", nil)
	srvStalled.ServeHTTP(rec, req)
	if rec.code != http.StatusGatewayTimeout || rec.header.Get("Retry-After") == "" {
		t.Errorf("segment from a stalled store: %d, Retry-After %q", rec.code, rec.header.Get("Retry-After"))
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 8*time.Second {
		t.Errorf("the 504 came after %s, want about the 1 s store timeout (SDK retries included)", d)
	}
	// A listing's load of an asset not loaded is a store trip too.
	start = time.Now()
	bound, cancel := context.WithTimeout(context.Background(), 20*time.Second) // the test's own bound
	defer cancel()
	if _, err := srvStalled.catalog.loadListed(bound, "other"); err == nil {
		t.Errorf("a listed asset loaded from a stalled store")
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("a listed asset's load from a stalled store took %s, want about the 1 s store timeout", d)
	}
}

// recorder is a minimal ResponseWriter for a direct ServeHTTP call.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) { r.code = code }

// TestS3NewBuildOnEveryOrigin: a new build published to the bucket is
// served by every origin on it within a few seconds, without a restart,
// and a session holding the old manifest still gets the old segments.
func TestS3NewBuildOnEveryOrigin(t *testing.T) {
	s3lib, _ := s3Library(t)
	lib := mediatest.Library(t)
	var bases []string
	for range 2 {
		_, ts := start(t, lib, func(c *Config) { c.Store = s3lib; c.CheckEvery = 200 * time.Millisecond })
		bases = append(bases, ts.URL+"/vod/"+mediatest.AssetName)
	}
	_, oldMPD := get(t, bases[0]+"/manifest.mpd")
	dir, _ := (store.Folder{Root: lib}).Resolve(mediatest.AssetName)
	a, _ := media.LoadAsset(dir)
	oldSeg := a.Renditions[0].ID + "/1.m4s"
	_, oldBody := get(t, bases[1]+"/"+oldSeg)

	// The new build: the same files with another creation time and title,
	// so its manifest and validators differ.
	staging := t.TempDir()
	if out, err := execCp(dir, staging); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	a.Build, a.Created = "b2new", a.Created.Add(time.Hour)
	mpd := bytes.Replace(oldMPD, []byte("</MPD>"), []byte("<!-- b2 --></MPD>"), 1)
	writeAsset(t, staging, a, mpd)
	storetest.CopyIn(t, s3lib, staging, mediatest.AssetName, a.Build)

	deadline := time.Now().Add(10 * time.Second)
	for _, base := range bases {
		for {
			resp, body := get(t, base+"/manifest.mpd")
			if resp.StatusCode == 200 && bytes.Equal(body, mpd) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the new build not served within 10 s", base)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// The old version is the previous one: still there for old sessions,
	// through the entry an old request resolved (the same bytes).
	if _, body := get(t, bases[1]+"/"+oldSeg); !bytes.Equal(body, oldBody) {
		t.Error("segment bytes changed across builds of the same files")
	}
}

func execCp(src, dst string) ([]byte, error) {
	return exec.Command("cp", "-rL", src+"/.", dst).CombinedOutput()
}

// writeAsset rewrites asset.json and manifest.mpd of a version folder.
func writeAsset(t *testing.T, dir string, a *media.Asset, mpd []byte) {
	t.Helper()
	sum := sha256.Sum256(mpd)
	a.Manifest = media.FileInfo{Size: int64(len(mpd)), SHA256: hex.EncodeToString(sum[:])}
	if err := os.WriteFile(filepath.Join(dir, media.ManifestFile), mpd, 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, media.AssetFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestS3IngestOnOneOriginServedByAll: an upload ingested by one origin of
// a bucket is published to the store and served by another origin.
func TestS3IngestOnOneOriginServedByAll(t *testing.T) {
	s3lib, srv := s3Library(t)
	lib := mediatest.Library(t)
	_, a := start(t, lib, func(c *Config) { c.Store = s3lib })
	_, b := start(t, lib, func(c *Config) { c.Store = s3lib; c.CheckEvery = 200 * time.Millisecond })
	if resp, _ := get(t, b.URL+"/vod/uploaded/manifest.mpd"); resp.StatusCode != 404 {
		t.Fatalf("before the ingest: %d", resp.StatusCode)
	}
	resp, j := uploadFile(t, a.URL, "secret-token", mediatest.Source(t), map[string]string{"name": "uploaded", "ladder": "320x180@300k"})
	if resp.StatusCode != 202 {
		t.Fatalf("upload: %d", resp.StatusCode)
	}
	if done, _ := waitJob(t, a.URL, j.ID); done.State != JobDone {
		t.Fatalf("job ended %+v", done)
	}
	if keys := srv.Keys(t, "origin-test", "lib/uploaded"); len(keys) != 1 {
		t.Errorf("pointer objects for the ingested asset: %v", keys)
	}
	for _, base := range []string{a.URL, b.URL} {
		frames := mediatest.CountFrames(t, mediatest.Source(t))
		mediatest.CheckDecodesAll(t, base+"/vod/uploaded/manifest.mpd", 1, frames)
	}
}

// TestS3SegmentAlteredInTheStoreIsNeverCached: a segment object
// overwritten in the bucket with other bytes of the same size (which the
// origin, streaming from the store, cannot see) is refused by the edge in
// front of it against the Repr-Digest the origin sends, never served whole
// and never cached; the untouched segments still are.
func TestS3SegmentAlteredInTheStoreIsNeverCached(t *testing.T) {
	s3lib, srv := s3Library(t)
	_, ts := start(t, mediatest.Library(t), func(c *Config) { c.Store = s3lib })
	prefetch := false
	node, err := edge.New(edge.Config{Profile: edge.BringHome, Name: "home", Upstreams: []string{ts.URL}, DiskDir: t.TempDir(),
		MemBytes: 64 << 20, Prefetch: &prefetch, Logger: quietLogger(), CheckEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Close)
	home := httptest.NewServer(node)
	t.Cleanup(home.Close)

	a, _ := media.LoadAsset(filepath.Join(mediatest.Library(t), mediatest.AssetName))
	rd := a.Renditions[0]
	client := srv.Client(t)
	var key string
	for _, k := range srv.Keys(t, "origin-test", "lib/.versions/") {
		if strings.HasSuffix(k, "/"+rd.ID+"/1.m4s") {
			key = k
		}
	}
	if key == "" {
		t.Fatalf("no key for %s/1.m4s in the bucket", rd.ID)
	}
	ctx := context.Background()
	obj, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("origin-test"), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	data[len(data)/2] ^= 0xff
	if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("origin-test"), Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}

	base := "/vod/" + mediatest.AssetName + "/" + rd.ID + "/"
	// The origin itself passes the altered bytes on, under the recorded digest.
	if resp, body := get(t, ts.URL+base+"1.m4s"); resp.StatusCode != 200 || !bytes.Equal(body, data) || resp.Header.Get("Repr-Digest") == "" {
		t.Fatalf("origin: %d, %d bytes, Repr-Digest %q; want the altered bytes with the recorded digest", resp.StatusCode, len(body), resp.Header.Get("Repr-Digest"))
	}
	for round := range 2 {
		resp, body := get(t, home.URL+base+"1.m4s")
		if resp.StatusCode == 200 {
			t.Errorf("edge, round %d: 200 with %d bytes of an object that does not match its digest", round, len(body))
		}
	}
	var stats edge.Stats
	if _, body := get(t, home.URL+"/api/stats"); json.Unmarshal(body, &stats) != nil || stats.DigestMismatches != 2 {
		t.Errorf("/api/stats: %d digest mismatches, want 2 (%s)", stats.DigestMismatches, body)
	}
	_, metrics := get(t, home.URL+"/metrics")
	if !strings.Contains(string(metrics), "deepcast_edge_digest_mismatches_total 2") {
		t.Errorf("the edge did not count 2 digest mismatches:\n%s", grepLines(string(metrics), "digest"))
	}
	want, _ := os.ReadFile(filepath.Join(mediatest.Library(t), mediatest.AssetName, rd.ID, "2.m4s"))
	for round := range 2 {
		resp, body := get(t, home.URL+base+"2.m4s")
		if resp.StatusCode != 200 || !bytes.Equal(body, want) {
			t.Errorf("edge, untouched segment, round %d: %d, %d bytes", round, resp.StatusCode, len(body))
		}
		if round == 1 && !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
			t.Errorf("untouched segment not cached: Cache-Status %q", resp.Header.Get("Cache-Status"))
		}
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// countingStore is a library store that counts the requests a catalogue
// makes of it.
type countingStore struct {
	store.Store
	asked atomic.Int64
}

func (s *countingStore) Current(ctx context.Context, name string, prev store.Version) (store.Version, error) {
	s.asked.Add(1)
	return s.Store.Current(ctx, name, prev)
}

func (s *countingStore) Previous(ctx context.Context, name string, v store.Version) (store.Version, error) {
	s.asked.Add(1)
	return s.Store.Previous(ctx, name, v)
}

func (s *countingStore) ReadFile(ctx context.Context, v store.Version, rel string, limit int64) ([]byte, error) {
	s.asked.Add(1)
	return s.Store.ReadFile(ctx, v, rel, limit)
}

// TestDamagedAssetIsNotReadAgainPerRequest: an asset whose only version
// is damaged answers 500 from memory until the next check, not after a
// trip to the store per request; once published again whole, it is served
// after that check.
func TestDamagedAssetIsNotReadAgainPerRequest(t *testing.T) {
	s3lib, _ := s3Library(t)
	folder := mediatest.Library(t)
	live, err := store.Folder{Root: folder}.Resolve(mediatest.AssetName)
	if err != nil {
		t.Fatal(err)
	}
	damaged := t.TempDir()
	if out, err := execCp(live, damaged); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if err := os.WriteFile(filepath.Join(damaged, media.AssetFile), []byte(`{"name": "broken", "renditions": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	storetest.CopyIn(t, s3lib, damaged, "broken", "damaged")

	counted := &countingStore{Store: s3lib}
	_, slow := start(t, folder, func(c *Config) { c.Store = counted; c.CheckEvery = time.Hour })
	_, quick := start(t, folder, func(c *Config) { c.Store = s3lib; c.CheckEvery = 100 * time.Millisecond })
	manifest := "/vod/broken/manifest.mpd"
	for _, ts := range []*httptest.Server{slow, quick} {
		if resp, _ := get(t, ts.URL+manifest); resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("manifest of an asset whose only version is damaged: %s, want 500", resp.Status)
		}
	}
	once := counted.asked.Load()
	for range 40 {
		if resp, _ := get(t, slow.URL+manifest); resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("manifest of the damaged asset again: %s, want 500", resp.Status)
		}
	}
	if again := counted.asked.Load() - once; again != 0 {
		t.Errorf("40 more requests for the damaged asset within the check interval asked the store %d more times (the first: %d), want none", again, once)
	}

	storetest.CopyAssetAs(t, s3lib, folder, mediatest.AssetName, "broken")
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, _ := get(t, quick.URL+manifest)
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the asset published again whole is still %s after 10 s", resp.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSubtitleTracksAreServed: a film's subtitle tracks are served from a
// folder and from an object store alike, as WebVTT with the headers of
// every immutable object (validators, ranges, conditionals), listed in
// the catalogue; an unknown or hostile track name is refused; and ffmpeg,
// an independent DASH client, reads the cues through the MPD.
func TestSubtitleTracksAreServed(t *testing.T) {
	lib := t.TempDir()
	ladder, _ := media.ParseLadder("320x180@300k")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, err := media.Package(ctx, []string{mediatest.Film(t, t.TempDir(), 4*time.Second)}, media.PackageOptions{Library: lib, Name: "film", Ladder: ladder})
	if err != nil {
		t.Fatal(err)
	}
	srv := storetest.Start(t)
	s3lib, err := store.Open(ctx, "s3://"+srv.Bucket(t, "subtitles")+"/lib", store.S3Options{Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	storetest.CopyAsset(t, s3lib, lib, "film")
	_, folder := start(t, lib)
	_, objects := start(t, lib, func(c *Config) { c.Store = s3lib })
	for name, ts := range map[string]*httptest.Server{"folder": folder, "s3": objects} {
		base := ts.URL + "/vod/film/"
		for _, tr := range a.Texts {
			want, _ := os.ReadFile(filepath.Join(lib, "film", tr.ID, "text.vtt"))
			resp, body := get(t, base+tr.ID+"/text.vtt")
			h := resp.Header
			if resp.StatusCode != 200 || !bytes.Equal(body, want) || h.Get("Content-Type") != "text/vtt; charset=utf-8" ||
				h.Get("Cache-Control") != "public, max-age=31536000, immutable" || h.Get("ETag") != etag(tr.File.SHA256) {
				t.Errorf("%s %s: %d, %d bytes (want %d), headers %v", name, tr.ID, resp.StatusCode, len(body), len(want), h)
			}
			if resp, body := get(t, base+tr.ID+"/text.vtt", "Range", "bytes=0-5"); resp.StatusCode != 206 || string(body) != "WEBVTT" {
				t.Errorf("%s %s bytes=0-5: %d %q", name, tr.ID, resp.StatusCode, body)
			}
			if resp, _ := get(t, base+tr.ID+"/text.vtt", "If-None-Match", h.Get("ETag")); resp.StatusCode != 304 {
				t.Errorf("%s %s If-None-Match: %d, want 304", name, tr.ID, resp.StatusCode)
			}
		}
		for path, code := range map[string]int{"text-xx/text.vtt": 404, "180p-300k/text.vtt": 404, "..%2ftext-en/text.vtt": 400, "text-en/text.vtt%00": 404} {
			if resp, body := get(t, base+path); resp.StatusCode != code || bytes.HasPrefix(body, []byte("WEBVTT")) {
				t.Errorf("%s %s: %d, want %d", name, path, resp.StatusCode, code)
			}
		}
		var summary AssetSummary
		if _, body := get(t, ts.URL+"/api/assets/film"); json.Unmarshal(body, &summary) != nil || len(summary.Subtitles) != len(a.Texts) ||
			summary.Subtitles[0].URL != "/vod/film/text-en/text.vtt" || summary.Subtitles[1].Role != "caption" {
			t.Errorf("%s catalogue: subtitles %+v", name, summary.Subtitles)
		}
	}
	out, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", folder.URL+"/vod/film/manifest.mpd",
		"-map", "0:s:0", "-f", "webvtt", "-").Output()
	if err != nil || !strings.Contains(string(out), "English 2") {
		t.Errorf("ffmpeg reading the first subtitle track through the MPD: %v\n%s", err, out)
	}
}
