#!/usr/bin/env bash
# Builds VictoriaLogs from its Go module into the cache, once, and prints the
# binary's path. The Loki push tests push to its Loki-compatible endpoint
# (/insert/loki/api/v1/push) and query it back with LogsQL.
set -euo pipefail
version=${VICTORIALOGS_VERSION:-v1.52.1}
bin_dir=${ACCESSLOG_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/accesslog-exporter}/victoria-logs-$version
bin=$bin_dir/victoria-logs
if [ ! -x "$bin" ]; then
  echo "building victoria-logs $version (about 40 s, once)" >&2
  mkdir -p "$bin_dir"
  GOBIN=$bin_dir GOFLAGS=-mod=mod go install "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@$version" >&2
fi
echo "$bin"
