// Package manifest owns the DASH MPD model: it builds an MPD from a
// description of a packaged presentation, and parses and validates MPDs for
// the player, including segment addressing ($Number$ templates and
// SegmentTimeline). It knows nothing of files or HTTP.
package manifest
