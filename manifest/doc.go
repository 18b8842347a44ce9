// Package manifest owns the DASH MPD model: it builds an MPD from a
// description of a packaged presentation, and parses and validates MPDs for
// the player, including segment addressing (SegmentTemplate with $Number$
// and $Time$ and SegmentTimeline, SegmentList, and SegmentBase's sidx
// index, which its caller fetches), over Periods of one ladder. It knows
// nothing of files or HTTP.
package manifest
