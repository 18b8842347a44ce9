package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/deepcast/deepcast/edge"
	"github.com/deepcast/deepcast/edge/accesslog"
	"github.com/deepcast/deepcast/edge/auth"
	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/mediatest"
	"github.com/deepcast/deepcast/origin"
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
				return getBody(t, client, base+target, hdr...)
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

// TestPlayWithAnAccessToken: deepcast play and sim, given a manifest URL
// with a token (?cat=), play through an edge that checks tokens: the edge
// answers the manifest with a session cookie, which they keep and send
// with every segment and size request, as a browser does; or the token is
// given as a header (-header) for every request.
func TestPlayWithAnAccessToken(t *testing.T) {
	key, _ := auth.NewKey("k1", "ES256")
	base, _, _ := protectedEdge(t, mediatest.Library(t), key.Public(), "")
	tok, err := auth.Mint(key, auth.TokenSpec{Issuer: "deepcast-test", Expires: time.Now().Add(time.Hour), PathPrefix: "/vod/" + mediatest.AssetName + "/"})
	if err != nil {
		t.Fatal(err)
	}
	mpd := base + "/vod/" + mediatest.AssetName + "/manifest.mpd"
	var out, errb bytes.Buffer
	if code := run([]string{"play", "-quiet", "-duration", "6s", mpd + "?cat=" + tok}, &out, &errb); code != 0 || !strings.Contains(out.String(), "0 stalls") {
		t.Errorf("play with a token: exit %d\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"sim", "-video", mpd + "?cat=" + tok, "-traces", filepath.Join(repoRoot(), "testdata/traces/fcc"), "-abr", "bola"}, &out, &errb); code != 0 {
		t.Errorf("sim with a token: exit %d\n%s", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"play", "-quiet", "-duration", "6s", mpd}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "401") {
		t.Errorf("play without a token: exit %d\n%s", code, errb.String())
	}
	// The token in a header of every request, as ffmpeg's -headers sends it.
	out.Reset()
	errb.Reset()
	if code := run([]string{"play", "-quiet", "-duration", "6s", "-header", auth.HeaderName + ": " + tok, mpd}, &out, &errb); code != 0 || !strings.Contains(out.String(), "0 stalls") {
		t.Errorf("play -header: exit %d\n%s%s", code, out.String(), errb.String())
	}
	errb.Reset()
	if code := run([]string{"play", "-header", "no colon", mpd}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "want Name: value") {
		t.Errorf("play -header 'no colon': exit %d\n%s", code, errb.String())
	}
}

// TestSecureLinkAgreesWithNginx: links made as nginx's secure_link_md5
// documentation shows (openssl md5 | base64 | tr) and links made by
// deepcast open the same doors on a real nginx configured with
// secure_link and on an edge with -auth securelink; expired, tampered,
// moved and incomplete links are refused by both.
func TestSecureLinkAgreesWithNginx(t *testing.T) {
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Fatal("nginx not installed: `make deps` installs it")
	}
	const secret = "s3cr3t-for-the-test"
	lib := mediatest.Library(t)
	a, err := media.LoadAsset(filepath.Join(lib, mediatest.AssetName))
	if err != nil {
		t.Fatal(err)
	}
	checker, err := auth.NewSecureLink("", secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := startOrigin(t, lib)
	ots := httptest.NewServer(o)
	t.Cleanup(ots.Close)
	n, err := edge.New(edge.Config{Profile: edge.EnterDeep, Name: "deep", Upstreams: []string{ots.URL}, MemBytes: 32 << 20, Logger: discard(), Auth: checker})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	edgeURL := serveLoopback(t, n)
	port := freePort(t)
	startNginx(t, port, "", `location /vod/ {
      secure_link $arg_md5,$arg_expires;
      secure_link_md5 "$secure_link_expires$uri$remote_addr `+secret+`";
      if ($secure_link = "") { return 403; }
      if ($secure_link = "0") { return 410; }
      return 200 "ok\n";
    }`)
	nginxURL := fmt.Sprintf("http://127.0.0.1:%d", port)

	// The documentation's recipe, run as a shell pipeline.
	docLink := func(path string, expires int64) string {
		t.Helper()
		script := fmt.Sprintf(`echo -n '%d%s127.0.0.1 %s' | openssl md5 -binary | openssl base64 | tr +/ -_ | tr -d =`, expires, path, secret)
		out, err := exec.Command("sh", "-c", script).Output()
		if err != nil {
			t.Fatalf("openssl pipeline: %v", err)
		}
		return fmt.Sprintf("%s?md5=%s&expires=%d", path, strings.TrimSpace(string(out)), expires)
	}
	seg := fmt.Sprintf("/vod/%s/%s/1.m4s", a.Name, a.Renditions[0].ID)
	seg2 := fmt.Sprintf("/vod/%s/%s/2.m4s", a.Name, a.Renditions[0].ID)
	later := time.Now().Add(time.Hour)
	valid := docLink(seg, later.Unix())
	links := []struct {
		name string
		link string
		ok   bool
	}{
		{"nginx documentation recipe", valid, true},
		{"deepcast's link", seg + "?" + checker.Link(seg, "127.0.0.1", later), true},
		{"deepcast's link, manifest", "/vod/" + a.Name + "/manifest.mpd?" + checker.Link("/vod/"+a.Name+"/manifest.mpd", "127.0.0.1", later), true},
		{"expired", docLink(seg, time.Now().Add(-time.Minute).Unix()), false},
		{"moved to another segment", strings.Replace(valid, seg, seg2, 1), false},
		{"tampered expiry", strings.Replace(valid, fmt.Sprint(later.Unix()), fmt.Sprint(later.Unix()+1), 1), false},
		{"another client's", seg + "?" + checker.Link(seg, "10.1.2.3", later), false},
		{"no expiry", strings.Split(valid, "&")[0], false},
		{"no link", seg, false},
	}
	for _, l := range links {
		codes := map[string]int{}
		for name, base := range map[string]string{"nginx": nginxURL, "edge": edgeURL} {
			resp, err := http.Get(base + l.link)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			codes[name] = resp.StatusCode
		}
		if (codes["nginx"] == 200) != l.ok || (codes["edge"] == 200) != l.ok {
			t.Errorf("%s (%s): nginx %d, edge %d, want both to %s", l.name, l.link, codes["nginx"], codes["edge"], map[bool]string{true: "accept", false: "refuse"}[l.ok])
		}
	}
}

// TestBrowserPlaysAProtectedAsset: dash.js and Shaka in Chromium play
// encrypted assets (cenc; Shaka cbcs too) through a three-tier chain
// whose enter-deep edge checks CAT tokens, keys from the origin's ClearKey licence endpoint (EME ClearKey),
// the token on the manifest's URL only (the page's ?cat=): the edge's
// session cookie carries it to the segments and the licence request, and
// since the token lives 14 s on a 16 s clip, playing to the end shows that
// catr renewal (by cookie) keeps a session going past its first token.
// Without a token, the page reports the refusal and decodes nothing.
func TestBrowserPlaysAProtectedAsset(t *testing.T) {
	lib := packageAssets(t, 16*time.Second, "640x360@1200k,320x180@300k", map[string]string{"clip": media.SchemeCENC, "clipcbcs": media.SchemeCBCS})
	key, _ := auth.NewKey("viewer-key", "HS256")
	checker, err := auth.NewCAT(auth.CATConfig{Keys: []*auth.Key{key}, Issuer: "deepcast-test"})
	if err != nil {
		t.Fatal(err)
	}
	setup := startWebChainOn(t, lib, chainOptions{auth: checker})
	for _, tc := range []struct{ engine, asset string }{{"dashjs", "clip"}, {"shaka-dash", "clip"}, {"shaka-dash", "clipcbcs"}} {
		t.Run(tc.engine+"/"+tc.asset, func(t *testing.T) {
			before, licences := scrape(t, setup.deep+"/metrics"), metricValue(scrape(t, setup.origin+"/metrics"), "deepcast_origin_licences_total")
			// A 14 s token renewed in its last 12 s: every request 2 s or
			// more after a token was issued renews it, so a loaded machine's
			// pauses of up to 12 s between requests (a stalled player with
			// a full buffer) keep the session, and the 16 s clip still
			// outlives the first token. The browser starts first, so that
			// its start (seconds on a loaded machine) does not use up the
			// token.
			ctx := browser(t)
			if err := chromedp.Do(ctx); err != nil {
				t.Fatal(err)
			}
			tok, err := auth.Mint(key, auth.TokenSpec{Issuer: "deepcast-test", Expires: time.Now().Add(14 * time.Second),
				Renew: 12 * time.Second, PathPrefix: "/vod/" + tc.asset + "/"})
			if err != nil {
				t.Fatal(err)
			}
			page := setup.deep + "/?asset=" + tc.asset + "&buffer=4&engine=" + tc.engine + "&cat=" + url.QueryEscape(tok)
			if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if t.Failed() {
					for l := range strings.Lines(scrape(t, setup.deep+"/metrics")) {
						if strings.HasPrefix(l, "deepcast_edge_auth") {
							t.Log(strings.TrimSpace(l))
						}
					}
				}
			})
			s := waitFor(t, ctx, 60*time.Second, "playback to the end", func(s pageStats) bool { return s.CurrentTime > 15 })
			if s.DecodedFrames == 0 || len(s.Errors) > 0 {
				t.Errorf("decoded %d frames, errors %v", s.DecodedFrames, s.Errors)
			}
			renewed := metricValue(scrape(t, setup.deep+"/metrics"), "deepcast_edge_auth_renewed_total") - metricValue(before, "deepcast_edge_auth_renewed_total")
			if renewed < 1 {
				t.Errorf("played %.1f s on a 14 s token without a renewal", s.CurrentTime)
			}
			if got := metricValue(scrape(t, setup.origin+"/metrics"), "deepcast_origin_licences_total") - licences; got < 1 {
				t.Errorf("played an encrypted asset without a licence from the origin")
			}
			t.Logf("%s %s with a token: %+v, %v renewals", tc.engine, tc.asset, s, renewed)
			if tc.asset != "clip" {
				return
			}
			// No token: the refusal, cleanly.
			ctx = browser(t)
			if err := chromedp.Do(ctx, chromedp.Navigate(setup.deep+"/?asset="+tc.asset+"&engine="+tc.engine)); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for s = readStats(t, ctx); len(s.Errors) == 0 && time.Now().Before(deadline); s = readStats(t, ctx) {
				time.Sleep(250 * time.Millisecond)
			}
			if len(s.Errors) == 0 || s.DecodedFrames > 0 {
				t.Errorf("without a token: errors %v, %d frames decoded", s.Errors, s.DecodedFrames)
			}
			t.Logf("%s without a token: %v", tc.engine, s.Errors)
		})
	}
}

