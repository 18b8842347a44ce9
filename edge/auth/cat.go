// Package auth checks and mints the access tokens edges enforce: the
// CTA-5007 Common Access Token (a CBOR Web Token in a COSE_Mac0 or
// COSE_Sign1, HMAC-SHA256 or ES256) and nginx's secure_link MD5 links.
//
// It is pure: a Checker looks at a Request (method, URI, the token's
// carriers) and answers with a Decision; the edge turns that into a
// status, headers and metrics. Verified tokens are remembered, so a token
// a player sends with every segment costs one map lookup after the first.
package auth

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Where a CAT travels.
const (
	HeaderName = "CTA-Common-Access-Token" // request (and renewal) header
	QueryParam = "cat"                     // query parameter: never in a cache key, never forwarded
	CookieName = "cta-common-access-token" // cookie; what the edge sets for a session
)

// Request is what a Checker looks at: the request's method and URI, and
// the places a token can be.
type Request struct {
	Method string
	Secure bool   // https
	Host   string // as the client sent it, host[:port]
	Path   string // escaped path
	Query  string // raw query, "" for none
	Remote string // the client's address (ip or ip:port)
	Header string // the CTA-Common-Access-Token header
	Cookie string // the Cookie header(s), joined with "; "
}

// Decision is a Checker's answer. Status 0 allows the request; 401 or 403
// refuses it with a short Reason (also the metric label). An allowed
// request may carry headers to add to its response: a renewed token, or
// the session cookie that carries a token given in the URL to the
// requests that follow.
type Decision struct {
	Status int
	Reason string
	// Headers are response header lines to add: name, value pairs.
	Headers [][2]string
	// Redirect, when set, answers the request with this status and
	// Location instead (a catr redirect renewal).
	Redirect     string
	RedirectCode int
	// Renewed says the headers or the redirect hand out a renewed token.
	Renewed bool
}

// Allowed reports a decision that lets the request through.
func (d Decision) Allowed() bool { return d.Status == 0 }

// Checker decides on requests.
type Checker interface {
	Check(r *Request) Decision
	// Strip reports the query parameters that carry tokens: the edge
	// keeps them out of cache keys and upstream requests.
	Strip() []string
}

// CATConfig configures a CAT checker.
type CATConfig struct {
	Keys     []*Key
	Issuer   string   // required iss when set; a token without it is refused
	Audience []string // the names this edge answers to; a token's aud must hold one
	// Now is the clock (time.Now when nil), for tests.
	Now func() time.Time
	// CookiePath, when set, is the Path of the session cookie given for a
	// token that came in the URL: "asset" (the default) scopes it to
	// /vod/NAME/, "vod" to /vod/.
	CookiePath string
}

// CAT checks Common Access Tokens.
type CAT struct {
	cfg   CATConfig
	byID  map[string][]*Key
	now   func() time.Time
	cache sync.Map // token string -> *verified
	count atomic.Int64
	// seen holds the ids of catreplay=1 tokens already used, with their
	// expiry.
	seenMu sync.Mutex
	seen   map[string]int64
}

// verified is a token whose signature and structure have been checked:
// what remains per request is the clock, the URI and the method.
type verified struct {
	claims *Claims
	key    *Key
	err    error // a token that failed is remembered too: cheap to refuse again
	// renewed is the fresh token handed out in the renewal window, made
	// once for the requests that ask in that window (again once it is half
	// spent, so no request gets a token about to lapse).
	renewMu    sync.Mutex
	renewed    string
	renewedIat int64
}

// redirectMinAge is how old (seconds) a token must be before a request
// carrying it is redirected to its successor.
const redirectMinAge = 10

// maxCached bounds the verified-token memory; when full it starts over
// (tokens are cheap to verify again, and the bound is what matters).
const maxCached = 1 << 16

// NewCAT makes a CAT checker.
func NewCAT(cfg CATConfig) (*CAT, error) {
	if len(cfg.Keys) == 0 {
		return nil, errors.New("auth: CAT needs at least one key")
	}
	c := &CAT{cfg: cfg, byID: map[string][]*Key{}, now: cfg.Now, seen: map[string]int64{}}
	if c.now == nil {
		c.now = time.Now
	}
	for _, k := range cfg.Keys {
		c.byID[k.ID] = append(c.byID[k.ID], k)
	}
	switch cfg.CookiePath {
	case "", "asset", "vod":
	default:
		return nil, fmt.Errorf("auth: cookie path %q: want asset or vod", cfg.CookiePath)
	}
	return c, nil
}

// Strip implements Checker.
func (c *CAT) Strip() []string { return []string{QueryParam} }

