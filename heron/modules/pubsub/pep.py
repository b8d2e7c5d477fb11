"""Who hears of an account's PEP changes (XEP-0163 §4, XEP-0115).

Contacts and the owner's own resources get a node's notifications when their entity
capabilities advertise ``NODE+notify``: presence brings the caps; a client with unknown caps
is asked for its disco#info, the hash is checked, and features are cached per ver. The last
item of each followed node goes to a resource when it comes online
(``send_last_published_item`` on_sub_and_presence).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final

from heron import ns
from heron.jid import JID
from heron.modules.pubsub.engine import NO_RELATION, Node, PubsubService
from heron.stanza import Stanza
from heron.stanza.caps import Caps, CapsCache
from heron.xmlstream.element import Element

if TYPE_CHECKING:
    from heron.modules.pubsub.module import PubsubModule

MAX_ASKED: Final = 10000  # caps queries in flight at most (a flood of distinct caps)


class PepTargets:
    """Per account, the full JIDs whose available presence it received (its own resources
    too) with their caps; their features once known; the disco queries in flight."""

    def __init__(self, pubsub: PubsubModule) -> None:
        self.pubsub = pubsub
        self.seen: dict[JID, dict[JID, Caps | None]] = {}
        self.features: dict[JID, frozenset[str]] = {}
        self.asked: dict[str, tuple[JID, Caps]] = {}
        self.caps = CapsCache()

    async def audience(self, svc: PubsubService) -> Callable[[Node], Iterable[JID]]:
        """The resources that asked for a node's notifications (+notify), if allowed."""
        assert svc.owner is not None
        watching = dict(self.seen.get(svc.owner, {}))
        relations = {
            full: await self.pubsub.relation(svc.owner, full)
            for full in watching
            if full.bare != svc.owner
        }

        def audience(node: Node) -> list[JID]:
            wanted = f"{node.name}+notify"
            return [
                full
                for full in watching
                if wanted in self.features.get(full, frozenset())
                and svc.may_access(node, full, relations.get(full, NO_RELATION))
            ]

        return audience

    async def own_presence(self, stanza: Stanza) -> None:
        """The owner's own resources: their caps say which of its nodes they follow."""
        sender = stanza.from_
        if stanza.to is not None or sender is None or sender.local is None:
            return
        await self._saw(sender.bare, sender, stanza)

    async def presence(self, stanza: Stanza) -> None:
        """Presence from a contact to a local account (XEP-0163 §4.3.2)."""
        to, sender = stanza.to, stanza.from_
        if to is None or sender is None or to.local is None or sender.resource is None:
            return
        await self._saw(to.bare, sender, stanza)

    async def _saw(self, owner: JID, full: JID, stanza: Stanza) -> None:
        if full.resource is None:
            return
        watching = self.seen.setdefault(owner, {})
        if stanza.type == "unavailable":
            watching.pop(full, None)
            if not watching:
                self.seen.pop(owner, None)
            self._forget_if_unwatched(full)
            return
        if stanza.type != "available":
            return
        caps = Caps.from_presence(stanza.element)
        is_new = full not in watching or watching[full] != caps
        watching[full] = caps
        if not is_new or caps is None:
            return
        known = self.caps.get(caps) if caps.hash else None
        if known is not None:
            self.features[full] = known
            await self._came_online(owner, full)
        elif not any(j == full for j, _ in self.asked.values()):
            await self._ask_caps(full, caps)
        elif full in self.features:
            await self._came_online(owner, full)

    def _forget_if_unwatched(self, full: JID) -> None:
        if not any(full in watching for watching in self.seen.values()):
            self.features.pop(full, None)

    def session_ended(self, full: JID) -> None:
        watching = self.seen.get(full.bare)
        if watching is not None:
            watching.pop(full, None)
        self._forget_if_unwatched(full)

    def account_deleted(self, account: JID) -> None:
        for full in list(self.seen.pop(account, {})):
            self._forget_if_unwatched(full)

    async def _ask_caps(self, full: JID, caps: Caps) -> None:
        """XEP-0115 §6.2: disco#info of node#ver, to the resource that announced it."""
        if len(self.asked) > MAX_ASKED:
            return  # no more questions until answers come
        query_id = f"caps-{uuid.uuid4().hex}"
        self.asked[query_id] = (full, caps)
        ctx = self.pubsub.ctx
        iq = Element(
            "iq", ns.CLIENT, {"type": "get", "id": query_id, "from": ctx.domain, "to": str(full)}
        )
        iq.add("query", ns.DISCO_INFO, {"node": f"{caps.node}#{caps.ver}"})
        await ctx.send(iq)

    async def caps_answer(self, stanza: Stanza) -> bool:
        """The answer to one of our caps queries (True: it was ours, consumed)."""
        query_id = stanza.id
        if stanza.type not in ("result", "error") or query_id not in self.asked:
            return False
        full, caps = self.asked.pop(query_id)
        if stanza.from_ != full:
            return True
        query = stanza.payload
        if stanza.type == "error" or query is None or query.ns != ns.DISCO_INFO:
            return True
        features = self.caps.learn(caps, query)
        if features is None:
            return True
        self.features[full] = features
        for owner, watching in list(self.seen.items()):
            if watching.get(full) == caps:
                await self._came_online(owner, full)
        return True

    async def _came_online(self, owner: JID, full: JID) -> None:
        """XEP-0163 §4.3.2: the last item of each node the resource follows."""
        if owner.domain != self.pubsub.ctx.domain:
            return
        svc = await self.pubsub.service(owner)
        if not svc.nodes:
            return
        features = self.features.get(full, frozenset())
        relation = NO_RELATION if full.bare == owner else await self.pubsub.relation(owner, full)
        for node in list(svc.nodes.values()):
            if (
                node.config.send_last_published_item == "on_sub_and_presence"
                and f"{node.name}+notify" in features
                and svc.may_access(node, full, relation)
            ):
                svc.send_last(node, [full])
        await self.pubsub.commit(svc, svc.drain())
