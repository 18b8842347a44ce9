package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/deepcast/deepcast/cmd/deepcast/internal/tlsserve"
	"github.com/deepcast/deepcast/edge/auth"
	"github.com/deepcast/deepcast/edge/routing"
)

func routerCommand() command {
	return command{
		name:    "router",
		serves:  true,
		summary: "send viewers to the right edge: DNS, HTTP redirect and DASH content steering, from live edge health",
		setup: func(fs *flag.FlagSet, stdout io.Writer) func(context.Context, []string) error {
			edgesFile := fs.String("edges", "", "YAML file listing the edges (name, url, addresses, profile, weight, subnets), required")
			addr := fs.String("listen", "127.0.0.1:8000", "HTTP address (302 redirects, ?route=baseurl|steering manifests, /steering)")
			dnsAddr := fs.String("dns", "127.0.0.1:8053", "DNS address, UDP and TCP (empty disables DNS)")
			zone := fs.String("zone", "cdn.deepcast.test.", "DNS zone served; viewers resolve video.<zone>")
			strategy := fs.String("strategy", "nearest", "edge choice: "+strings.Join(routing.Strategies, ", "))
			accessLog := fs.Bool("access-log", false, "log every request as a JSON line on stderr (time, node, remote, method, path, status, bytes, duration_ms, upstream = the edge chosen)")
			check := fs.Duration("check", 2*time.Second, "edge health check interval")
			statsToken := fs.String("edge-token", "", "bearer token for the edges' /api/stats (their -metrics-token), read for load")
			self := fs.String("self", "", "this router's base URL as viewers reach it (https://steer.example), in the steering URLs it hands out; default: the -tls-listen address, else -listen's, with the host as written")
			edgeCA := fs.String("edge-ca", "", "PEM CA to verify https:// edges with (besides the system's)")
			tf := addTLSFlags(fs)
			cf := addConnFlags(fs, sharedConnsPerClient, "")
			tokenKey := fs.String("token-key", "", "sign viewers' Common Access Tokens with this key file (as `deepcast token -new-key` writes it): a 302 for a manifest carries one for the asset (?cat=…)")
			tokenTTL := fs.Duration("token-ttl", 2*time.Hour, "lifetime of the tokens the router signs")
			tokenRenew := fs.Duration("token-renew", 0, "the edges renew the router's tokens in their last RENEW (catr); none when 0")
			tokenIssuer := fs.String("token-issuer", "", "iss of the router's tokens (the edges' -auth-issuer)")
			tokenAudience := fs.String("token-audience", "", "aud of the router's tokens (the edges' -auth-audience), comma-separated")
			return func(ctx context.Context, args []string) error {
				if *edgesFile == "" {
					return fmt.Errorf("-edges FILE is required: %w", errUsage)
				}
				if err := cf.check(); err != nil {
					return err
				}
				if err := checkDuration("-check", *check, minCheckEvery, time.Hour); err != nil {
					return err
				}
				edges, err := routing.LoadEdges(*edgesFile)
				if err != nil {
					return err
				}
				topts, err := tf.options()
				if err != nil {
					return err
				}
				var edgeTLS *tls.Config
				if *edgeCA != "" {
					if edgeTLS, err = tlsserve.ClientConfig(*edgeCA, "", ""); err != nil {
						return err
					}
				}
				var tokens *routing.TokenIssuer
				if *tokenKey != "" {
					keys, err := auth.LoadKeys(*tokenKey)
					if err != nil {
						return err
					}
					if !keys[0].CanMint() {
						return fmt.Errorf("-token-key %s: the first key is a public key, which cannot sign", *tokenKey)
					}
					if *tokenTTL <= 0 || *tokenRenew < 0 || *tokenRenew >= *tokenTTL {
						return fmt.Errorf("-token-ttl %s -token-renew %s: want a positive lifetime longer than the renewal window: %w", *tokenTTL, *tokenRenew, errUsage)
					}
					tokens = &routing.TokenIssuer{Key: keys[0], TTL: *tokenTTL, Renew: *tokenRenew, Issuer: *tokenIssuer, Audience: splitList(*tokenAudience)}
				}
				log := slog.Default().With("node", "router")
				l, err := openNodeListeners(*addr, topts, log)
				if err != nil {
					return err
				}
				cf.limitConns(&l, sharedConnsPerClient, log)
				selfURL, err := routerSelf(*self, l, log)
				if err != nil {
					l.close()
					return err
				}
				r, err := routing.New(routing.Config{Edges: edges, Strategy: *strategy, Zone: *zone, Check: *check,
					Self: selfURL, StatsToken: *statsToken, EdgeTLS: edgeTLS, Logger: slog.Default(), // it names itself
					AccessLog: accessLogger(*accessLog, "router"), Tokens: tokens})
				if err != nil {
					l.close()
					return err
				}
				tuneGC()
				return runRouter(ctx, r, l, *dnsAddr, log)
			}
		},
	}
}

// runRouter serves HTTP(S) and DNS and checks health until ctx ends.
func runRouter(ctx context.Context, r *routing.Router, l nodeListeners, dnsAddr string, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Go(func() { r.Run(ctx) })
	if dnsAddr != "" {
		ready := make(chan string, 1)
		wg.Go(func() {
			if err := r.ServeDNSOn(ctx, dnsAddr, ready); err != nil {
				errc <- err
			}
		})
		select {
		case addr := <-ready:
			log.Info("router DNS listening", "addr", addr, "service", r.ServiceName())
		case err := <-errc:
			cancel()
			wg.Wait()
			l.close()
			return err
		}
	}
	log.Info("router listening", "url", l.selfURL())
	err := serveNode(ctx, r, l, noOps(), nil, log)
	cancel()
	wg.Wait()
	select {
	case derr := <-errc:
		return errors.Join(err, derr)
	default:
	}
	return err
}

// routerSelf is the router's base URL for the steering URLs it hands out:
// -self when given (a usage error unless it is http(s)://HOST[:PORT]),
// else its own listener's, with a warning when that names every interface.
func routerSelf(flagValue string, l nodeListeners, log *slog.Logger) (string, error) {
	if flagValue == "" {
		self := l.selfURL()
		if u, err := url.Parse(self); err == nil && everyInterface(u.Hostname()) {
			log.Warn("the router listens on every interface: its steering URLs name "+u.Host+", which viewers cannot reach; give -self", "self", self)
		}
		return self, nil
	}
	u, err := url.Parse(flagValue)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", fmt.Errorf("-self %q: want http(s)://HOST[:PORT], the router's base URL: %w", flagValue, errUsage)
	}
	return strings.TrimSuffix(flagValue, "/"), nil
}
