#!/usr/bin/env bash
# make bench: every comparison against a real peer, each in one interleaved
# run (ratios, not absolute times: these machines are shared and noisy),
# then the Go micro-benchmarks of the hot paths.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEEPCAST_BENCH=1

echo "== packaging: deepcast segmenting vs ffmpeg -c copy -f dash"
go test -count=1 -run '^TestBenchSegmentVsFFmpeg$' -v ./media/ | grep -vE '^(=== RUN|--- PASS|PASS|ok )'

for t in $(grep -rhoE '^func (TestBench[A-Za-z0-9_]+)' --include="*_test.go" origin edge player cmd 2>/dev/null | awk '{print $2}' | sed 's/(.*//' | sort -u); do
  pkg=$(grep -rlE "^func $t\(" --include="*_test.go" origin edge player cmd | head -1 | xargs dirname)
  echo "== $pkg: $t"
  go test -count=1 -timeout 45m -run "^$t\$" -v "./$pkg/" | grep -vE '^(=== RUN|--- PASS|PASS|ok )'
done

echo "== Go benchmarks (hot paths)"
go test -run '^$' -bench . -benchtime 2x -count 1 ./media/ | grep -E '^(Benchmark|goos|cpu)'
go test -run '^$' -bench . -count 1 ./origin/ ./edge/... ./player/... ./manifest/ ./cmd/deepcast/internal/... 2>/dev/null | grep -E '^Benchmark' || true

echo "== the origin behind the fast path (event loops; goroutine per connection) vs net/http alone, in-process client (6 runs, benchstat)"
out=$(mktemp)
go test -run '^$' -bench '^BenchmarkOriginServe$' -count 6 ./cmd/deepcast/ > "$out"
go run golang.org/x/perf/cmd/benchstat@latest -col /server "$out" | grep -vE '^(goos|goarch|pkg|cpu):'
rm -f "$out"
