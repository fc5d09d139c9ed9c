#!/usr/bin/env bash
# End-to-end throughput with Loki forwarding: kfake preloaded with LINES
# Filebeat-enveloped loggen lines (default 1M), consumed by the whole
# exporter (Run) until every offset is committed, i.e. Loki acknowledged
# every line. Two targets: a sink answering 204 at once (our cost) and a real
# VictoriaLogs (scripts/install-victorialogs.sh) taking Loki's push API. RUNS
# runs each (default 3); prints every run and the medians of lines/s and CPU s
# per 100k lines.
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${LINES:-1000000}
runs=${RUNS:-3}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
ACCESSLOG_VICTORIALOGS_BIN=${ACCESSLOG_VICTORIALOGS_BIN:-$(./scripts/install-victorialogs.sh)} ACCESSLOG_BENCH_LOKI_LINES=$lines \
  go test -run '^$' -bench '^BenchmarkEndToEndLoki$' -benchtime 1x -count "$runs" -timeout 30m ./exporter/pipeline | tee "$out"
for target in sink victorialogs; do
  for unit in lines/s cpu-s/100k-lines; do
    median=$(grep "EndToEndLoki/$target" "$out" | awk -v u="$unit" '{ for (i = 1; i <= NF; i++) if ($(i) == u) print $(i-1) }' | sort -g |
      awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    echo "$target: median $median $unit over $runs runs of $lines lines"
  done
done
