#!/usr/bin/env bash
# Installs Debian's Prometheus Pushgateway (prometheus-pushgateway, 1.5 on
# bookworm) when it is missing, and prints the binary's path. The push-mode
# test pushes to it and reads the series back from its /metrics.
set -euo pipefail
"$(dirname "$0")/apt-ensure.sh" install-pushgateway prometheus-pushgateway:prometheus-pushgateway
command -v prometheus-pushgateway 2>/dev/null || echo /usr/bin/prometheus-pushgateway
