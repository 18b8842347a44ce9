package auth

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"
)

func mustKey(t testing.TB, id, alg string) *Key {
	t.Helper()
	k, err := NewKey(id, alg)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCATCheck(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	hs, es, other := mustKey(t, "hs", "HS256"), mustKey(t, "es", "ES256"), mustKey(t, "other", "HS256")
	checker, err := NewCAT(CATConfig{Keys: []*Key{hs, es.Public()}, Issuer: "deepcast", Audience: []string{"edge-1"}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	base := TokenSpec{Issuer: "deepcast", Audience: []string{"edge-1"}, IssuedAt: now, Expires: now.Add(time.Hour), PathPrefix: "/vod/a/"}
	with := func(f func(*TokenSpec)) TokenSpec { s := base; f(&s); return s }
	seg := Request{Method: "GET", Host: "edge:8080", Path: "/vod/a/v0/1.m4s"}
	cases := []struct {
		name   string
		key    *Key
		spec   TokenSpec
		req    Request
		via    string // header, query, cookie
		status int
		reason string
	}{
		{"hs256 header", hs, base, seg, "header", 0, ""},
		{"es256 header", es, base, seg, "header", 0, ""},
		{"query", hs, base, seg, "query", 0, ""},
		{"cookie", hs, base, seg, "cookie", 0, ""},
		{"no token", nil, base, seg, "", 401, "missing"},
		{"unknown key", other, base, seg, "header", 401, "unknown-key"},
		{"expired", hs, with(func(s *TokenSpec) { s.Expires = now.Add(-time.Second) }), seg, "header", 401, "expired"},
		{"not yet", hs, with(func(s *TokenSpec) { s.NotBefore = now.Add(time.Minute).Unix() }), seg, "header", 401, "not-yet-valid"},
		{"issuer", hs, with(func(s *TokenSpec) { s.Issuer = "evil" }), seg, "header", 401, "issuer"},
		{"no issuer", hs, with(func(s *TokenSpec) { s.Issuer = "" }), seg, "header", 401, "issuer"},
		{"audience", hs, with(func(s *TokenSpec) { s.Audience = []string{"edge-2"} }), seg, "header", 401, "audience"},
		{"audience list", hs, with(func(s *TokenSpec) { s.Audience = []string{"edge-2", "edge-1"} }), seg, "header", 0, ""},
		{"other asset", hs, base, Request{Method: "GET", Host: "edge", Path: "/vod/b/v0/1.m4s"}, "header", 403, "uri"},
		{"prefix trick", hs, base, Request{Method: "GET", Host: "edge", Path: "/vod/ab/manifest.mpd"}, "header", 403, "uri"},
		{"method", hs, with(func(s *TokenSpec) { s.Methods = []string{"HEAD"} }), seg, "header", 403, "method"},
		{"extension", hs, with(func(s *TokenSpec) { s.URI = []URIMatch{{Part: 8, Match: 0, Value: ".mpd"}} }), seg, "header", 403, "uri"},
		{"host", hs, with(func(s *TokenSpec) { s.URI = []URIMatch{{Part: 1, Match: 0, Value: "edge"}} }), seg, "header", 0, ""},
		{"host other", hs, with(func(s *TokenSpec) { s.URI = []URIMatch{{Part: 1, Match: 0, Value: "cdn.example"}} }), seg, "header", 403, "uri"},
		{"regex", hs, with(func(s *TokenSpec) { s.URI = []URIMatch{{Part: 6, Match: 4, Value: `^[0-9]+\.m4s$`}} }), seg, "header", 0, ""},
		{"garbage", nil, base, Request{Method: "GET", Host: "edge", Path: "/vod/a/x", Header: "%%%"}, "", 401, "malformed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.req
			if tc.key != nil {
				spec := tc.spec
				for i := range spec.URI {
					if spec.URI[i].Match == 4 {
						if err := compileRegex(&spec.URI[i]); err != nil {
							t.Fatal(err)
						}
					}
				}
				tok, err := Mint(tc.key, spec)
				if err != nil {
					t.Fatal(err)
				}
				switch tc.via {
				case "header":
					r.Header = tok
				case "query":
					r.Query = "CMCD=bl%3D100&cat=" + tok
				case "cookie":
					r.Cookie = "x=1; " + CookieName + "=" + tok
				}
			}
			d := checker.Check(&r)
			if d.Status != tc.status || d.Reason != tc.reason {
				t.Fatalf("got %d %q, want %d %q", d.Status, d.Reason, tc.status, tc.reason)
			}
			setsCookie := false
			for _, h := range d.Headers {
				setsCookie = setsCookie || h[0] == "Set-Cookie"
			}
			if d.Allowed() && setsCookie != (tc.via == "query") {
				t.Errorf("Set-Cookie %v for a token by %s: %q", setsCookie, tc.via, d.Headers)
			}
		})
	}
}

// TestMintRefusesATokenThatOpensNothing: a path prefix not from the root
// never matches a request's path, and a method that is not an HTTP token
// is never a request's; minting either used to succeed.
func TestMintRefusesATokenThatOpensNothing(t *testing.T) {
	key := mustKey(t, "hs", "HS256")
	for _, c := range []struct {
		name string
		spec TokenSpec
		want string // in the error; "" for none
	}{
		{"a prefix from the root", TokenSpec{PathPrefix: "/vod/a/", Methods: []string{"GET", "HEAD"}}, ""},
		{"no prefix", TokenSpec{}, ""},
		{"a relative prefix", TokenSpec{PathPrefix: "vod/a/"}, `path prefix "vod/a/": want a path from the root`},
		{"a method with a space", TokenSpec{PathPrefix: "/vod/a/", Methods: []string{"GET", "BAD METHOD"}}, `method "BAD METHOD"`},
		{"an empty method", TokenSpec{Methods: []string{""}}, `method ""`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Mint(key, c.spec)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Errorf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestCATTampered(t *testing.T) {
	k := mustKey(t, "k", "HS256")
	c, _ := NewCAT(CATConfig{Keys: []*Key{k}})
	tok, err := Mint(k, TokenSpec{Expires: time.Now().Add(time.Hour), PathPrefix: "/vod/a/"})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := decodeBase64(tok)
	// Widen the path prefix in the payload: the MAC must catch it.
	i := bytes.Index(raw, []byte("/vod/a/"))
	if i < 0 {
		t.Fatal("prefix not in the token")
	}
	raw[i+5] = 'b'
	bad := encodeB64(raw)
	if d := c.Check(&Request{Method: "GET", Path: "/vod/b/manifest.mpd", Header: bad}); d.Reason != "signature" {
		t.Fatalf("tampered token: %+v", d)
	}
}

func TestCATReplayAndUnsupported(t *testing.T) {
	k := mustKey(t, "k", "HS256")
	c, _ := NewCAT(CATConfig{Keys: []*Key{k}})
	once, _ := Mint(k, TokenSpec{Expires: time.Now().Add(time.Hour), Replay: 1})
	r := Request{Method: "GET", Path: "/vod/a/manifest.mpd", Header: once}
	if d := c.Check(&r); !d.Allowed() {
		t.Fatalf("first use: %+v", d)
	}
	if d := c.Check(&r); d.Reason != "replay" {
		t.Fatalf("second use of a catreplay=1 token: %+v", d)
	}
	// A claim deepcast cannot enforce (catnip, 311) refuses the token.
	claims, _ := encMode.Marshal(map[int64]any{claimExp: time.Now().Add(time.Hour).Unix(), 311: []any{[]byte{127, 0, 0, 1}}})
	tok, err := seal(claims, k)
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Check(&Request{Method: "GET", Path: "/vod/a/manifest.mpd", Header: tok}); d.Reason != "unsupported" {
		t.Fatalf("catnip token: %+v", d)
	}
}

func TestCATRenewal(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k := mustKey(t, "k", "HS256")
	c, _ := NewCAT(CATConfig{Keys: []*Key{k}, Now: func() time.Time { return now }})
	for _, tc := range []struct {
		kind   int
		via    string
		header string
	}{
		{RenewHeader, "header", HeaderName},
		{RenewCookie, "header", "Set-Cookie"},
		{RenewAutomatic, "cookie", "Set-Cookie"},
		{RenewAutomatic, "header", HeaderName},
		{RenewRedirect, "query", "Location"},
	} {
		tok, err := Mint(k, TokenSpec{IssuedAt: now, Expires: now.Add(2 * time.Minute), Renew: time.Minute, RenewType: tc.kind, PathPrefix: "/vod/"})
		if err != nil {
			t.Fatal(err)
		}
		r := Request{Method: "GET", Path: "/vod/a/manifest.mpd"}
		switch tc.via {
		case "header":
			r.Header = tok
		case "cookie":
			r.Cookie = CookieName + "=" + tok
		case "query":
			r.Query = "cat=" + tok
		}
		if d := c.Check(&r); !d.Allowed() || d.Renewed || len(d.Headers) > 0 && tc.via != "query" {
			t.Fatalf("type %d early: %+v", tc.kind, d)
		}
		now = now.Add(90 * time.Second) // inside the last minute
		d := c.Check(&r)
		if !d.Renewed {
			t.Fatalf("type %d in its window: not marked renewed: %+v", tc.kind, d)
		}
		var fresh string
		switch tc.header {
		case "Location":
			if d.RedirectCode != http.StatusFound || !strings.Contains(d.Redirect, "cat=") {
				t.Fatalf("redirect renewal: %+v", d)
			}
			fresh = queryValue(strings.SplitN(d.Redirect, "?", 2)[1], QueryParam)
		default:
			for _, h := range d.Headers {
				if h[0] == tc.header {
					fresh = h[1]
				}
			}
			if tc.header == "Set-Cookie" {
				fresh = cookieValue(strings.SplitN(fresh, ";", 2)[0], CookieName)
			} else {
				fresh, _, _ = strings.Cut(fresh, ";")
			}
		}
		if fresh == "" || fresh == tok {
			t.Fatalf("type %d via %s: no fresh token in %+v", tc.kind, tc.via, d)
		}
		cl, err := c.Verify(fresh)
		if err != nil {
			t.Fatal(err)
		}
		if cl.Expires != now.Unix()+120 || cl.Renewal == nil || len(cl.URI) != 1 {
			t.Fatalf("renewed claims %+v", cl)
		}
		// The same fresh token for every request in the window.
		if d2 := c.Check(&r); len(d2.Headers) != len(d.Headers) || d2.Redirect != d.Redirect {
			t.Fatalf("a second renewal differs: %+v vs %+v", d2, d)
		}
		now = now.Add(-90 * time.Second)
	}
}

func TestKeysRoundTrip(t *testing.T) {
	hs, es := mustKey(t, "a", "HS256"), mustKey(t, "b", "ES256")
	b, err := MarshalKeys(hs, es)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParseKeys(b)
	if err != nil || len(keys) != 2 {
		t.Fatalf("%v %d", err, len(keys))
	}
	for i, k := range []*Key{hs, es} {
		tok, err := Mint(k, TokenSpec{Expires: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		c, _ := NewCAT(CATConfig{Keys: []*Key{keys[i]}})
		if _, err := c.Verify(tok); err != nil {
			t.Fatalf("key %d after a round trip: %v", i, err)
		}
	}
	for _, bad := range []string{`{}`, `{"keys":[{"kty":"oct","k":"c2hvcnQ"}]}`, `{"keys":[{"kty":"RSA"}]}`,
		`{"keys":[{"kty":"oct","kid":"x","k":"MDEyMzQ1Njc4OWFiY2RlZg"},{"kty":"oct","kid":"x","k":"MDEyMzQ1Njc4OWFiY2RlZg"}]}`, "\x01"} {
		if _, err := ParseKeys([]byte(bad)); err == nil {
			t.Errorf("ParseKeys(%q) accepted", bad)
		}
	}
}

// TestSecureLinkNginxExample checks the hash of nginx's documentation
// example: echo -n '2147483647/s/link127.0.0.1 secret' | openssl md5
// -binary | openssl base64 | tr +/ -_ | tr -d =
func TestSecureLinkNginxExample(t *testing.T) {
	s, err := NewSecureLink("$secure_link_expires$uri$remote_addr secret", "unused", nil)
	if err != nil {
		t.Fatal(err)
	}
	const want = "_e4Nc3iduzkWRm01TBBNYw"
	if got := s.Link("/s/link", "127.0.0.1:5555", time.Unix(2147483647, 0)); got != "md5="+want+"&expires=2147483647" {
		t.Fatalf("link %s, want md5=%s", got, want)
	}
	d := s.Check(&Request{Method: "GET", Path: "/s/link", Remote: "127.0.0.1:1", Query: "md5=" + want + "&expires=2147483647"})
	if !d.Allowed() {
		t.Fatalf("%+v", d)
	}
	for _, q := range []string{"", "md5=" + want, "md5=" + want + "&expires=2147483646", "md5=AAAA&expires=2147483647", "md5=" + want + "&expires=x"} {
		if d := s.Check(&Request{Method: "GET", Path: "/s/link", Remote: "127.0.0.1:1", Query: q}); d.Allowed() {
			t.Errorf("query %q allowed", q)
		}
	}
	if d := s.Check(&Request{Method: "GET", Path: "/s/link", Remote: "10.0.0.1:1", Query: "md5=" + want + "&expires=2147483647"}); d.Allowed() {
		t.Error("another client's link allowed")
	}
	if _, err := NewSecureLink("$nope", "s", nil); err == nil {
		t.Error("unknown variable accepted")
	}
}

func FuzzCheckToken(f *testing.F) {
	k, _ := NewKey("k", "HS256")
	c, _ := NewCAT(CATConfig{Keys: []*Key{k}})
	tok, _ := Mint(k, TokenSpec{Expires: time.Now().Add(time.Hour), PathPrefix: "/vod/", Renew: time.Minute, Methods: []string{"GET"}})
	f.Add(tok)
	f.Add("")
	f.Add("2D3RhEOhAQWhBFBha2FtYWlfa2V5X2hzMjU2U6MEGmfXP_YGGmfXQAsFGmfXQAtYINTT_KlOyhaV6NaSxFXkqJWfBagSkPkem10dysoA-C0w")
	f.Fuzz(func(t *testing.T, token string) {
		c.Check(&Request{Method: "GET", Path: "/vod/a/manifest.mpd", Header: token})
		if raw, err := decodeBase64(token); err == nil {
			// The same bytes, whatever they are, parsed directly.
			if pt, err := parseToken(encodeB64(raw)); err == nil {
				parseClaims(pt.claims)
			}
		}
	})
}

// BenchmarkCATCheck is the per-request cost of a token already seen (the
// hot path of a protected edge) and of a first sight (verification).
func BenchmarkCATCheck(b *testing.B) {
	k := mustKey(b, "k", "HS256")
	c, _ := NewCAT(CATConfig{Keys: []*Key{k}, Issuer: "i"})
	tok, _ := Mint(k, TokenSpec{Issuer: "i", Expires: time.Now().Add(time.Hour), PathPrefix: "/vod/a/", Methods: []string{"GET"}})
	r := Request{Method: "GET", Host: "edge", Path: "/vod/a/v0/1.m4s", Header: tok}
	b.Run("seen", func(b *testing.B) {
		for b.Loop() {
			if d := c.Check(&r); !d.Allowed() {
				b.Fatal(d)
			}
		}
	})
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := c.verifyToken(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzParseKeys: a key file, whatever it holds, is read or refused, and
// what is read mints tokens that verify.
func FuzzParseKeys(f *testing.F) {
	hs, _ := NewKey("a", "HS256")
	es, _ := NewKey("b", "ES256")
	b, _ := MarshalKeys(hs, es)
	f.Add(b)
	f.Add([]byte(`{"kty":"oct","k":"MDEyMzQ1Njc4OWFiY2RlZg"}`))
	f.Add([]byte{0x81, 0xa3, 0x01, 0x04, 0x02, 0x41, 0x6b, 0x20, 0x50, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseKeys(data)
		if err != nil {
			return
		}
		for _, k := range keys {
			if !k.CanMint() {
				continue
			}
			tok, err := Mint(k, TokenSpec{Expires: time.Now().Add(time.Hour)})
			if err != nil {
				t.Fatalf("key %q read but cannot mint: %v", k.ID, err)
			}
			c, _ := NewCAT(CATConfig{Keys: []*Key{k.Public()}})
			if _, err := c.Verify(tok); err != nil {
				t.Fatalf("key %q: its own token does not verify: %v", k.ID, err)
			}
		}
	})
}

// TestRedirectRenewalDoesNotLoop: a token whose renewal window opens at
// once (renew as long as its life) is not redirected while young, so its
// successor, young too, cannot send the player round in circles.
func TestRedirectRenewalDoesNotLoop(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k := mustKey(t, "k", "HS256")
	c, _ := NewCAT(CATConfig{Keys: []*Key{k}, Now: func() time.Time { return now }})
	tok, _ := Mint(k, TokenSpec{IssuedAt: now, Expires: now.Add(time.Minute), Renew: time.Minute, RenewType: RenewRedirect})
	r := Request{Method: "GET", Path: "/vod/a/manifest.mpd", Query: "cat=" + tok}
	for i := range 3 {
		now = now.Add(2 * time.Second)
		if d := c.Check(&r); !d.Allowed() || d.Redirect != "" {
			t.Fatalf("request %d at %d s: %+v", i, 2*(i+1), d)
		}
	}
	now = now.Add(10 * time.Second)
	d := c.Check(&r)
	if d.Redirect == "" {
		t.Fatalf("an old token in its window was not redirected: %+v", d)
	}
	// The successor is young: followed at once, it is served.
	r.Query = strings.SplitN(d.Redirect, "?", 2)[1]
	if d := c.Check(&r); !d.Allowed() || d.Redirect != "" {
		t.Fatalf("the successor redirected again: %+v", d)
	}
}
