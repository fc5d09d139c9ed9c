#!/usr/bin/env bash
# Installs what the deploy/ tests run for real: nginx (nginx -t on the shipped
# nginx.conf, and the failover test's web servers), keepalived (the failover
# test) and iproute2 (ip netns, veth, bridge). A no-op when all are present.
# Used by `make deploy-test`; `go test ./deploy/...` alone skips what needs
# them.
#
# Debian's packages try to start their services on install; the tests never
# rely on that: they run their own nginx and keepalived inside network
# namespaces and stop them by PID.
set -euo pipefail

missing=()
for pair in nginx:nginx keepalived:keepalived ip:iproute2; do
  bin=${pair%%:*} pkg=${pair#*:}
  if ! command -v "$bin" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$bin" ]; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-deploy-tools: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "install-deploy-tools: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists; update once, then install.
if ! $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  $sudo apt-get update -qq
  $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
for bin in nginx keepalived ip; do
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || { echo "install-deploy-tools: $bin still missing" >&2; exit 1; }
done
