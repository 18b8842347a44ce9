package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/quic-go/quic-go/http3"

	"github.com/deepcast/deepcast/cmd/deepcast/internal/tlsserve"
	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/store"
	"github.com/deepcast/deepcast/player"
	"golang.org/x/net/http/httpguts"
)

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func simCommand() command {
	return command{
		name:    "sim",
		summary: "simulate ABR algorithms over bandwidth traces (trace-driven, virtual clock); CSV, logs, plots",
		setup: func(fs *flag.FlagSet, stdout io.Writer) func(context.Context, []string) error {
			video := fs.String("video", "", "video: a CSV like envivio-4s-48.csv, a Sabre video manifest (.json), an asset folder, MPD or HLS playlist file, an MPD or .m3u8 URL, or an asset in an object store library (s3://BUCKET/PREFIX/NAME); required")
			traces := fs.String("traces", "", "trace files or folders, comma-separated (two-column, mahimahi or Sabre JSON, each maybe gzipped); required")
			sf := addStoreFlags(fs)
			abr := fs.String("abr", "all", "algorithms: all, or a comma-separated list of "+strings.Join(player.Algorithms(), ", ")+
				", optimal (the offline optimum, knowing the trace: all,optimal adds it)")
			grid := fs.Duration("optimal-grid", player.DefaultOptimalGrid, "buffer resolution of the optimum's dynamic program")
			qoe := fs.String("qoe", "lin", "QoE model: "+strings.Join(player.QoEModels(), ", ")+" (lolp: LoL+'s, which scores latency and playback rate too)")
			pensieve := fs.Bool("pensieve", false, "Pensieve's simulator assumptions (95% payload, 80 ms RTT, 60 s cap, start at rendition 1, first chunk out of QoE)")
			jobs := fs.Int("j", 0, "parallel sessions (default: number of CPUs)")
			out := fs.String("out", "", "write one CSV row per (trace, abr) to this file")
			logDir := fs.String("log", "", "write a per-chunk CSV per session into this folder")
			plotDir := fs.String("plot", "", "write PNG plots (QoE CDF, a few sessions over time) into this folder")
			rtt := fs.Duration("rtt", 0, "round trip added to each download (without -pensieve; a trace that carries its own latency, as Sabre's do, has that instead)")
			ca := fs.String("ca", "", "PEM CA to verify an https:// -video with (besides the system's)")
			h3 := fs.Bool("http3", false, "fetch an https:// -video over HTTP/3")
			var headers requestHeaders
			fs.Var(&headers, "header", "send this `Name: value` header with every request for an http(s) -video (repeatable)")
			scale := fs.String("scale", "", "bandwidth factors, comma-separated (e.g. 0.5,1,2): every trace is simulated with its bandwidth multiplied by each, and each factor other than 1 is a family of its own (fcc-x0.5): a check on bandwidth regimes the trace sets do not have")
			live := fs.Duration("live", 0, "simulate a live stream joined this far behind its live edge (e.g. 8s; at least one chunk): a chunk is fetched once published, the buffer holds no more than the distance to the edge, stalls add to it; the summary gains the mean latency at the end, -out and -log a latency_s column")
			catchup := fs.Float64("catchup", 0, "with -live: play at up to this rate (e.g. 1.1; at most 1.5) while further behind the live edge than joined, after the startup and stalls, as long as more than a chunk (and a second) is buffered; the latency s column shows what it wins back")
			catchupLaw := fs.String("catchup-law", player.CatchUpFixed, "with -catchup: how the rate follows the lag behind the join: fixed (the rate whenever behind) or sigmoid (1 + (R-1)·tanh(2.5·lag/s), dash.js's default catch-up law)")
			abandon := fs.String("abandon", "", "let sessions give a download up mid-way and fetch the chunk at a lower rendition, by this rule: "+abandonRulesHelp+"; the optimum never does")
			models := fs.String("model", "", "learned policies (deepcast train's model.json files), comma-separated: each runs beside -abr, named by its file name without .json")
			return func(ctx context.Context, args []string) error {
				if *video == "" || *traces == "" {
					return fmt.Errorf("-video and -traces are required: %w", errUsage)
				}
				if err := checkJobs(*jobs); err != nil {
					return err
				}
				if err := player.CheckSimCatchUp(*live, *catchup); err != nil {
					return fmt.Errorf("-catchup: %w: %w", err, errUsage)
				}
				if err := checkAbandon(*abandon); err != nil {
					return err
				}
				if err := checkCatchUpLaw(*catchupLaw, *catchup); err != nil {
					return err
				}
				client, err := httpClient(*ca, *h3, 60*time.Second, headers.h)
				if err != nil {
					return err
				}
				// Outputs first: a path that cannot be written fails now, not
				// after the whole simulation.
				if err := checkOutputs(*out, *logDir, *plotDir); err != nil {
					return err
				}
				var v *player.Video
				if store.IsS3(*video) {
					v, err = loadStoreVideo(ctx, sf, *video)
				} else {
					v, err = player.LoadVideo(ctx, *video, client)
				}
				if err != nil {
					return err
				}
				factors, err := parseFactors(*scale)
				if err != nil {
					return err
				}
				ts, err := player.LoadTraces(splitList(*traces))
				if err != nil {
					return err
				}
				ts = player.ScaleTraces(ts, factors)
				algs, err := player.ParseABRList(*abr)
				if err != nil {
					return err
				}
				policies, err := loadPolicies(splitList(*models))
				if err != nil {
					return err
				}
				for _, name := range slices.Sorted(maps.Keys(policies)) {
					if slices.Contains(algs, name) {
						return fmt.Errorf("-model: %s is also an algorithm's name: rename the file", name)
					}
					algs = append(algs, name)
				}
				opt := player.SimOptions{Video: v, Traces: ts, Algorithms: algs, QoE: *qoe, Pensieve: *pensieve, RTT: *rtt, OptimalGrid: *grid,
					Jobs: *jobs, KeepLogs: *logDir != "" || *plotDir != "", Policies: policies, Live: *live, CatchUp: *catchup, CatchUpLaw: *catchupLaw,
					Abandon: *abandon}
				if isTerminal(os.Stderr) {
					bar := progressbar.NewOptions(len(ts)*len(algs), progressbar.OptionSetWriter(os.Stderr),
						progressbar.OptionSetDescription("simulating"), progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
					opt.Progress = func(done, total int) { _ = bar.Set(done) }
				}
				start := time.Now()
				results, err := player.Simulate(ctx, opt)
				if err != nil {
					return err
				}
				mode := map[bool]string{true: ", Pensieve-compatible", false: ""}[*pensieve]
				if *live > 0 {
					mode += fmt.Sprintf(", live %v behind the edge", *live)
					switch {
					case *catchup > 1 && *catchupLaw == player.CatchUpSigmoid:
						mode += fmt.Sprintf(", catching up at up to %g× as the lag goes (sigmoid)", *catchup)
					case *catchup > 1:
						mode += fmt.Sprintf(", catching up at %g×", *catchup)
					}
				}
				if abandoning(*abandon) {
					mode += fmt.Sprintf(", abandoning downloads by the %s rule", *abandon)
				}
				fmt.Fprintf(stdout, "%d sessions (%d traces x %d algorithms) of %s in %s, QoE %s%s\n", len(results), len(ts), len(algs), v.Name,
					time.Since(start).Round(time.Millisecond), *qoe, mode)
				for _, name := range algs {
					if note := trainedForAnotherQoE(name, policies[name], *qoe); note != "" {
						fmt.Fprintln(stdout, note)
					}
				}
				if note := ownLatencyNote(ts, *pensieve, *rtt); note != "" {
					fmt.Fprintln(stdout, note)
				}
				sums := player.Summarize(results)
				player.WriteSummary(stdout, sums)
				writeGaps(stdout, sums, algs)
				// Each trace family apart: a gain can hold on one and not on
				// another.
				if fams := player.Families(results); len(fams) > 1 {
					for _, f := range fams {
						fr := player.OfFamily(results, f)
						fmt.Fprintf(stdout, "\nfamily %s (%d sessions):\n", f, len(fr))
						fs := player.Summarize(fr)
						player.WriteSummary(stdout, fs)
						writeGaps(stdout, fs, algs)
					}
				}
				if *out != "" {
					if err := writeFile(*out, func(f *os.File) error { return player.WriteResults(f, results) }); err != nil {
						return err
					}
					fmt.Fprintf(stdout, "results: %s\n", *out)
				}
				if *logDir != "" {
					if err := player.WriteLogs(*logDir, results); err != nil {
						return err
					}
					fmt.Fprintf(stdout, "logs: %s\n", *logDir)
				}
				if *plotDir != "" {
					if err := player.WritePlots(*plotDir, results, 3, ts); err != nil {
						return err
					}
					fmt.Fprintf(stdout, "plots: %s\n", filepath.Join(*plotDir, "qoe_cdf.png"))
				}
				return nil
			}
		},
	}
}

// writeGaps prints gap_closed for every algorithm that is not a
// baseline: deepcast's own and the -model policies.
func writeGaps(w io.Writer, sums []player.Summary, algs []string) {
	for _, a := range algs {
		if a != player.Optimal && !slices.Contains(player.Baselines, a) {
			player.WriteGapClosed(w, sums, a)
		}
	}
}

// ownLatencyNote says how many traces wait their own latency per request
// (Sabre's) instead of the run's round trip, so that a table is not read
// as if every session paid the same one.
func ownLatencyNote(ts []*player.Trace, pensieve bool, rtt time.Duration) string {
	n := 0
	for _, t := range ts {
		if t.Latency != nil {
			n++
		}
	}
	if n == 0 {
		return ""
	}
	fixed := fmt.Sprintf("-rtt's %v", rtt)
	if pensieve {
		fixed = fmt.Sprintf("-pensieve's %v", player.PensieveRTT)
	}
	return fmt.Sprintf("note: %d of %d traces carry their own latency (Sabre's format); their requests wait it in place of %s", n, len(ts), fixed)
}

// trainedForAnotherQoE is a note for a learned policy (m, or the shipped
// one for deepcast-learned) that was trained to score well by another QoE
// model than the one the session is scored by, "" otherwise: a network
// does not re-plan for a new model as robustmpc and deepcast do.
func trainedForAnotherQoE(name string, m *player.PolicyModel, qoe string) string {
	if m == nil && strings.EqualFold(name, player.DeepcastLearned) {
		m, _ = player.ShippedPolicy()
	}
	if m == nil {
		return ""
	}
	trained, _ := m.Training["qoe"].(string)
	if trained == "" || strings.EqualFold(trained, qoe) {
		return ""
	}
	return fmt.Sprintf("note: %s was trained to score well by QoE %s, and is scored here by QoE %s (train -qoe %s makes one for it)", name, trained, qoe, qoe)
}

// loadPolicies reads model files, each named by its file name.
func loadPolicies(paths []string) (map[string]*player.PolicyModel, error) {
	out := map[string]*player.PolicyModel{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("-model: %w", err)
		}
		m, err := player.ParsePolicyModel(data)
		if err != nil {
			return nil, fmt.Errorf("-model %s: %w", p, err)
		}
		name := strings.ToLower(strings.TrimSuffix(filepath.Base(p), filepath.Ext(p)))
		if _, dup := out[name]; dup || name == "" {
			return nil, fmt.Errorf("-model %s: two models named %q", p, name)
		}
		out[name] = m
	}
	return out, nil
}

