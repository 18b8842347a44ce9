package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/deepcast/deepcast/media/store"
	"github.com/deepcast/deepcast/media/store/storetest"
)

// stage writes files (path -> content) into a fresh staging folder of lib.
func stage(t *testing.T, lib store.Store, name string, files map[string]string) string {
	t.Helper()
	dir, err := lib.Staging(name)
	if err != nil {
		t.Fatal(err)
	}
	for rel, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// stores returns a folder library and an object store library, both empty.
func stores(t *testing.T) map[string]store.Store {
	t.Helper()
	srv := storetest.Start(t)
	bucket := srv.Bucket(t, "lib-test")
	s3lib, err := store.Open(context.Background(), "s3://"+bucket+"/vod/lib", store.S3Options{Endpoint: srv.Endpoint, Parallel: 4})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]store.Store{"folder": store.Folder{Root: filepath.Join(t.TempDir(), "lib")}, "s3": s3lib}
}

// s3Lib starts a versitygw with an empty bucket and opens the library at
// s3://BUCKET/lib in it.
func s3Lib(t *testing.T, bucket string) (*storetest.Server, string, store.Store) {
	t.Helper()
	srv := storetest.Start(t)
	bucket = srv.Bucket(t, bucket)
	lib, err := store.Open(context.Background(), "s3://"+bucket+"/lib", store.S3Options{Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	return srv, bucket, lib
}

// TestPublishReadReplace runs the same life of an asset through both
// stores: publish, resolve, read whole and in ranges, list, replace (the
// previous version stays readable, the one before is pruned).
func TestPublishReadReplace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	seg := strings.Repeat("0123456789", 1000)
	// big takes the multipart upload (from 16 MiB); the others a PutObject.
	big := strings.Repeat("deepcast", 17<<20/8) + "tail"
	for kind, lib := range stores(t) {
		t.Run(kind, func(t *testing.T) {
			if _, err := lib.Current(ctx, "movie", store.Version{}); !errors.Is(err, store.ErrNoAsset) {
				t.Fatalf("Current before publish: %v, want ErrNoAsset", err)
			}
			var versions []store.Version
			for i, build := range []string{"b1", "b2", "b3"} {
				files := map[string]string{"asset.json": build, "720p/1.m4s": seg, "720p/init.mp4": "init" + build}
				if build == "b2" {
					files["1080p/1.m4s"] = big
				}
				total := 0
				for _, body := range files {
					total += len(body)
				}
				dir := stage(t, lib, "movie", files)
				var last, beforeLive store.Progress
				lives := 0
				if err := lib.Publish(ctx, dir, "movie", build, func(p store.Progress) {
					if p.Live {
						lives++
					} else {
						beforeLive = p
					}
					last = p
				}); err != nil {
					t.Fatal(err)
				}
				if lives != 1 || !last.Live {
					t.Errorf("publish reported live %d times, last %+v: want once, last", lives, last)
				}
				if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("staging folder left after publish: %v", err)
				}
				if kind == "s3" && (beforeLive.Total != int64(total) || beforeLive.Done != beforeLive.Total) {
					t.Errorf("last upload progress %+v, want all of %d bytes", beforeLive, total)
				}
				v, err := lib.Current(ctx, "movie", store.Version{})
				if err != nil {
					t.Fatal(err)
				}
				if v.ID != "movie."+build {
					t.Fatalf("publish %d: version %q", i, v.ID)
				}
				if same, err := lib.Current(ctx, "movie", v); err != nil || same != v {
					t.Errorf("Current with the live version: %+v, %v", same, err)
				}
				versions = append(versions, v)
				// The version v replaced, as a reader that cannot serve v
				// falls back to it; none before the first.
				prev, err := lib.Previous(ctx, "movie", v)
				if i == 0 {
					if !errors.Is(err, store.ErrNoAsset) {
						t.Errorf("Previous of the first version: %+v, %v; want ErrNoAsset", prev, err)
					}
				} else if err != nil || prev.ID != versions[i-1].ID {
					t.Errorf("Previous of %s: %+v, %v; want %s", v.ID, prev, err, versions[i-1].ID)
				} else if got, err := lib.ReadFile(ctx, prev, "720p/init.mp4", 100); err != nil || string(got) != "init"+strings.TrimPrefix(versions[i-1].ID, "movie.") {
					t.Errorf("init of the version before %s: %q, %v", v.ID, got, err)
				}
				got, err := lib.ReadFile(ctx, v, "asset.json", 100)
				if err != nil || string(got) != build {
					t.Fatalf("asset.json: %q, %v", got, err)
				}
			}
			// The previous version is still complete; the first was pruned.
			if got, err := lib.ReadFile(ctx, versions[1], "720p/init.mp4", 100); err != nil || string(got) != "initb2" {
				t.Errorf("previous version: %q, %v", got, err)
			}
			if got, err := lib.ReadFile(ctx, versions[1], "1080p/1.m4s", int64(len(big))); err != nil || string(got) != big {
				t.Errorf("previous version's big segment: %d bytes (want %d), %v", len(got), len(big), err)
			}
			if _, err := lib.ReadFile(ctx, versions[0], "720p/init.mp4", 100); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the version before the previous one was not pruned: %v", err)
			}
			for _, c := range []struct{ off, n int64 }{{0, -1}, {0, 1}, {9990, 10}, {5000, -1}, {123, 4567}} {
				body, size, err := lib.Open(ctx, versions[2], "720p/1.m4s", c.off, c.n)
				if err != nil {
					t.Fatalf("open %+v: %v", c, err)
				}
				got, err := io.ReadAll(body)
				body.Close()
				want := seg[c.off:]
				if c.n >= 0 {
					want = seg[c.off : c.off+c.n]
				}
				if err != nil || size != int64(len(seg)) || string(got) != want {
					t.Errorf("open %+v: %d bytes of %d, %v", c, len(got), size, err)
				}
			}
			if _, err := lib.ReadFile(ctx, versions[2], "720p/1.m4s", 100); err == nil {
				t.Error("ReadFile over its limit succeeded")
			}
			names, err := lib.Names(ctx)
			if err != nil || !slices.Equal(names, []string{"movie"}) {
				t.Errorf("Names: %v, %v", names, err)
			}
			if err := lib.Check(ctx); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

// TestHostileNames: no file name, version or asset name reaches outside
// the library, in either store.
func TestHostileNames(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for kind, lib := range stores(t) {
		t.Run(kind, func(t *testing.T) {
			dir := stage(t, lib, "a", map[string]string{"asset.json": "x"})
			if err := lib.Publish(ctx, dir, "a", "b1", nil); err != nil {
				t.Fatal(err)
			}
			v, err := lib.Current(ctx, "a", store.Version{})
			if err != nil {
				t.Fatal(err)
			}
			for _, rel := range []string{"../a", "..", "/etc/passwd", "x/../../y", ".versions/a.b1/asset.json", "a//b", "", "%2e%2e/x", "a\\..\\b"} {
				if _, err := lib.ReadFile(ctx, v, rel, 100); err == nil {
					t.Errorf("ReadFile(%q) succeeded", rel)
				}
				if _, _, err := lib.Open(ctx, v, rel, 0, -1); err == nil {
					t.Errorf("Open(%q) succeeded", rel)
				}
			}
			for _, name := range []string{"..", ".versions", "a/b", "", "../a", strings.Repeat("n", 200)} {
				if _, err := lib.Current(ctx, name, store.Version{}); !errors.Is(err, store.ErrNoAsset) {
					t.Errorf("Current(%q): %v, want ErrNoAsset", name, err)
				}
				if p, err := lib.Previous(ctx, name, v); !errors.Is(err, store.ErrNoAsset) {
					t.Errorf("Previous(%q): %+v, %v, want ErrNoAsset", name, p, err)
				}
			}
		})
	}
}

// TestS3URLs checks which library URLs are taken.
func TestS3URLs(t *testing.T) {
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"s3://bucket", true},
		{"s3://bucket/", true},
		{"s3://bucket/a/b", true},
		{"s3://my-bucket.example/vod_lib/2026", true},
		{"s3://b", false},
		{"s3://bucket/../x", false},
		{"s3://bucket/a/../b", false},
		{"s3://bucket/.versions", false},
		{"s3://bucket/a%2Fb", false},
		{"s3://user@bucket/a", false},
		{"s3://bucket/a?x=1", false},
		{"s3://bucket:9000/a", false},
		{"s3:/bucket", false},
		{"s3://bucket//a", true}, // the same prefix as s3://bucket/a
		{"s3://000/0..", true},   // "0.." is a name, not a step up
	} {
		_, err := store.OpenS3(context.Background(), c.url, store.S3Options{})
		if (err == nil) != c.ok {
			t.Errorf("OpenS3(%q): %v, want ok=%v", c.url, err, c.ok)
		}
	}
}

// FuzzS3URL: no library URL makes a prefix that could leave its bucket.
func FuzzS3URL(f *testing.F) {
	for _, s := range []string{"s3://bucket/a/b", "s3://b/../x", "s3://bucket/a%2F..", "s3://x y/z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, u string) {
		lib, err := store.OpenS3(context.Background(), u, store.S3Options{})
		if err != nil {
			return
		}
		// Names like "0.." are names; a segment "." or ".." or an empty
		// one would not be.
		for seg := range strings.SplitSeq(strings.TrimPrefix(lib.String(), "s3://"), "/") {
			if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "\\%?#") {
				t.Errorf("accepted %q as %q", u, lib.String())
			}
		}
	})
}

