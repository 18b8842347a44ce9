package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/deepcast/deepcast/cmd/deepcast/internal/tlsserve"
	"github.com/deepcast/deepcast/edge"
	"github.com/deepcast/deepcast/edge/routing"
	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/store"
	"github.com/deepcast/deepcast/media/store/storetest"
	"github.com/deepcast/deepcast/origin"
	"github.com/deepcast/deepcast/player"
	"github.com/deepcast/deepcast/web"
)

func demoCommand() command {
	return command{
		name:    "demo",
		serves:  true,
		summary: "the whole CDN on this machine: sample content, origin, a bring-home and two enter-deep edges, player page, an ABR run",
		setup: func(fs *flag.FlagSet, stdout io.Writer) func(context.Context, []string) error {
			dir := fs.String("dir", "demo", "working folder for the sample, the library and the disk cache")
			open := fs.Bool("open", false, "open the player page in a browser")
			dur := fs.Duration("sample-duration", 30*time.Second, "length of the sample video")
			size := fs.String("sample-size", "1280x720", "picture size of the sample video")
			playFor := fs.Duration("play", 20*time.Second, "media time of the demo's ABR session (0 skips it)")
			modules := fs.String("web-modules", "", "web/node_modules with dash.js and uPlot (default: found from the working directory)")
			s3 := fs.Bool("s3", false, "keep the library in a local S3 server (versitygw, under -dir) with two origins in front of it")
			return func(ctx context.Context, args []string) error {
				if *playFor < 0 {
					return fmt.Errorf("-play %v: want the media time of the ABR session, or 0 to skip it: %w", *playFor, errUsage)
				}
				return runDemo(ctx, demoOptions{Dir: *dir, Open: *open, SampleDuration: *dur, SampleSize: *size, Play: *playFor, Modules: *modules, S3: *s3, Out: stdout})
			}
		},
	}
}

type demoOptions struct {
	Dir            string
	Open           bool
	SampleDuration time.Duration
	SampleSize     string
	Play           time.Duration
	Modules        string
	// S3 puts the library in a local S3 server with two origins on it.
	S3 bool
	// Out is where the demo reports what it runs.
	Out io.Writer
}

// demoBucket is the demo's bucket on its own S3 server.
const demoBucket = "deepcast-demo"

// startDemoS3 runs versitygw with its buckets under dir/s3 (kept across
// runs, like the folder library; --keep-alive) and opens the demo library on it. The
// demo's own process gets the server's credentials through the AWS
// environment variables, as any deployment would.
func startDemoS3(ctx context.Context, dir string, out io.Writer) (*storetest.Server, store.Store, error) {
	ln, err := listenPreferred("127.0.0.1:7070")
	if err != nil {
		return nil, nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	// With keep-alive, as AWS S3, MinIO and Ceph RGW serve: the origins'
	// store connections are reused instead of dialled for every segment.
	gw, err := storetest.LaunchWith(filepath.Join(dir, "s3"), addr, storetest.Options{KeepAlive: true})
	if err != nil {
		return nil, nil, fmt.Errorf("demo S3 server: %w", err)
	}
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": storetest.AccessKey, "AWS_SECRET_ACCESS_KEY": storetest.SecretKey, "AWS_REGION": "us-east-1"} {
		os.Setenv(k, v)
	}
	bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := gw.EnsureBucket(bctx, demoBucket); err != nil {
		gw.Stop()
		return nil, nil, err
	}
	lib, err := store.Open(ctx, "s3://"+demoBucket+"/library", store.S3Options{Endpoint: gw.Endpoint})
	if err != nil {
		gw.Stop()
		return nil, nil, err
	}
	fmt.Fprintf(out, "S3 server (versitygw) at %s, buckets in %s; library %s\n", gw.Endpoint, gw.Dir, lib)
	return gw, lib, nil
}

// demoAsset is the name of the demo's packaged sample.
const demoAsset = "sample"

// listenPreferred listens on addr, or on a free loopback port if it is taken.
func listenPreferred(addr string) (net.Listener, error) {
	if ln, err := net.Listen("tcp", addr); err == nil {
		return ln, nil
	}
	return listen("127.0.0.1:0")
}

