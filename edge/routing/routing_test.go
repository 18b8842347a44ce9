package routing

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/deepcast/deepcast/edge/auth"
	"github.com/deepcast/deepcast/edge/httpsem"
	"github.com/deepcast/deepcast/edge/httpsem/httpsemtest"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// checkEvery is the health interval of the tests: long enough that a busy
// CI machine's scheduling delays are small beside it.
const checkEvery = 300 * time.Millisecond

// within polls cond until it holds, and fails unless that happens within
// two check intervals (plus the time one check may take on a loaded machine).
func within(t *testing.T, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	limit := 2*checkEvery + 400*time.Millisecond
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within two check intervals (%s)", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%s after %s", what, time.Since(start).Round(time.Millisecond))
}

func TestParseEdges(t *testing.T) {
	good := `edges:
  - name: deep-a
    url: http://127.0.0.1:9101
    addresses: [127.0.0.2, "::2"]
    profile: enter-deep
    weight: 1
    subnets: [10.1.0.0/16]
  - name: home-1
    url: http://127.0.0.1:9201/
    addresses: [127.0.0.3]
    profile: bring-home
    weight: 2
`
	edges, err := ParseEdges([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(edges) != 2 || edges[0].Weight != 1 || edges[1].Weight != 2 || len(edges[0].Addresses) != 2 ||
		!edges[0].covers(netip.MustParseAddr("10.1.2.3")) || edges[1].URL.String() != "http://127.0.0.1:9201" {
		t.Errorf("parsed %+v %+v", edges[0], edges[1])
	}
	bad := []struct{ yaml, want string }{
		{"edges: []", "no edges"},
		{"edges:\n  - name: a\n    url: http://x/?region=1\n    addresses: [127.0.0.1]\n    profile: enter-deep\n", "edge 1 (a): field url"},
		{"edges:\n  - name: a\n    url: http://x/#top\n    addresses: [127.0.0.1]\n    profile: enter-deep\n", "edge 1 (a): field url"},
		{"edges:\n  - name: a\n    url: http://u:pw0rd@x/\n    addresses: [127.0.0.1]\n    profile: enter-deep\n", `"http://u:xxxxx@x" is not`},
		{"edges:\n  - name: a\n    url: ftp://x\n    addresses: [127.0.0.1]\n    profile: enter-deep\n", "edge 1 (a): field url"},
		{"edges:\n  - name: a\n    url: http://x\n    addresses: [nope]\n    profile: enter-deep\n", "edge 1 (a): field addresses"},
		{"edges:\n  - name: a\n    url: http://x\n    addresses: [127.0.0.1]\n    profile: deep\n", "edge 1 (a): field profile"},
		{"edges:\n  - name: a\n    url: http://x\n    addresses: [127.0.0.1]\n    profile: bring-home\n    weight: 0\n", "field weight"},
		{"edges:\n  - name: a\n    url: http://x\n    addresses: [127.0.0.1]\n    profile: enter-deep\n    subnets: [10.0.0.0/99]\n", "field subnets"},
		{"edges:\n  - name: a\n    url: http://x\n    addresses: [127.0.0.1]\n    profile: bring-home\n    subnets: [10.0.0.0/8]\n", "only enter-deep"},
		{"edges:\n  - name: a\n    url: http://x\n    addresses: [127.0.0.1]\n    profile: bring-home\n  - name: a\n    url: http://y\n    addresses: [127.0.0.1]\n    profile: bring-home\n", "edge 2 (a): field name"},
		{"edges:\n  - name: a\n    url: http://x\n    adresses: [127.0.0.1]\n", "adresses"},
		{"edges:\n  - url: http://x\n", "edge 1: field name"},
	}
	for _, b := range bad {
		if _, err := ParseEdges([]byte(b.yaml)); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%q: error %v, want %q", b.yaml, err, b.want)
		}
	}
}

// TestZoneMustBeADNSName: a zone no resolver asks for is refused when the
// router is made (it used to serve "video.bad zone.").
func TestZoneMustBeADNSName(t *testing.T) {
	edges := []*Edge{{Name: "e", Profile: BringHome, Weight: 1, Addresses: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, URL: mustURL("http://127.0.0.1:1")}}
	for _, c := range []struct{ zone, want string }{
		{"cdn.deepcast.test", ""},
		{"CDN.Example.", ""},
		{"bad zone", `label "bad zone"`},
		{"a..b", `label ""`},
		{"-x.example", `label "-x"`},
		{".", "want a DNS name"},
		{strings.Repeat("abcdefgh.", 28) + "example", "want a DNS name"},
	} {
		_, err := New(Config{Edges: edges, Zone: c.zone, Logger: quiet()})
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("zone %q: %v, want %q", c.zone, err, c.want)
		}
	}
}