// TestInterruptedPublishLeavesThePreviousVersion: a publish whose context
// ends during the upload leaves the pointer where it was and no objects
// of the partial version.
func TestInterruptedPublishLeavesThePreviousVersion(t *testing.T) {
	srv := storetest.Start(t)
	bucket := srv.Bucket(t, "interrupt")
	lib, err := store.Open(context.Background(), "s3://"+bucket+"/lib", store.S3Options{Endpoint: srv.Endpoint, Parallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := lib.Publish(ctx, stage(t, lib, "a", map[string]string{"asset.json": "old"}), "a", "b1", nil); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"asset.json": "new"}
	for i := range 40 {
		files["r/"+string(rune('a'+i%26))+strings.Repeat("x", i/26)+".m4s"] = strings.Repeat("s", 100<<10)
	}
	pctx, stop := context.WithCancel(ctx)
	err = lib.Publish(pctx, stage(t, lib, "a", files), "a", "b2", func(p store.Progress) {
		if p.Done > 0 {
			stop() // Ctrl-C after the first file
		}
	})
	stop()
	if err == nil {
		t.Fatal("an interrupted publish succeeded")
	}
	v, err := lib.Current(ctx, "a", store.Version{})
	if err != nil || v.ID != "a.b1" {
		t.Fatalf("after the interrupted publish the live version is %q (%v), want a.b1", v.ID, err)
	}
	if got, err := lib.ReadFile(ctx, v, "asset.json", 10); err != nil || !bytes.Equal(got, []byte("old")) {
		t.Errorf("old version: %q, %v", got, err)
	}
	if keys := srv.Keys(t, bucket, "lib/.versions/a.b2/"); len(keys) != 0 {
		t.Errorf("the partial version left %d objects: %v", len(keys), keys[:min(3, len(keys))])
	}
}

// TestDirectReads: whole objects read on the store's own connections
// (for splice) are the objects' bytes, by Read and by WriteTo; a missing
// one is fs.ErrNotExist; with a store that keeps connections open they
// are reused, and one the server closed meanwhile is replaced without an
// error. Against versitygw as the tests run it (a connection per answer)
// and with --keep-alive.
func TestDirectReads(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(map[bool]string{false: "close", true: "keep-alive"}[keep], func(t *testing.T) {
			testDirectReads(t, keep)
		})
	}
}

