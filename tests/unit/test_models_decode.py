"""Unit tests for the API edge decoder (api/decode.py) and the typed models: every field
of the create body against every wrong JSON type (the table is generated from the models'
type info, so a new field is covered), case-insensitive keys, null, strslice, messages."""
from __future__ import annotations

import json
from typing import Any, Iterator

import msgspec
import msgspec.inspect as mi
import pytest

from pydockerd.api.decode import convert, decode_body, decode_query_json, go_type_name
from pydockerd.errors import InvalidParameter
from pydockerd.models import (AuthConfig, BuildArgs, ContainerCreateRequest, ExecConfig,
                              ExecStartConfig, HostConfig, Model, NetworkConnect,
                              NetworkCreateRequest, UpdateConfig, VolumeCreateOptions, to_doc)

# one value of each JSON kind, and the Go kind dockerd names in its message
SAMPLES: dict[str, Any] = {"string": "x", "number": 7, "bool": True, "object": {"k": "v"},
                           "array": ["x"]}


def _strip(t: mi.Type) -> mi.Type:
    if isinstance(t, mi.UnionType):
        t = next(x for x in t.types if not isinstance(x, mi.NoneType))
    return t


def _accepted(t: mi.Type) -> set[str]:
    """The JSON kinds a field of type `t` accepts."""
    t = _strip(t)
    if isinstance(t, mi.Metadata):
        if (t.extra or {}).get("strslice"):
            return {"array", "string"}
        return _accepted(t.type)
    if isinstance(t, mi.StrType):
        return {"string"}
    if isinstance(t, mi.IntType):
        return {"number"}
    if isinstance(t, mi.BoolType):
        return {"bool"}
    if isinstance(t, (mi.ListType, mi.VarTupleType)):
        return {"array"}
    if isinstance(t, (mi.DictType, mi.StructType)):
        return {"object"}
    return set(SAMPLES)


def _fields(typ: type, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                       mi.Type]]:
    """(path, type) of every field, descending into nested structs (not lists/maps)."""
    info = mi.type_info(typ)
    assert isinstance(info, mi.StructType)
    for f in info.fields:
        t = _strip(f.type)
        yield prefix + (f.name,), f.type
        if isinstance(t, mi.StructType) and len(prefix) < 3:
            yield from _fields(t.cls, prefix + (f.name,))


def _nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    doc: Any = value
    for name in reversed(path):
        doc = {name: doc}
    assert isinstance(doc, dict)
    return doc


BODIES = [ContainerCreateRequest, UpdateConfig, ExecConfig, ExecStartConfig,
          VolumeCreateOptions, NetworkCreateRequest, NetworkConnect]
WRONG = [(typ, path, t, kind)
         for typ in BODIES
         for path, t in _fields(typ)
         for kind in SAMPLES if kind not in _accepted(t)]


@pytest.mark.parametrize("typ,path,t,kind", WRONG,
                         ids=[f"{c.__name__}.{'.'.join(p)}-{k}" for c, p, _, k in WRONG])
def test_each_field_rejects_each_wrong_type(typ: type, path: tuple[str, ...], t: mi.Type,
                                            kind: str) -> None:
    body = json.dumps(_nest(path, SAMPLES[kind])).encode()
    with pytest.raises(InvalidParameter) as e:
        decode_body(body, typ)
    msg = e.value.message
    assert msg.startswith(f"json: cannot unmarshal {kind} into Go struct field "), msg
    assert f".{'.'.join(path)} of type {go_type_name(t)}" in msg, msg


def test_wrong_type_inside_a_list_names_the_element_type() -> None:
    cases = {
        b'{"HostConfig": {"Binds": [1]}}':
            "json: cannot unmarshal number into Go struct field HostConfig.HostConfig.Binds "
            "of type string",
        b'{"HostConfig": {"Mounts": ["a"]}}':
            "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Mounts "
            "of type mount.Mount",
        b'{"Cmd": [7]}':
            "json: cannot unmarshal number into Go struct field CreateRequest.Cmd of type "
            "string",
        b'{"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": 80}]}}}':
            "json: cannot unmarshal number into Go struct field "
            "PortBinding.HostConfig.PortBindings.HostPort of type string",
        b'{"HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": "1"}]}}':
            "json: cannot unmarshal string into Go struct field "
            "Ulimit.HostConfig.Ulimits.Soft of type int64",
    }
    for body, want in cases.items():
        with pytest.raises(InvalidParameter) as e:
            decode_body(body, ContainerCreateRequest)
        assert e.value.message == want