// refuse builds a refusal.
func refuse(status int, reason string) Decision { return Decision{Status: status, Reason: reason} }

// Check implements Checker. A token is looked for in the header, then the
// query, then the cookie: the first one found is the one judged.
func (c *CAT) Check(r *Request) Decision {
	token, via := r.Header, "header"
	if token == "" {
		if token = queryValue(r.Query, QueryParam); token != "" {
			via = "query"
		}
	}
	if token == "" {
		if token = cookieValue(r.Cookie, CookieName); token != "" {
			via = "cookie"
		}
	}
	if token == "" {
		return refuse(http.StatusUnauthorized, "missing")
	}
	v := c.verify(token)
	if v.err != nil {
		return refuse(http.StatusUnauthorized, reasonOf(v.err))
	}
	now := c.now().Unix()
	cl := v.claims
	switch {
	case cl.hasExp && now >= cl.Expires:
		return refuse(http.StatusUnauthorized, "expired")
	case cl.NotBefore != 0 && now < cl.NotBefore:
		return refuse(http.StatusUnauthorized, "not-yet-valid")
	}
	if len(cl.Methods) > 0 && !slices.Contains(cl.Methods, r.Method) {
		return refuse(http.StatusForbidden, "method")
	}
	if len(cl.URI) > 0 {
		u := requestURI(r)
		for i := range cl.URI {
			if !cl.URI[i].matches(u) {
				return refuse(http.StatusForbidden, "uri")
			}
		}
	}
	if cl.Replay == 1 && !c.firstUse(token, cl) {
		return refuse(http.StatusForbidden, "replay")
	}
	var d Decision
	if cl.Renewal != nil && cl.hasExp {
		if done := c.renew(r, token, via, v, now, &d); done {
			return d
		}
	}
	if via == "query" && d.Redirect == "" {
		// The URL's token becomes the session's cookie, so the segments a
		// player asks for next (relative URLs, without the query) carry it.
		d.Headers = append(d.Headers, [2]string{"Set-Cookie", c.sessionCookie(r, token, cl)})
	}
	return d
}

// verify returns what is known of a token, checking it the first time.
func (c *CAT) verify(token string) *verified {
	if v, ok := c.cache.Load(token); ok {
		return v.(*verified)
	}
	v := &verified{}
	v.claims, v.key, v.err = c.verifyToken(token)
	if c.count.Add(1) > maxCached {
		c.cache.Clear()
		c.count.Store(1)
	}
	actual, _ := c.cache.LoadOrStore(token, v)
	return actual.(*verified)
}

// reasonError is an error with the short reason a refusal reports.
type reasonError struct {
	reason string
	err    error
}

func (e *reasonError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *reasonError) Unwrap() error { return e.err }

func reasonOf(err error) string {
	var re *reasonError
	if errors.As(err, &re) {
		return re.reason
	}
	return "invalid"
}

// Verify checks a token's signature and claims' structure (not the clock
// or a request); it returns the claims. For tools and tests.
func (c *CAT) Verify(token string) (*Claims, error) {
	cl, _, err := c.verifyToken(token)
	return cl, err
}

func (c *CAT) verifyToken(token string) (*Claims, *Key, error) {
	t, err := parseToken(token)
	if err != nil {
		return nil, nil, &reasonError{"malformed", err}
	}
	candidates := c.cfg.Keys
	if t.kid != nil {
		candidates = c.byID[string(t.kid)]
		if len(candidates) == 0 {
			return nil, nil, &reasonError{"unknown-key", fmt.Errorf("no key %q", t.kid)}
		}
	}
	var key *Key
	for _, k := range candidates {
		if t.verify(k) {
			key = k
			break
		}
	}
	if key == nil {
		return nil, nil, &reasonError{"signature", errors.New("the tag or signature does not verify")}
	}
	cl, err := parseClaims(t.claims)
	if err != nil {
		return nil, nil, &reasonError{"unsupported", err}
	}
	if c.cfg.Issuer != "" && cl.Issuer != c.cfg.Issuer {
		return nil, nil, &reasonError{"issuer", fmt.Errorf("issuer %q", cl.Issuer)}
	}
	if len(cl.Audience) > 0 || len(c.cfg.Audience) > 0 {
		// RFC 7519 4.1.3: a token for an audience must name this one.
		ok := false
		for _, a := range cl.Audience {
			ok = ok || slices.Contains(c.cfg.Audience, a)
		}
		if !ok {
			return nil, nil, &reasonError{"audience", fmt.Errorf("audience %q", cl.Audience)}
		}
	}
	return cl, key, nil
}

