package auth

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// Claim labels (RFC 8392 and CTA-5007).
const (
	claimIss       = 1
	claimSub       = 2
	claimAud       = 3
	claimExp       = 4
	claimNbf       = 5
	claimIat       = 6
	claimCti       = 7
	claimCatreplay = 308
	claimCatv      = 310
	claimCatu      = 312
	claimCatm      = 313
	claimCatr      = 323
)

// claimNames names the CAT claims deepcast knows but does not enforce, so
// a refusal can say which one it was.
var claimNames = map[int64]string{
	8: "cnf", 282: "geohash", 309: "catpor", 311: "catnip", 314: "catalpn", 315: "cath",
	316: "catgeoiso3166", 317: "catgeocoord", 318: "catgeoalt", 319: "cattpk", 320: "catifdata",
	321: "catdpop", 322: "catif",
}

// Claims are a token's claims, as deepcast enforces them.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  []string
	Expires   int64 // Unix seconds; 0: none
	NotBefore int64
	IssuedAt  int64
	ID        []byte // cti
	Replay    int    // catreplay: 0 permitted, 1 prohibited, 2 reuse detection
	URI       []URIMatch
	Methods   []string // catm; none: any method
	Renewal   *Renewal
	hasExp    bool
}

// URIMatch is one condition of a catu claim: a part of the request's URI
// and how it must match.
type URIMatch struct {
	Part  int // 0 scheme, 1 host, 2 port, 3 path, 4 query, 5 parent-path, 6 filename, 7 stem, 8 extension
	Match int // 0 exact, 1 prefix, 2 suffix, 3 contains, 4 regex, -1 sha256, -2 sha512/256
	Value string
	re    *regexp.Regexp
	hash  []byte
}

// Renewal is a catr claim: how and when a fresh token goes back to the
// client before this one expires.
type Renewal struct {
	Type         int   // 0 automatic, 1 cookie, 2 header, 3 redirect
	ExpAdd       int64 // the new token's lifetime, seconds
	Deadline     int64 // renew in the last Deadline seconds of the old one
	CookieName   string
	HeaderName   string
	CookieParams []string
	HeaderParams []string
	Code         int // the redirect status
	hasDeadline  bool
	raw          cbor.RawMessage
}

// Renewal types.
const (
	RenewAutomatic = 0
	RenewCookie    = 1
	RenewHeader    = 2
	RenewRedirect  = 3
)

// parseClaims reads the claims deepcast enforces; any other claim is
// refused (CTA-5007: a validator must not accept a token whose
// restrictions it cannot check).
func parseClaims(m map[int64]cbor.RawMessage) (*Claims, error) {
	c := &Claims{}
	for label, raw := range m {
		var err error
		switch label {
		case claimIss:
			err = decMode.Unmarshal(raw, &c.Issuer)
		case claimSub:
			err = decMode.Unmarshal(raw, &c.Subject)
		case claimAud:
			c.Audience, err = textOrList(raw)
		case claimExp:
			c.Expires, err = numericDate(raw)
			c.hasExp = true
		case claimNbf:
			c.NotBefore, err = numericDate(raw)
		case claimIat:
			c.IssuedAt, err = numericDate(raw)
		case claimCti:
			err = decMode.Unmarshal(raw, &c.ID)
		case claimCatreplay:
			err = decMode.Unmarshal(raw, &c.Replay)
			if err == nil && (c.Replay < 0 || c.Replay > 2) {
				err = fmt.Errorf("value %d", c.Replay)
			}
		case claimCatv:
			var v int64
			if err = decMode.Unmarshal(raw, &v); err == nil && v != 1 {
				err = fmt.Errorf("version %d: only 1 is supported", v)
			}
		case claimCatu:
			c.URI, err = parseCatu(raw)
		case claimCatm:
			c.Methods, err = textOrList(raw)
		case claimCatr:
			c.Renewal, err = parseCatr(raw)
		default:
			if name, ok := claimNames[label]; ok {
				return nil, fmt.Errorf("claim %s is not supported", name)
			}
			return nil, fmt.Errorf("claim %d is not supported", label)
		}
		if err != nil {
			return nil, fmt.Errorf("claim %s: %w", labelName(label), err)
		}
	}
	return c, nil
}

