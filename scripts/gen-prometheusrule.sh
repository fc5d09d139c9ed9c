#!/usr/bin/env bash
# Regenerates deploy/kubernetes/prometheusrule.yaml from prometheus/rules/*.yml.
# Run after changing a rules file; `go test ./deploy/` fails while they differ.
set -euo pipefail
cd "$(dirname "$0")/.."
go run ./deploy/kubernetes/genrule -rules prometheus/rules -out deploy/kubernetes/prometheusrule.yaml
echo "wrote deploy/kubernetes/prometheusrule.yaml" >&2
