#!/usr/bin/env bash
# Builds Grafana Loki from its Go module and caches the binary, for the tests
# of exporter/loki and exporter/pipeline. Idempotent: a cached binary of the
# pinned version is reused. Prints the binary's path on stdout (last line).
#
# Loki's go.mod has replace directives, so `go install` refuses it;
# go-build-wrapped.sh builds it through a throwaway wrapper module in the
# cache folder. Cost on 2 cores: about 8.5 minutes and 2.7 GB of build memory,
# once.
set -euo pipefail

LOKI_VERSION=${LOKI_VERSION:-v3.7.8}
CACHE=${ACCESSLOG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/accesslog-exporter}
BIN="$CACHE/bin/loki-$LOKI_VERSION"

if [ -x "$BIN" ] && "$BIN" -version 2>/dev/null | grep -q "version ${LOKI_VERSION#v}"; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$CACHE/bin"
# One build at a time (make test in two shells, or parallel test packages).
exec 9>"$CACHE/loki-build.lock"
flock 9
if [ -x "$BIN" ] && "$BIN" -version 2>/dev/null | grep -q "version ${LOKI_VERSION#v}"; then
  echo "$BIN"
  exit 0
fi

echo "install-loki: building Loki $LOKI_VERSION (about 8.5 min, 2.7 GB memory)" >&2
ver=${LOKI_VERSION#v}
"$(dirname "$0")/go-build-wrapped.sh" loki github.com/grafana/loki/v3 "$LOKI_VERSION" \
  github.com/grafana/loki/v3/cmd/loki "$BIN" \
  "-X github.com/grafana/loki/v3/pkg/util/build.Version=$ver -X github.com/prometheus/common/version.Version=$ver"
echo "$BIN"