func writeFile(path string, fn func(*os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = fn(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func playCommand() command {
	return command{
		name:    "play",
		usage:   "URL",
		summary: "play an MPD or HLS playlist (VOD or live) over real HTTP with an ABR algorithm, optionally shaped to a trace; prints a line per chunk and a summary",
		setup: func(fs *flag.FlagSet, stdout io.Writer) func(context.Context, []string) error {
			abr := fs.String("abr", "dynamic", "algorithm: "+strings.Join(player.Algorithms(), ", "))
			trace := fs.String("trace", "", "shape the download rate to this bandwidth trace over wall time (two-column, mahimahi or Sabre JSON; a Sabre trace's latency is waited before each request)")
			rtt := fs.Duration("rtt", 0, "delay before each request's first byte (not with a -trace that carries its own latency, as Sabre's do)")
			dur := fs.Duration("duration", 0, "stop after this much media (default: the whole video; a live stream needs it)")
			out := fs.String("out", "", "write the per-chunk log as CSV to this file (a live stream's rows end with latency_s: how far behind the live edge it played once the chunk was in)")
			cmcd := fs.Bool("cmcd", false, "send CTA-5004 CMCD data as the CMCD query argument")
			sid := fs.String("cmcd-sid", "", "with -cmcd: the session id (sid) to send, up to 64 printable ASCII characters, to find the session in an edge's logs and stats (default: a new random one)")
			cmsdCap := fs.Bool("cmsd", true, "keep to the bitrate the serving node suggests in CMSD-Dynamic (CTA-5006 mb, for video and sound together), as dash.js does with cmsd.abr.applyMb; false ignores it")
			qoe := fs.String("qoe", "lin", "QoE model: "+strings.Join(player.QoEModels(), ", ")+" (lolp: LoL+'s, which scores latency and playback rate too)")
			quiet := fs.Bool("quiet", false, "no live line per chunk")
			verify := fs.Bool("verify", false, "check every body against the SHA-256 its answer declares (Repr-Digest, else a deepcast ETag); a mismatch counts as corrupt and is refetched")
			jsonOut := fs.String("json", "", "write the session's summary and request counts as JSON to this file (written on failure too)")
			ca := fs.String("ca", "", "PEM CA to verify https:// URLs with (besides the system's)")
			h3 := fs.Bool("http3", false, "play an https:// URL over HTTP/3 (QUIC)")
			catchup := fs.Float64("catchup", 0, "live streams: play at up to this rate (e.g. 1.1; at most 1.5) while further behind the live edge than joined, after the startup and stalls, as long as more than a chunk (and a second) is buffered, as dash.js and hls.js catch up")
			catchupLaw := fs.String("catchup-law", player.CatchUpFixed, "with -catchup: how the rate follows the lag behind the join: fixed (the rate whenever behind) or sigmoid (1 + (R-1)·tanh(2.5·lag/s), dash.js's default catch-up law)")
			abandon := fs.String("abandon", "", "give a segment's download up mid-way and fetch the chunk at a lower rendition, by this rule: "+abandonRulesHelp)
			liveDelay := fs.Duration("live-delay", 0, "live streams: join this far behind the live edge (as dash.js's liveDelay, hls.js's liveSyncDuration), and again after falling behind; default: the MPD's suggestedPresentationDelay, else three segments")
			var headers requestHeaders
			fs.Var(&headers, "header", "send this `Name: value` header with every request (repeatable), as an access token header")
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 {
					return fmt.Errorf("one MPD or playlist URL is required: %w", errUsage)
				}
				if err := player.CheckCatchUp(*catchup); err != nil {
					return fmt.Errorf("-catchup: %w: %w", err, errUsage)
				}
				if err := checkCatchUpLaw(*catchupLaw, *catchup); err != nil {
					return err
				}
				if err := checkAbandon(*abandon); err != nil {
					return err
				}
				if *liveDelay < 0 || *liveDelay > player.MaxLiveDelay {
					return fmt.Errorf("-live-delay %v: want 0 (the stream's suggestion) to %v: %w", *liveDelay, player.MaxLiveDelay, errUsage)
				}
				// The outputs too: a session can last as long as a film.
				for _, o := range []struct{ flag, path string }{{"-out", *out}, {"-json", *jsonOut}} {
					if o.path == "" {
						continue
					}
					if err := writable(filepath.Dir(o.path)); err != nil {
						return fmt.Errorf("%s %s: %w", o.flag, o.path, err)
					}
				}
				if u, err := url.Parse(args[0]); err != nil || u.Scheme != "http" && u.Scheme != "https" {
					// play measures real downloads: a file has none. Say so
					// now rather than after retries.
					return fmt.Errorf("%q is not an http(s):// URL: play streams over HTTP (serve a library with `deepcast origin`, or simulate a local asset with `deepcast sim -video %s`): %w", args[0], args[0], errUsage)
				}
				if err := checkSessionID(*sid); err != nil {
					return fmt.Errorf("-cmcd-sid: %w: %w", err, errUsage)
				}
				var stats player.FetchStats
				var latency player.Latency
				var live bool
				var ladderChanges []string
				res, err := play(ctx, args[0], playOptions{LadderChanges: &ladderChanges, ABR: *abr, Trace: *trace, RTT: *rtt, Duration: *dur, CMCD: *cmcd,
					QoE: *qoe, ChunkLines: !*quiet, Verify: *verify, Stats: &stats, Latency: &latency, LatencyOK: &live,
					CA: *ca, HTTP3: *h3, Header: headers.h, CatchUp: *catchup, CatchUpLaw: *catchupLaw, LiveDelay: *liveDelay, Abandon: *abandon, Out: stdout,
					IgnoreServerCap: !*cmsdCap, SessionID: *sid})
				if *jsonOut != "" {
					var lat *player.Latency
					if live {
						lat = &latency
					}
					if werr := writePlayJSON(*jsonOut, res, stats, lat, err); werr != nil && err == nil {
						err = werr
					}
				}
				if err != nil {
					return err
				}
				printSession(stdout, *abr, res, stats.Protocol)
				for _, change := range ladderChanges {
					fmt.Fprintln(stdout, "note: "+change)
				}
				if note := trainedForAnotherQoE(*abr, nil, *qoe); note != "" {
					fmt.Fprintln(stdout, note)
				}
				if live {
					fmt.Fprintf(stdout, "live: %.2fs behind the live edge when playback began, %.2fs at the end, %.2fs on average over the chunks, %.2fs at most\n",
						latency.Start.Seconds(), latency.End.Seconds(), latency.Mean.Seconds(), latency.Max.Seconds())
				}
				if res.Rejoins > 0 {
					times := "once"
					if res.Rejoins > 1 {
						times = fmt.Sprintf("%d times", res.Rejoins)
					}
					fmt.Fprintf(stdout, "live: fell behind the stream's time-shift buffer %s, and jumped %.1fs of media ahead to the live edge\n", times, res.Skipped.Seconds())
				}
				if *catchup > 1 && !live {
					fmt.Fprintln(stdout, "note: -catchup is for live streams; this one is on demand and played at normal speed")
				}
				if res.CaughtUp > 0 {
					fmt.Fprintf(stdout, "live: caught up %.2fs with the live edge by playing at up to %g×\n", res.CaughtUp.Seconds(), *catchup)
				}
				if res.StreamEnded {
					fmt.Fprintf(stdout, "live: the stream ended after %.1fs of media, before the %v asked for\n", res.PlayTime.Seconds(), *dur)
				}
				if *out != "" {
					if err := writeFile(*out, func(f *os.File) error { return player.WriteLog(f, res.Log, live, abandoning(*abandon)) }); err != nil {
						return err
					}
				}
				return nil
			}
		},
	}
}

// checkCatchUpLaw checks -catchup-law: a law player.CheckCatchUpLaw
// takes, and the sigmoid only with a rate to follow.
func checkCatchUpLaw(law string, rate float64) error {
	if err := player.CheckCatchUpLaw(law); err != nil {
		return fmt.Errorf("-catchup-law: %w: %w", err, errUsage)
	}
	if law == player.CatchUpSigmoid && rate <= 1 {
		return fmt.Errorf("-catchup-law sigmoid needs -catchup, the fastest rate (e.g. 1.5): %w", errUsage)
	}
	return nil
}

type playOptions struct {
	ABR, Trace, QoE string
	TraceValue      *player.Trace // used instead of Trace when set
	RTT, Duration   time.Duration
	CMCD, Verify    bool
	// ChunkLines prints a line per chunk to Out as it comes.
	ChunkLines bool
	// Latency, when set and the stream is live, receives how far behind
	// the live edge it played (LatencyOK tells whether it was live).
	Latency   *player.Latency
	LatencyOK *bool
	// LadderChanges, when not nil, gets the Video's LadderChanges.
	LadderChanges *[]string
	// Stats, when set, receives the fetcher's request counts at the end.
	Stats *player.FetchStats
	CA    string // extra roots for https:// URLs
	HTTP3 bool
	// CatchUp is a live stream's catch-up playback rate (Config.CatchUp),
	// CatchUpLaw how it follows the lag (Config.CatchUpLaw).
	CatchUp    float64
	CatchUpLaw string
	// LiveDelay is how far behind a live stream's edge to join (0: as the
	// stream suggests).
	LiveDelay time.Duration
	// Abandon names the rule by which a download may be given up for a
	// lower rendition (player.NewAbandoner; "" never).
	Abandon string
	// Header is sent with every request.
	Header http.Header
	// IgnoreServerCap plays as if no node suggested a bitrate (CMSD mb);
	// by default the session keeps to it (player.Config.ServerCap).
	IgnoreServerCap bool
	// SessionID is the CMCD sid ("": a new random one).
	SessionID string
	// Out receives a line per chunk when ChunkLines is set.
	Out io.Writer
}

// httpClient is the players' client: the system's roots plus ca, over
// HTTP/3 when h3 is set (https:// only), else HTTP/1.1 or HTTP/2 as the
// server offers, with a cookie jar.
func httpClient(ca string, h3 bool, timeout time.Duration, header http.Header) (*http.Client, error) {
	cfg, err := tlsserve.ClientConfig(ca, "", "")
	if err != nil {
		return nil, err
	}
	// Cookies are kept, as a browser keeps them: an edge checking access
	// tokens turns the token on the manifest's URL into a session cookie
	// for the segments (and renews it there).
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	var rt http.RoundTripper = &http3.Transport{TLSClientConfig: cfg}
	if !h3 {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = cfg
		t.ForceAttemptHTTP2 = true
		rt = t
	}
	if len(header) > 0 {
		rt = headerTransport{rt, header}
	}
	return &http.Client{Timeout: timeout, Jar: jar, Transport: rt}, nil
}

// headerTransport sends its header with every request.
type headerTransport struct {
	http.RoundTripper
	header http.Header
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context()) // a RoundTripper must not change the caller's request
	for k, v := range t.header {
		r.Header[k] = v
	}
	return t.RoundTripper.RoundTrip(r)
}

// requestHeaders is a repeatable -header flag of "Name: value".
type requestHeaders struct{ h http.Header }

func (r *requestHeaders) String() string {
	if r == nil || r.h == nil {
		return ""
	}
	var b strings.Builder
	r.h.Write(&b)
	return strings.TrimSpace(b.String())
}

func (r *requestHeaders) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if !ok || name == "" || !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) {
		return fmt.Errorf("%q: want Name: value", s)
	}
	if r.h == nil {
		r.h = http.Header{}
	}
	r.h.Add(name, value)
	return nil
}

