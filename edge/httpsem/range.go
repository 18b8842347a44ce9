// Package httpsem holds the parts of HTTP's semantics (RFC 9110) that
// every deepcast node applies the same way in front of its handlers: how
// a Range header is read before net/http's ServeContent answers it, and
// which methods a path allows when a request uses another. It lives
// beside the edge; the origin and every edge tier share it.
package httpsem

import (
	"net/http"
	"strings"
)

// unit is the one range unit deepcast serves (RFC 9110 §14.1).
const unit = "bytes="

// NormalizeRange makes h's Range header one that ServeContent reads as RFC
// 9110 means it:
//   - a Range in another unit (items=0-1), or with no unit at all, is
//     removed: a server must ignore a unit it does not know and send the
//     whole representation, where ServeContent would answer 416;
//   - the unit's name is case-insensitive, so Bytes=0-99 becomes
//     bytes=0-99, which ServeContent would otherwise refuse.
//
// A malformed bytes range is left as it is: ServeContent answers it 416,
// as nginx does.
func NormalizeRange(h http.Header) {
	v := h["Range"]
	if len(v) == 0 {
		return
	}
	r := strings.TrimLeft(v[0], " \t")
	switch {
	case len(r) < len(unit) || !strings.EqualFold(r[:len(unit)], unit):
		delete(h, "Range")
	case r != v[0] || r[:len(unit)] != unit || len(v) > 1:
		h["Range"] = []string{unit + r[len(unit):]}
	}
}

// Ranges is NormalizeRange as middleware, in front of every handler that
// may answer a Range.
func Ranges(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		NormalizeRange(r.Header)
		next.ServeHTTP(w, r)
	})
}
