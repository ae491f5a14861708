"""The worker's task side without daemons: assignment chaining, the task state
machine, ContainerSpec → container create, template expansion."""
from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.wrappers_pb2 import BoolValue, Int64Value

from pydockerd.errors import InvalidParameter, NotImplementedErr
from pydockerd.swarm import taskstate as ts
from pydockerd.swarm.assignments import AssignmentChain, AssignmentGap
from pydockerd.swarm.containerspec import NodeInfo, container_create, stop_grace, task_name
from pydockerd.swarm.proto import swarmkit_pb2 as pb
from pydockerd.swarm.templates import TemplateContext

NODE = NodeInfo("node1", "host1", "linux", "x86_64")


def _task(**spec) -> pb.Task:
    return pb.Task(id="task1", service_id="svc1", slot=2, node_id="node1",
                   service_annotations=pb.Annotations(name="web", labels={"tier": "front"}),
                   spec=pb.TaskSpec(container=pb.ContainerSpec(image="busybox", **spec)))


def _msg(kind, applies_to="", results_in="", tasks=(), removed=(), secrets=()):
    changes = [pb.AssignmentChange(assignment=pb.Assignment(task=t)) for t in tasks]
    changes += [pb.AssignmentChange(assignment=pb.Assignment(task=pb.Task(id=i)),
                                    action=pb.AssignmentChange.REMOVE) for i in removed]
    changes += [pb.AssignmentChange(assignment=pb.Assignment(secret=s)) for s in secrets]
    return pb.AssignmentsMessage(type=kind, applies_to=applies_to, results_in=results_in,
                                 changes=changes)


# ---- assignments ---------------------------------------------------------------------

def test_assignments_chain_complete_then_incremental():
    chain = AssignmentChain()
    full = chain.apply(_msg(pb.AssignmentsMessage.COMPLETE, results_in="v1",
                            tasks=[pb.Task(id="a"), pb.Task(id="b")],
                            secrets=[pb.Secret(id="s", spec=pb.SecretSpec(data=b"x"))]))
    assert full.complete and set(full.tasks) == {"a", "b"}
    assert full.secrets["s"].spec.data == b"x"
    inc = chain.apply(_msg(pb.AssignmentsMessage.INCREMENTAL, "v1", "v2",
                           tasks=[pb.Task(id="c")], removed=["a"]))
    assert not inc.complete and set(inc.tasks) == {"c"} and inc.removed_tasks == {"a"}
    assert chain.last == "v2"


def test_assignments_gap_is_refused():
    chain = AssignmentChain()
    with pytest.raises(AssignmentGap):       # an incremental set before any full set
        chain.apply(_msg(pb.AssignmentsMessage.INCREMENTAL, "", "v1"))
    chain.apply(_msg(pb.AssignmentsMessage.COMPLETE, results_in="v1"))
    with pytest.raises(AssignmentGap):       # a message was missed
        chain.apply(_msg(pb.AssignmentsMessage.INCREMENTAL, "v2", "v3"))
    chain.reset()                            # a reopened stream starts with a full set
    assert chain.apply(_msg(pb.AssignmentsMessage.COMPLETE, results_in="v9")).complete
    chain.apply(_msg(pb.AssignmentsMessage.INCREMENTAL, "v9", "v10"))


# ---- state machine -------------------------------------------------------------------

def test_states_only_move_forward():
    assert ts.may_move(ts.ASSIGNED, ts.ACCEPTED)
    assert ts.may_move(ts.READY, ts.SHUTDOWN)
    assert not ts.may_move(ts.RUNNING, ts.STARTING)
    assert not ts.may_move(ts.RUNNING, ts.RUNNING)
    for final in (ts.COMPLETE, ts.SHUTDOWN, ts.FAILED, ts.REJECTED):
        assert ts.terminal(final)
        assert not ts.may_move(final, ts.REJECTED if final != ts.REJECTED else ts.REMOVE)
    assert not ts.terminal(ts.RUNNING)


def test_which_state_after_an_error_or_an_exit():
    assert ts.error_state(ts.PREPARING) == ts.REJECTED
    assert ts.error_state(ts.READY) == ts.REJECTED
    assert ts.error_state(ts.STARTING) == ts.FAILED
    assert ts.error_state(ts.RUNNING) == ts.FAILED
    assert ts.exit_state(0) == (ts.COMPLETE, "")
    assert ts.exit_state(3) == (ts.FAILED, "task: non-zero exit (3)")
    assert ts.MESSAGES[ts.READY] == "prepared" and ts.MESSAGES[ts.RUNNING] == "started"


