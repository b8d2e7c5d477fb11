"""FAST tokens (XEP-0484) for the HT-SHA-256-* mechanisms, stored so a leak opens nothing.

A token is shown to its client once, and only for the mechanism it was requested for. A
token issued with a key (the server's derived secret) is HMAC(key, seed) and only the
random seed is kept: the proofs of the channel-bound mechanisms hash in data of the TLS
session, so the server must be able to rebuild the token, and a copy of the table without
the server's secret cannot. Older tokens (no seed, HT-SHA-256-NONE only) kept SHA-256 of
the client's proof (HMAC(token, "Initiator")) and the server's answer, neither of which
lets anyone log in either. Per account and client (the SASL2 user-agent id) there are two
slots, as the XEP's implementation notes describe: a newly issued token waits in "new"
until the client uses it, then replaces "current"; using any token revokes older ones.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import ClassVar, Final

from heron.storage.db import Database, Dialect, Migration, SqlStore, ddl

MECHANISM: Final = "HT-SHA-256-NONE"
_TOKENS: Final = """
        CREATE TABLE fast_tokens (
            domain TEXT NOT NULL,
            username TEXT NOT NULL,
            agent TEXT NOT NULL,
            slot TEXT NOT NULL,
            mechanism TEXT NOT NULL,
            proof_hash {blob} NOT NULL,
            responder {blob} NOT NULL,
            expiry {real} NOT NULL,
            PRIMARY KEY (domain, username, agent, slot)
        );
        """


def _migrations(dialect: Dialect) -> tuple[Migration, ...]:
    return (
        Migration("fast", 1, ddl(dialect, _TOKENS)),
        Migration("fast", 2, ddl(dialect, "ALTER TABLE fast_tokens ADD COLUMN seed {blob};")),
    )


def proofs(token: str, cb: bytes = b"") -> tuple[bytes, bytes]:
    """The client's and the server's proofs for a token, bound to the channel binding data
    ``cb`` (empty for HT-SHA-256-NONE): HMAC(token, "Initiator" || cb), and "Responder"."""
    key = token.encode()
    return (
        hmac.new(key, b"Initiator" + cb, hashlib.sha256).digest(),
        hmac.new(key, b"Responder" + cb, hashlib.sha256).digest(),
    )


def _token(key: bytes, seed: bytes) -> str:
    digest = hmac.new(key, b"heron fast token\0" + seed, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class FastTokenStore(SqlStore):
    MIGRATIONS: ClassVar[Mapping[Dialect, Sequence[Migration]]] = {
        "sqlite": _migrations("sqlite"),
        "postgresql": _migrations("postgresql"),
    }

    def __init__(self, db: Database, lifetime_s: float = 14 * 86400) -> None:
        super().__init__(db)
        self.lifetime_s = lifetime_s

    async def issue(
        self,
        username: str,
        domain: str,
        agent: str,
        mechanism: str = MECHANISM,
        key: bytes = b"",
    ) -> tuple[str, float]:
        """A new token for this client and mechanism (in the "new" slot), with its expiry.
        With ``key``, only a seed is kept (channel-bound mechanisms need it)."""
        seed: bytes | None = None
        if key:
            seed = secrets.token_bytes(32)
            token = _token(key, seed)
        elif mechanism == MECHANISM:
            token = secrets.token_urlsafe(32)
        else:
            raise ValueError(f"{mechanism} tokens need a key")
        initiator, responder = proofs(token)
        expiry = time.time() + self.lifetime_s
        await self.db.execute(
            "INSERT INTO fast_tokens (domain, username, agent, slot,"
            " mechanism, proof_hash, responder, expiry, seed)"
            " VALUES (?, ?, ?, 'new', ?, ?, ?, ?, ?)"
            " ON CONFLICT (domain, username, agent, slot) DO UPDATE SET"
            " mechanism = excluded.mechanism, proof_hash = excluded.proof_hash,"
            " responder = excluded.responder, expiry = excluded.expiry, seed = excluded.seed",
            domain,
            username,
            agent,
            mechanism,
            hashlib.sha256(initiator).digest() if seed is None else b"",
            responder if seed is None else b"",
            expiry,
            seed,
        )
        return token, expiry

    async def verify(
        self,
        username: str,
        domain: str,
        agent: str,
        mechanism: str,
        initiator: bytes,
        cb: bytes = b"",
        key: bytes = b"",
    ) -> tuple[bytes, float] | None:
        """The server's answer and the token's expiry when the proof (bound to the channel
        binding data ``cb``) matches a live token issued for ``mechanism``."""
        presented = hashlib.sha256(initiator).digest()
        now = time.time()
        async with self.db.transaction() as tx:
            rows = await tx.fetch(
                "SELECT slot, mechanism, proof_hash, responder, expiry, seed FROM fast_tokens"
                " WHERE domain = ? AND username = ? AND agent = ? ORDER BY slot DESC",
                domain,
                username,
                agent,
            )  # "new" before "current"
            for slot, mech, proof_hash, stored_responder, expiry, seed in rows:
                if mech != mechanism or expiry <= now:
                    continue  # XEP-0484 §3.4: a token only for its own mechanism
                if seed is not None and key:
                    expected, responder = proofs(_token(key, bytes(seed)), cb)
                    if not hmac.compare_digest(expected, initiator):
                        continue
                elif seed is not None or cb:
                    continue
                elif hmac.compare_digest(bytes(proof_hash), presented):
                    responder = bytes(stored_responder)
                else:
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
                return responder, float(expiry)
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
