package origin

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// junkFile writes n random bytes: an upload whose job fails at once (it is
// no video), which is all a test of the queue needs.
func junkFile(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	rand.Read(b)
	path := filepath.Join(t.TempDir(), "junk.mp4")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// uploadSized sends path as uploadFile does, with a Content-Length: the
// body is built in memory first.
func uploadSized(t *testing.T, url, path string) (*http.Response, Job) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", filepath.Base(path))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	mw.Close()
	// A *bytes.Buffer body: net/http sends its length.
	return postUpload(t, url, "secret-token", &body, mw.FormDataContentType())
}

func TestIngestJobsAreBounded(t *testing.T) {
	s, ts := start(t, t.TempDir(), func(c *Config) { c.MaxJobs = 2 })
	// Two finished jobs are remembered: both queued ones can be read
	// once they end, in whichever order they end and are polled.
	s.jobs.keep = 2
	junk := junkFile(t, 64<<10)

	// Hold the one running place so the jobs stay queued.
	s.jobs.slot <- struct{}{}
	var ids []string
	for i := range 2 {
		resp, j := uploadFile(t, ts.URL, "secret-token", junk, nil)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("upload %d of 2: %d, want 202", i+1, resp.StatusCode)
		}
		ids = append(ids, j.ID)
	}
	resp, _ := uploadFile(t, ts.URL, "secret-token", junk, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("upload past -max-jobs: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Jobs not finished are remembered whatever keep says: their
	// uploaders are polling them.
	for _, id := range ids {
		if resp, _ := get(t, ts.URL+"/api/jobs/"+id); resp.StatusCode != http.StatusOK {
			t.Errorf("queued job %s: %d, want 200", id, resp.StatusCode)
		}
	}
	<-s.jobs.slot
	for _, id := range ids {
		if j, _ := waitJob(t, ts.URL, id); j.State != JobFailed {
			t.Errorf("junk job %s ended %s, want failed", id, j.State)
		}
	}
	// Their places are free again; of the finished jobs, the newest keep
	// (by upload) are remembered: a third one's end forgets the first.
	resp, j := uploadFile(t, ts.URL, "secret-token", junk, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload after the queue drained: %d, want 202", resp.StatusCode)
	}
	waitJob(t, ts.URL, j.ID)
	for i, want := range []int{http.StatusNotFound, http.StatusOK} {
		if resp, _ := get(t, ts.URL+"/api/jobs/"+ids[i]); resp.StatusCode != want {
			t.Errorf("finished job %d of 3 (%s): %d, want %d", i+1, ids[i], resp.StatusCode, want)
		}
	}
}

// An uploader that sends its next file as soon as its job says it ended
// must find the place free: the place, the running slot and the upload
// are given back before the end is recorded.
func TestAJobGivesItsPlaceBackBeforeItSaysItEnded(t *testing.T) {
	upDir := t.TempDir()
	s, ts := start(t, t.TempDir(), func(c *Config) { c.MaxJobs = 1; c.UploadDir = upDir })
	type atEnd struct {
		held, running, uploads int
	}
	seen := make(chan atEnd, 1)
	s.jobs.ending = func() {
		s.jobs.mu.Lock()
		held := s.jobs.held
		s.jobs.mu.Unlock()
		left, _ := os.ReadDir(upDir)
		seen <- atEnd{held: held, running: len(s.jobs.slot), uploads: len(left)}
	}
	resp, j := uploadFile(t, ts.URL, "secret-token", junkFile(t, 64<<10), nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload: %d, want 202", resp.StatusCode)
	}
	select {
	case got := <-seen:
		if got != (atEnd{}) {
			t.Errorf("as the job's end was recorded: %d places held, %d running, %d uploads left; want none", got.held, got.running, got.uploads)
		}
	case <-time.After(time.Minute):
		t.Fatal("the job did not end within a minute")
	}
	if j, _ := waitJob(t, ts.URL, j.ID); j.State != JobFailed {
		t.Errorf("junk job ended %s, want failed", j.State)
	}
	if resp, _ := uploadFile(t, ts.URL, "secret-token", junkFile(t, 64<<10), nil); resp.StatusCode != http.StatusAccepted {
		t.Errorf("upload right after the job ended: %d, want 202", resp.StatusCode)
	}
}

func TestIngestRefusesWhatTheUploadDiskCannotHold(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("needs a tmpfs of its own (root): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	// One place only: each refusal must give it back.
	_, ts := start(t, t.TempDir(), func(c *Config) { c.MaxJobs = 1; c.UploadDir = dir })
	big := junkFile(t, 2<<20)

	// Declared too large: refused before the body is read.
	resp, _ := uploadSized(t, ts.URL, big)
	if resp.StatusCode != http.StatusInsufficientStorage {
		t.Errorf("declared 2 MiB into 1 MiB: %d, want 507", resp.StatusCode)
	}
	// Not declared (chunked): the disk fills, the partial upload goes.
	resp, _ = uploadFile(t, ts.URL, "secret-token", big, nil)
	if resp.StatusCode != http.StatusInsufficientStorage {
		t.Errorf("chunked 2 MiB into 1 MiB: %d, want 507", resp.StatusCode)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("refused uploads left %d entries in the upload folder", len(left))
	}
	resp, j := uploadFile(t, ts.URL, "secret-token", junkFile(t, 64<<10), nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload that fits, after two refusals: %d, want 202", resp.StatusCode)
	}
	waitJob(t, ts.URL, j.ID)
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("a finished job left %d entries in the upload folder", len(left))
	}
}

// TestStalledUploadsGiveTheirPlaceBack: an uploader that stops sending is
// answered 408 once a window passes without uploadFloor more bytes, and its
// ingest place goes to the next upload; one that sends slowly but steadily
// is never cut.
func TestStalledUploadsGiveTheirPlaceBack(t *testing.T) {
	const window = 500 * time.Millisecond
	upDir := t.TempDir()
	s, ts := start(t, t.TempDir(), func(c *Config) { c.MaxJobs = 1; c.UploadStall = window; c.UploadDir = upDir })
	s.jobs.keep = 1

	// A steady uploader: uploadFloor every window/3, for six windows.
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		fw, _ := mw.CreateFormFile("file", "slow.mp4")
		chunk := make([]byte, uploadFloor)
		for range 18 {
			rand.Read(chunk)
			if _, err := fw.Write(chunk); err != nil {
				return
			}
			time.Sleep(window / 3)
		}
		pw.CloseWithError(mw.Close())
	}()
	began := time.Now()
	resp, j := postUpload(t, ts.URL, "secret-token", pr, mw.FormDataContentType())
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("a steady upload of %s: %d, want 202", time.Since(began).Round(time.Millisecond), resp.StatusCode)
	}
	waitJob(t, ts.URL, j.ID) // its place is free once it says it ended

	// A stalled uploader: headers, the start of the file, then nothing.
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const boundary = "stall"
	start := "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n\r\n" + strings.Repeat("x", 1000)
	fmt.Fprintf(conn, "POST /api/assets HTTP/1.1\r\nHost: origin\r\nAuthorization: Bearer secret-token\r\n"+
		"Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n%s", boundary, 10<<20, start)
	began = time.Now()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	stalled, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("stalled upload: no answer within 10 s: %v", err)
	}
	stalled.Body.Close()
	if stalled.StatusCode != http.StatusRequestTimeout {
		t.Errorf("stalled upload: %d, want 408", stalled.StatusCode)
	}
	if took := time.Since(began); took < window*8/10 {
		t.Errorf("stalled upload cut after %s, before its window of %s", took, window)
	}
	resp, j = uploadFile(t, ts.URL, "secret-token", junkFile(t, 64<<10), nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("upload after a stalled one: %d, want 202 (the place given back)", resp.StatusCode)
	}
	waitJob(t, ts.URL, j.ID)
	if left, _ := os.ReadDir(upDir); len(left) != 0 {
		t.Errorf("the stalled upload left %d entries in the upload folder", len(left))
	}
}