func labelName(l int64) string {
	names := map[int64]string{claimIss: "iss", claimSub: "sub", claimAud: "aud", claimExp: "exp", claimNbf: "nbf",
		claimIat: "iat", claimCti: "cti", claimCatreplay: "catreplay", claimCatv: "catv", claimCatu: "catu",
		claimCatm: "catm", claimCatr: "catr"}
	if n, ok := names[l]; ok {
		return n
	}
	return fmt.Sprint(l)
}

// numericDate reads a CWT NumericDate: an integer or a float of seconds
// (floats are cut to whole seconds).
func numericDate(raw cbor.RawMessage) (int64, error) {
	var i int64
	if err := decMode.Unmarshal(raw, &i); err == nil {
		return i, nil
	}
	var f float64
	if err := decMode.Unmarshal(raw, &f); err != nil || math.IsNaN(f) || math.Abs(f) > 1<<53 {
		return 0, errors.New("not a NumericDate")
	}
	return int64(f), nil
}

// textOrList reads a text string or an array of them (aud, catm).
func textOrList(raw cbor.RawMessage) ([]string, error) {
	var one string
	if err := decMode.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var list []string
	if err := decMode.Unmarshal(raw, &list); err != nil {
		return nil, errors.New("want a text string or an array of them")
	}
	return list, nil
}

