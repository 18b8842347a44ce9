package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deepcast/deepcast/edge"
	"github.com/deepcast/deepcast/edge/auth"
	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/mediatest"
)

// protectedEdge starts an enter-deep node checking CAT tokens made with
// key, in front of an origin on lib whose /vod/ requests are logged,
// behind serve in the given fast-path mode ("" fast path, "off" net/http).
func protectedEdge(t *testing.T, lib string, key *auth.Key, mode string) (base string, up *queryLog, n *edge.Node) {
	t.Helper()
	checker, err := auth.NewCAT(auth.CATConfig{Keys: []*auth.Key{key}, Issuer: "deepcast-test"})
	if err != nil {
		t.Fatal(err)
	}
	up = &queryLog{h: startOrigin(t, lib)}
	ots := httptest.NewServer(up)
	t.Cleanup(ots.Close)
	no := false
	n, err = edge.New(edge.Config{Profile: edge.EnterDeep, Name: "deep", Upstreams: []string{ots.URL}, MemBytes: 32 << 20,
		Prefetch: &no, Logger: discard(), Auth: checker})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	base, stop := startServeMode(t, n, mode)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return base, up, n
}

// TestEdgeChecksAccessTokens: an edge with -auth cat refuses requests
// without a valid token (401/403, the reason in a header, nothing sent
// upstream, counted by reason), serves valid ones from cache as before,
// turns a token in the manifest's URL into a session cookie for the
// segments, renews a token in its last minute, and never lets the token
// into a cache key or an upstream request; the same through the fast
// path and through net/http.
func TestEdgeChecksAccessTokens(t *testing.T) {
	lib := mediatest.Library(t)
	a, err := media.LoadAsset(filepath.Join(lib, mediatest.AssetName))
	if err != nil {
		t.Fatal(err)
	}
	seg := fmt.Sprintf("/vod/%s/%s/1.m4s", a.Name, a.Renditions[0].ID)
	mpd := "/vod/" + a.Name + "/manifest.mpd"
	want, err := os.ReadFile(filepath.Join(lib, a.Name, a.Renditions[0].ID, "1.m4s"))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := auth.NewKey("k1", "HS256")
	mint := func(spec auth.TokenSpec) string {
		if spec.Issuer == "" {
			spec.Issuer = "deepcast-test"
		}
		if spec.Expires.IsZero() {
			spec.Expires = time.Now().Add(time.Hour)
		}
		tok, err := auth.Mint(key, spec)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := mint(auth.TokenSpec{PathPrefix: "/vod/" + a.Name + "/"})
	for _, mode := range []string{"", "off"} {
		name := map[string]string{"": "fastpath", "off": "net/http"}[mode]
		t.Run(name, func(t *testing.T) {
			base, up, node := protectedEdge(t, lib, key, mode)
			client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			get := func(target string, hdr ...string) (*http.Response, []byte) {
				t.Helper()
				req, _ := http.NewRequest(http.MethodGet, base+target, nil)
				for i := 0; i+1 < len(hdr); i += 2 {
					req.Header.Set(hdr[i], hdr[i+1])
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp, b
			}
			refusals := []struct {
				name, target string
				hdr          []string
				status       int
				reason       string
			}{
				{"no token", seg, nil, 401, "missing"},
				{"garbage", seg, []string{auth.HeaderName, "not-a-token"}, 401, "malformed"},
				{"expired", seg, []string{auth.HeaderName, mint(auth.TokenSpec{IssuedAt: time.Now().Add(-2 * time.Hour), Expires: time.Now().Add(-time.Hour)})}, 401, "expired"},
				{"other issuer", seg, []string{auth.HeaderName, mint(auth.TokenSpec{Issuer: "someone"})}, 401, "issuer"},
				{"other asset", seg, []string{auth.HeaderName, mint(auth.TokenSpec{PathPrefix: "/vod/other/"})}, 403, "uri"},
				{"other key", seg, []string{auth.HeaderName, func() string {
					k2, _ := auth.NewKey("k1", "HS256") // same id, other secret
					tok, _ := auth.Mint(k2, auth.TokenSpec{Issuer: "deepcast-test", Expires: time.Now().Add(time.Hour)})
					return tok
				}()}, 401, "signature"},
				{"bad query token", seg + "?cat=AAAA", nil, 401, "malformed"},
			}
			for _, r := range refusals {
				resp, _ := get(r.target, r.hdr...)
				if resp.StatusCode != r.status || resp.Header.Get("X-Deepcast-Auth") != r.reason {
					t.Errorf("%s: %d %q, want %d %q", r.name, resp.StatusCode, resp.Header.Get("X-Deepcast-Auth"), r.status, r.reason)
				}
				if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("%s: Cache-Control %q on a refusal", r.name, cc)
				}
			}
			if n := len(up.targets()); n != 0 {
				t.Fatalf("refused requests reached the origin %d times: %v", n, up.targets())
			}

			// A valid token in the header: the segment, then a hit.
			for i, wantCache := range []string{"miss", "hit"} {
				resp, body := get(seg, auth.HeaderName, good)
				if resp.StatusCode != 200 || string(body) != string(want) {
					t.Fatalf("segment with a token (%d): %d, %d bytes", i, resp.StatusCode, len(body))
				}
				if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, wantCache) {
					t.Errorf("request %d: Cache-Status %q, want %s", i, cs, wantCache)
				}
				if resp.Header.Get("Set-Cookie") != "" {
					t.Errorf("a header token got a Set-Cookie")
				}
			}

			// A token in the manifest's URL: a session cookie for the asset.
			resp, _ := get(mpd + "?cat=" + good)
			cookie := resp.Header.Get("Set-Cookie")
			if resp.StatusCode != 200 || !strings.HasPrefix(cookie, auth.CookieName+"="+good+";") || !strings.Contains(cookie, "Path=/vod/"+a.Name+"/") ||
				!strings.Contains(cookie, "HttpOnly") {
				t.Fatalf("manifest with ?cat=: %d, Set-Cookie %q", resp.StatusCode, cookie)
			}
			resp, body := get(seg, "Cookie", auth.CookieName+"="+good)
			if resp.StatusCode != 200 || string(body) != string(want) {
				t.Fatalf("segment with the session cookie: %d", resp.StatusCode)
			}
			// The token query is neither a cache key (a hit) nor sent upstream.
			resp, _ = get(seg + "?cat=" + good)
			if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
				t.Errorf("segment with ?cat=: %d, Cache-Status %q (the token must not split the cache key)", resp.StatusCode, resp.Header.Get("Cache-Status"))
			}
			for _, target := range up.targets() {
				if strings.Contains(target, "cat=") {
					t.Errorf("the token went upstream: %s", target)
				}
			}

			// A token in its last minute (catr): a fresh one comes back.
			renewable := mint(auth.TokenSpec{PathPrefix: "/vod/" + a.Name + "/", IssuedAt: time.Now().Add(-time.Hour), Expires: time.Now().Add(30 * time.Second),
				Renew: time.Minute, RenewType: auth.RenewHeader})
			resp, _ = get(seg, auth.HeaderName, renewable)
			fresh, _, _ := strings.Cut(resp.Header.Get(auth.HeaderName), ";")
			if resp.StatusCode != 200 || fresh == "" || fresh == renewable {
				t.Fatalf("renewal: %d, %s %q", resp.StatusCode, auth.HeaderName, fresh)
			}
			checker, _ := auth.NewCAT(auth.CATConfig{Keys: []*auth.Key{key}})
			if cl, err := checker.Verify(fresh); err != nil || cl.Expires < time.Now().Add(50*time.Minute).Unix() {
				t.Fatalf("renewed token: %v, %+v", err, cl)
			}

			metrics := scrape(t, base+"/metrics")
			for _, want := range []string{`deepcast_edge_auth_refused_total{reason="missing"} 1`, `deepcast_edge_auth_refused_total{reason="uri"} 1`,
				`deepcast_edge_auth_refused_total{reason="expired"} 1`, `deepcast_edge_auth_renewed_total 1`} {
				if !strings.Contains(metrics, want) {
					t.Errorf("metrics lack %s", want)
				}
			}
			if s := node.Stats(); s.Hits == 0 {
				t.Errorf("no hits: %+v", s)
			}
			if mode == "" {
				if v, lines := frontMetrics(t, base); v["deepcast_fastpath_answered_total"] < 10 {
					t.Errorf("the fast path answered too little of it:\n%s", lines)
				}
			}
		})
	}
}

// scrape reads a /metrics page.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestFFmpegPlaysAProtectedAsset: ffmpeg, an independent DASH client,
// decodes every frame of every rendition through an edge that checks
// tokens, the token in a request header; without one it gets nothing.
func TestFFmpegPlaysAProtectedAsset(t *testing.T) {
	lib := mediatest.Library(t)
	frames := mediatest.CountFrames(t, mediatest.Source(t))
	key, _ := auth.NewKey("k1", "ES256")
	base, _, _ := protectedEdge(t, lib, key.Public(), "")
	tok, err := auth.Mint(key, auth.TokenSpec{Issuer: "deepcast-test", Expires: time.Now().Add(time.Hour), PathPrefix: "/vod/" + mediatest.AssetName + "/"})
	if err != nil {
		t.Fatal(err)
	}
	url := base + "/vod/" + mediatest.AssetName + "/manifest.mpd"
	mediatest.CheckDecodesAll(t, url, 2, frames, "-headers", auth.HeaderName+": "+tok+"\r\n")
	counts, _, _ := mediatest.Decode(t.Context(), url)
	for _, c := range counts {
		if c.Frames > 0 {
			t.Fatalf("without a token ffmpeg decoded %d frames of stream %d", c.Frames, c.Index)
		}
	}
}