// playReport is the JSON of play -json.
type playReport struct {
	OK           bool              `json:"ok"`
	Error        string            `json:"error,omitempty"`
	Chunks       int               `json:"chunks"`
	QoE          float64           `json:"qoe"`
	MeanBitrate  float64           `json:"meanBitrateKbps"`
	Startup      float64           `json:"startupSeconds"`
	Stalls       int               `json:"stalls"`
	StallSeconds float64           `json:"stallSeconds"`
	Switches     int               `json:"switches"`
	PlaySeconds  float64           `json:"playSeconds"`
	Requests     player.FetchStats `json:"requests"`
	// LiveLatency is how far behind the live edge a live stream played
	// (seconds); absent for VOD.
	LiveLatency *liveLatencyJSON `json:"liveLatency,omitempty"`
	// StreamEnded: the live stream ended before -duration, and playback
	// with it.
	StreamEnded bool `json:"streamEnded,omitempty"`
	// Rejoins and SkippedSeconds: how often a live session fell behind
	// the time-shift buffer and jumped to the live edge, and the media
	// it jumped over.
	Rejoins        int     `json:"rejoins,omitempty"`
	SkippedSeconds float64 `json:"skippedSeconds,omitempty"`
	// CaughtUpSeconds is the media time a live session won back on the
	// live edge by playing faster (-catchup).
	CaughtUpSeconds float64 `json:"caughtUpSeconds,omitempty"`
	// Abandoned and AbandonedBytes: the downloads given up for a lower
	// rendition (-abandon), and the bytes they had brought in.
	Abandoned      int   `json:"abandoned,omitempty"`
	AbandonedBytes int64 `json:"abandonedBytes,omitempty"`
	// Capped is how many chunks the serving node's suggested bitrate
	// (CMSD mb) lowered; ServerCapKbps its last suggestion.
	Capped        int       `json:"capped,omitempty"`
	ServerCapKbps int64     `json:"serverCapKbps,omitempty"`
	FinishedAtUTC time.Time `json:"finished"`
}

