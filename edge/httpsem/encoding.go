package httpsem

import (
	"strconv"
	"strings"
)

// AcceptsGzip reports whether an Accept-Encoding field value (several
// field lines joined with ", ") lets a server send the gzip content coding
// (RFC 9110 §12.5.3): gzip or its alias x-gzip listed with a weight above
// zero, or, when neither is listed, "*" with a weight above zero. A coding
// whose weight cannot be read is taken as not offered, and an empty field
// offers no coding, so a malformed header always gets the identity
// representation, which every client can read.
func AcceptsGzip(field string) bool {
	star := false
	for member := range strings.SplitSeq(field, ",") {
		coding, params, _ := strings.Cut(member, ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "x-gzip" && coding != "*" {
			continue
		}
		ok := positiveWeight(params)
		if coding != "*" {
			return ok
		}
		star = ok
	}
	return star
}

// positiveWeight reads the parameters after a coding ("" or "q=0.5", with
// optional blanks) and reports whether its weight is above zero; a weight
// that is not a qvalue (RFC 9110 §12.4.2) counts as zero.
func positiveWeight(params string) bool {
	params = strings.TrimSpace(params)
	if params == "" {
		return true
	}
	name, value, found := strings.Cut(params, "=")
	if !found || strings.ToLower(strings.TrimSpace(name)) != "q" {
		return false
	}
	value = strings.TrimSpace(value)
	if len(value) == 0 || len(value) > 5 || value[0] != '0' && value[0] != '1' {
		return false
	}
	if len(value) > 1 && value[1] != '.' {
		return false
	}
	for i := 2; i < len(value); i++ {
		if value[i] < '0' || value[i] > '9' {
			return false
		}
	}
	q, err := strconv.ParseFloat(value, 64)
	return err == nil && q > 0 && q <= 1
}
