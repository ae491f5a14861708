"""HostConfig.SecurityOpt (`--security-opt`), parsed with moby's error messages."""
from __future__ import annotations

from dataclasses import dataclass

from pydockerd.errors import InvalidParameter


@dataclass
class SecurityOptions:
    no_new_privileges: bool | None = None
    seccomp: str | None = None  # profile content, "unconfined", "builtin"
    apparmor: str = ""
    writable_cgroups: bool | None = None


def parse_security_opts(opts: list[str]) -> SecurityOptions:
    """Docker's HostConfig.SecurityOpt, with moby's error messages."""
    out = SecurityOptions()
    for opt in opts:
        if opt == "no-new-privileges":
            out.no_new_privileges = True
            continue
        if opt == "writable-cgroups":
            out.writable_cgroups = True
            continue
        if opt == "disable":
            continue  # SELinux label option; no SELinux here
        if "=" in opt:
            key, _, value = opt.partition("=")
        elif ":" in opt:
            key, _, value = opt.partition(":")  # deprecated separator, still accepted
        else:
            raise InvalidParameter(f'invalid --security-opt 1: "{opt}"')
        if key == "label":
            # SELinux labels: accepted and ignored, SELinux is not enabled on these hosts
            # (what moby does when SELinux is disabled).
            continue
        if key == "apparmor":
            # Accepted and ignored: this host has no AppArmor (moby skips the
            # profile when AppArmor is not supported).
            out.apparmor = value
        elif key == "seccomp":
            out.seccomp = value
        elif key in ("no-new-privileges", "writable-cgroups"):
            parsed = _parse_bool(value)
            if parsed is None:
                raise InvalidParameter(f'invalid --security-opt 2: "{opt}"')
            if key == "no-new-privileges":
                out.no_new_privileges = parsed
            else:
                out.writable_cgroups = parsed
        else:
            raise InvalidParameter(f'invalid --security-opt 2: "{opt}"')
    return out


def _parse_bool(value: str) -> bool | None:
    """Go's strconv.ParseBool."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None