// liveLatencyJSON is a player.Latency in seconds.
type liveLatencyJSON struct {
	Start float64 `json:"startSeconds"`
	End   float64 `json:"endSeconds"`
	// Mean and Max are over the chunks, as -out's latency_s.
	Mean float64 `json:"meanSeconds"`
	Max  float64 `json:"maxSeconds"`
}

func writePlayJSON(path string, res player.Result, stats player.FetchStats, latency *player.Latency, playErr error) error {
	r := playReport{OK: playErr == nil, Chunks: res.Chunks, QoE: res.QoE, MeanBitrate: res.MeanBitrate, Startup: res.Startup.Seconds(),
		Stalls: res.RebufferCount, StallSeconds: res.Rebuffer.Seconds(), Switches: res.Switches, PlaySeconds: res.PlayTime.Seconds(),
		Requests: stats, StreamEnded: res.StreamEnded, Rejoins: res.Rejoins, SkippedSeconds: res.Skipped.Seconds(),
		CaughtUpSeconds: res.CaughtUp.Seconds(), Abandoned: res.Abandoned, AbandonedBytes: res.AbandonedBytes,
		Capped: res.Capped, ServerCapKbps: res.ServerCapKbps, FinishedAtUTC: time.Now().UTC()}
	if playErr != nil {
		r.Error = playErr.Error()
	}
	if latency != nil {
		r.LiveLatency = &liveLatencyJSON{Start: latency.Start.Seconds(), End: latency.End.Seconds(), Mean: latency.Mean.Seconds(), Max: latency.Max.Seconds()}
	}
	return writeFile(path, func(f *os.File) error {
		enc := json.NewEncoder(f)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	})
}

