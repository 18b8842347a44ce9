package edge

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/deepcast/deepcast/edge/accesslog"
	"github.com/deepcast/deepcast/edge/auth"
)

// Profiles of one program.
const (
	EnterDeep = "enter-deep" // many small nodes in access networks: RAM only, prefetch
	BringHome = "bring-home" // few large nodes at exchange points: RAM + disk, shield
)

// DefaultStreamAfter is Config.StreamAfter's default. A segment of a few
// MB comes whole well within it from a parent on the same network, so
// most misses still go to their clients from memory whole; past it the
// link is slow enough that waiting would be felt, and streaming earlier
// keeps the burst of what came meanwhile small (dash.js counts that burst
// as throughput: 250 ms of a 1-s download overstated it by a third).
const DefaultStreamAfter = 100 * time.Millisecond

// DefaultRangeAhead is Config.RangeAhead's default: a range that a fill
// brings within a second is waited for; one further ahead costs the
// client less as a request of its own.
const DefaultRangeAhead = time.Second

// Config configures a Node. Zero fields take the profile's defaults.
type Config struct {
	Name      string
	Profile   string
	Upstreams []string // tried in order: active-standby
	Self      string   // this node's own base URL, for sibling sharding
	Siblings  []string // other bring-home nodes sharing the key space
	MemBytes  int64
	DiskDir   string // disk tier folder; none when empty
	// SpoolDir holds large objects while they stream through (large.go):
	// the disk tier's folder when there is one, else the system's temp
	// folder, when empty.
	SpoolDir   string
	DiskBytes  int64
	Prefetch   *bool
	QueryAllow []string // query parameters that are part of the cache key
	// CacheRules override freshness, stale windows and query keys per
	// path prefix (SetCacheRules at run time).
	CacheRules []CacheRule
	// UpstreamWeights, when set (one per upstream), make the upstreams a
	// weighted pool instead of an active-standby list (SetUpstreamPool).
	UpstreamWeights []float64
	CheckEvery      time.Duration
	// FetchTimeout bounds the wait for an upstream's answer, so a dead
	// upstream costs a client a bounded wait, not a hang; a body is then
	// read while it keeps coming, and abandoned after a pause as long as
	// what was left of the bound.
	FetchTimeout time.Duration
	// StreamAfter is how long a miss's body may take to come whole before
	// the node sends its clients what came and the rest as it comes,
	// instead of waiting for all of it (store and forward): behind a slow
	// or congested upstream, a viewer's first byte need not wait for the
	// last. Zero takes the default (DefaultStreamAfter); negative never
	// streams a small object. A body that fails once streamed is resumed
	// from another upstream (a ranged request), or the clients' answers
	// are cut short.
	StreamAfter time.Duration
	// RangeAhead is how long a range of an object still coming may wait
	// for the fill to bring it, at the fill's rate so far; a range
	// further ahead is fetched apart from an upstream, as a range, and
	// not kept. Zero takes the default (DefaultRangeAhead); negative
	// always waits for the fill.
	RangeAhead time.Duration
	// HeadFills makes a HEAD of an object the node does not hold fetch
	// the whole object and keep it, as nginx and Varnish do. By default
	// it is asked upstream as a HEAD and only its headers are kept
	// (head.go): a player asking the sizes of renditions it may never
	// play does not bring them across the link above.
	HeadFills bool
	// ClientMissRate bounds the upstream fetches one client (an IP
	// address, an IPv6 /64) may cause, per second, with bursts of 10
	// seconds' worth; past it a miss is answered 429 with Retry-After.
	// Hits are never limited, nor siblings. Zero: no bound. For the nodes
	// viewers reach, not for a parent, whose clients are edges.
	ClientMissRate float64
	// Manifest defaults for stale-while-revalidate and stale-if-error when
	// the upstream sends none.
	ManifestSWR, ManifestSIE time.Duration
	AdminToken               string
	// MetricsToken, when set, is the bearer token /metrics and /api/stats
	// ask for; OpsHidden takes them off the handler altogether (they are
	// on OpsHandler, served on an operators' listener).
	MetricsToken string
	OpsHidden    bool
	AccessLog    *accesslog.Logger // nil: no access log
	Logger       *slog.Logger
	// Transport reaches upstreams and siblings; http.DefaultTransport's
	// settings with more idle connections when nil.
	Transport http.RoundTripper
	// UpstreamTLS verifies https:// upstreams and siblings (extra CAs) and
	// may present a client certificate; the system's roots when nil.
	// HTTP/2 is used where an upstream offers it.
	UpstreamTLS *tls.Config
	// Web serves browser pages at "/" when set.
	Web http.Handler
	// Auth, when set, checks an access token on every /vod/ request
	// (auth.CAT or auth.SecureLink): the node facing viewers enforces
	// tokens; its upstreams, reached without them, do not.
	Auth auth.Checker
	// Advice is what the node tells players in CMSD-Dynamic (CTA-5006):
	// a bitrate cap, and a fair share of its egress when it nears its
	// limit (SetAdvice at run time).
	Advice AdviceConfig
}

// ProfileDefaults returns the defaults of a profile (ARCHITECTURE.md's table).
func ProfileDefaults(profile string) (Config, error) {
	yes, no := true, false
	switch profile {
	case EnterDeep:
		return Config{Profile: profile, Name: "deepcast-deep", MemBytes: 256 << 20, Prefetch: &yes}, nil
	case BringHome:
		return Config{Profile: profile, Name: "deepcast-home", MemBytes: 1 << 30, DiskBytes: 20 << 30, Prefetch: &no}, nil
	}
	return Config{}, fmt.Errorf("edge: profile %q: want %s or %s", profile, EnterDeep, BringHome)
}

func (c *Config) applyDefaults() error {
	d, err := ProfileDefaults(c.Profile)
	if err != nil {
		return err
	}
	if c.Name == "" {
		c.Name = d.Name
	}
	if err := c.Advice.Check(); err != nil {
		return err
	}
	if c.MemBytes <= 0 {
		c.MemBytes = d.MemBytes
	}
	if c.DiskBytes <= 0 {
		c.DiskBytes = d.DiskBytes
	}
	if c.DiskBytes <= 0 {
		c.DiskBytes = 20 << 30
	}
	if c.Prefetch == nil {
		c.Prefetch = d.Prefetch
	}
	if c.CheckEvery <= 0 {
		c.CheckEvery = 2 * time.Second
	}
	if c.FetchTimeout <= 0 {
		c.FetchTimeout = 10 * time.Second
	}
	if c.StreamAfter == 0 {
		c.StreamAfter = DefaultStreamAfter
	}
	if c.RangeAhead == 0 {
		c.RangeAhead = DefaultRangeAhead
	}
	if c.ManifestSWR <= 0 {
		c.ManifestSWR = 10 * time.Second
	}
	if c.ManifestSIE <= 0 {
		c.ManifestSIE = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if !validName(c.Name) {
		return fmt.Errorf("edge: name %q must match [A-Za-z0-9._-]+", c.Name)
	}
	if c.Profile == EnterDeep && c.DiskDir != "" {
		// Refused rather than ignored: an operator who asked for a disk
		// tier would otherwise believe there is one.
		return fmt.Errorf("edge: a disk tier (%s) on an %s node: enter-deep nodes are memory only; use -profile %s", c.DiskDir, EnterDeep, BringHome)
	}
	return nil
}
