package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/deepcast/deepcast/player"
)

func TestHelpListsEveryCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"help"}, &out, &errb); code != 0 {
		t.Fatalf("help exit %d", code)
	}
	help := out.String()
	for _, c := range commands() {
		if !strings.Contains(help, c.name) {
			t.Errorf("help does not list %s", c.name)
		}
		out.Reset()
		errb.Reset()
		if code := run([]string{c.name, "-h"}, &out, &errb); code != 0 {
			t.Errorf("%s -h exit %d", c.name, code)
		}
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		c.setup(fs, io.Discard)
		fs.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(errb.String(), "-"+f.Name+"\n") || !strings.Contains(errb.String(), envName(c.name, f.Name)) {
				t.Errorf("%s -h does not explain -%s and its variable", c.name, f.Name)
			}
		})
	}
	if code := run([]string{"nope"}, &out, &errb); code != 2 {
		t.Errorf("unknown command exit %d, want 2", code)
	}
}

func TestFlagsFromEnvironment(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	seg := fs.Duration("seg", 0, "")
	name := fs.String("name", "default", "")
	var mem byteSize
	fs.Var(&mem, "mem", "")
	t.Setenv("DEEPCAST_X_SEG", "4s")
	t.Setenv("DEEPCAST_X_NAME", "from-env")
	t.Setenv("DEEPCAST_X_MEM", "256MiB")
	t.Setenv("DEEPCAST_Y_MEM", "1") // another command's: not ours
	if err := fs.Parse([]string{"-name", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	if err := applyEnv("x", fs); err != nil {
		t.Fatal(err)
	}
	if seg.String() != "4s" || *name != "from-flag" || mem != 256<<20 {
		t.Errorf("seg=%s name=%s mem=%d", seg, *name, mem)
	}
	t.Setenv("DEEPCAST_Y_SEG", "soon")
	fs2 := flag.NewFlagSet("y", flag.ContinueOnError)
	fs2.Duration("seg", 0, "")
	if err := applyEnv("y", fs2); err == nil || !strings.Contains(err.Error(), "DEEPCAST_Y_SEG") {
		t.Errorf("bad env value: %v", err)
	}
}

// TestNoVariableMeansTwoThings: every flag of every command has its own
// environment variable, none shared with another command's flag or with
// a global variable.
func TestNoVariableMeansTwoThings(t *testing.T) {
	owner := map[string]string{}
	for _, g := range globalEnv {
		owner[g] = "global"
	}
	for _, c := range commands() {
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		c.setup(fs, io.Discard)
		addLogFlags(c, fs)
		fs.VisitAll(func(f *flag.Flag) {
			v := envName(c.name, f.Name)
			if o, dup := owner[v]; dup {
				t.Errorf("%s is both %s and %s -%s", v, o, c.name, f.Name)
			}
			owner[v] = c.name + " -" + f.Name
		})
	}
	if len(owner) < 50 {
		t.Errorf("only %d variables: the commands' flags were not all seen", len(owner))
	}
}

func TestParseBitRate(t *testing.T) {
	for in, want := range map[string]float64{"800M": 800e6, "10G": 10e9, "2.5Gbit/s": 2.5e9, "100 kbps": 100e3, "1T": 1e12,
		"64000": 64000, "0": 0, "3Mbit": 3e6, "7 b/s": 7} {
		got, err := parseBitRate(in)
		if err != nil || got != want {
			t.Errorf("parseBitRate(%q) = %v, %v; want %v", in, got, err, want)
		}
		if again, err := parseBitRate(formatBitRate(got)); err != nil || again != got {
			t.Errorf("formatBitRate(%v) = %q reads back as %v, %v", got, formatBitRate(got), again, err)
		}
	}
	for _, in := range []string{"", "fast", "-1M", "1P", "NaN", "Inf", "1e16", "M", "10MiB"} {
		if _, err := parseBitRate(in); err == nil {
			t.Errorf("parseBitRate(%q) accepted", in)
		}
	}
	var stdout, stderr strings.Builder
	for _, args := range [][]string{{"-cmsd-max-bitrate", "-5"}, {"-egress-limit", "lots"}, {"-cmsd-share", "fair"}} {
		stderr.Reset()
		if code := run(append([]string{"edge", "-upstream", "http://127.0.0.1:1"}, args...), &stdout, &stderr); code != 2 {
			t.Errorf("edge %v: exit %d, want 2 (usage)\n%s", args, code, stderr.String())
		}
	}
}

func TestParseBytes(t *testing.T) {
	tests := map[string]int64{"256MiB": 256 << 20, "20GiB": 20 << 30, "1.5GiB": 3 << 29, "1000": 1000, "2GB": 2e9, "64M": 64 << 20}
	for in, want := range tests {
		got, err := parseBytes(in)
		if err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "lots", "-1MiB", "1e30GiB", "NaN", "nan MiB", "Inf", "-inf"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q): want an error", in)
		}
	}
}

