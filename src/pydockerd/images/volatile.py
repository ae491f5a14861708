"""Volatile overlay mounts for rw layers nobody keeps (`docker run --rm`).

Unmounting an overlay syncs its upper filesystem, i.e. the whole filesystem of
the data root with every dirty page any process left on it: on a busy host
that costs tens to hundreds of milliseconds per container. A container removed
when it exits keeps nothing of its rw layer, so its overlay is mounted with
`volatile` (Linux 5.10): no sync at unmount, and fsync inside it returns at
once (the data still reaches the disk as the kernel writes it back).

The kernel marks the workdir of a volatile mount (`<workdir>/work/incompat/volatile`)
and refuses to mount it again while the mark is there: after a host crash the
layer may have lost writes. The mark may be removed when the host did not crash
since, which the boot id recorded beside it at the volatile mount tells (a
daemon restart or a `docker restart` of the container keeps the boot id).
"""
from __future__ import annotations

import errno
import functools
import os
import shutil

from ..errors import CommandFailed, SystemError_
from ..util.fsatomic import write_atomic

BOOT_ID = "/proc/sys/kernel/random/boot_id"
RECORD = "volatile-boot"        # in the container's dir: the boot id of its volatile mount


@functools.cache
def boot_id() -> str:
    try:
        with open(BOOT_ID) as f:
            return f.read().strip()
    except OSError:
        return ""


class Support:
    """Whether the kernel takes the option: learnt from a mount refused with EINVAL
    that succeeds without it (another failure says nothing about the option)."""
    available = True


def option_refused(e: SystemError_) -> bool:
    """Did the overlay mount fail as a kernel without `volatile` fails it: EINVAL from
    mount(2), or mount(8)'s words for it?"""
    cause = e.__cause__
    if isinstance(cause, OSError):
        return cause.errno == errno.EINVAL
    if isinstance(e, CommandFailed):
        return any(words in e.stderr for words in (
            "bad option", "Unknown parameter", "Invalid argument"))
    return False


def _mark(workdir: str) -> str:
    return os.path.join(workdir, "work", "incompat", "volatile")


def prepare(container_dir: str, workdir: str, volatile: bool) -> bool:
    """Before a mount of the container's overlay: remove the mark an earlier volatile
    mount left (same boot only); record the boot id when this mount is volatile.
    Returns whether to add the option."""
    mark = _mark(workdir)
    if os.path.isdir(mark):
        try:
            with open(os.path.join(container_dir, RECORD)) as f:
                recorded = f.read().strip()
        except OSError:
            recorded = ""
        if not recorded or recorded != boot_id():
            raise SystemError_("the rw layer of this container was mounted volatile "
                               "(docker run --rm) before the host restarted and may have "
                               "lost writes: remove the container")
        shutil.rmtree(mark)
    if not (volatile and Support.available and boot_id()):
        return False
    write_atomic(os.path.join(container_dir, RECORD), boot_id(), fsync=False)
    return True


__all__ = ["Support", "boot_id", "option_refused", "prepare"]
