#!/usr/bin/env bash
# Install everything pydockerd needs on a fresh Debian 12 machine (as root),
# then start the daemon on /var/run/docker.sock (log: /var/log/pydockerd.log).
# Set PYDOCKERD_NO_START=1 to install only.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
if ! command -v runc >/dev/null || ! command -v conmon >/dev/null \
    || ! command -v tini-static >/dev/null || ! command -v iptables >/dev/null \
    || ! command -v busybox >/dev/null || ! command -v docker-registry >/dev/null \
    || ! command -v ip >/dev/null || ! command -v ps >/dev/null \
    || ! command -v openssl >/dev/null || ! command -v nsenter >/dev/null \
    || ! command -v docker-compose >/dev/null; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends runc conmon tini iptables busybox-static \
    docker-registry iproute2 procps util-linux mount openssl ca-certificates docker-compose
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'

getent group docker >/dev/null || groupadd docker

if [ "${PYDOCKERD_NO_START:-0}" != "1" ]; then
  if [ -S /var/run/docker.sock ] && docker version >/dev/null 2>&1; then
    echo "a daemon already answers on /var/run/docker.sock; not starting another"
  else
    setsid pydockerd >>/var/log/pydockerd.log 2>&1 < /dev/null &
    for _ in $(seq 100); do
      [ -S /var/run/docker.sock ] && break
      sleep 0.1
    done
    echo "pydockerd started (log: /var/log/pydockerd.log)"
  fi
fi
