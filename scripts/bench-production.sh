#!/usr/bin/env bash
# The production path, measured as users run it: Filebeat 8 JSON envelopes of
# main_timed lines on the standalone 3-broker kfake of deploy/local -> the real
# exporter binary (decode, parse, metrics, push, commit) -> a push endpoint that
# answers 204 at once (deploy/local/pushsink).
#
# LINES envelopes (default 1M) are preloaded once across every partition; then
# the exporter runs RUNS times (default 5), each with a fresh consumer group
# from earliest, until every line is counted and acknowledged. Per run it
# prints lines/s (steady: 10 % to 90 % of the lines), CPU us/line (user+system
# of the exporter process over the whole run) and peak RSS (VmHWM), and the
# CPU the brokers (the kfake process) spent serving it, per line; then the
# medians. KAFKA_EXTRA and LOKI_EXTRA are YAML lines added to the run's kafka
# and loki sections (a lever to try, e.g. KAFKA_EXTRA='fetch_max_bytes: 8MiB';
# several keys one per line), EXPORTER_FLAGS extra flags.
# EXPORTERS="before=/path/a after=/path/b" compares binaries: each run goes
# through every one in turn, so the ratios come from one machine state; the
# medians are printed per name. A path may be a wrapper script that ends in
# `exec` of the binary (to set GOMEMLIMIT, say): the process measured is
# always the exporter itself. SINK_DELAY (e.g. 50ms) makes the push endpoint
# answer that late, as a real store does.
#
# RATE=N measures the live path instead of a backlog: nothing is preloaded;
# each run starts the exporter at the end of the topic, waits until it is
# ready, then writes LINES envelopes at N lines/s (wall clock) and counts the
# exporter's CPU from the first line until every line is counted and
# acknowledged. That is how production runs (both members caught up), and
# the only regime where the log member takes every line from the metrics
# member's decode (docs/performance.md, one decode per line).
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${LINES:-1000000}
runs=${RUNS:-5}
base=${BASE_PORT:-39090}
kafka_ports="$((base + 2)),$((base + 3)),$((base + 4))"
control="127.0.0.1:$((base + 9))"
sink="127.0.0.1:$((base + 10))"
web="127.0.0.1:$((base + 11))"
brokers="127.0.0.1:$((base + 2)),127.0.0.1:$((base + 3)),127.0.0.1:$((base + 4))"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/" ./cmd/accesslog-exporter ./cmd/loggen ./deploy/local/kafka ./deploy/local/pushsink
exporters=${EXPORTERS:-"this=$work/accesslog-exporter"}

"$work/kafka" -ports "$kafka_ports" -control "$control" -topic nginxlog -partitions 6 >"$work/kafka.log" 2>&1 &
kafka_pid=$!
pids+=($!)
"$work/pushsink" -listen "$sink" -delay "${SINK_DELAY:-0s}" >"$work/sink.log" 2>&1 &
pids+=($!)

wait_http() {
  for _ in $(seq 1 200); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.05; done
  echo "bench-production: $1 did not answer" >&2
  return 1
}
wait_http "http://$control/status"
wait_http "http://$sink/stats"

# Enough hosts (the record key) that every partition gets lines.
hosts=$(seq -s, -f 'web-%g' 1 24)
produce() {
  "$work/loggen" --format main_timed --envelope --rate "$1" --count "$lines" --clock "$2" \
    --hosts "$hosts" --kafka.brokers "$brokers" --kafka.topic nginxlog 2>&1 | tail -1
}
rate=${RATE:-}
if [ -z "$rate" ]; then
  produce 0 simulated
  from=earliest
else
  from=latest
fi
cpu_of() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# YAML lines indented into a section.
indent() { [ -z "$1" ] || printf '%s\n' "$1" | sed 's/^/  /'; }

