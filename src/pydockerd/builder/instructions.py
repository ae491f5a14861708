"""One function per Dockerfile instruction (DISPATCH), acting on a Stage."""
from __future__ import annotations

import asyncio
import copy
import posixpath
import re
from typing import Any, Awaitable, Callable

from ..errors import InvalidParameter
from .context import resolve_sources
from .copy import copy_into
from ..images.changes import json_form
from .parser import Instruction, pairs, substitute, words
from .remote import is_url
from .stage import BuildSteps, Stage


def _nop(ins: Instruction, rest: str) -> str:
    return f"/bin/sh -c #(nop) {ins.cmd} {rest}".rstrip()


async def _meta(b: BuildSteps, st: Stage, ins: Instruction, change: Callable[[dict[str, Any]], None],
                text: str | None = None) -> None:
    cfg = copy.deepcopy(st.config)
    change(cfg)
    st.config = cfg
    await b.commit_metadata(st, _nop(ins, text if text is not None else ins.rest))


def _subst(b: BuildSteps, st: Stage, text: str) -> str:
    return substitute(text, st.env(), b.escape)


def _command(st: Stage, ins: Instruction) -> list[str]:
    if ins.json is not None:
        return ins.json
    return st.shell() + [ins.rest]


# --- instructions -----------------------------------------------------------------------
async def RUN(b: BuildSteps, st: Stage, ins: Instruction) -> None:
    if not ins.rest:
        raise InvalidParameter("RUN requires at least one argument")
    await b.run(st, _command(st, ins))


async def CMD(b: BuildSteps, st: Stage, ins: Instruction) -> None:
    cmd = _command(st, ins)
    st.cmd_set = True

    def change(c: dict[str, Any]) -> None:
        c["Cmd"] = cmd
    await _meta(b, st, ins, change, f"[{', '.join(repr(x) for x in cmd)}]".replace("'", '"'))


async def ENTRYPOINT(b: BuildSteps, st: Stage, ins: Instruction) -> None:
    ep = _command(st, ins) if ins.rest else []

    def change(c: dict[str, Any]) -> None:
        c["Entrypoint"] = ep or None
        if not st.cmd_set:
            c["Cmd"] = None
    await _meta(b, st, ins, change)


def _set_env(c: dict[str, Any], key: str, value: str) -> None:
    env = [e for e in c.get("Env") or [] if e.partition("=")[0] != key]
    c["Env"] = env + [f"{key}={value}"]


async def ENV(b: BuildSteps, st: Stage, ins: Instruction) -> None:
    kv = [(k, _subst(b, st, v)) for k, v in pairs("ENV", ins.rest)]

    def change(c: dict[str, Any]) -> None:
        for k, v in kv:
            _set_env(c, k, v)
    await _meta(b, st, ins, change, " ".join(f"{k}={v}" for k, v in kv))


async def ARG(b: BuildSteps, st: Stage, ins: Instruction) -> None:
    for k, v in pairs("ARG", ins.rest):
        b.declare_arg(st.args, k, _subst(b, st, v) if "=" in ins.rest else None)
    await b.commit_metadata(st, _nop(ins, ins.rest))


async def LABEL(b: BuildSteps, st: Stage, ins: Instruction) -> None:
    kv = [(_subst(b, st, k), _subst(b, st, v)) for k, v in pairs("LABEL", ins.rest)]

    def change(c: dict[str, Any]) -> None:
        c["Labels"] = {**(c.get("Labels") or {}), **dict(kv)}
    await _meta(b, st, ins, change)


