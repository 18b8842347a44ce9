package edge

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deepcast/deepcast/edge/httpsem"
)

// objectMeta is what is kept of a cached response besides its body: the
// headers that describe it and its freshness. The disk tier stores it as
// JSON in each object file's header.
type objectMeta struct {
	ContentType  string `json:"contentType"`
	ETag         string `json:"etag"`
	LastModified string `json:"lastModified"`
	CacheControl string `json:"cacheControl"`
	LastSegment  string `json:"lastSegment,omitempty"` // upstream's X-Deepcast-Last-Segment, for prefetch bounds
	// UpstreamVia is the upstream's Via (the tiers behind this node): this
	// node's own entry is added after it, so Via names the whole chain as
	// Cache-Status does.
	UpstreamVia string `json:"via,omitempty"`
	// Digest is the upstream's Repr-Digest (RFC 9530), passed on as
	// received; its SHA-256 was checked against the body.
	Digest  string        `json:"digest,omitempty"`
	Stored  time.Time     `json:"stored"`
	Expires time.Time     `json:"expires"` // fresh until
	SWR     time.Duration `json:"swr"`
	SIE     time.Duration `json:"sie"`
	NoCache bool          `json:"noCache"`
}

// object is one cached response: a whole 200 OK body with the headers that
// describe it. Objects are never modified; a refresh stores a new one.
type object struct {
	Key  string
	Body []byte
	objectMeta
	Sum [32]byte // SHA-256 of Body, checked when read back from disk

	// hdr and contentLength are the response header values, built once.
	hdrOnce       sync.Once
	hdr           http.Header
	contentLength []string
	// block is the same headers as CRLF-ended lines, plus CORS, for the
	// fast path.
	blockOnce sync.Once
	block     []byte
	// hit is the last fresh-hit header block (block plus Age and
	// Cache-Status), valid while the age in seconds is the same.
	hit atomic.Pointer[hitBlock]

	// encoding is the content coding of Body ("" for identity): set on
	// the gzip representation only, which is made from the cached one
	// once, when a client first takes it (gzOnce), and kept beside it.
	encoding string
	gzOnce   sync.Once
	gz       *object
}

// compressible reports whether o's gzip representation may be offered:
// o is a manifest of MinGzip bytes or more, the text a cache compresses (a
// two-hour HLS playlist is some 42 KB and gzip makes it under 5 KB, where
// a viewer's session waits for it before its first segment; segments are
// compressed media already).
func (o *object) compressible() bool {
	return o.encoding == "" && len(o.Body) >= httpsem.MinGzip && httpsem.IsManifestType(o.ContentType)
}

// forClient returns the representation of o for a client whose
// Accept-Encoding field lines are acceptEncoding: the gzip one when o is
// compressible and the client takes gzip, else o itself.
func (o *object) forClient(acceptEncoding []string) *object {
	if !o.compressible() || !httpsem.AcceptsGzip(strings.Join(acceptEncoding, ", ")) {
		return o
	}
	o.gzOnce.Do(func() { o.gz = o.gzipped() })
	if o.gz == nil {
		return o
	}
	return o.gz
}

// gzipped makes o's gzip representation, or nil when gzip does not make
// it smaller. A representation of its own, it has its own strong ETag,
// which conditional requests and If-Range match against, and its own
// Repr-Digest (RFC 9530 digests the encoded bytes).
func (o *object) gzipped() *object {
	body, ok := httpsem.Gzip(o.Body)
	if !ok {
		return nil
	}
	g := &object{Key: o.Key, Body: body, objectMeta: o.objectMeta, encoding: "gzip"}
	g.Sum = sha256.Sum256(g.Body)
	g.ETag = httpsem.EncodedTag(o.ETag, "gzip")
	if o.Digest != "" {
		g.Digest = httpsem.ReprDigest(hex.EncodeToString(g.Sum[:]))
	}
	return g
}

// hitBlock is a fresh-hit header block for one value of Age and of the
// node's advice.
type hitBlock struct {
	age    int64
	advice uint64 // the generation of the node's CMSD advice in it
	block  []byte
}

// headers returns the object's fixed response headers (not Age or
// Cache-Status, which change per response). Callers must not modify them.
func (o *object) headers(via []string) http.Header {
	o.hdrOnce.Do(func() {
		h := http.Header{"Via": []string{o.chainVia(strings.Join(via, ", "))}, "Accept-Ranges": hdrBytes}
		set := func(k, v string) {
			if v != "" {
				h[k] = []string{v}
			}
		}
		set("Content-Encoding", o.encoding)
		set("Content-Type", o.ContentType)
		set("Etag", o.ETag)
		set("Cache-Control", o.CacheControl)
		set("Last-Modified", o.LastModified)
		set("X-Deepcast-Last-Segment", o.LastSegment)
		set("Repr-Digest", o.Digest)
		if o.varies() {
			h["Vary"] = hdrVaryEncoding
		}
		o.hdr = h
		o.contentLength = []string{strconv.Itoa(len(o.Body))}
	})
	return o.hdr
}

