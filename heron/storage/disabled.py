"""Disabled accounts (XEP-0133 "disable user"): kept with all their data, refused at login.

A row per disabled account; deleting the account removes it (foreign key, cascade).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import ClassVar, Final, Protocol

from heron.storage.db import Dialect, Migration, SqlStore

_TABLE: Final = """
        CREATE TABLE disabled_accounts (
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            disabled_at {int} NOT NULL,
            PRIMARY KEY (domain, username),
            FOREIGN KEY (domain, username) REFERENCES users (domain, username)
                ON DELETE CASCADE
        ){suffix};
"""


class DisabledAccounts(Protocol):
    async def disable(self, username: str, domain: str) -> bool:
        """Mark the account disabled; False if it does not exist."""
        ...

    async def enable(self, username: str, domain: str) -> bool:
        """Lift the mark; False if the account was not disabled."""
        ...

    async def is_disabled(self, username: str, domain: str) -> bool: ...

    async def list_disabled(self, domain: str) -> list[str]:
        """Sorted usernames of the domain's disabled accounts."""
        ...


class MemoryDisabledAccounts:
    """For tests and servers without a database: forgets on exit; every account exists."""

    def __init__(self) -> None:
        self._disabled: set[tuple[str, str]] = set()

    async def disable(self, username: str, domain: str) -> bool:
        self._disabled.add((domain, username))
        return True

    async def enable(self, username: str, domain: str) -> bool:
        if (domain, username) not in self._disabled:
            return False
        self._disabled.discard((domain, username))
        return True

    async def is_disabled(self, username: str, domain: str) -> bool:
        return (domain, username) in self._disabled

    async def list_disabled(self, domain: str) -> list[str]:
        return sorted(u for d, u in self._disabled if d == domain)


class SqlDisabledAccounts(SqlStore):
    MIGRATIONS: ClassVar[Mapping[Dialect, Sequence[Migration]]] = {
        "sqlite": (
            Migration(
                "disabled_accounts", 1, _TABLE.format(int="INTEGER", suffix=" WITHOUT ROWID")
            ),
        ),
        "postgresql": (Migration("disabled_accounts", 1, _TABLE.format(int="BIGINT", suffix="")),),
    }

    async def disable(self, username: str, domain: str) -> bool:
        async with self.db.transaction() as tx:
            found = await tx.fetchval(
                "SELECT 1 FROM users WHERE domain = ? AND username = ?", domain, username
            )
            if found is None:
                return False
            await tx.execute(
                "INSERT INTO disabled_accounts (domain, username, disabled_at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                domain,
                username,
                int(time.time()),
            )
        return True

    async def enable(self, username: str, domain: str) -> bool:
        removed = await self.db.execute(
            "DELETE FROM disabled_accounts WHERE domain = ? AND username = ?", domain, username
        )
        return removed > 0

    async def is_disabled(self, username: str, domain: str) -> bool:
        found = await self.db.fetchval(
            "SELECT 1 FROM disabled_accounts WHERE domain = ? AND username = ?", domain, username
        )
        return found is not None

    async def list_disabled(self, domain: str) -> list[str]:
        rows = await self.db.fetch(
            "SELECT username FROM disabled_accounts WHERE domain = ?", domain
        )
        return sorted(str(row[0]) for row in rows)
