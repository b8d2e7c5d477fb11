"""Account storage: users and their SCRAM keys. Passwords are never stored, only `ScramKeys`.

`AccountStore` is the interface; `MemoryAccountStore` (tests, ephemeral servers) and
`SqlAccountStore` (either engine) implement it. Usernames and domains arrive already
normalised (PRECIS); the store compares them byte for byte.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar, Final, Protocol

from heron.credentials import ScramKeys
from heron.storage.db import Dialect, Migration, SqlStore, ddl


class UserExists(Exception):
    """`create` was asked for an account that already exists."""


class UserNotFound(Exception):
    """The account does not exist."""


class AccountStore(Protocol):
    async def create(self, username: str, domain: str, keys: Sequence[ScramKeys]) -> None:
        """Create the account with its keys; raise `UserExists` if it is taken."""
        ...

    async def get_keys(self, username: str, domain: str) -> dict[str, ScramKeys] | None:
        """The account's keys by hash name (`SHA-256` …), or None if there is no such user."""
        ...

    async def set_keys(self, username: str, domain: str, keys: Sequence[ScramKeys]) -> None:
        """Replace all of the account's keys at once; raise `UserNotFound`."""
        ...

    async def delete(self, username: str, domain: str) -> None:
        """Remove the account and its keys; raise `UserNotFound`."""
        ...

    async def exists(self, username: str, domain: str) -> bool: ...

    async def list_users(self, domain: str | None = None) -> list[tuple[str, str]]:
        """Sorted (username, domain) pairs, for one domain or all."""
        ...


def _by_hash(keys: Sequence[ScramKeys]) -> dict[str, ScramKeys]:
    result: dict[str, ScramKeys] = {}
    for key in keys:
        if key.hash_name in result:
            raise ValueError(f"two sets of SCRAM keys for {key.hash_name}")
        result[key.hash_name] = key
    return result


class MemoryAccountStore:
    """Accounts in a dict; lost when the process ends."""

    def __init__(self) -> None:
        self._users: dict[tuple[str, str], dict[str, ScramKeys]] = {}
        self._lock = asyncio.Lock()

    async def create(self, username: str, domain: str, keys: Sequence[ScramKeys]) -> None:
        by_hash = _by_hash(keys)
        async with self._lock:
            if (domain, username) in self._users:
                raise UserExists(f"{username}@{domain}")
            self._users[(domain, username)] = by_hash

    async def get_keys(self, username: str, domain: str) -> dict[str, ScramKeys] | None:
        keys = self._users.get((domain, username))
        return dict(keys) if keys is not None else None

    async def set_keys(self, username: str, domain: str, keys: Sequence[ScramKeys]) -> None:
        by_hash = _by_hash(keys)
        async with self._lock:
            if (domain, username) not in self._users:
                raise UserNotFound(f"{username}@{domain}")
            self._users[(domain, username)] = by_hash

    async def delete(self, username: str, domain: str) -> None:
        async with self._lock:
            if self._users.pop((domain, username), None) is None:
                raise UserNotFound(f"{username}@{domain}")

    async def exists(self, username: str, domain: str) -> bool:
        return (domain, username) in self._users

    async def list_users(self, domain: str | None = None) -> list[tuple[str, str]]:
        return sorted((u, d) for d, u in self._users if domain is None or d == domain)


_TABLES: Final = """
        CREATE TABLE users (
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            created_at {bigint} NOT NULL,
            PRIMARY KEY (domain, username)
        ){rowid};
        CREATE TABLE scram_keys (
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            hash_name TEXT NOT NULL,
            salt {blob} NOT NULL,
            iterations INTEGER NOT NULL,
            stored_key {blob} NOT NULL,
            server_key {blob} NOT NULL,
            PRIMARY KEY (domain, username, hash_name),
            FOREIGN KEY (domain, username) REFERENCES users (domain, username)
                ON DELETE CASCADE
        ){rowid};
        """

_INSERT_KEYS: Final = (
    "INSERT INTO scram_keys "
    "(domain, username, hash_name, salt, iterations, stored_key, server_key) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class SqlAccountStore(SqlStore):
    """Accounts in the server's database, on either engine."""

    MIGRATIONS: ClassVar[Mapping[Dialect, Sequence[Migration]]] = {
        "sqlite": (Migration("accounts", 1, ddl("sqlite", _TABLES)),),
        "postgresql": (Migration("accounts", 1, ddl("postgresql", _TABLES)),),
    }

    async def create(self, username: str, domain: str, keys: Sequence[ScramKeys]) -> None:
        by_hash = _by_hash(keys)
        async with self.db.transaction() as tx:
            created = await tx.execute(
                "INSERT INTO users (domain, username, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                domain,
                username,
                int(time.time()),
            )
            if created == 0:
                raise UserExists(f"{username}@{domain}")
            await tx.executemany(_INSERT_KEYS, _key_rows(username, domain, by_hash.values()))

    async def get_keys(self, username: str, domain: str) -> dict[str, ScramKeys] | None:
        rows = await self.db.fetch(
            "SELECT u.username, k.hash_name, k.salt, k.iterations, k.stored_key, k.server_key "
            "FROM users u LEFT JOIN scram_keys k "
            "ON k.domain = u.domain AND k.username = u.username "
            "WHERE u.domain = ? AND u.username = ?",
            domain,
            username,
        )
        if not rows:
            return None
        return {
            row[1]: ScramKeys(
                hash_name=row[1],
                salt=bytes(row[2]),
                iterations=int(row[3]),
                stored_key=bytes(row[4]),
                server_key=bytes(row[5]),
            )
            for row in rows
            if row[1] is not None
        }

    async def set_keys(self, username: str, domain: str, keys: Sequence[ScramKeys]) -> None:
        by_hash = _by_hash(keys)
        async with self.db.transaction() as tx:
            found = await tx.fetchval(
                "SELECT 1 FROM users WHERE domain = ? AND username = ?", domain, username
            )
            if found is None:
                raise UserNotFound(f"{username}@{domain}")
            await tx.execute(
                "DELETE FROM scram_keys WHERE domain = ? AND username = ?", domain, username
            )
            await tx.executemany(_INSERT_KEYS, _key_rows(username, domain, by_hash.values()))

    async def delete(self, username: str, domain: str) -> None:
        removed = await self.db.execute(
            "DELETE FROM users WHERE domain = ? AND username = ?", domain, username
        )
        if removed == 0:
            raise UserNotFound(f"{username}@{domain}")

    async def exists(self, username: str, domain: str) -> bool:
        found = await self.db.fetchval(
            "SELECT 1 FROM users WHERE domain = ? AND username = ?", domain, username
        )
        return found is not None

    async def list_users(self, domain: str | None = None) -> list[tuple[str, str]]:
        if domain is None:
            rows = await self.db.fetch("SELECT username, domain FROM users")
        else:
            rows = await self.db.fetch(
                "SELECT username, domain FROM users WHERE domain = ?", domain
            )
        # Sorted in Python so the order is the same as the memory store's (code points).
        return sorted((str(u), str(d)) for u, d in rows)


def _key_rows(username: str, domain: str, keys: Iterable[ScramKeys]) -> list[tuple[object, ...]]:
    return [
        (domain, username, k.hash_name, k.salt, k.iterations, k.stored_key, k.server_key)
        for k in keys
    ]