// play runs one real-time session against url.
func play(ctx context.Context, url string, o playOptions) (player.Result, error) {
	// What the flags name is checked before the first request: a typo in
	// -abr or -trace should not wait for a manifest (or a live stream's
	// retries) to be reported.
	a, err := player.NewABR(o.ABR)
	if err != nil {
		return player.Result{}, err
	}
	q, err := player.NewQoE(o.QoE)
	if err != nil {
		return player.Result{}, err
	}
	if o.RTT < 0 || o.Duration < 0 {
		return player.Result{}, fmt.Errorf("-rtt %v, -duration %v: neither can be negative: %w", o.RTT, o.Duration, errUsage)
	}
	shape := o.TraceValue
	if shape == nil && o.Trace != "" {
		ts, err := player.LoadTraces([]string{o.Trace})
		if err != nil {
			return player.Result{}, err
		}
		shape = ts[0]
	}
	if shape != nil && shape.Latency != nil && o.RTT > 0 {
		return player.Result{}, fmt.Errorf("-rtt %v: trace %s carries its own latency (Sabre's format), which each request waits instead; leave -rtt out: %w", o.RTT, shape.Name, errUsage)
	}
	client, err := httpClient(o.CA, o.HTTP3, 60*time.Second, o.Header)
	if err != nil {
		return player.Result{}, err
	}
	// The session's connections end with it (a soak found idle ones of
	// earlier sessions held open on the edge until its idle timeout).
	defer client.CloseIdleConnections()
	v, err := player.LoadVideoLazily(ctx, url, client, o.Duration, o.LiveDelay)
	if err != nil {
		return player.Result{}, err
	}
	clock := player.NewWallClock()
	sid := o.SessionID
	if sid == "" {
		sid = player.NewSessionID()
	}
	format := "d"
	if v.HLS {
		format = "h"
	}
	f := &player.HTTPFetcher{Client: client, Clock: clock, RTT: o.RTT, CMCD: o.CMCD, SessionID: sid, Format: format, Retries: 3,
		Mirrors: v.Bases, Verify: o.Verify, Live: !v.LiveStart.IsZero()}
	if f.Live {
		f.Retries = 5 // a live segment may be published late: up to 7.75 s of backoff
		f.Gone = func(ctx context.Context, req player.Request) error { return v.Gone(ctx, req.Chunk, req.Rendition < 0) }
	}
	if o.Stats != nil {
		defer func() { *o.Stats = f.Stats() }()
	}
	if shape != nil {
		f.Shaper = player.NewShaper(shape)
	}
	cfg := player.DefaultConfig()
	cfg.FetchInit = true
	cfg.ServerCap = !o.IgnoreServerCap
	if cfg.Abandon, err = player.NewAbandoner(o.Abandon); err != nil {
		return player.Result{}, fmt.Errorf("-abandon: %w: %w", err, errUsage)
	}
	if !v.LiveStart.IsZero() {
		cfg.Ready = func(ctx context.Context, k, q int) error { return v.WaitPublished(ctx, clock, k, q) }
		cfg.Rejoin = v.Rejoin
		cfg.CatchUp, cfg.CatchUpLaw = o.CatchUp, o.CatchUpLaw
		// The edge is as far into the stream as the wall clock is past its
		// start (which a jump to the edge moves).
		cfg.LiveEdge = func(now time.Duration) time.Duration { return clock.Start().Add(now).Sub(v.LiveStart) }
	}
	if o.Duration > 0 {
		cfg.Chunks = max(1, int((o.Duration+v.ChunkDuration-1)/v.ChunkDuration))
	}
	if o.ChunkLines {
		cfg.OnChunk = func(l player.ChunkLog) {
			var notes string
			if l.Skipped > 0 {
				notes += fmt.Sprintf("  JUMPED %.1fs to the live edge", l.Skipped.Seconds())
			}
			if l.Abandoned > 0 {
				notes += fmt.Sprintf("  ABANDONED %d download(s) of it", l.Abandoned)
			}
			if l.Capped {
				notes += fmt.Sprintf("  lowered to the node's %d kbit/s (CMSD)", f.MaxBitrateKbps())
			}
			if l.Rebuffer > 0 {
				notes += fmt.Sprintf("  STALL %.2fs", l.Rebuffer.Seconds())
			}
			if cfg.CatchUp > 1 && l.Behind >= 50*time.Millisecond {
				notes += fmt.Sprintf("  %.1fs to catch up", l.Behind.Seconds())
			}
			if cfg.LiveEdge != nil {
				notes += fmt.Sprintf("  latency %.1fs", l.Latency.Seconds())
			}
			fmt.Fprintf(o.Out, "%7.2fs  chunk %3d  rendition %d (%5.0f kbit/s)  buffer %5.1fs  estimate %6.0f kbit/s%s\n",
				l.Time.Seconds(), l.Chunk, l.Rendition, l.BitrateKbps, l.Buffer.Seconds(), l.Estimate, notes)
		}
	}
	s := &player.Session{Video: v, ABR: a, QoE: q, Clock: clock, Fetcher: f, Config: cfg, KeepLog: true}
	res, err := s.Run(ctx)
	if o.LadderChanges != nil {
		*o.LadderChanges = v.LadderChanges
	}
	if o.Latency != nil && o.LatencyOK != nil {
		*o.Latency, *o.LatencyOK = v.LiveLatency(clock.Start(), res)
	}
	return res, err
}

