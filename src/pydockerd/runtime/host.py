"""The facts about this host that a container's spec depends on, as ONE value.

`host_facts()` probes them once per process (the daemon calls it at start-up)
and every spec built afterwards uses that value; tests build a HostFacts by hand.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from pydockerd.runtime.caps import host_capabilities
from pydockerd.runtime.rlimits import read_host_rlimits


def cgroup_v2_host() -> bool:
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


@dataclass(frozen=True)
class HostFacts:
    """capabilities: the daemon's bounding set (what a privileged container gets and
    the most --cap-add may ask for); rlimits: the daemon's hard limits by Docker
    ulimit name (a container's are clamped to them); cgroup_v2: unified hierarchy
    (containers get a private cgroup namespace by default)."""

    capabilities: tuple[str, ...]
    rlimits: Mapping[str, int]
    cgroup_v2: bool

    @classmethod
    def probe(cls) -> HostFacts:
        return cls(tuple(host_capabilities()), MappingProxyType(read_host_rlimits()),
                   cgroup_v2_host())


@functools.cache
def host_facts() -> HostFacts:
    """This host's facts, probed on the first call and the same value ever after."""
    return HostFacts.probe()
