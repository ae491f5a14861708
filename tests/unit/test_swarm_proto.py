"""The checked-in protobuf code is what grpcio-tools makes of our swarmkit.proto,
and its messages carry SwarmKit's field numbers (as Moby's dockerd 20.10 has them)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pydockerd.swarm.proto import swarmkit_pb2 as pb

PROTO_DIR = Path(__file__).resolve().parents[2] / "src" / "pydockerd" / "swarm" / "proto"


def test_generated_code_is_up_to_date(tmp_path):
    pytest.importorskip("grpc_tools", reason="grpcio-tools is a test dependency "
                        "(pip install -e '.[test]')")
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_DIR}",
                    f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", "swarmkit.proto"],
                   check=True, cwd=PROTO_DIR)
    for name in ("swarmkit_pb2.py", "swarmkit_pb2.pyi"):
        assert (tmp_path / name).read_text() == (PROTO_DIR / name).read_text(), \
            f"{name} is stale: run scripts/gen-swarm-proto.sh"


def _numbers(message) -> dict[str, int]:
    return {f.name: f.number for f in message.DESCRIPTOR.fields}


def test_wire_field_numbers():
    assert pb.DESCRIPTOR.package == "docker.swarmkit.v1"
    assert _numbers(pb.IssueNodeCertificateRequest) == {
        "role": 1, "csr": 2, "token": 3, "availability": 4}
    assert _numbers(pb.NodeCertificateStatusResponse) == {"status": 1, "certificate": 2}
    assert _numbers(pb.Certificate) == {"role": 1, "csr": 2, "status": 3, "certificate": 4,
                                        "cn": 5}
    assert _numbers(pb.NodeDescription) == {"hostname": 1, "platform": 2, "resources": 3,
                                            "engine": 4, "tls_info": 5, "fips": 6}
    assert _numbers(pb.EngineDescription) == {"engine_version": 1, "labels": 2,
                                              "plugins": 3}
    assert _numbers(pb.SessionMessage) == {"session_id": 1, "node": 2, "managers": 3,
                                           "RootCA": 5}
    assert _numbers(pb.Node) == {"id": 1, "spec": 3, "description": 4, "status": 5,
                                 "certificate": 8, "role": 9}
    assert _numbers(pb.NodeSpec) == {"annotations": 1, "desired_role": 2, "membership": 3,
                                     "availability": 4}
    assert pb.IssuanceStatus.ISSUED == 3 and pb.IssuanceStatus.FAILED == 4
    assert pb.NodeSpec.DRAIN == 2 and pb.NodeStatus.READY == 2
    services = {s.name: [m.name for m in s.methods] for s in pb.DESCRIPTOR.services_by_name.values()}
    assert services == {"CA": ["GetRootCACertificate"],
                        "NodeCA": ["IssueNodeCertificate", "NodeCertificateStatus"],
                        "Dispatcher": ["Session", "Heartbeat", "UpdateTaskStatus",
                                       "Assignments"],
                        "LogBroker": ["ListenSubscriptions", "PublishLogs"]}
    assert _numbers(pb.LogSubscriptionOptions) == {"streams": 1, "follow": 2, "tail": 3,
                                                   "since": 4}
    assert _numbers(pb.LogMessage) == {"context": 1, "timestamp": 2, "stream": 3, "data": 4,
                                       "attrs": 5}
    assert _numbers(pb.SubscriptionMessage) == {"id": 1, "selector": 2, "options": 3,
                                                "close": 4}
    assert _numbers(pb.PublishLogsMessage) == {"subscription_id": 1, "messages": 2,
                                               "close": 3}


def test_task_field_numbers():
    assert _numbers(pb.Task) == {
        "id": 1, "spec": 3, "service_id": 4, "slot": 5, "node_id": 6, "annotations": 7,
        "service_annotations": 8, "status": 9, "desired_state": 10, "networks": 11,
        "endpoint": 12, "log_driver": 13}
    assert _numbers(pb.TaskSpec) == {"attachment": 8, "container": 1, "generic": 10,
                                     "resources": 2, "log_driver": 6, "networks": 7}
    assert _numbers(pb.ContainerSpec) == {
        "image": 1, "labels": 2, "command": 3, "args": 4, "env": 5, "dir": 6, "user": 7,
        "mounts": 8, "stop_grace_period": 9, "groups": 11, "secrets": 12, "tty": 13,
        "hostname": 14, "dns_config": 15, "healthcheck": 16, "hosts": 17,
        "open_stdin": 18, "read_only": 19, "stop_signal": 20, "configs": 21, "init": 23,
        "pidsLimit": 25, "sysctls": 26, "capability_add": 27, "capability_drop": 28,
        "ulimits": 29, "oom_score_adj": 30, "privileges": 22}
    assert _numbers(pb.Privileges) == {"selinux_context": 2, "seccomp": 3, "apparmor": 4,
                                       "no_new_privileges": 5}
    assert _numbers(pb.TaskStatus) == {"timestamp": 1, "state": 2, "message": 3, "err": 4,
                                       "container": 5, "port_status": 6}
    assert _numbers(pb.AssignmentsMessage) == {"type": 1, "applies_to": 2,
                                               "results_in": 3, "changes": 4}
    assert _numbers(pb.Assignment) == {"task": 1, "secret": 2, "config": 3}
    assert _numbers(pb.FileTarget) == {"name": 1, "uid": 2, "gid": 3, "mode": 4}
    assert pb.RUNNING == 512 and pb.REJECTED == 768 and pb.ORPHANED == 832


def test_outside_a_swarm_nothing_of_grpc_is_loaded():
    code = ("import sys, asyncio; from pydockerd.composition import compose, routes; "
            "from pydockerd.swarm.node import SwarmNode; import pydockerd.daemon; "
            "n = SwarmNode('/nonexistent-pydockerd', []); asyncio.run(n.start()); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('grpc', 'h2', 'google', 'cryptography') or 'swarm.agent' in m or "
            "'swarmkit_pb2' in m))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"PYTHONPATH": str(PROTO_DIR.parents[2])})
    assert out.stdout.strip() == "[]"