func FuzzParseEdges(f *testing.F) {
	f.Add("edges:\n  - name: a\n    url: http://x\n    addresses: [127.0.0.1]\n    profile: bring-home\n")
	f.Fuzz(func(t *testing.T, s string) {
		edges, err := ParseEdges([]byte(s))
		if err != nil {
			return
		}
		for _, e := range edges {
			if e.Weight < 1 || len(e.Addresses) == 0 || e.URL == nil {
				t.Fatalf("accepted %+v", e)
			}
		}
	})
}

func states(edges ...*Edge) []*EdgeState {
	var out []*EdgeState
	for _, e := range edges {
		out = append(out, &EdgeState{Edge: e, up: true})
	}
	return out
}

func edge(name, profile string, weight int, subnets ...string) *Edge {
	e := &Edge{Name: name, Profile: profile, Weight: weight, Addresses: []netip.Addr{netip.MustParseAddr("127.0.0.9")}}
	for _, s := range subnets {
		e.Subnets = append(e.Subnets, netip.MustParsePrefix(s))
	}
	return e
}

func TestStrategies(t *testing.T) {
	es := states(edge("deep-a", EnterDeep, 1, "10.1.0.0/16"), edge("deep-b", EnterDeep, 1, "10.2.0.0/16"),
		edge("home-1", BringHome, 2), edge("home-2", BringHome, 1))
	es[2].load, es[3].load = 100, 10 // per weight: home-1 50, home-2 10
	near := Nearest{}
	if got := near.Rank(netip.MustParseAddr("10.1.7.7"), es); got[0].Name != "deep-a" {
		t.Errorf("nearest in zone: %s", got[0].Name)
	}
	if got := near.Rank(netip.MustParseAddr("192.0.2.1"), es); got[0].Name != "home-2" || len(got) != 2 {
		t.Errorf("nearest outside every zone: %v", names(got))
	}
	if got := (LeastLoad{}).Rank(netip.Addr{}, es); got[0].Load() > got[len(got)-1].Load() {
		t.Errorf("least-load order %v", names(got))
	}
	rr := &RoundRobin{}
	counts := map[string]int{}
	for range 500 {
		counts[rr.Rank(netip.Addr{}, es)[0].Name]++
	}
	// Weights 1, 1, 2, 1 out of 5.
	if counts["home-1"] != 200 || counts["deep-a"] != 100 || counts["home-2"] != 100 {
		t.Errorf("weighted round robin: %v", counts)
	}
}

func names(es []*EdgeState) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	return out
}

func TestIPHashSpreadAndStability(t *testing.T) {
	es := states(edge("a", BringHome, 1), edge("b", BringHome, 1), edge("c", BringHome, 2), edge("d", BringHome, 1))
	const n = 10000
	counts := map[string]int{}
	first := map[int]string{}
	h := IPHash{}
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		e := h.Rank(a, es)[0].Name
		counts[e]++
		first[i] = e
		if again := h.Rank(a, es)[0].Name; again != e {
			t.Fatal("a viewer does not stick to one edge")
		}
	}
	weights := map[string]float64{"a": 1, "b": 1, "c": 2, "d": 1}
	for name, w := range weights {
		want := n * w / 5
		if got := float64(counts[name]); got < want*0.9 || got > want*1.1 {
			t.Errorf("edge %s got %d viewers, want %.0f ±10%%", name, counts[name], want)
		}
	}
	without := []*EdgeState{es[0], es[1], es[2]} // d (weight 1 of 5) removed
	moved := 0
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		e := h.Rank(a, without)[0].Name
		if e != first[i] {
			moved++
			if first[i] != "d" {
				t.Fatalf("viewer %d moved from live edge %s", i, first[i])
			}
		}
	}
	if moved > n*30/100 {
		t.Errorf("removing one of four edges remapped %d of %d viewers (> 30%%)", moved, n)
	}
	t.Logf("spread %v; removing d remapped %.1f%%", counts, 100*float64(moved)/n)
}

// fakeEdge is an edge whose health the test controls.
type fakeEdge struct {
	srv   *httptest.Server
	alive atomic.Bool
	reqs  atomic.Int64
}

