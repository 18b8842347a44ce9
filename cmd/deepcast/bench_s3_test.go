package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/store"
	"github.com/deepcast/deepcast/media/store/storetest"
	"github.com/deepcast/deepcast/origin"
)

// TestBenchS3OriginVsDirect measures what the origin costs in front of an
// object store: cold segment fetches (the origin keeps no segment; every
// request is a GET to the store) against the same GETs sent straight to
// versitygw with presigned URLs, ~1 MiB segments, wrk with 64
// connections, 3 interleaved rounds (benchServing), with the store on
// loopback and then, where namespaces can be made (root), behind a 1 Gbit/s
// link. Before that, on the idle store, the publish rate (benchPublish).
// Run by `make bench`.
func TestBenchS3OriginVsDirect(t *testing.T) {
	if os.Getenv("DEEPCAST_BENCH") == "" {
		t.Skip("set DEEPCAST_BENCH=1 (make bench) to run")
	}
	tuneGC()
	srv := storetest.Start(t)
	folder, a := benchLibrary(t)
	dir, err := (store.Folder{Root: folder}).Resolve(a.Name)
	if err != nil {
		t.Fatal(err)
	}
	bucket, lib := benchBucket(t, srv, dir, a)
	benchPublish(t, context.Background(), srv, bucket, lib, dir, a.Name)
	fmt.Printf("origin on versitygw vs direct GETs to versitygw, both on loopback (versitygw as the issue runs it: a new connection for every GET): ")
	benchServing(t, srv, bucket, lib, a)

	// versitygw closes each connection after one answer unless run with
	// --keep-alive; AWS S3, MinIO and Ceph RGW keep them open, and then
	// the origin's pooled store connections are reused.
	fmt.Printf("the same, versitygw --keep-alive (connections reused, as S3, MinIO and Ceph RGW do): ")
	benchServingOn(t, fmt.Sprintf("127.0.0.1:%d", freePort(t)), storetest.Options{KeepAlive: true}, dir, a)

	// The same with the store across a network, as an object store is
	// from its origins: versitygw in a network namespace of its own behind
	// a 1 Gbit/s link (tbf both ways), the origins and wrk outside it.
	if why := labNamespacesSupported(); why != "" {
		fmt.Printf("the store behind a 1 Gbit/s link: skipped (%s)\n", why)
		return
	}
	nw := newLabNet(t, []string{"store"}, map[string]string{"store": "store"})
	h := nw.host("store")
	fmt.Printf("the same, the store behind a 1 Gbit/s link (its own network namespace): ")
	benchServingOn(t, h.IP+":9000", storetest.Options{Netns: h.NS}, dir, a)
}

