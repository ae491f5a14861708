"""api/wire_*.py: dataclass in → Docker's exact JSON out, including the API-version
differences (no daemon, no root). Key order is compared too: the CLI's `--format
json` and some clients show it."""
from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from pydockerd.api import (wire_distribution, wire_images, wire_networks, wire_system,
                           wire_volumes)
from pydockerd.distribution.service import DistributionInfo, ManifestDescriptor, SearchResult
from pydockerd.images.model import (DeleteRecord, DiskUsage, GraphDriver, HistoryEntry, Image,
                                    ImageUsage)
from pydockerd.network.model import Endpoint, Network, NetworkMember
from pydockerd.system import (IndexInfo, RegistryInfo, SystemDiskUsage, SystemInfo,
                              VersionInfo)
from pydockerd.volumes.model import Volume, VolumeUsage


def same(got: Any, want: Any) -> None:
    """Equal, with dict keys in the same order at every level."""
    assert json.dumps(got) == json.dumps(want)


# --- images -----------------------------------------------------------------------------
CONFIG = {"Env": ["PATH=/bin"], "Cmd": ["sh"], "Labels": {"a": "b"}, "WorkingDir": "",
          "ExposedPorts": {"80/tcp": {}}, "User": "", "StopSignal": "SIGQUIT"}
IMG = Image("sha256:" + "a" * 64,
            {"created": "2023-11-14T22:13:20Z", "architecture": "amd64", "os": "linux",
             "author": "me", "comment": "", "config": CONFIG,
             "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) CMD"]},
             "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "d" * 64]}},
            ["sha256:" + "c" * 64], size=1234, parent="",
            repo_tags=["busybox:latest"], repo_digests=[])
DANGLING = Image("sha256:" + "b" * 64, {"created": "2023-11-14T22:13:20Z", "config": {}},
                 [], size=5, parent="sha256:" + "a" * 64)

OCI_CONFIG = {"User": "", "ExposedPorts": {"80/tcp": {}}, "Env": ["PATH=/bin"], "Cmd": ["sh"],
              "Labels": {"a": "b"}, "StopSignal": "SIGQUIT"}
OCI_CONFIG = {k: v for k, v in OCI_CONFIG.items() if v not in ("", None)}
LEGACY_CONFIG = {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
                 "AttachStdout": False, "AttachStderr": False,
                 "ExposedPorts": {"80/tcp": {}}, "Tty": False, "OpenStdin": False,
                 "StdinOnce": False, "Env": ["PATH=/bin"], "Cmd": ["sh"], "Image": "",
                 "Volumes": None, "WorkingDir": "", "Entrypoint": None, "OnBuild": None,
                 "Labels": {"a": "b"}, "StopSignal": "SIGQUIT"}


@pytest.mark.parametrize("version,want", [((1, 50), OCI_CONFIG), ((1, 49), LEGACY_CONFIG),
                                          ((1, 41), LEGACY_CONFIG)])
def test_config_by_api_version(version: tuple[int, int], want: dict[str, Any]) -> None:
    same(wire_images.config_to_wire(CONFIG, version), want)


@pytest.mark.parametrize("version,container,virtual", [
    ((1, 50), False, False), ((1, 45), False, False), ((1, 44), True, False),
    ((1, 43), True, True), ((1, 41), True, True)])
def test_image_inspect_by_api_version(version: tuple[int, int], container: bool,
                                      virtual: bool) -> None:
    gd = GraphDriver("overlay2", {"MergedDir": "/m", "UpperDir": "/u", "WorkDir": "/w"})
    doc = wire_images.image_to_wire(IMG, gd, version)
    keys = ["Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created"]
    keys += ["Container", "ContainerConfig"] if container else []
    keys += ["DockerVersion", "Author", "Config", "Architecture", "Os", "Size"]
    keys += ["VirtualSize"] if virtual else []
    keys += ["GraphDriver", "RootFS", "Metadata"]
    assert list(doc) == keys
    assert doc["GraphDriver"] == {"Name": "overlay2", "Data": {"MergedDir": "/m",
                                                               "UpperDir": "/u",
                                                               "WorkDir": "/w"}}
    assert doc["RootFS"] == {"Type": "layers", "Layers": ["sha256:" + "d" * 64]}
    assert doc["Metadata"] == {"LastTagTime": "0001-01-01T00:00:00Z"}
    assert doc["Created"] == "2023-11-14T22:13:20Z" and doc["Author"] == "me"
    if container:
        assert doc["Container"] == "" and doc["ContainerConfig"]["Cmd"] == \
            ["/bin/sh", "-c", "#(nop) CMD"]
    assert wire_images.image_to_wire(IMG)["GraphDriver"] == {"Name": "overlay2", "Data": {}}


