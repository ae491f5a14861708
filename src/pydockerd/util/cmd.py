"""The one wrapper for external tools (runc, conmon, iptables, ip, ...).

Logs the command line at debug level and turns a non-zero exit into
CommandFailed carrying the tool's stderr.
"""
from __future__ import annotations

import asyncio
import logging
import subprocess

from ..errors import CommandFailed

log = logging.getLogger("pydockerd.cmd")


async def run(argv: list[str], *, input: bytes | None = None, check: bool = True,
              env: dict[str, str] | None = None, timeout: float | None = None) -> str:
    """Run argv asynchronously; return stdout as text."""
    log.debug("exec: %s", " ".join(argv))
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = await asyncio.wait_for(proc.communicate(input), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise CommandFailed(argv, -9, f"timed out after {timeout}s") from None
    if check and proc.returncode != 0:
        raise CommandFailed(argv, proc.returncode or 0, err.decode(errors="replace"))
    return out.decode(errors="replace")


def run_sync(argv: list[str], *, input: bytes | None = None, check: bool = True) -> str:
    """Blocking variant for worker threads and start-up code."""
    log.debug("exec: %s", " ".join(argv))
    proc = subprocess.run(argv, input=input, capture_output=True)
    if check and proc.returncode != 0:
        raise CommandFailed(argv, proc.returncode, proc.stderr.decode(errors="replace"))
    return proc.stdout.decode(errors="replace")
