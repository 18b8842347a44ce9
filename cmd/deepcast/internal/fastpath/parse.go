package fastpath

import "bytes"

// headEnd returns the length of the request head at the start of b,
// through its blank line, or -1 when b does not hold a whole head yet.
func headEnd(b []byte) int {
	i := bytes.Index(b, []byte("\r\n\r\n"))
	if i < 0 {
		return -1
	}
	return i + 4
}

// maxPath bounds the paths the front takes; longer ones go to net/http.
const maxPath = 1024

// parseHead reads a request head (request line and header lines through
// the blank line) and reports whether the front may answer it: GET or HEAD,
// HTTP/1.1, an origin-form path of unreserved characters and slashes, one
// Host, and no header that asks for more than a whole object (ranges,
// conditions, a body, Connection options, upgrades, CMCD or sibling
// headers the caches act on). ok is false for everything else, including
// anything malformed: net/http then answers it, errors included.
func parseHead(b []byte) (head bool, path string, ok bool) {
	eol := bytes.Index(b, []byte("\r\n"))
	if eol < 0 {
		return false, "", false
	}
	line := b[:eol]
	switch {
	case bytes.HasPrefix(line, []byte("GET ")):
		line = line[4:]
	case bytes.HasPrefix(line, []byte("HEAD ")):
		line, head = line[5:], true
	default:
		return false, "", false
	}
	target, proto, found := bytes.Cut(line, []byte(" "))
	if !found || string(proto) != "HTTP/1.1" || !validPath(target) {
		return false, "", false
	}
	hosts := 0
	rest := b[eol+2:]
	for {
		eol = bytes.Index(rest, []byte("\r\n"))
		if eol < 0 {
			return false, "", false
		}
		if eol == 0 {
			break // the blank line
		}
		name, value, found := bytes.Cut(rest[:eol], []byte(":"))
		if !found || !validToken(name) || !validValue(value) {
			return false, "", false
		}
		if !acceptableHeader(name, bytes.Trim(value, " \t")) {
			return false, "", false
		}
		if len(name) == 4 && bytes.EqualFold(name, []byte("Host")) {
			hosts++
		}
		rest = rest[eol+2:]
	}
	if hosts != 1 {
		return false, "", false
	}
	return head, string(target), true
}

// validPath accepts "/" followed by unreserved characters (RFC 3986) and
// slashes: no escapes, no query, no fragment.
func validPath(p []byte) bool {
	if len(p) == 0 || len(p) > maxPath || p[0] != '/' {
		return false
	}
	for _, c := range p {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '/' || c == '-' || c == '.' || c == '_' || c == '~':
		default:
			return false
		}
	}
	return true
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
func acceptableHeader(name, value []byte) bool {
	switch {
	case bytes.EqualFold(name, []byte("Connection")):
		return bytes.EqualFold(value, []byte("keep-alive"))
	case bytes.EqualFold(name, []byte("Range")),
		bytes.EqualFold(name, []byte("Content-Length")),
		bytes.EqualFold(name, []byte("Transfer-Encoding")),
		bytes.EqualFold(name, []byte("Expect")),
		bytes.EqualFold(name, []byte("Upgrade")),
		bytes.EqualFold(name, []byte("Trailer")),
		hasFoldPrefix(name, "If-"),
		hasFoldPrefix(name, "CMCD-"),
		hasFoldPrefix(name, "X-Deepcast-"):
		return false
	}
	return true
}

func hasFoldPrefix(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && bytes.EqualFold(b[:len(prefix)], []byte(prefix))
}
