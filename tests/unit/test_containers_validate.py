"""Unit tests for create-time validation (containers/validate.py): dockerd's messages."""
from __future__ import annotations

import json
from typing import Any

import pytest

from pydockerd.api.decode import decode_body
from pydockerd.containers.validate import validate_create, validate_update
from pydockerd.errors import InvalidParameter
from pydockerd.models import ContainerCreateRequest, UpdateConfig


def _create(hc: dict[str, Any] | None = None, **cfg: Any) -> None:
    body = dict(cfg, Image="busybox", HostConfig=hc or {})
    req = decode_body(json.dumps(body).encode(), ContainerCreateRequest)
    validate_create(req, req.HostConfig)


REJECTED: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    # resources
    ({"Memory": 1024}, {}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": -1}, {}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": 64 << 20, "MemorySwap": 32 << 20}, {}, "memoryswap limit should be larger"),
    ({"MemorySwap": 64 << 20}, {}, "always set the Memory limit"),
    ({"MemorySwappiness": 101}, {}, "valid memory swappiness range is 0-100"),
    ({"MemoryReservation": 1}, {}, "Minimum memory reservation allowed is 6MB"),
    ({"Memory": 8 << 20, "MemoryReservation": 16 << 20}, {}, "memory reservation limit"),
    ({"CpuShares": -1}, {}, "invalid CPU shares (-1)"),
    ({"NanoCpus": -5}, {}, "Range of CPUs is from 0.01"),
    ({"NanoCpus": 10**9, "CpuQuota": 50000}, {}, "Nano CPUs and CPU Period cannot both"),
    ({"CpuPeriod": 10}, {}, "CPU cfs period can not be less than 1ms"),
    ({"CpuQuota": 10}, {}, "CPU cfs quota can not be less than 1ms"),
    ({"BlkioWeight": 5}, {}, "Range of blkio weight is from 10 to 1000"),
    ({"PidsLimit": -7}, {}, "invalid PidsLimit"),
    ({"ShmSize": -1}, {}, "SHM size can not be less than 0"),
    ({"OomScoreAdj": 1001}, {}, "range for oom score adj is [-1000, 1000]"),
    # restart policy
    ({"RestartPolicy": {"Name": "sometimes"}}, {}, "invalid restart policy: unknown policy"),
    ({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}}, {},
     "maximum retry count cannot be negative"),
    ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}}, {},
     "maximum retry count can only be used with 'on-failure'"),
    ({"AutoRemove": True, "RestartPolicy": {"Name": "always"}}, {},
     "cannot specify both --restart and --rm"),
    # log config
    ({"LogConfig": {"Type": "syslogx"}}, {}, 'error looking up logging plugin syslogx: plugin "syslogx" not found'),
    ({"LogConfig": {"Type": "json-file", "Config": {"foo": "1"}}}, {},
     "unknown log opt 'foo' for json-file log driver"),
    ({"LogConfig": {"Type": "awslogs"}}, {}, "awslogs log driver needs a cloud service"),
    ({"LogConfig": {"Type": "syslog", "Config": {"syslog-facility": "x"}}}, {},
     "invalid syslog facility"),
    ({"LogConfig": {"Type": "json-file", "Config": {"max-size": "abc"}}}, {},
     "failed to initialize logging driver: invalid size: 'abc'"),
    # ulimits
    ({"Ulimits": [{"Name": "nofile", "Hard": 10}]}, {}, "Soft and Hard are required"),
    ({"Ulimits": [{"Name": "nofile", "Soft": 10}]}, {}, "Soft and Hard are required"),
    ({"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 1}]}, {}, "invalid ulimit type: bogus"),
    ({"Ulimits": [{"Name": "nofile", "Soft": 20, "Hard": 10}]}, {},
     "soft limit must be less than or equal to hard limit: 20 > 10"),
    # capabilities
    ({"CapAdd": "NET_BOGUS"}, {}, 'unknown capability: "CAP_NET_BOGUS"'),
    ({"CapDrop": ["CAP_NOPE"]}, {}, 'unknown capability: "CAP_NOPE"'),
    # binds and mounts
    ({"Binds": ["rel/path:/x"]}, {}, "includes invalid characters for a local volume name"),
    ({"Binds": ["/a:/"]}, {}, "destination can't be '/'"),
    ({"Binds": ["/a:b"]}, {}, "mount path must be absolute"),
    ({"Binds": ["/a:/b:bogus"]}, {}, "invalid mode: bogus"),
    ({"Mounts": [{"Type": "nfs", "Target": "/x"}]}, {}, "not supported"),
    ({"Mounts": [{"Target": "/x"}]}, {}, "mount type unknown"),
    ({"Mounts": [{"Type": "bind", "Target": "/x"}]}, {}, "field Source must not be empty"),
    ({"Mounts": [{"Type": "bind", "Source": "/no/such/dir/xyz", "Target": "/x"}]}, {},
     "bind source path does not exist: /no/such/dir/xyz"),
    ({"Mounts": [{"Type": "volume", "Target": "x"}]}, {}, "mount path must be absolute"),
    ({"Mounts": [{"Type": "volume", "Target": "/x", "BindOptions": {}}]}, {},
     "field BindOptions must not be specified"),
    ({"Mounts": [{"Type": "tmpfs", "Target": "/x", "Source": "s"}]}, {},
     "field Source must not be specified"),
    ({"Mounts": [{"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"SizeBytes": -1}}]}, {},
     "invalid tmpfs size"),
    # tmpfs, ports, sysctls, devices
    ({"Tmpfs": {"rel": ""}}, {}, "mount path must be absolute"),
    ({"Tmpfs": {"/t": "bogus"}}, {}, "invalid tmpfs option"),
    ({"PortBindings": {"abc/tcp": []}}, {}, "invalid port specification"),
    ({"PortBindings": {"80/tcp": [{"HostPort": "http"}]}}, {}, "invalid port specification"),
    ({"Sysctls": {"kernel.hostname": "x"}}, {}, "sysctl 'kernel.hostname' is not allowed"),
    ({"NetworkMode": "host", "Sysctls": {"net.ipv4.ip_forward": "1"}}, {},
     "not allowed in host network namespace"),
    ({"Devices": [{"PathOnHost": "/dev/no-such-dev", "CgroupPermissions": "rwm"}]}, {},
     "error gathering device information"),
    ({"Devices": [{"PathOnHost": "/dev/null", "CgroupPermissions": "rwx"}]}, {},
     "invalid device mode: rwx"),
    # Config
    ({}, {"ExposedPorts": {"99999/tcp": {}}}, "invalid port specification"),
    ({}, {"Volumes": {"rel": {}}}, "mount path must be absolute"),
    ({}, {"Env": ["=x"]}, "invalid environment variable: =x"),
    ({}, {"Healthcheck": {"Test": ["CMD", "true"], "Interval": 10}},
     "Interval in Healthcheck cannot be less than 1ms"),
    ({}, {"Healthcheck": {"Retries": -1}}, "Retries in Healthcheck cannot be negative"),
]


@pytest.mark.parametrize("hc,cfg,message", REJECTED, ids=[m for _, _, m in REJECTED])
def test_rejected_at_create(hc: dict[str, Any], cfg: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        _create(hc, **cfg)
    assert message in e.value.message


ACCEPTED: list[dict[str, Any]] = [
    {},
    {"Memory": 64 << 20, "MemorySwap": -1, "MemorySwappiness": -1},
    {"Memory": 0, "MemorySwap": 0, "CpuShares": 0, "NanoCpus": 0, "ShmSize": 0},
    {"NanoCpus": 500_000_000},
    {"CpuPeriod": 100000, "CpuQuota": 50000},
    {"CpuQuota": -1},
    {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}},
    {"RestartPolicy": {"Name": "", "MaximumRetryCount": 0}, "AutoRemove": True},
    {"CapAdd": "NET_ADMIN", "CapDrop": ["ALL"]},
    {"CapAdd": ["net_admin", "CAP_SYS_TIME"]},
    {"Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]},
    {"Ulimits": [{"Name": "core", "Soft": -1, "Hard": -1}]},
    {"Binds": ["/tmp:/data:ro", "vol:/v", "/anon"]},
    {"Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "/x", "ReadOnly": True},
                {"Type": "volume", "Source": "myvol", "Target": "/v",
                 "VolumeOptions": {"NoCopy": True}},
                {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1 << 20}}]},
    {"Tmpfs": {"/run": "rw,size=64m"}},
    {"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}], "53/udp": [{}]}},
    {"Sysctls": {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1", "fs.mqueue.msg_max": "9"}},
    {"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/n",
                  "CgroupPermissions": "rw"}]},
    {"LogConfig": {"Type": "none"}},
    {"LogConfig": {"Type": "", "Config": {}}},
]


@pytest.mark.parametrize("hc", ACCEPTED, ids=[json.dumps(h)[:60] for h in ACCEPTED])
def test_accepted_at_create(hc: dict[str, Any]) -> None:
    _create(hc, ExposedPorts={"80/tcp": {}, "7000-7010/udp": {}},
            Healthcheck={"Test": ["CMD", "true"], "Interval": 0})


def test_update_checks() -> None:
    def upd(body: dict[str, Any]) -> None:
        validate_update(decode_body(json.dumps(body).encode(), UpdateConfig))
    upd({"Memory": 64 << 20, "RestartPolicy": {"Name": "always"}})
    upd({"MemorySwap": 128 << 20})          # allowed on update (the memory is already set)
    with pytest.raises(InvalidParameter, match="unknown policy"):
        upd({"RestartPolicy": {"Name": "bogus"}})
    with pytest.raises(InvalidParameter, match="Minimum memory limit"):
        upd({"Memory": 1})
