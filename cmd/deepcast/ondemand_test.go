package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
	"github.com/deepcast/deepcast/media/mediatest"
	"github.com/deepcast/deepcast/player"
)

// rangeLog records what a static file server was asked for (http.FileServer
// writes every status with WriteHeader).
type rangeLog struct {
	mu   sync.Mutex
	gets []loggedRequest
}

// loggedRequest is one request a rangeLog saw: when it came, what it
// asked for (rng: its Range without "bytes=") and its status.
type loggedRequest struct {
	at                time.Time
	method, path, rng string
	status            int
	cmcd              string // the CMCD query argument, "" for none
}

// String is "METHOD path range status".
func (r loggedRequest) String() string {
	return fmt.Sprintf("%s %s %s %d", r.method, r.path, r.rng, r.status)
}

func (l *rangeLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&statusRecorder{ResponseWriter: w, log: l, req: r, at: time.Now()}, r)
	})
}

func (l *rangeLog) take() []loggedRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	g := l.gets
	l.gets = nil
	return g
}

// statusRecorder logs a request when its status is written, before the
// body: a client that has read the body finds it logged.
type statusRecorder struct {
	http.ResponseWriter
	log *rangeLog
	req *http.Request
	at  time.Time // when the request came
}

func (s *statusRecorder) WriteHeader(code int) {
	s.log.mu.Lock()
	s.log.gets = append(s.log.gets, loggedRequest{at: s.at, method: s.req.Method, path: s.req.URL.Path,
		rng: strings.TrimPrefix(s.req.Header.Get("Range"), "bytes="), status: code, cmcd: s.req.URL.Query().Get("CMCD")})
	s.log.mu.Unlock()
	s.ResponseWriter.WriteHeader(code)
}

// onDemandMPD rewrites an MPD of ffmpeg's single-file SegmentLists as the
// DASH on-demand profile writes it: SegmentBase, whose indexRange points
// at the sidx box of each file (written with -global_sidx).
func onDemandMPD(t *testing.T, dir, mpd string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, mpd))
	if err != nil {
		t.Fatal(err)
	}
	rep := regexp.MustCompile(`(?s)<BaseURL>([^<]+)</BaseURL>\s*<SegmentList.*?</SegmentList>`)
	return rep.ReplaceAllStringFunc(string(data), func(m string) string {
		file := rep.FindStringSubmatch(m)[1]
		f, err := os.Open(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for pos := uint64(0); ; {
			box, err := mp4.DecodeBox(pos, f)
			if err != nil {
				t.Fatalf("%s: no sidx: %v", file, err)
			}
			if box.Type() == "sidx" {
				return fmt.Sprintf(`<BaseURL>%s</BaseURL><SegmentBase timescale="1000" indexRange="%d-%d"><Initialization range="0-%d"/></SegmentBase>`,
					file, pos, pos+box.Size()-1, pos-1)
			}
			pos += box.Size()
		}
	})
}

