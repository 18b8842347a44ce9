package edge

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// policy is what an upstream response says about caching it.
type policy struct {
	NoStore   bool
	Private   bool
	NoCache   bool // store, but revalidate before every use
	Immutable bool
	// TTL is how long the response is fresh from the moment it was received.
	TTL time.Duration
	// SWR and SIE are RFC 5861's stale-while-revalidate and stale-if-error.
	SWR, SIE time.Duration
	hasTTL   bool
}

// parsePolicy reads Cache-Control, Expires, Date and Age (RFC 9111) for a
// shared cache: s-maxage wins over max-age, Expires is a fallback, and the
// Age the response already has is taken off.
func parsePolicy(h http.Header, now time.Time) policy {
	var p policy
	var maxAge, sMaxAge time.Duration = -1, -1
	for _, line := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(line, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			name = strings.ToLower(strings.TrimSpace(name))
			val = strings.Trim(strings.TrimSpace(val), `"`)
			secs := func() time.Duration {
				n, err := strconv.ParseInt(val, 10, 64)
				if err != nil || n < 0 {
					return -1
				}
				return time.Duration(min(n, 1<<31)) * time.Second
			}
			switch name {
			case "no-store":
				p.NoStore = true
			case "private":
				p.Private = true
			case "no-cache":
				p.NoCache = true
			case "immutable":
				p.Immutable = true
			case "max-age":
				maxAge = secs()
			case "s-maxage":
				sMaxAge = secs()
			case "stale-while-revalidate":
				p.SWR = max(0, secs())
			case "stale-if-error":
				p.SIE = max(0, secs())
			}
		}
	}
	switch {
	case sMaxAge >= 0:
		p.TTL, p.hasTTL = sMaxAge, true
	case maxAge >= 0:
		p.TTL, p.hasTTL = maxAge, true
	default:
		if exp := h.Get("Expires"); exp != "" {
			p.hasTTL = true
			if t, err := http.ParseTime(exp); err == nil {
				date := now
				if d, err := http.ParseTime(h.Get("Date")); err == nil {
					date = d
				}
				p.TTL = max(0, t.Sub(date))
			} // an invalid Expires means already expired
		}
	}
	if age, err := strconv.ParseInt(h.Get("Age"), 10, 64); err == nil && age > 0 {
		p.TTL = max(0, p.TTL-time.Duration(age)*time.Second)
	}
	return p
}

// cacheable tells whether a shared cache may store the response.
func (p policy) cacheable() bool { return !p.NoStore && !p.Private }