// abandonRulesHelp lists -abandon's rules for the flags' help.
const abandonRulesHelp = "stall (only a download that would stall playback, for the lower rendition the QoE model prefers then) or throughput (dash.js's rule as Sabre has it: past 1.8 chunk durations at its own rate)"

// abandoning says whether an -abandon flag (checked) names a rule.
func abandoning(rule string) bool {
	a, _ := player.NewAbandoner(rule)
	return a != nil
}

// checkAbandon checks an -abandon flag.
func checkAbandon(rule string) error {
	if _, err := player.NewAbandoner(rule); err != nil {
		return fmt.Errorf("-abandon: %w: %w", err, errUsage)
	}
	return nil
}

// maxJobs bounds -j: more sessions at once than this only adds goroutines
// waiting for a core.
const maxJobs = 1024

// checkJobs checks a -j flag: 0 for one session per CPU, else 1…maxJobs.
func checkJobs(j int) error {
	if j < 0 || j > maxJobs {
		return fmt.Errorf("-j %d: want 1…%d sessions at once, or 0 for one per CPU: %w", j, maxJobs, errUsage)
	}
	return nil
}

// checkOutputs makes sure sim can write what it was asked to: the -out
// file's folder exists and takes files, the -log and -plot folders can be
// made and written.
func checkOutputs(out, logDir, plotDir string) error {
	if out != "" {
		if err := writable(filepath.Dir(out)); err != nil {
			return fmt.Errorf("-out %s: %w", out, err)
		}
	}
	for _, d := range []struct{ flag, dir string }{{"-log", logDir}, {"-plot", plotDir}} {
		if d.dir == "" {
			continue
		}
		if err := os.MkdirAll(d.dir, 0o755); err != nil {
			return fmt.Errorf("%s %s: %w", d.flag, d.dir, err)
		}
		if err := writable(d.dir); err != nil {
			return fmt.Errorf("%s %s: %w", d.flag, d.dir, err)
		}
	}
	return nil
}