// TestPlayOnDemandProfile: deepcast play and sim read MPDs that address
// segments as byte ranges of one file per rendition, SegmentList's
// @mediaRange and SegmentBase's sidx, as ffmpeg, Shaka Packager's on-demand
// output and MP4Box write them, in one Period or two, and HLS playlists of
// EXT-X-BYTERANGE segments; every segment is fetched as its own range.
func TestPlayOnDemandProfile(t *testing.T) {
	dir := t.TempDir()
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=f=440", "-t", "12",
		"-map", "0:v", "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-b:v:0", "300k", "-b:v:1", "900k", "-s:v:1", "640x360",
		"-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-c:a", "aac", "-ar", "48000",
		"-f", "dash", "-single_file", "1", "-global_sidx", "1", "-use_template", "0", "-seg_duration", "2", filepath.Join(dir, "list.mpd"))
	if err := os.WriteFile(filepath.Join(dir, "base.mpd"), []byte(onDemandMPD(t, dir, "list.mpd")), 0o644); err != nil {
		t.Fatal(err)
	}
	// Two Periods of the same ladder, the second a replay of the first.
	list, err := os.ReadFile(filepath.Join(dir, "list.mpd"))
	if err != nil {
		t.Fatal(err)
	}
	period := regexp.MustCompile(`(?s)<Period .*?</Period>`).Find(list)
	replay := strings.Replace(string(period), `start="PT0.0S"`, `start="PT12.0S"`, 1)
	two := strings.Replace(strings.Replace(string(list), string(period), string(period)+replay, 1), `mediaPresentationDuration="PT12.0S"`, `mediaPresentationDuration="PT24.0S"`, 1)
	if err := os.WriteFile(filepath.Join(dir, "two.mpd"), []byte(two), 0o644); err != nil {
		t.Fatal(err)
	}
	// HLS over single files: EXT-X-BYTERANGE segments, EXT-X-MAP with a
	// BYTERANGE.
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=f=440", "-t", "12",
		"-map", "0:v", "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-b:v:0", "300k", "-b:v:1", "900k", "-s:v:1", "640x360",
		"-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-c:a", "aac", "-ar", "48000",
		"-f", "hls", "-hls_segment_type", "fmp4", "-hls_flags", "single_file", "-hls_playlist_type", "vod", "-hls_time", "2",
		"-master_pl_name", "master.m3u8", "-var_stream_map", "v:0,agroup:a v:1,agroup:a a:0,agroup:a,default:yes", filepath.Join(dir, "s_%v.m3u8"))
	log := &rangeLog{}
	srv := httptest.NewServer(log.wrap(http.FileServer(http.Dir(dir))))
	defer srv.Close()

	for _, mpd := range []string{"list.mpd", "base.mpd", "master.m3u8", "two.mpd"} {
		t.Run(mpd, func(t *testing.T) {
			// The segments the MPD names, as the player's parser reads them.
			m, err := player.FetchManifest(context.Background(), srv.URL+"/"+mpd, http.DefaultClient)
			if err != nil {
				t.Fatal(err)
			}
			segments, inits := map[string]bool{}, map[string]string{}
			for _, r := range append(m.Video, m.Audio...) {
				if r.InitRange == "" {
					t.Fatalf("%s: initialization segment %q has no byte range", r.ID, r.Init)
				}
				inits[strings.TrimPrefix(r.Init, srv.URL)+" "+r.InitRange] = r.ID
				for _, s := range r.Segments {
					if s.Range == "" {
						t.Fatalf("%s segment %d: no byte range", r.ID, s.Number)
					}
					segments[strings.TrimPrefix(s.URL, srv.URL)+" "+s.Range] = true
				}
			}
			chunks := 6
			if mpd == "two.mpd" {
				chunks = 12
			}
			if len(m.Video) != 2 || len(m.Video[0].Segments) != chunks {
				t.Fatalf("%d video renditions of %d segments, want 2 of %d", len(m.Video), len(m.Video[0].Segments), chunks)
			}
			// SegmentBase's index is read once per file, when the MPD is.
			index := map[string]bool{}
			doc, _ := os.ReadFile(filepath.Join(dir, mpd))
			for _, m := range regexp.MustCompile(`<BaseURL>([^<]+)</BaseURL><SegmentBase [^>]*indexRange="([0-9-]+)"`).FindAllStringSubmatch(string(doc), -1) {
				index["/"+m[1]+" "+m[2]] = true
			}
			log.take()

			var out, errb bytes.Buffer
			if code := run([]string{"play", "-cmcd", srv.URL + "/" + mpd}, &out, &errb); code != 0 {
				t.Fatalf("deepcast play: exit %d\n%s%s", code, out.String(), errb.String())
			}
			if report := out.String() + errb.String(); !strings.Contains(report, fmt.Sprintf("chunk %3d", chunks)) || !strings.Contains(report, "0 stalls") {
				t.Errorf("deepcast play:\n%s", report)
			}
			media, indexes := 0, 0
			initialized := map[string]int{} // file: its initialization segment's requests
			for _, r := range log.take() {
				g := r.String()
				f := strings.Fields(g)
				if f[0] != "GET" || !strings.HasSuffix(f[1], ".mp4") && !strings.HasSuffix(f[1], ".m4s") {
					continue
				}
				_, isInit := inits[f[1]+" "+f[2]]
				switch {
				case len(f) != 4 || f[3] != "206":
					t.Errorf("request %q was not a byte range answered 206", g)
				case index[f[1]+" "+f[2]]:
					indexes++
				case isInit:
					if initialized[f[1]]++; initialized[f[1]] > 1 {
						t.Errorf("initialization segment %q fetched again", g)
					}
				case segments[f[1]+" "+f[2]]:
					media++
					if initialized[f[1]] == 0 {
						t.Errorf("segment %q fetched before its initialization segment", g)
					}
				default:
					t.Errorf("request %q is neither a segment nor an index", g)
				}
			}
			// Every video segment and every audio one (ffmpeg's sound
			// ends in a short seventh); an index per file.
			if want := chunks + len(m.Audio[0].Segments); media != want || indexes != len(index) {
				t.Errorf("%d segment and %d index requests, want %d and %d", media, indexes, want, len(index))
			}

			out.Reset()
			errb.Reset()
			if code := run([]string{"sim", "-video", srv.URL + "/" + mpd, "-traces", filepath.Join(repoRoot(), "testdata/traces/fcc"), "-abr", "bola"}, &out, &errb); code != 0 {
				t.Fatalf("deepcast sim: exit %d\n%s", code, errb.String())
			}
		})
	}
	// A local file: the index is read from the disk.
	var out, errb bytes.Buffer
	if code := run([]string{"sim", "-video", filepath.Join(dir, "base.mpd"), "-traces", filepath.Join(repoRoot(), "testdata/traces/fcc"), "-abr", "bola"}, &out, &errb); code != 0 {
		t.Fatalf("deepcast sim -video base.mpd: exit %d\n%s", code, errb.String())
	}
}