func newFakeEdge(t *testing.T, mpd string) *fakeEdge {
	f := &fakeEdge{}
	f.alive.Store(true)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !f.alive.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		switch {
		case r.URL.Path == "/healthz":
			w.Write([]byte("ok"))
		case r.URL.Path == "/api/stats":
			fmt.Fprintf(w, `{"requests": %d, "hitRatio": 0.5}`, f.reqs.Load())
		case strings.HasSuffix(r.URL.Path, "/manifest.mpd"):
			f.reqs.Add(1)
			w.Write([]byte(mpd))
		default:
			f.reqs.Add(1)
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

const testMPD = `<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT4S" minBufferTime="PT2S" profiles="urn:mpeg:dash:profile:isoff-live:2011"><Period><AdaptationSet contentType="video" mimeType="video/mp4"><SegmentTemplate media="$RepresentationID$/$Number$.m4s" initialization="$RepresentationID$/init.mp4" duration="2" timescale="1"/><Representation id="v" bandwidth="100000"/></AdaptationSet></Period></MPD>`

type testSetup struct {
	router     *Router
	deep, home *fakeEdge
	dnsAddr    string
	http       *httptest.Server
}

func setup(t *testing.T, strategy string) testSetup {
	return setupServing(t, strategy, testMPD)
}

// setupServing is setup with edges that serve mpd as every manifest.
func setupServing(t *testing.T, strategy, mpd string) testSetup {
	deep, home := newFakeEdge(t, mpd), newFakeEdge(t, mpd)
	yaml := fmt.Sprintf(`edges:
  - name: deep-a
    url: %s
    addresses: [127.0.0.2]
    profile: enter-deep
    subnets: [10.1.0.0/16]
  - name: home-1
    url: %s
    addresses: [127.0.0.3, "::3"]
    profile: bring-home
    weight: 2
`, deep.srv.URL, home.srv.URL)
	edges, err := ParseEdges([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Edges: edges, Strategy: strategy, Zone: "cdn.deepcast.test", Check: checkEvery, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go r.Run(ctx)
	addr := serveDNS(t, ctx, r)
	hs := httptest.NewServer(r)
	t.Cleanup(hs.Close)
	return testSetup{router: r, deep: deep, home: home, dnsAddr: addr, http: hs}
}

func query(t *testing.T, addr, name string, qtype uint16, ecs string, net string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	if ecs != "" {
		p := netip.MustParsePrefix(ecs)
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(1232)
		family := uint16(1)
		if p.Addr().Is6() {
			family = 2
		}
		o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: family, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
		m.Extra = append(m.Extra, o)
	}
	c := &dns.Client{Net: net, Timeout: 2 * time.Second}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("query %s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return resp
}

func firstA(m *dns.Msg) string {
	for _, rr := range m.Answer {
		switch a := rr.(type) {
		case *dns.A:
			return a.A.String()
		case *dns.AAAA:
			return a.AAAA.String()
		}
	}
	return ""
}

func TestDNSAnswersFollowStrategyECSAndHealth(t *testing.T) {
	s := setup(t, "nearest")
	svc := "video.cdn.deepcast.test."
	// Without ECS the resolver's address (127.0.0.1) is outside every zone.
	if got := firstA(query(t, s.dnsAddr, svc, dns.TypeA, "", "udp")); got != "127.0.0.3" {
		t.Errorf("no ECS: %s, want the bring-home edge", got)
	}
	// ECS from the enter-deep edge's coverage zone changes the answer.
	resp := query(t, s.dnsAddr, svc, dns.TypeA, "10.1.20.0/24", "udp")
	if got := firstA(resp); got != "127.0.0.2" {
		t.Errorf("ECS in 10.1.0.0/16: %s, want deep-a", got)
	}
	if !resp.Authoritative || resp.Answer[0].Header().Ttl > 30 {
		t.Errorf("want an authoritative, short-TTL answer: %v", resp)
	}
	if opt := resp.IsEdns0(); opt == nil || len(opt.Option) == 0 {
		t.Error("ECS option not echoed")
	}
	if got := firstA(query(t, s.dnsAddr, svc, dns.TypeAAAA, "10.1.20.0/24", "tcp")); got != "::3" {
		t.Errorf("AAAA over TCP: %s, want home-1's IPv6 (deep-a has none)", got)
	}
	// Kill deep-a: gone from answers within two check intervals.
	s.deep.alive.Store(false)
	within(t, "deep-a left the answers", func() bool {
		return firstA(query(t, s.dnsAddr, svc, dns.TypeA, "10.1.20.0/24", "udp")) == "127.0.0.3"
	})
	s.deep.alive.Store(true)
	within(t, "deep-a back in the answers", func() bool {
		return firstA(query(t, s.dnsAddr, svc, dns.TypeA, "10.1.20.0/24", "udp")) == "127.0.0.2"
	})
}

// TestDNSAnswersABurst: queries sent back to back from one socket, more
// than the server takes from the kernel in one call, each get their own
// answer once, and a malformed one among them gets FORMERR without
// costing the others theirs.
func TestDNSAnswersABurst(t *testing.T) {
	s := setup(t, "nearest")
	t.Run("IPv4", func(t *testing.T) { burst(t, s.dnsAddr) })
	t.Run("IPv6", func(t *testing.T) {
		if ln, err := net.ListenPacket("udp", "[::1]:0"); err != nil {
			t.Skipf("no IPv6 loopback here: %v", err)
		} else {
			ln.Close()
		}
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		burst(t, serveDNSAt(t, ctx, s.router, "[::1]:0"))
	})
}

// burst sends the queries of TestDNSAnswersABurst to the server at addr
// and checks the answers.
func burst(t *testing.T, addr string) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const burst = 3*udpBatch + 5
	const malformed = udpBatch + 1 // the ID of a query whose question is cut
	for id := range uint16(burst) {
		m := new(dns.Msg)
		m.SetQuestion("video.cdn.deepcast.test.", dns.TypeA)
		if id%2 == 1 { // half from the enter-deep edge's coverage
			o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
			o.SetUDPSize(1232)
			o.Option = append(o.Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.IPv4(10, 1, 20, 0).To4()})
			m.Extra = append(m.Extra, o)
		}
		m.Id = id
		pkt, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		if id == malformed {
			pkt = pkt[:len(pkt)-3]
		}
		if _, err := c.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint16]bool{}
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for len(seen) < burst {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("%d of %d answers: %v", len(seen), burst, err)
		}
		resp := new(dns.Msg)
		if err := resp.Unpack(buf[:n]); err != nil {
			t.Fatalf("answer does not parse: %v", err)
		}
		if seen[resp.Id] {
			t.Fatalf("query %d answered twice", resp.Id)
		}
		seen[resp.Id] = true
		want := "127.0.0.3"
		if resp.Id%2 == 1 {
			want = "127.0.0.2"
		}
		switch {
		case resp.Id == malformed:
			if resp.Rcode != dns.RcodeFormatError {
				t.Errorf("the cut query: rcode %s, want FORMERR", dns.RcodeToString[resp.Rcode])
			}
		case resp.Id >= burst:
			t.Fatalf("answer to query %d, never sent", resp.Id)
		case firstA(resp) != want:
			t.Errorf("query %d: %s, want %s", resp.Id, firstA(resp), want)
		}
	}
}

func TestDNSZoneRules(t *testing.T) {
	s := setup(t, "round-robin")
	if r := query(t, s.dnsAddr, "example.com.", dns.TypeA, "", "udp"); r.Rcode != dns.RcodeRefused || len(r.Answer) != 0 {
		t.Errorf("out of zone: %s", dns.RcodeToString[r.Rcode])
	}
	if r := query(t, s.dnsAddr, "cdn.deepcast.test.", dns.TypeSOA, "", "udp"); len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeSOA {
		t.Errorf("SOA: %v", r)
	}
	if r := query(t, s.dnsAddr, "cdn.deepcast.test.", dns.TypeNS, "", "tcp"); len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeNS {
		t.Errorf("NS: %v", r)
	}
	if r := query(t, s.dnsAddr, "nope.cdn.deepcast.test.", dns.TypeA, "", "udp"); r.Rcode != dns.RcodeNameError {
		t.Errorf("unknown name: %s", dns.RcodeToString[r.Rcode])
	}
	r := query(t, s.dnsAddr, "video.cdn.deepcast.test.", dns.TypeANY, "", "udp")
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == dns.TypeA || rr.Header().Rrtype == dns.TypeAAAA {
			t.Errorf("ANY answered with addresses: %v", r.Answer)
		}
	}
}

func TestDNSNeverAnswersLargerThanAsked(t *testing.T) {
	var addrs []netip.Addr
	for i := range 60 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{127, 0, 1, byte(i + 1)}))
	}
	r, _ := New(Config{Edges: []*Edge{{Name: "big", Profile: BringHome, Weight: 1, Addresses: addrs, URL: mustURL("http://127.0.0.1:1")}},
		Zone: "z.test.", Logger: quiet()})
	req := new(dns.Msg)
	req.SetQuestion("video.z.test.", dns.TypeA)
	full := r.Answer(req, netip.MustParseAddr("127.0.0.1"))
	if full.Len() <= 512 {
		t.Fatalf("test needs an answer over 512 bytes, got %d", full.Len())
	}
	// Through the UDP path: truncated to 512 with TC set.
	w := &capture{remote: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5353}}
	r.ServeDNS(w, req)
	if w.msg == nil || !w.msg.Truncated {
		t.Fatal("oversized UDP answer not truncated")
	}
	if packed, _ := w.msg.Pack(); len(packed) > 512 {
		t.Errorf("UDP answer of %d bytes to a 512-byte query", len(packed))
	}
}

