package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deepcast/deepcast/edge"
	"github.com/deepcast/deepcast/edge/httpsem/httpsemtest"
	"github.com/deepcast/deepcast/media/mediatest"
	"github.com/deepcast/deepcast/origin"
)

// The fast path answers what it fully understands and hands the rest to
// net/http; so for any bytes a client sends, a server with the fast path
// must answer exactly as one without it (DEEPCAST_FASTPATH=off), Date
// aside. These tests and the fuzz target hold the two to that.

// differentialPair is one node (origin or edge) served three times: behind
// the front's event loops (fast), behind its goroutine per connection
// (goroutines) and by net/http alone (plain), and a segment path of its
// asset.
type differentialPair struct{ fast, goroutines, plain, segment string }

// exchangeRaw writes raw on a new connection to addr, half-closes it, and
// returns everything the server sends until it closes (bounded in time).
func exchangeRaw(addr string, raw []byte) []byte {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return []byte("dial: " + err.Error())
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(8 * time.Second))
	c.Write(raw)
	c.(*net.TCPConn).CloseWrite()
	out, _ := io.ReadAll(c)
	return out
}

// canonical is the responses in b with the Date header left out, each
// header on its own sorted line; what does not parse is kept as is.
func canonical(b []byte, head bool) string {
	var sb strings.Builder
	br := bufio.NewReader(bytes.NewReader(b))
	for {
		if _, err := br.Peek(1); err != nil {
			break
		}
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			rest, _ := io.ReadAll(br)
			fmt.Fprintf(&sb, "unparsed: %q\n", rest)
			break
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		var lines []string
		for k, vs := range resp.Header {
			if k != "Date" {
				lines = append(lines, k+": "+strings.Join(vs, ", "))
			}
		}
		slices.Sort(lines)
		fmt.Fprintf(&sb, "%s\n%s\nbody %d bytes %x err %v\n", resp.Status, strings.Join(lines, "\n"), len(body), body[:min(len(body), 64)], err)
	}
	return sb.String()
}

// startPair serves one origin with and without the fast path until tb
// ends.
func startPair(tb testing.TB) differentialPair {
	tb.Helper()
	return startPairOn(tb, startOrigin(tb, mediatest.CopyLibrary(tb)))
}

// startPairOn serves o with and without the fast path until tb ends.
func startPairOn(tb testing.TB, o *origin.Server) differentialPair {
	tb.Helper()
	return servePair(tb, o, firstSegment(tb, o))
}

