"""`docker update`: a typed UpdateConfig applied to a container's stored HostConfig with
moby's rules (daemon/container/container_unix.go UpdateContainer).

The request itself was checked by validate.validate_update (at the API edge); what
is checked here needs the container's current values: the conflicts dockerd answers
409 `Cannot update container <id>: ...`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import Conflict, InvalidParameter
from ..models import UpdateConfig

# the HostConfig resources `docker update` changes (a zero value leaves one as it is)
UPDATABLE = ("BlkioWeight", "CpuShares", "NanoCpus", "CpuPeriod", "CpuQuota", "CpusetCpus",
             "CpusetMems", "Memory", "MemorySwap", "MemoryReservation", "PidsLimit")


@dataclass(frozen=True)
class UpdatePlan:
    host_config: dict[str, Any]      # the new stored HostConfig
    resources_changed: bool          # a running container's cgroup needs `runc update`


def _int(hc: dict[str, Any], key: str) -> int:
    return int(hc.get(key) or 0)


def apply_update(cid: str, hc: dict[str, Any], upd: UpdateConfig) -> UpdatePlan:
    """The HostConfig after `upd`; raises Conflict (dockerd's 409s) or InvalidParameter."""
    def conflict(msg: str) -> Conflict:
        return Conflict(f"Cannot update container {cid}: {msg}")

    nano, period, quota = upd.NanoCpus or 0, upd.CpuPeriod or 0, upd.CpuQuota or 0
    if nano > 0 and _int(hc, "CpuPeriod") > 0:
        raise conflict("Conflicting options: Nano CPUs cannot be updated as CPU Period has "
                       "already been set")
    if nano > 0 and _int(hc, "CpuQuota") > 0:
        raise conflict("Conflicting options: Nano CPUs cannot be updated as CPU Quota has "
                       "already been set")
    if period > 0 and _int(hc, "NanoCpus") > 0:
        raise conflict("Conflicting options: CPU Period cannot be updated as NanoCPUs has "
                       "already been set")
    if quota > 0 and _int(hc, "NanoCpus") > 0:
        raise conflict("Conflicting options: CPU Quota cannot be updated as NanoCPUs has "
                       "already been set")
    out = dict(hc)
    if upd.Memory and not upd.MemorySwap:
        # dockerd stores MemorySwap = 2 * Memory at create when only a memory limit is
        # given; pydockerd keeps 0 there, so that value is worked out (and kept) here
        swap = _int(hc, "MemorySwap") or 2 * _int(hc, "Memory")
        if upd.Memory > swap:
            raise conflict("Memory limit should be smaller than already set memoryswap "
                           "limit, update the memoryswap at the same time")
        out["MemorySwap"] = swap
    changed = False
    for key in UPDATABLE:
        value = getattr(upd, key)
        if value is None or value == 0 or value == "":
            continue
        out[key] = value
        changed = True
    mem, swap = _int(out, "Memory"), _int(out, "MemorySwap")
    if mem and swap > 0 and swap < mem:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, "
                               "see usage")
    rp = upd.RestartPolicy
    if rp is not None and rp.Name:
        if hc.get("AutoRemove") and rp.Name != "no":
            raise conflict("Restart policy cannot be updated because AutoRemove is enabled "
                           "for the container")
        out["RestartPolicy"] = {"Name": rp.Name, "MaximumRetryCount": rp.MaximumRetryCount or 0}
    return UpdatePlan(out, changed)


__all__ = ["UPDATABLE", "UpdatePlan", "apply_update"]
