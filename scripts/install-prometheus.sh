#!/usr/bin/env bash
# Installs Debian's Prometheus (prometheus, promtool) and Alertmanager
# (prometheus-alertmanager, amtool) when any of them is missing. Used by
# `make rules-test`, `alertmanager-test` and `dashboards-test`. Debian ships
# Prometheus 2.42 and Alertmanager 0.25.
set -euo pipefail
exec "$(dirname "$0")/apt-ensure.sh" install-prometheus \
  prometheus:prometheus promtool:prometheus \
  prometheus-alertmanager:prometheus-alertmanager amtool:prometheus-alertmanager