type capture struct {
	dns.ResponseWriter
	remote net.Addr
	msg    *dns.Msg
}

func (c *capture) RemoteAddr() net.Addr      { return c.remote }
func (c *capture) WriteMsg(m *dns.Msg) error { c.msg = m; return nil }

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

func FuzzDNSAnswer(f *testing.F) {
	r, _ := New(Config{Edges: []*Edge{edge("h", BringHome, 1)}, Zone: "cdn.deepcast.test.", Logger: quiet()})
	r.Monitor.Edges[0].Edge.URL = mustURL("http://127.0.0.1:1")
	q := new(dns.Msg)
	q.SetQuestion("video.cdn.deepcast.test.", dns.TypeA)
	q.SetEdns0(1232, false)
	packed, _ := q.Pack()
	f.Add(packed)
	f.Add([]byte{0, 1, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		resp, ok := r.answerPacket(data, netip.MustParseAddr("192.0.2.1"))
		if !ok {
			return
		}
		packed, err := resp.Pack()
		if err != nil {
			t.Fatalf("answer does not pack: %v", err)
		}
		req := new(dns.Msg)
		limit := 512
		if req.Unpack(data) == nil && req.IsEdns0() != nil {
			limit = maxUDPSize
		}
		if len(packed) > limit {
			t.Fatalf("%d-byte answer to a query that allows %d", len(packed), limit)
		}
	})
}

