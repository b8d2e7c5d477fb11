"""XEP-0077: In-Band Registration: creating an account before login, and, once logged in,
changing its password or deleting it.

Creating accounts is off unless ``allow_registration`` is set; when it is, each IP address
(each /64 for IPv6, which hands whole prefixes to one host) may attempt only
``throttle_per_ip`` registrations per ``throttle_window_s``. Every attempt that passes the
field checks counts, successful or not, so the throttle also limits probing for taken
usernames. Loopback gets no exemption: behind a reverse proxy every client is loopback.

With ``invitation_only`` an account can be created only with an invitation token made by
``heron invite`` (XEP-0445: the client sends the token in a ``<preauth/>`` IQ first, then
registers). A token counts as used only once an account was created with it.

Password changes and account removal are always available to a logged-in user, for their own
account only. After a removal the server must end the user's sessions (XEP-0077 §3.2 asks for
a <not-authorized/> stream error); that is the session layer's business, not this module's.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from heron import ns
from heron.config import option
from heron.core.accounts import UserExists, UserNotFound
from heron.core.module import Module, ModuleContext, Xep, iq_handler, stream_feature
from heron.core.registry import Target
from heron.core.sessions import Session
from heron.jid import JID, InvalidJID
from heron.modules.register.store import InvitationStore, SqlInvitationStore
from heron.ratelimit import ip_key
from heron.stanza import (
    ErrorType,
    Stanza,
    StanzaCondition,
    StanzaError,
    StreamCondition,
    StreamError,
)
from heron.xmlstream.element import Element

INSTRUCTIONS = "Choose a username and password for use with this server."


@dataclass(frozen=True, slots=True)
class RegisterOptions:
    allow_registration: bool = False
    """Let anyone create an account in-band, before logging in."""
    throttle_per_ip: int = option(3, min=1)
    """Registration attempts allowed per IP address (IPv6: per /64) per window."""
    throttle_window_s: float = option(3600.0, above=0)
    """Length of the throttle's sliding window, in seconds."""
    min_password_length: int = option(8, min=1)
    """Shortest password accepted for a new account or a password change."""
    invitation_only: bool = option(False, needs="allow_registration")
    """With allow_registration: only clients holding a token from `heron invite` register."""


class SlidingWindow:
    """At most ``limit`` events per key within any ``window_s`` seconds; kept in memory.

    Each key keeps at most ``limit`` timestamps, and keys with none left in the window are
    swept once per window, so memory is bounded by the keys active in one window.
    """

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._events: dict[str, deque[float]] = {}
        self._next_sweep = clock() + window_s

    def _expire(self, events: deque[float], now: float) -> None:
        while events and events[0] <= now - self.window_s:
            events.popleft()

    def _sweep(self, now: float) -> None:
        for key in list(self._events):
            events = self._events[key]
            self._expire(events, now)
            if not events:
                del self._events[key]
        self._next_sweep = now + self.window_s

    def hit(self, key: str) -> bool:
        """Record an event for ``key`` if the limit allows it; False when it does not."""
        now = self.clock()
        if now >= self._next_sweep:
            self._sweep(now)
        events = self._events.setdefault(key, deque())
        self._expire(events, now)
        if len(events) >= self.limit:
            return False
        events.append(now)
        return True

    def __len__(self) -> int:
        return len(self._events)


def _field(query: Element, name: str) -> str | None:
    """The text of a registration field, None when absent."""
    child = query.find(name, ns.REGISTER)
    return None if child is None else child.text


def _query(iq: Stanza) -> Element:
    payload = iq.payload
    if payload is None or payload.tag != "query" or payload.ns != ns.REGISTER:
        raise StanzaError(StanzaCondition.BAD_REQUEST)
    return payload


def _close_all(sessions: list[Session], error: StreamError) -> None:
    for session in sessions:
        session.close(error)