@pytest.mark.parametrize("version,img,want", [
    ((1, 50), IMG, {"Containers": -1, "Created": 1700000000, "Id": IMG.id, "Labels": {"a": "b"},
                    "ParentId": "", "RepoDigests": [], "RepoTags": ["busybox:latest"],
                    "SharedSize": -1, "Size": 1234}),
    ((1, 43), IMG, {"Containers": -1, "Created": 1700000000, "Id": IMG.id, "Labels": {"a": "b"},
                    "ParentId": "", "RepoDigests": [], "RepoTags": ["busybox:latest"],
                    "SharedSize": -1, "Size": 1234, "VirtualSize": 1234}),
    ((1, 44), DANGLING, {"Containers": -1, "Created": 1700000000, "Id": DANGLING.id,
                         "Labels": None, "ParentId": IMG.id, "RepoDigests": [], "RepoTags": [],
                         "SharedSize": -1, "Size": 5}),
    ((1, 42), DANGLING, {"Containers": -1, "Created": 1700000000, "Id": DANGLING.id,
                         "Labels": None, "ParentId": IMG.id, "RepoDigests": ["<none>@<none>"],
                         "RepoTags": ["<none>:<none>"], "SharedSize": -1, "Size": 5,
                         "VirtualSize": 5}),
])
def test_image_summary(version: tuple[int, int], img: Image, want: dict[str, Any]) -> None:
    same(wire_images.image_summary(img, version), want)


def test_history_df_and_delete_records() -> None:
    h = [HistoryEntry(IMG.id, 1700000000, "/bin/sh -c #(nop) CMD", ["busybox:latest"], 0, ""),
         HistoryEntry("<missing>", 1600000000, "ADD x /", None, 1234, "c")]
    same(wire_images.history_to_wire(h), [
        {"Id": IMG.id, "Created": 1700000000, "CreatedBy": "/bin/sh -c #(nop) CMD",
         "Tags": ["busybox:latest"], "Size": 0, "Comment": ""},
        {"Id": "<missing>", "Created": 1600000000, "CreatedBy": "ADD x /", "Tags": None,
         "Size": 1234, "Comment": "c"}])
    du = wire_images.disk_usage(DiskUsage(1239, [ImageUsage(IMG, 1234, 2)]))
    assert list(du) == ["LayersSize", "Images"] and du["LayersSize"] == 1239
    assert du["Images"][0]["SharedSize"] == 1234 and du["Images"][0]["Containers"] == 2
    recs = [DeleteRecord(untagged="busybox:latest"), DeleteRecord(deleted=IMG.id)]
    same(wire_images.delete_records(recs), [{"Untagged": "busybox:latest"},
                                            {"Deleted": IMG.id}])
    same(wire_images.prune_report(recs, 10),
         {"ImagesDeleted": [{"Untagged": "busybox:latest"}, {"Deleted": IMG.id}],
          "SpaceReclaimed": 10})
    same(wire_images.prune_report([], 0), {"ImagesDeleted": None, "SpaceReclaimed": 0})


# --- networks ----------------------------------------------------------------------------
NET = Network("n" * 64, "front", "bridge", "2024-01-01T00:00:00.000000001Z",
              subnet="10.1.0.0/24", gateway="10.1.0.1", ip_range="10.1.0.128/25",
              options={"com.docker.network.bridge.name": "br0"}, labels={"x": "y"},
              internal=True)
HOST = Network("h" * 64, "host", "host", "2024-01-01T00:00:00Z")


def _net_doc(net: Network, ipam: list[dict[str, str]], containers: dict[str, Any]
             ) -> dict[str, Any]:
    return {"Name": net.name, "Id": net.id, "Created": net.created, "Scope": "local",
            "Driver": net.driver, "EnableIPv4": True, "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": ipam},
            "Internal": net.internal, "Attachable": False, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": containers,
            "Options": net.options, "Labels": net.labels}