def test_issue_examples() -> None:
    with pytest.raises(InvalidParameter, match="HostConfig.HostConfig.LogConfig of type "
                                               "container.LogConfig"):
        decode_body(b'{"HostConfig": {"LogConfig": "x"}}', ContainerCreateRequest)
    with pytest.raises(InvalidParameter, match="ConsoleSize"):
        decode_body(b'{"ConsoleSize": "ab"}', ExecStartConfig)
    with pytest.raises(InvalidParameter, match="Name of type string"):
        decode_body(b'{"Name": 5}', VolumeCreateOptions)
    with pytest.raises(InvalidParameter, match="IPAM.Config.Subnet of type string"):
        decode_body(b'{"Name": "n", "IPAM": {"Config": [{"Subnet": 10}]}}',
                    NetworkCreateRequest)
    for typ in (UpdateConfig, ExecStartConfig):
        with pytest.raises(InvalidParameter, match="into Go value of type"):
            decode_body(b'"x"', typ)
        with pytest.raises(InvalidParameter, match="into Go value of type"):
            decode_body(b'[1]', typ)


def test_out_of_range_numbers() -> None:
    with pytest.raises(InvalidParameter, match="cannot unmarshal number 1e30|number into"):
        decode_body(b'{"HostConfig": {"Memory": 1e30}}', ContainerCreateRequest)
    with pytest.raises(InvalidParameter, match="number 99999999999999999999"):
        decode_body(b'{"HostConfig": {"Memory": 99999999999999999999}}',
                    ContainerCreateRequest)
    with pytest.raises(InvalidParameter, match="number -1 into .*ConsoleSize of type uint"):
        decode_body(b'{"ConsoleSize": [-1, 2]}', ExecStartConfig)


def test_keys_match_case_insensitively() -> None:
    req = decode_body(b'{"image": "busybox", "CMD": ["true"], "hostconfig": '
                      b'{"restartpolicy": {"name": "always"}, "networkmode": "host"}}',
                      ContainerCreateRequest)
    assert req.Image == "busybox" and req.Cmd == ["true"]
    assert req.HostConfig is not None and req.HostConfig.NetworkMode == "host"
    assert req.HostConfig.RestartPolicy is not None
    assert req.HostConfig.RestartPolicy.Name == "always"
    assert decode_body(b'{"detachKeys": "ctrl-a", "tty": true}', ExecConfig).DetachKeys \
        == "ctrl-a"
    # an exact match wins over a case-folded one, whatever the order
    assert decode_body(b'{"image": "a", "Image": "b"}', ContainerCreateRequest).Image == "b"
    # map keys are data, not field names: kept as sent
    labels = decode_body(b'{"Labels": {"Foo": "1", "foo": "2"}}', ContainerCreateRequest)
    assert labels.Labels == {"Foo": "1", "foo": "2"}


def test_null_means_absent() -> None:
    req = decode_body(b'{"Image": "x", "Cmd": null, "Env": null, "HostConfig": '
                      b'{"Binds": null, "LogConfig": null, "PortBindings": {}}, '
                      b'"NetworkingConfig": null}', ContainerCreateRequest)
    assert to_doc(req) == {"Image": "x", "HostConfig": {"PortBindings": {}}}
    # a null map value is kept where the Go type allows nil
    req = decode_body(b'{"NetworkingConfig": {"EndpointsConfig": {"n": null}}}',
                      ContainerCreateRequest)
    assert to_doc(req) == {"NetworkingConfig": {"EndpointsConfig": {"n": None}}}
    assert to_doc(decode_body(b'null', UpdateConfig)) == {}
    assert to_doc(decode_body(b'', UpdateConfig)) == {}
    with pytest.raises(InvalidParameter, match="config cannot be empty"):
        decode_body(b'null', ContainerCreateRequest, required=True)


def test_strslice_accepts_a_string() -> None:
    req = decode_body(b'{"Cmd": "echo hi", "Entrypoint": "sh", "HostConfig": '
                      b'{"CapAdd": "NET_ADMIN", "CapDrop": ["MKNOD"]}}', ContainerCreateRequest)
    assert req.Cmd == ["echo hi"] and req.Entrypoint == ["sh"]
    assert req.HostConfig is not None and req.HostConfig.CapAdd == ["NET_ADMIN"]
    # a plain []string field does not: Go refuses a string there
    with pytest.raises(InvalidParameter, match="Dns of type \\[\\]string"):
        decode_body(b'{"HostConfig": {"Dns": "8.8.8.8"}}', ContainerCreateRequest)


