#!/usr/bin/env bash
# Builds VictoriaMetrics single-node from its Go module into the cache, once.
# Prints the binary's path. The push-mode test pushes to it and queries back.
# v1.130.0 is pinned: @latest needs a newer Go than this project's.
set -euo pipefail
version=v1.130.0
bin_dir=${ACCESSLOG_CACHE:-$HOME/.cache/accesslog-exporter}/victoria-metrics-$version
bin=$bin_dir/victoria-metrics
if [ ! -x "$bin" ]; then
  echo "building victoria-metrics $version (about 20 s, once)" >&2
  mkdir -p "$bin_dir"
  GOBIN=$bin_dir GOFLAGS=-mod=mod go install "github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics@$version" >&2
fi
echo "$bin"
