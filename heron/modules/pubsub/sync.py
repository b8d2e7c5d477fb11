"""PEP kept the same as the older protocols, through the services the vcard and private
modules offer on the host registry (the pubsub module requires both):

- avatars (XEP-0398): a PEP avatar becomes the vCard's PHOTO, a PHOTO becomes the PEP
  avatar;
- bookmarks (XEP-0402 §5.3, XEP-0411): PEP bookmarks become ``storage:bookmarks`` in
  private XML storage, and back.

What is copied is written before the client that changed one side hears of success.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from heron import ns
from heron.core.registry import Avatar
from heron.jid import JID
from heron.modules.pubsub import avatar as avatars
from heron.modules.pubsub import bookmarks
from heron.modules.pubsub.engine import PubsubService
from heron.stanza import StanzaError
from heron.xmlstream.element import Element

if TYPE_CHECKING:
    from heron.modules.pubsub.module import PubsubModule

Mirror = Callable[[PubsubService], Awaitable[None]]


class PepSync:
    """The ``pep_avatar`` (AvatarSync) and ``private_watcher`` services of the host."""

    def __init__(self, pubsub: PubsubModule) -> None:
        self.pubsub = pubsub

    def mirror_for(self, verb: Element) -> Mirror | None:
        """The copy into the older protocol a PEP change calls for, if any."""
        changed = verb.attrs.get("node")
        if verb.tag == "publish" and changed == ns.AVATAR_METADATA:
            return self._avatar_to_vcard
        if changed == ns.BOOKMARKS:
            return self._bookmarks_to_private
        return None

    async def _publish_as_owner(self, account: JID, steps: Callable[[PubsubService], None]) -> None:
        """Changes the server makes on an account's PEP for it (conversions): notified to
        the account's followers like the owner's own publishes, stored first."""
        pubsub = self.pubsub
        svc = await pubsub.service(account)
        if svc.owner is None or not pubsub.is_loaded(account):
            return  # no such account
        svc.audience = await pubsub.pep.audience(svc)
        try:
            steps(svc)
        except StanzaError as exc:
            pubsub.ctx.log.info("PEP of %s not converted: %s", account, exc.text or exc.condition)
        finally:
            svc.audience = None
            out = svc.drain()
        await pubsub.commit(svc, out)

    async def avatar_changed(self, account: JID, avatar: Avatar | None) -> None:
        """XEP-0398 §3.2: a vCard PHOTO was set; publish data, then metadata."""

        def publish(svc: PubsubService) -> None:
            if avatar is None and ns.AVATAR_METADATA not in svc.nodes:
                return  # no avatar before either: nothing to disable
            if avatar is not None:
                svc.publish(ns.AVATAR_DATA, account, avatars.data_item(avatar.data),
                            may_create=True)  # fmt: skip
            mime, image = (avatar.mime, avatar.data) if avatar is not None else ("", None)
            svc.publish(ns.AVATAR_METADATA, account, avatars.metadata_item(mime, image),
                        may_create=True)  # fmt: skip

        await self._publish_as_owner(account, publish)

    async def _avatar_to_vcard(self, svc: PubsubService) -> None:
        """XEP-0398 §3.1: the owner published avatar metadata; the vCard gets the image."""
        sink = self.pubsub.ctx.registry.vcard_avatar
        owner = svc.owner
        node = svc.nodes.get(ns.AVATAR_METADATA)
        last = node.last_item() if node is not None else None
        if sink is None or owner is None or last is None or last.payload is None:
            return
        try:
            info = avatars.chosen_info(last.payload)
            if info is None:
                await sink.avatar_changed(owner, None)
                return
            data_node = svc.nodes.get(ns.AVATAR_DATA)
            item = data_node.items.get(info.attrs["id"]) if data_node is not None else None
            mime, image = avatars.image_of(info, item.payload if item is not None else None)
        except avatars.NoAvatar as exc:
            self.pubsub.ctx.log.info("avatar of %s not copied to the vCard: %s", owner, exc)
            return
        await sink.avatar_changed(owner, Avatar(mime, image))

    async def private_changed(self, account: JID, element: Element) -> None:
        """XEP-0402 §5.3.2: legacy bookmarks were stored; update the PEP items that differ
        (unchanged ones are not notified) and retract those no longer listed."""
        if element.tag != "storage" or element.ns != ns.BOOKMARKS_LEGACY:
            return
        wanted = bookmarks.from_storage(element)

        def update(svc: PubsubService) -> None:
            node = svc.nodes.get(ns.BOOKMARKS)
            if node is None:
                if not wanted:
                    return
                node = svc.create(ns.BOOKMARKS, account)
                node.config = bookmarks.NODE_CONFIG
            for room, conference in wanted.items():
                old = node.items.get(room)
                if old is None or old.payload != conference:
                    item = Element("item", ns.PUBSUB, {"id": room})
                    item.append(conference)
                    svc.publish(ns.BOOKMARKS, account, item)
            for room in [r for r in node.items if r not in wanted]:
                svc.retract(ns.BOOKMARKS, account, room, notify=True)

        await self._publish_as_owner(account, update)

    async def _bookmarks_to_private(self, svc: PubsubService) -> None:
        """XEP-0402 §5.3.1: the owner changed the PEP bookmarks; the legacy storage gets
        every item, cast into storage:bookmarks."""
        private = self.pubsub.ctx.registry.private_xml
        owner = svc.owner
        if private is None or owner is None:
            return
        node = svc.nodes.get(ns.BOOKMARKS)
        items = [(i.id, i.payload) for i in node.items.values()] if node is not None else []
        keep = await private.get_private(owner, ns.BOOKMARKS_LEGACY, "storage")
        await private.put_private(owner, bookmarks.to_storage(items, keep))