func parseCatu(raw cbor.RawMessage) ([]URIMatch, error) {
	var parts map[int64]map[int64]cbor.RawMessage
	if err := decMode.Unmarshal(raw, &parts); err != nil {
		return nil, errors.New("want a map of URI parts to match maps")
	}
	var out []URIMatch
	for part, matches := range parts {
		if part < 0 || part > 8 {
			return nil, fmt.Errorf("URI part %d is not supported", part)
		}
		if len(matches) == 0 {
			return nil, fmt.Errorf("URI part %d: no match", part)
		}
		for kind, v := range matches {
			m := URIMatch{Part: int(part), Match: int(kind)}
			switch kind {
			case 0, 1, 2, 3:
				if err := decMode.Unmarshal(v, &m.Value); err != nil {
					return nil, fmt.Errorf("URI part %d: match value is not text", part)
				}
			case 4:
				var re []any
				if err := decMode.Unmarshal(v, &re); err != nil || len(re) == 0 {
					return nil, fmt.Errorf("URI part %d: a regex match is an array [pattern, …]", part)
				}
				pattern, ok := re[0].(string)
				if !ok {
					return nil, fmt.Errorf("URI part %d: regex pattern is not text", part)
				}
				m.Value = pattern
				if err := compileRegex(&m); err != nil {
					return nil, fmt.Errorf("URI part %d: %w", part, err)
				}
			case -1, -2:
				// A byte string per CTA-5007; some minters send hex text.
				if err := decMode.Unmarshal(v, &m.hash); err != nil {
					var text string
					if decMode.Unmarshal(v, &text) != nil {
						return nil, fmt.Errorf("URI part %d: hash is neither bytes nor hex", part)
					}
					if m.hash, err = hex.DecodeString(text); err != nil {
						return nil, fmt.Errorf("URI part %d: hash is neither bytes nor hex", part)
					}
				}
			default:
				return nil, fmt.Errorf("URI part %d: match type %d is not supported", part, kind)
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// compileRegex compiles a regex match's pattern (RE2 syntax, which takes
// the POSIX extended expressions CTA-5007 names, bar back-references).
func compileRegex(m *URIMatch) error {
	if len(m.Value) > 1024 {
		return errors.New("regex longer than 1024 bytes")
	}
	re, err := regexp.Compile(m.Value)
	if err != nil {
		return fmt.Errorf("regex: %w", err)
	}
	m.re = re
	return nil
}

func parseCatr(raw cbor.RawMessage) (*Renewal, error) {
	var m map[int64]cbor.RawMessage
	if err := decMode.Unmarshal(raw, &m); err != nil {
		return nil, errors.New("want a map")
	}
	r := &Renewal{Type: -1, raw: raw}
	for label, v := range m {
		var err error
		switch label {
		case 0:
			err = decMode.Unmarshal(v, &r.Type)
		case 1:
			err = decMode.Unmarshal(v, &r.ExpAdd)
		case 2:
			err = decMode.Unmarshal(v, &r.Deadline)
			r.hasDeadline = true
		case 3:
			err = decMode.Unmarshal(v, &r.CookieName)
		case 4:
			err = decMode.Unmarshal(v, &r.HeaderName)
		case 5:
			r.CookieParams, err = textOrList(v)
		case 6:
			r.HeaderParams, err = textOrList(v)
		case 7:
			err = decMode.Unmarshal(v, &r.Code)
		default:
			return nil, fmt.Errorf("parameter %d is not supported", label)
		}
		if err != nil {
			return nil, fmt.Errorf("parameter %d: %w", label, err)
		}
	}
	switch {
	case r.Type < RenewAutomatic || r.Type > RenewRedirect:
		return nil, fmt.Errorf("renewal type %d is not supported", r.Type)
	case r.ExpAdd <= 0:
		return nil, errors.New("expadd missing or not positive")
	case r.Deadline < 0:
		return nil, errors.New("deadline is negative")
	case r.Code != 0 && (r.Code < 300 || r.Code > 399):
		return nil, fmt.Errorf("redirect code %d", r.Code)
	}
	for _, s := range append(append([]string{r.CookieName, r.HeaderName}, r.CookieParams...), r.HeaderParams...) {
		if strings.ContainsAny(s, "\r\n\x00") {
			return nil, errors.New("a name or parameter holds a line break")
		}
	}
	if r.CookieName != "" && !validHeaderToken(r.CookieName) || r.HeaderName != "" && !validHeaderToken(r.HeaderName) {
		return nil, errors.New("cookie or header name is not a token")
	}
	return r, nil
}

// validHeaderToken reports an RFC 9110 token (header and cookie names).
func validHeaderToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return s != ""
}

// uriParts are the parts of a request URI the catu claim matches, in the
// forms CTA-5007 describes (and @eyevinn/cat computes).
type uriParts struct {
	scheme, host, port, path, query string
}

// part returns one part of the URI by catu label.
func (u uriParts) part(label int) string {
	file := u.path[strings.LastIndexByte(u.path, '/')+1:]
	switch label {
	case 0:
		return u.scheme
	case 1:
		return u.host
	case 2:
		return u.port
	case 3:
		return u.path
	case 4:
		return u.query
	case 5:
		return u.path[:max(0, strings.LastIndexByte(u.path, '/'))]
	case 6:
		return file
	case 7:
		if i := strings.IndexByte(file, '.'); i >= 0 {
			return file[:i]
		}
		return file
	case 8:
		if i := strings.IndexByte(file, '.'); i >= 0 {
			return file[i:]
		}
		return ""
	}
	return ""
}

// matches reports whether the URI meets the condition.
func (m *URIMatch) matches(u uriParts) bool {
	v := u.part(m.Part)
	switch m.Match {
	case 0:
		return v == m.Value
	case 1:
		return strings.HasPrefix(v, m.Value)
	case 2:
		return strings.HasSuffix(v, m.Value)
	case 3:
		return strings.Contains(v, m.Value)
	case 4:
		return m.re.MatchString(v)
	case -1:
		h := sha256.Sum256([]byte(v))
		return string(h[:]) == string(m.hash)
	case -2:
		h := sha512.Sum512_256([]byte(v))
		return string(h[:]) == string(m.hash)
	}
	return false
}

// queryWithoutToken is the query catu's query part compares: the
// parameters without the token's own, sorted by name.
func queryWithoutToken(raw string) string {
	if raw == "" {
		return ""
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return raw
	}
	q.Del(QueryParam)
	return q.Encode()
}