async def EXPOSE(b: BuildSteps, st: Stage, ins: Instruction) -> None:
    ports: list[str] = []
    for p in words(_subst(b, st, ins.rest)):
        port, _, proto = p.partition("/")
        if not re.fullmatch(r"\d+(-\d+)?", port) or proto not in ("", "tcp", "udp", "sctp"):
            raise InvalidParameter(f"invalid containerPort: {p}")
        first, _, last = port.partition("-")
        for n in range(int(first), int(last or first) + 1):
            ports.append(f"{n}/{proto or 'tcp'}")
    if not ports:
        raise InvalidParameter("EXPOSE requires at least one argument")

    def change(c: dict[str, Any]) -> None:
        c["ExposedPorts"] = {**(c.get("ExposedPorts") or {}), **{p: {} for p in ports}}
    await _meta(b, st, ins, change, " ".join(ports))


async def _set_single(b: BuildSteps, st: Stage, ins: Instruction, key: str) -> None:
    """USER / STOPSIGNAL: one substituted value stored under Config[key]."""
    value = _subst(b, st, ins.rest).strip()
    if not value:
        raise InvalidParameter(f"{ins.cmd} requires exactly one argument")

    def change(c: dict[str, Any]) -> None:
        c[key] = value
    await _meta(b, st, ins, change, value)


async def USER(b: BuildSteps, st: Stage, ins: Instruction) -> None:
    await _set_single(b, st, ins, "User")


async def WORKDIR(b: BuildSteps, st: Stage, ins: Instruction) -> None:
    path = _subst(b, st, ins.rest).strip()
    if not path:
        raise InvalidParameter("WORKDIR requires exactly one argument")
    path = posixpath.normpath(posixpath.join(st.config.get("WorkingDir") or "/", path))

    def change(c: dict[str, Any]) -> None:
        c["WorkingDir"] = path
    await _meta(b, st, ins, change, path)


async def VOLUME(b: BuildSteps, st: Stage, ins: Instruction) -> None:
    vols = [_subst(b, st, v) for v in (ins.json if ins.json is not None else words(ins.rest))]
    if not vols or any(not v.strip() for v in vols):
        raise InvalidParameter("VOLUME specified can not be an empty string")

    def change(c: dict[str, Any]) -> None:
        c["Volumes"] = {**(c.get("Volumes") or {}), **{v: {} for v in vols}}
    await _meta(b, st, ins, change, "[" + " ".join(vols) + "]")


async def SHELL(b: BuildSteps, st: Stage, ins: Instruction) -> None:
    if not ins.json:
        raise InvalidParameter("SHELL requires the arguments to be in JSON form")
    sh = ins.json

    def change(c: dict[str, Any]) -> None:
        c["Shell"] = sh
    await _meta(b, st, ins, change)


async def STOPSIGNAL(b: BuildSteps, st: Stage, ins: Instruction) -> None:
    await _set_single(b, st, ins, "StopSignal")


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1, "us": 1000, "µs": 1000, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
         "h": 3600 * 10**9}


def _duration(name: str, value: str) -> int:
    pos, total = 0, 0.0
    for m in _DURATION.finditer(value):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(value) or not value:
        raise InvalidParameter(f"invalid duration for --{name}: {value!r}")
    return int(total)


async def HEALTHCHECK(b: BuildSteps, st: Stage, ins: Instruction) -> None:
    kind, _, rest = ins.rest.partition(" ")
    hc: dict[str, Any]
    if kind.upper() == "NONE":
        hc = {"Test": ["NONE"]}
    elif kind.upper() == "CMD":
        rest = rest.strip()
        js = json_form(rest)
        hc = {"Test": ["CMD"] + js if js is not None else ["CMD-SHELL", rest]}
        for flag, key in (("interval", "Interval"), ("timeout", "Timeout"),
                          ("start-period", "StartPeriod"), ("start-interval", "StartInterval")):
            if flag in ins.flags:
                hc[key] = _duration(flag, ins.flags[flag])
        if "retries" in ins.flags:
            hc["Retries"] = int(ins.flags["retries"])
    else:
        raise InvalidParameter("Unknown type \"" + kind + "\" in HEALTHCHECK "
                               "(try CMD or NONE)")

    def change(c: dict[str, Any]) -> None:
        c["Healthcheck"] = hc
    await _meta(b, st, ins, change)


