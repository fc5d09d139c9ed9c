#!/usr/bin/env bash
# Stops what deploy/local/stack-up.sh (and the scenarios) started, by the PIDs
# recorded in deploy/local/.run/pids/: SIGTERM, then SIGKILL after 15 s.
# With names, stops only those. Logs and state stay for inspection; the next
# stack-up with nothing running starts clean. Idempotent.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
RUN=${ACCESSLOG_LOCAL_RUN:-$here/.run}
[ -d "$RUN/pids" ] || exit 0

# Exists and is not a zombie (a killed daemon whose parent has not reaped it).
running() { local s; s=$(sed -n 's/^[0-9]* (.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null); [ -n "$s" ] && [ "$s" != Z ]; }

# Reverse start order: producers and consumers before what they talk to.
order=(exporter-2 exporter filebeat nginx prometheus alertmanager victorialogs webhook upstream kafka)
if [ $# -gt 0 ]; then
  names=("$@")
else
  names=("${order[@]}")
  for f in "$RUN"/pids/*; do
    [ -e "$f" ] || continue
    n=$(basename "$f")
    case " ${order[*]} " in *" $n "*) ;; *) names=("$n" "${names[@]}") ;; esac
  done
fi

for n in "${names[@]}"; do
  f="$RUN/pids/$n"
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if running "$pid"; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 150); do
      running "$pid" || break
      sleep 0.1
    done
    if running "$pid"; then
      echo "stack-down: $n ($pid) ignored SIGTERM; SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null
    fi
    echo "stack-down: stopped $n ($pid)"
  fi
  rm -f "$f"
done
