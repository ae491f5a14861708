"""The one iptables/ip6tables call of the network package (through util/cmd.py)."""
from __future__ import annotations

from ..errors import CommandFailed
from ..util.cmd import run

IPTABLES = "iptables"
IP6TABLES = "ip6tables"


async def ipt(table: str, *args: str, check: bool = True, family: int = 4) -> bool:
    """Run `iptables -w -t table args` (`ip6tables` for family 6); with check=False a
    failure returns False."""
    try:
        await run([IPTABLES if family == 4 else IP6TABLES, "-w", "-t", table, *args])
    except CommandFailed:
        if check:
            raise
        return False
    return True