func runDemo(ctx context.Context, o demoOptions) error {
	tuneGC()
	log := slog.Default()
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return err
	}
	var lib store.Store = store.Folder{Root: filepath.Join(o.Dir, "library")}
	if o.S3 {
		gw, s3lib, err := startDemoS3(ctx, o.Dir, o.Out)
		if err != nil {
			return err
		}
		defer gw.Stop()
		lib = s3lib
	}
	if err := prepareDemoContent(ctx, o, lib); err != nil {
		return err
	}
	// Viewers see HTTPS (HTTP/2 and HTTP/3) with a certificate of a local
	// CA made once under the demo folder; the tiers talk to each other in
	// the clear, through the fast path.
	ca, leaf, made, err := tlsserve.LocalCA(filepath.Join(o.Dir, "tls"), []string{"127.0.0.1", "localhost"}, time.Now())
	if err != nil {
		return err
	}
	// Listeners first: every node must know every other's URL.
	addrs := []struct{ name, role, addr, tlsAddr string }{
		{"origin", "origin", "127.0.0.1:8080", "127.0.0.1:8443"},
		{"home-1", edge.BringHome, "127.0.0.1:9200", "127.0.0.1:9643"},
		{"deep-a", edge.EnterDeep, "127.0.0.1:9101", "127.0.0.1:9541"},
		{"deep-b", edge.EnterDeep, "127.0.0.1:9102", "127.0.0.1:9542"},
		{"router", "router", "127.0.0.1:8000", "127.0.0.1:8444"},
	}
	if o.S3 {
		// Last, so the indexes above stay; the bring-home edge takes both.
		addrs = append(addrs, struct{ name, role, addr, tlsAddr string }{"origin-2", "origin", "127.0.0.1:8081", "127.0.0.1:8445"})
	}
	lns := make([]nodeListeners, len(addrs))
	closeAll := func() {
		for _, l := range lns {
			if l.plain != nil || l.tls != nil {
				l.close()
			}
		}
	}
	var nodes []web.Node
	var plainURLs []string
	for i, a := range addrs {
		ln, err := listenPreferred(a.addr)
		if err != nil {
			closeAll()
			return err
		}
		topts := tlsserve.Options{Listen: a.tlsAddr, Pairs: []tlsserve.Pair{leaf}, HTTP3: true, Watch: 2 * time.Second}
		ts, err := tlsserve.New(topts, log)
		if err != nil {
			topts.Listen = "127.0.0.1:0"
			ts, err = tlsserve.New(topts, log)
		}
		if err != nil {
			ln.Close()
			closeAll()
			return err
		}
		lns[i] = nodeListeners{plain: ln, tls: ts}
		nodes = append(nodes, web.Node{Name: a.name, Role: a.role, URL: lns[i].selfURL()})
		plainURLs = append(plainURLs, "http://"+ln.Addr().String())
	}
	pages := func(self string) http.Handler {
		return web.Handler(web.Config{Self: self, Nodes: nodes, ModulesDir: o.Modules, Logger: log})
	}
	osrv, err := origin.New(origin.Config{Library: lib.String(), Store: lib, Logger: log.With("node", "origin"), Web: pages("origin")})
	if err != nil {
		return err
	}
	defer osrv.Close()
	handlers := []http.Handler{osrv}
	var origin2 http.Handler
	if o.S3 {
		o2, err := origin.New(origin.Config{Library: lib.String(), Store: lib, Logger: log.With("node", "origin-2"), Web: pages("origin-2")})
		if err != nil {
			return err
		}
		defer o2.Close()
		origin2 = o2
	}
	var edges []*edge.Node
	defer func() {
		for _, e := range edges {
			e.Close()
		}
	}()
	for _, a := range addrs[1:4] {
		cfg := edge.Config{Profile: a.role, Name: a.name, Logger: log, Web: pages(a.name), CheckEvery: time.Second}
		if a.role == edge.BringHome {
			cfg.Upstreams = []string{plainURLs[0]}
			if o.S3 {
				cfg.Upstreams = append(cfg.Upstreams, plainURLs[5])
			}
			cfg.DiskDir = filepath.Join(o.Dir, "cache-"+a.name)
			cfg.MemBytes, cfg.DiskBytes = 256<<20, 2<<30
		} else {
			cfg.Upstreams = []string{plainURLs[1]}
			cfg.MemBytes = 128 << 20
		}
		n, err := edge.New(cfg)
		if err != nil {
			return fmt.Errorf("edge %s: %w", a.name, err)
		}
		edges = append(edges, n)
		handlers = append(handlers, n)
	}
	// The router: deep-a covers loopback viewers, deep-b a 10.2/16 access
	// network (ask the DNS with ECS to see it), home-1 everyone else.
	var redges []*routing.Edge
	for i, a := range addrs[1:4] {
		u, _ := url.Parse(nodes[i+1].URL)
		e := &routing.Edge{Name: a.name, URL: u, Profile: a.role, Weight: 1,
			Addresses: []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i)})}}
		switch a.name {
		case "deep-a":
			e.Subnets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		case "deep-b":
			e.Subnets = []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}
		}
		redges = append(redges, e)
	}
	edgeTLS, err := tlsserve.ClientConfig(ca, "", "")
	if err != nil {
		return err
	}
	router, err := routing.New(routing.Config{Edges: redges, Strategy: "nearest", Check: time.Second, Self: nodes[4].URL,
		EdgeTLS: edgeTLS, Logger: log})
	if err != nil {
		return err
	}
	handlers = append(handlers, router)
	if origin2 != nil {
		handlers = append(handlers, origin2)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(lns)+1)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	dnsLn, err := listenPreferred("127.0.0.1:8053")
	if err != nil {
		return err
	}
	dnsAddr := dnsLn.Addr().String()
	dnsLn.Close() // the DNS server takes this port for UDP and TCP
	wg.Go(func() { router.Run(sctx) })
	wg.Go(func() {
		if err := router.ServeDNSOn(sctx, dnsAddr, nil); err != nil {
			errs <- fmt.Errorf("router dns: %w", err)
		}
	})
	for i, l := range lns {
		wg.Go(func() {
			if err := serveNode(sctx, handlers[i], l, noOps(), nil, log.With("node", addrs[i].name)); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("%s: %w", addrs[i].name, err)
			}
		})
	}
	// The nodes log as they start: the block goes out in one write, so
	// their lines fall before or after it, never inside the table.
	var info strings.Builder
	printDemoTable(&info, nodes)
	if made {
		fmt.Fprintf(&info, "\nmade a local CA for the demo's HTTPS: %s\n", ca)
	}
	fmt.Fprintf(&info, "\nHTTPS (HTTP/2, HTTP/3) with the demo's own CA %s; trust it to open the pages without a warning:\n", ca)
	fmt.Fprintf(&info, "  Debian: sudo cp %s /usr/local/share/ca-certificates/deepcast-demo.crt && sudo update-ca-certificates\n", ca)
	fmt.Fprintf(&info, "  browsers: import %s as an authority (Chrome: Settings > Privacy and security > Security > Manage certificates)\n", ca)
	fmt.Fprintf(&info, "  curl --cacert %s …, ffmpeg -ca_file %s …, deepcast play -ca %s …\n", ca, ca, ca)
	fmt.Fprintf(&info, "tiers talk in the clear (fast path): %v\n", plainURLs)
	fmt.Fprintf(&info, "router: %s/vod/%s/manifest.mpd or master.m3u8 (302), ?route=baseurl, ?route=steering; DNS %s for %s\n",
		nodes[4].URL, demoAsset, dnsAddr, router.ServiceName())
	if missing := web.MissingModules(o.Modules); len(missing) > 0 {
		fmt.Fprintln(&info, "\nnote: the player page needs `make deps` (npm ci in web/): dash.js and uPlot are not installed")
	}
	io.WriteString(o.Out, info.String())
	deep := nodes[2].URL
	if o.Open {
		_ = exec.Command("xdg-open", deep+"/?asset="+demoAsset).Start()
	}
	if o.Play > 0 {
		fmt.Fprintf(o.Out, "\nABR session through %s (robustmpc over a variable link, %s of media):\n", addrs[2].name, o.Play)
		var stats player.FetchStats
		res, err := play(ctx, deep+"/vod/"+demoAsset+"/manifest.mpd", playOptions{ABR: "robustmpc", QoE: "lin", Duration: o.Play,
			TraceValue: demoTrace(), ChunkLines: true, CA: ca, Stats: &stats, Out: o.Out})
		switch {
		case err != nil && ctx.Err() == nil:
			fmt.Fprintf(o.Out, "play: %v\n", err)
		case err == nil:
			printSession(o.Out, "robustmpc", res, stats.Protocol)
		}
	}
	fmt.Fprintf(o.Out, "\nserving; Ctrl-C stops every node\n")
	select {
	case <-ctx.Done():
	case err := <-errs:
		stop()
		wg.Wait()
		return err
	}
	stop()
	wg.Wait()
	fmt.Fprintln(o.Out, "all nodes stopped")
	return nil
}

