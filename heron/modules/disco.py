"""XEP-0030: Service Discovery for the server and for accounts.

The server's disco#info lists the ``server/im`` identity, every identity other modules
declared, and every feature in the host's registry (modules add theirs when loaded), so it is
always in step with what is actually loaded. Nodes of the server are those other modules
serve through ``HostRegistry.disco_nodes`` (XEP-0050's command list); any other node is
item-not-found.

An account's disco#info is answered to its owner and to contacts with a presence
subscription to it (XEP-0030 §8, XEP-0163 §6): identity ``account/registered`` plus those
other modules offer (``pubsub/pep``). Anyone else asking about an account's bare JID gets
service-unavailable, whether the account exists or not, so that strangers cannot probe which
accounts exist.

An account's disco#items come from ``HostRegistry.account_items`` (the pubsub module lists
the PEP nodes the asker may see, XEP-0163 §6.2); it answers an account that does not exist
like one without visible nodes, so the empty answer tells nothing either.
"""

from __future__ import annotations

from dataclasses import dataclass

from heron import ns
from heron.config import option, parses
from heron.core.module import Module, ModuleContext, Xep, iq_handler, stream_feature
from heron.core.registry import Identity, Target
from heron.jid import JID
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.stanza.caps import ver_of
from heron.stanza.forms import add_field, data_form
from heron.xmlstream.element import Element

SERVER_IDENTITY = Identity("server", "im", "Heron")
ACCOUNT_IDENTITY = Identity("account", "registered")


CAPS_NODE = "https://heron.invalid/caps"  # names the software; never fetched
CONTACT_KINDS = ("abuse", "admin", "feedback", "sales", "security", "support")


def _uri_syntax(uri: str) -> str | None:
    if ":" not in uri or any(c.isspace() for c in uri):
        return "is not a URI (mailto:, xmpp:...)"
    return None


@dataclass(frozen=True, slots=True)
class DiscoOptions:
    items: tuple[str, ...] = option((), check=parses(JID.parse, "a valid JID"))
    """JIDs listed in the server's disco#items (for example services run elsewhere)."""
    # XEP-0157: whom to contact about this server, as URIs ("mailto:", "xmpp:", "https:").
    abuse: tuple[str, ...] = option((), check=_uri_syntax)
    admin: tuple[str, ...] = option((), check=_uri_syntax)
    feedback: tuple[str, ...] = option((), check=_uri_syntax)
    sales: tuple[str, ...] = option((), check=_uri_syntax)
    security: tuple[str, ...] = option((), check=_uri_syntax)
    support: tuple[str, ...] = option((), check=_uri_syntax)


@dataclass(frozen=True, slots=True)
class DiscoItem:
    """One ``<item/>`` of a disco#items result (XEP-0030 §4.1)."""

    jid: JID
    name: str = ""
    node: str = ""

    def to_element(self) -> Element:
        item = Element("item", ns.DISCO_ITEMS, {"jid": str(self.jid)})
        if self.name:
            item.attrs["name"] = self.name
        if self.node:
            item.attrs["node"] = self.node
        return item


def identity_element(identity: Identity) -> Element:
    attrs = {"category": identity.category, "type": identity.type}
    if identity.name:
        attrs["name"] = identity.name
    return Element("identity", ns.DISCO_INFO, attrs)


def info_query(identities: list[Identity], features: list[str]) -> Element:
    """A disco#info result: identities first, then features (XEP-0030 §3.1)."""
    query = Element("query", ns.DISCO_INFO)
    for identity in identities:
        query.append(identity_element(identity))
    for feature in features:
        query.add("feature", attrs={"var": feature})
    return query


def _refuse_node(payload: Element | None) -> None:
    """XEP-0030 §7: a node the entity does not know is item-not-found."""
    if payload is not None and payload.get("node") is not None:
        raise StanzaError(StanzaCondition.ITEM_NOT_FOUND)


