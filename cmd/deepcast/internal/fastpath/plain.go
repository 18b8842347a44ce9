package fastpath

import "time"

// The rules by which the front takes a request, for a front of another
// protocol (HTTP/2) that answers the same requests with the same
// Responder: one definition of "a plain whole-object fetch".

// PlainTarget splits a request target into the path and query the front
// takes (see Request), or reports false for any other target.
func PlainTarget(target string) (path, query string, ok bool) {
	if len(target) > maxTarget {
		return "", "", false
	}
	path, query, hasQuery := cut(target, '?')
	if !validPath(path) || hasQuery && !validQuery(query) {
		return "", "", false
	}
	return path, query, true
}

// PlainHost reports a plain host[:port] authority.
func PlainHost(host string) bool { return validHost(host) }

// PlainHeader reports whether a request header leaves the request a plain
// whole-object fetch (no range, condition, body or upgrade, nothing the
// caches act on).
func PlainHeader(name, value string) bool { return acceptableHeader(name, value) }

// AppendDate appends now as an HTTP date, formatted once a second.
func AppendDate(b []byte, now time.Time) []byte { return appendDate(b, now) }

func cut(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
