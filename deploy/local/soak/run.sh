#!/usr/bin/env bash
# make soak: the chaos soak of deploy/local (see deploy/local/README.md).
#   DURATION (3m), SEED (random, printed), FAULT_RATE (faults per minute, 3)
#
# It builds everything first, then runs a fresh stack in its own state folder
# (deploy/local/.run/soak), the soak test against it, and stops the stack
# (SOAK_KEEP=1 keeps it). As root it runs in a private network namespace
# (its own 127.0.0.1), so it does not collide with a `make e2e` or another
# soak on the same machine; SOAK_NETNS=0 runs it on the host's loopback.
# The ledger goes to deploy/local/.run/ledgers/soak-<seed>-<time>.txt.
set -Eeuo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$here/../.." && pwd)
GO=${GO:-go}
export ACCESSLOG_LOCAL_RUN=${ACCESSLOG_LOCAL_RUN:-$here/.run/soak}
export SOAK_DURATION=${DURATION:-${SOAK_DURATION:-3m}}
export SOAK_SEED=${SEED:-${SOAK_SEED:-}}
export SOAK_FAULT_RATE=${FAULT_RATE:-${SOAK_FAULT_RATE:-3}}
mkdir -p "$ACCESSLOG_LOCAL_RUN" "$here/.run/ledgers"

# Everything that may need the network, before a namespace without one:
# the installers stack-up.sh calls (no-ops when cached), the stack's binaries
# (stack-up.sh rebuilds them from the Go cache) and the soak test itself.
"$repo/scripts/install-prometheus.sh" >/dev/null
"$repo/scripts/install-deploy-tools.sh" >/dev/null
"$repo/scripts/install-filebeat.sh" >/dev/null
"$repo/scripts/install-victorialogs.sh" >/dev/null
(cd "$repo" && $GO build -trimpath -o /dev/null ./cmd/accesslog-exporter ./cmd/loggen ./deploy/local/kafka ./deploy/local/upstream \
  ./deploy/local/webhook ./deploy/local/localconf)
(cd "$repo" && $GO test -c -tags soak -o "$ACCESSLOG_LOCAL_RUN/soak.test" ./deploy/local/soak)

dur=$SOAK_DURATION
inner() {
  set -Eeuo pipefail
  [ "${SOAK_IN_NETNS:-}" = 1 ] && ip link set lo up
  "$here/stack-down.sh" >/dev/null
  "$here/stack-up.sh" >"$ACCESSLOG_LOCAL_RUN/stack-up.out" 2>&1 || { cat "$ACCESSLOG_LOCAL_RUN/stack-up.out" >&2; exit 1; }
  rc=0
  (cd "$here/soak" && "$ACCESSLOG_LOCAL_RUN/soak.test" -test.run '^TestSoak$' -test.v -test.timeout "$(timeout_for "$dur")") || rc=$?
  # The next stack-up starts clean: keep a failed run's logs beside its ledger.
  if [ $rc != 0 ]; then
    keep="$here/.run/ledgers/soak-logs-$(date -u +%Y%m%dT%H%M%S)"
    cp -r "$ACCESSLOG_LOCAL_RUN/logs" "$keep" && echo "soak: logs of the failed run in $keep"
  fi
  if [ "${SOAK_KEEP:-}" != 1 ]; then "$here/stack-down.sh" >/dev/null; fi
  exit $rc
}
# The test's own deadline: the soak, plus stack work and the drain.
timeout_for() { echo "$(( $(duration_secs "$1") + 1500 ))s"; }
duration_secs() {
  local d=$1 s=0 n
  while [[ $d =~ ^([0-9]+)(h|m|s)(.*)$ ]]; do
    n=${BASH_REMATCH[1]}
    case ${BASH_REMATCH[2]} in h) s=$((s + n * 3600)) ;; m) s=$((s + n * 60)) ;; s) s=$((s + n)) ;; esac
    d=${BASH_REMATCH[3]}
  done
  echo $s
}
export -f inner timeout_for duration_secs
export here dur

if [ "${SOAK_NETNS:-1}" != 0 ] && [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  echo "soak: in a private network namespace (SOAK_NETNS=0 for the host's loopback)"
  exec env SOAK_IN_NETNS=1 GOPROXY=off unshare -n bash -c inner
fi
inner