// firstUse records a catreplay=1 token's use and reports whether it was
// the first.
func (c *CAT) firstUse(token string, cl *Claims) bool {
	id := string(cl.ID)
	if id == "" {
		id = token
	}
	now := c.now().Unix()
	c.seenMu.Lock()
	defer c.seenMu.Unlock()
	if exp, ok := c.seen[id]; ok && (exp == 0 || exp > now) {
		return false
	}
	if len(c.seen) >= maxCached {
		for k, exp := range c.seen {
			if exp != 0 && exp <= now {
				delete(c.seen, k)
			}
		}
	}
	if len(c.seen) >= maxCached {
		return false // full of live single-use tokens: refuse rather than forget one
	}
	c.seen[id] = cl.Expires
	return true
}

// renew hands out a fresh token when the request falls in the renewal
// window of a catr token, the way the claim asks; it reports true when
// the decision is final (a redirect).
func (c *CAT) renew(r *Request, token, via string, v *verified, now int64, d *Decision) bool {
	rn := v.claims.Renewal
	deadline := rn.Deadline
	if !rn.hasDeadline {
		deadline = 60
	}
	if now < v.claims.Expires-deadline || !v.key.CanMint() {
		return false
	}
	kind := rn.Type
	if kind == RenewAutomatic {
		kind = map[string]int{"header": RenewHeader, "cookie": RenewCookie, "query": RenewRedirect}[via]
	}
	maxAge := rn.ExpAdd / 2
	if kind == RenewRedirect {
		if v.claims.IssuedAt != 0 && now-v.claims.IssuedAt < redirectMinAge {
			// A token whose renewal window opens at once (expadd no longer
			// than deadline) would redirect to a successor that redirects
			// again: a young token is served as it is, and renewed later.
			return false
		}
		// The successor a redirect names is young, for the same reason.
		maxAge = redirectMinAge / 2
	}
	fresh, err := c.renewedToken(v, now, maxAge)
	if err != nil {
		return false // the old token is still valid: serve, renew next time
	}
	d.Renewed = true
	switch kind {
	case RenewHeader:
		name := rn.HeaderName
		if name == "" {
			name = HeaderName
		}
		d.Headers = append(d.Headers, [2]string{name, strings.Join(append([]string{fresh}, rn.HeaderParams...), "; ")})
	case RenewCookie:
		name := rn.CookieName
		if name == "" {
			name = CookieName
		}
		params := rn.CookieParams
		if len(params) == 0 {
			params = c.cookieParams(r, v.claims, now+rn.ExpAdd)
		}
		d.Headers = append(d.Headers, [2]string{"Set-Cookie", strings.Join(append([]string{name + "=" + fresh}, params...), "; ")})
	case RenewRedirect:
		code := rn.Code
		if code == 0 {
			code = http.StatusFound
		}
		q := setQueryValue(r.Query, QueryParam, fresh)
		d.Redirect, d.RedirectCode = r.Path+"?"+q, code
		return true
	}
	return false
}

// renewedToken is the token's successor: the same claims with a new
// issue time, expiry and id, sealed with the same key. One is made per
// token and handed to every request in its window.
func (c *CAT) renewedToken(v *verified, now, maxAge int64) (string, error) {
	v.renewMu.Lock()
	defer v.renewMu.Unlock()
	if v.renewed != "" && now-v.renewedIat < maxAge {
		return v.renewed, nil
	}
	spec := TokenSpec{Issuer: v.claims.Issuer, Subject: v.claims.Subject, Audience: v.claims.Audience,
		Methods: v.claims.Methods, Replay: v.claims.Replay, URI: v.claims.URI, renewal: v.claims.Renewal,
		IssuedAt: time.Unix(now, 0), Expires: time.Unix(now+v.claims.Renewal.ExpAdd, 0), NotBefore: v.claims.NotBefore}
	t, err := Mint(v.key, spec)
	if err != nil {
		return "", err
	}
	v.renewed, v.renewedIat = t, now
	return t, nil
}

// sessionCookie is the Set-Cookie value that carries a URL's token to the
// requests that follow.
func (c *CAT) sessionCookie(r *Request, token string, cl *Claims) string {
	return strings.Join(append([]string{CookieName + "=" + token}, c.cookieParams(r, cl, cl.Expires)...), "; ")
}

// cookieParams are the session cookie's attributes: the asset's folder
// (or /vod/), HttpOnly, SameSite, Secure over https, and a Max-Age that
// ends with the token.
func (c *CAT) cookieParams(r *Request, cl *Claims, expires int64) []string {
	path := "/vod/"
	if c.cfg.CookiePath != "vod" {
		if rest, ok := strings.CutPrefix(r.Path, "/vod/"); ok {
			if asset, _, found := strings.Cut(rest, "/"); found {
				path = "/vod/" + asset + "/"
			}
		}
	}
	params := []string{"Path=" + path, "HttpOnly"}
	if r.Secure {
		params = append(params, "Secure", "SameSite=None")
	} else {
		params = append(params, "SameSite=Lax")
	}
	if cl.hasExp || expires > 0 {
		params = append(params, "Max-Age="+strconv.FormatInt(max(0, expires-c.now().Unix()), 10))
	}
	return params
}

