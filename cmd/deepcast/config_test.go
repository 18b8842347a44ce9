package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deepcast/deepcast/edge"
)

func edgeCommand0() command {
	for _, c := range commands() {
		if c.name == "edge" {
			return c
		}
	}
	panic("no edge command")
}

func TestConfigFileKeysAreFlags(t *testing.T) {
	c := edgeCommand0()
	for _, tc := range []struct {
		name, yaml, want string // want: "" to accept, else a part of the error
	}{
		{"flags as keys", "listen: 127.0.0.1:1\nmem: 64MiB\nprefetch: false\nupstream: [http://a:1, http://b:2]\n", ""},
		{"empty", "", ""},
		{"unknown key with its line", "listen: x\ncolour: red\n", "line 2: unknown key \"colour\""},
		{"wrong type with its line", "listen: x\nmem: lots\n", "line 2: mem: "},
		{"a bool that is not", "http3: maybe\n", "line 1: http3"},
		{"a mapping where a value goes", "upstream: {a: b}\n", "line 1: upstream: want a value or a list"},
		{"twice", "mem: 1MiB\nmem: 2MiB\n", "given twice"},
		{"not a mapping", "- a\n- b\n", "want a mapping"},
		{"config inside config", "config: other.yaml\n", "unknown key \"config\""},
		{"broken YAML", "listen: [\n", "config f.yaml"},
	} {
		cf, err := parseConfig("f.yaml", []byte(tc.yaml), newFlagSet(c))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		case tc.want == "" && tc.name == "flags as keys" && cf.values["upstream"] != "http://a:1,http://b:2":
			t.Errorf("list value %q", cf.values["upstream"])
		}
	}
}

// TestConfigPrecedence: flag > environment > file > default.
func TestConfigPrecedence(t *testing.T) {
	c := edgeCommand0()
	file := filepath.Join(t.TempDir(), "edge.yaml")
	os.WriteFile(file, []byte("name: from-file\nmem: 64MiB\nfetch-timeout: 3s\nquery-allow: a,b\n"), 0o644)
	t.Setenv("DEEPCAST_EDGE_MEM", "128MiB")
	t.Setenv("DEEPCAST_EDGE_FETCH_TIMEOUT", "4s")
	fs := newFlagSet(c)
	if _, err := parseInterspersed(fs, []string{"-fetch-timeout", "5s"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv(c.name, fs); err != nil {
		t.Fatal(err)
	}
	if err := useConfig(c, fs, file); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { activeConfig.path, activeConfig.file = "", nil })
	got := func(n string) string { return fs.Lookup(n).Value.String() }
	if got("fetch-timeout") != "5s" || got("mem") != "128MiB" || got("name") != "from-file" || got("query-allow") != "a,b" || got("profile") != "enter-deep" {
		t.Errorf("fetch-timeout %s (flag), mem %s (env), name %s (file), query-allow %s (file), profile %s (default)",
			got("fetch-timeout"), got("mem"), got("name"), got("query-allow"), got("profile"))
	}
}

// TestSIGHUPReloadsTheConfig: a running edge takes the upstreams, log
// level, cache rules and CMSD advice of its edited -config file on
// SIGHUP, and keeps them when a later edit is broken (a log line says
// why).
func TestSIGHUPReloadsTheConfig(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "edge.yaml")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(fmt.Sprintf("listen: %s\nupstream: http://127.0.0.1:1\nlog-level: info\n", addr))
	n := startNode(t, bin, addr, "edge", "-config", file)
	upstreams := func() []string {
		resp, err := http.Get("http://" + addr + "/api/stats")
		if err != nil {
			// A loaded machine can drop a connection: the callers poll.
			t.Logf("GET /api/stats: %v", err)
			return nil
		}
		defer resp.Body.Close()
		var s struct {
			Upstreams []struct{ URL string }
			Advice    struct{ Header string }
		}
		json.NewDecoder(resp.Body).Decode(&s)
		var out []string
		for _, u := range s.Upstreams {
			out = append(out, u.URL)
		}
		return append(out, "advice:"+s.Advice.Header)
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s:\n%s", what, n.logs.String())
			}
		}
	}
	write(fmt.Sprintf("listen: %s\nupstream: [http://127.0.0.1:2, http://127.0.0.1:3]\nlog-level: debug\n", addr))
	n.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil("the new upstreams", func() bool { return strings.Join(upstreams(), " ") == "http://127.0.0.1:2 http://127.0.0.1:3 advice:" })
	waitUntil("the debug level", func() bool { return strings.Contains(n.logs.String(), "log_level=DEBUG") })
	// A weighted pool, cache rules and a bitrate cap, by the same reload.
	write(fmt.Sprintf("listen: %s\nupstream-pool:\n  - {url: http://127.0.0.1:4, weight: 2}\n  - {url: http://127.0.0.1:5}\ncache-rules:\n  - {prefix: /vod/, ttl: 5s}\ncmsd-max-bitrate: 1200\negress-limit: 1G\n", addr))
	n.cmd.Process.Signal(syscall.SIGHUP)
	const reloaded = `http://127.0.0.1:4 http://127.0.0.1:5 advice:"deepcast-deep";mb=1200`
	waitUntil("the pool and the cap", func() bool { return strings.Join(upstreams(), " ") == reloaded })
	write("listen: [broken\n")
	n.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil("the refusal", func() bool { return strings.Contains(n.logs.String(), "configuration not reloaded; the old one stays") })
	if got := strings.Join(upstreams(), " "); got != reloaded {
		t.Errorf("after a broken file the upstreams are %q", got)
	}
}

