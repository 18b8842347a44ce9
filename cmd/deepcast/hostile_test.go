package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/deepcast/deepcast/media/mediatest"
)

// lockedWriter is a bytes.Buffer safe for a child's output and the test.
type lockedWriter struct {
	mu  chan struct{}
	buf bytes.Buffer
}

func newLockedWriter() *lockedWriter { return &lockedWriter{mu: make(chan struct{}, 1)} }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu <- struct{}{}
	defer func() { <-w.mu }()
	return w.buf.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu <- struct{}{}
	defer func() { <-w.mu }()
	return w.buf.String()
}

// TestServersOutliveRunningOutOfFiles: under a 128-file limit, 300 idle
// keep-alive connections used to make origin and edge exit with "accept4:
// too many open files". Now they back off, serve again once connections
// close, and log the limit they run with.
func TestServersOutliveRunningOutOfFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit (util-linux) not installed")
	}
	bin := buildBinary(t)
	lib := mediatest.CopyLibrary(t)
	originPort := freePort(t)
	originAddr := fmt.Sprintf("127.0.0.1:%d", originPort)
	edgeAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	servers := []struct {
		name string
		args []string
		addr string
	}{
		{"origin", []string{"origin", "-library", lib, "-listen", originAddr, "-access-log=false"}, originAddr},
		{"edge", []string{"edge", "-upstream", "http://" + originAddr, "-listen", edgeAddr}, edgeAddr},
	}
	seg := "/vod/" + mediatest.AssetName + "/manifest.mpd"
	for _, s := range servers {
		logs := newLockedWriter()
		cmd := exec.Command("prlimit", append([]string{"--nofile=128:128", bin}, s.args...)...)
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		t.Cleanup(func() {
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-exited:
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
			}
		})
		waitListening(t, s.addr)
		var conns []net.Conn
		for range 300 {
			c, err := net.DialTimeout("tcp", s.addr, 2*time.Second)
			if err != nil {
				break // the listen backlog is full: as far as a client can push
			}
			conns = append(conns, c)
		}
		time.Sleep(time.Second) // the accept loop meets EMFILE meanwhile
		select {
		case err := <-exited:
			t.Fatalf("%s exited holding %d connections: %v\n%s", s.name, len(conns), err, logs.String())
		default:
		}
		for _, c := range conns {
			c.Close()
		}
		client := &http.Client{Timeout: 5 * time.Second}
		var resp *http.Response
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if resp, err = client.Get("http://" + s.addr + seg); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("%s does not serve after the connections closed: %v\n%s", s.name, err, logs.String())
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %s after the flood", s.name, resp.Status)
		}
		if out := logs.String(); !strings.Contains(out, "open-file limit") || !strings.Contains(out, "files=128") {
			t.Errorf("%s did not log its file limit:\n%s", s.name, out)
		}
	}
}
