package fastpath

import (
	"bytes"
	"strings"
)

// headEnd returns the length of the request head at the start of b,
// through its blank line, or -1 when b does not hold a whole head yet. A
// bare LF (not after a CR) ends the head there: the front does not take
// such a head (parseHead refuses it), and net/http, which reads a bare LF
// as a line end, must get it at once rather than after a wait for a CRLF
// that may never come.
func headEnd(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		j += i
		if j == 0 || b[j-1] != '\r' || j >= 3 && b[j-2] == '\n' && b[j-3] == '\r' {
			return j + 1
		}
		i = j + 1
	}
}

// hasBareLF reports an LF in b that does not follow a CR.
func hasBareLF(b []byte) bool {
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			return true
		}
	}
	return false
}

// maxPath bounds the paths the front takes, and maxTarget path and query
// together (a CMCD query is a few hundred bytes); longer ones go to
// net/http.
const (
	maxPath   = 1024
	maxTarget = 3072
)

// parseHead reads a request head (request line and header lines through
// the blank line) and reports whether the front may answer it: GET or HEAD,
// HTTP/1.1, an origin-form target whose path has only unreserved characters
// and slashes and whose query (if any) only query characters, one Host,
// and no header that asks for more than a whole object (ranges,
// conditions, a body, Connection options, upgrades, CMCD or sibling
// headers the caches act on). ok is false for everything else, including
// anything malformed: net/http then answers it, errors included. The
// Request it returns has no Remote.
func parseHead(b []byte) (req Request, ok bool) {
	if !bytes.HasSuffix(b, []byte("\r\n\r\n")) || hasBareLF(b) {
		return Request{}, false
	}
	eol := bytes.Index(b, []byte("\r\n"))
	if eol < 0 {
		return Request{}, false
	}
	line := b[:eol]
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		line = line[4:]
	case bytes.HasPrefix(line, []byte("HEAD ")):
		line, req.Head = line[5:], true
	default:
		return Request{}, false
	}
	target, proto, found := bytes.Cut(line, []byte(" "))
	if !found || string(proto) != "HTTP/1.1" || len(target) > maxTarget {
		return Request{}, false
	}
	path, query, hasQuery := bytes.Cut(target, []byte("?"))
	if !validPath(path) || hasQuery && !validQuery(query) {
		return Request{}, false
	}
	hosts := 0
	rest := b[eol+2:]
	for {
		eol = bytes.Index(rest, []byte("\r\n"))
		if eol < 0 {
			return Request{}, false
		}
		if eol == 0 {
			break // the blank line
		}
		name, value, found := bytes.Cut(rest[:eol], []byte(":"))
		if !found || !validToken(name) || !validValue(value) {
			return Request{}, false
		}
		if !acceptableHeader(name, bytes.Trim(value, " \t")) {
			return Request{}, false
		}
		switch {
		case foldEqual(name, "Host"):
			v := bytes.Trim(value, " \t")
			if !validHost(v) {
				return Request{}, false
			}
			req.Host = string(v)
			hosts++
		case foldEqual(name, "CTA-Common-Access-Token"):
			if req.Token != "" {
				return Request{}, false // two: net/http's to judge
			}
			req.Token = string(bytes.Trim(value, " \t"))
		case foldEqual(name, "Cookie"):
			// Several Cookie lines are one list (RFC 6265 5.4).
			v := string(bytes.Trim(value, " \t"))
			if req.Cookie != "" {
				v = req.Cookie + "; " + v
			}
			req.Cookie = v
		case foldEqual(name, "Accept-Encoding"):
			// A list header, as CDN-Loop.
			v := string(bytes.Trim(value, " \t"))
			if req.AcceptEncoding != "" {
				v = req.AcceptEncoding + ", " + v
			}
			req.AcceptEncoding = v
		case foldEqual(name, "CDN-Loop"):
			// A list header: several lines are one list (RFC 9110 5.3).
			v := string(bytes.Trim(value, " \t"))
			if req.Loop != "" {
				v = req.Loop + ", " + v
			}
			req.Loop = v
		}
		rest = rest[eol+2:]
	}
	if hosts != 1 {
		return Request{}, false
	}
	req.Path, req.Query = string(path), string(query)
	return req, true
}

// validPath accepts "/" followed by unreserved characters (RFC 3986) and
// slashes: no escapes, no query, no fragment.
func validPath[T string | []byte](p T) bool {
	if len(p) == 0 || len(p) > maxPath || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '/' || c == '-' || c == '.' || c == '_' || c == '~':
		default:
			return false
		}
	}
	return true
}

// validQuery accepts the query characters of RFC 3986 (unreserved,
// sub-delimiters, ":", "@", "/" and "?") and percent escapes of two hex
// digits: what players send (CMCD=bl%3D21300%2Cbr%3D3200...), and nothing
// that a parser downstream could read two ways.
func validQuery[T string | []byte](q T) bool {
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@/?", c) >= 0:
		case c == '%' && i+2 < len(q) && isHex(q[i+1]) && isHex(q[i+2]):
			i += 2
		default:
			return false
		}
	}
	return true
}

// validHost accepts a plain host[:port]: letters, digits, "-", ".", "_",
// "~", ":" and the brackets of an IPv6 literal. Anything else (spaces,
// userinfo, escapes) goes to net/http, which decides (it answers 400 to
// "a b" and "a@b").
func validHost[T string | []byte](b T) bool {
	if len(b) == 0 || len(b) > 255 {
		return false
	}
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' || c == '.' || c == '_' || c == '~' || c == ':' || c == '[' || c == ']':
		default:
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// validToken reports an RFC 9110 token (a header name).
func validToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || bytes.IndexByte([]byte(`"(),/:;<=>?@[\]{}`), c) >= 0 {
			return false
		}
	}
	return true
}

// validValue rejects control bytes in a header value (tab excepted); a
// value starting a continuation line never gets here because its line has
// no name.
func validValue(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// acceptableHeader reports whether a request header leaves the request a
// plain whole-object fetch.
func acceptableHeader[T string | []byte](name, value T) bool {
	if foldEqual(name, "Connection") {
		return foldEqual(value, "keep-alive")
	}
	for _, n := range refusedHeaders {
		if foldEqual(name, n) {
			return false
		}
	}
	for _, p := range refusedPrefixes {
		if len(name) >= len(p) && foldEqual(name[:len(p)], p) {
			return false
		}
	}
	return true
}

// refusedHeaders and refusedPrefixes name the request headers that make a
// request more than a plain whole-object fetch.
var (
	refusedHeaders  = []string{"Range", "Content-Length", "Transfer-Encoding", "Expect", "Upgrade", "Trailer"}
	refusedPrefixes = []string{"If-", "CMCD-", "X-Deepcast-"}
)

// foldEqual is ASCII case-insensitive equality of a header name or value
// with s.
func foldEqual[T string | []byte](b T, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