// TestAdviceFromFile: a reload reads cmsd-share with the other CMSD
// settings; one left out is back at its default (equal shares).
func TestAdviceFromFile(t *testing.T) {
	c := edgeCommand0()
	for _, tc := range []struct {
		yaml  string
		equal bool
		err   string
	}{
		{"cmsd-share: equal\negress-limit: 10M\n", true, ""},
		{"cmsd-share: ladder\negress-limit: 10M\n", false, ""},
		{"egress-limit: 10M\n", true, ""},
		{"cmsd-share: fair\n", false, "want ladder or equal"},
	} {
		cf, err := parseConfig("e.yaml", []byte(tc.yaml), newFlagSet(c), extraKeys["edge"]...)
		if err != nil {
			t.Fatalf("%q: %v", tc.yaml, err)
		}
		adv, err := adviceFromFile(cf, edge.AdviceConfig{ShareByLadder: true})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.yaml, err, tc.err)
			}
			continue
		}
		if err != nil || adv.ShareByLadder == tc.equal || adv.EgressLimit != 10e6 {
			t.Errorf("%q: %+v, %v; want equal shares %v and a 10M limit", tc.yaml, adv, err, tc.equal)
		}
	}
}

func TestEdgeConfigCacheRulesAndPool(t *testing.T) {
	c := edgeCommand0()
	good := `listen: 127.0.0.1:1
cache-rules:
  - prefix: /vod/news-
    ttl: 10s
    stale-while-revalidate: 5s
    query-keys: [lang]
  - {prefix: /vod/, stale-if-error: 10m}
upstream-pool:
  - {url: http://o1:8080, weight: 3}
  - {url: http://o2:8080}
`
	cf, err := parseConfig("e.yaml", []byte(good), newFlagSet(c), extraKeys["edge"]...)
	if err != nil {
		t.Fatal(err)
	}
	rules, pool, err := edgeExtras(cf)
	if err != nil || len(rules) != 2 || rules[0].TTL != 10*time.Second || rules[0].QueryKeys[0] != "lang" || rules[1].SIE != 10*time.Minute ||
		len(pool) != 2 || pool[0].Weight != 3 || pool[1].Weight != 1 {
		t.Fatalf("rules %+v pool %+v err %v", rules, pool, err)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"cache-rules:\n  - {prefix: /vod/, colour: red}\n", "line 2: cache-rules: unknown key \"colour\""},
		{"cache-rules:\n  - prefix: /vod/\n    ttl: soon\n", "line 3: cache-rules: \"soon\" is not a duration"},
		{"cache-rules:\n  - {prefix: /etc/}\n", "must start with /vod/"},
		{"cache-rules: {prefix: /vod/}\n", "want a list"},
		{"upstream-pool:\n  - {url: http://o1, weight: 0}\n", "weight \"0\": want a positive number"},
		{"upstream-pool:\n  - {url: ftp://o1}\n", "want an http(s)"},
		{"upstream: http://a\nupstream-pool:\n  - {url: http://o1}\n", "not both"},
	} {
		cf, err := parseConfig("e.yaml", []byte(tc.yaml), newFlagSet(c), extraKeys["edge"]...)
		if err == nil {
			_, _, err = edgeExtras(cf)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one saying %q", tc.yaml, err, tc.want)
		}
	}
	// Another command has no such keys.
	for _, other := range commands() {
		if other.name == "origin" {
			if _, err := parseConfig("o.yaml", []byte("cache-rules: []\n"), newFlagSet(other), extraKeys["origin"]...); err == nil {
				t.Error("origin accepted cache-rules")
			}
		}
	}
}

