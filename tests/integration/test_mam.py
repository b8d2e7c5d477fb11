"""XEP-0313 with slixmpp: 200 messages both ways archived, paged forwards and backwards,
filtered by correspondent, found by stanza-id, and not archived when the user says never."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from slixmpp import JID as SJID
from slixmpp import ClientXMPP
from slixmpp.xmlstream import ET
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from heron.app import RunningServer
from heron.jid import JID
from tests.integration.clients import close, login

PASSWORD = "mam-password"

pytestmark = pytest.mark.both_engines


async def chatters(server: RunningServer) -> tuple[ClientXMPP, ClientXMPP, ClientXMPP]:
    clients = []
    for user in ("alice", "bob", "carol"):
        await server.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
        client = await login(server, f"{user}@localhost/x", PASSWORD, plugins=("xep_0313",))
        client.send_presence()
        clients.append(client)
    alice, bob, carol = clients
    return alice, bob, carol


async def history(client: ClientXMPP, **kwargs: object) -> list[str]:
    return [
        str(m["mam_result"]["forwarded"]["stanza"]["body"])
        async for m in client.plugin["xep_0313"].iterate(**kwargs)
    ]


async def test_archive_paging_filters_and_preferences(server: RunningServer) -> None:
    alice, bob, carol = await chatters(server)
    try:
        bodies = []
        for n in range(200):
            sender, to = (alice, "bob") if n % 2 == 0 else (bob, "alice")
            body = f"m{n:03d}"
            bodies.append(body)
            sender.send_message(mto=f"{to}@localhost", mbody=body, mtype="chat")
        carol.send_message(mto="alice@localhost", mbody="from carol", mtype="chat")
        stamped: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def look(message: Any) -> None:
            if message["body"] == "find me" and not stamped.done():
                stamped.set_result(message)

        alice.add_event_handler("message", look)
        bob.send_message(mto="alice@localhost", mbody="find me", mtype="chat")
        found = await asyncio.wait_for(stamped, 10)
        stanza_id = found.xml.find("{urn:xmpp:sid:0}stanza-id")
        assert stanza_id is not None
        assert stanza_id.get("by") == "alice@localhost"
        for client in (alice, bob, carol):
            await client.plugin["xep_0199"].ping(jid="localhost", timeout=5)

        with_bob = SJID("bob@localhost")
        forwards = await history(alice, with_jid=with_bob, rsm={"max": 25})
        # Both directions, all pages; each sender's messages in the order sent (the two
        # connections' messages may interleave either way on arrival).
        assert sorted(forwards) == sorted([*bodies, "find me"])
        for parity in (0, 1):
            mine = [b for b in forwards if b.startswith("m") and int(b[1:]) % 2 == parity]
            assert mine == [b for b in bodies if int(b[1:]) % 2 == parity]
        backwards = await history(alice, with_jid=with_bob, reverse=True, rsm={"max": 30})
        assert backwards == list(reversed(forwards))
        assert await history(alice, with_jid=SJID("carol@localhost")) == ["from carol"]
        assert await history(bob, with_jid=SJID("carol@localhost")) == []  # alice's only

        by_id = alice.make_iq_set()
        by_id.append(
            ET.fromstring(
                "<query xmlns='urn:xmpp:mam:2' queryid='q1'><x xmlns='jabber:x:data'"
                " type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2"
                "</value></field><field var='ids'><value>"
                f"{stanza_id.get('id')}</value></field></x></query>"
            )
        )
        results: list[str] = []

        def collect(message: object) -> None:
            xml = getattr(message, "xml", None)
            body = (
                xml.find(
                    ".//{urn:xmpp:forward:0}forwarded/{jabber:client}message/{jabber:client}body"
                )
                if xml is not None
                else None
            )
            if body is not None:
                results.append(str(body.text))

        alice.register_handler(
            Callback(
                "mam-ids", MatchXPath("{jabber:client}message/{urn:xmpp:mam:2}result"), collect
            )
        )
        await by_id.send(timeout=5)  # results come before the answer
        assert results == ["find me"]

        metadata = alice.make_iq_get()
        metadata.append(ET.fromstring("<metadata xmlns='urn:xmpp:mam:2'/>"))
        answer = await metadata.send(timeout=5)
        ends = answer.xml.find("{urn:xmpp:mam:2}metadata")
        assert ends is not None
        assert ends.find("{urn:xmpp:mam:2}end") is not None

        # "never": nothing new is archived.
        prefs = alice.make_iq_set()
        prefs.append(ET.fromstring("<prefs xmlns='urn:xmpp:mam:2' default='never'/>"))
        await prefs.send(timeout=5)
        bob.send_message(mto="alice@localhost", mbody="off the record", mtype="chat")
        await bob.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        latest = await history(alice, with_jid=with_bob, reverse=True, rsm={"max": 1}, total=1)
        assert latest == [forwards[-1]]  # the newest is still from before "never"
    finally:
        for client in (alice, bob, carol):
            await close(client)


async def test_the_account_advertises_its_archive_and_full_preferences(
    server: RunningServer,
) -> None:
    """XEP-0313 §7: disco#info on the bare JID lists the archive (slixmpp checks there);
    the preferences answer always carries <always/> and <never/>."""
    await server.server.accounts.create(JID.parse("dora@localhost"), PASSWORD)
    dora = await login(server, "dora@localhost/x", PASSWORD, plugins=("xep_0313",))
    try:
        info = await dora.plugin["xep_0030"].get_info(jid="dora@localhost", timeout=5)
        features = info["disco_info"]["features"]
        assert "urn:xmpp:mam:2" in features
        assert "urn:xmpp:mam:2#extended" in features

        get = dora.make_iq_get()
        get.append(ET.fromstring("<prefs xmlns='urn:xmpp:mam:2'/>"))
        prefs = (await get.send(timeout=5)).xml.find("{urn:xmpp:mam:2}prefs")
        assert prefs is not None
        assert prefs.get("default") == "always"
        assert [child.tag for child in prefs] == [
            "{urn:xmpp:mam:2}always",
            "{urn:xmpp:mam:2}never",
        ]
    finally:
        await close(dora)
