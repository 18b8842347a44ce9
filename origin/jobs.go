package origin

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/deepcast/deepcast/media"
	"github.com/deepcast/deepcast/media/store"
)

// JobState is where an ingest job is.
type JobState string

// Job states.
const (
	JobQueued  JobState = "queued"
	JobRunning JobState = "running"
	JobDone    JobState = "done"
	JobFailed  JobState = "failed"
)

// Job is what GET /api/jobs/{id} reports.
type Job struct {
	ID       string    `json:"id"`
	Asset    string    `json:"asset"`
	Source   string    `json:"source"`
	State    JobState  `json:"state"`
	Stage    string    `json:"stage,omitempty"`
	Progress float64   `json:"progress"` // 0..1 within the stage
	Error    string    `json:"error,omitempty"`
	Manifest string    `json:"manifestUrl,omitempty"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
}

// maxJobsKept bounds the finished jobs remembered for GET /api/jobs/{id};
// a job not yet finished is always remembered.
const maxJobsKept = 200

// DefaultMaxJobs bounds the ingest jobs an origin holds at once (being
// uploaded, queued or running) when Config.MaxJobs is zero. Jobs run one
// at a time, and each one waiting keeps its upload on disk: without a
// bound, a script retrying uploads in a loop fills the upload disk with
// jobs that would run for hours.
const DefaultMaxJobs = 8

type job struct {
	mu sync.Mutex
	Job
}

func (j *job) snapshot() Job {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.Job
}

func (j *job) update(f func(*Job)) {
	j.mu.Lock()
	f(&j.Job)
	j.Updated = time.Now().UTC()
	j.mu.Unlock()
}

// jobs runs ingest jobs one at a time (encoding takes every core).
type jobs struct {
	s      *Server
	ctx    context.Context
	cancel context.CancelFunc
	slot   chan struct{}
	wg     sync.WaitGroup

	mu    sync.Mutex
	byID  map[string]*job
	order []string
	// held counts the jobs from their upload's first byte until they end;
	// max bounds it, keep bounds the finished jobs remembered.
	held, max, keep int
	// ending, when set (by tests), runs as a job's end is about to be
	// recorded.
	ending func()
}

func newJobs(s *Server, max int) *jobs {
	ctx, cancel := context.WithCancel(context.Background())
	return &jobs{s: s, ctx: ctx, cancel: cancel, slot: make(chan struct{}, 1), byID: map[string]*job{},
		max: max, keep: maxJobsKept}
}

// hold takes a place for a new job, false when every place is taken. The
// place is given back by release: when the upload fails, or when the job
// it started ends.
func (js *jobs) hold() bool {
	js.mu.Lock()
	defer js.mu.Unlock()
	if js.held >= js.max {
		return false
	}
	js.held++
	return true
}

func (js *jobs) release() {
	js.mu.Lock()
	js.held--
	js.mu.Unlock()
}

func (js *jobs) get(id string) (Job, bool) {
	js.mu.Lock()
	j := js.byID[id]
	js.mu.Unlock()
	if j == nil {
		return Job{}, false
	}
	return j.snapshot(), true
}

// close cancels running jobs (ffmpeg is stopped, nothing is left) and waits.
func (js *jobs) close() {
	js.cancel()
	js.wg.Wait()
}

// upload is a received source file waiting for its job.
type upload struct {
	dir, path string
	name      string
	ladder    media.Ladder
	filename  string
	// subtitles are the subtitle files sent with the source, and the
	// names they were sent under (for messages).
	subtitles []media.Subtitle
	subNames  map[string]string
	// noThumbnails and noSurround are the fields thumbnails=false and
	// surround=false: what package -thumbnails=false and -surround=false do.
	noThumbnails, noSurround bool
}

// receive streams the multipart body to a temporary file: the upload is
// never held in memory.
func (js *jobs) receive(r *http.Request) (up *upload, err error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, fmt.Errorf("want a multipart/form-data upload with a file field: %w", err)
	}
	up = &upload{}
	defer func() {
		if err != nil && up.dir != "" {
			store.RemoveWorkFolder(up.dir)
		}
	}()
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return up, fmt.Errorf("upload: %w", err)
		}
		switch part.FormName() {
		case "file":
			if up.path != "" {
				return up, fmt.Errorf("upload: one file per job")
			}
			if err := up.save(js.s.cfg.UploadDir, part); err != nil {
				return up, err
			}
		case "subtitles":
			if err := up.saveSubtitles(js.s.cfg.UploadDir, part, ""); err != nil {
				return up, err
			}
		case "name", "ladder", "thumbnails", "surround":
			v, err := io.ReadAll(io.LimitReader(part, 1024))
			if err != nil {
				return up, fmt.Errorf("upload: %w", err)
			}
			value := strings.TrimSpace(string(v))
			switch part.FormName() {
			case "name":
				up.name = value
			case "ladder":
				if value != "" {
					if up.ladder, err = media.ParseLadder(value); err != nil {
						return up, err
					}
				}
			default:
				on, err := strconv.ParseBool(value)
				if err != nil {
					return up, fmt.Errorf("upload: field %s: %q is neither true nor false", part.FormName(), value)
				}
				if part.FormName() == "thumbnails" {
					up.noThumbnails = !on
				} else {
					up.noSurround = !on
				}
			}
		}
		if spec, ok := strings.CutPrefix(part.FormName(), "subtitles:"); ok {
			if err := up.saveSubtitles(js.s.cfg.UploadDir, part, spec); err != nil {
				return up, err
			}
		}
		part.Close()
	}
	if up.path == "" {
		return up, fmt.Errorf("upload: no file field")
	}
	if up.name == "" {
		up.name = media.NameFromFile(up.filename)
	}
	if !media.ValidName(up.name) {
		return up, fmt.Errorf("asset name %q: %s", up.name, media.NameRule)
	}
	return up, nil
}

// makeDir makes the upload's work folder under dir, once.
func (up *upload) makeDir(dir string) error {
	if up.dir != "" {
		return nil
	}
	dir, err := store.MakeWorkFolder(dir, "deepcast-upload-", "")
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	up.dir = dir
	return nil
}

func (up *upload) save(dir string, part *multipart.Part) error {
	if err := up.makeDir(dir); err != nil {
		return err
	}
	up.filename = filepath.Base(part.FileName())
	if up.filename == "." || up.filename == "/" || up.filename == "" {
		up.filename = "upload"
	}
	up.path = filepath.Join(up.dir, "source"+filepath.Ext(up.filename))
	_, err := writePart(up.path, part)
	return err
}

// writePart writes what r holds to a new file at path and says how many
// bytes that was.
func writePart(path string, r io.Reader) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, fmt.Errorf("upload: %w", err)
	}
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("upload: %w", err)
	}
	return n, nil
}

// maxUploadSubtitles bounds the subtitle files of one upload.
const maxUploadSubtitles = 32

// saveSubtitles keeps a subtitle file part (field "subtitles", or
// "subtitles:LANG[+ROLE]" such as subtitles:en+caption) beside the
// source, to be read as an untrusted text subtitle file.
func (up *upload) saveSubtitles(dir string, part *multipart.Part, spec string) error {
	if err := up.makeDir(dir); err != nil {
		return err
	}
	if len(up.subtitles) == maxUploadSubtitles {
		return fmt.Errorf("upload: more than %d subtitle files", maxUploadSubtitles)
	}
	// Fixed width: no name is the start of another (messages swap them
	// for the names they were sent under).
	path := filepath.Join(up.dir, fmt.Sprintf("subtitles-%02d", len(up.subtitles)))
	flag := path
	if spec != "" {
		flag = spec + "=" + path
	}
	sub, err := media.ParseSubtitle(flag)
	if err != nil {
		return fmt.Errorf("upload: field %q: %w", part.FormName(), err)
	}
	sub.Untrusted = true
	n, err := writePart(path, io.LimitReader(part, media.MaxSubtitleBytes+1))
	if err != nil {
		return err
	}
	name := cmp.Or(filepath.Base(part.FileName()), part.FormName())
	if n > media.MaxSubtitleBytes {
		return fmt.Errorf("upload: subtitles %s: more than %d MiB", name, media.MaxSubtitleBytes>>20)
	}
	if up.subNames == nil {
		up.subNames = map[string]string{}
	}
	up.subNames[path] = name
	up.subtitles = append(up.subtitles, sub)
	return nil
}

func newJobID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (js *jobs) start(up *upload) *job {
	now := time.Now().UTC()
	j := &job{Job: Job{ID: newJobID(), Asset: up.name, Source: up.filename, State: JobQueued, Created: now, Updated: now}}
	js.mu.Lock()
	js.byID[j.ID] = j
	js.order = append(js.order, j.ID)
	js.forgetLocked()
	js.mu.Unlock()
	js.count()
	js.wg.Go(func() { js.run(j, up) })
	return j
}

// forgetLocked drops the oldest finished jobs past js.keep. Jobs still
// queued or running stay: their uploader is polling them.
func (js *jobs) forgetLocked() {
	finished := 0
	for _, id := range js.order {
		if st := js.byID[id].snapshot().State; st == JobDone || st == JobFailed {
			finished++
		}
	}
	kept := js.order[:0]
	for _, id := range js.order {
		if st := js.byID[id].snapshot().State; finished > js.keep && (st == JobDone || st == JobFailed) {
			delete(js.byID, id)
			finished--
			continue
		}
		kept = append(kept, id)
	}
	clear(js.order[len(kept):])
	js.order = kept
}

// run packages one upload. The job's place (see hold), its running slot
// and its upload are all given back before its state says it ended: an
// uploader that sends its next file as soon as it reads "done" must find
// the place free, not a 503.
func (js *jobs) run(j *job, up *upload) {
	end := js.work(j, up)
	store.RemoveWorkFolder(up.dir)
	js.release()
	js.finish(j, end)
}

// work waits for the running slot, packages the upload and returns how
// the job ended.
func (js *jobs) work(j *job, up *upload) func(*Job) {
	select {
	case js.slot <- struct{}{}:
		defer func() { <-js.slot }()
	case <-js.ctx.Done():
		return failed(js.ctx.Err())
	}
	j.update(func(j *Job) { j.State = JobRunning })
	js.count()
	log := js.s.log.With("job", j.ID, "asset", up.name)
	log.Info("ingest started", "source", up.filename)
	_, err := media.Package(js.ctx, []string{up.path}, media.PackageOptions{
		Library: js.s.catalog.Root(), Store: js.s.catalog.Store(), Name: up.name, Ladder: up.ladder,
		Untrusted: true, // an upload: a plain container, no references to other files
		Subtitles: up.subtitles, NoThumbnails: up.noThumbnails, NoSurround: up.noSurround,
		Progress: func(p media.Progress) {
			j.update(func(j *Job) { j.Stage, j.Progress = p.Stage, p.Fraction() })
		},
	})
	if err != nil {
		// The packager names the temporary file; the user knows it by its upload name.
		msg := strings.ReplaceAll(err.Error(), up.path, up.filename)
		for path, name := range up.subNames {
			msg = strings.ReplaceAll(msg, path, name)
		}
		log.Warn("ingest failed", "err", msg)
		return failed(fmt.Errorf("%s", msg))
	}
	if _, err := js.s.catalog.Refresh(js.ctx, up.name); err != nil {
		js.s.catalog.Invalidate(up.name)
	}
	log.Info("ingest done")
	return func(j *Job) {
		j.State, j.Progress, j.Manifest = JobDone, 1, "/vod/"+up.name+"/manifest.mpd"
	}
}

// failed is how a job that failed with err ends.
func failed(err error) func(*Job) {
	return func(j *Job) { j.State, j.Error = JobFailed, err.Error() }
}

// finish records how a job ended and forgets old finished ones: the jobs
// finished while others queued are forgotten now rather than at the next
// upload.
func (js *jobs) finish(j *job, f func(*Job)) {
	if js.ending != nil {
		js.ending()
	}
	j.update(f)
	js.mu.Lock()
	js.forgetLocked()
	js.mu.Unlock()
	js.count()
}

// running counts the jobs in the running state.
func (js *jobs) running() int {
	js.mu.Lock()
	defer js.mu.Unlock()
	n := 0
	for _, j := range js.byID {
		if j.snapshot().State == JobRunning {
			n++
		}
	}
	return n
}

// count refreshes the jobs-by-state gauge.
func (js *jobs) count() {
	counts := map[JobState]int{JobQueued: 0, JobRunning: 0, JobDone: 0, JobFailed: 0}
	js.mu.Lock()
	for _, j := range js.byID {
		counts[j.snapshot().State]++
	}
	js.mu.Unlock()
	for st, n := range counts {
		js.s.metrics.jobs.WithLabelValues(string(st)).Set(float64(n))
	}
}