// requestURI splits the request's URI into catu's parts.
func requestURI(r *Request) uriParts {
	u := uriParts{scheme: "http", path: r.Path, query: queryWithoutToken(r.Query)}
	if r.Secure {
		u.scheme = "https"
	}
	host := r.Host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host, u.port = host[:i], host[i+1:]
	}
	u.host = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	if u.port == "80" && !r.Secure || u.port == "443" && r.Secure {
		u.port = "" // the default port is no port, as URL parsers have it
	}
	return u
}

// TokenSpec describes a token to mint.
type TokenSpec struct {
	Issuer    string
	Subject   string
	Audience  []string
	IssuedAt  time.Time // now when zero
	Expires   time.Time // none when zero
	NotBefore int64
	// PathPrefix, when set, restricts the token to URIs whose path starts
	// with it (a catu prefix match).
	PathPrefix string
	URI        []URIMatch // more catu conditions
	Methods    []string
	Replay     int
	// Renew, when positive, adds a catr claim: renew in the last Renew of
	// the token's life, the new one living as long as this one.
	Renew     time.Duration
	RenewType int // catr type (RenewAutomatic by default)
	ID        []byte
	renewal   *Renewal
}

// Mint makes a token with key (HS256 tokens are COSE_Mac0, ES256 ones
// COSE_Sign1, both in a CWT tag, base64url without padding).
func Mint(key *Key, s TokenSpec) (string, error) {
	if !key.CanMint() {
		return "", fmt.Errorf("key %q cannot mint tokens", key.ID)
	}
	// A token that could never open anything is a mistake to say now, not
	// a 403 for every viewer later.
	if s.PathPrefix != "" && !strings.HasPrefix(s.PathPrefix, "/") {
		return "", fmt.Errorf("path prefix %q: want a path from the root, such as /vod/NAME/", s.PathPrefix)
	}
	for _, m := range s.Methods {
		// A method is an RFC 9110 token, as a field name is.
		if !httpguts.ValidHeaderFieldName(m) {
			return "", fmt.Errorf("method %q: want an HTTP method such as GET", m)
		}
	}
	iat := s.IssuedAt
	if iat.IsZero() {
		iat = time.Now()
	}
	m := map[int64]any{claimIat: iat.Unix(), claimCatv: 1}
	if s.Issuer != "" {
		m[claimIss] = s.Issuer
	}
	if s.Subject != "" {
		m[claimSub] = s.Subject
	}
	switch len(s.Audience) {
	case 0:
	case 1:
		m[claimAud] = s.Audience[0]
	default:
		m[claimAud] = s.Audience
	}
	if !s.Expires.IsZero() {
		m[claimExp] = s.Expires.Unix()
	}
	if s.NotBefore != 0 {
		m[claimNbf] = s.NotBefore
	}
	id := s.ID
	if id == nil {
		id = make([]byte, 16)
		rand.Read(id)
	}
	m[claimCti] = id
	if s.Replay != 0 {
		m[claimCatreplay] = s.Replay
	}
	if len(s.Methods) > 0 {
		m[claimCatm] = s.Methods
	}
	uri := s.URI
	if s.PathPrefix != "" {
		uri = append(slices.Clone(uri), URIMatch{Part: 3, Match: 1, Value: s.PathPrefix})
	}
	if len(uri) > 0 {
		catu := map[int64]map[int64]any{}
		for _, u := range uri {
			if catu[int64(u.Part)] == nil {
				catu[int64(u.Part)] = map[int64]any{}
			}
			var v any = u.Value
			switch u.Match {
			case 4:
				v = []any{u.Value}
			case -1, -2:
				v = u.hash
			}
			catu[int64(u.Part)][int64(u.Match)] = v
		}
		m[claimCatu] = catu
	}
	switch {
	case s.renewal != nil:
		m[claimCatr] = s.renewal.raw
	case s.Renew > 0:
		if s.Expires.IsZero() {
			return "", errors.New("a renewable token needs an expiry")
		}
		m[claimCatr] = map[int64]any{0: s.RenewType, 1: int64(s.Expires.Sub(iat).Seconds()), 2: int64(s.Renew.Seconds())}
	}
	claims, err := encMode.Marshal(m)
	if err != nil {
		return "", err
	}
	return seal(claims, key)
}
