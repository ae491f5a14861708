"""The services that take typed request models: `docker update` (containers/update.py),
commit's config merge (images/newimage.py) and exec create (containers/execs.py)."""
from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from pydockerd.api.decode import decode_body
from pydockerd.containers.create import HOST_CONFIG_DEFAULTS
from pydockerd.containers.execs import ExecService
from pydockerd.containers.update import apply_update
from pydockerd.errors import Conflict, DockerError, InvalidParameter
from pydockerd.images.newimage import merge_config
from pydockerd.models import ContainerConfig, ExecConfig, UpdateConfig

CID = "c" * 64


def _hc(**kw: Any) -> dict[str, Any]:
    return {**HOST_CONFIG_DEFAULTS, **kw}


def _upd(body: dict[str, Any]) -> UpdateConfig:
    return decode_body(json.dumps(body).encode(), UpdateConfig)


def test_update_changes_only_what_was_given() -> None:
    hc = _hc(Memory=64 << 20, MemorySwap=128 << 20, CpuShares=512)
    plan = apply_update(CID, hc, _upd({"memory": 96 << 20, "CpuShares": 0,
                                       "RestartPolicy": {"Name": "on-failure",
                                                         "MaximumRetryCount": 3}}))
    assert plan.resources_changed
    assert plan.host_config["Memory"] == 96 << 20
    assert plan.host_config["CpuShares"] == 512          # a zero leaves it as it was
    assert plan.host_config["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert hc["Memory"] == 64 << 20                      # the stored document is untouched


def test_update_of_the_restart_policy_alone() -> None:
    plan = apply_update(CID, _hc(), _upd({"RestartPolicy": {"Name": "always"}}))
    assert not plan.resources_changed
    assert plan.host_config["RestartPolicy"] == {"Name": "always", "MaximumRetryCount": 0}
    assert apply_update(CID, _hc(), _upd({})).host_config == _hc()


@pytest.mark.parametrize("hc, body, message", [
    (_hc(CpuPeriod=100000), {"NanoCpus": 10**9},
     "Nano CPUs cannot be updated as CPU Period has already been set"),
    (_hc(CpuQuota=50000), {"NanoCpus": 10**9},
     "Nano CPUs cannot be updated as CPU Quota has already been set"),
    (_hc(NanoCpus=10**9), {"CpuPeriod": 100000},
     "CPU Period cannot be updated as NanoCPUs has already been set"),
    (_hc(NanoCpus=10**9), {"CpuQuota": 50000},
     "CPU Quota cannot be updated as NanoCPUs has already been set"),
    (_hc(), {"Memory": 100 << 20}, "Memory limit should be smaller than already set "
     "memoryswap limit"),
    (_hc(Memory=50 << 20), {"Memory": 200 << 20}, "update the memoryswap at the same time"),
    (_hc(Memory=50 << 20, MemorySwap=-1), {"Memory": 60 << 20}, "memoryswap"),
    (_hc(AutoRemove=True), {"RestartPolicy": {"Name": "always"}},
     "Restart policy cannot be updated because AutoRemove is enabled"),
])
def test_update_conflicts_as_dockerd(hc: dict[str, Any], body: dict[str, Any],
                                     message: str) -> None:
    with pytest.raises(Conflict) as ei:
        apply_update(CID, hc, _upd(body))
    assert ei.value.message.startswith(f"Cannot update container {CID}: ")
    assert message in ei.value.message


@pytest.mark.parametrize("hc, body", [
    (_hc(Memory=50 << 20), {"Memory": 80 << 20}),         # under dockerd's 2x default swap
    (_hc(), {"Memory": 100 << 20, "MemorySwap": 200 << 20}),
    (_hc(Memory=50 << 20, MemorySwap=-1), {"Memory": 60 << 20, "MemorySwap": -1}),
    (_hc(AutoRemove=True), {"RestartPolicy": {"Name": "no"}}),
    (_hc(NanoCpus=10**9), {"NanoCpus": 2 * 10**9}),
])
def test_update_accepted(hc: dict[str, Any], body: dict[str, Any]) -> None:
    apply_update(CID, hc, _upd(body))


def test_update_swap_below_the_memory_is_refused() -> None:
    with pytest.raises(InvalidParameter, match="memoryswap limit should be larger"):
        apply_update(CID, _hc(Memory=64 << 20, MemorySwap=128 << 20),
                     _upd({"MemorySwap": 32 << 20}))


def test_commit_config_merge() -> None:
    container = {"Env": ["A=1", "B=2"], "Cmd": ["sh"], "Labels": {"x": "1"},
                 "ExposedPorts": {"80/tcp": {}}, "User": "root", "StopTimeout": 5}
    user = decode_body(json.dumps({
        "env": ["B=3", "C=4"], "Cmd": "top", "Labels": {"y": "2"},
        "ExposedPorts": {"443/tcp": {}}, "User": "", "StopTimeout": 0,
        "Healthcheck": {"Test": ["CMD", "true"], "Retries": 2}}).encode(), ContainerConfig)
    out = merge_config(user, container)
    assert out["Env"] == ["A=1", "B=3", "C=4"]
    assert out["Cmd"] == ["top"]                          # a StrSlice from a string
    assert out["Labels"] == {"x": "1", "y": "2"}
    assert out["ExposedPorts"] == {"80/tcp": {}, "443/tcp": {}}
    assert out["User"] == "root" and out["StopTimeout"] == 5     # zero values: kept
    assert out["Healthcheck"] == {"Test": ["CMD", "true"], "Retries": 2}
    assert container["Env"] == ["A=1", "B=2"]
    assert merge_config(None, container) == container


class _FakeContainers:
    """What ExecService.create uses of the container service."""

    def __init__(self) -> None:
        self.stored: dict[str, Any] = {}
        self.events: list[str] = []
        state = SimpleNamespace(check_exec=lambda cid: None)
        self.c = SimpleNamespace(id=CID, exec_ids=[], state=state)
        self.registry = SimpleNamespace(
            store=SimpleNamespace(put=lambda kind, key, doc: self.stored.__setitem__(key, doc)),
            commit=lambda c, **kw: None)

    def get(self, ref: str) -> Any:
        return self.c

    def event(self, c: Any, action: str, extra: dict[str, str] | None = None) -> None:
        self.events.append(action)


def test_exec_create_takes_the_typed_config() -> None:
    fake = _FakeContainers()
    execs = ExecService(fake)  # type: ignore[arg-type]
    cfg = decode_body(json.dumps({
        "cmd": ["sh", "-c", "true"], "Tty": True, "AttachStdin": True, "User": "nobody",
        "Env": ["X=1"], "WorkingDir": "/tmp", "DetachKeys": "ctrl-a",
        "ConsoleSize": [30, 100], "Privileged": True}).encode(), ExecConfig)
    inst = execs.create("x", cfg)
    assert (inst.cmd, inst.tty, inst.attach_stdin, inst.attach_stdout, inst.user) == \
        (["sh", "-c", "true"], True, True, False, "nobody")
    assert (inst.env, inst.working_dir, inst.detach_keys, inst.console_size,
            inst.privileged) == (["X=1"], "/tmp", "ctrl-a", (30, 100), True)
    assert fake.stored[inst.id]["cmd"] == ["sh", "-c", "true"]
    assert fake.events == ["exec_create"]
    with pytest.raises(DockerError, match="No exec command specified"):
        execs.create("x", ExecConfig(Cmd=[]))


def test_update_keeps_dockerds_swap_default() -> None:
    plan = apply_update(CID, _hc(Memory=64 << 20), _upd({"Memory": 100 << 20}))
    assert plan.host_config["MemorySwap"] == 128 << 20
    with pytest.raises(Conflict, match="memoryswap"):
        apply_update(CID, plan.host_config, _upd({"Memory": 200 << 20}))
