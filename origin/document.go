package origin

import (
	"strconv"
	"strings"

	"github.com/deepcast/deepcast/edge/httpsem"
)

// document is a manifest as served: the MPD or one HLS playlist.
type document struct {
	body   []byte
	tag    string // ETag, from the document's SHA-256
	length string
	header []byte // the fast path's header block
	// gz is the gzip representation, for clients that take it (nil: the
	// document is too short to gain from it). Manifests are made once
	// per version, so is this; the origin serves it to viewers that
	// reach it directly, as edges do (the tiers ask it for identity).
	gz       *document
	encoding string // "gzip" on the gzip representation
}

// newDocument makes the served form of a manifest of contentType.
func newDocument(body []byte, contentType, tag, lastModified string) document {
	d := document{body: body, tag: tag, length: strconv.Itoa(len(body))}
	d.header = appendCommon(nil, contentType, cacheManifest, tag, lastModified)
	if len(body) < httpsem.MinGzip {
		return d
	}
	if gz, ok := httpsem.Gzip(body); ok {
		d.header = append(d.header, "Vary: Accept-Encoding\r\n"...)
		z := &document{body: gz, tag: httpsem.EncodedTag(tag, "gzip"), length: strconv.Itoa(len(gz)), encoding: "gzip"}
		z.header = appendCommon(nil, contentType, cacheManifest, z.tag, lastModified)
		z.header = append(z.header, "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n"...)
		d.gz = z
	}
	return d
}

// forClient returns the representation of d for a client whose
// Accept-Encoding field lines are acceptEncoding.
func (d *document) forClient(acceptEncoding []string) *document {
	if d.gz != nil && httpsem.AcceptsGzip(strings.Join(acceptEncoding, ", ")) {
		return d.gz
	}
	return d
}

// size is the bytes d holds, both representations.
func (d *document) size() int {
	n := len(d.body) + len(d.header)
	if d.gz != nil {
		n += d.gz.size()
	}
	return n
}
