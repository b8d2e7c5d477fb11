"""XEP-0357 with slixmpp: an app server (a client here) is told, without the message text,
when a message waits for an offline account or for a hibernated session."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from slixmpp import ClientXMPP
from slixmpp.stanza import Iq
from slixmpp.xmlstream import ET
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from heron.app import RunningServer
from heron.jid import JID
from tests.integration.clients import close, login

PASSWORD = "push-password"
PUBSUB = "http://jabber.org/protocol/pubsub"


def app_server(client: ClientXMPP) -> asyncio.Queue[ET.Element]:
    """Answer pubsub publishes like an app server and hand each to the test."""
    published: asyncio.Queue[ET.Element] = asyncio.Queue()

    def on_publish(iq: Iq) -> None:
        published.put_nowait(iq.xml)
        iq.reply().send()

    client.register_handler(
        Callback("push", MatchXPath(f"{{jabber:client}}iq/{{{PUBSUB}}}pubsub"), on_publish)
    )
    return published


def fields(iq: ET.Element) -> dict[str, str]:
    form = iq.find(f".//{{{PUBSUB}}}item/{{urn:xmpp:push:0}}notification/{{jabber:x:data}}x")
    assert form is not None
    return {
        f.get("var", ""): f.findtext("{jabber:x:data}value", "")
        for f in form.findall("{jabber:x:data}field")
    }


async def enable(client: ClientXMPP) -> None:
    iq = client.make_iq_set()
    iq.append(
        ET.fromstring(
            "<enable xmlns='urn:xmpp:push:0' jid='app@localhost/server' node='n1'>"
            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
            "<value>http://jabber.org/protocol/pubsub#publish-options</value></field>"
            "<field var='secret'><value>s3cr3t</value></field></x></enable>"
        )
    )
    await iq.send(timeout=5)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - polled server state, bounded in time
            await asyncio.sleep(0.05)


async def test_push_for_offline_and_hibernated_accounts(server: RunningServer) -> None:
    server.server.sm_resume_timeout_s = 1.0
    for user in ("alice", "bob", "app"):
        await server.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
    app = await login(server, "app@localhost/server", PASSWORD)
    bob = await login(server, "bob@localhost/desk", PASSWORD)
    published = app_server(app)
    alice = await login(server, "alice@localhost/phone", PASSWORD, plugins=("xep_0198",))
    try:
        info = await alice.plugin["xep_0030"].get_info(jid="alice@localhost", timeout=5)
        assert "urn:xmpp:push:0" in info["disco_info"]["features"]
        await enable(alice)
        alice.send_presence()
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)

        # The phone's connection dies: the session hibernates, a message arrives.
        alice.abort()
        await until(
            lambda: getattr(
                server.server.sessions.get(JID.parse("alice@localhost/phone")), "hibernating", False
            )
        )
        bob.send_message(mto="alice@localhost", mbody="secret plans", mtype="chat")
        first = await asyncio.wait_for(published.get(), 10)
        assert first.get("from") == "alice@localhost"
        assert fields(first) == {
            "FORM_TYPE": "urn:xmpp:push:summary",
            "message-count": "1",
            "last-message-sender": "bob@localhost",
        }
        assert "secret plans" not in ET.tostring(first, encoding="unicode")  # no content
        assert "s3cr3t" in ET.tostring(first, encoding="unicode")  # publish-options
    finally:
        await close(alice)
    # Nobody resumes: the session ends, the unacknowledged message goes to offline storage
    # (a push), and so does the next one (another push, counting up).
    await until(lambda: server.server.sessions.get(JID.parse("alice@localhost/phone")) is None)
    try:
        bob.send_message(mto="alice@localhost", mbody="more plans", mtype="chat")
        counts = []
        for _ in range(2):
            push = fields(await asyncio.wait_for(published.get(), 10))
            assert push["last-message-sender"] == "bob@localhost"
            counts.append(push["message-count"])
        assert counts == ["1", "2"]
    finally:
        await close(app)
        await close(bob)
