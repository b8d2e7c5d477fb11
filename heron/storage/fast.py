"""FAST tokens (XEP-0484) for the HT-SHA-256-NONE mechanism, stored so a leak opens nothing.

A token is shown to its client once. What is kept is SHA-256 of the client's proof
(HMAC(token, "Initiator")) and the server's answer (HMAC(token, "Responder")), neither of
which lets anyone log in. Per account and client (the SASL2 user-agent id) there are two
slots, as the XEP's implementation notes describe: a newly issued token waits in "new"
until the client uses it, then replaces "current"; using any token revokes older ones.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import ClassVar, Final

from heron.storage.db import Database, Dialect, Migration, SqlStore

MECHANISM: Final = "HT-SHA-256-NONE"
MIGRATIONS: Final = (
    Migration(
        "fast",
        1,
        """
        CREATE TABLE fast_tokens (
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            agent TEXT NOT NULL,
            slot TEXT NOT NULL,
            mechanism TEXT NOT NULL,
            proof_hash BLOB NOT NULL,
            responder BLOB NOT NULL,
            expiry REAL NOT NULL,
            PRIMARY KEY (domain, username, agent, slot)
        );
        """,
    ),
)


POSTGRESQL_MIGRATIONS: Final = (
    Migration(
        "fast",
        1,
        """
        CREATE TABLE fast_tokens (
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            agent TEXT NOT NULL,
            slot TEXT NOT NULL,
            mechanism TEXT NOT NULL,
            proof_hash BYTEA NOT NULL,
            responder BYTEA NOT NULL,
            expiry DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (domain, username, agent, slot)
        );
        """,
    ),
)


def proofs(token: str) -> tuple[bytes, bytes]:
    """The client's and the server's proofs for a token without channel binding."""
    key = token.encode()
    return (
        hmac.new(key, b"Initiator", hashlib.sha256).digest(),
        hmac.new(key, b"Responder", hashlib.sha256).digest(),
    )


class FastTokenStore(SqlStore):
    MIGRATIONS: ClassVar[Mapping[Dialect, Sequence[Migration]]] = {
        "sqlite": MIGRATIONS,
        "postgresql": POSTGRESQL_MIGRATIONS,
    }

    def __init__(self, db: Database, lifetime_s: float = 14 * 86400) -> None:
        super().__init__(db)
        self.lifetime_s = lifetime_s

    async def issue(self, username: str, domain: str, agent: str) -> tuple[str, float]:
        """A new token for this client (in the "new" slot); returns it and its expiry."""
        token = secrets.token_urlsafe(32)
        initiator, responder = proofs(token)
        expiry = time.time() + self.lifetime_s
        await self.db.execute(
            "INSERT INTO fast_tokens (domain, username, agent, slot,"
            " mechanism, proof_hash, responder, expiry)"
            " VALUES (?, ?, ?, 'new', ?, ?, ?, ?)"
            " ON CONFLICT (domain, username, agent, slot) DO UPDATE SET"
            " mechanism = excluded.mechanism, proof_hash = excluded.proof_hash,"
            " responder = excluded.responder, expiry = excluded.expiry",
            domain,
            username,
            agent,
            MECHANISM,
            hashlib.sha256(initiator).digest(),
            responder,
            expiry,
        )
        return token, expiry

    async def verify(
        self, username: str, domain: str, agent: str, mechanism: str, initiator: bytes
    ) -> tuple[bytes, float] | None:
        """The server's answer and the token's expiry when the proof matches a live token."""
        presented = hashlib.sha256(initiator).digest()
        now = time.time()
        async with self.db.transaction() as tx:
            rows = await tx.fetch(
                "SELECT slot, mechanism, proof_hash, responder, expiry FROM fast_tokens"
                " WHERE domain = ? AND username = ? AND agent = ? ORDER BY slot DESC",
                domain,
                username,
                agent,
            )  # "new" before "current"
            for slot, mech, proof_hash, responder, expiry in rows:
                if mech != mechanism or expiry <= now:
                    continue
                if not hmac.compare_digest(bytes(proof_hash), presented):
                    continue
                if slot == "new":  # first use: it becomes current, older ones go
                    await tx.execute(
                        "DELETE FROM fast_tokens WHERE domain = ? AND username = ?"
                        " AND agent = ? AND slot = 'current'",
                        domain,
                        username,
                        agent,
                    )
                    await tx.execute(
                        "UPDATE fast_tokens SET slot = 'current' WHERE domain = ?"
                        " AND username = ? AND agent = ? AND slot = 'new'",
                        domain,
                        username,
                        agent,
                    )
                return bytes(responder), float(expiry)
            return None

    async def revoke(self, username: str, domain: str, agent: str | None = None) -> None:
        """Forget a client's tokens, or all of the account's (password change, removal)."""
        if agent is None:
            await self.db.execute(
                "DELETE FROM fast_tokens WHERE domain = ? AND username = ?", domain, username
            )
        else:
            await self.db.execute(
                "DELETE FROM fast_tokens WHERE domain = ? AND username = ? AND agent = ?",
                domain,
                username,
                agent,
            )
