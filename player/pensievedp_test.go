package player

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOptimalAtLeastPensieveDP: on the HSDPA traces that Pensieve's own
// dynamic program (test/dp.cc, run as it is published, on the envivio
// sizes; its sequences are in testdata/pensieve-dp) was run on, the
// optimum scores at least what dp.cc's sequence scores when replayed in
// this simulator (Pensieve mode, QoE_lin).
func TestOptimalAtLeastPensieveDP(t *testing.T) {
	v := loadEnvivio(t)
	files, _ := filepath.Glob(testdata("pensieve-dp", "*.seq"))
	if len(files) == 0 {
		t.Fatal("no dp.cc sequences in testdata/pensieve-dp")
	}
	qoe, _ := NewQoE("lin")
	opt := SimOptions{Video: v, Pensieve: true}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".seq")
		traces, err := LoadTraces([]string{testdata("traces", "hsdpa", name)})
		if err != nil {
			t.Fatal(err)
		}
		seq := readSeq(t, f)
		cfg, link := simSetup(opt, traces[0])
		s := &Session{Video: v, ABR: &replay{seq: seq}, QoE: qoe, Clock: link, Fetcher: link, Config: cfg}
		dp, err := s.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		res, err := Simulate(context.Background(), SimOptions{Video: v, Traces: traces, Algorithms: []string{Optimal}, Pensieve: true})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].QoE < dp.QoE-1e-9 {
			t.Errorf("%s: optimum %.3f, below dp.cc's sequence replayed: %.3f", name, res[0].QoE, dp.QoE)
		}
		t.Logf("%s: dp.cc's sequence replayed %.3f, optimum %.3f (%+.1f %%)", name, dp.QoE, res[0].QoE, 100*(res[0].QoE/dp.QoE-1))
	}
}

// readSeq reads one rendition index per line, '#' lines skipped.
func readSeq(t *testing.T, path string) []int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var seq []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		q, err := strconv.Atoi(l)
		if err != nil {
			t.Fatalf("%s: %q", path, l)
		}
		seq = append(seq, q)
	}
	return seq
}
