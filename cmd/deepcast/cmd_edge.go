package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/deepcast/deepcast/cmd/deepcast/internal/tlsserve"
	"github.com/deepcast/deepcast/edge"
	"github.com/deepcast/deepcast/web"
)

func edgeCommand() command {
	return command{
		name:    "edge",
		serves:  true,
		summary: "run a CDN cache node (enter-deep or bring-home) in front of an origin or a parent edge",
		setup: func(fs *flag.FlagSet, stdout io.Writer) func(context.Context, []string) error {
			profile := fs.String("profile", edge.EnterDeep, "enter-deep (RAM only, prefetch) or bring-home (RAM + disk, shield)")
			upstream := fs.String("upstream", "", "upstream base URLs, comma-separated, tried in order (active-standby), required")
			addr := fs.String("listen", "127.0.0.1:9100", "address to listen on")
			name := fs.String("name", "", "node name in Cache-Status and Via (default: deepcast-deep or deepcast-home)")
			var mem, diskSize byteSize
			fs.Var(&mem, "mem", "memory tier size (default: 256MiB enter-deep, 1GiB bring-home)")
			disk := fs.String("disk", "", "disk tier folder (bring-home; default: none)")
			fs.Var(&diskSize, "disk-size", "disk tier size (default 20GiB)")
			siblings := fs.String("siblings", "", "base URLs of sibling bring-home nodes sharing the key space (comma-separated)")
			self := fs.String("self", "", "this node's own base URL as siblings know it (default: http://LISTEN)")
			token := fs.String("admin-token", "", "bearer token for POST /api/purge; none disables purge")
			prefetch := fs.String("prefetch", "", "prefetch the next segment: true or false (default: on for enter-deep)")
			queryAllow := fs.String("query-allow", "", "query parameters kept in the cache key (comma-separated; default: none)")
			check := fs.Duration("check", 2*time.Second, "upstream health check interval")
			timeout := fs.Duration("fetch-timeout", 10*time.Second, "bound on the wait for an upstream's answer (a body is then read while it keeps coming)")
			streamAfter := fs.Duration("stream-after", edge.DefaultStreamAfter, "how long a miss's body may take to come whole before its clients are sent it as it comes instead of after it all came (0: at once; negative, e.g. -1s: always wait for all of it)")
			rangeAhead := fs.Duration("range-ahead", edge.DefaultRangeAhead, "how long a range of an object still coming from upstream may wait for the fill to bring it, at its rate so far; one further ahead is fetched apart from an upstream as a range (0: whatever has not come; negative: always wait)")
			headFills := fs.Bool("head-fills", false, "a HEAD of an object not held fetches the whole object and keeps it, as nginx and Varnish do (default: it is asked upstream as a HEAD and only its headers are kept)")
			missRate := fs.Float64("client-miss-rate", 0, "cache misses a second one client (IP address, IPv6 /64) may cause, in bursts of 10 s worth; past it 429 with Retry-After (0: no bound; for nodes viewers reach directly)")
			maxBitrate := fs.Int64("cmsd-max-bitrate", 0, "suggest players a bitrate of at most this many kbit/s (video and sound together) in every answer's CMSD-Dynamic mb (CTA-5006; dash.js and Shaka keep to it; 0: no cap)")
			var egress bitRate
			fs.Var(&egress, "egress-limit", "this node's outgoing capacity in bit/s (e.g. 800M, 10G): in CMSD-Dynamic it suggests the limit, and when its egress nears it, duress (du) and a share for each viewer's CMCD session (mb); 0: none")
			shareBy := fs.String("cmsd-share", "equal", "how a congested node (-egress-limit) splits its egress among sessions: equal (every session the same) or ladder (each session its own rung, from the manifest of what it plays: all fit, the lowest raised first, once every session reports 10 s of buffer)")
			accessLog := fs.Bool("access-log", false, "log every request as a JSON line on stderr (time, node, remote, method, path, status, bytes, duration_ms, cache, tier, upstream)")
			ops := addOpsFlags(fs)
			tf := addTLSFlags(fs)
			cf := addConnFlags(fs, -1, " (default: 256 enter-deep, 1024 bring-home)")
			upCA := fs.String("upstream-ca", "", "PEM CA to verify https:// upstreams and siblings with (besides the system's)")
			upCert := fs.String("upstream-cert", "", "client certificate (PEM) presented to upstreams (mutual TLS)")
			upKey := fs.String("upstream-key", "", "key of -upstream-cert")
			af := addAuthFlags(fs)
			modules := fs.String("web-modules", "", "web/node_modules with dash.js and uPlot (default: found from the working directory)")
			return func(ctx context.Context, args []string) error {
				var rules []edge.CacheRule
				var pool []edge.WeightedUpstream
				if activeConfig.file != nil {
					var err error
					if rules, pool, err = edgeExtras(activeConfig.file); err != nil {
						return err
					}
				}
				if err := cf.check(); err != nil {
					return err
				}
				if err := checkDuration("-check", *check, minCheckEvery, time.Hour); err != nil {
					return err
				}
				if err := checkDuration("-fetch-timeout", *timeout, 100*time.Millisecond, 10*time.Minute); err != nil {
					return err
				}
				if *streamAfter >= 0 {
					if err := checkDuration("-stream-after", *streamAfter, 0, 10*time.Minute); err != nil {
						return err
					}
				}
				if *streamAfter == 0 {
					*streamAfter = time.Nanosecond // at once (edge.Config's zero is the default)
				}
				if *rangeAhead >= 0 {
					if err := checkDuration("-range-ahead", *rangeAhead, 0, 10*time.Minute); err != nil {
						return err
					}
				}
				if *rangeAhead == 0 {
					*rangeAhead = time.Nanosecond // whatever has not come
				}
				if err := checkBytes(fs, "mem", mem, 1<<20, " (leave -mem out for the profile's default)"); err != nil {
					return err
				}
				if err := checkBytes(fs, "disk-size", diskSize, 1<<20, ""); err != nil {
					return err
				}
				if *upstream == "" && pool == nil {
					return fmt.Errorf("-upstream URL (or upstream-pool in -config) is required: %w", errUsage)
				}
				if *upstream != "" && pool != nil {
					return fmt.Errorf("give -upstream or upstream-pool in -config, not both: %w", errUsage)
				}
				cfg := edge.Config{Profile: *profile, Name: *name, Upstreams: splitList(*upstream), MemBytes: int64(mem),
					DiskDir: *disk, DiskBytes: int64(diskSize), Siblings: splitList(*siblings), Self: *self,
					AdminToken: *token, QueryAllow: splitList(*queryAllow), CheckEvery: *check, FetchTimeout: *timeout,
					StreamAfter: *streamAfter, RangeAhead: *rangeAhead, HeadFills: *headFills, ClientMissRate: *missRate,
					Advice: edge.AdviceConfig{MaxBitrateKbps: *maxBitrate, EgressLimit: float64(egress)},
				}
				if err := cfg.Advice.Check(); err != nil {
					return fmt.Errorf("-cmsd-max-bitrate, -egress-limit: %w: %w", err, errUsage)
				}
				byLadder, shareErr := parseShareMode(*shareBy)
				if shareErr != nil {
					return fmt.Errorf("-cmsd-share: %w: %w", shareErr, errUsage)
				}
				cfg.Advice.ShareByLadder = byLadder
				if *missRate < 0 || math.IsNaN(*missRate) || math.IsInf(*missRate, 0) {
					return fmt.Errorf("-client-miss-rate %v: want a rate of 0 (no bound) or more: %w", *missRate, errUsage)
				}
				cfg.CacheRules = rules
				var err error
				if cfg.Auth, err = af.checker(); err != nil {
					return err
				}
				for _, u := range pool {
					cfg.Upstreams = append(cfg.Upstreams, u.URL)
					cfg.UpstreamWeights = append(cfg.UpstreamWeights, u.Weight)
				}
				if *prefetch != "" {
					v, err := parseSwitch("-prefetch", *prefetch)
					if err != nil {
						return err
					}
					cfg.Prefetch = &v
				}
				topts, err := tf.options()
				if err != nil {
					return err
				}
				if *upCA != "" || *upCert != "" || *upKey != "" {
					if cfg.UpstreamTLS, err = tlsserve.ClientConfig(*upCA, *upCert, *upKey); err != nil {
						return err
					}
				}
				l, err := openNodeListeners(*addr, topts, slog.Default())
				if err != nil {
					return err
				}
				perClient := deepConnsPerClient
				if *profile == edge.BringHome {
					perClient = sharedConnsPerClient
				}
				cf.limitConns(&l, perClient, slog.Default())
				if cfg.Self == "" && len(cfg.Siblings) > 0 {
					cfg.Self = l.selfURL()
				}
				defaults, err := edge.ProfileDefaults(*profile)
				if err != nil {
					l.close()
					return err
				}
				if cfg.MemBytes == 0 {
					cfg.MemBytes = defaults.MemBytes
				}
				tuneEdgeMemory(cfg.MemBytes)
				cfg.Logger = slog.Default()
				cfg.MetricsToken, cfg.OpsHidden = *ops.token, ops.hidden(cfg.Logger, l.addrs()...)
				ops.warnShortTokens(cfg.Logger, *token, l.addrs()...)
				name := cfg.Name
				if name == "" {
					name = defaults.Name
				}
				cfg.AccessLog = accessLogger(*accessLog, name)
				nodes := []web.Node{{Name: name, Role: *profile, URL: l.selfURL()}}
				for _, u := range cfg.Upstreams {
					// The page is the viewers': no upstream's password on it.
					nodes = append(nodes, web.Node{Name: edge.RedactURL(u), Role: "upstream", URL: withoutUser(u)})
				}
				cfg.Web = web.Handler(web.Config{Self: name, Nodes: nodes, ModulesDir: *modules, Logger: cfg.Logger})
				n, err := edge.New(cfg)
				if err != nil {
					l.close()
					return err
				}
				defer n.Close()
				slog.Info("edge listening", "node", n.Name(), "profile", *profile, "url", l.selfURL(),
					"upstreams", redactURLs(cfg.Upstreams), "mem", formatBytes(cfg.MemBytes), "disk", *disk, "auth", *af.mode)
				// SIGHUP: the -config file's upstreams (or upstream pool),
				// cache rules and CMSD advice replace the running ones, all
				// checked first.
				activeConfig.live = func(cf *configFile) error {
					rules, pool, err := edgeExtras(cf)
					if err != nil {
						return err
					}
					adv, err := adviceFromFile(cf, cfg.Advice)
					if err != nil {
						return err
					}
					// Upstreams first: each setter is all or nothing, and the
					// rules and advice, checked above, cannot fail after them.
					if v, hasUp := cf.fileValue("upstream"); pool == nil && hasUp {
						err = n.SetUpstreams(splitList(v))
					} else if pool != nil {
						err = n.SetUpstreamPool(pool)
					}
					if err != nil {
						return err
					}
					if err := n.SetCacheRules(rules); err != nil {
						return err
					}
					return n.SetAdvice(adv)
				}
				return serveNode(ctx, n, l, ops, n.OpsHandler(), slog.Default().With("node", n.Name()))
			}
		},
	}
}

