#!/usr/bin/env bash
# Builds Filebeat from its Go module and caches the binary, for deploy/local
# (the shipper from nginx's access.log into Kafka). Idempotent: a cached binary
# of the pinned version is reused. Prints the binary's path on stdout (last
# line).
#
# `go install` refuses beats' module because its go.mod has replace
# directives, so this generates a throwaway wrapper module in the cache folder
# that requires beats, copies its replace/exclude directives, imports the
# filebeat main package from a tools file and builds it. Nothing of Filebeat
# is written into the work tree. Cost on 2 cores: about 70 s and 1 GB of build
# memory, once; the binary is about 100 MB.
set -euo pipefail

FILEBEAT_VERSION=${FILEBEAT_VERSION:-v7.17.29}
CACHE=${ACCESSLOG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/accesslog-exporter}
BIN="$CACHE/bin/filebeat-$FILEBEAT_VERSION"
GO=${GO:-go}

have() { [ -x "$BIN" ] && "$BIN" version 2>/dev/null | grep -q "version ${FILEBEAT_VERSION#v} "; }
if have; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$CACHE/bin"
exec 9>"$CACHE/filebeat-build.lock"
flock 9
if have; then
  echo "$BIN"
  exit 0
fi

MOD=github.com/elastic/beats/v7
WRAP="$CACHE/filebeat-wrapper-$FILEBEAT_VERSION"
echo "install-filebeat: building Filebeat $FILEBEAT_VERSION in $WRAP (about 70 s, 1 GB memory)" >&2
rm -rf "$WRAP"
mkdir -p "$WRAP"
cd "$WRAP"
export GOFLAGS=-mod=mod
gomod=$($GO mod download -json "$MOD@$FILEBEAT_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
[ -f "$gomod" ] || { echo "install-filebeat: cannot find go.mod of $MOD@$FILEBEAT_VERSION" >&2; exit 1; }
goversion=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod" | head -1)

{
  echo "module accesslog-exporter.local/filebeatwrapper"
  echo
  echo "go ${goversion:-1.17}"
  echo
  echo "require $MOD $FILEBEAT_VERSION"
  echo
  # The replace and exclude directives (single-line and block forms), except
  # those pointing into beats' own tree.
  awk '
    /^(replace|exclude)[[:space:]]*\($/ { blk=$1; print; next }
    blk != "" && /^\)/ { print; blk=""; next }
    blk != "" { if ($0 ~ /=>[[:space:]]*\.\.?\//) next; print; next }
    /^(replace|exclude)[[:space:]]/ { if ($0 ~ /=>[[:space:]]*\.\.?\//) next; print }
  ' "$gomod"
} > go.mod

cat > tools.go <<'GO'
//go:build filebeatwrapper

package filebeatwrapper

import _ "github.com/elastic/beats/v7/filebeat"
GO

$GO mod tidy -e >&2
$GO build -trimpath -ldflags "-s -w" -o "$BIN.tmp" "$MOD/filebeat" >&2
mv "$BIN.tmp" "$BIN"
have || { echo "install-filebeat: $BIN does not report version ${FILEBEAT_VERSION#v}" >&2; exit 1; }
echo "$BIN"
