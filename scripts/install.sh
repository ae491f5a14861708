#!/usr/bin/env bash
# Install everything pydockerd needs on a fresh Debian 12 machine (as root),
# then start the daemon on /var/run/docker.sock: through systemd
# (pydockerd.socket + pydockerd.service, log: journalctl -u pydockerd) when
# systemd is PID 1, else in the background (log: /var/log/pydockerd.log).
# Set PYDOCKERD_NO_START=1 to install only. Running it again is harmless.
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
if ! command -v runc >/dev/null || ! command -v conmon >/dev/null \
    || ! command -v tini-static >/dev/null || ! command -v iptables >/dev/null \
    || ! command -v busybox >/dev/null || ! command -v docker-registry >/dev/null \
    || ! command -v ip >/dev/null || ! command -v ps >/dev/null \
    || ! command -v openssl >/dev/null || ! command -v nsenter >/dev/null \
    || ! command -v docker-compose >/dev/null || ! command -v systemd-analyze >/dev/null \
    || ! command -v git >/dev/null || ! command -v rsyslogd >/dev/null \
    || ! command -v prometheus >/dev/null; then
  apt-get update -q
  apt-get install -y -q --no-install-recommends runc conmon tini iptables busybox-static \
    docker-registry iproute2 procps util-linux mount openssl ca-certificates docker-compose \
    systemd git rsyslog rsyslog-gnutls prometheus libdevmapper1.02.1 libsystemd0
  # prometheus: the metrics test scrapes the daemon with a real server (it starts
  # its own; under systemd Debian also enables prometheus.service on :9090)
  # `systemd` (systemd-analyze for the unit tests, systemd-socket-activate) does
  # not make itself PID 1: that is the separate systemd-sysv package
fi

# the swarm tests' manager is Moby's dockerd (no other SwarmKit manager exists
# offline): unpacked into build/moby, never installed as a service, never on
# /var/run/docker.sock (tests/integration/moby_manager.py runs it privately)
if [ ! -x build/moby/usr/sbin/dockerd ] || [ ! -x build/moby/usr/bin/containerd ]; then
  mkdir -p build/moby/debs
  (cd build/moby/debs && { apt-get download -q docker.io containerd \
    || { apt-get update -q && apt-get download -q docker.io containerd; }; })
  for deb in build/moby/debs/*.deb; do dpkg -x "$deb" build/moby; done
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'

getent group docker >/dev/null || groupadd docker

daemon_answers() { [ -S /var/run/docker.sock ] && docker version >/dev/null 2>&1; }
ours_active() {  # a connection to an active pydockerd.socket starts pydockerd itself
  systemctl is-active --quiet pydockerd.socket || systemctl is-active --quiet pydockerd.service
}

if [ -d /run/systemd/system ]; then
  # systemd is PID 1: it holds the socket and runs the daemon (contrib/systemd)
  bash scripts/systemd-units.sh /etc/systemd/system
  systemctl daemon-reload
  if [ "${PYDOCKERD_NO_START:-0}" = "1" ]; then
    systemctl enable pydockerd.socket pydockerd.service
  elif ! ours_active && daemon_answers; then
    echo "a daemon already answers on /var/run/docker.sock; pydockerd units installed," \
      "not enabled (systemctl enable --now pydockerd.socket pydockerd.service)"
  else
    systemctl enable --now pydockerd.socket pydockerd.service
    echo "pydockerd runs under systemd (journalctl -u pydockerd;" \
      "systemctl restart pydockerd picks up code changes)"
  fi
elif [ "${PYDOCKERD_NO_START:-0}" != "1" ]; then
  if daemon_answers; then
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
