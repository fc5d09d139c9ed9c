#!/usr/bin/env bash
# Starts the whole system on 127.0.0.1 (see deploy/local/README.md):
# a 3-broker Kafka-protocol cluster (kfake), the upstream, nginx, Filebeat,
# the exporter, VictoriaLogs (the Loki-protocol log store), Alertmanager,
# Prometheus and the alert webhook recorder.
#
# Idempotent: a component whose recorded PID is alive is left alone, so
# running it again restarts only what is down (the scenarios use that after
# killing the exporter). With nothing running it starts from clean state.
# State, logs and PIDs live in deploy/local/.run/ (git-ignored). On failure it
# stops what this run started. `stack-down.sh` stops everything by PID.
set -Eeuo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
RUN=${ACCESSLOG_LOCAL_RUN:-$here/.run}
GO=${GO:-go}
export ACCESSLOG_LOCAL_RUN=$RUN
mkdir -p "$RUN/pids" "$RUN/logs" "$RUN/bin"

# A process is alive when it exists and is not a zombie: a daemon killed with
# SIGKILL stays a zombie until its parent (here often PID 1) reaps it, and
# kill -0 succeeds on zombies.
running() { local s; s=$(sed -n 's/^[0-9]* (.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null); [ -n "$s" ] && [ "$s" != Z ]; }
alive() { local f="$RUN/pids/$1"; [ -f "$f" ] && running "$(cat "$f")"; }
any_alive() { local f; for f in "$RUN"/pids/*; do [ -e "$f" ] && alive "$(basename "$f")" && return 0; done; return 1; }

started=()
fail() {
  echo "stack-up: $*" >&2
  for ((i=${#started[@]}-1; i>=0; i--)); do
    n=${started[$i]}
    echo "stack-up: stopping $n (log: $RUN/logs/$n.log)" >&2
    tail -n 5 "$RUN/logs/$n.log" 2>/dev/null | sed 's/^/    /' >&2 || true
    "$here/stack-down.sh" "$n" >/dev/null 2>&1 || true
  done
  exit 1
}
trap 'fail "failed at line $LINENO"' ERR

# start NAME CMD...: run CMD in the background, log to logs/NAME.log, record its PID.
start() {
  local name=$1; shift
  if alive "$name"; then return 0; fi
  "$@" >>"$RUN/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN/pids/$name"
  started+=("$name")
}

# wait_http NAME URL [SECONDS]: poll until URL answers 2xx; fail if the process dies.
wait_http() {
  local name=$1 url=$2 deadline=$((SECONDS + ${3:-60}))
  until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
    alive "$name" || fail "$name exited; see $RUN/logs/$name.log"
    [ $SECONDS -lt $deadline ] || fail "$name not ready at $url after ${3:-60}s"
    sleep 0.2
  done
}

# Installs (no-ops when present) and builds.
"$repo/scripts/install-prometheus.sh"
"$repo/scripts/install-deploy-tools.sh"
FILEBEAT=$("$repo/scripts/install-filebeat.sh" | tail -n 1)
VICTORIALOGS=$("$repo/scripts/install-victorialogs.sh" | tail -n 1)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
# STACK_SRC=head builds the last commit instead of the work tree (a work
# tree in the middle of an edit then cannot break the stack).
src=$repo
if [ "${STACK_SRC:-worktree}" = head ]; then
  src=$RUN/src
  rm -rf "$src" && mkdir -p "$src"
  git -C "$repo" archive HEAD | tar -x -C "$src"
fi
(cd "$src" && $GO build -trimpath -o "$RUN/bin/" ./cmd/accesslog-exporter ./cmd/loggen \
  ./deploy/local/kafka ./deploy/local/upstream ./deploy/local/webhook ./deploy/local/localconf)

if ! any_alive; then
  # The ports are fixed: a second stack on this machine (another work
  # tree's, a soak's) would have half its daemons fail to listen and the
  # other half talk to the first stack. Refuse instead.
  for p in 28080 28081 28082 28089 29092 29093 29094 29099 29100 29190 29193 29195 29196 29717 29718; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      fail "127.0.0.1:$p is taken: another local stack runs on this machine (stop it with its own stack-down.sh)"
    fi
  done
  # A fresh stack: Kafka keeps its data in memory, so everything that
  # remembers offsets or lines starts clean with it.
  rm -rf "$RUN/nginx" "$RUN/filebeat" "$RUN/victorialogs" "$RUN/prometheus" "$RUN/alertmanager" "$RUN/webhook" "$RUN/logs" "$RUN/pids"
  mkdir -p "$RUN/pids" "$RUN/logs"
fi

# Configuration: Prometheus and Alertmanager from the project's files.
confsum() { { cat "$RUN"/prometheus/prometheus.yml "$RUN"/prometheus/rules/*.yml "$RUN"/alertmanager/alertmanager.yml 2>/dev/null || true; } | md5sum; }
before=$(confsum)
"$RUN/bin/localconf" -repo "$repo" -out "$RUN"
changed=0
[ "$(confsum)" = "$before" ] || changed=1
[ -f "$RUN/prometheus/exporters.json" ] || echo '[{"targets":["127.0.0.1:29717"]}]' >"$RUN/prometheus/exporters.json"
promtool check config "$RUN/prometheus/prometheus.yml" >/dev/null || fail "promtool check config failed"
amtool check-config "$RUN/alertmanager/alertmanager.yml" >/dev/null || fail "amtool check-config failed"
mkdir -p "$RUN/nginx/logs" "$RUN/nginx/temp" "$RUN/nginx/html/assets" "$RUN/filebeat/data" "$RUN/victorialogs" "$RUN/webhook" \
  "$RUN/prometheus/data" "$RUN/alertmanager/data"
[ -f "$RUN/nginx/html/index.html" ] || {
  echo '<html><body><h1>accesslog-exporter local stack</h1></body></html>' >"$RUN/nginx/html/index.html"
  echo '<html><body>about</body></html>' >"$RUN/nginx/html/about.html"
  head -c 10240 /dev/zero | tr '\0' 'x' >"$RUN/nginx/html/assets/app.js"
}
install -m 600 "$here/filebeat.yml" "$RUN/filebeat/filebeat.yml"
"$RUN/bin/accesslog-exporter" check-config "$here/exporter.yml" >/dev/null || fail "exporter config invalid"

start kafka "$RUN/bin/kafka" -ports 29092,29093,29094 -control 127.0.0.1:29099
wait_http kafka http://127.0.0.1:29099/status 20
start upstream "$RUN/bin/upstream" -listen 127.0.0.1:28081,127.0.0.1:28082 -control 127.0.0.1:28089
wait_http upstream http://127.0.0.1:28089/config 20
start webhook "$RUN/bin/webhook" -listen 127.0.0.1:29195 -file "$RUN/webhook/alerts.jsonl"
wait_http webhook http://127.0.0.1:29195/alerts 20
# The log store: VictoriaLogs takes Loki's push API at /insert/loki/api/v1/push
# and answers LogsQL at /select/logsql/query. A retention of 100y accepts
# every timestamp a scenario writes (nothing is ever deleted here).
start victorialogs "$VICTORIALOGS" -httpListenAddr=127.0.0.1:29100 -storageDataPath="$RUN/victorialogs/data" \
  -retentionPeriod=100y -loki.disableMessageParsing
start alertmanager prometheus-alertmanager --config.file="$RUN/alertmanager/alertmanager.yml" \
  --storage.path="$RUN/alertmanager/data" --web.listen-address=127.0.0.1:29193 --cluster.listen-address= \
  --web.external-url=http://127.0.0.1:29193/
start prometheus prometheus --config.file="$RUN/prometheus/prometheus.yml" --storage.tsdb.path="$RUN/prometheus/data" \
  --web.listen-address=127.0.0.1:29190 --web.enable-lifecycle --enable-feature=native-histograms \
  --web.external-url=http://127.0.0.1:29190/
start nginx "$NGINX" -p "$RUN/nginx" -c "$here/nginx.conf" -e "$RUN/nginx/logs/error.log"
wait_http nginx http://127.0.0.1:28080/ 20
start filebeat "$FILEBEAT" -e -c "$RUN/filebeat/filebeat.yml" --path.home "$RUN/filebeat" \
  --path.data "$RUN/filebeat/data" --path.logs "$RUN/filebeat/logs"
wait_http victorialogs http://127.0.0.1:29100/health 60
start exporter "$RUN/bin/accesslog-exporter" --config.file="$here/exporter.yml" --web.listen-address=127.0.0.1:29717
# Ready once it has joined the group: after a SIGKILL that waits for the dead
# member's session to expire (45 s by default).
wait_http exporter http://127.0.0.1:29717/readyz 120
wait_http alertmanager http://127.0.0.1:29193/-/ready 30
wait_http prometheus http://127.0.0.1:29190/-/ready 60
wait_http filebeat http://127.0.0.1:29196/stats 60
# A rerun that regenerated different rules or routes reloads them. Only
# then: a reload while an alert resolves can lose the resolved notification
# (seen with Prometheus 2.42: Alertmanager then keeps the alert active, and
# inhibiting, until its endsAt, minutes later).
if [ "$changed" = 1 ]; then
  curl -fsS -X POST http://127.0.0.1:29190/-/reload >/dev/null
  curl -fsS -X POST http://127.0.0.1:29193/-/reload >/dev/null
fi

trap - ERR
cat <<TXT

  The local stack is up (state and logs in $RUN):
  nginx            http://127.0.0.1:28080/   (Host: api.local -> upstream, anything else -> static)
  upstream control http://127.0.0.1:28089/config   (POST latency=, error_rate=, error_status=)
  Kafka brokers    127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094   (topic nginxlog, 6 partitions)
  Kafka control    http://127.0.0.1:29099/status   (POST /brokers/{0,1,2}/stop|start)
  Filebeat stats   http://127.0.0.1:29196/stats
  exporter         http://127.0.0.1:29717/metrics
  VictoriaLogs     http://127.0.0.1:29100/   (push: /insert/loki/api/v1/push, LogsQL: /select/logsql/query)
  Prometheus       http://127.0.0.1:29190/
  Alertmanager     http://127.0.0.1:29193/
  alert webhook    http://127.0.0.1:29195/alerts   (file $RUN/webhook/alerts.jsonl)
  Stop with: make stack-down

TXT