func testDirectReads(t *testing.T, keepAlive bool) {
	srv := storetest.StartWith(t, storetest.Options{KeepAlive: keepAlive})
	bucket := srv.Bucket(t, "direct")
	lib, err := store.Open(context.Background(), "s3://"+bucket+"/lib", store.S3Options{Endpoint: srv.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	d, ok := lib.(store.Direct)
	if !ok || !d.DirectReads() {
		t.Fatal("an http:// endpoint gives no direct reads")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	big := strings.Repeat("abcdefghij", 300_000) // 3 MB: more than one read
	if err := lib.Publish(ctx, stage(t, lib, "a", map[string]string{"asset.json": "{}", "r/1.m4s": big}), "a", "b1", nil); err != nil {
		t.Fatal(err)
	}
	v, err := lib.Current(ctx, "a", store.Version{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		body, err := d.OpenDirect(ctx, v, "r/1.m4s", 5*time.Second)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		var got bytes.Buffer
		if i%2 == 0 {
			_, err = io.Copy(&got, body) // WriteTo
		} else {
			_, err = io.Copy(&got, io.LimitReader(body, 1<<40)) // Read
		}
		body.Close()
		if err != nil || got.String() != big || body.Size != int64(len(big)) {
			t.Fatalf("read %d: %d bytes of %d, %v", i, got.Len(), len(big), err)
		}
		// One read at a time: with keep-alive its connection goes back to
		// the pool for the next; without, none is kept.
		if idle, want := store.IdleDirect(lib), map[bool]int{false: 0, true: 1}[keepAlive]; idle != want {
			t.Errorf("read %d: %d idle store connections, want %d", i, idle, want)
		}
		if i == 3 {
			// The server goes away and comes back: the pooled connections are dead.
			srv.Stop()
			srv.Restart(t)
		}
	}
	if _, err := d.OpenDirect(ctx, v, "r/2.m4s", 5*time.Second); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing object: %v", err)
	}
	noDirect, _ := store.Open(context.Background(), "s3://"+bucket+"/lib", store.S3Options{Endpoint: srv.Endpoint, NoDirect: true})
	if noDirect.(store.Direct).DirectReads() {
		t.Error("NoDirect still reads directly")
	}
}

// TestConcurrentPublishesOfOneName: two publishes of one name overlap (two
// packagers, or an ingest retried on another origin): B runs from start to
// end while A is paused, first after A's version is in the store but not
// live, then after A's version went live but before A prunes. Neither
// publish may delete a version the other made live or is about to, so the
// live version is complete whichever finishes last.
func TestConcurrentPublishesOfOneName(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	files := func(build string) map[string]string {
		return map[string]string{"asset.json": build, "720p/init.mp4": "init" + build, "720p/1.m4s": strings.Repeat(build, 1000)}
	}
	for kind, lib := range stores(t) {
		for _, point := range []string{"installed", "live"} {
			t.Run(kind+"/"+point, func(t *testing.T) {
				name := "race-" + point
				if err := lib.Publish(ctx, stage(t, lib, name, files("b0")), name, "b0", nil); err != nil {
					t.Fatal(err)
				}
				paused, resume := make(chan struct{}), make(chan struct{})
				store.PausePublish(t, "b1", func(at string) {
					if at == point {
						close(paused)
						<-resume
					}
				})
				errA, errB := make(chan error, 1), make(chan error, 1)
				go func() { errA <- lib.Publish(ctx, stage(t, lib, name, files("b1")), name, "b1", nil) }()
				<-paused
				go func() { errB <- lib.Publish(ctx, stage(t, lib, name, files("b2")), name, "b2", nil) }()
				// B runs to its end unless the store makes it wait for A
				// (either is right); A then goes on.
				select {
				case err := <-errB:
					errB <- err
				case <-time.After(3 * time.Second):
				}
				close(resume)
				for _, err := range []error{<-errA, <-errB} {
					if err != nil {
						t.Errorf("publish: %v", err)
					}
				}
				live, err := lib.Current(ctx, name, store.Version{})
				if err != nil {
					t.Fatal(err)
				}
				build := strings.TrimPrefix(live.ID, name+".")
				for rel, want := range files(build) {
					if got, err := lib.ReadFile(ctx, live, rel, 1<<20); err != nil || string(got) != want {
						t.Errorf("live version %s: %s: %d bytes, %v", live.ID, rel, len(got), err)
					}
				}
			})
		}
	}
}

// TestS3PublishRefusesAVersionPrunedUnderIt: when part of a publish's
// upload is deleted before it goes live (a concurrent publish pruned it
// after the marker went stale), the publish fails and the previous
// version stays live and whole, rather than a version with holes going
// live.
func TestS3PublishRefusesAVersionPrunedUnderIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, bucket, lib := s3Lib(t, "lib-pruned")
	files := map[string]string{"asset.json": "{}", "720p/init.mp4": "init", "720p/1.m4s": "segment"}
	if err := lib.Publish(ctx, stage(t, lib, "movie", files), "movie", "b0", nil); err != nil {
		t.Fatal(err)
	}
	client := srv.Client(t)
	store.PausePublish(t, "b1", func(point string) {
		if point == "uploaded" {
			if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: aws.String("lib/.versions/movie.b1/720p/1.m4s")}); err != nil {
				t.Error(err)
			}
		}
	})
	err := lib.Publish(ctx, stage(t, lib, "movie", files), "movie", "b1", nil)
	if err == nil || !strings.Contains(err.Error(), "lost 1 of its 3 files") {
		t.Errorf("publish of a version pruned under it: %v", err)
	}
	live, err := lib.Current(ctx, "movie", store.Version{})
	if err != nil || live.ID != "movie.b0" {
		t.Fatalf("live version %+v, %v; want movie.b0", live, err)
	}
	for rel, want := range files {
		if got, err := lib.ReadFile(ctx, live, rel, 100); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v", rel, got, err)
		}
	}
	if keys := srv.Keys(t, bucket, "lib/.versions/movie.b1/"); len(keys) != 0 {
		t.Errorf("the refused version left %v", keys)
	}
}

