"""The XEP-0050 engine alone (heron/modules/adhoc/commands.py), with a fake clock: session
timeouts, the bound on open sessions, one-stage commands, forms read back."""

from __future__ import annotations

import pytest

from heron import ns
from heron.jid import JID
from heron.modules.adhoc import commands as cmds
from heron.modules.adhoc.commands import (
    Command,
    CommandEngine,
    Field,
    Result,
    Values,
    data_form,
    submitted,
)
from heron.stanza import Stanza, StanzaError
from heron.xmlstream.element import Element

ADMIN = JID.parse("boss@example.org/desk")
OTHER = JID.parse("eve@example.org/x")


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


async def echo(asker: JID, values: Values) -> Result:
    return Result(f"{asker.bare} said {values.required('text')}")


async def form(asker: JID) -> Element:
    return data_form("form", [Field("text", required=True)], form_type="urn:test")


def engine(clock: Clock) -> CommandEngine:
    commands = [
        Command("echo", "Echo", echo, form),
        Command("now", "Now", lambda a, v: _done()),
    ]
    return CommandEngine("example.org", commands, lambda jid: jid.bare == ADMIN.bare, clock)


async def _done() -> Result:
    return Result("done")


def request(node: str, sender: JID = ADMIN, **attrs: str) -> Stanza:
    iq = Element("iq", "jabber:client", {"type": "set", "to": "example.org"})
    command = iq.add("command", ns.COMMANDS, {"node": node, **attrs})
    if "text" in attrs:
        del command.attrs["text"]
        x = command.add("x", ns.DATA_FORMS, {"type": "submit"})
        x.add("field", ns.DATA_FORMS, {"var": "text"}).add(
            "value", ns.DATA_FORMS, text=attrs["text"]
        )
    return Stanza(iq, JID.parse("example.org"), sender)


def specific(exc: pytest.ExceptionInfo[StanzaError]) -> tuple[str, str | None]:
    extra = exc.value.extra
    return str(exc.value.condition), extra.tag if extra is not None else None


async def test_a_session_times_out_and_is_then_expired_not_unknown() -> None:
    clock = Clock()
    commands = engine(clock)
    first = await commands.handle(request("echo"))
    sessionid = first.attrs["sessionid"]
    assert first.attrs["status"] == "executing"
    clock.now += cmds.SESSION_TIMEOUT_S + 1
    with pytest.raises(StanzaError) as expired:
        await commands.handle(request("echo", sessionid=sessionid, text="late"))
    assert specific(expired) == ("not-allowed", "session-expired")
    with pytest.raises(StanzaError) as unknown:
        await commands.handle(request("echo", sessionid="never-issued", text="x"))
    assert specific(unknown) == ("bad-request", "bad-sessionid")


async def test_a_form_is_completed_with_the_submitted_values() -> None:
    commands = engine(Clock())
    first = await commands.handle(request("echo"))
    done = await commands.handle(request("echo", sessionid=first.attrs["sessionid"], text="hi"))
    assert done.attrs["status"] == "completed"
    note = done.find("note", ns.COMMANDS)
    assert note is not None
    assert note.text == "boss@example.org said hi"


async def test_open_sessions_are_bounded_the_oldest_dropped() -> None:
    commands = engine(Clock())
    first = (await commands.handle(request("echo"))).attrs["sessionid"]
    for _ in range(cmds.MAX_SESSIONS):
        await commands.handle(request("echo"))
    with pytest.raises(StanzaError) as dropped:
        await commands.handle(request("echo", sessionid=first, text="x"))
    assert specific(dropped) == ("not-allowed", "session-expired")


async def test_one_stage_commands_complete_at_once_and_others_are_refused() -> None:
    commands = engine(Clock())
    done = await commands.handle(request("now"))
    assert done.attrs["status"] == "completed"
    assert done.attrs["sessionid"]
    with pytest.raises(StanzaError) as refused:
        await commands.handle(request("now", OTHER))
    assert specific(refused) == ("forbidden", None)
    assert commands.items(OTHER).find("item", "http://jabber.org/protocol/disco#items") is None
    with pytest.raises(StanzaError):
        commands.info("now", OTHER)
    assert commands.info("nothing", ADMIN) is None


def test_submitted_values_and_text_multi() -> None:
    command = Element("command", ns.COMMANDS)
    x = command.add("x", ns.DATA_FORMS, {"type": "submit"})
    field = x.add("field", ns.DATA_FORMS, {"var": "motd"})
    for line in ("line one", "", "line three"):
        field.add("value", ns.DATA_FORMS, text=line)
    values = submitted(command)
    assert values is not None
    assert values.text("motd") == "line one\n\nline three"
    assert values.all("motd") == ["line one", "line three"]
    assert submitted(Element("command", ns.COMMANDS)) is None
