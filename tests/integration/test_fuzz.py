"""A seeded fuzzer for the whole Engine API edge.

Every route of every api/routes module (enumerated from the Route tables, so new
routes are covered without touching this file) gets malformed path parameters,
query values, JSON bodies and HTTP framing, sent as raw bytes over the unix
socket. Each answer must be a 4xx (501/503 are allowed: features pydockerd
declines on purpose), never a 5xx, a hang or a dropped connection; the daemon
must keep answering /_ping, and a rejected request must change nothing
(containers, images, volumes, networks are compared before and after).

Registry routes only ever see names that point at 127.0.0.1:9 or that no
registry could parse, so nothing leaves the machine.
"""
from __future__ import annotations

import bz2
import gzip
import json
import os
import random
import shutil
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import Daemon, cleanup_daemon, make_daemon
from fuzz_helpers import Answer, field_paths, fill, query_params, reads_json_body, \
    reads_raw_body, replaced, request, route_table, send, truncated_tar, with_deep_field, \
    wrong_types

SEED = 20240605
MISSING = "fzmissing0000"
LOOPBACK_IMAGE = "127.0.0.1:9/fz/busybox:latest"
ALLOWED_5XX = {501, 503}
EDGE_ONLY = {"term", "fromImage", "fromSrc", "remote"}   # never a value a registry could use
GARBAGE = "-!Bad Value/../\u202e\u00e9"
HUGE_QUERY = "x" * (300 << 10)                            # over the 256 KiB request target limit


# realistic bodies for the routes that read JSON; {cid} etc. are filled in
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/containers/create"): {
        "Image": "busybox", "Cmd": ["true"], "Env": ["A=1"], "Labels": {"fz": "1"},
        "ExposedPorts": {"80/tcp": {}}, "HostConfig": {
            "Binds": ["/tmp:/mnt"], "RestartPolicy": {"Name": "no"}, "Memory": 0,
            "LogConfig": {"Type": "json-file", "Config": {}}, "CapAdd": ["NET_ADMIN"],
            "PortBindings": {"80/tcp": [{"HostPort": ""}]}, "Ulimits": [
                {"Name": "nofile", "Soft": 1024, "Hard": 1024}], "ShmSize": 0},
        "NetworkingConfig": {"EndpointsConfig": {"bridge": {"Aliases": ["a"]}}}},
    ("POST", "/containers/{id}/update"): {"Memory": 0, "RestartPolicy": {"Name": "no"}},
    ("POST", "/containers/{id}/exec"): {"Cmd": ["true"], "AttachStdout": True,
                                        "ConsoleSize": [24, 80], "Env": ["A=1"]},
    ("POST", "/containers/{id}/start"): {},
    ("POST", "/exec/{id}/start"): {"Detach": True, "Tty": False, "ConsoleSize": [24, 80]},
    ("POST", "/swarm/join"): {
        "ListenAddr": "0.0.0.0:2377", "AdvertiseAddr": "", "DataPathAddr": "",
        "RemoteAddrs": ["127.0.0.1:1"], "Availability": "active",
        "JoinToken": "SWMTKN-1-" + "3" * 50 + "-" + "1" * 25},
    ("POST", "/volumes/create"): {"Name": "fzv", "Driver": "local", "Labels": {"a": "b"},
                                  "DriverOpts": {}},
    ("POST", "/networks/create"): {"Name": "fzn", "Driver": "bridge", "Labels": {"a": "b"},
                                   "IPAM": {"Config": [{"Subnet": "10.231.77.0/24"}]}},
    ("POST", "/networks/{id}/connect"): {"Container": "{cid}",
                                         "EndpointConfig": {"Aliases": ["x"]}},
    ("POST", "/networks/{id}/disconnect"): {"Container": "{cid}", "Force": False},
    ("POST", "/commit"): {"Cmd": ["sh"], "Labels": {"a": "b"}, "Env": ["A=1"]},
    ("POST", "/auth"): {"username": "u", "password": "p", "serveraddress": "127.0.0.1:9"},
    # managed plugins: lists (privileges granted, `plugin set` arguments)
    ("POST", "/plugins/pull"): [],
    ("POST", "/plugins/{name:path}/upgrade"): [],
    ("POST", "/plugins/{name:path}/set"): [],
}