// TestS3PointerWrittenButAnswerLost: the store takes the pointer write but
// its answer is lost (a 500 after the commit, a timeout): the new version
// is live, so the publish must count as done, not delete the version the
// pointer now names (which left the asset pointing at nothing).
func TestS3PointerWrittenButAnswerLost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := storetest.Start(t)
	bucket := srv.Bucket(t, "lib-lost")
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var lose atomic.Bool
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && lose.Load() && r.URL.Path == "/"+bucket+"/lib/movie" {
			proxy.ServeHTTP(httptest.NewRecorder(), r) // committed; the answer goes nowhere
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected</Message></Error>`)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	lib, err := store.Open(ctx, "s3://"+bucket+"/lib", store.S3Options{Endpoint: front.URL, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"asset.json": "{}", "720p/init.mp4": "init", "720p/1.m4s": "segment"}
	if err := lib.Publish(ctx, stage(t, lib, "movie", files), "movie", "b0", nil); err != nil {
		t.Fatal(err)
	}
	lose.Store(true)
	if err := lib.Publish(ctx, stage(t, lib, "movie", files), "movie", "b1", nil); err != nil {
		t.Errorf("publish whose pointer write landed: %v", err)
	}
	lose.Store(false)
	live, err := lib.Current(ctx, "movie", store.Version{})
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range files {
		if got, err := lib.ReadFile(ctx, live, rel, 100); err != nil || string(got) != want {
			t.Errorf("live version %s: %s: %q, %v", live.ID, rel, got, err)
		}
	}
}

// TestS3PointerPreviousStaysWithinTheAsset: the version a pointer object
// names as the one it replaced is followed only when it is a version of
// the same asset, as the live version itself.
func TestS3PointerPreviousStaysWithinTheAsset(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, bucket, lib := s3Lib(t, "lib-test")
	client := srv.Client(t)
	for _, c := range []struct{ previous, want string }{
		{"a.b1", "a.b1"},
		{"other.b1", ""},
		{"a.b1/../../other.b1", ""},
		{"../a.b1", ""},
		{"a", ""},
		{"a.b2", ""}, // the live version itself
	} {
		body := fmt.Sprintf(`{"format": 1, "version": "a.b2", "previous": %q}`, c.previous)
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("lib/a"), Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
		v, err := lib.Current(ctx, "a", store.Version{})
		if err != nil {
			t.Fatalf("pointer %s: %v", body, err)
		}
		p, err := lib.Previous(ctx, "a", v)
		switch {
		case c.want == "" && !errors.Is(err, store.ErrNoAsset):
			t.Errorf("previous %q: %+v, %v; want ErrNoAsset", c.previous, p, err)
		case c.want != "" && (err != nil || p.ID != c.want):
			t.Errorf("previous %q: %+v, %v; want %s", c.previous, p, err, c.want)
		}
	}
}
