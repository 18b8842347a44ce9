package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/deepcast/deepcast/edge"
	"github.com/deepcast/deepcast/media"
)

// TestSoak is `make soak`: the full chain (origin, bring-home, enter-deep,
// each its own process) under ten minutes of mixed load — wrk over every
// segment of a library three times larger than the enter-deep node's
// memory, play sessions back to back, a purge every 20 s — with the
// processes' memory, descriptors and goroutines sampled, and wrk's p99 per
// 30 s window. Targets: no errors; memory within its bound with no growth
// trend. DEEPCAST_SOAK_DURATION shortens it (for trying the harness).
func TestSoak(t *testing.T) {
	if os.Getenv("DEEPCAST_SOAK") == "" {
		t.Skip("the soak runs for ten minutes: make soak")
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Fatal("wrk is needed: make soak installs it")
	}
	total := 10 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("DEEPCAST_SOAK_DURATION")); err == nil {
		total = d
	}
	const window = 30 * time.Second
	const deepMem = 12 << 20
	bin := buildBinary(t)
	lib := packageLabAsset(t, 120*time.Second)
	a, err := media.LoadAsset(mustResolve(t, lib, "lab"))
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	var libBytes int64
	for _, r := range a.Renditions {
		for n, s := range r.Segments {
			paths = append(paths, fmt.Sprintf("/vod/lab/%s/%d.m4s", r.ID, n+1))
			libBytes += s.Size
		}
	}
	dir := t.TempDir()
	port := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }
	oAddr, hAddr, dAddr := port(), port(), port()
	type proc struct {
		name string
		cmd  *exec.Cmd
		log  string
	}
	var procs []*proc
	start := func(name string, args ...string) *proc {
		p := &proc{name: name, log: filepath.Join(dir, name+".log")}
		f, _ := os.Create(p.log)
		p.cmd = exec.Command(bin, args...)
		p.cmd.Stdout, p.cmd.Stderr = f, f
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait(); f.Close() })
		procs = append(procs, p)
		return p
	}
	start("origin", "origin", "-library", lib, "-listen", oAddr, "-access-log=false")
	start("bring-home", "edge", "-profile", "bring-home", "-listen", hAddr, "-upstream", "http://"+oAddr, "-disk", filepath.Join(dir, "disk"), "-mem", "64MiB", "-disk-size", "1GiB")
	start("enter-deep", "edge", "-profile", "enter-deep", "-listen", dAddr, "-upstream", "http://"+hAddr, "-mem", "12MiB", "-admin-token", "soak")
	for _, addr := range []string{oAddr, hAddr, dAddr} {
		waitListening(t, addr)
	}
	deep := "http://" + dAddr
	t.Logf("soak: %s, %d keys (%d MiB) through a %d MiB enter-deep node (%.1fx its memory)", total, len(paths), libBytes>>20, deepMem>>20, float64(libBytes)/deepMem)

	ctx, cancel := context.WithTimeout(context.Background(), total+time.Minute)
	defer cancel()
	var errorsSeen atomic.Int64
	var errMu sync.Mutex
	var errSamples []string
	noteErr := func(what string, err error) {
		errorsSeen.Add(1)
		errMu.Lock()
		if len(errSamples) < 10 {
			errSamples = append(errSamples, what+": "+err.Error())
		}
		errMu.Unlock()
	}
	var bg sync.WaitGroup
	// Viewers: play sessions back to back.
	var sessions atomic.Int64
	for v := range 3 {
		bg.Go(func() {
			for ctx.Err() == nil {
				_, err := play(ctx, deep+"/vod/lab/manifest.mpd", playOptions{ABR: []string{"robustmpc", "bola", "dynamic"}[v], QoE: "lin", Verify: true, Duration: 40 * time.Second})
				if err != nil && ctx.Err() == nil {
					noteErr("play", err)
				}
				sessions.Add(1)
			}
		})
	}
	// Purges.
	var purges atomic.Int64
	bg.Go(func() {
		for ctx.Err() == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Second):
			}
			req, _ := http.NewRequest(http.MethodPost, deep+"/api/purge", strings.NewReader(`{"prefix":"/vod/lab/"}`))
			req.Header.Set("Authorization", "Bearer soak")
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("%s", resp.Status)
				}
			}
			if err != nil {
				noteErr("purge", err)
			}
			purges.Add(1)
		}
	})
	// Samples of every process.
	type sample struct{ rss, fds, goroutines [3]int64 }
	var smu sync.Mutex
	var samples []sample
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			var s sample
			for i, p := range procs {
				s.rss[i], _ = rssBytes(p.cmd.Process.Pid)
				if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid)); err == nil {
					s.fds[i] = int64(len(fds))
				}
				s.goroutines[i] = goroutinesOf(p.cmd.Process.Pid)
			}
			smu.Lock()
			samples = append(samples, s)
			smu.Unlock()
			select {
			case <-stopSampling:
				return
			case <-time.After(5 * time.Second):
			}
		}
	})
	// Load, in windows.
	type windowResult struct {
		wrk         wrkResult
		peak        sample
		errorsSoFar int64
	}
	var windows []windowResult
	began := time.Now()
	for time.Since(began)+window <= total {
		from := len(samples)
		r := runWrk(t, deep, paths, 32, window)
		smu.Lock()
		var peak sample
		for _, s := range samples[min(from, len(samples)):] {
			for i := range 3 {
				peak.rss[i] = max(peak.rss[i], s.rss[i])
				peak.fds[i] = max(peak.fds[i], s.fds[i])
				peak.goroutines[i] = max(peak.goroutines[i], s.goroutines[i])
			}
		}
		smu.Unlock()
		windows = append(windows, windowResult{wrk: r, peak: peak, errorsSoFar: errorsSeen.Load() + int64(r.Errors)})
		if r.Errors > 0 {
			noteErr("wrk", fmt.Errorf("%d errors in window %d", r.Errors, len(windows)))
		}
		t.Logf("window %2d: %6.0f req/s p99 %-8v errors %d; RSS deep %d MiB home %d MiB origin %d MiB; fds %d/%d/%d; goroutines %d/%d/%d",
			len(windows), r.RPS, r.P99.Round(100*time.Microsecond), r.Errors, peak.rss[2]>>20, peak.rss[1]>>20, peak.rss[0]>>20,
			peak.fds[2], peak.fds[1], peak.fds[0], peak.goroutines[2], peak.goroutines[1], peak.goroutines[0])
	}
	cancel()
	bg.Wait()
	close(stopSampling)
	sampler.Wait()

	var b strings.Builder
	fmt.Fprintf(&b, "soak: %s through origin -> bring-home -> enter-deep (-mem %d MiB, %d keys, %d MiB: %.1fx its memory); wrk -c32 over every key, 3 play sessions back to back (%d sessions), a purge every 20 s (%d purges)\n\n",
		time.Since(began).Round(time.Second), deepMem>>20, len(paths), libBytes>>20, float64(libBytes)/deepMem, sessions.Load(), purges.Load())
	b.WriteString("| window | req/s | p99 | errors | RSS enter-deep / bring-home / origin (MiB) | fds | goroutines |\n|---|---|---|---|---|---|---|\n")
	for i, w := range windows {
		fmt.Fprintf(&b, "| %d | %.0f | %v | %d | %d / %d / %d | %d / %d / %d | %d / %d / %d |\n", i+1, w.wrk.RPS, w.wrk.P99.Round(100*time.Microsecond), w.wrk.Errors,
			w.peak.rss[2]>>20, w.peak.rss[1]>>20, w.peak.rss[0]>>20, w.peak.fds[2], w.peak.fds[1], w.peak.fds[0],
			w.peak.goroutines[2], w.peak.goroutines[1], w.peak.goroutines[0])
	}
	fmt.Fprintf(&b, "\nerrors: %d %v\n", errorsSeen.Load(), errSamples)
	t.Log("\n" + b.String())
	if out := os.Getenv("DEEPCAST_SOAK_OUT"); out != "" {
		os.WriteFile(out, []byte(b.String()), 0o644)
	}
	if errorsSeen.Load() > 0 {
		t.Errorf("%d errors: %v", errorsSeen.Load(), errSamples)
	}
	// Memory: within the documented bound, and no growth once warm (the
	// last third's peak within 15% of the middle third's).
	bounds := [3]int64{0, 64<<20 + edge.InflightBudget(64<<20) + 64<<20, int64(deepMem) + edge.InflightBudget(deepMem) + 64<<20}
	if len(windows) >= 3 {
		third := len(windows) / 3
		for i, name := range []string{"origin", "bring-home", "enter-deep"} {
			var mid, last int64
			for _, w := range windows[third : 2*third] {
				mid = max(mid, w.peak.rss[i])
			}
			for _, w := range windows[2*third:] {
				last = max(last, w.peak.rss[i])
			}
			if float64(last) > 1.15*float64(mid) {
				t.Errorf("%s RSS grows: %d MiB in the middle third, %d MiB in the last", name, mid>>20, last>>20)
			}
		}
		for i, name := range []string{"bring-home", "enter-deep"} {
			for _, w := range windows {
				if w.peak.rss[i+1] > bounds[i+1] {
					t.Errorf("%s RSS %d MiB above its bound (-mem + in-flight budget + 64 MiB) %d MiB", name, w.peak.rss[i+1]>>20, bounds[i+1]>>20)
					break
				}
			}
		}
	}
}

// goroutinesOf reads go_goroutines from the /metrics of the deepcast
// process pid, at the -listen address of its command line.
func goroutinesOf(pid int) int64 {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0
	}
	args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
	addr := ""
	for i, a := range args {
		if string(a) == "-listen" && i+1 < len(args) {
			addr = string(args[i+1])
		}
	}
	if addr == "" {
		return 0
	}
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int64(n)
		}
	}
	return 0
}