class RegisterModule(Module):
    name = "register"
    description = "In-band registration, password change and account removal."
    xeps = (
        Xep(77, "2.4", "partial", "no data forms"),
        Xep(445, "0.2.0", "complete", "invitation tokens from `heron invite`", ejabberd="no"),
    )
    disco_features = (ns.REGISTER,)
    stores = (SqlInvitationStore,)

    def __init__(self, ctx: ModuleContext) -> None:
        super().__init__(ctx)
        self.options = ctx.settings(RegisterOptions)
        self.throttle = SlidingWindow(self.options.throttle_per_ip, self.options.throttle_window_s)
        self.invitations: InvitationStore = ctx.store(SqlInvitationStore)

    async def start(self) -> None:
        if self.options.allow_registration:
            self.ctx.add_preauth_iq("get", ns.REGISTER, self.on_preauth_get)
            self.ctx.add_preauth_iq("set", ns.REGISTER, self.on_preauth_set)
            self.ctx.add_preauth_iq("set", ns.PARS, self.on_preauth_token)

    @stream_feature("preauth")
    def registration_feature(self) -> Element | None:
        """XEP-0077 §8: registration announced in the pre-auth stream features."""
        if not self.options.allow_registration:
            return None
        return Element("register", ns.REGISTER_FEATURE)

    @stream_feature("preauth")
    def token_feature(self) -> Element | None:
        """XEP-0445 §3: invitation tokens are accepted."""
        if not self.options.allow_registration:
            return None
        return Element("register", ns.IBR_PREAUTH)

    async def on_preauth_token(
        self, iq: Stanza, peer_ip: str, state: dict[str, object]
    ) -> Element | None:
        """XEP-0445 §4: check the token now; it is spent only when an account is made."""
        payload = iq.payload
        token = payload.attrs.get("token", "") if payload is not None else ""
        if payload is None or payload.tag != "preauth" or not token:
            raise StanzaError(StanzaCondition.BAD_REQUEST, "a preauth token is required")
        if not self.throttle.hit(ip_key(peer_ip)):  # guessing tokens counts as registering
            raise StanzaError(
                StanzaCondition.RESOURCE_CONSTRAINT, "too many attempts", type=ErrorType.WAIT
            )
        if not await self.invitations.is_valid(token, self.ctx.domain, time.time()):
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, "the token is invalid or expired")
        state["invitation"] = token
        return None

    # --- before authentication: creating an account --------------------------------------
    async def on_preauth_get(
        self, iq: Stanza, peer_ip: str, state: dict[str, object]
    ) -> Element | None:
        """XEP-0077 §3.1: the fields to fill in."""
        query = Element("query", ns.REGISTER)
        query.add("instructions", text=INSTRUCTIONS)
        query.add("username")
        query.add("password")
        return query

    async def on_preauth_set(
        self, iq: Stanza, peer_ip: str, state: dict[str, object]
    ) -> Element | None:
        query = _query(iq)
        invitation = state.get("invitation")
        if self.options.invitation_only and not isinstance(invitation, str):
            raise StanzaError(StanzaCondition.NOT_ALLOWED, "registration needs an invitation")
        if query.find("remove", ns.REGISTER) is not None:
            # XEP-0077 §3.2: an IQ without 'from' (not logged in) has no account to remove.
            raise StanzaError(StanzaCondition.UNEXPECTED_REQUEST)
        username = _field(query, "username")
        password = _field(query, "password")
        if not username or not password:
            # XEP-0077 §3.1: missing information, an empty password included.
            raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, "username and password required")
        try:
            jid = JID.make(username, self.ctx.domain)
        except InvalidJID:
            raise StanzaError(StanzaCondition.JID_MALFORMED, "invalid username") from None
        self._check_password(password)
        if not self.throttle.hit(ip_key(peer_ip)):
            self.ctx.log.warning("registration from %s throttled", peer_ip)
            raise StanzaError(
                StanzaCondition.RESOURCE_CONSTRAINT,
                "too many registrations, try again later",
                type=ErrorType.WAIT,
            )
        if isinstance(invitation, str) and not await self.invitations.spend(invitation):
            raise StanzaError(StanzaCondition.NOT_ALLOWED, "the invitation is used up")
        try:
            await self.ctx.accounts.create(jid, password)
        except (UserExists, ValueError) as exc:
            if isinstance(invitation, str):  # nothing was made: the use is given back
                await self.invitations.give_back(invitation)
            if isinstance(exc, UserExists):
                raise StanzaError(StanzaCondition.CONFLICT) from None
            if isinstance(exc, InvalidJID):
                raise StanzaError(StanzaCondition.JID_MALFORMED, "invalid username") from None
            raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, "unusable password") from None
        state.pop("invitation", None)
        self.ctx.log.info("account %s registered from %s", jid, peer_ip)
        return None

    def _check_password(self, password: str) -> None:
        if len(password) < self.options.min_password_length:
            raise StanzaError(
                StanzaCondition.NOT_ACCEPTABLE,
                f"the password needs at least {self.options.min_password_length} characters",
            )

    # --- after authentication: the sender's own account -----------------------------------
    @staticmethod
    def _account(iq: Stanza) -> JID:
        if iq.from_ is None or iq.from_.local is None:
            # XEP-0077 §3.2/§3.3: no 'from' means the entity is not registered.
            raise StanzaError(StanzaCondition.UNEXPECTED_REQUEST)
        return iq.from_.bare

    @iq_handler("get", ns.REGISTER, Target.HOST | Target.SELF)
    async def on_get(self, iq: Stanza) -> Element | None:
        """XEP-0077 §3.1: an already registered entity is told so (never its password)."""
        account = self._account(iq)
        query = Element("query", ns.REGISTER)
        query.add("registered")
        query.add("username", text=account.local or "")
        return query

    @iq_handler("set", ns.REGISTER, Target.HOST | Target.SELF)
    async def on_set(self, iq: Stanza) -> Element | None:
        account = self._account(iq)
        query = _query(iq)
        if query.find("remove", ns.REGISTER) is not None:
            return await self._remove(account, query)
        return await self._change_password(account, query)

    async def _remove(self, account: JID, query: Element) -> Element | None:
        """XEP-0077 §3.2: <remove/> must be the only child."""
        if len(list(query.elements())) != 1:
            raise StanzaError(StanzaCondition.BAD_REQUEST, "<remove/> must be alone")
        await self.ctx.accounts.delete(account)
        await self.ctx.registry.forget_account(account)  # modules drop what they kept
        await self.ctx.fast.revoke(account.local or "", account.domain)
        self.ctx.log.info("account %s removed by its owner", account)
        # The account's streams end right after the result is written (XEP-0077 §3.2):
        # call_soon runs once this handler's reply has been queued.
        sessions = self.ctx.sessions.resources(account)
        error = StreamError(StreamCondition.NOT_AUTHORIZED, "account removed")
        asyncio.get_running_loop().call_soon(_close_all, sessions, error)
        return None

    async def _change_password(self, account: JID, query: Element) -> Element | None:
        """XEP-0077 §3.3: an empty password keeps the old one (bad-request)."""
        username = _field(query, "username")
        password = _field(query, "password")
        if not username or not password:
            raise StanzaError(StanzaCondition.BAD_REQUEST, "username and password required")
        try:
            named = JID.make(username, account.domain)
        except InvalidJID:
            named = None
        if named is None or named.local != account.local:
            raise StanzaError(StanzaCondition.NOT_ALLOWED, "you can only change your own password")
        self._check_password(password)
        try:
            await self.ctx.accounts.set_password(account, password)
        except UserNotFound:
            raise StanzaError(StanzaCondition.REGISTRATION_REQUIRED) from None
        except ValueError:
            raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, "unusable password") from None
        # A new password ends every device's FAST token (XEP-0484: revocation).
        await self.ctx.fast.revoke(account.local or "", account.domain)
        self.ctx.log.info("password changed for %s", account)
        return None