func TestHTTPRedirectBaseURLAndSteering(t *testing.T) {
	s := setup(t, "ip-hash")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(s.http.URL + "/vod/clip/v/3.m4s?CMCD=bl%3D100")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 302 || !strings.HasSuffix(loc, "/vod/clip/v/3.m4s?CMCD=bl%3D100") ||
		!(strings.HasPrefix(loc, s.deep.srv.URL) || strings.HasPrefix(loc, s.home.srv.URL)) {
		t.Errorf("redirect: %d %q", resp.StatusCode, loc)
	}
	resp, err = client.Get(s.http.URL + "/vod/clip/manifest.mpd?route=baseurl")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	chosen := resp.Header.Get("X-Deepcast-Edge")
	want := s.home.srv.URL
	if chosen == "deep-a" {
		want = s.deep.srv.URL
	}
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<BaseURL>"+want+"/vod/clip/</BaseURL>") {
		t.Errorf("baseurl mode: %d %s", resp.StatusCode, body)
	}
	resp, _ = client.Get(s.http.URL + "/vod/clip/manifest.mpd?route=steering")
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, w := range []string{`serviceLocation="deep-a"`, `serviceLocation="home-1"`, "<ContentSteering", "/steering?asset=clip"} {
		if !strings.Contains(string(body), w) {
			t.Errorf("steering MPD lacks %s:\n%s", w, body)
		}
	}
	var sm steeringManifest
	resp, _ = client.Get(s.http.URL + "/steering?asset=clip&_DASH_pathway=deep-a&_DASH_throughput=5000")
	json.NewDecoder(resp.Body).Decode(&sm)
	resp.Body.Close()
	if sm.Version != 1 || sm.TTL <= 0 || len(sm.Priority) != 2 || strings.Contains(sm.Reload, "_DASH_pathway") || !strings.Contains(sm.Reload, "/steering?asset=clip") {
		t.Errorf("steering manifest: %+v", sm)
	}
	// A dead edge leaves the priority list.
	s.deep.alive.Store(false)
	within(t, "deep-a left the steering priorities", func() bool {
		resp, err := client.Get(s.http.URL + "/steering?asset=clip")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var m steeringManifest
		json.NewDecoder(resp.Body).Decode(&m)
		return len(m.Priority) == 1 && m.Priority[0] == "home-1"
	})
	// Every redirect now goes to the live edge.
	for range 20 {
		resp, _ := client.Get(s.http.URL + "/vod/clip/v/1.m4s")
		resp.Body.Close()
		if !strings.HasPrefix(resp.Header.Get("Location"), s.home.srv.URL) {
			t.Fatalf("redirect to a dead edge: %s", resp.Header.Get("Location"))
		}
	}
	resp, _ = client.Get(s.http.URL + "/metrics")
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, w := range []string{"deepcast_router_decisions_total", `deepcast_router_edge_up{edge="deep-a"} 0`} {
		if !strings.Contains(string(body), w) {
			t.Errorf("metrics lack %s", w)
		}
	}
}