// benchServingOn runs benchServing on a versitygw of its own, launched on
// addr with opts.
func benchServingOn(t *testing.T, addr string, opts storetest.Options, dir string, a *media.Asset) {
	srv, err := storetest.LaunchWith(t.TempDir(), addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	bucket, lib := benchBucket(t, srv, dir, a)
	benchServing(t, srv, bucket, lib, a)
}

// benchBucket makes the bench bucket on srv and opens a library in it
// with the asset version in dir copied in.
func benchBucket(t *testing.T, srv *storetest.Server, dir string, a *media.Asset) (string, store.Store) {
	bucket := srv.Bucket(t, "bench")
	lib, err := store.Open(context.Background(), "s3://"+bucket+"/lib", store.S3Options{Endpoint: srv.Endpoint, Parallel: 16})
	if err != nil {
		t.Fatal(err)
	}
	storetest.CopyIn(t, lib, dir, a.Name, a.Build)
	return bucket, lib
}

// benchServing compares cold segment fetches through two origins on lib
// (whole segments spliced from store connections of its own, the default
// on a plain-HTTP endpoint, and through the SDK's GetObject with a
// user-space copy) with the same GETs sent straight to the store with
// presigned URLs, and through nginx as a reverse proxy (the peer): wrk, 64
// connections, 3 interleaved rounds. Beside the rates it prints the CPU
// time per request of the process in the middle and of versitygw: on a
// machine whose two cores also run the store and wrk, that, more than the
// rate, is what the origin would cost where its clients are elsewhere.
func benchServing(t *testing.T, srv *storetest.Server, bucket string, lib store.Store, a *media.Asset) {
	live, err := lib.Current(context.Background(), a.Name, store.Version{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(benchLogOut(), nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startOrigin := func(lib store.Store) string {
		osrv, err := origin.New(origin.Config{Library: lib.String(), Store: lib, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(osrv.Close)
		ln, err := listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go serve(ctx, osrv, ln, log)
		return "http://" + ln.Addr().String()
	}
	ours := startOrigin(lib)
	viaSDK, err := store.Open(context.Background(), lib.String(), store.S3Options{Endpoint: srv.Endpoint, NoDirect: true})
	if err != nil {
		t.Fatal(err)
	}
	oursSDK := startOrigin(viaSDK)

	segs := segmentPaths(a, 900<<10)
	presign := s3.NewPresignClient(srv.Client(t))
	var direct []string
	for _, p := range segs {
		rel := strings.TrimPrefix(p, "/vod/"+a.Name+"/")
		req, err := presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket),
			Key: aws.String("lib/.versions/" + live.ID + "/" + rel)}, s3.WithPresignExpires(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(req.URL)
		direct = append(direct, u.RequestURI())
	}
	// The peer: nginx as a plain reverse proxy in front of the store
	// (pooled upstream connections, streaming, no cache), given the
	// same presigned paths; what any proxy in this place costs.
	proxy, nginxPid := "", 0
	if _, err := exec.LookPath("nginx"); err == nil {
		port := freePort(t)
		host := strings.TrimPrefix(srv.Endpoint, "http://")
		nginxPid = startNginx(t, port, fmt.Sprintf("upstream store { server %s; keepalive 128; }", host),
			fmt.Sprintf(`location / { proxy_pass http://store; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host %s; proxy_buffering off; proxy_buffer_size 64k; proxy_buffers 8 64k; proxy_busy_buffers_size 128k; }`, host))
		proxy = fmt.Sprintf("http://127.0.0.1:%d", port)
	}
	// Each contender: where wrk sends, which paths, and which process is
	// the one in the middle whose CPU time per request is counted (the
	// origins run in this process); versitygw's is counted for all.
	const round = 5 * time.Second
	type contender struct {
		name     string
		who      string // what runs in the middle ("" for direct GETs)
		base     string
		paths    []string
		pid      int
		children bool
		results  []wrkResult
		median   wrkResult
		middle   time.Duration // CPU time of the process in the middle
		store    time.Duration // versitygw's CPU time
		requests float64
	}
	splice := &contender{name: "origin, splice", who: "origin", base: ours, paths: segs, pid: os.Getpid()}
	viaCopy := &contender{name: "origin, SDK copy", who: "origin", base: oursSDK, paths: segs, pid: os.Getpid()}
	straight := &contender{name: "direct", base: srv.Endpoint, paths: direct}
	nginx := &contender{name: "nginx proxy_pass", who: "nginx", base: proxy, paths: direct, pid: nginxPid, children: true}
	cs := []*contender{splice, viaCopy, straight}
	if proxy != "" {
		cs = append(cs, nginx)
	}
	fmt.Printf("%d segments of ~1 MiB; wrk 2 threads, 64 connections, %s runs, 3 interleaved rounds\n", len(segs), round)
	for _, c := range cs {
		runWrk(t, c.base, c.paths, 64, 2*time.Second)
	}
	for range 3 {
		for _, c := range cs {
			m0, s0 := procCPU(c.children, c.pid), procCPU(false, srv.Pid())
			r := runWrk(t, c.base, c.paths, 64, round)
			c.middle += procCPU(c.children, c.pid) - m0
			c.store += procCPU(false, srv.Pid()) - s0
			c.requests += r.RPS * round.Seconds()
			c.results = append(c.results, r)
		}
	}
	perRequest := func(d time.Duration, n float64) string {
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)/max(n, 1))
	}
	for _, c := range cs {
		c.median = medianResult(c.results)
		cpu := "versitygw " + perRequest(c.store, c.requests)
		if c.who != "" {
			cpu = c.who + " " + perRequest(c.middle, c.requests) + ", " + cpu
		}
		fmt.Printf("  %-18s %s  CPU per request: %s\n", c.name, c.median, cpu)
	}
	mo, mk, md := splice.median, viaCopy.median, straight.median
	fmt.Printf("  ratio origin/direct: req/s %.2fx (target >= 0.9), p99 %.2fx (target <= 1.2); through the SDK: req/s %.2fx, p99 %.2fx\n",
		mo.RPS/md.RPS, float64(mo.P99)/float64(md.P99), mk.RPS/md.RPS, float64(mk.P99)/float64(md.P99))
	if proxy != "" {
		mn := nginx.median
		fmt.Printf("  peer: nginx/direct req/s %.2fx, p99 %.2fx; origin/nginx req/s %.2fx, p99 %.2fx\n",
			mn.RPS/md.RPS, float64(mn.P99)/float64(md.P99), mo.RPS/mn.RPS, float64(mo.P99)/float64(mn.P99))
	} else {
		fmt.Println("  peer: nginx not installed (make bench installs it), skipped")
	}
}

// benchPublish compares the publish rate of the packager's upload with
// the SDK's own recursive upload (transfermanager.UploadDirectory, what
// `aws s3 cp --recursive` does) of the same files, same parallelism,
// interleaved, on a store nothing else is loading.
func benchPublish(t *testing.T, ctx context.Context, srv *storetest.Server, bucket string, lib store.Store, dir, name string) {
	var size int64
	filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if st, err := e.Info(); err == nil {
				size += st.Size()
			}
		}
		return err
	})
	tm := transfermanager.New(srv.Client(t), func(o *transfermanager.Options) {
		o.Concurrency = 16
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	})
	// Ours is timed to the pointer write (the new version is live: what
	// the SDK's upload ends with too), and, apart, with the pruning of
	// old versions after it, which a plain upload does not do.
	var ourTimes, ourTotals, sdkTimes []time.Duration
	for i := range 9 {
		staging, err := lib.Staging(name)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "-rL", dir+"/.", staging).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		start := time.Now()
		var live time.Duration
		if err := lib.Publish(ctx, staging, name, fmt.Sprintf("bench%d", i), func(p store.Progress) {
			if p.Live {
				live = time.Since(start)
			}
		}); err != nil {
			t.Fatal(err)
		}
		if live == 0 {
			t.Fatal("publish never reported the new version live")
		}
		ourTimes = append(ourTimes, live)
		ourTotals = append(ourTotals, time.Since(start))
		start = time.Now()
		if _, err := tm.UploadDirectory(ctx, &transfermanager.UploadDirectoryInput{Bucket: aws.String(bucket), Source: aws.String(dir),
			Recursive: aws.Bool(true), KeyPrefix: aws.String(fmt.Sprintf("sdk%d", i))}); err != nil {
			t.Fatal(err)
		}
		sdkTimes = append(sdkTimes, time.Since(start))
	}
	slices.Sort(ourTimes)
	slices.Sort(ourTotals)
	slices.Sort(sdkTimes)
	mb := float64(size) / 1e6
	fmt.Printf("publish %.1f MB (%d files): package -o s3:// %.0f MB/s to live (median of 9, %s; %s with the pruning after), SDK UploadDirectory %.0f MB/s (%s); ratio %.2fx (target >= 1.0), %.2fx with the pruning\n",
		mb, countFiles(dir), mb/ourTimes[4].Seconds(), ourTimes[4].Round(time.Millisecond), ourTotals[4].Round(time.Millisecond),
		mb/sdkTimes[4].Seconds(), sdkTimes[4].Round(time.Millisecond), sdkTimes[4].Seconds()/ourTimes[4].Seconds(), sdkTimes[4].Seconds()/ourTotals[4].Seconds())
}

func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			n++
		}
		return err
	})
	return n
}

func benchLogOut() io.Writer {
	if os.Getenv("DEEPCAST_BENCH_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}
