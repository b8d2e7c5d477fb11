"""How many TCP connections are established to given listening ports, read from the kernel's
tables (/proc/net/tcp and tcp6), not from what the servers say about themselves."""

from __future__ import annotations

import asyncio
from pathlib import Path

ESTABLISHED = "01"


def established_to(*ports: int) -> int:
    """Connections whose accepting end listens on one of ``ports`` (each counted once: the
    connecting end has an ephemeral port)."""
    wanted = set(ports)
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            if state == ESTABLISHED and int(local.rsplit(":", 1)[1], 16) in wanted:
                count += 1
    return count


async def settle_to(expected: int, *ports: int, timeout_s: float = 5.0) -> int:
    """The count once it equals ``expected`` (connections being closed take a moment), or
    the last count seen after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    count = established_to(*ports)
    while count != expected and loop.time() < deadline:
        await asyncio.sleep(0.05)  # the kernel's table has no event to wait on
        count = established_to(*ports)
    return count
