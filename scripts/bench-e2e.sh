#!/usr/bin/env bash
# End-to-end throughput: an in-process 3-broker Kafka (kfake) preloaded with
# LINES loggen lines (default 2M), consumed through decode, parse and metrics
# until every offset is committed. RUNS runs (default 3); prints each run, the
# median lines/s, and the top of a CPU profile of the last run.
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${LINES:-2000000}
runs=${RUNS:-3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ACCESSLOG_BENCH_LINES=$lines go test -run '^$' -bench '^BenchmarkEndToEnd$' -benchtime 1x -count "$runs" \
  -cpuprofile "$out/cpu.prof" -o "$out/pipeline.test" ./exporter/pipeline | tee "$out/bench.txt"
median=$(awk '/lines\/s/ { for (i = 1; i <= NF; i++) if ($(i) == "lines/s") print $(i-1) }' "$out/bench.txt" | sort -n |
  awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
echo "end-to-end: median ${median} lines/s over ${runs} runs of ${lines} lines (kfake in the same process)"
go tool pprof -top -nodecount=15 "$out/pipeline.test" "$out/cpu.prof" 2>/dev/null | sed -n '1,22p'
