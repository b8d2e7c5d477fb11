"""Accounts: creating users and checking credentials, over the account store.

Password derivation (PBKDF2) is CPU-heavy, so it runs in an executor, never on the loop.
Unknown users get deterministic fake keys so that SASL cannot tell them apart
(no user enumeration).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence

from heron.credentials import ScramKeys, derive_all, fake_keys, prepare_password
from heron.jid import JID, InvalidJID, normalize_localpart
from heron.storage.accounts import AccountStore, UserExists, UserNotFound
from heron.storage.disabled import DisabledAccounts, MemoryDisabledAccounts

__all__ = ["AccountService", "InvalidJID", "UserExists", "UserNotFound"]


KNOWN_TTL_S = 60.0  # an account seen to exist is believed to for this long
KNOWN_MAX = 100_000


class AccountService:
    def __init__(
        self,
        store: AccountStore,
        secret: bytes,
        iterations: int = 4096,
        disabled: DisabledAccounts | None = None,
    ) -> None:
        self.store = store
        # XEP-0133 §4.3: a disabled account keeps its data but cannot log in.
        self.disabled: DisabledAccounts = disabled or MemoryDisabledAccounts()
        self.secret = secret
        self.iterations = iterations
        # Every message to a bare JID asks whether the account exists; remembering the
        # answer "yes" for a minute spares a database round trip per message. Deletions
        # through this service forget at once; one made by another process is seen within
        # KNOWN_TTL_S.
        self._known: dict[tuple[str, str], float] = {}

    async def _derive(self, password: str) -> Sequence[ScramKeys]:
        prepared = prepare_password(password)  # raises ValueError on an invalid password
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, derive_all, prepared, self.iterations)

    async def create(self, jid: JID, password: str) -> None:
        """Raises UserExists, or ValueError for an unusable password."""
        if jid.local is None:
            raise InvalidJID("an account needs a localpart")
        keys = await self._derive(password)
        await self.store.create(jid.local, jid.domain, keys)

    async def set_password(self, jid: JID, password: str) -> None:
        """Raises UserNotFound, or ValueError for an unusable password."""
        if jid.local is None:
            raise InvalidJID("an account needs a localpart")
        keys = await self._derive(password)
        await self.store.set_keys(jid.local, jid.domain, keys)

    async def upgrade_keys(self, jid: JID, keys: ScramKeys) -> None:
        """Add or replace the keys of one hash (XEP-0480: the client derived them), keeping
        the others. Raises UserNotFound."""
        if jid.local is None:
            raise InvalidJID("an account needs a localpart")
        stored = await self.store.get_keys(jid.local, jid.domain)
        if stored is None:
            raise UserNotFound(f"{jid}")
        stored[keys.hash_name] = keys
        await self.store.set_keys(jid.local, jid.domain, list(stored.values()))

    async def delete(self, jid: JID) -> None:
        if jid.local is None:
            raise InvalidJID("an account needs a localpart")
        self._known.pop((jid.local, jid.domain), None)
        await self.store.delete(jid.local, jid.domain)

    async def disable(self, jid: JID) -> bool:
        """Refuse the account's logins from now on (sessions are the caller's to end);
        False when there is no such account."""
        return jid.local is not None and await self.disabled.disable(jid.local, jid.domain)

    async def enable(self, jid: JID) -> bool:
        """Allow a disabled account to log in again; False when it was not disabled."""
        return jid.local is not None and await self.disabled.enable(jid.local, jid.domain)

    async def is_disabled(self, jid: JID) -> bool:
        return jid.local is not None and await self.disabled.is_disabled(jid.local, jid.domain)

    async def exists(self, jid: JID) -> bool:
        if jid.local is None:
            return False
        key = (jid.local, jid.domain)
        now = time.monotonic()
        if self._known.get(key, 0.0) > now:
            return True
        found = await self.store.exists(jid.local, jid.domain)
        if found:
            if len(self._known) >= KNOWN_MAX:
                self._known.clear()
            self._known[key] = now + KNOWN_TTL_S
        return found

    async def users(self, domain: str | None = None) -> list[JID]:
        return [JID(u, d, None) for u, d in await self.store.list_users(domain)]

    async def keys_for(self, username: str, domain: str, hash_name: str) -> tuple[ScramKeys, bool]:
        """The stored keys for SASL, or fake ones (and False) when there is no such user.

        ``username`` is what the client sent; it is normalised here. A username that is not a
        valid localpart is treated exactly like an unknown user.
        """
        try:
            local = normalize_localpart(username)
        except InvalidJID:
            local = None
        stored = await self.store.get_keys(local, domain) if local is not None else None
        if (
            stored is not None
            and local is not None
            and await self.disabled.is_disabled(local, domain)
        ):
            stored = None  # a disabled account answers like an unknown one: not-authorized
        if stored is not None and hash_name in stored:
            return stored[hash_name], True
        fake_name = local if local is not None else hashlib.sha256(username.encode()).hexdigest()
        return fake_keys(f"{fake_name}@{domain}", hash_name, self.secret, self.iterations), False