// TestPlayAsksSegmentSizesAsItGoes: play asks a template MPD's segment
// sizes a few chunks ahead of its ABR, not all of them before it starts;
// sim, which needs them all, asks for every one, a few at a time.
func TestPlayAsksSegmentSizesAsItGoes(t *testing.T) {
	dir := t.TempDir()
	mediatest.FFmpeg(t, "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25", "-f", "lavfi", "-i", "sine=f=440", "-t", "40",
		"-map", "0:v", "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-b:v:0", "100k", "-b:v:1", "300k",
		"-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-c:a", "aac", "-ar", "48000",
		"-f", "dash", "-use_template", "1", "-use_timeline", "0", "-seg_duration", "2", filepath.Join(dir, "t.mpd"))
	log := &rangeLog{}
	srv := httptest.NewServer(log.wrap(http.FileServer(http.Dir(dir))))
	defer srv.Close()
	heads := func() int {
		n := 0
		for _, r := range log.take() {
			if r.method == http.MethodHead {
				n++
			}
		}
		return n
	}
	var out, errb bytes.Buffer
	chunkLog := filepath.Join(t.TempDir(), "chunks.csv")
	if code := run([]string{"play", "-abr", "robustmpc", "-duration", "4s", "-catchup", "1.2", "-out", chunkLog, srv.URL + "/t.mpd"}, &out, &errb); code != 0 {
		t.Fatalf("deepcast play: exit %d\n%s%s", code, out.String(), errb.String())
	}
	// On demand there is no live edge: the log keeps its columns, and
	// the chunk lines say no latency.
	if data, err := os.ReadFile(chunkLog); err != nil || !strings.HasPrefix(string(data), strings.Join(player.LogColumns, ",")+"\n") ||
		strings.Contains(out.String(), "latency") {
		t.Errorf("play -out of a VOD MPD (%v):\n%s\nchunk lines:\n%s", err, data, out.String())
	}
	// Catching up with a live edge means nothing on demand: play says so.
	if !strings.Contains(out.String(), "note: -catchup is for live streams") {
		t.Errorf("play -catchup of a VOD MPD says nothing of it:\n%s", out.String())
	}
	// Two chunks played; robustMPC looks five ahead: one window of eight
	// chunks in two renditions.
	if n := heads(); n != 16 {
		t.Errorf("play of 2 of 20 chunks asked %d sizes, want 16", n)
	}
	if code := run([]string{"sim", "-video", srv.URL + "/t.mpd", "-traces", filepath.Join(repoRoot(), "testdata/traces/fcc"), "-abr", "robustmpc"}, &out, &errb); code != 0 {
		t.Fatalf("deepcast sim: exit %d\n%s", code, errb.String())
	}
	if n := heads(); n != 60 { // 20 chunks in two renditions, 20 of sound
		t.Errorf("sim asked %d sizes, want 60", n)
	}
}
