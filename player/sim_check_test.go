package player

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func testdata(parts ...string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(filepath.Dir(file)), "testdata"}, parts...)...)
}

func loadEnvivio(t testing.TB) *Video {
	v, err := LoadVideo(context.Background(), testdata("videos", "envivio-4s-48.csv"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestPensieveReferenceFigures(t *testing.T) {
	if os.Getenv("DEEPCAST_SWEEP") == "" {
		t.Skip("set DEEPCAST_SWEEP=1")
	}
	v := loadEnvivio(t)
	for _, set := range []string{"fcc", "hsdpa"} {
		traces, err := LoadTraces([]string{testdata("traces", set)})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		res, err := Simulate(context.Background(), SimOptions{Video: v, Traces: traces, Algorithms: Algorithms(), Pensieve: true})
		if err != nil {
			t.Fatal(err)
		}
		sum := map[string]float64{}
		for _, r := range res {
			sum[r.ABR] += r.QoE
		}
		fmt.Printf("%s (%d traces, %s):", set, len(traces), time.Since(start).Round(time.Millisecond))
		for _, a := range Algorithms() {
			fmt.Printf(" %s=%.2f", a, sum[a]/float64(len(traces)))
		}
		fmt.Println()
	}
}
