// Package httpsem holds the parts of HTTP's semantics (RFC 9110, 9112)
// that every deepcast node applies the same way in front of its handlers:
// how a Range header is read before net/http's ServeContent answers it,
// which methods a path allows when a request uses another, and when a
// connection must close after its answer. It lives beside the edge; the
// origin, every edge tier and the router share it.
package httpsem

import (
	"math"
	"net/http"
	"strconv"
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
//     bytes=0-99, which ServeContent would otherwise refuse;
//   - a position too large for an int64 still has its meaning (§14.1.2): a
//     last-pos or a suffix-length past the end reaches the end, and a
//     first-pos past the end cannot be satisfied. ServeContent fails to
//     parse such numbers and answers 416 where the range asks for the
//     whole representation;
//   - a suffix range of length zero (bytes=-0) cannot be satisfied
//     (§14.1.1), where ServeContent answers 206 with an empty body and a
//     Content-Range whose last byte precedes its first;
//   - a set of more than MaxRanges ranges is removed, so the whole
//     representation is sent (§14.2 lets a server ignore "many small
//     ranges"). No player asks for more than a few, while a header of
//     thousands of one-byte ranges would cost a part header each, making
//     the answer bigger than the object, and for a library in an object
//     store a ranged GET each.
//
// A range set none of whose ranges can be satisfied, and a malformed one
// (bytes=abc, bytes=5-1, bytes=-+0: ServeContent would serve some of
// these), become a first-pos past any length, which ServeContent answers
// 416 with Content-Range bytes */LENGTH, as nginx answers them.
func NormalizeRange(h http.Header) {
	v := h["Range"]
	if len(v) == 0 {
		return
	}
	r := strings.TrimLeft(v[0], " \t")
	if len(r) < len(unit) || !strings.EqualFold(r[:len(unit)], unit) {
		delete(h, "Range")
		return
	}
	set, n, ok := canonicalRangeSet(r[len(unit):])
	if ok && n > MaxRanges {
		delete(h, "Range")
		return
	}
	if !ok {
		set = unsatisfiable
	}
	if n := unit + set; n != v[0] || len(v) > 1 {
		h["Range"] = []string{n}
	}
}

// MaxRanges is the most ranges one request is answered range by range.
const MaxRanges = 32

// blanks are what ServeContent trims around ranges and their numbers.
const blanks = " \t\r\n"

// unsatisfiable is a first-pos past the end of any representation.
var unsatisfiable = maxPosition + "-"

// canonicalRangeSet rewrites a byte-range set (what follows "bytes=") so
// that every number fits an int64, without changing what it asks for, and
// drops the ranges no representation can satisfy (unsatisfiable when that
// leaves none), and counts the ranges it keeps. It reports false for a set
// that is not well formed, and returns set itself when nothing needs
// rewriting.
func canonicalRangeSet(set string) (string, int, bool) {
	var specs []string
	changed := false
	for part := range strings.SplitSeq(set, ",") {
		spec := strings.Trim(part, blanks)
		if spec == "" {
			// RFC 9110's list rule lets empty elements be, and ignored.
			continue
		}
		first, last, ok := strings.Cut(spec, "-")
		// ServeContent reads blanks around the dash too.
		first, last = strings.Trim(first, blanks), strings.Trim(last, blanks)
		if !ok || (last != "" && !digits(last)) || (first != "" && !digits(first)) || (first == "" && last == "") {
			return "", 0, false
		}
		f, fOver := position(first)
		l, lOver := position(last)
		switch {
		case first == "" && !lOver && l == 0:
			// bytes=-0: a suffix of no bytes.
			changed = true
			continue
		case fOver:
			// A first-pos past any length.
			changed = true
			continue
		case first != "" && last != "" && !lOver && l < f:
			return "", 0, false
		case lOver && first == "":
			spec, changed = "-"+maxPosition, true
		case lOver:
			spec, changed = first+"-"+maxPosition, true
		}
		specs = append(specs, spec)
	}
	switch {
	case len(specs) == 0 && changed:
		return unsatisfiable, 0, true
	case len(specs) == 0:
		return "", 0, false
	case !changed:
		return set, len(specs), true
	}
	return strings.Join(specs, ","), len(specs), true
}

// digits reports a non-empty string of ASCII digits.
func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// maxPosition is the largest position ServeContent can read.
var maxPosition = strconv.FormatInt(math.MaxInt64, 10)

// position reads a run of digits (or "", as 0); over reports one too
// large for an int64, which stands for a position past any length.
func position(s string) (n int64, over bool) {
	if s == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err != nil
}

// Ranges is NormalizeRange as middleware, in front of every handler that
// may answer a Range.
func Ranges(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		NormalizeRange(r.Header)
		next.ServeHTTP(w, r)
	})
}

// SingleRange reads a Range header that asks for exactly one range of a
// representation of size bytes which that representation can satisfy, and
// returns its first and last byte positions (RFC 9110 §14.1.2: a last-pos
// past the end reaches the end; a suffix longer than the representation
// is all of it). Ranges this representation cannot satisfy are left out
// first, as ServeContent leaves them (bytes=0-9,500- of 100 bytes is the
// one range 0-9). It reports false for anything else: no Range, another
// unit, a malformed set, several ranges, or none that can be satisfied.
// Those are what ServeContent answers, and a node that streams the object
// leaves them to it.
func SingleRange(field string, size int64) (first, last int64, ok bool) {
	r := strings.TrimLeft(field, " \t")
	if size <= 0 || len(r) < len(unit) || !strings.EqualFold(r[:len(unit)], unit) {
		return 0, 0, false
	}
	set, _, ok := canonicalRangeSet(r[len(unit):])
	if !ok || set == unsatisfiable {
		return 0, 0, false
	}
	found := 0
	for part := range strings.SplitSeq(set, ",") {
		spec := strings.Trim(part, blanks)
		if spec == "" {
			continue
		}
		a, b, _ := strings.Cut(spec, "-")
		a, b = strings.Trim(a, blanks), strings.Trim(b, blanks)
		// canonicalRangeSet has made every number fit an int64 and
		// dropped a suffix of none (-0).
		f, _ := position(a)
		l, _ := position(b)
		switch {
		case a == "":
			f, l = max(0, size-l), size-1
		case f >= size:
			continue // cannot be satisfied by this representation
		case b == "":
			l = size - 1
		default:
			l = min(l, size-1)
		}
		if found++; found > 1 {
			return 0, 0, false
		}
		first, last = f, l
	}
	return first, last, found == 1
}
