"""Stream management resumption inline in the SASL2 <authenticate/> (XEP-0198 with XEP-0388):
a phone that lost its connection comes back with a FAST token and its <resume/> in one
request, and gets its session (same full JID, the unacknowledged message sent again) in the
one answer; an unknown session fails inside <success/> and Bind2 gives a new one."""

from __future__ import annotations

import asyncio
import re

from heron.app import RunningServer
from heron.jid import JID
from tests.integration.test_sasl2_fast import PASSWORD, fast_login, open_secure, scram_login

SM = "urn:xmpp:sm:3"


async def wait_closed_session(server: RunningServer, jid: str) -> None:
    """The server noticed the lost connection (the session hibernates)."""
    for _ in range(100):
        sessions = [s for s in server.server.sessions.all() if str(s.jid) == jid]
        if sessions and all(s.hibernating for s in sessions):
            return
        await asyncio.sleep(0.05)  # the server notices the closed socket on its own
    raise AssertionError(f"{jid} did not hibernate")


async def test_fast_login_resumes_the_session_in_one_round_trip(server: RunningServer) -> None:
    await server.server.accounts.create(JID.parse("erin@localhost"), PASSWORD)
    raw, features = await open_secure(server)
    try:
        assert re.search(r"<inline>.*<sm xmlns=.urn:xmpp:sm:3./>.*</inline>", features)
        success = await scram_login(raw, "erin", PASSWORD, "phone")
        full = re.search(r"<authorization-identifier>([^<]+)<", success)
        token = re.search(r"<token [^>]*token=.([^'\"]+)", success)
        assert full is not None
        assert token is not None
        await raw.expect(r"</stream:features>")
        await raw.send(f"<enable xmlns='{SM}' resume='true'/>")
        previd = (await raw.expect(r"<enabled [^>]*id=.([^'\"]+)"))[1]
        # A message to the phone, never acknowledged before the connection drops.
        await raw.send(
            f"<message to='{full[1]}' type='chat' id='m1'><body>while away</body></message>"
        )
        await raw.expect(r"while away")
    finally:
        raw.close()
    await wait_closed_session(server, full[1])

    raw, _ = await open_secure(server)
    try:
        resume = f"<resume xmlns='{SM}' previd='{previd}' h='0'/>"
        answer = await fast_login(raw, "erin", token[1], "phone", extra=resume)
        assert answer.startswith("<success"), answer
        assert f"<authorization-identifier>{full[1]}</authorization-identifier>" in answer
        assert re.search(rf"<resumed xmlns=.{SM}. [^>]*previd=.{previd}.", answer)
        assert "<bound" not in answer  # the old session, not a new binding
        await raw.expect(r"while away")  # unacknowledged: sent again
        await raw.send("<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        await raw.expect(r"<iq [^>]*id=.p1.[^>]*type=.result.|<iq [^>]*type=.result.[^>]*id=.p1.")
    finally:
        raw.close()


async def test_an_unknown_session_fails_inline_and_binds_anew(server: RunningServer) -> None:
    await server.server.accounts.create(JID.parse("fred@localhost"), PASSWORD)
    raw, _ = await open_secure(server)
    try:
        resume = f"<resume xmlns='{SM}' previd='no-such-session' h='0'/>"
        success = await scram_login(raw, "fred", PASSWORD, "phone", extra=resume)
        assert success.startswith("<success"), success
        assert re.search(rf"<failed xmlns=.{SM}.><item-not-found", success)
        assert "<bound" in success
        assert re.search(r"<authorization-identifier>fred@localhost/Tests\.", success)
    finally:
        raw.close()