// prepareDemoContent makes the sample and packages it, unless a packaged
// sample is already there (a second run reuses it).
func prepareDemoContent(ctx context.Context, o demoOptions, lib store.Store) error {
	if _, err := lib.Current(ctx, demoAsset, store.Version{}); err == nil {
		fmt.Fprintf(o.Out, "reusing the packaged sample in %s/%s\n", lib, demoAsset)
		return nil
	}
	src := filepath.Join(o.Dir, "sample.mp4")
	pp := newProgressPrinter(os.Stderr)
	if _, err := os.Stat(src); err != nil {
		var w, h int
		if _, err := fmt.Sscanf(o.SampleSize, "%dx%d", &w, &h); err != nil {
			return fmt.Errorf("-sample-size %q: want WIDTHxHEIGHT", o.SampleSize)
		}
		if err := media.MakeSample(ctx, src, media.SampleOptions{Duration: o.SampleDuration, Width: w, Height: h, Progress: pp.update}); err != nil {
			return err
		}
		fmt.Fprintln(os.Stderr)
	}
	a, err := media.Package(ctx, []string{src}, media.PackageOptions{Library: lib.String(), Store: lib, Name: demoAsset, Progress: pp.update})
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "packaged %s: %d renditions, %d segments\n", a.Name, len(a.Renditions), len(a.Renditions[0].Segments))
	return nil
}