// writable checks that dir exists and a file can be created in it.
func writable(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("folder %s does not exist", dir)
	case err != nil:
		return err
	case !st.IsDir():
		return fmt.Errorf("%s is not a folder", dir)
	}
	f, err := os.CreateTemp(dir, ".deepcast-check-")
	if err != nil {
		return fmt.Errorf("cannot write in %s: %w", dir, errors.Unwrap(err))
	}
	f.Close()
	return os.Remove(f.Name())
}

// printSession prints one played session's figures: its own, not
// percentiles of one value.
func printSession(w io.Writer, abr string, res player.Result, protocol string) {
	fmt.Fprintf(w, "%s: QoE %.2f, mean %.0f kbit/s, startup %.2fs, %d stalls (%.2fs, rebuffer %.2f %%), %d switches, over %s\n",
		abr, res.QoE, res.MeanBitrate, res.Startup.Seconds(), res.RebufferCount, res.Rebuffer.Seconds(),
		res.RebufferRatio()*100, res.Switches, protocol)
	if res.Abandoned > 0 {
		fmt.Fprintf(w, "%s: %d downloads given up for a lower rendition (%.0f kB of them thrown away)\n", abr, res.Abandoned, float64(res.AbandonedBytes)/1e3)
	}
	if res.Capped > 0 {
		fmt.Fprintf(w, "%s: %d chunks lowered to the bitrate the serving node suggested (CMSD mb, last %d kbit/s)\n", abr, res.Capped, res.ServerCapKbps)
	}
}

