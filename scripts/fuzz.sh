#!/usr/bin/env bash
# Runs every fuzz target of every package for FUZZTIME (default 5s) each.
# `go test -fuzz` takes one target in one package at a time, hence the loop.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-5s}
n=0
for pkg in $(go list ./...); do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    echo "fuzz $pkg $target ($fuzztime)"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$pkg" >/tmp/fuzz.$$.log 2>&1 || { cat /tmp/fuzz.$$.log; rm -f /tmp/fuzz.$$.log; exit 1; }
    n=$((n+1))
  done
done
rm -f /tmp/fuzz.$$.log
echo "fuzz: $n targets, $fuzztime each, no failures"
