"""A task → the container that runs it, as dockerd's swarm executor makes it
(moby daemon/cluster/executor/container): the name, the labels, and the
ContainerSpec mapped onto the Engine API's create body (Config + HostConfig),
with the {{.Service/.Node/.Task}} placeholders expanded in env, hostname and
mount paths. What pydockerd cannot run is refused with a clear reason (the task
is then Rejected)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidParameter, NotImplementedErr
from .proto import swarmkit_pb2 as pb
from .templates import TemplateContext

LABEL = "com.docker.swarm"
TASK_ID_LABEL = f"{LABEL}.task.id"
NODE_ID_LABEL = f"{LABEL}.node.id"
PREDEFINED = "com.docker.swarm.predefined"
MOUNT_TYPES = {pb.Mount.BIND: "bind", pb.Mount.VOLUME: "volume", pb.Mount.TMPFS: "tmpfs"}
PROPAGATION = {pb.Mount.BindOptions.RPRIVATE: "rprivate",
               pb.Mount.BindOptions.PRIVATE: "private",
               pb.Mount.BindOptions.RSHARED: "rshared", pb.Mount.BindOptions.SHARED: "shared",
               pb.Mount.BindOptions.RSLAVE: "rslave", pb.Mount.BindOptions.SLAVE: "slave"}
PROTOCOLS = {pb.PortConfig.TCP: "tcp", pb.PortConfig.UDP: "udp", pb.PortConfig.SCTP: "sctp"}


@dataclass(frozen=True)
class NodeInfo:
    id: str
    hostname: str
    os: str = "linux"
    arch: str = ""


@dataclass
class CreateParams:
    name: str
    config: dict[str, Any]
    host_config: dict[str, Any]


def task_name(t: pb.Task) -> str:
    """`<service>.<slot>.<task id>`; a global task (slot 0) has the node ID as slot."""
    if t.annotations.name:
        return t.annotations.name
    slot = str(t.slot) if t.slot else t.node_id
    return f"{t.service_annotations.name}.{slot}.{t.id}"


def template_context(t: pb.Task, node: NodeInfo) -> TemplateContext:
    return TemplateContext(
        service_id=t.service_id, service_name=t.service_annotations.name,
        service_labels=dict(t.service_annotations.labels), node_id=node.id,
        node_hostname=node.hostname, node_os=node.os, node_arch=node.arch, task_id=t.id,
        task_name=task_name(t), task_slot=str(t.slot) if t.slot else t.node_id)


def check_runnable(t: pb.Task) -> pb.ContainerSpec:
    """The task's ContainerSpec; refused for what pydockerd does not run."""
    runtime = t.spec.WhichOneof("runtime")
    if runtime == "attachment":
        raise NotImplementedErr("network attachment tasks are not supported by pydockerd "
                                "(it has no overlay networks)")
    if runtime == "generic":
        raise NotImplementedErr(f"unsupported runtime {t.spec.generic.kind!r} (plugin "
                                "tasks are not supported by pydockerd)")
    if runtime != "container":
        raise NotImplementedErr("the task has no container spec: pydockerd runs container "
                                "tasks only")
    for att in t.networks:
        spec = att.network.spec
        if spec.annotations.labels.get(PREDEFINED) != "true":
            raise NotImplementedErr(
                f"network {spec.annotations.name!r} ({spec.driver_config.name or 'overlay'}) "
                "is not supported by pydockerd: only the predefined host and bridge networks")
    return t.spec.container


def _seconds_ns(d: Any) -> int:
    return int(d.seconds) * 10**9 + int(d.nanos)


def _mount(m: pb.Mount, ctx: TemplateContext) -> dict[str, Any]:
    if m.type not in MOUNT_TYPES:
        raise NotImplementedErr(f"mount type {pb.Mount.Type.Name(m.type).lower()} is not "
                                "supported by pydockerd")
    out: dict[str, Any] = {"Type": MOUNT_TYPES[m.type], "Source": ctx.expand(m.source),
                           "Target": ctx.expand(m.target), "ReadOnly": m.readonly}
    if m.HasField("bind_options"):
        b = m.bind_options
        out["BindOptions"] = {"Propagation": PROPAGATION[b.propagation],
                              "NonRecursive": b.nonrecursive,
                              "CreateMountpoint": b.createmountpoint}
    if m.HasField("volume_options"):
        v = m.volume_options
        vo: dict[str, Any] = {"NoCopy": v.nocopy,
                              "Labels": {k: ctx.expand(x) for k, x in v.labels.items()}}
        if v.subpath:
            vo["Subpath"] = v.subpath
        if v.HasField("driver_config"):
            vo["DriverConfig"] = {"Name": v.driver_config.name, "Options": {
                k: ctx.expand(x) for k, x in v.driver_config.options.items()}}
        out["VolumeOptions"] = vo
    if m.HasField("tmpfs_options"):
        t = m.tmpfs_options
        tmpfs: dict[str, Any] = {"SizeBytes": t.size_bytes, "Mode": t.mode}
        try:
            opts = json.loads(t.options) if t.options else None
        except ValueError:
            opts = None
        if opts:
            tmpfs["Options"] = opts
        out["TmpfsOptions"] = tmpfs
    return out


