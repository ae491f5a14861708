"""A container's volumes: made at create, mounted (and filled) at start, released
at stop, anonymous ones removed with the container (`rm -v`, `--rm`)."""
from __future__ import annotations

import asyncio
import logging
import os

from ..errors import Conflict, NotFound
from ..runtime.users import resolve_in_root
from ..util import cmd
from ..volumes import ANONYMOUS_LABEL
from .create import VolumeRequest
from .deps import Volumes
from .model import Container, VolumeMount

log = logging.getLogger("pydockerd.containers")


async def create_volumes(volumes: Volumes, plan: list[VolumeRequest],
                         made: list[str]) -> list[VolumeMount]:
    """Find or make each requested volume (names of new ones are appended to `made`)."""
    out = []
    for r in plan:
        labels = dict(r.labels)
        if not r.name:
            labels[ANONYMOUS_LABEL] = ""
        vol, new = await volumes.create(r.name or None, r.driver, r.driver_opts,
                                  labels or None)
        if new:
            made.append(vol.name)
        out.append(VolumeMount(name=vol.name, destination=r.destination,
                               source=vol.mountpoint, driver=vol.driver, mode=r.mode,
                               rw=r.rw, copy_data=r.copy_data, anonymous=not r.name))
    return out


async def remove_made(volumes: Volumes, names: list[str]) -> None:
    """Undo create_volumes after a failed container create."""
    for name in names:
        try:
            await volumes.remove(name)
        except (Conflict, NotFound):
            pass


def copy_up(rootfs: str, destination: str, volume_path: str) -> None:
    """dockerd's copy-up: the image's files at the mount path fill an empty volume.

    The path is resolved inside the rootfs (symlinks chased within it); `cp -a`
    keeps owners, modes, links and xattrs and never follows the image's symlinks.
    """
    src = resolve_in_root(rootfs, destination)
    if not os.path.isdir(src) or os.path.islink(src):
        return
    if os.listdir(volume_path) or not os.listdir(src):
        return
    cmd.run_sync(["cp", "-a", "--", src + "/.", volume_path + "/"])


async def mount_volumes(volumes: Volumes, c: Container, rootfs: str) -> None:
    for vm in c.volumes:
        vm.source = await volumes.mount(vm.name, c.id, vm.destination, vm.rw, vm.propagation)
        if vm.copy_data:
            await asyncio.to_thread(copy_up, rootfs, vm.destination, vm.source)


async def unmount_volumes(volumes: Volumes, c: Container) -> None:
    for vm in c.volumes:
        try:
            await volumes.unmount(vm.name, c.id)
        except Exception:  # noqa: BLE001 - teardown must go on
            log.exception("unmounting volume %s of %s", vm.name, c.id[:12])


async def remove_anonymous(volumes: Volumes, c: Container) -> None:
    """`docker rm -v`: the container's anonymous volumes go, named ones stay."""
    for vm in c.volumes:
        if not vm.anonymous:
            continue
        try:
            await volumes.remove(vm.name)
        except (Conflict, NotFound) as e:
            log.info("keeping volume %s: %s", vm.name, e.message)
