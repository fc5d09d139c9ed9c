#!/usr/bin/env bash
# Builds Grafana Loki from its Go module and caches the binary, for the tests
# of exporter/loki and exporter/pipeline. Idempotent: a cached binary of the
# pinned version is reused. Prints the binary's path on stdout (last line).
#
# `go install github.com/grafana/loki/v3/cmd/loki@VERSION` refuses Loki's
# module because its go.mod has replace directives, so this generates a
# throwaway wrapper module in the cache folder that requires Loki, copies its
# replace/exclude directives, imports cmd/loki from a tools file and builds
# it. Nothing of Loki is written into the work tree. Cost on 2 cores: about
# 8.5 minutes and 2.7 GB of build memory, once.
set -euo pipefail

LOKI_VERSION=${LOKI_VERSION:-v3.7.8}
CACHE=${ACCESSLOG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/accesslog-exporter}
BIN="$CACHE/bin/loki-$LOKI_VERSION"
GO=${GO:-go}

if [ -x "$BIN" ] && "$BIN" -version 2>/dev/null | grep -q "version ${LOKI_VERSION#v}"; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$CACHE/bin"
WRAP="$CACHE/loki-wrapper-$LOKI_VERSION"
# One build at a time (make test in two shells, or parallel test packages).
exec 9>"$CACHE/loki-build.lock"
flock 9
if [ -x "$BIN" ] && "$BIN" -version 2>/dev/null | grep -q "version ${LOKI_VERSION#v}"; then
  echo "$BIN"
  exit 0
fi

MOD=github.com/grafana/loki/v3
echo "install-loki: building Loki $LOKI_VERSION in $WRAP (about 8.5 min, 2.7 GB memory)" >&2
rm -rf "$WRAP"
mkdir -p "$WRAP"
cd "$WRAP"
export GOFLAGS=-mod=mod
gomod=$($GO mod download -json "$MOD@$LOKI_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
[ -f "$gomod" ] || { echo "install-loki: cannot find go.mod of $MOD@$LOKI_VERSION" >&2; exit 1; }
goversion=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod" | head -1)

{
  echo "module accesslog-exporter.local/lokiwrapper"
  echo
  echo "go ${goversion:-1.24}"
  echo
  echo "require $MOD $LOKI_VERSION"
  echo
  # Copy the replace and exclude directives (single-line and block forms),
  # except those pointing into Loki's own tree (./pkg/push and the like).
  awk '
    /^(replace|exclude)[[:space:]]*\($/ { blk=$1; print; next }
    blk != "" && /^\)/ { print; blk=""; next }
    blk != "" { if ($0 ~ /=>[[:space:]]*\.\.?\//) next; print; next }
    /^(replace|exclude)[[:space:]]/ { if ($0 ~ /=>[[:space:]]*\.\.?\//) next; print }
  ' "$gomod"
} > go.mod

cat > tools.go <<'GO'
//go:build lokiwrapper

package lokiwrapper

import _ "github.com/grafana/loki/v3/cmd/loki"
GO

$GO mod tidy -e >&2
ver=${LOKI_VERSION#v}
$GO build -trimpath \
  -ldflags "-s -w -X github.com/grafana/loki/v3/pkg/util/build.Version=$ver -X github.com/prometheus/common/version.Version=$ver" \
  -o "$BIN.tmp" "$MOD/cmd/loki" >&2
mv "$BIN.tmp" "$BIN"
echo "$BIN"
