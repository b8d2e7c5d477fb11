"""Service administrators (the config's admins): in group chat they act as owners of every
room (configure, destroy, set affiliations) and are not held to the per-user room limit;
on a pubsub service restricted to admins they alone create nodes. Another user is refused
the same requests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from slixmpp import JID as SJID
from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError, PresenceError

from heron.app import RunningServer, start
from heron.config import ServerConfig
from heron.jid import JID
from tests.integration.clients import close, instant_room, login

PASSWORD = "muc-admin-pw"
PLUGINS = ("xep_0045", "xep_0060")


@pytest.fixture
async def running(config_factory: Callable[..., ServerConfig]) -> AsyncIterator[RunningServer]:
    modules = {"muc": {"max_rooms_per_user": 1}, "pubsub": {"create_nodes": "admins"}}
    server = await start(
        config_factory(admins=["boss@localhost"], hosts={"localhost": {"modules": modules}})
    )
    for user in ("alice", "bob", "boss"):
        await server.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    try:
        yield server
    finally:
        await server.stop()


async def client(server: RunningServer, user: str) -> ClientXMPP:
    joined = await login(server, f"{user}@localhost/x", PASSWORD, plugins=PLUGINS)
    joined.send_presence()
    return joined


async def create(user: ClientXMPP, room: str, nick: str) -> None:
    await user.plugin["xep_0045"].join_muc_wait(SJID(room), nick, timeout=5)
    await instant_room(user, room)


async def test_an_admin_acts_as_owner_of_any_room_and_others_may_not(
    running: RunningServer,
) -> None:
    alice, bob, boss = [await client(running, u) for u in ("alice", "bob", "boss")]
    room = "lounge@conference.localhost"
    try:
        await create(alice, room, "Alice")
        muc = bob.plugin["xep_0045"]
        with pytest.raises(IqError) as refused:
            await muc.get_room_config(SJID(room), timeout=5)
        assert refused.value.condition == "forbidden"
        # The admin was never given any affiliation here.
        form = await boss.plugin["xep_0045"].get_room_config(SJID(room), timeout=5)
        assert form["type"] == "form"
        await boss.plugin["xep_0045"].set_affiliation(
            SJID(room), "outcast", jid=SJID("bob@localhost"), timeout=5
        )
        with pytest.raises(PresenceError) as banned:
            await muc.join_muc_wait(SJID(room), "Bob", timeout=5)
        assert banned.value.condition == "forbidden"
        await boss.plugin["xep_0045"].destroy(SJID(room), reason="closed by the admins")
        # Gone with its ban list: bob may now make a room of that name himself.
        await muc.join_muc_wait(SJID(room), "Bob", timeout=5)
    finally:
        for c in (alice, bob, boss):
            await close(c)


async def test_the_per_user_room_limit_does_not_hold_an_admin(running: RunningServer) -> None:
    bob, boss = await client(running, "bob"), await client(running, "boss")
    try:
        await create(bob, "one@conference.localhost", "Bob")
        with pytest.raises(PresenceError) as limited:
            await bob.plugin["xep_0045"].join_muc_wait(
                SJID("two@conference.localhost"), "Bob", timeout=5
            )
        assert limited.value.condition == "not-allowed"
        await create(boss, "three@conference.localhost", "Boss")
        await create(boss, "four@conference.localhost", "Boss")
    finally:
        await close(bob)
        await close(boss)


async def test_only_admins_create_nodes_on_a_restricted_pubsub_service(
    running: RunningServer,
) -> None:
    bob, boss = await client(running, "bob"), await client(running, "boss")
    service = SJID("pubsub.localhost")
    try:
        with pytest.raises(IqError) as refused:
            await bob.plugin["xep_0060"].create_node(service, "news", timeout=5)
        assert refused.value.condition == "forbidden"
        await boss.plugin["xep_0060"].create_node(service, "news", timeout=5)
        # PEP is each account's own: not restricted.
        await bob.plugin["xep_0060"].create_node(SJID("bob@localhost"), "mine", timeout=5)
    finally:
        await close(bob)
        await close(boss)