// TestRewrittenManifestsAreGzipped: a rewritten MPD of 1 KiB or more goes
// out gzipped to a client that takes gzip, the same document as the
// identity answer, and as identity to one that does not.
func TestRewrittenManifestsAreGzipped(t *testing.T) {
	var reps strings.Builder
	for i := range 12 {
		fmt.Fprintf(&reps, `<Representation id="v%d" bandwidth="%d" width="1280" height="720" codecs="avc1.64001f"/>`, i, 100000*(i+1))
	}
	mpd := strings.Replace(testMPD, `<Representation id="v" bandwidth="100000"/>`, reps.String(), 1)
	s := setupServing(t, "ip-hash", mpd)
	get := func(route, acceptEncoding string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, s.http.URL+"/vod/clip/manifest.mpd?route="+route, nil)
		req.Header.Set("Accept-Encoding", acceptEncoding) // set: the transport leaves the body as sent
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	for _, route := range []string{"baseurl", "steering"} {
		plain, doc := get(route, "identity")
		if plain.StatusCode != 200 || plain.Header.Get("Content-Encoding") != "" || len(doc) < httpsem.MinGzip {
			t.Fatalf("%s, identity: %d, Content-Encoding %q, %d bytes; want 200, none, at least %d", route, plain.StatusCode, plain.Header.Get("Content-Encoding"), len(doc), httpsem.MinGzip)
		}
		for _, ae := range []string{"gzip", "br;q=1, gzip;q=0.5", "*"} {
			resp, body := get(route, ae)
			if resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Vary") != "Accept-Encoding" ||
				resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
				t.Errorf("%s, Accept-Encoding %q: Content-Encoding %q, Vary %q, Content-Length %s for %d bytes; want gzip, Accept-Encoding, the length sent",
					route, ae, resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"), resp.Header.Get("Content-Length"), len(body))
				continue
			}
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatalf("%s: not gzip: %v", route, err)
			}
			got, err := io.ReadAll(zr)
			if err != nil {
				t.Fatalf("%s: broken gzip: %v", route, err)
			}
			// The edge chosen may differ between requests; the document
			// is otherwise the same.
			if len(body) >= len(doc) || !strings.Contains(string(got), "<ContentSteering") && route == "steering" ||
				strings.Count(string(got), "<Representation") != 12 {
				t.Errorf("%s, Accept-Encoding %q: %d gzip bytes for a %d-byte document that decodes to:\n%s", route, ae, len(body), len(doc), got)
			}
		}
		if resp, _ := get(route, "gzip;q=0, identity"); resp.Header.Get("Content-Encoding") != "" {
			t.Errorf("%s: gzip;q=0 was answered with Content-Encoding %q", route, resp.Header.Get("Content-Encoding"))
		}
	}
}

// TestRouterPathRules: the router sends on what the edges serve, asset
// names with dots inside included, and refuses dot segments and names the
// library cannot have.
func TestRouterPathRules(t *testing.T) {
	s := setup(t, "ip-hash")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, c := range []struct {
		path string
		want int
	}{
		{"/vod/clip/manifest.mpd", http.StatusFound},
		{"/vod/a..b/manifest.mpd", http.StatusFound},
		{"/vod/clip/v..1/1.m4s", http.StatusFound},
		{"/vod/clip/%2e%2e/%2e%2e/etc/passwd", http.StatusNotFound},
		{"/vod/clip/./1.m4s", http.StatusTemporaryRedirect}, // net/http's mux: to the clean path
		{"/vod/.versions/manifest.mpd", http.StatusNotFound},
		{"/vod/%2e%2e/manifest.mpd", http.StatusNotFound},
	} {
		req, err := http.NewRequest(http.MethodGet, s.http.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = c.path // sent as written, dot segments and escapes kept
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", c.path, resp.StatusCode, c.want)
		}
	}
}