# --- the daemon and what it holds ------------------------------------------------------
class Fuzz:
    """A private daemon with one of each object, and the checks every answer gets."""

    def __init__(self, d: Daemon) -> None:
        self.d = d
        self.sock = d.socket
        self.ids: dict[str, str] = {}
        self.failures: list[str] = []
        self.sent = 0
        self.last = self.snapshot()

    def call(self, method: str, target: str, body: Any = None) -> Answer:
        raw = None if body is None else json.dumps(body).encode()
        return send(self.sock, request(method, target, raw))

    def ensure_fixtures(self) -> None:
        """One running container, an exec on it, a network, a volume, a loopback-named
        image tag; recreated when an accepted request removed or stopped them."""
        d = self.d
        cid = self.ids.get("container", "")
        state = d.cli("inspect", "-f", "{{.State.Running}}", cid or "-", check=False)
        if state.stdout_text.strip() != "true":
            d.cli("rm", "-f", cid or "-", check=False)
            self.ids["container"] = d.out("run", "-d", "busybox", "sleep", "3600").strip()
            self.ids.pop("exec", None)
        if "exec" not in self.ids or self.call("GET", f"/exec/{self.ids['exec']}/json"
                                               ).status != 200:
            ans = self.call("POST", f"/containers/{self.ids['container']}/exec",
                            {"Cmd": ["true"], "AttachStdout": True})
            self.ids["exec"] = ans.json()["Id"]
        if d.cli("network", "inspect", "fz-net", check=False).returncode != 0:
            d.cli("network", "create", "fz-net")
        if d.cli("volume", "inspect", "fz-vol", check=False).returncode != 0:
            d.cli("volume", "create", "fz-vol")
        if d.cli("image", "inspect", LOOPBACK_IMAGE, check=False).returncode != 0:
            d.cli("tag", "busybox", LOOPBACK_IMAGE)
        self.last = self.snapshot()

    def real(self, pattern: str) -> str:
        return {"containers": self.ids.get("container", ""), "exec": self.ids.get("exec", ""),
                "networks": "fz-net", "volumes": "fz-vol", "images": LOOPBACK_IMAGE,
                "distribution": LOOPBACK_IMAGE}.get(pattern.split("/")[1], MISSING)

    def snapshot(self) -> dict[str, Any]:
        def get(target: str) -> Any:
            ans = send(self.sock, request("GET", target))
            assert ans.status == 200, f"GET {target} -> {ans.status}: {ans.body[:300]!r}"
            return ans.json()
        return {
            "containers": sorted((c["Id"], c["State"], tuple(c["Names"]))
                                 for c in get("/containers/json?all=1")),
            "images": sorted((i["Id"], tuple(i["RepoTags"] or ())) for i in get("/images/json")),
            "volumes": sorted(v["Name"] for v in get("/volumes")["Volumes"] or []),
            "networks": sorted((n["Id"], n["Name"]) for n in get("/networks")),
        }

    def check(self, what: str, raw: bytes, must_reject: bool = True) -> Answer | None:
        """Send; record a failure for a 5xx, a hang, a drop, an accepted request that
        had to be refused, or a refused one that changed something."""
        self.sent += 1
        try:
            ans = send(self.sock, raw)
        except AssertionError as e:
            self.failures.append(f"{what}: {e}")
            self.d.cli("version", check=False)
            return None
        if ans.status >= 500 and ans.status not in ALLOWED_5XX:
            self.failures.append(f"{what}: {ans.status} {ans.body[:200]!r}")
        elif must_reject and ans.status < 400:
            self.failures.append(f"{what}: accepted ({ans.status})")
        mutating = not raw.startswith((b"GET ", b"HEAD "))
        try:
            now = self.snapshot() if mutating or ans.status >= 500 else self.last
        except AssertionError as e:
            self.failures.append(f"after {what}: {e}")
            return ans
        if ans.status >= 400 and now != self.last:
            self.failures.append(f"{what}: refused ({ans.status}) but changed "
                                 f"{[k for k in now if now[k] != self.last[k]]}")
        self.last = now
        return ans


