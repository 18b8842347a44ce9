// Package routing is deepcast's request router: it sends each viewer to the
// right edge by DNS (an authoritative server whose answers follow live edge
// health, with EDNS Client Subnet), by HTTP redirect (302, or an MPD whose
// BaseURL names the chosen edge), and by DASH content steering (an MPD with
// one BaseURL per edge and a steering manifest ordered per viewer). Edges are
// polled for health and load; strategies (nearest by coverage zone, weighted
// round robin, least load, consistent IP hash) are small types behind one
// interface. It speaks HTTP to edges and imports manifest only, to rewrite
// MPDs.
package routing
