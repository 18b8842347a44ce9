package httpsem

import (
	"bytes"
	"compress/gzip"
	"strconv"
	"strings"
	"sync"
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

// MinGzip is the smallest body worth compressing: below it the saving does
// not pay for gzip's header and the client's work.
const MinGzip = 1 << 10

// Gzip compresses body at the best level and reports whether that made it
// smaller. The same bytes always give the same output (no name, no time in
// the header), so every node that compresses one representation sends the
// same bytes under its one ETag.
func Gzip(body []byte) ([]byte, bool) {
	var buf bytes.Buffer
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(&buf)
	zw.Write(body)
	zw.Close()
	zw.Reset(nil) // keeps no reference to buf while pooled
	gzipWriters.Put(zw)
	if buf.Len() >= len(body) {
		return nil, false
	}
	return buf.Bytes(), true
}

// gzipWriters are reused: a writer at the best level holds about a
// megabyte of state, whose allocation and clearing cost far more than
// compressing a manifest of a few KiB, and the router compresses one per
// session it starts.
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestCompression) // a valid level: no error
	return zw
}}

// EncodedTag is the entity tag of an encoded representation of the one
// tagged tag: the same tag with the coding's name inside its quotes, weak
// if tag was; "" for a tag that is not one (RFC 9110 §8.8.3: another
// representation, another tag).
func EncodedTag(tag, coding string) string {
	opaque, weak := strings.CutPrefix(tag, "W/")
	if len(opaque) < 2 || opaque[0] != '"' || opaque[len(opaque)-1] != '"' {
		return ""
	}
	t := opaque[:len(opaque)-1] + "-" + coding + `"`
	if weak {
		t = "W/" + t
	}
	return t
}

// IsManifestType reports the media types of DASH MPDs and HLS playlists,
// the text the nodes compress (segments are compressed media already).
func IsManifestType(contentType string) bool {
	mediaType, _, _ := strings.Cut(contentType, ";")
	switch strings.ToLower(strings.TrimSpace(mediaType)) {
	case "application/dash+xml", "application/vnd.apple.mpegurl", "audio/mpegurl", "application/x-mpegurl":
		return true
	}
	return false
}