# A counter's value summed over its series, from the exposition.
metric_sum() { awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%d\n", s }' "$2"; }

clk=$(getconf CLK_TCK)
# The end of a run is seen by scraping /metrics, which costs the exporter
# CPU that is counted with the rest: every 100 ms it was a quarter of the
# CPU at 10k lines/s. So the script scrapes every SCRAPE_INTERVAL (default
# 1s, against a production scrape interval of 15-60s) and interpolates
# when a count crossed 10 %, 90 % and 100 % between two scrapes.
scrape=${SCRAPE_INTERVAL:-1}
# crossed N: when the count reached N, interpolated between the last two
# scrapes (prev_t, prev_n) and (now, least).
crossed() {
  awk -v n="$1" -v t0="$prev_t" -v n0="$prev_n" -v t1="$now" -v n1="$least" \
    'BEGIN { printf "%.6f\n", (n1 > n0) ? t0 + (n - n0) / (n1 - n0) * (t1 - t0) : t1 }'
}
results="$work/results"
: >"$results"
n=0
for i in $(seq 1 "$runs"); do
for named in $exporters; do
  name=${named%%=*} bin=${named#*=}
  n=$((n + 1))
  cfg="$work/run$n.yml"
  cat >"$cfg" <<EOF
kafka:
  brokers: [${brokers//,/, }]
  topics: [nginxlog]
  group: bench-$n-$$
  start_offset: $from
$(indent "${KAFKA_EXTRA:-}")
input:
  format: main_timed
loki:
  url: http://$sink
$(indent "${LOKI_EXTRA:-}")
health:
  enabled: false
EOF
  start=$(date +%s.%N)
  kcpu0=$(cpu_of "$kafka_pid")
  # shellcheck disable=SC2086
  "$bin" --config.file "$cfg" --web.listen-address "$web" --log.level warn ${EXPORTER_FLAGS:-} \
    >"$work/exporter$n.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  cpu0=0
  if [ -n "$rate" ]; then
    # Live: the exporter is caught up (ready, at the end of the topic)
    # when the lines start; only the CPU from then on is counted.
    for _ in $(seq 1 600); do curl -fsS -o /dev/null "http://$web/readyz" 2>/dev/null && break; sleep 0.1; done
    cpu0=$(cpu_of "$pid")
    kcpu0=$(cpu_of "$kafka_pid")
    start=$(date +%s.%N)
    produce "$rate" wall >"$work/produce$n.log" &
    pids+=($!)
  fi
  t10="" t90="" done_at="" gcs=0 prev_t=$start prev_n=0
  deadline=$(( $(date +%s) + 600 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "bench-production: the exporter exited; its log:" >&2
      tail -20 "$work/exporter$n.log" >&2
      exit 1
    fi
    if curl -fsS -o "$work/m" "http://$web/metrics" 2>/dev/null; then
      now=$(date +%s.%N)
      counted=$(metric_sum accesslog_exporter_records_total "$work/m")
      acked=$(metric_sum accesslog_exporter_loki_entries_sent_total "$work/m")
      gcs=$(metric_sum go_gc_duration_seconds_count "$work/m")
      least=$(( counted < acked ? counted : acked ))
      [ -z "$t10" ] && [ "$least" -ge $(( lines / 10 )) ] && t10=$(crossed $(( lines / 10 )))
      [ -z "$t90" ] && [ "$least" -ge $(( lines * 9 / 10 )) ] && t90=$(crossed $(( lines * 9 / 10 )))
      if [ "$least" -ge "$lines" ]; then done_at=$(crossed "$lines"); break; fi
      prev_t=$now prev_n=$least
    fi
    sleep "$scrape"
  done
  if [ -z "$done_at" ]; then
    echo "bench-production: run $i did not finish; counted=$counted acked=$acked of $lines" >&2
    exit 1
  fi
  hits=$(metric_sum 'accesslog_exporter_loki_shared_decodes_total{result="hit"}' "$work/m")
  ticks=$(( $(cpu_of "$pid") - cpu0 ))
  kticks=$(( $(cpu_of "$kafka_pid") - kcpu0 ))
  hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  awk -v n="$lines" -v t10="$t10" -v t90="$t90" -v s="$start" -v d="$done_at" -v t="$ticks" \
    -v clk="$clk" -v hwm="$hwm" -v i="$i" -v name="$name" -v hits="$hits" -v gcs="$gcs" -v kt="$kticks" 'BEGIN {
      steady = (t90 > t10) ? 0.8 * n / (t90 - t10) : n / (d - s)
      cpu = t / clk * 1e6 / n
      printf "%s run %d: %.0f lines/s steady, %.0f lines/s overall, %.2f us CPU/line, peak RSS %.0f MiB, %d GCs, %.0f%% of lines decoded once, broker %.2f us CPU/line\n", name, i, steady, n / (d - s), cpu, hwm / 1024, gcs, 100 * hits / n, kt / clk * 1e6 / n
      printf "%s %f %f %f\n", name, steady, cpu, hwm / 1024 > "/dev/stderr"
    }' 2>>"$results"
done
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for named in $exporters; do
  name=${named%%=*}
  col() { awk -v name="$name" -v c="$1" '$1 == name { print $c }' "$results" | median; }
  printf '%s: median over %d runs of %d lines: %.0f lines/s, %.2f us CPU/line, peak RSS %.0f MiB\n' "$name" "$runs" "$lines" \
    "$(col 2)" "$(col 3)" "$(col 4)"
done