func FuzzParseBytes(f *testing.F) {
	f.Add("256MiB")
	f.Add("1.5 G")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseBytes(s)
		if err == nil && v < 0 {
			t.Fatalf("parseBytes(%q) = %d", s, v)
		}
	})
}

func TestSampleAndPackageCommands(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "s.mp4")
	var out, errb bytes.Buffer
	if code := run([]string{"sample", "-o", src, "-duration", "2s", "-size", "320x180"}, &out, &errb); code != 0 {
		t.Fatalf("sample exit %d: %s", code, errb.String())
	}
	lib := filepath.Join(dir, "lib")
	t.Setenv("DEEPCAST_PACKAGE_LADDER", "320x180@300k")
	t.Setenv("DEEPCAST_SIM_LADDER", "junk") // not package's
	if code := run([]string{"package", "-o", lib, "-name", "s", src}, &out, &errb); code != 0 {
		t.Fatalf("package exit %d: %s", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join(lib, "s", "180p-300k", "1.m4s")); err != nil {
		t.Errorf("package did not honour DEEPCAST_LADDER: %v", err)
	}
	if code := run([]string{"package", "-o", lib, filepath.Join(dir, "missing.mp4")}, &out, &errb); code != 1 {
		t.Errorf("package of a missing file exit %d, want 1", code)
	}
}

