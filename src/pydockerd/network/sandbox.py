"""Network namespaces kept as bind-mounted files, and the veth pairs that link them.

A sandbox is <exec_root>/netns/<container_id>: `unshare --net=<file>` creates a
new network namespace and bind-mounts it onto the file in our own mount
namespace, so it outlives every process (and pydockerd itself) until released.
"""
from __future__ import annotations

import ctypes
import errno
import logging
import os

from ..errors import CommandFailed
from ..util.cmd import run
from .bridge import IP, delete_link
from ..util.mounts import is_mountpoint

log = logging.getLogger("pydockerd.network")

_MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


async def create_netns(path: str) -> None:
    """Create a network namespace pinned at `path`, with `lo` up."""
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.close(fd)
    try:
        await run(["unshare", f"--net={path}", IP, "link", "set", "dev", "lo", "up"])
    except BaseException:
        remove_netns(path)
        raise


def remove_netns(path: str) -> None:
    """Unmount and delete a pinned namespace file; fine if it is half made or gone."""
    for _ in range(8):      # a file may carry stacked mounts
        if not is_mountpoint(path):
            break
        if _libc.umount2(os.fsencode(path), _MNT_DETACH) != 0:
            err = ctypes.get_errno()
            if err in (errno.EINVAL, errno.ENOENT):
                break
            raise OSError(err, f"umount {path}: {os.strerror(err)}")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


async def nsenter(netns: str, argv: list[str], *, input: bytes | None = None) -> str:
    return await run(["nsenter", f"--net={netns}", *argv], input=input)


async def create_veth(host_name: str, bridge: str, netns: str, mtu: int, mac: str,
                      ifname: str = "eth0") -> None:
    """A veth pair: `host_name` on the bridge, its peer as `ifname` inside `netns`."""
    await run([IP, "link", "add", "name", host_name, "mtu", str(mtu), "type", "veth",
               "peer", "name", ifname, "mtu", str(mtu), "address", mac, "netns", netns])
    try:
        await run([IP, "link", "set", "dev", host_name, "master", bridge, "up"])
    except BaseException:
        await delete_link(host_name)
        raise


async def configure_eth0(netns: str, address: str, gateway: str | None,
                         ifname: str = "eth0", address6: str | None = None,
                         gateway6: str | None = None) -> None:
    """Addresses, link up and (unless the gateway is None) the default routes inside
    the namespace, in one `ip -batch`. The IPv6 address skips DAD (`nodad`, as
    libnetwork), so it is usable at once."""
    batch = f"addr add {address} dev {ifname}\n"
    if address6:
        batch += f"addr add {address6} dev {ifname} nodad\n"
    batch += f"link set dev {ifname} up\n"
    if gateway:
        batch += f"route add default via {gateway} dev {ifname}\n"
    if address6 and gateway6:
        batch += f"route add default via {gateway6} dev {ifname}\n"
    await nsenter(netns, [IP, "-batch", "-"], input=batch.encode())


async def delete_veth(host_name: str) -> None:
    try:
        await delete_link(host_name)
    except CommandFailed as e:
        log.warning("could not delete %s: %s", host_name, e.message)