@pytest.fixture(scope="module")
def fz(images_dir: Path):
    tmp = Path(tempfile.mkdtemp(prefix="pdt-fz-", dir="/tmp"))
    d = make_daemon(tmp)
    d.start()
    try:
        d.cli("load", "-i", str(images_dir / "busybox.tar"))
        f = Fuzz(d)
        f.ensure_fixtures()
        yield f
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.cli("rm", "-f", *d.out("ps", "-aq", check=False).split(), check=False)
            d.cli("network", "prune", "-f", check=False)
        cleanup_daemon(d)
        shutil.rmtree(tmp, ignore_errors=True)


# --- mutations ----------------------------------------------------------------------------
QUERY_VALUES = {
    "int": ["abc", "1.5", "99999999999999999999", "%201", "0x10"],
    "json": ["%7B", "%5B" * 5000 + "%5D" * 5000, "5", "%22x%22", "NaN", "%7B%22a%22%3A%5B1%5D%7D",
             "%7B%22a%22%3A" * 3000 + "1" + "%7D" * 3000],
    "bool": [],
    "str": [],
}
PATH_VALUES = ["%00", "..", "%ff%fe", "%E2%80%AE", MISSING, "-", "a" * 5000]
# no registry could be asked for these names (upper case, spaces)
REGISTRY_PATH_VALUES = ["%00", "..", "%ff%fe", "%E2%80%AE", "FZ MISSING", "-", "A" * 5000]


def is_registry_route(pattern: str) -> bool:
    return pattern.startswith("/distribution/") or pattern.endswith("/push")
BAD_BODIES = [b"{", b'{"Image":', b"[" * 5000 + b"]" * 5000, b'{"a":' * 5000 + b"1" + b"}" * 5000,
              b"\xff\xfe", b'{"x": 1} trailing', b"NaN", b'{"s": "\\ud800"}']