func TestSimCommandOutputs(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join("..", "..", "testdata")
	out := filepath.Join(dir, "results.csv")
	var stdout, stderr bytes.Buffer
	code := run([]string{"sim", "-video", filepath.Join(root, "videos", "envivio-4s-48.csv"),
		"-traces", filepath.Join(root, "traces", "fcc", "trace_10322_http---edition.cnn.com") + "," + filepath.Join(root, "traces", "hsdpa", "bus.ljansbakken-oslo-report.2010-09-28_1407CEST.log"),
		"-abr", "bba,robustmpc,optimal", "-pensieve", "-out", out, "-log", filepath.Join(dir, "logs"), "-plot", filepath.Join(dir, "plots")}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("sim exit %d: %s", code, stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	// The columns of before, then optimal_qoe: the optimum's QoE on the
	// row's trace, never below the row's own.
	if lines[0] != "trace,abr,chunks,mean_bitrate_kbps,rebuffer_s,rebuffer_count,switches,startup_s,qoe,optimal_qoe" || len(lines) != 7 {
		t.Errorf("results.csv:\n%s", data)
	}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		qoe, err1 := strconv.ParseFloat(f[8], 64)
		best, err2 := strconv.ParseFloat(f[9], 64)
		if err1 != nil || err2 != nil || qoe > best {
			t.Errorf("row %q: qoe above optimal_qoe, or no optimal_qoe", l)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "logs", "*.csv"))
	plots, _ := filepath.Glob(filepath.Join(dir, "plots", "*.png"))
	if len(logs) != 6 || len(plots) < 2 {
		t.Errorf("%d logs and %d plots", len(logs), len(plots))
	}
	first, _ := os.ReadFile(logs[0])
	if !strings.HasPrefix(string(first), "time_s,chunk,rendition,bitrate_kbps,bytes,download_s,estimate_kbps,buffer_s,rebuffer_s,qoe\n") {
		t.Errorf("log header: %q", strings.SplitN(string(first), "\n", 2)[0])
	}
	if code := run([]string{"sim", "-video", filepath.Join(root, "videos", "envivio-4s-48.csv"), "-traces", dir, "-abr", "nope"}, &stdout, &stderr); code == 0 {
		t.Error("unknown ABR accepted")
	}
	// Live: the summary's latency, and -out's last column.
	stdout.Reset()
	live := filepath.Join(dir, "live.csv")
	if code := run([]string{"sim", "-video", filepath.Join(root, "videos", "envivio-4s-48.csv"), "-live", "12s",
		"-traces", filepath.Join(root, "traces", "fcc", "trace_10322_http---edition.cnn.com"), "-abr", "bba,optimal", "-pensieve", "-out", live}, &stdout, &stderr); code != 0 {
		t.Fatalf("sim -live exit %d: %s", code, stderr.String())
	}
	data, _ = os.ReadFile(live)
	if lines := strings.Split(strings.TrimSpace(string(data)), "\n"); lines[0] != "trace,abr,chunks,mean_bitrate_kbps,rebuffer_s,rebuffer_count,switches,startup_s,qoe,optimal_qoe,latency_s" || len(lines) != 3 ||
		!strings.Contains(stdout.String(), "live 12s behind the edge") || !strings.Contains(stdout.String(), "latency s") {
		t.Errorf("sim -live:\n%s\n%s", stdout.String(), data)
	}
	if code := run([]string{"sim", "-video", filepath.Join(root, "videos", "envivio-4s-48.csv"), "-live", "1s",
		"-traces", filepath.Join(root, "traces", "fcc", "trace_10322_http---edition.cnn.com")}, &stdout, &stderr); code == 0 {
		t.Error("sim -live 1s (under a chunk of 4 s) accepted")
	}
	// Catching up: the mode line says so; a rate without -live, or out
	// of range, is a usage error.
	stdout.Reset()
	if code := run([]string{"sim", "-video", filepath.Join(root, "videos", "envivio-4s-48.csv"), "-live", "12s", "-catchup", "1.25",
		"-traces", filepath.Join(root, "traces", "fcc", "trace_10322_http---edition.cnn.com"), "-abr", "bba", "-pensieve"}, &stdout, &stderr); code != 0 ||
		!strings.Contains(stdout.String(), "catching up at 1.25×") {
		t.Errorf("sim -live -catchup exit %d:\n%s%s", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	if code := run([]string{"sim", "-video", filepath.Join(root, "videos", "envivio-4s-48.csv"), "-live", "12s", "-catchup", "1.5", "-catchup-law", "sigmoid",
		"-traces", filepath.Join(root, "traces", "fcc", "trace_10322_http---edition.cnn.com"), "-abr", "bba", "-pensieve"}, &stdout, &stderr); code != 0 ||
		!strings.Contains(stdout.String(), "catching up at up to 1.5× as the lag goes (sigmoid)") {
		t.Errorf("sim -live -catchup -catchup-law sigmoid exit %d:\n%s%s", code, stdout.String(), stderr.String())
	}
	for _, args := range [][]string{{"-catchup", "1.25"}, {"-live", "12s", "-catchup", "2"}, {"-live", "12s", "-catchup", "0.9"},
		{"-live", "12s", "-catchup", "1.5", "-catchup-law", "linear"}, {"-live", "12s", "-catchup-law", "sigmoid"}} {
		stderr.Reset()
		code := run(append([]string{"sim", "-video", filepath.Join(root, "videos", "envivio-4s-48.csv"),
			"-traces", filepath.Join(root, "traces", "fcc", "trace_10322_http---edition.cnn.com")}, args...), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "-catchup") {
			t.Errorf("sim %v: exit %d, %s", args, code, stderr.String())
		}
	}
}

// TestTrainCommand: deepcast train writes a model that sim -model runs
// beside the other algorithms, and refuses bad flags before any work.
func TestTrainCommand(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join("..", "..", "testdata")
	// A 10-chunk cut of the envivio video keeps the optimum's labels cheap.
	full, err := os.ReadFile(filepath.Join(root, "videos", "envivio-4s-48.csv"))
	if err != nil {
		t.Fatal(err)
	}
	video := filepath.Join(dir, "short.csv")
	if err := os.WriteFile(video, []byte(strings.Join(strings.Split(string(full), "\n")[:11], "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	traces := filepath.Join(root, "traces", "hsdpa")
	model := filepath.Join(dir, "mine.json")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"train", "-video", video, "-traces", traces, "-sample", "4", "-rounds", "2", "-epochs", "5",
		"-teacher-grid", "1s", "-o", model}, &stdout, &stderr); code != 0 {
		t.Fatalf("train exit %d: %s", code, stderr.String())
	}
	data, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	m, err := player.ParsePolicyModel(data)
	if err != nil {
		t.Fatal(err)
	}
	if m.Training["traces"] != float64(4) || m.Training["seed"] != float64(1) {
		t.Errorf("training record %v", m.Training)
	}
	out := filepath.Join(dir, "r.csv")
	if code := run([]string{"sim", "-video", video, "-traces", traces, "-pensieve", "-abr", "bba", "-model", model, "-out", out}, &stdout, &stderr); code != 0 {
		t.Fatalf("sim -model exit %d: %s", code, stderr.String())
	}
	rows, _ := os.ReadFile(out)
	if n := strings.Count(string(rows), ",mine,"); n != 68 {
		t.Errorf("%d rows of the model, want one per hsdpa trace (68)", n)
	}
	for _, bad := range [][]string{
		{"train", "-video", video, "-traces", traces},                                          // no -o
		{"train", "-video", video, "-traces", traces, "-o", "/nonexistent/m.json"},             // unwritable
		{"train", "-video", video, "-traces", traces, "-o", model, "-hidden", "0"},             // bad width
		{"train", "-video", video, "-traces", traces, "-o", model, "-rounds", "0"},             // no rounds
		{"train", "-video", video, "-traces", traces, "-o", model, "-qoe", "nope"},             // unknown QoE
		{"sim", "-video", video, "-traces", traces, "-model", video},                           // not a model
		{"sim", "-video", video, "-traces", traces, "-model", filepath.Join(dir, "bola.json")}, // missing
	} {
		stderr.Reset()
		if code := run(bad, &stdout, &stderr); code == 0 {
			t.Errorf("%v accepted", bad)
		}
	}
}