class DiscoModule(Module):
    name = "disco"
    description = "Service discovery: what the server and its accounts support."
    xeps = (
        Xep(
            30,
            "2.5.0",
            "partial",
            "the server's nodes are those modules serve (commands); account info answered to"
            " its owner and contacts",
        ),
        Xep(157, "1.1.1", "complete", "contact addresses from the disco options"),
        Xep(115, "1.6.0", "complete", "the server's own caps in its stream features (§6.3)"),
    )
    disco_features = (ns.DISCO_INFO, ns.DISCO_ITEMS)

    def __init__(self, ctx: ModuleContext) -> None:
        super().__init__(ctx)
        self.options = ctx.settings(DiscoOptions)
        self.items = [DiscoItem(JID.parse(text)) for text in self.options.items]

    def extra_items(self) -> list[DiscoItem]:
        """Items added at run time: external components, services (the registry's items)."""
        return [DiscoItem(JID.parse(jid), name) for jid, name in self.ctx.registry.items.items()]

    # --- disco#info -------------------------------------------------------------------
    _caps: tuple[tuple[object, ...], str] | None = None

    # --- XEP-0115: the server's own capabilities -------------------------------------
    def caps_ver(self) -> str:
        """The verification string's hash of the server's disco#info, kept until it changes."""
        registry = self.ctx.registry
        key = (tuple(sorted(registry.features)), tuple(registry.identities))
        if self._caps is None or self._caps[0] != key:
            self._caps = (key, ver_of(self._host_info(), "sha-1") or "")
        return self._caps[1]

    @stream_feature("postauth")
    def caps_feature(self) -> Element | None:
        """§6.3: the caps of the server in the stream features after login."""
        ver = self.caps_ver()
        if not ver:
            return None
        return Element("c", ns.CAPS, {"hash": "sha-1", "node": CAPS_NODE, "ver": ver})

    @iq_handler("get", ns.DISCO_INFO, Target.HOST)
    async def on_host_info(self, iq: Stanza) -> Element | None:
        payload = iq.payload
        node = payload.get("node") if payload is not None else None
        if node is not None and node == f"{CAPS_NODE}#{self.caps_ver()}":
            answer = self._host_info()  # §6.2: the node#ver the caps named
            answer.attrs["node"] = node
            return answer
        if node is not None:
            return await self._node(iq, node, info=True)
        return self._host_info()

    async def _node(self, iq: Stanza, node: str, *, info: bool) -> Element:
        """A node another module serves (XEP-0050's commands), as the asker may see it."""
        if iq.from_ is not None:
            for provider in list(self.ctx.registry.disco_nodes):
                if info:
                    answer = await provider.node_info(node, iq.from_)
                else:
                    answer = await provider.node_items(node, iq.from_)
                if answer is not None:
                    answer.attrs["node"] = node
                    return answer
        raise StanzaError(StanzaCondition.ITEM_NOT_FOUND)

    def _host_info(self) -> Element:
        registry = self.ctx.registry
        identities = [SERVER_IDENTITY]
        identities += [i for i in registry.identities if i not in identities]
        query = info_query(identities, sorted(registry.features))
        contacts = [(k, getattr(self.options, k)) for k in CONTACT_KINDS]
        if any(uris for _kind, uris in contacts):  # XEP-0157 §2: an extended-info form
            form = data_form("result", ns.SERVERINFO, parent=query)
            for kind, uris in contacts:
                if uris:
                    add_field(form, f"{kind}-addresses", uris)
        return query

    def _account_info(self) -> Element:
        registry = self.ctx.registry
        features = [ns.DISCO_INFO, ns.DISCO_ITEMS, *sorted(registry.account_features)]
        return info_query([ACCOUNT_IDENTITY, *registry.account_identities], features)

    @iq_handler("get", ns.DISCO_INFO, Target.SELF)
    async def on_own_account_info(self, iq: Stanza) -> Element | None:
        # The sender is authenticated as this account, so it exists.
        _refuse_node(iq.payload)
        return self._account_info()

    @iq_handler("get", ns.DISCO_INFO, Target.BARE)
    async def on_other_account_info(self, iq: Stanza) -> Element | None:
        # A contact with a presence subscription may ask (XEP-0163 §6.2); anyone else gets
        # the same answer whether or not the account exists: no probing.
        contacts = self.ctx.registry.contacts
        if iq.to is not None and iq.from_ is not None and contacts is not None:
            entry = await contacts.contact(iq.to.bare, iq.from_.bare)
            if entry.subscription in ("from", "both"):
                _refuse_node(iq.payload)
                return self._account_info()
        raise StanzaError(StanzaCondition.SERVICE_UNAVAILABLE)

    # --- disco#items ------------------------------------------------------------------
    @iq_handler("get", ns.DISCO_ITEMS, Target.HOST)
    async def on_host_items(self, iq: Stanza) -> Element | None:
        node = iq.payload.get("node") if iq.payload is not None else None
        if node is not None:
            return await self._node(iq, node, info=False)
        query = Element("query", ns.DISCO_ITEMS)
        for item in [*self.items, *self.extra_items()]:
            query.append(item.to_element())
        return query

    @iq_handler("get", ns.DISCO_ITEMS, Target.SELF | Target.BARE)
    async def on_account_items(self, iq: Stanza) -> Element | None:
        _refuse_node(iq.payload)
        provider = self.ctx.registry.account_items
        if iq.to is None or iq.from_ is None:
            raise StanzaError(StanzaCondition.BAD_REQUEST)
        is_own = iq.from_.bare == iq.to.bare
        if provider is None and not is_own:
            raise StanzaError(StanzaCondition.SERVICE_UNAVAILABLE)
        query = Element("query", ns.DISCO_ITEMS)
        if provider is not None:
            for item in await provider.account_items(iq.to.bare, iq.from_):
                query.append(item)
        return query
