"""Random stanza sequences from one user never crash a session or touch another user's data.

Hypothesis builds sequences of messages, presences and IQs (every namespace Heron serves,
plus unknown ones and garbage) from "mallory" to every kind of address; they run through the
real server in memory (tests/harness.py). Afterwards "victim" must still be served and see
exactly the roster, vCard, private XML and block list it had.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heron.core.server import Server
from heron.jid import JID
from heron.stream.c2s import C2SStream
from tests.harness import PASSWORD, MemoryLink, connect, disconnect, start_server

TARGETS = [
    "",
    "mallory@localhost",
    "mallory@localhost/other",
    "victim@localhost",
    "victim@localhost/v",
    "victim@localhost/gone",
    "localhost",
    "ghost@localhost",
    "remote.example",
    "a@b@c",
]
PAYLOADS = [
    "<query xmlns='jabber:iq:roster'><item jid='{jid}' name='{text}'><group>{text}</group>"
    "</item></query>",
    "<query xmlns='jabber:iq:roster'><item jid='{jid}' subscription='remove'/></query>",
    "<query xmlns='jabber:iq:roster' ver='{text}'/>",
    "<vCard xmlns='vcard-temp'><FN>{text}</FN></vCard>",
    "<vCard xmlns='vcard-temp'/>",
    "<query xmlns='jabber:iq:private'><note xmlns='x:{text}'>{text}</note></query>",
    "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>",
    "<block xmlns='urn:xmpp:blocking'><item jid='{jid}'/></block>",
    "<unblock xmlns='urn:xmpp:blocking'/>",
    "<blocklist xmlns='urn:xmpp:blocking'/>",
    "<query xmlns='http://jabber.org/protocol/disco#info' node='{text}'/>",
    "<query xmlns='http://jabber.org/protocol/disco#items'/>",
    "<query xmlns='jabber:iq:version'/>",
    "<time xmlns='urn:xmpp:time'/>",
    "<ping xmlns='urn:xmpp:ping'/>",
    "<query xmlns='jabber:iq:last'/>",
    "<query xmlns='jabber:iq:register'><remove/></query>",
    "<query xmlns='jabber:iq:register'><username>victim</username><password>x</password></query>",
    "<unknown xmlns='urn:example:{text}'/>",
    "",
]
PRESENCE_TYPES = [
    "",
    "unavailable",
    "subscribe",
    "subscribed",
    "unsubscribe",
    "unsubscribed",
    "probe",
    "error",
    "bogus",
]
MESSAGE_TYPES = ["", "chat", "normal", "headline", "groupchat", "error", "bogus"]
TEXT = st.text(alphabet="abcz 019-_.:/", max_size=12)


def attr(name: str, value: str) -> str:
    return f" {name}='{value}'" if value else ""


@st.composite
def stanza(draw: st.DrawFn) -> str:
    to = attr("to", draw(st.sampled_from(TARGETS)))
    text = draw(TEXT)
    kind = draw(st.sampled_from(["iq", "message", "presence", "garbage"]))
    if kind == "iq":
        type_ = draw(st.sampled_from(["get", "set", "result", "error", "bogus"]))
        payload = draw(st.sampled_from(PAYLOADS)).format(
            jid=draw(st.sampled_from(TARGETS[1:])), text=text
        )
        return f"<iq type='{type_}' id='i{text}'{to}>{payload}</iq>"
    if kind == "message":
        type_ = attr("type", draw(st.sampled_from(MESSAGE_TYPES)))
        return f"<message{to}{type_}><body>{text}</body></message>"
    if kind == "presence":
        type_ = attr("type", draw(st.sampled_from(PRESENCE_TYPES)))
        priority = draw(st.sampled_from(["", "<priority>-1</priority>", "<priority>x</priority>"]))
        return f"<presence{to}{type_}>{priority}</presence>"
    return draw(st.sampled_from(["<message", "</iq>", "&amp;", "<a><b></a>", "\x00"]))


VICTIM_VIEW = (
    "<iq type='get' id='v1'><query xmlns='jabber:iq:roster'/></iq>"
    "<iq type='get' id='v2'><vCard xmlns='vcard-temp'/></iq>"
    "<iq type='get' id='v3'><query xmlns='jabber:iq:private'>"
    "<note xmlns='x:secret'/></query></iq>"
    "<iq type='get' id='v4'><blocklist xmlns='urn:xmpp:blocking'/></iq>"
)


async def view(stream: C2SStream, link: MemoryLink) -> str:
    """What the victim sees of its own data (ids fixed, so views compare as text)."""
    link.take()
    await stream.receive(VICTIM_VIEW.encode())
    return re.sub(r" ver=.\d+.", "", link.take())


async def setup(data_dir: Path) -> tuple[Server, C2SStream, MemoryLink, str]:
    server = await start_server(data_dir, ("victim", "mallory"))
    victim, link = await connect(server, "victim", "v")
    await victim.receive(
        b"<iq type='set' id='s1'><vCard xmlns='vcard-temp'><FN>Victim</FN></vCard></iq>"
        b"<iq type='set' id='s2'><query xmlns='jabber:iq:private'>"
        b"<note xmlns='x:secret'>mine</note></query></iq>"
        b"<iq type='set' id='s3'><query xmlns='jabber:iq:roster'>"
        b"<item jid='friend@localhost' name='Friend'/></query></iq>"
        b"<presence/>"
    )
    return server, victim, link, await view(victim, link)


def test_random_sequences_never_crash_or_leak() -> None:
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory() as tmp:
        server, victim, link, baseline = loop.run_until_complete(setup(Path(tmp)))
        assert "Victim" in baseline
        assert "friend@localhost" in baseline
        assert "mine" in baseline

        @settings(
            max_examples=150,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,
        )
        @given(st.lists(stanza(), min_size=1, max_size=12))
        def run(sequence: list[str]) -> None:
            async def scenario() -> None:
                account = JID.parse("mallory@localhost")
                if not await server.accounts.exists(account):  # a sequence may unregister
                    await server.accounts.create(account, PASSWORD)
                mallory, out = await connect(server, "mallory", "m")
                for data in sequence:
                    await mallory.receive(data.encode())  # must never raise
                    if mallory.is_closed:
                        text = out.take()
                        assert "</stream:stream>" in text, text[-300:]
                        break
                await disconnect(server, mallory)
                assert not victim.is_closed
                assert await view(victim, link) == baseline

            loop.run_until_complete(scenario())

        try:
            run()
        finally:
            loop.run_until_complete(server.stop())
            loop.close()