// loadStoreVideo reads an asset of an object store library, named by its
// library URL and name (s3://BUCKET/PREFIX/NAME), for the simulator: its
// MPD, with segment sizes from its asset.json.
func loadStoreVideo(ctx context.Context, sf *storeFlags, location string) (*player.Video, error) {
	i := strings.LastIndex(strings.TrimSuffix(location, "/"), "/")
	libURL, name := location[:i], strings.TrimSuffix(location[i+1:], "/")
	if i < len("s3://") || !media.ValidName(name) {
		return nil, fmt.Errorf("video %s: want s3://BUCKET/PREFIX/NAME, an asset of a library: %w", location, errUsage)
	}
	lib, err := sf.open(ctx, libURL)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ver, err := lib.Current(ctx, name, store.Version{})
	if err != nil {
		return nil, fmt.Errorf("video %s: %w", location, err)
	}
	data, err := lib.ReadFile(ctx, ver, media.AssetFile, 64<<20)
	if err != nil {
		return nil, fmt.Errorf("video %s: %w", location, err)
	}
	a, err := media.ParseAsset(data)
	if err != nil {
		return nil, fmt.Errorf("video %s: %w", location, err)
	}
	mpd, err := lib.ReadFile(ctx, ver, media.ManifestFile, 64<<20)
	if err != nil {
		return nil, fmt.Errorf("video %s: %w", location, err)
	}
	return player.VideoFromMPD(mpd, name, func(rel string) (int64, error) {
		id, file, _ := strings.Cut(rel, "/")
		r, ok := a.Rendition(id)
		n, err := strconv.Atoi(strings.TrimSuffix(file, ".m4s"))
		if !ok || err != nil {
			return 0, fmt.Errorf("segment %s: not in asset.json", rel)
		}
		seg, ok := r.Segment(n)
		if !ok {
			return 0, fmt.Errorf("segment %s: not in asset.json", rel)
		}
		return seg.Size, nil
	})
}

// maxScaleFactors bounds sim's -scale list.
const maxScaleFactors = 16

// parseFactors reads sim's -scale: "0.5,1,2" (empty: 1, the traces as
// they are).
func parseFactors(s string) ([]float64, error) {
	if s == "" {
		return []float64{1}, nil
	}
	var out []float64
	for p := range strings.SplitSeq(s, ",") {
		f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		// Each factor is another copy of every trace in memory: a few
		// regimes are what the flag is for.
		if err != nil || !(f > 0) || f > 100 || slices.Contains(out, f) || len(out) == maxScaleFactors {
			return nil, fmt.Errorf("-scale %q: want up to %d distinct factors 0 < F <= 100, comma-separated: %w", s, maxScaleFactors, errUsage)
		}
		out = append(out, f)
	}
	return out, nil
}

// checkSessionID refuses a CMCD session id CTA-5004 does not allow: more
// than 64 characters, or any outside printable ASCII (a Structured Field
// string holds no others).
func checkSessionID(sid string) error {
	if len(sid) > 64 {
		return fmt.Errorf("%d characters: at most 64", len(sid))
	}
	for _, c := range []byte(sid) {
		if c < 0x20 || c > 0x7e {
			return fmt.Errorf("%q: printable ASCII only", sid)
		}
	}
	return nil
}