def test_explicit_zero_values_round_trip() -> None:
    """What the CLI sends (explicit zeros, empty maps, []) survives to_doc, so inspect
    echoes it and `Entrypoint: []` still resets the image's entrypoint."""
    body = {"Hostname": "", "Tty": False, "Entrypoint": [], "Volumes": {}, "Labels": {},
            "ExposedPorts": {"80/tcp": {}},
            "HostConfig": {"Memory": 0, "PortBindings": {}, "ConsoleSize": [0, 0],
                           "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                           "LogConfig": {"Type": "", "Config": {}}, "Privileged": False},
            "NetworkingConfig": {"EndpointsConfig": {}}}
    assert to_doc(decode_body(json.dumps(body).encode(), ContainerCreateRequest)) == body


def test_unknown_fields_are_ignored() -> None:
    req = decode_body(b'{"Image": "x", "Bogus": [1], "HostConfig": {"Nope": {}}}',
                      ContainerCreateRequest)
    assert to_doc(req) == {"Image": "x", "HostConfig": {}}


def test_malformed_and_deep_json_is_invalid_parameter() -> None:
    for raw in (b'{"Image": ', b'{]', b'\xff', b'[' * 5000 + b']' * 5000,
                b'{"Cmd": ' + b'[' * 5000 + b']' * 5000 + b'}'):
        with pytest.raises(InvalidParameter):
            decode_body(raw, ContainerCreateRequest)


def test_query_json() -> None:
    assert decode_query_json(None, BuildArgs, "buildargs") is None
    assert decode_query_json('{"A": "1", "B": null}', BuildArgs, "buildargs") == \
        {"A": "1", "B": None}
    with pytest.raises(InvalidParameter, match="cannot unmarshal number"):
        decode_query_json('{"A": 1}', BuildArgs, "buildargs")
    with pytest.raises(InvalidParameter, match="invalid JSON in labels"):
        decode_query_json('{', dict[str, str], "labels")


def test_auth_config_lower_case_keys() -> None:
    a = convert({"Username": "u", "Password": "p", "ServerAddress": "r"}, AuthConfig)
    assert (a.username, a.password, a.serveraddress) == ("u", "p", "r")


def test_models_are_frozen_and_named_after_go_types() -> None:
    hc = convert({"Memory": 1 << 30}, HostConfig)
    with pytest.raises(AttributeError):
        hc.Memory = 1  # type: ignore[misc]
    for cls in BODIES + [HostConfig]:
        assert issubclass(cls, Model) and cls.go_type, cls
        assert cls.__struct_config__.frozen and cls.__struct_config__.omit_defaults


def test_decode_is_fast_enough() -> None:
    """A typical `docker run -p -v -e --restart` create body decodes well under 1 ms."""
    import time
    body = TYPICAL_RUN_BODY
    decode_body(body, ContainerCreateRequest)
    n = 200
    t0 = time.perf_counter()
    for _ in range(n):
        to_doc(decode_body(body, ContainerCreateRequest))
    assert (time.perf_counter() - t0) / n < 1e-3


TYPICAL_RUN_BODY = json.dumps({
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": True,
    "AttachStderr": True, "ExposedPorts": {"80/tcp": {}}, "Tty": False, "OpenStdin": False,
    "StdinOnce": False, "Env": ["A=1", "B=2"], "Cmd": ["sh", "-c", "echo hi"],
    "Image": "busybox", "Volumes": {}, "WorkingDir": "", "Entrypoint": None, "OnBuild": None,
    "Labels": {"app": "x"},
    "HostConfig": {
        "Binds": ["/tmp:/data:ro"], "ContainerIDFile": "",
        "LogConfig": {"Type": "", "Config": {}}, "NetworkMode": "default",
        "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
        "RestartPolicy": {"Name": "always", "MaximumRetryCount": 0}, "AutoRemove": False,
        "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [40, 120], "CapAdd": None,
        "CapDrop": None, "CgroupnsMode": "", "Dns": [], "DnsOptions": [], "DnsSearch": [],
        "ExtraHosts": None, "GroupAdd": None, "IpcMode": "", "Cgroup": "", "Links": None,
        "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
        "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "",
        "ShmSize": 0, "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0,
        "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [], "BlkioDeviceReadIOps": [],
        "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "", "Devices": [],
        "DeviceCgroupRules": None, "DeviceRequests": None, "MemoryReservation": 0,
        "MemorySwap": 0, "MemorySwappiness": None, "OomKillDisable": None,
        "PidsLimit": None, "Ulimits": [], "CpuCount": 0, "CpuPercent": 0,
        "IOMaximumIOps": 0, "IOMaximumBandwidth": 0, "MaskedPaths": None,
        "ReadonlyPaths": None},
    "NetworkingConfig": {"EndpointsConfig": {}}}).encode()


def test_msgspec_version() -> None:
    assert tuple(int(x) for x in msgspec.__version__.split(".")[:2]) >= (0, 18)
