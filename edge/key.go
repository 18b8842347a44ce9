package edge

import (
	"net/url"
	"strconv"
	"strings"
)

// validName reports an asset or rendition name of the URL scheme:
// [A-Za-z0-9._-]{1,128}, not starting with a dot. (The origin's media
// package has the same rule; the edge may not import it.) A loop rather
// than a regexp, since every request checks two names.
func validName(s string) bool {
	if s == "" || len(s) > 128 || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// objectPath is a parsed /vod/ path: the only paths an edge caches.
type objectPath struct {
	Asset, Rendition string
	Segment          int // 0 for the manifest and init segments
	Kind             string
}

// parseObjectPath validates an escaped request path against the URL scheme
// (/vod/{asset}/manifest.mpd, /vod/{asset}/master.m3u8,
// /vod/{asset}/{rendition}/init.mp4, /vod/{asset}/{rendition}/{n}.m4s,
// a subtitle track's text.vtt, a thumbnail tile's thumbs/{n}.jpg and the
// rendition's media.m3u8 and iframes.m3u8) and returns it parsed. The escaped form
// is used so that encoded slashes or dots can never pass as separators.
func parseObjectPath(escaped string) (objectPath, bool) {
	rest, ok := strings.CutPrefix(escaped, "/vod/")
	if !ok {
		return objectPath{}, false
	}
	parts := strings.Split(rest, "/")
	switch {
	case len(parts) == 2 && (parts[1] == "manifest.mpd" || parts[1] == "master.m3u8") && validName(parts[0]):
		return objectPath{Asset: parts[0], Kind: "manifest"}, true
	case len(parts) == 3 && validName(parts[0]) && validName(parts[1]):
		switch parts[2] {
		case "init.mp4", "text.vtt":
			// Whole immutable objects of a rendition: a CMAF header, a
			// subtitle track's WebVTT.
			return objectPath{Asset: parts[0], Rendition: parts[1], Kind: "init"}, true
		case "media.m3u8", "iframes.m3u8":
			return objectPath{Asset: parts[0], Rendition: parts[1], Kind: "manifest"}, true
		}
		ext := ".m4s"
		if parts[1] == "thumbs" {
			// A thumbnail tile: whole and immutable, never prefetched.
			ext = ".jpg"
		}
		num, ok := strings.CutSuffix(parts[2], ext)
		if !ok || num == "" || len(num) > 9 || num[0] == '0' {
			return objectPath{}, false
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || strconv.Itoa(n) != num {
			return objectPath{}, false
		}
		if ext == ".jpg" {
			return objectPath{Asset: parts[0], Rendition: parts[1], Kind: "init"}, true
		}
		return objectPath{Asset: parts[0], Rendition: parts[1], Segment: n, Kind: "segment"}, true
	}
	return objectPath{}, false
}

// isManifest reports a manifest's path (an MPD or an HLS playlist): short
// lived, refreshed in the background, unlike the immutable segments.
func isManifest(path string) bool {
	return strings.HasSuffix(path, ".mpd") || strings.HasSuffix(path, ".m3u8")
}

// segmentPath is the path of segment n of the same rendition.
func (p objectPath) segmentPath(n int) string {
	return "/vod/" + p.Asset + "/" + p.Rendition + "/" + strconv.Itoa(n) + ".m4s"
}

// cacheKey is the normalised key of a request: the validated path, plus the
// query parameters on the allow-list (sorted), so neither Host nor junk
// queries can fragment or poison the cache. The query is parsed only when
// there is an allow-list: on the hot path there usually is none.
func cacheKey(path, rawQuery string, allow []string) string {
	if len(allow) == 0 || rawQuery == "" {
		return path
	}
	query, _ := url.ParseQuery(rawQuery)
	kept := url.Values{}
	for _, k := range allow {
		if v, ok := query[k]; ok {
			kept[k] = v
		}
	}
	if len(kept) == 0 {
		return path
	}
	return path + "?" + kept.Encode()
}
