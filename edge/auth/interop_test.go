package auth

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// catjs runs one request through @eyevinn/cat (testdata/catjs), an
// independent Common Access Token implementation, installing it from its
// lockfile the first time.
func catjs(t *testing.T, req map[string]any) map[string]any {
	t.Helper()
	dir := filepath.Join("testdata", "catjs")
	installOnce.Do(func() {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "@eyevinn", "cat", "package.json")); err == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		// Not `npm ci`: npm 11 leaves cbor-x's optional native packages
		// for other platforms out of the lockfile and then refuses it.
		// `npm install --no-save` installs the locked versions and
		// changes neither file.
		cmd := exec.CommandContext(ctx, "npm", "install", "--no-save", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			installErr = err
			t.Logf("npm install: %s", out)
		}
	})
	if installErr != nil {
		t.Fatalf("installing @eyevinn/cat (npm install --no-save in %s): %v", dir, installErr)
	}
	in, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "interop.mjs")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node interop.mjs: %v\n%s", err, stderr.String())
	}
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("node answered %q: %v", out, err)
	}
	return res
}

var (
	installOnce sync.Once
	installErr  error
)

// TestCATInteroperability mints tokens in one implementation and checks
// them in the other, both ways, renewal included.
func TestCATInteroperability(t *testing.T) {
	key := mustKey(t, "deepcast-1", "HS256")
	keyHex := hex.EncodeToString(key.Secret())
	checker, err := NewCAT(CATConfig{Keys: []*Key{key}, Issuer: "deepcast", Audience: []string{"edges"}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	segment := Request{Method: "GET", Host: "127.0.0.1:8443", Secure: true, Path: "/vod/bbb/v0/3.m4s"}

	t.Run("eyevinn mints, deepcast checks", func(t *testing.T) {
		res := catjs(t, map[string]any{"op": "mint", "kid": key.ID, "keyHex": keyHex, "claims": map[string]any{
			"iss": "deepcast", "aud": "edges", "exp": now.Unix() + 600, "nbf": now.Unix() - 10,
			"catu": map[string]any{"path": map[string]any{"prefix-match": "/vod/bbb/"}, "extension": map[string]any{"suffix-match": ".m4s"}},
			"catm": []string{"GET", "HEAD"}, "catreplay": 0,
		}})
		tok, _ := res["token"].(string)
		if tok == "" {
			t.Fatalf("no token: %v", res)
		}
		r := segment
		r.Header = tok
		if d := checker.Check(&r); !d.Allowed() {
			t.Fatalf("deepcast refused @eyevinn/cat's token: %+v", d)
		}
		r.Path = "/vod/bbb/manifest.mpd"
		if d := checker.Check(&r); d.Reason != "uri" {
			t.Fatalf("extension condition not enforced: %+v", d)
		}
		r.Path, r.Method = "/vod/bbb/v0/3.m4s", "POST"
		if d := checker.Check(&r); d.Reason != "method" {
			t.Fatalf("catm not enforced: %+v", d)
		}
	})

	t.Run("deepcast mints, eyevinn checks", func(t *testing.T) {
		tok, err := Mint(key, TokenSpec{Issuer: "deepcast", Audience: []string{"edges"}, Expires: now.Add(10 * time.Minute),
			PathPrefix: "/vod/bbb/", Methods: []string{"GET"}, Renew: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		res := catjs(t, map[string]any{"op": "verify", "kid": key.ID, "keyHex": keyHex, "token": tok, "issuer": "deepcast",
			"audience": []string{"edges"}, "url": "https://127.0.0.1:8443/vod/bbb/v0/3.m4s"})
		claims, _ := res["claims"].(map[string]any)
		if claims == nil {
			t.Fatalf("@eyevinn/cat refused deepcast's token: %v", res)
		}
		if claims["iss"] != "deepcast" || claims["exp"].(float64) != float64(now.Add(10*time.Minute).Unix()) {
			t.Fatalf("claims as read by @eyevinn/cat: %v", claims)
		}
		res = catjs(t, map[string]any{"op": "verify", "kid": key.ID, "keyHex": keyHex, "token": tok, "issuer": "deepcast",
			"audience": []string{"edges"}, "url": "https://127.0.0.1:8443/vod/other/v0/3.m4s"})
		if res["error"] == nil {
			t.Fatalf("@eyevinn/cat accepted a URI outside the token's catu: %v", res)
		}
	})

	t.Run("renewal both ways", func(t *testing.T) {
		// A deepcast token in its last minute: @eyevinn/cat's HTTP validator
		// renews it, and deepcast accepts the renewed one. Times are taken
		// afresh before each mint: the first call of node installs
		// @eyevinn/cat (many seconds on a fresh clone), and a token 20 s
		// from expiry minted against the test's start had expired by the
		// time it was checked.
		now := time.Now()
		tok, err := Mint(key, TokenSpec{Issuer: "deepcast", Audience: []string{"edges"}, IssuedAt: now.Add(-100 * time.Second),
			Expires: now.Add(40 * time.Second), PathPrefix: "/vod/bbb/", Renew: time.Minute, RenewType: RenewHeader})
		if err != nil {
			t.Fatal(err)
		}
		res := catjs(t, map[string]any{"op": "http", "kid": key.ID, "keyHex": keyHex, "issuer": "deepcast",
			"url": "https://127.0.0.1:8443/vod/bbb/v0/3.m4s", "header": tok})
		headers, _ := res["headers"].(map[string]any)
		renewed, _ := headers[strings.ToLower(HeaderName)].(string)
		if res["status"].(float64) != 200 || renewed == "" {
			t.Fatalf("@eyevinn/cat did not renew: %v", res)
		}
		r := segment
		r.Header = renewed
		if d := checker.Check(&r); !d.Allowed() {
			t.Fatalf("deepcast refused the token @eyevinn/cat renewed: %+v", d)
		}
		if cl, _ := checker.Verify(renewed); cl.Expires < now.Unix()+100 {
			t.Fatalf("renewed token expires at %d, want about now+120", cl.Expires)
		}

		// An @eyevinn/cat token in its last minute: deepcast renews it, and
		// @eyevinn/cat accepts the renewed one.
		now = time.Now()
		res = catjs(t, map[string]any{"op": "mint", "kid": key.ID, "keyHex": keyHex, "claims": map[string]any{
			"iss": "deepcast", "aud": "edges", "exp": now.Unix() + 40, "iat": now.Unix() - 100,
			"catu": map[string]any{"path": map[string]any{"prefix-match": "/vod/bbb/"}},
			"catr": map[string]any{"type": "header", "header-name": "cta-common-access-token", "expadd": 120, "deadline": 60},
		}})
		r = segment
		r.Header = res["token"].(string)
		d := checker.Check(&r)
		var fresh string
		for _, h := range d.Headers {
			if strings.EqualFold(h[0], HeaderName) {
				fresh, _, _ = strings.Cut(h[1], ";")
			}
		}
		if !d.Allowed() || fresh == "" {
			t.Fatalf("deepcast did not renew @eyevinn/cat's token: %+v", d)
		}
		res = catjs(t, map[string]any{"op": "verify", "kid": key.ID, "keyHex": keyHex, "token": fresh, "issuer": "deepcast",
			"audience": []string{"edges"}, "url": "https://127.0.0.1:8443/vod/bbb/v0/4.m4s"})
		if claims, _ := res["claims"].(map[string]any); claims == nil || claims["catr"] == nil {
			t.Fatalf("@eyevinn/cat refused the token deepcast renewed: %v", res)
		}
	})
}
