package media

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/deepcast/deepcast/manifest"
)

// SubtitleStream describes one of a source's text subtitle streams.
type SubtitleStream struct {
	Index int
	Codec string
	Lang  string // BCP 47, "" when untagged
	Title string
	// Role is what the text is to a viewer, in DASH's Role words:
	// "subtitle" (the dialogue), "caption" (for the deaf and hard of
	// hearing: sounds and speakers too) or "forced-subtitle" (only what
	// is spoken or written in another language than the programme's).
	Role string
}

// textSubtitleCodecs are the subtitle formats ffmpeg turns into WebVTT:
// text, not pictures.
var textSubtitleCodecs = []string{"subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text"}

// MaxSubtitleStreams bounds the subtitle streams packaged from a source.
const MaxSubtitleStreams = 32

// MaxSubtitleBytes bounds one track's WebVTT, and a subtitle file an
// upload may carry: a feature film's is a few hundred KiB.
const MaxSubtitleBytes = 16 << 20

// Subtitle is a subtitle file packaged beside a source (a film's .srt or
// .vtt files), in any text format ffmpeg reads.
type Subtitle struct {
	Path  string
	Lang  string // a language tag (BCP 47 or ISO 639); "" when unknown
	Title string
	Role  string // "subtitle" when empty, "caption" or "forced-subtitle"
	// Untrusted files (uploads) are read as SubRip, ASS or WebVTT only,
	// never as a format that names other files.
	Untrusted bool
}

// subtitleUploadFormats are the demuxers an untrusted subtitle file may
// be read with: text formats that hold their cues themselves.
var subtitleUploadFormats = []string{"srt", "ass", "webvtt"}

// ParseSubtitle reads a -subtitles flag's value: FILE, or LANG=FILE
// (en=film.en.srt), with an optional role after the language
// (en+caption=film.sdh.srt).
func ParseSubtitle(s string) (Subtitle, error) {
	spec, file, ok := strings.Cut(s, "=")
	if !ok {
		if s == "" {
			return Subtitle{}, fmt.Errorf("subtitles: no file named")
		}
		return Subtitle{Path: s, Role: "subtitle"}, nil
	}
	lang, role, _ := strings.Cut(spec, "+")
	sub := Subtitle{Path: file, Lang: LanguageTag(lang), Role: cmp.Or(role, "subtitle")}
	switch {
	case file == "":
		return Subtitle{}, fmt.Errorf("subtitles %q: no file after =", s)
	case sub.Lang == "" && lang != "":
		return Subtitle{}, fmt.Errorf("subtitles %q: %q is not a language tag (en, fr, pt-BR, eng)", s, lang)
	case sub.Role != "subtitle" && sub.Role != "caption" && sub.Role != "forced-subtitle":
		return Subtitle{}, fmt.Errorf("subtitles %q: role %q is not subtitle, caption or forced-subtitle", s, role)
	}
	return sub, nil
}

// TextTrack is a subtitle track of an asset: one WebVTT file for the
// whole presentation, {ID}/text.vtt.
type TextTrack struct {
	ID    string   `json:"id"`
	Lang  string   `json:"lang,omitempty"`
	Label string   `json:"label"`
	Role  string   `json:"role"`
	File  FileInfo `json:"file"`
}

