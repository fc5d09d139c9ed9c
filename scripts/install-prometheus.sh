#!/usr/bin/env bash
# Installs Debian's Prometheus (prometheus, promtool) and Alertmanager
# (prometheus-alertmanager, amtool) when any of them is missing; a no-op when
# all are on PATH. Used by `make rules-test`, `alertmanager-test` and
# `dashboards-test`. Debian ships Prometheus 2.42 and Alertmanager 0.25.
#
# Debian's packages try to start their services on install; nothing here
# relies on that (the tests start their own daemons on 127.0.0.1), and where
# systemd is absent nothing starts.
set -euo pipefail

missing=()
for pair in prometheus:prometheus promtool:prometheus \
            prometheus-alertmanager:prometheus-alertmanager amtool:prometheus-alertmanager; do
  bin=${pair%%:*} pkg=${pair#*:}
  if ! command -v "$bin" >/dev/null 2>&1; then
    case " ${missing[*]-} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

sudo=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-prometheus: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "install-prometheus: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists; update once, then install.
if ! $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  $sudo apt-get update -qq
  $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
for bin in prometheus promtool prometheus-alertmanager amtool; do
  command -v "$bin" >/dev/null 2>&1 || { echo "install-prometheus: $bin still missing" >&2; exit 1; }
done