// TestDNSRefusesMalformedECSAndOtherEDNSVersions: an ECS option with
// address bits past its source prefix, a scope in a query or a prefix
// longer than the family's addresses is FORMERR (RFC 7871, 7.1.2); EDNS
// version 1 is BADVERS with an OPT of version 0 (RFC 6891, 6.1.3).
func TestDNSRefusesMalformedECSAndOtherEDNSVersions(t *testing.T) {
	s := setup(t, "nearest")
	svc := "video.cdn.deepcast.test."
	// The option goes out as raw bytes: miekg/dns masks an address when
	// it packs one, and a hostile resolver does not.
	exchange := func(version uint8, ecs *dns.EDNS0_SUBNET) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(svc, dns.TypeA)
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(1232)
		o.SetVersion(version)
		if ecs != nil {
			raw := []byte{byte(ecs.Family >> 8), byte(ecs.Family), ecs.SourceNetmask, ecs.SourceScope}
			raw = append(raw, ecs.Address...) // as given: a hostile resolver may send more than the prefix
			o.Option = append(o.Option, &dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: raw})
		}
		m.Extra = append(m.Extra, o)
		resp, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(m, s.dnsAddr)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	v4 := func(a string) net.IP { return net.ParseIP(a).To4() }
	for _, c := range []struct {
		name    string
		version uint8
		ecs     *dns.EDNS0_SUBNET
		rcode   int
	}{
		{"host bits set", 0, &dns.EDNS0_SUBNET{Family: 1, SourceNetmask: 8, Address: v4("10.1.2.255")}, dns.RcodeFormatError},
		{"scope in a query", 0, &dns.EDNS0_SUBNET{Family: 1, SourceNetmask: 24, SourceScope: 16, Address: v4("10.1.2.0")[:3]}, dns.RcodeFormatError},
		{"v6 host bits", 0, &dns.EDNS0_SUBNET{Family: 2, SourceNetmask: 48, Address: net.ParseIP("2001:db8:1:2::1")}, dns.RcodeFormatError},
		{"well-formed", 0, &dns.EDNS0_SUBNET{Family: 1, SourceNetmask: 24, Address: v4("10.1.2.0")[:3]}, dns.RcodeSuccess},
		{"prefix zero", 0, &dns.EDNS0_SUBNET{Family: 0, SourceNetmask: 0}, dns.RcodeSuccess},
		{"EDNS version 1", 1, nil, dns.RcodeBadVers},
	} {
		resp := exchange(c.version, c.ecs)
		if resp.Rcode != c.rcode {
			t.Errorf("%s: rcode %s, want %s", c.name, dns.RcodeToString[resp.Rcode], dns.RcodeToString[c.rcode])
		}
		if c.rcode != dns.RcodeSuccess && len(resp.Answer) > 0 {
			t.Errorf("%s: answered %v", c.name, resp.Answer)
		}
		if opt := resp.IsEdns0(); opt == nil || opt.Version() != 0 {
			t.Errorf("%s: response OPT %v, want one of version 0", c.name, opt)
		}
	}
}

