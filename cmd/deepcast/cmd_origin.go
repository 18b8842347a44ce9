package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/deepcast/deepcast/origin"
	"github.com/deepcast/deepcast/web"
)

func originCommand() command {
	return command{
		name:    "origin",
		serves:  true,
		summary: "serve a library over HTTP: manifests, segments, catalogue, ingest, health, metrics",
		setup: func(fs *flag.FlagSet, stdout io.Writer) func(context.Context, []string) error {
			lib := fs.String("library", "", "library to serve, required: a folder or s3://BUCKET/PREFIX")
			sf := addStoreFlags(fs)
			storeTimeout := fs.Duration("store-timeout", 10*time.Second, "object store library: a read that gets no byte for this long is answered 504")
			addr := fs.String("listen", "127.0.0.1:8080", "address to listen on")
			token := fs.String("admin-token", "", "bearer token for write endpoints (POST /api/assets); none disables them")
			maxUpload := byteSize(2 << 30)
			fs.Var(&maxUpload, "max-upload", "largest ingest upload")
			maxJobs := fs.Int("max-jobs", origin.DefaultMaxJobs, "ingest jobs held at once (being uploaded, queued or running); past it uploads get 503")
			uploadDir := fs.String("upload-dir", "", "where uploads wait for their job (default: the system's temporary folder); needs room for -max-jobs uploads of -max-upload")
			catalogMem := byteSize(origin.DefaultCatalogBytes)
			fs.Var(&catalogMem, "catalog-memory", "memory for loaded assets (metadata, manifests, init segments, playlists); the least recently requested are dropped past it and loaded again when asked for")
			uploadStall := fs.Duration("upload-stall", origin.DefaultUploadStall, "an upload that brings less than 64 KiB in this long is answered 408 and gives its ingest place back")
			check := fs.Duration("check", time.Second, "how often an asset is re-checked for replacement on disk")
			accessLog := fs.Bool("access-log", false, "log every request as a JSON line on stderr (time, node, remote, method, path, status, bytes, duration_ms, cache, tier, upstream)")
			ops := addOpsFlags(fs)
			tf := addTLSFlags(fs)
			// Edges and packagers are the origin's clients: few
			// addresses with many connections each.
			cf := addConnFlags(fs, 0, "")
			clientCA := fs.String("client-ca", "", "PEM CA whose client certificates /vod/ and /api/ require (mutual TLS with the edges; cleartext requests to them are refused)")
			modules := fs.String("web-modules", "", "web/node_modules with dash.js and uPlot (default: found from the working directory)")
			return func(ctx context.Context, args []string) error {
				if *lib == "" {
					return fmt.Errorf("-library DIR or -library s3://BUCKET/PREFIX is required: %w", errUsage)
				}
				if err := cf.check(); err != nil {
					return err
				}
				if err := checkDuration("-check", *check, minCheckEvery, time.Hour); err != nil {
					return err
				}
				if *maxJobs <= 0 {
					return fmt.Errorf("-max-jobs must be positive: %w", errUsage)
				}
				if err := checkDuration("-upload-stall", *uploadStall, time.Second, time.Hour); err != nil {
					return err
				}
				if err := checkDuration("-store-timeout", *storeTimeout, 100*time.Millisecond, 10*time.Minute); err != nil {
					return err
				}
				if err := checkBytes(fs, "max-upload", maxUpload, 64<<10, " (to take no uploads, leave -admin-token out)"); err != nil {
					return err
				}
				if err := checkBytes(fs, "catalog-memory", catalogMem, 1<<20, ""); err != nil {
					return err
				}
				libStore, err := sf.open(ctx, *lib)
				if err != nil {
					return err
				}
				if err := checkStore(ctx, libStore); err != nil {
					return err
				}
				topts, err := tf.options()
				if err != nil {
					return err
				}
				if *clientCA != "" && !topts.Enabled() {
					return fmt.Errorf("-client-ca needs -tls-listen: %w", errUsage)
				}
				topts.ClientCA = *clientCA
				tuneGC()
				log := slog.Default().With("node", "origin")
				l, err := openNodeListeners(*addr, topts, log)
				if err != nil {
					return err
				}
				cf.limitConns(&l, 0, log)
				pages := web.Handler(web.Config{Self: "origin", ModulesDir: *modules, Logger: log,
					Nodes: []web.Node{{Name: "origin", Role: "origin", URL: l.selfURL()}}})
				ops.warnShortTokens(log, *token, l.addrs()...)
				srv, err := origin.New(origin.Config{Library: *lib, Store: libStore, StoreTimeout: *storeTimeout, AdminToken: *token, MaxUpload: int64(maxUpload),
					MaxJobs: *maxJobs, UploadDir: *uploadDir, UploadStall: *uploadStall, CatalogBytes: int64(catalogMem),
					CheckEvery: *check, AccessLog: accessLogger(*accessLog, "origin"), Logger: log, Web: pages,
					MetricsToken: *ops.token, OpsHidden: ops.hidden(log, l.addrs()...)})
				if err != nil {
					l.close()
					return err
				}
				defer srv.Close()
				var h http.Handler = srv
				if *clientCA != "" {
					h = requireClientCert(srv)
				}
				log.Info("origin listening", "url", l.selfURL(), "library", *lib)
				return serveNode(ctx, h, l, ops, srv.OpsHandler(), log)
			}
		},
	}
}
