package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/store"
)

func sampleCommand() command {
	return command{
		name:    "sample",
		usage:   "",
		summary: "make a synthetic source video (moving pattern, burned-in clock and frame number, stereo tone)",
		setup: func(fs *flag.FlagSet, stdout io.Writer) func(context.Context, []string) error {
			out := fs.String("o", "", "output file (.mp4), required")
			dur := fs.Duration("duration", 30*time.Second, "length of the video")
			size := fs.String("size", "1920x1080", "picture size WIDTHxHEIGHT")
			fps := fs.Int("fps", 30, "frames per second")
			return func(ctx context.Context, args []string) error {
				if *out == "" {
					return fmt.Errorf("-o FILE is required and no arguments are taken: %w", errUsage)
				}
				if ext := strings.ToLower(filepath.Ext(*out)); ext != ".mp4" {
					// ffmpeg would pick the container by the name, but what it
					// writes is meant as MP4 (H.264 + AAC, faststart).
					return fmt.Errorf("-o %s: the sample is an MP4 file; name it .mp4: %w", *out, errUsage)
				}
				var w, h int
				if _, err := fmt.Sscanf(*size, "%dx%d", &w, &h); err != nil {
					return fmt.Errorf("-size %q: want WIDTHxHEIGHT: %w", *size, errUsage)
				}
				pp := newProgressPrinter(os.Stderr)
				err := media.MakeSample(ctx, *out, media.SampleOptions{Duration: *dur, Width: w, Height: h, FPS: *fps, Progress: pp.update})
				if err != nil {
					return err
				}
				fmt.Fprintf(os.Stderr, "\nwrote %s (%s, %dx%d @ %d fps)\n", *out, *dur, w, h, *fps)
				return nil
			}
		},
	}
}