def test_network_documents() -> None:
    ep = Endpoint(NET.id, "e" * 64, "c" * 64, "10.1.0.2", 24, "10.1.0.1",
                  "02:42:0a:01:00:02", "veth0")
    ipam = [{"Subnet": "10.1.0.0/24", "IPRange": "10.1.0.128/25", "Gateway": "10.1.0.1"}]
    same(wire_networks.network(NET), _net_doc(NET, ipam, {}))
    aux = replace(NET, aux_addresses={"router": "10.1.0.5", "nas": "10.1.0.9"})
    same(wire_networks.network(aux), _net_doc(aux, [{**ipam[0], "AuxiliaryAddresses": {
        "router": "10.1.0.5", "nas": "10.1.0.9"}}], {}))
    same(wire_networks.network(NET, [NetworkMember(ep, "web")]), _net_doc(NET, ipam, {
        "c" * 64: {"Name": "web", "EndpointID": "e" * 64, "MacAddress": "02:42:0a:01:00:02",
                   "IPv4Address": "10.1.0.2/24", "IPv6Address": ""}}))
    same(wire_networks.network(HOST, []), _net_doc(HOST, [], {}))
    same(wire_networks.created(NET), {"Id": NET.id, "Warning": ""})
    same(wire_networks.prune_report([]), {"NetworksDeleted": None})
    same(wire_networks.prune_report(["front"]), {"NetworksDeleted": ["front"]})


def test_network_store_document_is_not_the_wire_one() -> None:
    assert "bridge_created" in NET.to_doc() and "bridge_created" not in \
        wire_networks.network(NET)


# --- volumes -----------------------------------------------------------------------------
VOL = Volume("data", "local", "/var/lib/pydockerd/volumes/data/_data",
             "2024-01-01T00:00:00Z", labels={"l": "1"}, options=None)


def test_volume_documents() -> None:
    doc = {"CreatedAt": "2024-01-01T00:00:00Z", "Driver": "local", "Labels": {"l": "1"},
           "Mountpoint": "/var/lib/pydockerd/volumes/data/_data", "Name": "data",
           "Options": None, "Scope": "local"}
    same(wire_volumes.volume(VOL), doc)
    same(wire_volumes.volume(VOL, VolumeUsage(4096, 2)),
         {**doc, "UsageData": {"Size": 4096, "RefCount": 2}})
    same(wire_volumes.volume_list([VOL]), {"Volumes": [doc], "Warnings": None})
    same(wire_volumes.volume_list([]), {"Volumes": [], "Warnings": None})
    same(wire_volumes.prune_report(["data"], 7), {"VolumesDeleted": ["data"],
                                                  "SpaceReclaimed": 7})
    assert VOL.to_dict()["mountpoint"] == doc["Mountpoint"]     # the store's own keys


# --- system ------------------------------------------------------------------------------
def test_version_document() -> None:
    v = VersionInfo("28.0.0-pydockerd", "pydockerd", "python3.11.7", "linux", "amd64",
                    "6.1.0", "2026-11-22T00:00:00.000000000+00:00")
    details = {"ApiVersion": "1.50", "MinAPIVersion": "1.24", "GitCommit": "pydockerd",
               "GoVersion": "python3.11.7", "Os": "linux", "Arch": "amd64",
               "KernelVersion": "6.1.0", "BuildTime": "2026-11-22T00:00:00.000000000+00:00",
               "Experimental": "false"}
    same(wire_system.version(v), {
        "Platform": {"Name": "pydockerd"},
        "Components": [{"Name": "Engine", "Version": "28.0.0-pydockerd", "Details": details}],
        "Version": "28.0.0-pydockerd", "ApiVersion": "1.50", "MinAPIVersion": "1.24",
        "GitCommit": "pydockerd", "GoVersion": "python3.11.7", "Os": "linux", "Arch": "amd64",
        "KernelVersion": "6.1.0", "BuildTime": "2026-11-22T00:00:00.000000000+00:00"})


def _info(**kw: Any) -> SystemInfo:
    base: dict[str, Any] = dict(
        id="u-u-i-d", containers=5, running=2, paused=1, images=3, driver="overlay2",
        backing_filesystem="ext4", swap_limit=True, ipv4_forwarding=False, debug=True,
        fds=12, oom_kill_disable=False, tasks=7, system_time="2024-01-01T00:00:00Z",
        cgroup_version="2", kernel_version="6.1.0", operating_system="Debian",
        os_version="12", architecture="x86_64",
        registry=RegistryInfo(["::1/128", "127.0.0.0/8", "10.0.0.0/8"],
                              [IndexInfo("docker.io", ["https://m/"], True, True),
                               IndexInfo("reg:5000", [], False, False)], ["https://m/"]),
        ncpu=2, mem_total=1 << 30, data_root="/var/lib/pydockerd", http_proxy="",
        https_proxy="", no_proxy="", name="host", server_version="28.0.0-pydockerd",
        runtimes={"runc": "/usr/sbin/runc"}, default_runtime="runc", live_restore=False,
        logging_driver="json-file",
        runc_commit="1.1.5", security_options=["name=seccomp,profile=builtin"],
        warnings=["WARNING: IPv4 forwarding is disabled"])
    base.update(kw)
    return SystemInfo(**base)


