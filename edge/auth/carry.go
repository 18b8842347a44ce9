package auth

import (
	"encoding/base64"
	"net/url"
	"strings"
)

// queryValue is the first value of the parameter name in a raw query, ""
// when absent or badly escaped. It scans rather than parses: every
// request of a protected edge passes here.
func queryValue(raw, name string) string {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		k, v, _ := strings.Cut(part, "=")
		if k != name {
			continue
		}
		if strings.ContainsAny(v, "%+") {
			u, err := url.QueryUnescape(v)
			if err != nil {
				return ""
			}
			return u
		}
		return v
	}
	return ""
}

// setQueryValue replaces (or adds) one parameter of a raw query, leaving
// the others as they were.
func setQueryValue(raw, name, value string) string {
	var kept []string
	for part := range strings.SplitSeq(raw, "&") {
		if k, _, _ := strings.Cut(part, "="); k != name && part != "" {
			kept = append(kept, part)
		}
	}
	return strings.Join(append(kept, name+"="+url.QueryEscape(value)), "&")
}

// StripQuery removes the named parameters from a raw query.
func StripQuery(raw string, names []string) string {
	if raw == "" || len(names) == 0 {
		return raw
	}
	var kept []string
	changed := false
	for part := range strings.SplitSeq(raw, "&") {
		k, _, _ := strings.Cut(part, "=")
		drop := false
		for _, n := range names {
			drop = drop || k == n
		}
		if drop {
			changed = true
			continue
		}
		kept = append(kept, part)
	}
	if !changed {
		return raw
	}
	return strings.Join(kept, "&")
}

// cookieValue is the value of the first cookie called name in a Cookie
// header ("a=1; b=2").
func cookieValue(header, name string) string {
	for header != "" {
		var c string
		c, header, _ = strings.Cut(header, ";")
		k, v, ok := strings.Cut(strings.TrimSpace(c), "=")
		if ok && k == name {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func encodeB64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