async def ONBUILD(b: BuildSteps, st: Stage, ins: Instruction) -> None:
    trigger = ins.rest.strip()
    first = trigger.split(" ", 1)[0].upper()
    if first in ("ONBUILD", "FROM", "MAINTAINER") or not trigger:
        raise InvalidParameter(f"{first} isn't allowed as an ONBUILD trigger")

    def change(c: dict[str, Any]) -> None:
        c["OnBuild"] = list(c.get("OnBuild") or []) + [trigger]
    await _meta(b, st, ins, change)


async def MAINTAINER(b: BuildSteps, st: Stage, ins: Instruction) -> None:
    await b.commit_metadata(st, _nop(ins, ins.rest))


async def _copy(b: BuildSteps, st: Stage, ins: Instruction, is_add: bool) -> None:
    args = [_subst(b, st, a) for a in (ins.json if ins.json is not None else words(ins.rest))]
    if len(args) < 2:
        raise InvalidParameter(f"{ins.cmd} requires at least two arguments, but only "
                               f"{len(args)} provided")
    *srcs, dest = args
    owner = _subst(b, st, ins.flags.get("chown", ""))
    src_from = ins.flags.get("from")
    if is_add and src_from:
        raise InvalidParameter("ADD does not support --from")
    if not is_add and any(is_url(s) for s in srcs):
        raise InvalidParameter("COPY failed: source can't be a URL for COPY")
    workdir = st.config.get("WorkingDir") or "/"
    if src_from:
        await b.copy_from(st, src_from, srcs, dest, workdir, owner, ins)
        return
    # ADD <url>: downloaded every time (the cache key is the content's hash), never
    # extracted, 0600 with the Last-Modified mtime (moby's downloadSource)
    downloaded = [await b.download(s, dest) for s in srcs if is_url(s)]

    hosts: list[str] = []

    async def resolve() -> None:
        root = await b.context.files()

        def sources() -> list[str]:
            out: list[str] = []
            fetched = iter(downloaded)
            for s in srcs:
                out.extend([next(fetched)] if is_url(s) else resolve_sources(root, s))
            return out
        hosts[:] = await asyncio.to_thread(sources)

    # a context seen before: its sources' hash is known, the files are needed only
    # when the step misses the cache (downloads are hashed every time)
    digest = None if downloaded else b.context.known_hash(srcs)
    if digest is None:
        await resolve()
        digest = await asyncio.to_thread(b.content_hash, hosts)
        if not downloaded:
            await b.context.remember(srcs, digest)
        if len(hosts) == 1 and downloaded:
            digest = digest.partition(":")[2]      # dockerd shows a remote file's bare hash

    def write(root: str) -> None:
        copy_into(root, hosts, dest, workdir, owner, is_add, frozenset(downloaded),
                  b.images.ids)
    await b.commit_layer(st, write, _nop(ins, f"{digest} in {dest} "),
                         before=None if hosts else resolve)


async def COPY(b: BuildSteps, st: Stage, ins: Instruction) -> None:
    await _copy(b, st, ins, False)


async def ADD(b: BuildSteps, st: Stage, ins: Instruction) -> None:
    await _copy(b, st, ins, True)


Handler = Callable[[BuildSteps, Stage, Instruction], Awaitable[None]]
DISPATCH: dict[str, Handler] = {
    "RUN": RUN, "CMD": CMD, "ENTRYPOINT": ENTRYPOINT, "ENV": ENV, "ARG": ARG,
    "LABEL": LABEL, "EXPOSE": EXPOSE, "USER": USER, "WORKDIR": WORKDIR, "VOLUME": VOLUME,
    "SHELL": SHELL, "STOPSIGNAL": STOPSIGNAL, "HEALTHCHECK": HEALTHCHECK,
    "ONBUILD": ONBUILD, "MAINTAINER": MAINTAINER, "COPY": COPY, "ADD": ADD,
}
