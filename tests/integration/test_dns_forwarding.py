"""The embedded DNS of user-defined networks forwards what it does not know to the
container's --dns servers (else the daemon's --dns, else the host's), as dockerd's
external resolvers; resolv.conf names them in `# ExtServers:`."""
from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator

import pytest

from pydockerd.network import dns


class Upstream:
    """A DNS server on a loopback address of the host: every A query for a name
    under `.upstream.test` gets `answer`; other names get NXDOMAIN."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.addr = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.addr, 53))
        self.sock.settimeout(0.2)
        self.asked: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                msg, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            q = dns.parse_query(msg)
            name = q.question.name
            self.asked.append(name)
            if name.endswith("upstream.test"):
                self.sock.sendto(dns.answer_a(q, [self.answer]), peer)
            else:
                self.sock.sendto(dns.answer_empty(q, 3), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def upstreams() -> Iterator[list[Upstream]]:
    made: list[Upstream] = []
    yield made
    for u in made:
        u.close()


@pytest.fixture
def net(daemon) -> Iterator[str]:
    name = f"dnsfwd-{random.randint(0, 1 << 20):x}"
    daemon.cli("network", "create", name)
    yield name
    daemon.cli("network", "rm", name, check=False)


def test_container_dns_is_the_forwarder(daemon, net, upstreams):
    up = Upstream("10.77.1.2")
    upstreams.append(up)
    out = daemon.out("run", "--rm", "--network", net, "--dns", up.addr, "busybox", "sh", "-c",
                     "cat /etc/resolv.conf; nslookup -type=A www.upstream.test")
    assert "nameserver 127.0.0.11" in out
    assert f"# ExtServers: [{up.addr}]" in out
    assert "10.77.1.2" in out.split("www.upstream.test", 1)[1]
    assert "www.upstream.test" in up.asked


def test_daemon_dns_is_the_default_forwarder(fresh_daemon, upstreams):
    daemon_up, own_up = Upstream("10.77.2.2"), Upstream("10.77.3.3")
    upstreams += [daemon_up, own_up]
    d = fresh_daemon("--dns", daemon_up.addr)
    d.cli("network", "create", "fwd")
    try:
        out = d.out("run", "--rm", "--network", "fwd", "busybox", "nslookup", "-type=A",
                    "a.upstream.test")
        assert "10.77.2.2" in out
        out = d.out("run", "--rm", "--network", "fwd", "--dns", own_up.addr, "busybox",
                    "nslookup", "-type=A", "b.upstream.test")
        assert "10.77.3.3" in out          # the container's own --dns wins
        assert "b.upstream.test" not in daemon_up.asked
    finally:
        d.cli("network", "rm", "fwd", check=False)