// packageSubtitles turns the source's text subtitle streams and the
// sidecar files into WebVTT tracks under staging. An embedded stream
// that holds no cue is left out (said in the log); a sidecar file that
// cannot be read as subtitles is an error, as it was asked for.
func packageSubtitles(ctx context.Context, src *Probe, sidecars []Subtitle, staging string) ([]TextTrack, error) {
	type job struct {
		stream   *SubtitleStream
		sidecar  *Subtitle
		tmp      string
		embedded bool
	}
	var jobs []job
	work, err := os.MkdirTemp(staging, ".subtitles-")
	if err != nil {
		return nil, fmt.Errorf("subtitles: %w", err)
	}
	defer os.RemoveAll(work)
	if len(src.Subtitles) > 0 {
		args := []string{"-hide_banner", "-nostdin", "-y", "-v", "error"}
		if src.Untrusted {
			args = append(args, untrustedInputArgs()...)
		}
		args = append(args, "-i", src.Path)
		for i, s := range src.Subtitles {
			out := filepath.Join(work, fmt.Sprintf("embedded%d.vtt", i))
			args = append(args, "-map", fmt.Sprintf("0:%d", s.Index), "-c:s", "webvtt", "-f", "webvtt", out)
			jobs = append(jobs, job{stream: s, tmp: out, embedded: true})
		}
		if err := runFFmpeg(ctx, args); err != nil {
			return nil, fmt.Errorf("subtitles of %s: %w", src.Path, err)
		}
	}
	for i := range sidecars {
		sc := &sidecars[i]
		out := filepath.Join(work, fmt.Sprintf("sidecar%d.vtt", i))
		args := []string{"-hide_banner", "-nostdin", "-y", "-v", "error"}
		if sc.Untrusted {
			args = append(args, "-protocol_whitelist", "file", "-format_whitelist", strings.Join(subtitleUploadFormats, ","))
		}
		args = append(args, "-i", sc.Path, "-map", "0:s:0", "-c:s", "webvtt", "-f", "webvtt", out)
		if err := runFFmpeg(ctx, args); err != nil {
			return nil, fmt.Errorf("subtitles %s: not a subtitle file ffmpeg reads as text: %w", sc.Path, err)
		}
		jobs = append(jobs, job{sidecar: sc, tmp: out})
	}
	var tracks []TextTrack
	used := map[string]bool{}
	for n, j := range jobs {
		vtt, err := readWebVTT(j.tmp)
		if err != nil {
			if j.embedded {
				slog.Warn("subtitle stream left out", "source", src.Path, "stream", j.stream.Index, "why", err)
				continue
			}
			return nil, fmt.Errorf("subtitles %s: %w", j.sidecar.Path, err)
		}
		t := TextTrack{}
		title := ""
		if j.embedded {
			t.Lang, t.Role, title = j.stream.Lang, j.stream.Role, j.stream.Title
		} else {
			t.Lang, t.Role, title = j.sidecar.Lang, cmp.Or(j.sidecar.Role, "subtitle"), cleanTitle(j.sidecar.Title)
		}
		t.Label = textLabel(t.Lang, title, t.Role, n+1)
		t.ID = "text-" + strings.ToLower(cmp.Or(t.Lang, "und"))
		switch t.Role {
		case "caption":
			t.ID += "-caption"
		case "forced-subtitle":
			t.ID += "-forced"
		}
		base := t.ID
		for k := 2; used[t.ID]; k++ {
			t.ID = fmt.Sprintf("%s-%d", base, k)
		}
		used[t.ID] = true
		if err := os.Mkdir(filepath.Join(staging, t.ID), 0o755); err != nil {
			return nil, fmt.Errorf("subtitles: %w", err)
		}
		if t.File, err = writeFileSum(filepath.Join(staging, t.ID, manifest.TextFile), vtt); err != nil {
			return nil, err
		}
		tracks = append(tracks, t)
	}
	if src.PictureSubtitles > 0 {
		slog.Warn("picture subtitles left out: web players show text subtitles only", "source", src.Path, "streams", src.PictureSubtitles)
	}
	return tracks, nil
}

// readWebVTT reads what ffmpeg wrote and checks it is WebVTT with at
// least one cue, within MaxSubtitleBytes.
func readWebVTT(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("no WebVTT written: %w", err)
	}
	if st.Size() > MaxSubtitleBytes {
		return nil, fmt.Errorf("%d bytes of WebVTT: more than %d MiB", st.Size(), MaxSubtitleBytes>>20)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(bytes.TrimPrefix(b, []byte("\uFEFF")), []byte("WEBVTT")) {
		return nil, fmt.Errorf("not WebVTT")
	}
	if !bytes.Contains(b, []byte("-->")) {
		return nil, fmt.Errorf("no cue")
	}
	return b, nil
}

// textLabel is a subtitle track's label ("français (captions)").
func textLabel(lang, title, role string, n int) string {
	return trackLabel(lang, title, role, "Subtitles", n, textRoleWords)
}