func packageCommand() command {
	return command{
		name:    "package",
		usage:   "INPUT...",
		summary: "encode a source into a bitrate ladder and package it as a DASH asset (CMAF segments + MPD)",
		setup: func(fs *flag.FlagSet, stdout io.Writer) func(context.Context, []string) error {
			lib := fs.String("o", "", "library to add the asset to, required: a folder or s3://BUCKET/PREFIX")
			sf := addStoreFlags(fs)
			name := fs.String("name", "", "asset name (default: the first input's file name)")
			seg := fs.Duration("seg", media.DefaultSegmentDur, "segment duration")
			ladder := fs.String("ladder", "", `bitrate ladder, e.g. "1280x720@2800k,640x360@800k" (default: follows the source, never upscales)`)
			cp := fs.Bool("copy", false, "inputs are pre-encoded renditions of one title: package them without re-encoding")
			damaged := fs.Bool("allow-damaged", false, "package a source that decodes with errors (damaged frames are published); refused without it")
			preset := fs.String("preset", "veryfast", "x264 preset for encoding: "+strings.Join(media.X264Presets, ", "))
			encrypt := fs.String("encrypt", "", "encrypt the media (Common Encryption): cenc or cbcs; the key stays in the asset's private keys.json, handed out by the origin's ClearKey licence endpoint (default: clear)")
			keyID := fs.String("key-id", "", "-encrypt: the key id, 32 hex digits (default: random)")
			key := fs.String("key", "", "-encrypt: the content key, 32 hex digits (default: random)")
			keyFile := fs.String("key-file", "", "-encrypt: a file holding KID:KEY in hex (instead of -key-id and -key, which a process list would show)")
			thumbnails := fs.Bool("thumbnails", true, "make seek-preview thumbnail tiles (thumbs/N.jpg, in the MPD and HLS); -thumbnails=false for none")
			surround := fs.Bool("surround", true, "add a 5.1 AAC rendition (384 kbit/s) beside the stereo one for every source sound of six channels or more; -surround=false for stereo alone")
			var subtitles []media.Subtitle
			fs.Func("subtitles", "a subtitle file to package with the source, `[LANG[+ROLE]=]FILE` (en=film.en.srt, fr=film.fr.vtt, "+
				"en+caption=film.sdh.srt; ROLE caption or forced-subtitle); repeat for more. The source's own text subtitles are packaged too",
				func(v string) error {
					sub, err := media.ParseSubtitle(v)
					if err == nil {
						if _, err = os.Stat(sub.Path); err != nil {
							err = fmt.Errorf("subtitles %s: %w", sub.Path, err)
						}
					}
					subtitles = append(subtitles, sub)
					return err
				})
			return func(ctx context.Context, args []string) error {
				if *lib == "" || len(args) == 0 {
					return fmt.Errorf("-o LIBRARY and at least one INPUT are required: %w", errUsage)
				}
				enc, err := encryptionFlags(*encrypt, *keyID, *key, *keyFile)
				if err != nil {
					return err
				}
				libStore, err := sf.open(ctx, *lib)
				if err != nil {
					return err
				}
				if store.IsS3(*lib) {
					// A wrong endpoint or key fails now, not after the encode.
					if err := checkStore(ctx, libStore); err != nil {
						return err
					}
				}
				opt := media.PackageOptions{Library: *lib, Store: libStore, Name: *name, SegmentDur: *seg, Copy: *cp, Preset: *preset, AllowDamaged: *damaged,
					Encrypt: enc, Subtitles: subtitles, NoThumbnails: !*thumbnails, NoSurround: !*surround}
				if *ladder != "" {
					l, err := media.ParseLadder(*ladder)
					if err != nil {
						return err
					}
					opt.Ladder = l
				}
				pp := newProgressPrinter(os.Stderr)
				opt.Progress = pp.update
				start := time.Now()
				a, err := media.Package(ctx, args, opt)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "packaged %s in %s: %.1fs, %d renditions, %d segments of %gs, %.1f MiB\n",
					a.Name, time.Since(start).Round(time.Millisecond), a.Duration, len(a.Renditions),
					len(a.Renditions[0].Segments), a.SegmentDuration, float64(a.SizeOnDisk())/(1<<20))
				w := 12 // the ID column, as wide as the longest
				for _, r := range a.Renditions {
					w = max(w, len(r.ID))
				}
				for _, t := range a.Texts {
					w = max(w, len(t.ID))
				}
				for _, r := range a.Renditions {
					if r.Type == "video" {
						shape := ""
						if r.Sar != "" {
							shape = ", pixels " + r.Sar
						}
						fmt.Fprintf(stdout, "  %-*s %4dx%-4d %s  %5d kbit/s mean, %5d kbit/s peak%s\n", w, r.ID, r.Width, r.Height, r.Codecs, r.Bitrate/1000, r.Bandwidth/1000, shape)
					} else {
						fmt.Fprintf(stdout, "  %-*s %d Hz x%d  %s  %5d kbit/s mean  %s, %s\n", w, r.ID, r.SampleRate, r.Channels, r.Codecs, r.Bitrate/1000, r.Label, r.Role)
					}
				}
				for _, t := range a.Texts {
					fmt.Fprintf(stdout, "  %-*s WebVTT  %s (%s), %.1f KiB\n", w, t.ID, t.Label, t.Role, float64(t.File.Size)/1024)
				}
				if store.IsS3(*lib) {
					fmt.Fprintf(stdout, "published: %s/%s (version %s.%s)\n", strings.TrimSuffix(*lib, "/"), a.Name, a.Name, a.Build)
				} else {
					fmt.Fprintf(stdout, "manifest: %s\n", filepath.Join(*lib, a.Name, media.ManifestFile))
				}
				return nil
			}
		},
	}
}

// encryptionFlags reads package's -encrypt, -key-id, -key and -key-file.
func encryptionFlags(scheme, keyID, key, keyFile string) (*media.Encryption, error) {
	if scheme == "" {
		if keyID != "" || key != "" || keyFile != "" {
			return nil, fmt.Errorf("-key-id, -key and -key-file need -encrypt cenc or -encrypt cbcs: %w", errUsage)
		}
		return nil, nil
	}
	if scheme != media.SchemeCENC && scheme != media.SchemeCBCS {
		return nil, fmt.Errorf("-encrypt %q: want cenc or cbcs: %w", scheme, errUsage)
	}
	e := &media.Encryption{Scheme: scheme}
	switch {
	case keyFile != "":
		if keyID != "" || key != "" {
			return nil, fmt.Errorf("give -key-file or -key-id and -key, not both: %w", errUsage)
		}
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("-key-file: %w", err)
		}
		if e.KeyID, e.Key, err = media.ParseKeyPair(string(b)); err != nil {
			return nil, fmt.Errorf("-key-file %s: %w", keyFile, err)
		}
	case keyID != "" || key != "":
		if keyID == "" || key == "" {
			return nil, fmt.Errorf("-key-id and -key go together: %w", errUsage)
		}
		var err error
		if e.KeyID, e.Key, err = media.ParseKeyPair(keyID + ":" + key); err != nil {
			return nil, fmt.Errorf("%w: %w", err, errUsage)
		}
	}
	return e, nil
}
