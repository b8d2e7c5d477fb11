"""Invitation tokens for in-band registration (XEP-0445), made by ``heron invite``.

Tokens are stored hashed (SHA-256): a leaked database hands out no invitations. A token
belongs to a host, not to an account, and counts its remaining uses; making a new one
forgets those expired or used up, so the table holds only live invitations.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import ClassVar, Final, Protocol

from heron.storage.db import Dialect, Migration, SqlStore


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class InvitationStore(Protocol):
    async def create(self, domain: str, uses: int, expires: float) -> str:
        """A new token for ``domain``, good for ``uses`` accounts until ``expires`` (Unix
        time)."""
        ...

    async def is_valid(self, token: str, domain: str, now: float) -> bool:
        """Whether the token is one of ``domain``'s, unexpired, with a use left."""
        ...

    async def spend(self, token: str) -> bool:
        """Take one use; False when none was left."""
        ...

    async def give_back(self, token: str) -> None:
        """Return a use taken for an account that was not made after all."""
        ...


_TABLE: Final = """
        CREATE TABLE invitations (
            token_hash TEXT PRIMARY KEY,
            domain TEXT NOT NULL,
            uses_left INTEGER NOT NULL,
            expires {real} NOT NULL
        );
        """
_SQLITE: Final = (Migration("register", 1, _TABLE.format(real="REAL")),)  # as the module made it
_POSTGRESQL: Final = (Migration("register", 1, _TABLE.format(real="DOUBLE PRECISION")),)


class SqlInvitationStore(SqlStore):
    """The ``invitations`` table, on either engine."""

    MIGRATIONS: ClassVar[Mapping[Dialect, Sequence[Migration]]] = {
        "sqlite": _SQLITE,
        "postgresql": _POSTGRESQL,
    }

    async def create(self, domain: str, uses: int, expires: float) -> str:
        if uses < 1:
            raise ValueError("an invitation is good for at least one account")
        token = secrets.token_urlsafe(24)
        async with self.db.transaction() as tx:
            await tx.execute(
                "DELETE FROM invitations WHERE uses_left <= 0 OR expires <= ?", time.time()
            )
            await tx.execute(
                "INSERT INTO invitations (token_hash, domain, uses_left, expires)"
                " VALUES (?, ?, ?, ?)",
                token_hash(token),
                domain,
                uses,
                expires,
            )
        return token

    async def is_valid(self, token: str, domain: str, now: float) -> bool:
        found = await self.db.fetchval(
            "SELECT 1 FROM invitations WHERE token_hash = ? AND domain = ? AND uses_left > 0"
            " AND expires > ?",
            token_hash(token),
            domain,
            now,
        )
        return found is not None

    async def spend(self, token: str) -> bool:
        changed = await self.db.execute(
            "UPDATE invitations SET uses_left = uses_left - 1"
            " WHERE token_hash = ? AND uses_left > 0",
            token_hash(token),
        )
        return changed == 1

    async def give_back(self, token: str) -> None:
        await self.db.execute(
            "UPDATE invitations SET uses_left = uses_left + 1 WHERE token_hash = ?",
            token_hash(token),
        )
