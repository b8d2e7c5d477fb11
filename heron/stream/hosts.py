"""What the server provides to each stream engine, as ``Protocol``s the core implements.

The engines are sans-IO and import nothing from ``heron.core``: everything they ask of the
server (is this domain ours, the SCRAM keys of an account, route this stanza) goes through
one of these. ``heron.core.server.Server`` implements all three.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from heron.credentials import ScramKeys
from heron.stanza import Stanza
from heron.xmlstream import Element, Limits

if TYPE_CHECKING:
    from heron.stream.c2s import C2SStream
    from heron.stream.component import ComponentStream
    from heron.stream.s2s import S2SIncoming


class C2SHost(Protocol):
    """What the server provides to client streams."""

    limits: Limits
    pre_auth_limits: Limits
    require_tls: bool
    out_queue_bytes: int

    def is_local_host(self, domain: str) -> bool: ...

    def tls_available(self, domain: str) -> bool: ...

    async def keys_for(
        self, username: str, domain: str, hash_name: str
    ) -> tuple[ScramKeys, bool]: ...

    async def verify_plain(self, password: str, keys: ScramKeys) -> bool: ...

    async def auth_attempt(self, peer: str, username: str, domain: str) -> bool:
        """Before a login is judged: waits out any throttle; False if the peer is blocked."""
        ...

    def auth_result(self, peer: str, username: str, domain: str, ok: bool) -> None: ...

    async def fast_issue(
        self, username: str, domain: str, agent: str, mechanism: str
    ) -> tuple[str, float]:
        """A FAST token (XEP-0484) for this client and HT mechanism: the token and its
        expiry (Unix time)."""
        ...

    async def fast_invalidate(self, username: str, domain: str, agent: str) -> None:
        """Forget this client's FAST tokens (XEP-0484 §3.6, the client logs out)."""

    async def fast_verify(
        self, username: str, domain: str, agent: str, mechanism: str, proof: bytes, cb: bytes
    ) -> tuple[bytes, float] | None:
        """The server's proof and the token's expiry, or None when the token is no good
        (``cb``: the channel binding data the mechanism hashes in)."""
        ...

    @property
    def scram_iterations(self) -> int:
        """For the keys a client derives in an upgrade task (XEP-0480)."""
        ...

    async def scram_upgrade(self, username: str, domain: str, keys: ScramKeys) -> None:
        """Store (add or replace) the account's keys for ``keys.hash_name``."""

    def stream_features(self, domain: str, authenticated: bool) -> list[Element]: ...

    async def preauth_iq(
        self, domain: str, stanza: Stanza, peer: str, state: dict[str, object]
    ) -> Element | None:
        """Answer an IQ before login (registration) or raise StanzaError."""
        ...

    def bind(self, session: C2SStream) -> None:
        """Register the bound session (replacing any with the same full JID)."""

    async def stanza(self, session: C2SStream, stanza: Stanza) -> None:
        """A stanza from the bound client, addresses parsed and ``from`` stamped."""

    async def nonza(self, session: C2SStream, element: Element) -> bool:
        """A top-level element that is not a stanza, from a bound client; True if handled."""
        ...

    sm_resume_timeout_s: float

    def sm_enabled(self, session: C2SStream) -> None:
        """A session asked to be resumable (XEP-0198): remember it by its id."""

    def sm_find(self, session: C2SStream, previd: str) -> C2SStream | None:
        """The resumable session ``previd`` of the same account, live or hibernating."""
        ...

    def sm_takeover(self, old: C2SStream, new: C2SStream) -> None:
        """``new`` resumed ``old``: it replaces it everywhere; the old link is dropped."""

    async def ended(self, session: C2SStream) -> None:
        """The stream ended (after binding): unregister and clean up."""


class S2SHost(Protocol):
    """What the server provides to server streams."""

    limits: Limits

    def serves_domain(self, domain: str) -> bool:
        """A domain of ours: a user host or a service on it (conference.example.org)."""
        ...

    def dialback_allowed(self, domain: str) -> bool:
        """Whether a peer may prove ``domain`` by dialback (policy per peer)."""
        ...

    def dialback_key(self, receiving: str, originating: str, stream_id: str) -> str: ...

    def peer_certificate_names(self, stream: S2SIncoming) -> bool:
        """Whether TLS gave a verified peer certificate (so EXTERNAL may be offered)."""
        ...

    def certificate_matches(self, stream: S2SIncoming, domain: str) -> bool:
        """Whether the verified peer certificate names ``domain`` (RFC 6125)."""
        ...

    async def verify_dialback(
        self, receiving: str, originating: str, stream_id: str, key: str
    ) -> bool:
        """Ask ``originating``'s authoritative server whether ``key`` is its key."""
        ...

    async def remote_stanza(self, stanza: Stanza) -> None:
        """A stanza from an authenticated peer, addresses checked, in jabber:client."""

    def offers_bidi(self) -> bool:
        """Whether streams offer and ask for XEP-0288 (we can send to peers at all)."""
        ...

    def adopt_route(self, local: str, remote: str, stream: S2SIncoming) -> None:
        """XEP-0288: ``stream`` (bidirectional, ``remote`` authenticated on it for
        ``local``) may carry our stanzas from ``local`` to ``remote``."""


class ComponentHost(Protocol):
    """What the server provides to component streams."""

    limits: Limits
    pre_auth_limits: Limits
    out_queue_bytes: int

    def component_secret(self, domain: str) -> str | None:
        """The configured secret of ``domain``, None when no component may serve it."""
        ...

    def component_connected(self, stream: ComponentStream) -> None:
        """The handshake succeeded: route the domain here, or raise StreamError(conflict)."""

    async def component_stanza(self, stream: ComponentStream, stanza: Stanza) -> None:
        """A stanza from the component, addresses checked, in jabber:client."""

    def component_ended(self, stream: ComponentStream) -> None:
        """The stream ended: stop routing the domain to it (if it still is)."""