// FuzzParseConfig: a -config file of any content is read, or refused
// with an error naming the file; never a panic, and the edge's cache rules
// from a file that was read pass the check the node applies.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("upstream: http://o1:8080\nmem: 64MiB\n"))
	f.Add([]byte("cache-rules:\n  - {prefix: /vod/, ttl: 10s, query-keys: [lang]}\nupstream-pool:\n  - {url: http://o1:8080, weight: 3}\n"))
	f.Add([]byte("cache-rules: [1, {prefix: }]\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte("&a [*a]"))
	edgeCmd := edgeCommand0()
	f.Fuzz(func(t *testing.T, data []byte) {
		cf, err := parseConfig("f.yaml", data, newFlagSet(edgeCmd), extraKeys["edge"]...)
		if err != nil {
			if !strings.Contains(err.Error(), "f.yaml") {
				t.Fatalf("error without the file's name: %v", err)
			}
			return
		}
		rules, _, err := edgeExtras(cf)
		if err != nil {
			if !strings.Contains(err.Error(), "f.yaml") {
				t.Fatalf("error without the file's name: %v", err)
			}
			return
		}
		if err := edge.CheckCacheRules(rules); err != nil {
			t.Fatalf("rules read from %q fail the node's check: %v", data, err)
		}
	})
}

// TestSIGHUPWhileStartingDoesNotEndTheNode: a SIGHUP that reaches a node
// in its first moments (its first log line is out, it does not serve
// yet) used to end the process, SIGHUP's default action; a supervisor that
// reloads a node it has just started took it down (seen once as a failure
// of TestSIGHUPReloadsTheConfig under load). Now the node starts, serves,
// and applies the reload once it serves.
func TestSIGHUPWhileStartingDoesNotEndTheNode(t *testing.T) {
	bin := buildBinary(t)
	for _, cmd := range []string{"edge", "origin"} {
		dir := t.TempDir()
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		file := filepath.Join(dir, cmd+".yaml")
		settings := fmt.Sprintf("listen: %s\nupstream: http://127.0.0.1:1\n", addr)
		if cmd == "origin" {
			settings = fmt.Sprintf("listen: %s\nlibrary: %s\n", addr, dir)
		}
		os.WriteFile(file, []byte(settings), 0o644)
		p := runProcess(t, exec.Command(bin, cmd, "-config", file))
		logs, done := p.logs, p.done
		deadline := time.Now().Add(15 * time.Second)
		for logs.String() == "" && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		p.cmd.Process.Signal(syscall.SIGHUP)
		for !strings.Contains(logs.String(), "configuration reloaded") {
			select {
			case err := <-done:
				t.Fatalf("%s: a SIGHUP while it started ended it (%v):\n%s", cmd, err, logs.String())
			case <-time.After(10 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no reload within 15 s:\n%s", cmd, logs.String())
			}
		}
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s after an early SIGHUP: %v %v\n%s", cmd, resp, err, logs.String())
		}
		resp.Body.Close()
	}
}
