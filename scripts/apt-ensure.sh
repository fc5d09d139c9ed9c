#!/usr/bin/env bash
# apt-ensure.sh NAME BIN:PACKAGE...
#
# Installs, from Debian's packages, each PACKAGE whose BIN is on neither PATH
# nor /usr/sbin; a no-op when all are there. NAME prefixes the messages.
# Debian's packages try to start their services on install; nothing in this
# project relies on that (the tests start their own daemons on 127.0.0.1 and
# stop them by PID), and where systemd is absent nothing starts.
set -euo pipefail
name=$1
shift
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

missing=()
for pair in "$@"; do
  bin=${pair%%:*} pkg=${pair#*:}
  if ! have "$bin"; then
    case " ${missing[*]-} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "$name: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "$name: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists; update once, then install.
if ! $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  $sudo apt-get update -qq
  $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
for pair in "$@"; do
  have "${pair%%:*}" || { echo "$name: ${pair%%:*} still missing" >&2; exit 1; }
done
