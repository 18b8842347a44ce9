package auth

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultSecureLinkMD5 is the expression of nginx's secure_link_md5
// documentation example: expiry, URI, client address and the secret.
const DefaultSecureLinkMD5 = "$secure_link_expires$uri$remote_addr $secret"

// SecureLink checks links made for nginx's secure_link module:
// ?md5=HASH&expires=UNIX, where HASH is the unpadded base64url MD5 of the
// expression secure_link_md5 names, with nginx's variables
// $secure_link_expires, $uri, $remote_addr, $host, $arg_NAME, and $secret
// standing for the key file's secret (nginx writes it into the
// expression itself).
type SecureLink struct {
	expr   []exprPart
	secret string
	now    func() time.Time
}

type exprPart struct {
	literal string
	varName string // "" for a literal
}

// NewSecureLink makes a secure_link checker for an expression (the
// default when empty) and a secret.
func NewSecureLink(expr, secret string, now func() time.Time) (*SecureLink, error) {
	if expr == "" {
		expr = DefaultSecureLinkMD5
	}
	if secret == "" {
		return nil, errors.New("auth: secure_link needs a secret")
	}
	if now == nil {
		now = time.Now
	}
	s := &SecureLink{secret: secret, now: now}
	for expr != "" {
		i := strings.IndexByte(expr, '$')
		if i < 0 {
			s.expr = append(s.expr, exprPart{literal: expr})
			break
		}
		if i > 0 {
			s.expr = append(s.expr, exprPart{literal: expr[:i]})
		}
		expr = expr[i+1:]
		j := 0
		for j < len(expr) && (expr[j] == '_' || expr[j] >= 'a' && expr[j] <= 'z' || expr[j] >= 'A' && expr[j] <= 'Z' || expr[j] >= '0' && expr[j] <= '9') {
			j++
		}
		name := expr[:j]
		switch {
		case name == "secure_link_expires", name == "uri", name == "remote_addr", name == "host", name == "secret",
			strings.HasPrefix(name, "arg_") && len(name) > 4:
		default:
			return nil, errors.New("auth: secure_link_md5: unknown variable $" + name)
		}
		s.expr = append(s.expr, exprPart{varName: name})
		expr = expr[j:]
	}
	return s, nil
}

// Strip implements Checker: the link's own parameters.
func (s *SecureLink) Strip() []string { return []string{"md5", "expires"} }

// Check implements Checker.
func (s *SecureLink) Check(r *Request) Decision {
	hash, expires := queryValue(r.Query, "md5"), queryValue(r.Query, "expires")
	if hash == "" || expires == "" {
		return refuse(http.StatusUnauthorized, "missing")
	}
	exp, err := strconv.ParseInt(expires, 10, 64)
	if err != nil || exp <= 0 {
		return refuse(http.StatusForbidden, "malformed")
	}
	want := s.Hash(exp, r)
	got, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(hash, "="))
	// In constant time: a comparison that stops at the first wrong byte
	// tells a client, by how long it took, how much of its guess is right.
	if err != nil || subtle.ConstantTimeCompare(got, want[:]) != 1 {
		return refuse(http.StatusForbidden, "signature")
	}
	if s.now().Unix() > exp {
		return refuse(http.StatusForbidden, "expired")
	}
	return Decision{}
}

// Hash is the MD5 of the expression for a request and expiry.
func (s *SecureLink) Hash(expires int64, r *Request) [md5.Size]byte {
	var b strings.Builder
	for _, p := range s.expr {
		switch p.varName {
		case "":
			b.WriteString(p.literal)
		case "secure_link_expires":
			b.WriteString(strconv.FormatInt(expires, 10))
		case "uri":
			b.WriteString(r.Path)
		case "remote_addr":
			b.WriteString(remoteIP(r.Remote))
		case "host":
			h := r.Host
			if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
				h = h[:i]
			}
			b.WriteString(strings.ToLower(h))
		case "secret":
			b.WriteString(s.secret)
		default:
			b.WriteString(queryValue(r.Query, strings.TrimPrefix(p.varName, "arg_")))
		}
	}
	return md5.Sum([]byte(b.String()))
}

// Link is the query (md5=…&expires=…) that makes a link to path valid
// until expires for a client at remote.
func (s *SecureLink) Link(path, remote string, expires time.Time) string {
	sum := s.Hash(expires.Unix(), &Request{Path: path, Remote: remote})
	return "md5=" + base64.RawURLEncoding.EncodeToString(sum[:]) + "&expires=" + strconv.FormatInt(expires.Unix(), 10)
}

// remoteIP drops the port of an ip:port address.
func remoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}