def main_cases(fz: Fuzz, method: str, pattern: str,
               handler: Callable[..., Any]) -> list[tuple[str, bytes, bool]]:
    """(label, raw request, must be refused) for one route."""
    cases: list[tuple[str, bytes, bool]] = []
    has_params = "{" in pattern
    registry = is_registry_route(pattern)
    missing = "FZ MISSING" if registry else MISSING
    bases = [fill(pattern, fz.real(pattern)), fill(pattern, missing)] if has_params else [pattern]
    for name, kind in sorted(query_params(handler).items()):
        for base in bases:
            cases.append((f"{name}=NUL", request(method, f"{base}?{name}=a%00b"), True))
            for v in QUERY_VALUES[kind]:
                cases.append((f"{name}={v[:20]}", request(method, f"{base}?{name}={v}"), True))
            if kind == "str" and name not in EDGE_ONLY:
                cases.append((f"{name}=garbage", request(
                    method, f"{base}?{name}={urllib.parse.quote(GARBAGE)}"), False))
    cases.append(("huge query", request(method, f"{bases[-1]}?filters={HUGE_QUERY}"), True))
    cases.append(("PATCH", request("PATCH", bases[-1]), True))
    if has_params:
        for v in REGISTRY_PATH_VALUES if registry else PATH_VALUES:
            cases.append((f"path {v[:12]}", request(method, fill(pattern, v)), True))
    real_body = BODIES.get((method, pattern))
    if real_body is not None:
        for base in bases:
            for b in BAD_BODIES:
                cases.append((f"body {b[:12]!r}", request(method, base, b), True))
            text = json.dumps(real_body).encode()
            if len(text) > 4:
                cases.append(("truncated body", request(method, base, text[:len(text) // 2]),
                              True))
                cases.append(("short body", request(method, base, text, len(text) + 50), True))
            if real_body:
                key = sorted(real_body)[0]
                cases.append((f"{key} 5000 deep", request(
                    method, base, with_deep_field(real_body, key)), True))
    return cases


def test_every_route_refuses_malformed_input(fz: Fuzz) -> None:
    rng = random.Random(SEED)
    table = route_table()
    missing = [(m, p) for m, p, h in table if reads_json_body(h) and (m, p) not in BODIES]
    assert not missing, f"routes reading a JSON body without a fuzz body: {missing}"
    started = time.monotonic()
    for method, pattern, handler in table:
        fz.ensure_fixtures()
        cases = main_cases(fz, method, pattern, handler)
        rng.shuffle(cases)
        for label, raw, must_reject in cases:
            fz.check(f"{method} {pattern} [{label}]", raw, must_reject)
        ping = send(fz.sock, request("GET", "/_ping"))
        assert ping.status == 200 and ping.body == b"OK", f"daemon died after {pattern}"
    # framing, once
    for label, raw in [("garbage line", b"GARBAGE\r\n\r\n"),
                       ("bad header", b"GET /_ping HTTP/1.1\r\nbad header\r\n\r\n"),
                       ("long line", b"GET /_ping?" + b"a" * (2 << 20) + b" HTTP/1.1\r\n\r\n"),
                       ("big headers", b"GET /_ping HTTP/1.1\r\nX: " + b"b" * (2 << 20)
                        + b"\r\n\r\n")]:
        fz.check(label, raw)
    assert time.monotonic() - started < 120
    assert not fz.failures, f"{len(fz.failures)} of {fz.sent}:\n" + "\n".join(fz.failures)


# --- raw (archive) bodies ----------------------------------------------------------------
RAW_BODIES: dict[tuple[str, str], str] = {      # route -> query that makes it read the body
    ("POST", "/plugins/create"): "name=fz-plugin",
    ("POST", "/images/load"): "",
    ("POST", "/build"): "t=fz-build",
    ("PUT", "/containers/{id}/archive"): "path=/tmp",
    ("POST", "/images/create"): "fromSrc=-&repo=fz-import",
}


BAD_ARCHIVES = {
    "garbage": b"this is not an archive" * 50,
    "garbage gzip": b"\x1f\x8b\x08\x00" + bytes(range(256)) * 20,
    "truncated gzip": gzip.compress(b"y" * 100000)[:300],
    "garbage bzip2": b"BZh91AY&SY" + bytes(range(256)) * 20,
    "garbage xz": b"\xfd7zXZ\x00" + bytes(range(256)) * 20,
    "truncated bzip2": bz2.compress(b"y" * 100000)[:60],
    "truncated tar": truncated_tar(),
    "tar header garbage": b"a" * 100 + b"\x00" * 412 + b"\xff" * 512,
}


def tmp_leftovers(fz: Fuzz) -> list[str]:
    tmp = os.path.join(fz.d.data_root, "tmp")
    return sorted(os.listdir(tmp)) if os.path.isdir(tmp) else []


def test_bad_archives_are_refused_and_leave_no_temp_files(fz: Fuzz) -> None:
    table = route_table()
    missing = [(m, p) for m, p, h in table if reads_raw_body(h) and (m, p) not in RAW_BODIES]
    assert not missing, f"routes reading a raw body without a fuzz case: {missing}"
    fz.failures.clear()
    fz.ensure_fixtures()
    before = tmp_leftovers(fz)
    for (method, pattern), query in sorted(RAW_BODIES.items()):
        target = fill(pattern, fz.real(pattern)) + "?" + query
        for name, data in BAD_ARCHIVES.items():
            raw = (f"{method} {target} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n"
                   f"Content-Type: application/x-tar\r\nContent-Length: {len(data)}\r\n\r\n"
                   ).encode() + data
            ans = fz.check(f"{method} {pattern} [{name}]", raw)
            if ans is not None and ans.status == 200 and b'"errorDetail"' in ans.body:
                fz.failures.pop()       # dockerd, too, reports some late errors in the stream
            if tmp_leftovers(fz) != before:
                fz.failures.append(f"{method} {pattern} [{name}]: left {tmp_leftovers(fz)}")
    assert not fz.failures, "\n".join(fz.failures)


def test_known_findings(fz: Fuzz) -> None:
    """The issue's list, one request each, with the answer dockerd gives."""
    fz.ensure_fixtures()
    cid = fz.ids["container"]
    ans = fz.call("POST", f"/containers/{cid}/wait?condition=bogus")
    assert ans.status == 400 and "transfer-encoding" not in ans.headers
    assert ans.json()["message"] == 'invalid condition: "bogus"'
    ans = fz.call("GET", f"/containers/{cid}/top?ps_args=--bogus-option")
    assert ans.status == 400 and ans.json()["message"].startswith("ps: ")
    assert "Usage" not in ans.json()["message"]
    for method in ("GET", "HEAD", "PUT"):
        ans = fz.call(method, f"/containers/{cid}/archive?path=/tmp%00x")
        assert ans.status == 400, (method, ans.status)
        ans = fz.call(method, f"/containers/{MISSING}/archive")
        assert ans.status == 400, (method, ans.status)        # before the lookup
    for q in ("all=abc", "size=", "limit=x", "limit=", "all=none"):
        assert fz.call("GET", f"/containers/json?{q}").status in (200, 400), q
    assert fz.call("GET", "/containers/json?limit=x").json()["message"].startswith(
        "invalid value for limit: strconv.Atoi")
    assert fz.call("POST", f"/containers/{cid}/stop?t=1.5").status == 400
    assert fz.call("POST", f"/containers/{cid}/resize?h=abc&w=80").status == 400
    assert fz.call("GET", "/containers/json?filters=" + "%5B" * 5000 + "%5D" * 5000
                   ).status == 400
    assert fz.call("GET", "/v1.99/nope").status == 404
    assert fz.call("GET", "/v1.99/_ping").status == 400


# --- typed bodies (decoded into typed models by the API edge) ---------------------------
def fill_body(fz: Fuzz, body: Any) -> Any:
    return json.loads(json.dumps(body).replace("{cid}", fz.ids["container"]))


def undo_accepted(fz: Fuzz, method: str, pattern: str, ans: Answer) -> None:
    """Remove what an accepted create made, so one bug does not hide the next."""
    if ans.status >= 300 or not ans.body.strip():
        return
    try:
        doc = ans.json()
    except ValueError:
        return
    if not isinstance(doc, dict):
        return
    target = {"/containers/create": f"/containers/{doc.get('Id')}?force=1",
              "/volumes/create": f"/volumes/{doc.get('Name')}?force=1",
              "/networks/create": f"/networks/{doc.get('Id')}",
              "/commit": f"/images/{doc.get('Id')}?force=1"}.get(pattern)
    if target:
        send(fz.sock, request("DELETE", target))
    fz.last = fz.snapshot()


def typed_cases(fz: Fuzz) -> list[tuple[str, str, str, bytes, bool]]:
    cases = []
    for (method, pattern), body in sorted(BODIES.items()):
        if not body:
            continue
        target = fill(pattern, fz.real(pattern))
        body = fill_body(fz, body)
        for top in (["x"], "x", 5):           # (null is Go's zero value: a valid body)
            cases.append((method, pattern, f"body {top!r}",
                          request(method, target, json.dumps(top).encode()), True))
        for path in field_paths(body):
            if pattern == "/auth" and path == ("serveraddress",):
                continue
            cur: Any = body
            for k in path:
                cur = cur[k]
            label = ".".join(map(str, path))
            for bad in wrong_types(cur):
                cases.append((method, pattern, f"{label}={json.dumps(bad)[:20]}",
                              request(method, target, json.dumps(
                                  replaced(body, path, bad)).encode()), True))
            # may be valid (only no 5xx and no poisoning); a valid login would ask a registry
            if isinstance(cur, str) and pattern != "/auth":
                for odd, name in (("a\u0000b", "NUL"), ("y" * (1 << 20), "1 MiB")):
                    cases.append((method, pattern, f"{label}={name}", request(
                        method, target, json.dumps(replaced(body, path, odd)).encode()), False))
    return cases


def test_wrong_typed_bodies_are_refused(fz: Fuzz) -> None:
    rng = random.Random(SEED + 1)
    fz.failures.clear()
    cases = typed_cases(fz)
    rng.shuffle(cases)
    started = time.monotonic()
    for method, pattern, label, raw, must_reject in cases:
        if not fz.ids.get("container") or method != "POST" or "{id}" in pattern:
            fz.ensure_fixtures()
        ans = fz.check(f"{method} {pattern} [{label}]", raw, must_reject)
        if ans is not None:
            undo_accepted(fz, method, pattern, ans)
        assert time.monotonic() - started < 240
    ping = send(fz.sock, request("GET", "/_ping"))
    assert ping.status == 200
    assert not fz.failures, f"{len(fz.failures)} of {len(cases)}:\n" + "\n".join(fz.failures)
