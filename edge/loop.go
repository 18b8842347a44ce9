package edge

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
)

// loopHeader is RFC 8586's CDN-Loop. Every node adds an entry of its own to
// the requests it sends upstream, and refuses to send on a request that
// already carries that entry: edges set up as each other's upstreams,
// directly or through others, otherwise pass a miss around the ring until
// the first node's fetch times out, every node in it holding a connection
// and a coalesced fetch the whole time.
const loopHeader = "Cdn-Loop"

// maxLoopEntries bounds the CDN-Loop entries a request may bring: a chain
// of caches is two or three deep, and a request that passed more nodes
// than this went round a loop whose nodes this node cannot recognise (a
// CDN in front of us that drops its own entries, say).
const maxLoopEntries = 16

// newLoopID is a node's identity in CDN-Loop: random, so that two nodes
// with the same name (the profiles' defaults) never take each other for
// themselves.
func newLoopID() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// loopEntry is the entry this node adds: its name as the cdn-id, and its
// identity as a parameter.
func (n *Node) loopEntry() string { return n.cfg.Name + "; id=" + n.loopID }

// addLoopEntry sets req's CDN-Loop to the client request's entries (r may be
// nil: a fast-path request without any) followed by this node's.
func (n *Node) addLoopEntry(req, r *http.Request) {
	var entries []string
	if r != nil {
		entries = append(entries, r.Header[loopHeader]...)
	}
	req.Header[loopHeader] = append(entries, n.loopEntry())
}

// loopedThrough reports why a request may not be sent upstream from this
// node ("" when it may): its CDN-Loop values (RFC 8586: a comma-separated
// list of entries, each a cdn-id and parameters after ";") hold this node's
// entry, or more entries than a chain of caches has.
func (n *Node) loopedThrough(values []string) string {
	count := 0
	for _, v := range values {
		for entry := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(entry) == "" {
				continue
			}
			count++
			_, params, _ := strings.Cut(entry, ";")
			for param := range strings.SplitSeq(params, ";") {
				name, value, _ := strings.Cut(param, "=")
				if strings.EqualFold(strings.TrimSpace(name), "id") && strings.TrimSpace(value) == n.loopID {
					return "the request has already passed through this node (" + n.cfg.Name + ")"
				}
			}
		}
	}
	if count > maxLoopEntries {
		return "the request has passed through more than 16 caches"
	}
	return ""
}

// loopMessage is the body of a 508 this node answers itself: why, and
// what to look at.
func loopMessage(why string) string {
	return "loop detected: " + why + "; check the edges' -upstream settings"
}

// loopUpstreamMessage is the body of a 508 passed on from an upstream.
const loopUpstreamMessage = "loop detected upstream; check the edges' -upstream settings"