// packageAssets makes a sample of the given length and packages it under
// each name with its encryption scheme ("" for none); it returns the
// library.
func packageAssets(t *testing.T, d time.Duration, ladderSpec string, names map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.mp4")
	ctx := context.Background()
	if err := media.MakeSample(ctx, src, media.SampleOptions{Duration: d, Width: 640, Height: 360}); err != nil {
		t.Fatal(err)
	}
	ladder, err := media.ParseLadder(ladderSpec)
	if err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(dir, "lib")
	for name, scheme := range names {
		opt := media.PackageOptions{Library: lib, Name: name, Ladder: ladder, Preset: "ultrafast"}
		if scheme != "" {
			opt.Encrypt = &media.Encryption{Scheme: scheme}
		}
		if _, err := media.Package(ctx, []string{src}, opt); err != nil {
			t.Fatal(err)
		}
	}
	return lib
}

// metricValue is the value of an unlabelled series on a /metrics page (0
// when absent).
func metricValue(page, name string) float64 {
	for l := range strings.Lines(page) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// TestEncryptedAssetThroughAProtectedEdge: `deepcast package -encrypt
// cenc -key-file` makes an asset that ffmpeg decodes frame for frame with
// the key (each segment with its init segment, fetched through an edge
// with -auth cat); the edge hands the key (ClearKey JSON) only to a
// request with a token for the asset; the key is in no /vod/ or /api/
// response and in no log line; wrong flags fail before any work.
func TestEncryptedAssetThroughAProtectedEdge(t *testing.T) {
	dir := t.TempDir()
	src := mediatest.Source(t)
	frames := mediatest.CountFrames(t, src)
	const kidHex, keyHex = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf", "3f1e5d7c9b2a4e6f8d0c1b3a5e7f9d2c"
	keyFile := filepath.Join(dir, "asset.key")
	os.WriteFile(keyFile, []byte("# KID:KEY\n"+kidHex+":"+keyHex+"\n"), 0o600)
	lib := filepath.Join(dir, "lib")
	var out, errb bytes.Buffer
	for _, bad := range [][]string{{"-encrypt", "aes"}, {"-key", keyHex}, {"-encrypt", "cenc", "-key-id", kidHex}, {"-encrypt", "cenc", "-key-id", "12", "-key", keyHex},
		{"-encrypt", "cenc", "-key-file", keyFile, "-key", keyHex}} {
		if code := run(append(append([]string{"package", "-o", lib, "-name", "x"}, bad...), src), &out, &errb); code != 2 {
			t.Errorf("package %v: exit %d, want 2", bad, code)
		}
	}
	if code := run([]string{"package", "-o", lib, "-name", "sec", "-ladder", mediatest.Ladder, "-preset", "ultrafast", "-encrypt", "cenc", "-key-file", keyFile, src}, &out, &errb); code != 0 {
		t.Fatalf("package -encrypt: exit %d: %s", code, errb.String())
	}
	a, err := media.LoadAsset(filepath.Join(lib, "sec"))
	if err != nil {
		t.Fatal(err)
	}

	var logs mediatest.Capture
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o, err := origin.New(origin.Config{Library: lib, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)
	originURL := serveLoopback(t, o)
	tokenKey, _ := auth.NewKey("k", "HS256")
	checker, _ := auth.NewCAT(auth.CATConfig{Keys: []*auth.Key{tokenKey}})
	n, err := edge.New(edge.Config{Profile: edge.EnterDeep, Name: "deep", Upstreams: []string{originURL}, MemBytes: 32 << 20, Logger: logger,
		Auth: checker, AccessLog: accesslog.New(&logs, "deep")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	edgeURL := serveLoopback(t, n)
	tok, _ := auth.Mint(tokenKey, auth.TokenSpec{Expires: time.Now().Add(time.Hour), PathPrefix: "/vod/sec/"})

	// Every frame, segment by segment, through the protected edge.
	for _, r := range a.Renditions {
		decoded := 0
		for _, s := range r.Segments {
			base := fmt.Sprintf("%s/vod/sec/%s/", edgeURL, r.ID)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			counts, log, err := mediatest.Decode(ctx, "concat:"+base+"init.mp4?cat="+tok+"|"+base+fmt.Sprintf("%d.m4s?cat=%s", s.Number, tok),
				"-protocol_whitelist", "concat,http,tcp", "-decryption_key", keyHex)
			cancel()
			if err != nil || len(counts) != 1 || strings.Contains(log, "Error while decoding") {
				t.Fatalf("%s segment %d: %v %+v\n%s", r.ID, s.Number, err, counts, log)
			}
			decoded += counts[0].Frames
		}
		if r.Type == "video" && decoded != frames {
			t.Errorf("%s: %d frames decoded, the source has %d", r.ID, decoded, frames)
		}
		if decoded == 0 {
			t.Errorf("%s: nothing decoded", r.ID)
		}
	}

	// The licence: with a token, the key; without, a refusal.
	kid, _ := hex.DecodeString(kidHex)
	body := `{"kids":["` + base64.RawURLEncoding.EncodeToString(kid) + `"],"type":"temporary"}`
	licence := func(hdr ...string) (int, string) {
		resp, b := doBody(t, http.DefaultClient, http.MethodPost, edgeURL+"/vod/sec/clearkey", body, append([]string{"Content-Type", "application/json"}, hdr...)...)
		return resp.StatusCode, string(b)
	}
	code, answer := licence(auth.HeaderName, tok)
	var lic struct {
		Keys []struct{ Kty, K, Kid string }
	}
	json.Unmarshal([]byte(answer), &lic)
	key, _ := hex.DecodeString(keyHex)
	if code != 200 || len(lic.Keys) != 1 || lic.Keys[0].K != base64.RawURLEncoding.EncodeToString(key) || lic.Keys[0].Kty != "oct" {
		t.Fatalf("licence with a token: %d %s", code, answer)
	}
	if code, _ := licence(); code != 401 {
		t.Errorf("licence without a token: %d", code)
	}
	other, _ := auth.Mint(tokenKey, auth.TokenSpec{Expires: time.Now().Add(time.Hour), PathPrefix: "/vod/other/"})
	if code, _ := licence(auth.HeaderName, other); code != 403 {
		t.Errorf("licence with another asset's token: %d", code)
	}

	// The key is nowhere it should not be.
	forms := []string{keyHex, strings.ToUpper(keyHex), base64.StdEncoding.EncodeToString(key), base64.RawURLEncoding.EncodeToString(key), string(key)}
	if resp, _ := http.Get(originURL + "/vod/sec/master.m3u8"); resp == nil || resp.StatusCode != 404 {
		t.Error("an encrypted asset has HLS playlists (without key tags)")
	}
	served := []string{"/vod/sec/manifest.mpd", "/api/assets", "/api/assets/sec"}
	for _, r := range a.Renditions {
		served = append(served, fmt.Sprintf("/vod/sec/%s/init.mp4", r.ID))
		for _, s := range r.Segments {
			served = append(served, fmt.Sprintf("/vod/sec/%s/%d.m4s", r.ID, s.Number))
		}
	}
	for _, p := range served {
		resp, err := http.Get(originURL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
		}
		for _, f := range forms {
			if bytes.Contains(b, []byte(f)) {
				t.Errorf("the key (as %q) is in %s", f, p)
			}
		}
	}
	if resp, _ := http.Get(originURL + "/vod/sec/keys.json"); resp == nil || resp.StatusCode == 200 {
		t.Error("keys.json is served")
	}
	for _, f := range forms[:4] {
		if strings.Contains(logs.String(), f) {
			t.Errorf("the key (as %q) is in the logs", f)
		}
	}
	if !strings.Contains(logs.String(), "clearkey") {
		t.Error("the access log did not record the licence requests (is it capturing?)")
	}
}

// TestTokenCommandAndEdgeFlags: `deepcast token -new-key` writes a key
// file (owner-only, never over another), `deepcast token -key … -uri …`
// prints a token alone on its last line, and an `edge -auth cat
// -auth-key` process accepts it for the asset and refuses the rest;
// `-securelink` prints a link as nginx's secure_link_md5 makes them.
func TestTokenCommandAndEdgeFlags(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "edge.key")
	runBin := func(args ...string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, stderr.String())
		}
		return stdout.String(), err
	}
	if _, err := runBin("token", "-new-key", keyFile, "-kid", "edge-1"); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", err, st)
	}
	before, _ := os.ReadFile(keyFile)
	if _, err := runBin("token", "-new-key", keyFile); err == nil {
		t.Error("-new-key overwrote a key file")
	}
	if after, _ := os.ReadFile(keyFile); !bytes.Equal(after, before) {
		t.Error("the key file changed")
	}
	out, err := runBin("token", "-key", keyFile, "-uri", "/vod/"+mediatest.AssetName+"/", "-ttl", "10m", "-renew", "1m", "-issuer", "ops")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	tok := lines[len(lines)-1]
	keys, err := auth.LoadKeys(keyFile)
	if err != nil || keys[0].ID != "edge-1" {
		t.Fatalf("keys: %v", err)
	}
	checker, _ := auth.NewCAT(auth.CATConfig{Keys: keys, Issuer: "ops"})
	if cl, err := checker.Verify(tok); err != nil || cl.Renewal == nil || len(cl.URI) != 1 {
		t.Fatalf("minted token %q: %v %+v", tok, err, cl)
	}

	originURL := serveLoopback(t, startOrigin(t, mediatest.Library(t)))
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	startNode(t, bin, addr, "edge", "-upstream", originURL, "-listen", addr, "-auth", "cat", "-auth-key", keyFile, "-auth-issuer", "ops")
	mpd := "http://" + addr + "/vod/" + mediatest.AssetName + "/manifest.mpd"
	for _, c := range []struct {
		url    string
		header string
		want   int
	}{{mpd, tok, 200}, {mpd, "", 401}, {strings.Replace(mpd, mediatest.AssetName, "other", 1), tok, 403}, {mpd + "?cat=" + tok, "", 200}} {
		req, _ := http.NewRequest(http.MethodGet, c.url, nil)
		if c.header != "" {
			req.Header.Set(auth.HeaderName, c.header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET %s (header %v): %d, want %d", c.url, c.header != "", resp.StatusCode, c.want)
		}
	}
	if _, err := runBin("edge", "-upstream", originURL, "-listen", "127.0.0.1:0", "-auth", "cat"); err == nil || !strings.Contains(err.Error(), "-auth-key") {
		t.Errorf("-auth cat without a key: %v", err)
	}

	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("s3cr3t\n"), 0o600)
	out, err = runBin("token", "-securelink", "-key", secret, "-uri", "/vod/a/manifest.mpd", "-remote", "127.0.0.1", "-ttl", "1h")
	if err != nil || !strings.HasPrefix(strings.TrimSpace(out), "/vod/a/manifest.mpd?md5=") {
		t.Fatalf("securelink: %q %v", out, err)
	}
}
