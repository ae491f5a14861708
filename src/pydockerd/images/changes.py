"""`--change` instructions (docker import / commit) applied to an image config.

The Dockerfile instructions Docker accepts there: CMD, ENTRYPOINT, ENV,
EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR. Each change is one
instruction line; the result is a new Docker-cased runtime config
({"Cmd", "Env", ...}). Pure: no I/O.
"""
from __future__ import annotations

import copy
import json
import posixpath
import re
import shlex
from typing import Any, Callable

from ..errors import InvalidParameter

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER",
           "VOLUME", "WORKDIR")
_SHELL = ["/bin/sh", "-c"]


def json_form(rest: str) -> list[str] | None:
    """The JSON (exec) form of an instruction's argument, or None for the shell form."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def _command(rest: str) -> list[str]:
    as_json = json_form(rest)
    return as_json if as_json is not None else [*_SHELL, rest]


def _pairs(instr: str, rest: str) -> list[tuple[str, str]]:
    """KEY=VALUE words (quotes allowed), or the legacy `KEY VALUE` form."""
    try:
        words = shlex.split(rest, posix=True)
    except ValueError as e:
        raise InvalidParameter(f"{instr}: {e}") from None
    if not words:
        raise InvalidParameter(f"{instr} requires at least one argument")
    if "=" not in words[0]:
        key, _, value = rest.strip().partition(" ")
        if not value.strip() and instr == "ENV":
            raise InvalidParameter(f"{instr} names can not be blank")
        return [(key, value.strip())]
    out = []
    for w in words:
        key, eq, value = w.partition("=")
        if not eq or not key:
            raise InvalidParameter(f"Syntax error - can't find = in \"{w}\". "
                                   "Must be of the form: name=value")
        out.append((key, value))
    return out


def _expand(value: str, env: list[str]) -> str:
    vars_ = dict(e.split("=", 1) for e in env if "=" in e)
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: vars_.get(m.group(1) or m.group(2), ""),
                  value)


class _Applier:
    def __init__(self, config: dict[str, Any]) -> None:
        self.c = copy.deepcopy(config)
        self.cmd_set = False

    def CMD(self, rest: str) -> None:
        self.c["Cmd"] = _command(rest)
        self.cmd_set = True

    def ENTRYPOINT(self, rest: str) -> None:
        as_json = json_form(rest)
        if as_json is not None:
            self.c["Entrypoint"] = as_json
        elif rest.strip():
            self.c["Entrypoint"] = [*_SHELL, rest]
        else:
            self.c["Entrypoint"] = None
        if not self.cmd_set:                     # as the builder: ENTRYPOINT resets CMD
            self.c["Cmd"] = None

    def ENV(self, rest: str) -> None:
        env = list(self.c.get("Env") or [])
        for key, value in _pairs("ENV", rest):
            value = _expand(value, env)
            env = [e for e in env if e.split("=", 1)[0] != key] + [f"{key}={value}"]
        self.c["Env"] = env

    def LABEL(self, rest: str) -> None:
        labels = dict(self.c.get("Labels") or {})
        for key, value in _pairs("LABEL", rest):
            labels[key] = value
        self.c["Labels"] = labels

    def EXPOSE(self, rest: str) -> None:
        ports = dict(self.c.get("ExposedPorts") or {})
        for p in rest.split():
            port, _, proto = p.partition("/")
            proto = (proto or "tcp").lower()
            if proto not in ("tcp", "udp", "sctp") or not re.fullmatch(r"\d+(-\d+)?", port):
                raise InvalidParameter(f"invalid containerPort: {p}")
            lo, _, hi = port.partition("-")
            for n in range(int(lo), int(hi or lo) + 1):
                ports[f"{n}/{proto}"] = {}
        self.c["ExposedPorts"] = ports

    def USER(self, rest: str) -> None:
        self.c["User"] = rest.strip()

    def WORKDIR(self, rest: str) -> None:
        path = rest.strip()
        self.c["WorkingDir"] = posixpath.normpath(
            posixpath.join("/", self.c.get("WorkingDir") or "/", path))

    def VOLUME(self, rest: str) -> None:
        vols = dict(self.c.get("Volumes") or {})
        for v in json_form(rest) or rest.split():
            if not v.strip():
                raise InvalidParameter("VOLUME specified can not be an empty string")
            vols[v] = {}
        self.c["Volumes"] = vols

    def STOPSIGNAL(self, rest: str) -> None:
        sig = rest.strip()
        if not re.fullmatch(r"(SIG)?[A-Z0-9+-]+|\d+", sig):
            raise InvalidParameter(f"Invalid signal: {sig}")
        self.c["StopSignal"] = sig

    def ONBUILD(self, rest: str) -> None:
        trigger = rest.strip()
        first = trigger.split(None, 1)[0].upper() if trigger else ""
        if first in ("ONBUILD", "FROM", "MAINTAINER"):
            raise InvalidParameter(f"{first} isn't allowed as an ONBUILD trigger")
        self.c["OnBuild"] = [*(self.c.get("OnBuild") or []), trigger]


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """config with each change applied in order; InvalidParameter on a bad one."""
    applier = _Applier(config)
    for change in changes:
        line = change.strip()
        if not line:
            continue
        instr, _, rest = line.partition(" ")
        if "\t" in instr:
            instr, _, more = instr.partition("\t")
            rest = more + " " + rest
        name = instr.upper()
        if name not in ALLOWED:
            raise InvalidParameter(f"{instr} is not a valid change command")
        method: Callable[[str], None] = getattr(applier, name)
        method(rest.strip())
    return applier.c


def split_changes(raw: list[str]) -> list[str]:
    """The `changes` query values: each may hold several lines (the CLI sends one
    parameter per --change; older clients joined them with newlines)."""
    out: list[str] = []
    for value in raw:
        out.extend(line for line in value.splitlines() if line.strip())
    return out
