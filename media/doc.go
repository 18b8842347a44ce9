// Package media turns source video into DASH-ready CMAF renditions on disk.
//
// It owns probing sources with ffprobe, the bitrate ladder, encoding the
// whole ladder in one ffmpeg run (with progress), cutting every rendition
// into CMAF init and media segments with mp4ff, and the on-disk asset layout
// with its asset.json metadata. It knows nothing of HTTP.
package media
