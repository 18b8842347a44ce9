package main

import (
	"bufio"

	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deepcast/deepcast/edge"
	"github.com/deepcast/deepcast/media/mediatest"
	"github.com/deepcast/deepcast/origin"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mediatest.Cleanup()
	os.Exit(code)
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// countingHandler counts the /vod/ requests that reach h.
type countingHandler struct {
	h   http.Handler
	vod atomic.Int64
}

func (c *countingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/vod/") {
		c.vod.Add(1)
	}
	c.h.ServeHTTP(w, r)
}

// chain starts origin → bring-home → enter-deep on loopback ports.
func chain(t *testing.T, lib string) (originCount *countingHandler, home, deep *httptest.Server, deepNode *edge.Node) {
	t.Helper()
	o, err := origin.New(origin.Config{Library: lib, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	originCount = &countingHandler{h: o}
	ots := httptest.NewServer(originCount)
	hn, err := edge.New(edge.Config{Profile: edge.BringHome, Name: "home", Upstreams: []string{ots.URL}, DiskDir: t.TempDir(),
		MemBytes: 64 << 20, Logger: discard(), CheckEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	home = httptest.NewServer(hn)
	deepNode, err = edge.New(edge.Config{Profile: edge.EnterDeep, Name: "deep", Upstreams: []string{home.URL},
		MemBytes: 64 << 20, Logger: discard(), CheckEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	deep = httptest.NewServer(deepNode)
	t.Cleanup(func() {
		deep.Close()
		deepNode.Close()
		home.Close()
		hn.Close()
		ots.Close()
		o.Close()
	})
	return originCount, home, deep, deepNode
}

func TestThreeTierChainPlaysAndSecondPlayStaysAtTheEdge(t *testing.T) {
	lib := mediatest.Library(t)
	frames := mediatest.CountFrames(t, mediatest.Source(t))
	oc, _, deep, deepNode := chain(t, lib)
	url := deep.URL + "/vod/" + mediatest.AssetName + "/manifest.mpd"
	mediatest.CheckDecodesAll(t, url, 2, frames)
	first := oc.vod.Load()
	if first == 0 {
		t.Fatal("the origin saw no requests")
	}
	mediatest.CheckDecodesAll(t, url, 2, frames)
	if got := oc.vod.Load() - first; got != 0 {
		t.Errorf("second play made %d origin requests, want 0", got)
	}
	if s := deepNode.Stats(); s.Hits == 0 {
		t.Errorf("enter-deep stats show no hits: %+v", s)
	}
}

// buildBinary builds deepcast once for subprocess tests.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "deepcast")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func rssBytes(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS")
}

func TestEdgeProcessStaysWithinItsMemoryBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	const mem = 64 << 20
	const objSize = 1 << 20
	payload := make([]byte, objSize)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		w.Header().Set("Content-Length", strconv.Itoa(objSize))
		w.Write(payload)
	}))
	defer up.Close()
	port := freePort(t)
	cmd := exec.Command(bin, "edge", "-profile", "enter-deep", "-upstream", up.URL, "-listen", fmt.Sprintf("127.0.0.1:%d", port),
		"-mem", "64MiB", "-prefetch", "false")
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", port))
	client := &http.Client{Timeout: 10 * time.Second}
	var peak int64
	for i := 1; i <= 3*mem/objSize; i++ {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/vod/a/v/%d.m4s", port, i))
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != objSize {
			t.Fatalf("object %d: %d bytes", i, n)
		}
		if rss, err := rssBytes(cmd.Process.Pid); err == nil {
			peak = max(peak, rss)
		}
	}
	t.Logf("filled %d MiB through a %d MiB cache: peak RSS %d MiB", 3*mem>>20, mem>>20, peak>>20)
	if peak > mem+64<<20 {
		t.Errorf("peak RSS %d MiB exceeds -mem + 64 MiB = %d MiB", peak>>20, (mem+64<<20)>>20)
	}
}