// startEdgePair serves one enter-deep node (no prefetch, so its cache
// changes only by what the tests ask; a bitrate cap, so every answer
// carries CMSD-Dynamic) in front of an origin, with and without the fast
// path, until tb ends.
func startEdgePair(tb testing.TB) differentialPair {
	tb.Helper()
	o := startOrigin(tb, mediatest.CopyLibrary(tb))
	ots := httptest.NewServer(o)
	tb.Cleanup(ots.Close)
	noPrefetch := false
	n, err := edge.New(edge.Config{Profile: edge.EnterDeep, Name: "deep", Upstreams: []string{ots.URL}, MemBytes: 32 << 20,
		Prefetch: &noPrefetch, Logger: discard(), Advice: edge.AdviceConfig{MaxBitrateKbps: 4000}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(n.Close)
	return servePair(tb, n, firstSegment(tb, o))
}

// firstSegment is the path of the first segment of o's sample asset.
func firstSegment(tb testing.TB, o *origin.Server) string {
	tb.Helper()
	a, err := o.Catalog().Get(mediatest.AssetName)
	if err != nil {
		tb.Fatal(err)
	}
	return "/vod/" + mediatest.AssetName + "/" + a.Asset.Renditions[0].ID + "/1.m4s"
}

// servePair serves h in the three modes until tb ends.
func servePair(tb testing.TB, h http.Handler, segment string) differentialPair {
	tb.Helper()
	p := differentialPair{segment: segment}
	for _, m := range []struct {
		mode string
		addr *string
	}{{"", &p.fast}, {"goroutines", &p.goroutines}, {"off", &p.plain}} {
		base, stop := startServeMode(tb, h, m.mode)
		tb.Cleanup(func() { stop() })
		*m.addr = strings.TrimPrefix(base, "http://")
	}
	return p
}

// volatileHeader matches what differs between two answers of one edge a
// moment apart: the age of the copy, and the freshness left in
// Cache-Status.
var volatileHeader = regexp.MustCompile(`(?m)^Age: \d+\n|; ttl=-?\d+`)

// compare sends raw to net/http twice (the first fills an edge's cache
// with whatever it fetches from the origin), then to both fronts, and
// reports where a front's answer differs from net/http's second, or where
// a front kept a client that had sent its bytes and closed its side for
// more than 2 s (a lost FIN used to hold such sockets open until the idle
// deadline).
func (p differentialPair) compare(t *testing.T, raw []byte) {
	head := bytes.HasPrefix(raw, []byte("HEAD "))
	exchangeRaw(p.plain, raw)
	plain := volatileHeader.ReplaceAllString(canonical(exchangeRaw(p.plain, raw), head), "")
	for _, front := range []struct{ name, addr string }{{"event loops", p.fast}, {"goroutines", p.goroutines}} {
		start := time.Now()
		fast := volatileHeader.ReplaceAllString(canonical(exchangeRaw(front.addr, raw), head), "")
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%q: the fast path (%s) took %s to answer and close", raw, front.name, d)
		}
		if fast != plain {
			t.Errorf("%q:\nfast path (%s):\n%s\nnet/http:\n%s", raw, front.name, fast, plain)
		}
	}
}

// differentialSeeds are requests at the edges of what the fast path takes.
func differentialSeeds(seg string) []string {
	a := mediatest.AssetName
	return []string{
		"GET " + seg + " HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD " + seg + " HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /vod/" + a + "/manifest.mpd HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET " + seg + " HTTP/1.1\nHost: x\n\n",
		"GET " + seg + " HTTP/1.1\nHost: x\r\n\r\n",
		"GET " + seg + " HTTP/1.1\r\nHost: a b\r\n\r\n",
		"GET " + seg + " HTTP/1.1\r\nHost: a@evil\r\n\r\n",
		"GET " + seg + " HTTP/1.1\r\nHost: x\nContent-Length: 5\r\n\r\nhello",
		"GET " + seg + " HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
		"GET " + seg + " HTTP/1.1\r\n\r\n",
		"GET " + seg + " HTTP/1.0\r\n\r\n",
		"GET " + seg + " HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
		"GET " + seg + "?CMCD=bl%3D100 HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET " + seg + " HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\n\r\n",
		"GET " + seg + " HTTP/1.1\r\nHost: x\r\nCDN-Loop: a; id=1\r\ncdn-loop: b, c\r\n\r\n",
		"GET /vod/" + a + "/manifest.mpd HTTP/1.1\r\nHost: x\r\nCDN-Loop: " + strings.Repeat("a,", 17) + "a\r\n\r\n",
		"GET /vod/" + a + "/../x HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /vod/%2e%2e/manifest.mpd HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET " + seg + " HTTP/1.1\r\nHost: x\r\n\r\nGET /vod/" + a + "/manifest.mpd HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET " + seg + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET " + seg + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET " + seg + " HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
		"GET " + seg + " HTTP/1.1\r\nHost: x\r",
		"GET " + seg + " HTTP/1.1\r\nHo st: x\r\n\r\n",
		"get " + seg + " HTTP/1.1\r\nHost: x\r\n\r\n",
		// A few bytes after a request, then the client's end: net/http
		// waits for 4 bytes of a next request before it answers one.
		"GET " + seg + " HTTP/1.1\r\nHost: x\r\n\r\n00",
		"GET " + seg + " HTTP/1.1\r\nHost: x\r\n\r\n0000",
		"00",
		"GET " + seg + " HTTP/1.1\r\nHost: x\r\n\r\n\n",
		"GET " + seg + " HTTP/1.1\r\nHost: x\r\n\r\n\r\n",
		"GET " + seg + " HTTP/1.1\r\nHost: x\r\n\r\n\r\n\r\n",
		"GET " + seg + " HTTP/1.1\r\nHost: x\r\n\r\n\nGET " + seg + " HTTP/1.1\r\nHost: x\r\n\r\n",
		// Content codings: an edge gzips manifests for clients that take it.
		"GET /vod/" + a + "/manifest.mpd HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip, deflate, br\r\n\r\n",
		"GET /vod/" + a + "/manifest.mpd HTTP/1.1\r\nHost: x\r\nAccept-Encoding: br\r\naccept-encoding: gzip;q=0.5\r\n\r\n",
		"GET /vod/" + a + "/manifest.mpd HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip;q=0, *\r\n\r\n",
		"GET /vod/" + a + "/master.m3u8 HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n",
		"GET " + seg + " HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n",
	}
}

func TestFastPathAnswersExactlyAsNetHTTP(t *testing.T) {
	p := startPair(t)
	for _, raw := range differentialSeeds(p.segment) {
		p.compare(t, []byte(raw))
	}
	p.checkGzipReached(t)
}

// checkGzipReached checks that the seeds reach a node's gzip
// representation of the sample's MPD (long enough to be compressed) on
// both fronts, so the comparison covers it.
func (p differentialPair) checkGzipReached(t *testing.T) {
	gz := "GET /vod/" + mediatest.AssetName + "/manifest.mpd HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"
	for _, addr := range []string{p.fast, p.plain} {
		if got := canonical(exchangeRaw(addr, []byte(gz)), false); !strings.Contains(got, "Content-Encoding: gzip") {
			t.Errorf("%s: the manifest was not gzipped:\n%s", addr, got)
		}
	}
}

// FuzzFastPathMatchesNetHTTP sends the same bytes to the three servers and
// compares the answers.
func FuzzFastPathMatchesNetHTTP(f *testing.F) {
	p := startPair(f)
	for _, s := range differentialSeeds(p.segment) {
		f.Add([]byte(s))
	}
	f.Fuzz(p.compare)
}

// TestTransferCodingClosesTheConnection: with and without the fast path in
// front, the origin answers a GET with Transfer-Encoding and
// Content-Length and closes (RFC 9112 §6.1): the request pipelined after
// it is never answered. So are its ops listener's.
func TestTransferCodingClosesTheConnection(t *testing.T) {
	o := startOrigin(t, mediatest.CopyLibrary(t))
	p := startPairOn(t, o)
	ops := httptest.NewServer(o.OpsHandler())
	defer ops.Close()
	for _, c := range []struct{ name, addr, path string }{
		{"fast path", p.fast, p.segment},
		{"fast path, goroutines", p.goroutines, p.segment},
		{"net/http", p.plain, p.segment},
		{"ops", strings.TrimPrefix(ops.URL, "http://"), "/healthz"},
	} {
		got := httpsemtest.ExchangeUntilClosed(t, c.addr, httpsemtest.Smuggled(c.path))
		if n := strings.Count(got, "200 OK"); n != 1 || !strings.Contains(got, "Connection: close") {
			t.Errorf("%s: %d answers, want 1 with Connection: close:\n%s", c.name, n, got)
		}
	}
}

// TestEdgeFastPathAnswersExactlyAsNetHTTP is the differential test for an
// edge: behind the front or not, it answers every seed alike.
func TestEdgeFastPathAnswersExactlyAsNetHTTP(t *testing.T) {
	p := startEdgePair(t)
	for _, raw := range differentialSeeds(p.segment) {
		p.compare(t, []byte(raw))
	}
	p.checkGzipReached(t)
}

// FuzzEdgeFastPathMatchesNetHTTP is FuzzFastPathMatchesNetHTTP for an edge.
func FuzzEdgeFastPathMatchesNetHTTP(f *testing.F) {
	p := startEdgePair(f)
	for _, s := range differentialSeeds(p.segment) {
		f.Add([]byte(s))
	}
	f.Fuzz(p.compare)
}