// TestPrivateStatsDoNotTakeAnEdgeDown: an edge on a public listener keeps
// /api/stats behind its -metrics-token; it is up while /healthz answers,
// and the router reads its load with -edge-token.
func TestPrivateStatsDoNotTakeAnEdgeDown(t *testing.T) {
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz":
			w.Write([]byte("ok"))
		case r.URL.Path == "/api/stats" && r.Header.Get("Authorization") == "Bearer tok":
			fmt.Fprintf(w, `{"requests": %d, "hitRatio": 0.5}`, requests.Add(100))
		default:
			http.Error(w, "missing bearer token", http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	edges, err := ParseEdges([]byte("edges:\n  - {name: e, url: " + srv.URL + ", addresses: [127.0.0.1], profile: enter-deep}\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{"", "tok"} {
		m := NewMonitor(edges, 100*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
		m.StatsToken = token
		for range 3 {
			m.CheckAll(context.Background())
			time.Sleep(10 * time.Millisecond)
		}
		e := m.Edges[0]
		if !e.Up() {
			t.Errorf("token %q: an edge whose stats are private went down", token)
		}
		if loaded := e.Load() > 0; loaded != (token == "tok") {
			t.Errorf("token %q: load %.1f", token, e.Load())
		}
	}
}

// TestRouterHandsOutTokens: with a token issuer, a 302 for a manifest
// carries a CAT for the asset's folder that an edge's checker accepts for
// the asset and refuses for another; segments and requests that already
// carry a token get none.
func TestRouterHandsOutTokens(t *testing.T) {
	s := setup(t, "ip-hash")
	key, _ := auth.NewKey("router", "HS256")
	s.router.cfg.Tokens = &TokenIssuer{Key: key, TTL: time.Hour, Renew: 5 * time.Minute, Issuer: "router", Audience: []string{"edges"}}
	checker, _ := auth.NewCAT(auth.CATConfig{Keys: []*auth.Key{key}, Issuer: "router", Audience: []string{"edges"}})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	location := func(path string) *url.URL {
		t.Helper()
		resp, err := client.Get(s.http.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		u, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != 302 || err != nil {
			t.Fatalf("GET %s: %d %q", path, resp.StatusCode, resp.Header.Get("Location"))
		}
		return u
	}
	for _, p := range []string{"/vod/clip/manifest.mpd", "/vod/clip/master.m3u8?CMCD=x"} {
		u := location(p)
		tok := u.Query().Get(auth.QueryParam)
		if tok == "" {
			t.Fatalf("%s: no token in %s", p, u)
		}
		cl, err := checker.Verify(tok)
		if err != nil || cl.Renewal == nil || cl.Expires < time.Now().Add(50*time.Minute).Unix() {
			t.Fatalf("%s: token %v %+v", p, err, cl)
		}
		seg := &auth.Request{Method: "GET", Path: "/vod/clip/v/1.m4s", Header: tok}
		if d := checker.Check(seg); !d.Allowed() {
			t.Errorf("the router's token is refused for its asset: %+v", d)
		}
		seg.Path = "/vod/other/v/1.m4s"
		if d := checker.Check(seg); d.Allowed() {
			t.Error("the router's token opens another asset")
		}
	}
	if u := location("/vod/clip/v/1.m4s"); u.Query().Has(auth.QueryParam) {
		t.Errorf("a segment redirect got a token: %s", u)
	}
	if u := location("/vod/clip/manifest.mpd?cat=mine"); u.Query()[auth.QueryParam][0] != "mine" || len(u.Query()[auth.QueryParam]) != 1 {
		t.Errorf("a request with a token got another: %s", u)
	}
}

// TestTransferCodingClosesTheConnection: a request with Transfer-Encoding
// and Content-Length is answered and the connection closed (RFC 9112
// §6.1), so the request pipelined after it is never read.
func TestTransferCodingClosesTheConnection(t *testing.T) {
	s := setup(t, "ip-hash")
	out := httpsemtest.ExchangeUntilClosed(t, s.http.Listener.Addr().String(), httpsemtest.Smuggled("/healthz"))
	if n := strings.Count(out, "HTTP/1.1 200"); n != 1 || !strings.Contains(out, "Connection: close") {
		t.Errorf("%d answers, want 1 with Connection: close: %q", n, out)
	}
}

// serveDNS serves r's DNS on a port the kernel picks and returns its
// address once it answers.
func serveDNS(t *testing.T, ctx context.Context, r *Router) string {
	t.Helper()
	return serveDNSAt(t, ctx, r, "127.0.0.1:0")
}

// serveDNSAt is serveDNS on addr.
func serveDNSAt(t *testing.T, ctx context.Context, r *Router, addr string) string {
	t.Helper()
	ready, errc := make(chan string, 1), make(chan error, 1)
	go func() { errc <- r.ServeDNSOn(ctx, addr, ready) }()
	select {
	case addr := <-ready:
		return addr
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("DNS never listened")
	}
	return ""
}

// TestDNSListensOnBothOrNeither: a port taken for TCP fails the DNS server
// with an error that says so, and lets its UDP sockets go.
func TestDNSListensOnBothOrNeither(t *testing.T) {
	r := setup(t, "nearest").router
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = r.ServeDNSOn(ctx, taken.Addr().String(), make(chan string, 1))
	if err == nil || !strings.Contains(err.Error(), "listen tcp") {
		t.Fatalf("DNS on a port taken for TCP: %v", err)
	}
	pc, err := net.ListenPacket("udp", taken.Addr().String())
	if err != nil {
		t.Fatalf("the UDP port was kept after the failure: %v", err)
	}
	pc.Close()
	// Any port: both listen, on one port.
	addr := serveDNS(t, ctx, r)
	if m := query(t, addr, "cdn.deepcast.test", dns.TypeSOA, "", "tcp"); m == nil {
		t.Fatal("no answer over TCP")
	}
}