# ---- templates -----------------------------------------------------------------------

def test_templates():
    ctx = TemplateContext(service_id="s", service_name="web", service_labels={"a.b": "x"},
                          node_id="n", node_hostname="h", node_os="linux",
                          node_arch="x86_64", task_id="t", task_name="web.1.t",
                          task_slot="1")
    assert ctx.expand("{{.Service.Name}}-{{ .Task.Slot }}@{{.Node.Hostname}}") == "web-1@h"
    assert ctx.expand('{{index .Service.Labels "a.b"}}') == "x"
    assert ctx.expand("{{.Node.Platform.OS}}/{{.Node.Platform.Architecture}}") \
        == "linux/x86_64"
    assert ctx.expand("plain") == "plain"
    assert ctx.expand_env(["A={{.Task.ID}}", "B", "C=={{.Node.ID}}"]) == ["A=t", "B", "C==n"]
    with pytest.raises(InvalidParameter):
        ctx.expand("{{.Secret.Nope}}")


# ---- ContainerSpec → create ----------------------------------------------------------

def test_name_and_labels():
    t = _task(labels={"mine": "1", "com.docker.swarm.task.id": "forged"})
    assert task_name(t) == "web.2.task1"
    t.slot = 0                                   # a global task: the node ID as slot
    assert task_name(t) == "web.node1.task1"
    p = container_create(t, NODE)
    assert p.name == "web.node1.task1"
    assert p.config["Labels"] == {
        "mine": "1", "com.docker.swarm.task": "", "com.docker.swarm.task.id": "task1",
        "com.docker.swarm.task.name": "web.node1.task1", "com.docker.swarm.node.id": "node1",
        "com.docker.swarm.service.id": "svc1", "com.docker.swarm.service.name": "web"}


def test_command_versus_args():
    p = container_create(_task(args=["sh", "-c", "x"]), NODE)
    assert "Entrypoint" not in p.config and p.config["Cmd"] == ["sh", "-c", "x"]
    p = container_create(_task(command=["/bin/app"], args=["--flag"]), NODE)
    assert p.config["Entrypoint"] == ["/bin/app"] and p.config["Cmd"] == ["--flag"]
    p = container_create(_task(), NODE)
    assert "Entrypoint" not in p.config and "Cmd" not in p.config


