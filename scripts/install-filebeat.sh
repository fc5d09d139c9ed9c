#!/usr/bin/env bash
# Builds Filebeat from its Go module and caches the binary, for deploy/local
# (the shipper from nginx's access.log into Kafka). Idempotent: a cached binary
# of the pinned version is reused. Prints the binary's path on stdout (last
# line).
#
# beats' go.mod has replace directives, so `go install` refuses it;
# go-build-wrapped.sh builds it through a throwaway wrapper module in the
# cache folder. Cost on 2 cores: about 70 s and 1 GB of build memory, once;
# the binary is about 100 MB.
set -euo pipefail

FILEBEAT_VERSION=${FILEBEAT_VERSION:-v7.17.29}
CACHE=${ACCESSLOG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/accesslog-exporter}
BIN="$CACHE/bin/filebeat-$FILEBEAT_VERSION"

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

echo "install-filebeat: building Filebeat $FILEBEAT_VERSION (about 70 s, 1 GB memory)" >&2
"$(dirname "$0")/go-build-wrapped.sh" filebeat github.com/elastic/beats/v7 "$FILEBEAT_VERSION" \
  github.com/elastic/beats/v7/filebeat "$BIN"
have || { echo "install-filebeat: $BIN does not report version ${FILEBEAT_VERSION#v}" >&2; exit 1; }
echo "$BIN"
