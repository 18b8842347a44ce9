package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deepcast/deepcast/media/store/storetest"
)

// Helpers that run the real peers of `make bench` (nginx, Varnish) and the
// load generator (wrk), all on loopback.

// freePort returns a loopback port for a server that a test runs as
// another process.
var freePort = storetest.FreePort

// waitListening waits until addr accepts connections.
func waitListening(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never started listening", addr)
}

// startNginx runs Debian's nginx unprivileged-style from a generated config;
// body is the content of the http block's server. It returns the master
// process's ID.
func startNginx(t testing.TB, port int, httpExtra, server string) int {
	t.Helper()
	return startNginxListen(t, port, "", httpExtra, server)
}

// startNginxListen is startNginx with options on the listen directive
// ("ssl http2").
func startNginxListen(t testing.TB, port int, listenOpts, httpExtra, server string) int {
	t.Helper()
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Skip("nginx not installed (make bench installs it)")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	user := ""
	if os.Getuid() == 0 {
		user = "user root;"
	}
	conf := fmt.Sprintf(`%s
worker_processes auto;
daemon on;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000; keepalive_timeout 120s;
  client_body_temp_path %[2]s/body; proxy_temp_path %[2]s/proxy; fastcgi_temp_path %[2]s/fastcgi;
  uwsgi_temp_path %[2]s/uwsgi; scgi_temp_path %[2]s/scgi;
  types { application/dash+xml mpd; video/iso.segment m4s; video/mp4 mp4; application/json json; }
  %[3]s
  server {
    listen 127.0.0.1:%[4]d %[6]s;
    %[5]s
  }
}
`, user, dir, httpExtra, port, server, listenOpts)
	path := filepath.Join(dir, "nginx.conf")
	os.WriteFile(path, []byte(conf), 0o644)
	if out, err := exec.Command("nginx", "-c", path).CombinedOutput(); err != nil {
		t.Fatalf("nginx: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		pid, _ := os.ReadFile(filepath.Join(dir, "nginx.pid"))
		if n, err := strconv.Atoi(strings.TrimSpace(string(pid))); err == nil {
			syscall.Kill(n, syscall.SIGQUIT)
			for range 50 {
				if syscall.Kill(n, 0) != nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	})
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", port))
	pid, _ := os.ReadFile(filepath.Join(dir, "nginx.pid"))
	n, _ := strconv.Atoi(strings.TrimSpace(string(pid)))
	return n
}

// procCPU is the CPU time (user and system) the processes have used so far,
// with their children when withChildren (nginx's workers under its master),
// read from /proc; a process that is gone counts nothing.
func procCPU(withChildren bool, pids ...int) time.Duration {
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	var total time.Duration
	for _, pid := range pids {
		if pid <= 0 {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		utime, _ := strconv.Atoi(f[11])
		stime, _ := strconv.Atoi(f[12])
		total += time.Duration(utime+stime) * tick
		if withChildren {
			kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
			for _, k := range strings.Fields(string(kids)) {
				if n, err := strconv.Atoi(k); err == nil {
					total += procCPU(false, n)
				}
			}
		}
	}
	return total
}

// wrkResult is what one wrk run measured.
type wrkResult struct {
	RPS    float64
	P50    time.Duration
	P99    time.Duration
	Errors int
	// P99Min and P99Max span the rounds a median was taken over.
	P99Min, P99Max time.Duration
}

var (
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkLatency = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.000)?%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkErrors  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)|Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// runWrk loads the given paths on base (rotating over them) and parses the report.
func runWrk(t testing.TB, base string, paths []string, conns int, dur time.Duration) wrkResult {
	t.Helper()
	return runWrkWith(t, base, paths, conns, dur, nil)
}

// runWrkWith is runWrk with request headers (name, value pairs) on every
// request.
func runWrkWith(t testing.TB, base string, paths []string, conns int, dur time.Duration, header []string) wrkResult {
	t.Helper()
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Skip("wrk not installed (make bench installs it)")
	}
	script := filepath.Join(t.TempDir(), "rotate.lua")
	var b strings.Builder
	b.WriteString("local paths = {\n")
	for _, p := range paths {
		fmt.Fprintf(&b, "  %q,\n", p)
	}
	b.WriteString("}\nlocal headers = {\n")
	for i := 0; i+1 < len(header); i += 2 {
		fmt.Fprintf(&b, "  [%q] = %q,\n", header[i], header[i+1])
	}
	b.WriteString("}\nlocal i = 0\nrequest = function()\n  i = i + 1\n  return wrk.format(\"GET\", paths[(i % #paths) + 1], headers)\nend\n")
	os.WriteFile(script, []byte(b.String()), 0o644)
	out, err := exec.Command("wrk", "-t2", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", int(dur.Seconds())),
		"--latency", "--timeout", "10s", "-s", script, base).CombinedOutput()
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	var r wrkResult
	if m := wrkRPS.FindSubmatch(out); m != nil {
		r.RPS, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	for _, m := range wrkLatency.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(m[3])]
		d := time.Duration(v * float64(unit))
		if string(m[1]) == "50" {
			r.P50 = d
		} else {
			r.P99 = d
		}
	}
	for _, m := range wrkErrors.FindAllSubmatch(out, -1) {
		for _, g := range m[1:] {
			n, _ := strconv.Atoi(string(g))
			r.Errors += n
		}
	}
	if r.RPS == 0 {
		t.Fatalf("wrk printed no rate:\n%s", out)
	}
	return r
}

// median is the middle value of v (the upper one of an even count).
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// median of wrk results by field.
func medianResult(rs []wrkResult) wrkResult {
	pick := func(f func(wrkResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return median(v)
	}
	errs, lo, hi := 0, rs[0].P99, rs[0].P99
	for _, r := range rs {
		errs += r.Errors
		lo, hi = min(lo, r.P99), max(hi, r.P99)
	}
	return wrkResult{
		P99Min: lo, P99Max: hi,
		RPS:    pick(func(r wrkResult) float64 { return r.RPS }),
		P50:    time.Duration(pick(func(r wrkResult) float64 { return float64(r.P50) })),
		P99:    time.Duration(pick(func(r wrkResult) float64 { return float64(r.P99) })),
		Errors: errs,
	}
}

func (r wrkResult) String() string {
	s := fmt.Sprintf("%9.0f req/s  p50 %8s  p99 %8s  errors %d", r.RPS, r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Errors)
	if r.P99Max > 0 {
		s += fmt.Sprintf("  (p99 over the rounds %s-%s)", r.P99Min.Round(10*time.Microsecond), r.P99Max.Round(10*time.Microsecond))
	}
	return s
}