def test_info_document() -> None:
    doc = wire_system.info(_info())
    assert list(doc)[:8] == ["ID", "Containers", "ContainersRunning", "ContainersPaused",
                             "ContainersStopped", "Images", "Driver", "DriverStatus"]
    assert (doc["Containers"], doc["ContainersRunning"], doc["ContainersPaused"],
            doc["ContainersStopped"]) == (5, 2, 1, 2)
    assert doc["DriverStatus"][0] == ["Backing Filesystem", "ext4"]
    assert doc["NFd"] == 12 and doc["NGoroutines"] == 7 and doc["OSType"] == "linux"
    same(doc["RegistryConfig"], {
        "AllowNondistributableArtifactsCIDRs": None,
        "AllowNondistributableArtifactsHostnames": None,
        "InsecureRegistryCIDRs": ["::1/128", "127.0.0.0/8", "10.0.0.0/8"],
        "IndexConfigs": {
            "docker.io": {"Name": "docker.io", "Mirrors": ["https://m/"], "Secure": True,
                          "Official": True},
            "reg:5000": {"Name": "reg:5000", "Mirrors": [], "Secure": False,
                         "Official": False}},
        "Mirrors": ["https://m/"]})
    assert doc["Runtimes"] == {"runc": {"path": "/usr/sbin/runc"}}
    assert doc["RuncCommit"] == {"ID": "1.1.5"} and doc["Containerd"] is None
    assert list(doc)[-3:] == ["DefaultAddressPools", "FirewallBackend", "Containerd"]
    assert len(doc) == 60
    assert wire_system.info(_info(driver="vfs"))["DriverStatus"] == []


@pytest.mark.parametrize("du,keys", [
    (SystemDiskUsage(), []),
    (SystemDiskUsage(images=DiskUsage(0, [])), ["LayersSize", "Images"]),
    (SystemDiskUsage(containers=[]), ["Containers"]),
    (SystemDiskUsage(volumes=[(VOL, VolumeUsage(1, 0))]), ["Volumes"]),
    (SystemDiskUsage(build_cache=True), ["BuildCache"]),
    (SystemDiskUsage(DiskUsage(9, [ImageUsage(IMG, 0, 1)]), [], {}, [], True),
     ["LayersSize", "Images", "Containers", "Volumes", "BuildCache"]),
])
def test_disk_usage_document(du: SystemDiskUsage, keys: list[str]) -> None:
    doc = wire_system.disk_usage(du)
    assert list(doc) == keys
    if du.volumes:
        assert doc["Volumes"][0]["UsageData"] == {"Size": 1, "RefCount": 0}
    if du.images and du.images.images:
        assert "VirtualSize" not in doc["Images"][0] and doc["Images"][0]["Containers"] == 1
    if du.build_cache:
        assert doc["BuildCache"] == []


# --- registry ----------------------------------------------------------------------------
def test_registry_documents() -> None:
    same(wire_distribution.login("Login Succeeded"),
         {"Status": "Login Succeeded", "IdentityToken": ""})
    info = DistributionInfo(ManifestDescriptor("application/vnd.oci.image.index.v1+json",
                                               "sha256:" + "f" * 64, 527),
                            [{"architecture": "amd64", "os": "linux"},
                             {"architecture": "arm", "os": "linux", "variant": "v7"}])
    same(wire_distribution.distribution_inspect(info), {
        "Descriptor": {"mediaType": "application/vnd.oci.image.index.v1+json",
                       "digest": "sha256:" + "f" * 64, "size": 527},
        "Platforms": [{"architecture": "amd64", "os": "linux"},
                      {"architecture": "arm", "os": "linux", "variant": "v7"}]})
    same(wire_distribution.search_results([SearchResult("reg:5000/bb")]),
         [{"name": "reg:5000/bb", "description": "", "star_count": 0, "is_official": False,
           "is_automated": False}])


@pytest.mark.parametrize("version, virtual", [((1, 43), True), ((1, 44), False)])
def test_disk_usage_images_follow_the_api_version(version: tuple[int, int],
                                                  virtual: bool) -> None:
    du = SystemDiskUsage(images=DiskUsage(1239, [ImageUsage(IMG, 1234, 2)]))
    doc = wire_system.disk_usage(du, version)
    assert ("VirtualSize" in doc["Images"][0]) is virtual