def _resources(t: pb.Task, spec: pb.ContainerSpec, hc: dict[str, Any]) -> None:
    if spec.pidsLimit > 0:
        hc["PidsLimit"] = spec.pidsLimit
    if spec.ulimits:
        hc["Ulimits"] = [{"Name": u.name, "Soft": u.soft, "Hard": u.hard}
                         for u in spec.ulimits]
    r = t.spec.resources
    if not t.spec.HasField("resources"):
        return
    if r.HasField("memory_swappiness"):
        hc["MemorySwappiness"] = r.memory_swappiness.value
    if not r.HasField("limits"):
        return
    if r.limits.memory_bytes > 0:
        hc["Memory"] = r.limits.memory_bytes
        if r.HasField("swap_bytes"):
            swap = r.swap_bytes.value
            if swap == -1:
                hc["MemorySwap"] = -1
            elif swap >= 0:
                hc["MemorySwap"] = r.limits.memory_bytes + swap
    if r.limits.nano_cpus > 0:
        hc["NanoCpus"] = r.limits.nano_cpus


def security_opts(p: pb.Privileges) -> list[str]:
    """ContainerSpec.privileges as HostConfig.SecurityOpt (dockerd's applyPrivileges)."""
    out: list[str] = []
    if p.HasField("selinux_context"):
        se = p.selinux_context
        if se.disable:
            out.append("label=disable")
        out += [f"label={k}:{v}" for k, v in (("user", se.user), ("role", se.role),
                                              ("level", se.level), ("type", se.type)) if v]
    if p.seccomp.mode == pb.Privileges.SeccompOpts.UNCONFINED:
        out.append("seccomp=unconfined")
    elif p.seccomp.mode == pb.Privileges.SeccompOpts.CUSTOM:
        out.append(f"seccomp={p.seccomp.profile.decode(errors='replace')}")
    if p.apparmor.mode == pb.Privileges.AppArmorOpts.DISABLED:
        out.append("apparmor=unconfined")
    if p.no_new_privileges:
        out.append("no-new-privileges=true")
    return out


def _ports(t: pb.Task, config: dict[str, Any], hc: dict[str, Any]) -> None:
    bindings: dict[str, list[dict[str, str]]] = {}
    for p in t.endpoint.ports:
        if p.publish_mode != pb.PortConfig.HOST or p.target_port > 65535:
            continue
        key = f"{p.target_port}/{PROTOCOLS.get(p.protocol, 'tcp')}"
        bindings[key] = [{"HostIp": "", "HostPort": str(p.published_port)
                          if p.published_port else ""}]
    if bindings:
        hc["PortBindings"] = bindings
        config["ExposedPorts"] = {k: {} for k in bindings}


def container_create(t: pb.Task, node: NodeInfo) -> CreateParams:
    """The create body of the task's container (InvalidParameter/NotImplementedErr
    when it cannot be made: the task is then rejected)."""
    spec = check_runnable(t)
    if not spec.image:
        raise InvalidParameter("the task's container spec has no image")
    ctx = template_context(t, node)
    name = task_name(t)
    labels = dict(spec.labels)
    labels.update(t.annotations.labels)
    labels.update({f"{LABEL}.task": "", TASK_ID_LABEL: t.id, f"{LABEL}.task.name": name,
                   NODE_ID_LABEL: t.node_id, f"{LABEL}.service.id": t.service_id,
                   f"{LABEL}.service.name": t.service_annotations.name})
    config: dict[str, Any] = {
        "Image": spec.image, "Labels": labels, "Env": ctx.expand_env(list(spec.env)),
        "Hostname": ctx.expand(spec.hostname), "WorkingDir": spec.dir, "User": spec.user,
        "Tty": spec.tty, "OpenStdin": spec.open_stdin, "AttachStdin": False,
        "StopSignal": spec.stop_signal}
    if spec.command:
        config["Entrypoint"] = list(spec.command)
        config["Cmd"] = list(spec.args)
    elif spec.args:
        config["Cmd"] = list(spec.args)
    if spec.HasField("healthcheck"):
        h = spec.healthcheck
        config["Healthcheck"] = {
            "Test": list(h.test), "Interval": _seconds_ns(h.interval),
            "Timeout": _seconds_ns(h.timeout), "Retries": h.retries,
            "StartPeriod": _seconds_ns(h.start_period),
            "StartInterval": _seconds_ns(h.start_interval)}
    hc: dict[str, Any] = {
        "GroupAdd": list(spec.groups), "ReadonlyRootfs": spec.read_only,
        "Mounts": [_mount(m, ctx) for m in spec.mounts], "Sysctls": dict(spec.sysctls),
        "CapAdd": list(spec.capability_add), "CapDrop": list(spec.capability_drop),
        "OomScoreAdj": spec.oom_score_adj, "RestartPolicy": {"Name": "no"}}
    if spec.HasField("init"):
        hc["Init"] = spec.init.value
    if spec.HasField("privileges"):
        hc["SecurityOpt"] = security_opts(spec.privileges)
    if spec.HasField("dns_config"):
        hc["Dns"] = list(spec.dns_config.nameservers)
        hc["DnsSearch"] = list(spec.dns_config.search)
        hc["DnsOptions"] = list(spec.dns_config.options)
    hosts = [h.split() for h in spec.hosts]
    hc["ExtraHosts"] = [f"{p[1]}:{p[0]}" for p in hosts if len(p) > 1]
    log_driver = t.log_driver if t.HasField("log_driver") else None
    if log_driver is not None and log_driver.name:
        hc["LogConfig"] = {"Type": log_driver.name, "Config": dict(log_driver.options)}
    if t.networks:
        hc["NetworkMode"] = t.networks[0].network.spec.annotations.name
    _resources(t, spec, hc)
    _ports(t, config, hc)
    return CreateParams(name, config, hc)


def stop_grace(spec: pb.ContainerSpec) -> int | None:
    """Seconds to wait before SIGKILL on shutdown (None: the container's own)."""
    if spec.HasField("stop_grace_period"):
        return max(0, int(spec.stop_grace_period.seconds
                          + (1 if spec.stop_grace_period.nanos else 0)))
    return None