def test_container_spec_mapping():
    t = _task(
        env=["HOST={{.Node.Hostname}}"], dir="/w", user="nobody", groups=["audio"],
        hostname="{{.Service.Name}}-{{.Task.Slot}}", tty=True, open_stdin=True,
        read_only=True, stop_signal="SIGUSR1", init=BoolValue(value=True),
        stop_grace_period=Duration(seconds=7),
        mounts=[pb.Mount(type=pb.Mount.BIND, source="/srv/{{.Task.Slot}}", target="/d",
                         readonly=True),
                pb.Mount(type=pb.Mount.VOLUME, source="v-{{.Service.Name}}", target="/v",
                         volume_options=pb.Mount.VolumeOptions(nocopy=True)),
                pb.Mount(type=pb.Mount.TMPFS, target="/t",
                         tmpfs_options=pb.Mount.TmpfsOptions(size_bytes=1024, mode=0o1777))],
        healthcheck=pb.HealthConfig(test=["CMD", "true"], interval=Duration(seconds=2),
                                    retries=3),
        hosts=["10.0.0.1 db dbalias", "bad"], sysctls={"net.core.somaxconn": "1024"},
        capability_add=["NET_ADMIN"], capability_drop=["CHOWN"], oom_score_adj=100,
        pidsLimit=50, ulimits=[pb.ContainerSpec.Ulimit(name="nofile", soft=10, hard=20)],
        dns_config=pb.ContainerSpec.DNSConfig(nameservers=["1.1.1.1"], search=["x"],
                                              options=["ndots:2"]))
    t.spec.resources.limits.nano_cpus = 500_000_000
    t.spec.resources.limits.memory_bytes = 64 << 20
    t.spec.resources.swap_bytes.CopyFrom(Int64Value(value=1 << 20))
    t.log_driver.CopyFrom(pb.Driver(name="json-file", options={"max-size": "1m"}))
    t.endpoint.ports.append(pb.PortConfig(protocol=pb.PortConfig.UDP, target_port=53,
                                          published_port=5353,
                                          publish_mode=pb.PortConfig.HOST))
    t.endpoint.ports.append(pb.PortConfig(target_port=80, published_port=8080))  # ingress
    p = container_create(t, NODE)
    c, hc = p.config, p.host_config
    assert c["Env"] == ["HOST=host1"] and c["Hostname"] == "web-2"
    assert (c["WorkingDir"], c["User"], c["Tty"], c["OpenStdin"], c["StopSignal"]) == \
        ("/w", "nobody", True, True, "SIGUSR1")
    assert c["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 2_000_000_000,
                                "Timeout": 0, "Retries": 3, "StartPeriod": 0,
                                "StartInterval": 0}
    assert c["ExposedPorts"] == {"53/udp": {}}
    assert hc["PortBindings"] == {"53/udp": [{"HostIp": "", "HostPort": "5353"}]}
    assert hc["Mounts"] == [
        {"Type": "bind", "Source": "/srv/2", "Target": "/d", "ReadOnly": True},
        {"Type": "volume", "Source": "v-web", "Target": "/v", "ReadOnly": False,
         "VolumeOptions": {"NoCopy": True, "Labels": {}}},
        {"Type": "tmpfs", "Source": "", "Target": "/t", "ReadOnly": False,
         "TmpfsOptions": {"SizeBytes": 1024, "Mode": 0o1777}}]
    assert hc["ExtraHosts"] == ["db:10.0.0.1"]
    assert (hc["GroupAdd"], hc["ReadonlyRootfs"], hc["Init"]) == (["audio"], True, True)
    assert (hc["CapAdd"], hc["CapDrop"], hc["OomScoreAdj"]) == (["NET_ADMIN"], ["CHOWN"], 100)
    assert hc["Sysctls"] == {"net.core.somaxconn": "1024"}
    assert (hc["Dns"], hc["DnsSearch"], hc["DnsOptions"]) == (["1.1.1.1"], ["x"], ["ndots:2"])
    assert hc["PidsLimit"] == 50 and hc["Ulimits"] == [{"Name": "nofile", "Soft": 10,
                                                         "Hard": 20}]
    assert (hc["NanoCpus"], hc["Memory"], hc["MemorySwap"]) == \
        (500_000_000, 64 << 20, (64 << 20) + (1 << 20))
    assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
    assert hc["RestartPolicy"] == {"Name": "no"}      # pydockerd never restarts a task
    assert "NetworkMode" not in hc                    # the default bridge
    assert stop_grace(t.spec.container) == 7 and stop_grace(pb.ContainerSpec()) is None


def test_networks_and_runtimes():
    t = _task()
    t.networks.add().network.spec.annotations.CopyFrom(pb.Annotations(
        name="host", labels={"com.docker.swarm.predefined": "true"}))
    assert container_create(t, NODE).host_config["NetworkMode"] == "host"
    t = _task()
    net = t.networks.add().network.spec
    net.annotations.name = "my-overlay"
    net.driver_config.name = "overlay"
    with pytest.raises(NotImplementedErr, match="my-overlay"):
        container_create(t, NODE)
    t = pb.Task(id="x", spec=pb.TaskSpec(attachment=pb.NetworkAttachmentSpec()))
    with pytest.raises(NotImplementedErr, match="network attachment"):
        container_create(t, NODE)
    t = pb.Task(id="x", spec=pb.TaskSpec(generic=pb.GenericRuntimeSpec(kind="plugin")))
    with pytest.raises(NotImplementedErr, match="plugin"):
        container_create(t, NODE)


def test_privileges_become_security_options():
    p = pb.Privileges(no_new_privileges=True,
                      seccomp=pb.Privileges.SeccompOpts(mode=pb.Privileges.SeccompOpts.UNCONFINED),
                      apparmor=pb.Privileges.AppArmorOpts(
                          mode=pb.Privileges.AppArmorOpts.DISABLED),
                      selinux_context=pb.Privileges.SELinuxContext(disable=True, user="u"))
    hc = container_create(_task(privileges=p), NODE).host_config
    assert hc["SecurityOpt"] == ["label=disable", "label=user:u", "seccomp=unconfined",
                                 "apparmor=unconfined", "no-new-privileges=true"]
    assert "SecurityOpt" not in container_create(_task(), NODE).host_config