// printDemoTable writes the table of nodes and where to play to w.
func printDemoTable(w io.Writer, nodes []web.Node) {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tURL\tPLAYER\tDASHBOARD\tMETRICS")
	for _, n := range nodes {
		if n.Role == "router" { // the router serves no pages: play through it from deep-a's
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s/?asset=%s&node=%s\t-\t%s/metrics\n", n.Name, n.Role, n.URL, nodes[2].URL, demoAsset, n.URL, n.URL)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s/?asset=%s\t%s/dashboard\t%s/metrics\n", n.Name, n.Role, n.URL, n.URL, demoAsset, n.URL, n.URL)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nmanifest through an enter-deep edge: %s/vod/%s/manifest.mpd (DASH), %s/vod/%s/master.m3u8 (HLS, the same segments)\n",
		nodes[2].URL, demoAsset, nodes[2].URL, demoAsset)
	fmt.Fprintf(w, "the player page plays DASH with dash.js or Shaka and HLS with hls.js or Shaka: pick one under Player, or add &engine=hlsjs\n")
}

// demoTrace is a built-in variable link: 4 Mbit/s, a dip to 0.8, back up.
func demoTrace() *player.Trace {
	t := &player.Trace{Name: "demo-variable"}
	for i := 0; i <= 60; i++ {
		rate := 4.0
		if i%30 >= 12 && i%30 < 20 {
			rate = 0.8
		}
		t.Time = append(t.Time, float64(i))
		t.Mbps = append(t.Mbps, rate)
	}
	return t
}
