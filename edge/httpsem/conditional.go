package httpsem

import (
	"net/http"
	"strings"
)

// NoneMatch reports whether an If-None-Match field value names etag, by
// the weak comparison RFC 9110 (13.1.2) asks for there: "*", or any tag
// of the list whose opaque part equals etag's, W/ or not. A malformed
// list matches nothing from the first malformed member on (the request
// is then answered in full, never wrongly 304).
func NoneMatch(field, etag string) bool {
	want, ok := opaqueTag(etag)
	if !ok {
		return false
	}
	for s := field; ; {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return false
		}
		if s[0] == '*' {
			return true
		}
		s = strings.TrimPrefix(s, "W/")
		if s == "" || s[0] != '"' {
			return false
		}
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return false
		}
		if s[1:1+end] == want {
			return true
		}
		s = s[end+2:]
	}
}

// opaqueTag is the quoted part of an entity tag, without W/ and quotes.
func opaqueTag(etag string) (string, bool) {
	etag = strings.TrimPrefix(etag, "W/")
	if len(etag) < 2 || etag[0] != '"' || etag[len(etag)-1] != '"' || strings.IndexByte(etag[1:len(etag)-1], '"') >= 0 {
		return "", false
	}
	return etag[1 : len(etag)-1], true
}

// NotModified reports whether a GET or HEAD with the fields h, for a
// representation with the validators etag and lastModified (either may
// be ""), is answered 304 Not Modified, in RFC 9110's order (13.2.2): an
// If-None-Match decides alone; without one, If-Modified-Since does, at
// the one-second resolution of HTTP dates.
func NotModified(h http.Header, etag, lastModified string) bool {
	if inm := h.Values("If-None-Match"); len(inm) > 0 {
		return etag != "" && NoneMatch(strings.Join(inm, ","), etag)
	}
	ims := h.Get("If-Modified-Since")
	if ims == "" || lastModified == "" {
		return false
	}
	since, err := http.ParseTime(ims)
	if err != nil {
		return false
	}
	modified, err := http.ParseTime(lastModified)
	return err == nil && !modified.After(since)
}
