"""What the admin commands keep: each host's message of the day, and who has seen it.

XEP-0133 §4.24: the message of the day goes to users online when it is set and to the
others at their next login, once per message (a new or edited message is sent again).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Protocol

from heron.storage.db import Dialect, Migration, SqlStore


@dataclass(frozen=True, slots=True)
class Motd:
    body: str
    version: int
    """Grows with each set or edit: a user who saw an older version gets the new one."""


class MotdStore(Protocol):
    async def get(self, domain: str) -> Motd | None: ...

    async def put(self, domain: str, body: str) -> Motd:
        """Set or replace the domain's message; its version is newer than any before."""
        ...

    async def delete(self, domain: str) -> bool:
        """Remove it; False when there was none."""
        ...

    async def seen(self, domain: str, username: str) -> int:
        """The version of the message the account last received (0: none)."""
        ...

    async def mark_seen(self, domain: str, usernames: Sequence[str], version: int) -> None: ...

    async def forget(self, domain: str, username: str) -> None:
        """The account was deleted."""
        ...


_SCHEMA: Final = """
        CREATE TABLE adhoc_motd (
            domain TEXT PRIMARY KEY,
            body TEXT NOT NULL,
            version BIGINT NOT NULL
        );
        CREATE TABLE adhoc_motd_seen (
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            version BIGINT NOT NULL,
            PRIMARY KEY (domain, username)
        );
"""


class SqlMotdStore(SqlStore):
    MIGRATIONS: ClassVar[Mapping[Dialect, Sequence[Migration]]] = {
        "sqlite": (Migration("adhoc", 1, _SCHEMA),),
        "postgresql": (Migration("adhoc", 1, _SCHEMA),),
    }

    async def get(self, domain: str) -> Motd | None:
        row = await self.db.fetchrow(
            "SELECT body, version FROM adhoc_motd WHERE domain = ?", domain
        )
        return None if row is None else Motd(str(row[0]), int(row[1]))

    async def put(self, domain: str, body: str) -> Motd:
        async with self.db.transaction() as tx:
            old = await tx.fetchval("SELECT version FROM adhoc_motd WHERE domain = ?", domain)
            # Milliseconds, and always past the previous one even if the clock stepped back.
            version = max(int(time.time() * 1000), int(old or 0) + 1)
            await tx.execute(
                "INSERT INTO adhoc_motd (domain, body, version) VALUES (?, ?, ?) "
                "ON CONFLICT (domain) DO UPDATE SET body = excluded.body, "
                "version = excluded.version",
                domain,
                body,
                version,
            )
        return Motd(body, version)

    async def delete(self, domain: str) -> bool:
        return await self.db.execute("DELETE FROM adhoc_motd WHERE domain = ?", domain) > 0

    async def seen(self, domain: str, username: str) -> int:
        found = await self.db.fetchval(
            "SELECT version FROM adhoc_motd_seen WHERE domain = ? AND username = ?",
            domain,
            username,
        )
        return int(found or 0)

    async def mark_seen(self, domain: str, usernames: Sequence[str], version: int) -> None:
        if not usernames:
            return
        await self.db.executemany(
            "INSERT INTO adhoc_motd_seen (domain, username, version) VALUES (?, ?, ?) "
            "ON CONFLICT (domain, username) DO UPDATE SET version = excluded.version",
            [(domain, username, version) for username in usernames],
        )

    async def forget(self, domain: str, username: str) -> None:
        await self.db.execute(
            "DELETE FROM adhoc_motd_seen WHERE domain = ? AND username = ?", domain, username
        )