// adviceFromFile is the CMSD advice after a reload of cf: a setting given
// on the command line or by the environment keeps its value (started's);
// the file gives the others, and one left out of it is back at none.
func adviceFromFile(cf *configFile, started edge.AdviceConfig) (edge.AdviceConfig, error) {
	adv := started
	if !activeConfig.pinned["cmsd-max-bitrate"] {
		adv.MaxBitrateKbps = 0
		if v, ok := cf.fileValue("cmsd-max-bitrate"); ok {
			kbps, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return adv, fmt.Errorf("%s: cmsd-max-bitrate %q: %w", cf.path, v, err)
			}
			adv.MaxBitrateKbps = kbps
		}
	}
	if !activeConfig.pinned["egress-limit"] {
		adv.EgressLimit = 0
		if v, ok := cf.fileValue("egress-limit"); ok {
			rate, err := parseBitRate(v)
			if err != nil {
				return adv, fmt.Errorf("%s: egress-limit: %w", cf.path, err)
			}
			adv.EgressLimit = rate
		}
	}
	if !activeConfig.pinned["cmsd-share"] {
		adv.ShareByLadder = false
		if v, ok := cf.fileValue("cmsd-share"); ok {
			byLadder, err := parseShareMode(v)
			if err != nil {
				return adv, fmt.Errorf("%s: cmsd-share: %w", cf.path, err)
			}
			adv.ShareByLadder = byLadder
		}
	}
	if err := adv.Check(); err != nil {
		return adv, fmt.Errorf("%s: %w", cf.path, err)
	}
	return adv, nil
}

// parseShareMode reads -cmsd-share: whether the shares follow the ladder.
func parseShareMode(s string) (byLadder bool, err error) {
	switch strings.TrimSpace(s) {
	case "ladder":
		return true, nil
	case "equal":
		return false, nil
	}
	return false, fmt.Errorf("%q: want ladder or equal", s)
}

// redactURLs is urls as logs may show them (edge.RedactURL).
func redactURLs(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = edge.RedactURL(u)
	}
	return out
}

// withoutUser is raw without its user information: a link a browser can
// follow (it refuses credentials in a URL it fetches).
func withoutUser(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return edge.RedactURL(raw)
	}
	u.User = nil
	return u.String()
}

// tuneEdgeMemory keeps the process near its cache budget: the memory tier
// holds -mem of live objects and evicted ones are garbage, so a soft limit
// of -mem plus working room makes the collector return them in time, while
// a high GOGC keeps it idle while the cache is not full.
func tuneEdgeMemory(cache int64) {
	tuneGC()
	if os.Getenv("GOMEMLIMIT") == "" {
		// The cache, the bytes of upstream reads in flight (larger objects
		// stream through files), and working room.
		debug.SetMemoryLimit(cache + edge.InflightBudget(cache) + 40<<20)
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
