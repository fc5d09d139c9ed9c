#!/usr/bin/env bash
# Installs what the deploy/ tests run for real: nginx (nginx -t on the shipped
# nginx.conf, and the failover test's web servers), keepalived (the failover
# test) and iproute2 (ip netns, veth, bridge). Used by `make deploy-test`;
# `go test ./deploy/...` alone skips what needs them.
set -euo pipefail
exec "$(dirname "$0")/apt-ensure.sh" install-deploy-tools \
  nginx:nginx keepalived:keepalived ip:iproute2
