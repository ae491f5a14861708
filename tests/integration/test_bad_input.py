"""Wrong-typed request bodies through raw HTTP and the SDK: a 400 that names the field,
nothing created, and the daemon keeps answering (issue 6's examples)."""
from __future__ import annotations

import http.client
import json
import socket
from typing import Any

import pytest


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self.unix_path)


def call(daemon: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    conn = UnixHTTP(daemon.socket)
    try:
        conn.request(method, path, body=raw,
                     headers={"Content-Type": "application/json"} if raw else {})
        r = conn.getresponse()
        data = r.read()
    finally:
        conn.close()
    try:
        return r.status, json.loads(data) if data else None
    except ValueError:
        return r.status, data


def _create(hc: dict[str, Any] | None = None, **cfg: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"Image": "busybox", "Cmd": ["true"], **cfg}
    if hc is not None:
        body["HostConfig"] = hc
    return body


CREATE_CASES = [
    (_create({"LogConfig": "x"}), "HostConfig.HostConfig.LogConfig of type container.LogConfig"),
    (_create({"RestartPolicy": "always"}), "HostConfig.RestartPolicy of type"),
    (_create({"Binds": [1]}), "HostConfig.Binds of type string"),
    (_create({"Mounts": ["a"]}), "HostConfig.Mounts of type mount.Mount"),
    (_create(Env={"A": "1"}), "Env of type []string"),
    (_create(Labels=["a=b"]), "Labels of type map[string]string"),
    (_create({"CapAdd": "NET_BOGUS"}), 'unknown capability: "CAP_NET_BOGUS"'),
    (_create({"Ulimits": [{"Name": "nofile", "Hard": 10}]}), "Soft and Hard are required"),
    (_create({"ShmSize": "64m"}), "HostConfig.ShmSize of type int64"),
    (_create(Cmd=[7]), "Cmd of type string"),
    (_create({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}}),
     "maximum retry count cannot be negative"),
    (_create({"Memory": 1024}), "Minimum memory limit allowed is 6MB"),
    (_create({"Mounts": [{"Type": "bind", "Source": "/no/such/src", "Target": "/x"}]}),
     "bind source path does not exist"),
    (b'{"Image": "busybox", "Cmd": ' + b"[" * 5000 + b"]" * 5000 + b"}", "invalid JSON"),
    (b'{"Image": ', "invalid JSON"),
    (b'"busybox"', "Go value of type container.CreateRequest"),
]


def _counts(daemon: Any) -> tuple[int, int, int]:
    st, cts = call(daemon, "GET", "/containers/json?all=1")
    assert st == 200, cts
    _, vols = call(daemon, "GET", "/volumes")
    _, nets = call(daemon, "GET", "/networks")
    return len(cts), len(vols["Volumes"] or []), len(nets)


@pytest.mark.parametrize("body,message", CREATE_CASES,
                         ids=[m[:40] for _, m in CREATE_CASES])
def test_bad_create_is_400_and_creates_nothing(daemon, body, message):
    before = _counts(daemon)
    status, doc = call(daemon, "POST", "/containers/create?name=bad-input", body)
    assert status == 400, (status, doc)
    assert message in doc["message"], doc
    assert _counts(daemon) == before


def test_cap_add_as_string_is_one_capability(daemon):
    status, doc = call(daemon, "POST", "/containers/create?name=bi-capstr",
                       _create({"CapAdd": "NET_ADMIN"}, Cmd=["sh", "-c",
                                                           "grep CapEff /proc/self/status"]))
    try:
        assert status == 201, doc
        assert daemon.inspect("bi-capstr")["HostConfig"]["CapAdd"] == ["NET_ADMIN"]
        daemon.cli("start", "-a", "bi-capstr")
    finally:
        daemon.cli("rm", "-f", "bi-capstr", check=False)


def test_other_bodies(daemon):
    daemon.cli("run", "-d", "--name", "bi-run", "busybox", "sleep", "300")
    try:
        before = _counts(daemon)
        st, doc = call(daemon, "POST", "/containers/bi-run/update", b'"x"')
        assert st == 400 and "container.UpdateConfig" in doc["message"], doc
        st, doc = call(daemon, "POST", "/containers/bi-run/update",
                       {"RestartPolicy": "always"})
        assert st == 400 and "RestartPolicy" in doc["message"], doc
        st, doc = call(daemon, "POST", "/containers/bi-run/exec",
                       {"Cmd": ["true"], "ConsoleSize": "ab"})
        assert st == 400 and "ConsoleSize" in doc["message"], doc
        st, doc = call(daemon, "POST", "/containers/bi-run/exec", {"Cmd": ["true"]})
        assert st == 201, doc
        eid = doc["Id"]
        st, doc = call(daemon, "POST", f"/exec/{eid}/start", b"[1]")
        assert st == 400 and "container.ExecStartOptions" in doc["message"], doc
        st, doc = call(daemon, "POST", f"/exec/{eid}/start", {"Detach": True,
                                                              "ConsoleSize": "ab"})
        assert st == 400 and "ConsoleSize" in doc["message"], doc
        st, doc = call(daemon, "POST", "/volumes/create", {"Name": 5})
        assert st == 400 and "Name of type string" in doc["message"], doc
        st, doc = call(daemon, "POST", "/networks/create",
                       {"Name": "bi-net", "IPAM": {"Config": [{"Subnet": 10}]}})
        assert st == 400 and "Subnet of type string" in doc["message"], doc
        st, doc = call(daemon, "POST", "/networks/bridge/connect", {"Container": 5})
        assert st == 400 and "Container of type string" in doc["message"], doc
        assert _counts(daemon) == before
        # keys match case-insensitively, as Go's decoder (docker-py sends detachKeys)
        st, doc = call(daemon, "POST", "/containers/bi-run/exec",
                       {"cmd": ["true"], "detachKeys": "ctrl-x", "attachstdout": True})
        assert st == 201, doc
        st, doc = call(daemon, "GET", f"/exec/{doc['Id']}/json")
        # inspect shows the parsed keys as Go's []byte (base64), as dockerd: ^X = 0x18
        assert doc["DetachKeys"] == "GA==" and doc["OpenStdout"] is True
    finally:
        daemon.cli("rm", "-f", "bi-run", check=False)
    st, _ = call(daemon, "GET", "/containers/json")
    assert st == 200


def test_sdk_reports_the_field(sdk):
    import docker
    with pytest.raises(docker.errors.APIError) as e:
        sdk.api.create_container("busybox", "true", host_config={"LogConfig": "x"})
    assert e.value.status_code == 400
    assert "LogConfig" in str(e.value)
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=10)])
    with pytest.raises(docker.errors.APIError) as e:
        sdk.networks.create("bi-sdknet", ipam=ipam)
    assert e.value.status_code == 400
    assert "Subnet" in str(e.value)
    assert all(n.name != "bi-sdknet" for n in sdk.networks.list())