// headerBlock returns the object's fixed response headers and the CORS
// headers as header lines, for a writer that bypasses http.Header.
func (o *object) headerBlock(via string) []byte {
	o.blockOnce.Do(func() {
		var b []byte
		add := func(k, v string) {
			if v != "" {
				b = appendHeaderLine(b, k, v)
			}
		}
		add("Accept-Ranges", "bytes")
		add("Access-Control-Allow-Origin", hdrAnyOrigin[0])
		add("Access-Control-Expose-Headers", hdrExposed[0])
		add("Cache-Control", o.CacheControl)
		add("Content-Encoding", o.encoding)
		add("Content-Type", o.ContentType)
		add("Etag", o.ETag)
		add("Last-Modified", o.LastModified)
		add("Repr-Digest", o.Digest)
		if o.varies() {
			add("Vary", hdrVaryEncoding[0])
		}
		add("Via", o.chainVia(via))
		add("X-Deepcast-Last-Segment", o.LastSegment)
		o.block = b
	})
	return o.block
}

// hdrVaryEncoding is the Vary of a representation chosen by the client's
// Accept-Encoding: caches below must not give one client's gzip to
// another that did not ask for it.
var hdrVaryEncoding = []string{"Accept-Encoding"}

// varies reports whether o's answers depend on Accept-Encoding: both
// representations of a compressible object say so.
func (o *object) varies() bool { return o.encoding != "" || o.compressible() }

// chainVia is the Via of an answer from this node: the upstream's, then
// this node's.
func (o *object) chainVia(own string) string {
	if o.UpstreamVia == "" {
		return own
	}
	return o.UpstreamVia + ", " + own
}

// fresh reports whether the object may be served without asking upstream.
func (o *object) fresh(now time.Time) bool { return !o.NoCache && now.Before(o.Expires) }

// ttl is the remaining freshness (negative when stale), for Cache-Status.
func (o *object) ttl(now time.Time) time.Duration { return o.Expires.Sub(now) }

// age is how long ago the object was stored (or refreshed).
func (o *object) age(now time.Time) time.Duration { return max(0, now.Sub(o.Stored)) }

// cost is the object's weight in the memory tier: its bytes plus the
// bookkeeping around them (struct, built header blocks).
func (o *object) cost() int64 {
	n := int64(len(o.Body)+len(o.Key)+len(o.ContentType)+len(o.ETag)+len(o.LastModified)+len(o.CacheControl)+len(o.Digest)) + 1024
	if o.compressible() {
		// Room for the gzip copy made at its first gzip answer, after
		// the object entered the tier: playlists and MPDs shrink five-
		// to tenfold.
		n += int64(len(o.Body)/5) + 1024
	}
	return n
}

// newObject builds an object from an upstream 200 response and its body.
func newObject(key string, h http.Header, body []byte, p policy, now time.Time, defaultTTL time.Duration) *object {
	return newObjectSum(key, h, body, sha256.Sum256(body), p, now, defaultTTL)
}

// newObjectSum is newObject for a body whose SHA-256 is known (sum).
func newObjectSum(key string, h http.Header, body []byte, sum [32]byte, p policy, now time.Time, defaultTTL time.Duration) *object {
	ttl := p.TTL
	if !p.hasTTL {
		ttl = defaultTTL
	}
	return &object{Key: key, Body: body, Sum: sum, objectMeta: objectMeta{
		ContentType: h.Get("Content-Type"), ETag: h.Get("ETag"),
		LastModified: h.Get("Last-Modified"), CacheControl: h.Get("Cache-Control"),
		LastSegment: h.Get("X-Deepcast-Last-Segment"), UpstreamVia: strings.Join(h.Values("Via"), ", "),
		Digest: h.Get("Repr-Digest"),
		Stored: now, Expires: now.Add(ttl), SWR: p.SWR, SIE: p.SIE, NoCache: p.NoCache,
	}}
}

// refreshed is a copy of o made fresh again by a 304 Not Modified.
func (o *object) refreshed(h http.Header, p policy, now time.Time, defaultTTL time.Duration) *object {
	n := object{Key: o.Key, Body: o.Body, objectMeta: o.objectMeta, Sum: o.Sum}
	ttl := p.TTL
	if !p.hasTTL {
		ttl = defaultTTL
	}
	n.Stored, n.Expires = now, now.Add(ttl)
	if p.SWR > 0 || p.SIE > 0 {
		n.SWR, n.SIE = p.SWR, p.SIE
	}
	if cc := h.Get("Cache-Control"); cc != "" {
		n.CacheControl = cc
	}
	return &n
}
