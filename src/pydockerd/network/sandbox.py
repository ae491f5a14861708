"""Network namespaces pinned at files, and the veth pairs that link them.

A sandbox is <exec_root>/netns/<container_id>. A short-lived thread of the daemon
unshares into a new network namespace, brings `lo` up, keeps a descriptor of it and
goes back; the file is a symlink to that descriptor (/proc/<daemon pid>/fd/<n>)
while the network is set up, and once the container's process runs (hand_over) a
symlink to /proc/<container pid>/ns/net, the descriptor closed. So no mount is made
per container: every mount in the daemon's mount namespace makes each `runc`
command slower (runc reads /proc/self/mountinfo several times and its CLONE_NEWNS
copies every mount; see docs/ARCHITECTURE.md, "Start latency and the host's
mounts"). Everything that takes a path (runc's spec, nsenter, `ip ... netns`, the
embedded DNS, `docker inspect`'s SandboxKey) opens the symlink and reaches the
namespace; it lives as long as the container's process, as with dockerd's bind mount
(which dockerd removes when the container stops). Pins that older versions made as
bind mounts are still unmounted by remove_netns.

With --userns-remap the namespace is made inside a new user namespace with the
daemon's mappings, pinned beside it at <exec_root>/userns/<container_id> (both
bind mounts), and the container joins both: a network namespace owned by the
container's user namespace is what lets runc mount sysfs and write the net.*
sysctls there (dockerd gets the same by letting runc create the netns).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import errno
import fcntl
import logging
import os
import socket
import struct
import subprocess
import threading
from typing import Callable

from ..errors import CommandFailed
from ..util.cmd import run
from ..util.idmap import IDENTITY, IdMap
from .bridge import IP, delete_link
from ..util.mounts import is_mountpoint

log = logging.getLogger("pydockerd.network")

_MNT_DETACH = 2
_MS_BIND = 0x1000
_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_libc = ctypes.CDLL(None, use_errno=True)


def userns_of(netns_path: str) -> str:
    """Where the user namespace of a sandbox is pinned (with --userns-remap)."""
    return os.path.join(os.path.dirname(os.path.dirname(netns_path)), "userns",
                        os.path.basename(netns_path))


def _pin_file(path: str) -> None:
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    os.close(fd)


async def create_netns(path: str, ids: IdMap = IDENTITY) -> None:
    """Create a network namespace pinned at `path`, with `lo` up (with a
    remapping, owned by a new user namespace pinned at userns_of(path))."""
    try:
        if ids.remapped:
            _pin_file(path)
            _pin_file(userns_of(path))
            await _create_in_userns(path, userns_of(path), ids)
            await run(["nsenter", f"--net={path}", IP, "link", "set", "dev", "lo", "up"])
        else:
            os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
            fd = await _in_own_thread(_new_netns, path)
            _held[path] = fd
            _link(path, f"/proc/{os.getpid()}/fd/{fd}")
    except BaseException:
        remove_netns(path)
        raise


# descriptors of the namespaces made here whose container process does not run yet
_held: dict[str, int] = {}


def _link(path: str, target: str) -> None:
    """Make `path` a symlink to `target`, replacing what is there in one rename."""
    tmp = f"{path}.new"
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    os.symlink(target, tmp)
    os.replace(tmp, path)


def hand_over(path: str, pid: int) -> None:
    """The container's process `pid` runs in the namespace pinned at `path`: point
    the pin at /proc/<pid>/ns/net and close the daemon's descriptor. Nothing to do
    for a pin that is not held (bind mounts, with --userns-remap). Should `pid` not
    be in that namespace (it never is not), the descriptor stays held until release."""
    fd = _held.get(path)
    if fd is None:
        return
    target = f"/proc/{pid}/ns/net"
    try:
        made, now = os.fstat(fd), os.stat(target)
        if (made.st_dev, made.st_ino) != (now.st_dev, now.st_ino):
            raise OSError(errno.ESRCH, f"process {pid} is in another network namespace")
        _link(path, target)
    except OSError as e:
        log.warning("network namespace %s stays held by the daemon: %s", path, e)
        return
    del _held[path]
    os.close(fd)


def _bind(src: str, dst: str) -> None:
    if _libc.mount(os.fsencode(src), os.fsencode(dst), None, _MS_BIND, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount --bind {src} {dst}: {os.strerror(err)}")


async def _create_in_userns(netns: str, userns: str, ids: IdMap) -> None:
    """A process in a new user + network namespace holds them while the daemon
    writes the user namespace's maps and pins both; then it exits."""
    proc = await asyncio.create_subprocess_exec(
        "unshare", "--user", "--net", "--", "sh", "-c", "echo; read x",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        if not await proc.stdout.readline():
            raise OSError(errno.ESRCH, "unshare --user --net failed")
        for name, gids in (("uid_map", False), ("gid_map", True)):
            with open(f"/proc/{proc.pid}/{name}", "w") as f:
                f.write(ids.proc_map(gids))
        _bind(f"/proc/{proc.pid}/ns/user", userns)
        _bind(f"/proc/{proc.pid}/ns/net", netns)
    finally:
        proc.stdin.close()
        await proc.wait()


async def _in_own_thread(fn: Callable[[str], int], arg: str) -> int:
    """Run fn(arg) in a thread of its own that ends with it (never a pooled worker)."""
    done: concurrent.futures.Future[int] = concurrent.futures.Future()

    def body() -> None:
        try:
            done.set_result(fn(arg))
        except BaseException as e:  # noqa: BLE001 - handed to the waiting coroutine
            done.set_exception(e)
    threading.Thread(target=body, name="netns", daemon=True).start()
    return await asyncio.wrap_future(done)


def _new_netns(path: str) -> int:
    """In a thread of its own (a network namespace is per thread): unshare it into a
    new namespace, open a descriptor of it, bring `lo` up, then go back; returns the
    descriptor. What `unshare --net` and `ip link set lo up` did, without the
    processes. Should the way back fail, the thread ends here all the same, so
    nothing else ever runs in the container's namespace."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    fd = -1
    try:
        if _libc.unshare(_CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"unshare(CLONE_NEWNET) for {path}: {os.strerror(err)}")
        try:
            fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:   # in the new netns
                req = struct.pack("16sH", b"lo", 0)
                flags = struct.unpack("16sH", fcntl.ioctl(s, _SIOCGIFFLAGS, req)[:18])[1]
                fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | _IFF_UP))
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        finally:
            if _libc.setns(home, _CLONE_NEWNET) != 0:
                log.error("netns thread could not return to the daemon's namespace: %s",
                          os.strerror(ctypes.get_errno()))
    finally:
        os.close(home)
    return fd


def remove_netns(path: str) -> None:
    """Delete a pinned network namespace: the symlink (closing the descriptor still
    held), or unmount and delete the file of a bind mount (and the user namespace
    pinned with it); fine if either is half made or gone."""
    fd = _held.pop(path, None)
    if fd is not None:
        os.close(fd)
    _unpin(path)
    _unpin(userns_of(path))


def _unpin(path: str) -> None:
    if os.path.islink(path):
        os.unlink(path)
        return
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


def live_pin(path: str) -> bool:
    """Is the namespace pinned at `path` there, and still its container's? A pin that
    points at /proc/<pid>/ns/net follows the pid: once the container's process is
    gone, another process (on the host) may get that pid, so the pid's cgroup must
    still name the container (the pin's name)."""
    try:
        target = os.readlink(path)
    except OSError:                       # a bind mount (remapped), or nothing
        return os.path.exists(path)
    pid = target.removeprefix("/proc/").removesuffix("/ns/net")
    if not pid.isdigit() or int(pid) == os.getpid():
        return os.path.exists(path)       # held by the daemon itself
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return os.path.basename(path) in f.read()
    except OSError:
        return False


async def nsenter(netns: str, argv: list[str], *, input: bytes | None = None) -> str:
    if not live_pin(netns):
        raise CommandFailed(["nsenter", f"--net={netns}"], 1,
                            "the container's network namespace is gone")
    return await run(["nsenter", f"--net={netns}", *argv], input=input)


async def create_veth(host_name: str, bridge: str, netns: str, mtu: int, mac: str,
                      ifname: str = "eth0") -> None:
    """A veth pair: `host_name` on the bridge, its peer as `ifname` inside `netns`;
    one `ip -batch` (it stops at the first failing line)."""
    batch = (f"link add name {host_name} mtu {mtu} type veth peer name {ifname} mtu {mtu} "
             f'address {mac} netns "{netns}"\n'
             f"link set dev {host_name} master {bridge} up\n")
    try:
        await run([IP, "-batch", "-"], input=batch.encode())
    except BaseException:
        if os.path.exists(f"/sys/class/net/{host_name}"):     # made before the failure
            await delete_link(host_name)
        raise


async def configure_eth0(netns: str, address: str, gateway: str | None,
                         ifname: str = "eth0", address6: str | None = None,
                         gateway6: str | None = None) -> None:
    """Addresses, link up and (unless the gateway is None) the default routes inside
    the namespace, in one `ip -batch`. The IPv6 address skips DAD (`nodad`, as
    libnetwork), so it is usable at once. An interface without an IPv6 address gets
    no link-local one either (`addrgenmode none`, before it goes up): as dockerd
    26.0.2+ (which disables IPv6 on IPv4-only interfaces), and nothing IPv6 is sent
    from it. Otherwise its link-local address's DAD, MLD reports and router
    solicitations are multicast the bridge floods to every other port (each through
    br_netfilter and into every other container's namespace): with 900 containers
    ~20 ms of CPU per start (docs/ARCHITECTURE.md, "Start latency at scale")."""
    batch = f"addr add {address} dev {ifname}\n"
    if address6:
        batch += f"addr add {address6} dev {ifname} nodad\n"
    else:
        batch += f"link set dev {ifname} addrgenmode none\n"
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
