"""The one iptables call of the network package (through util/cmd.py)."""
from __future__ import annotations

from ..errors import CommandFailed
from ..util.cmd import run

IPTABLES = "iptables"


async def ipt(table: str, *args: str, check: bool = True) -> bool:
    """Run `iptables -w -t table args`; with check=False a failure returns False."""
    try:
        await run([IPTABLES, "-w", "-t", table, *args])
    except CommandFailed:
        if check:
            raise
        return False
    return True
