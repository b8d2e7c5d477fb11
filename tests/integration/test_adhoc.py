"""XEP-0050/XEP-0133: the service administration commands, driven by slixmpp's xep_0050 as
the admin's client; each refused to a user who is not an admin, who does not even see them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError
from slixmpp.xmlstream import ET

from heron.app import RunningServer, start
from heron.config import ServerConfig
from heron.jid import JID
from tests.integration.clients import LoginFailed, close, login

PASSWORD = "adhoc-password"
ADMIN = "http://jabber.org/protocol/admin"
XDATA = "jabber:x:data"
CMD = "{http://jabber.org/protocol/commands}"
ALL_NODES = [
    *(
        f"{ADMIN}#{name}"
        for name in (
            "add-user",
            "delete-user",
            "disable-user",
            "reenable-user",
            "end-user-session",
            "change-user-password",
            "get-user-roster",
            "get-registered-users-num",
            "get-registered-users-list",
            "get-disabled-users-num",
            "get-disabled-users-list",
            "get-online-users-num",
            "get-online-users-list",
            "announce",
            "set-motd",
            "edit-motd",
            "delete-motd",
        )
    ),
    "https://heron.invalid/admin#reload",
]


@pytest.fixture
async def running(config_factory: Callable[..., ServerConfig]) -> AsyncIterator[RunningServer]:
    server = await start(config_factory(admins=["boss@localhost"]))
    try:
        for user in ("boss", "alice", "bob"):
            await server.server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
        yield server
    finally:
        await server.stop()


async def admin_client(running: RunningServer, jid: str = "boss@localhost/desk") -> ClientXMPP:
    return await login(running, jid, PASSWORD, plugins=("xep_0004", "xep_0050"))


def submit_form(fields: dict[str, str | list[str]]) -> Any:
    x = ET.Element(f"{{{XDATA}}}x", {"type": "submit"})
    hidden = ET.SubElement(x, f"{{{XDATA}}}field", {"var": "FORM_TYPE"})
    ET.SubElement(hidden, f"{{{XDATA}}}value").text = ADMIN
    for var, value in fields.items():
        field = ET.SubElement(x, f"{{{XDATA}}}field", {"var": var})
        for text in [value] if isinstance(value, str) else value:
            ET.SubElement(field, f"{{{XDATA}}}value").text = text
    return x


async def run(
    client: ClientXMPP, name: str, fields: dict[str, str | list[str]] | None = None
) -> Any:
    """Execute a command; if it answers with a form, submit `fields` in it. The last
    <command/> result."""
    node = name if "://" in name else f"{ADMIN}#{name}"
    adhoc = client.plugin["xep_0050"]
    first = await adhoc.send_command("localhost", node, timeout=10)
    command = first["command"]
    if command["status"] == "completed":
        return first
    assert command["status"] == "executing"
    assert command.xml.find(f"{CMD}actions").get("execute") == "complete"
    form = command.xml.find(f"{{{XDATA}}}x")
    assert form is not None
    assert form.get("type") == "form"
    hidden = form.find(f"{{{XDATA}}}field[@var='FORM_TYPE']")
    assert hidden is not None
    assert hidden.get("type") == "hidden"
    return await adhoc.send_command(
        "localhost",
        node,
        action="complete",
        sessionid=command["sessionid"],
        payload=submit_form(fields or {}),
        timeout=10,
    )


def field_values(iq: Any, var: str) -> list[str]:
    form = iq["command"].xml.find(f"{{{XDATA}}}x")
    assert form is not None
    field = form.find(f"{{{XDATA}}}field[@var='{var}']")
    assert field is not None, var
    return [v.text or "" for v in field.findall(f"{{{XDATA}}}value")]


def disco_items(iq: Any) -> list[tuple[str | None, str | None]]:
    """The items in document order (slixmpp's own accessor gives a set)."""
    found = iq["disco_items"].xml.findall("{http://jabber.org/protocol/disco#items}item")
    return [(item.get("jid"), item.get("node")) for item in found]


def note(iq: Any) -> str:
    el = iq["command"].xml.find(f"{CMD}note")
    return "" if el is None else el.text or ""


async def wait_disconnected(client: ClientXMPP) -> None:
    gone = asyncio.get_running_loop().create_future()
    client.add_event_handler("disconnected", lambda *_: gone.done() or gone.set_result(None))
    await asyncio.wait_for(gone, 5)


def collect_messages(client: ClientXMPP) -> asyncio.Queue[str]:
    queue: asyncio.Queue[str] = asyncio.Queue()
    client.add_event_handler("message", lambda msg: queue.put_nowait(msg["body"]))
    return queue


async def test_a_user_who_is_not_admin_sees_no_command_and_is_forbidden_each(
    running: RunningServer,
) -> None:
    alice = await admin_client(running, "alice@localhost/a")
    try:
        items = await alice.plugin["xep_0050"].get_commands(jid="localhost", timeout=5)
        assert disco_items(items) == []
        info = await alice.plugin["xep_0030"].get_info(jid="localhost", timeout=5)
        assert "http://jabber.org/protocol/commands" in info["disco_info"]["features"]
        for node in ALL_NODES:
            with pytest.raises(IqError) as refused:
                await alice.plugin["xep_0050"].send_command("localhost", node, timeout=5)
            assert refused.value.condition == "forbidden", node
            with pytest.raises(IqError) as hidden:
                await alice.plugin["xep_0030"].get_info(jid="localhost", node=node, timeout=5)
            assert hidden.value.condition == "forbidden"  # XEP-0050 §2.2
    finally:
        await close(alice)
    assert await running.server.accounts.exists(JID.parse("alice@localhost"))


async def test_the_admin_lists_every_command_and_each_node_describes_itself(
    running: RunningServer,
) -> None:
    boss = await admin_client(running)
    try:
        items = await boss.plugin["xep_0050"].get_commands(jid="localhost", timeout=5)
        assert disco_items(items) == [("localhost", node) for node in ALL_NODES]
        info = await boss.plugin["xep_0030"].get_info(
            jid="localhost", node=f"{ADMIN}#add-user", timeout=5
        )
        identities = info["disco_info"]["identities"]
        assert any(i[0] == "automation" and i[1] == "command-node" for i in identities)
        assert "jabber:x:data" in info["disco_info"]["features"]
    finally:
        await close(boss)


async def test_add_user_change_password_and_delete_user(running: RunningServer) -> None:
    boss = await admin_client(running)
    try:
        done = await run(
            boss,
            "add-user",
            {"accountjid": "carol@localhost", "password": "c1", "password-verify": "c1"},
        )
        assert done["command"]["status"] == "completed"
        carol = await login(running, "carol@localhost/x", "c1")
        await close(carol)
        with pytest.raises(IqError) as exists:
            await run(
                boss,
                "add-user",
                {"accountjid": "carol@localhost", "password": "c", "password-verify": "c"},
            )
        assert exists.value.condition == "conflict"
        await run(boss, "change-user-password", {"accountjid": "carol@localhost", "password": "c2"})
        with pytest.raises(LoginFailed):
            await login(running, "carol@localhost/x", "c1")
        carol = await login(running, "carol@localhost/x", "c2")
        await run(boss, "delete-user", {"accountjids": ["carol@localhost"]})
        await wait_disconnected(carol)
        assert not await running.server.accounts.exists(JID.parse("carol@localhost"))
        with pytest.raises(IqError) as missing:
            await run(boss, "delete-user", {"accountjids": ["carol@localhost"]})
        assert missing.value.condition == "item-not-found"
    finally:
        await close(boss)


async def test_disable_ends_sessions_and_refuses_logins_until_reenabled(
    running: RunningServer,
) -> None:
    boss = await admin_client(running)
    bob = await login(running, "bob@localhost/phone", PASSWORD)
    try:
        await bob.get_roster(timeout=5)
        bob.update_roster("alice@localhost", name="Alice", groups=["Friends"])
        await asyncio.sleep(0.2)
        await run(boss, "disable-user", {"accountjids": ["bob@localhost"]})
        await wait_disconnected(bob)
        with pytest.raises(LoginFailed):
            await login(running, "bob@localhost/phone", PASSWORD)
        assert field_values(await run(boss, "get-disabled-users-num"), "disabledusersnum") == ["1"]
        listed = await run(boss, "get-disabled-users-list", {"max_items": "none"})
        assert field_values(listed, "disableduserjids") == ["bob@localhost"]
        # The data stays (§4.3): the roster is still there.
        roster = await run(boss, "get-user-roster", {"accountjid": "bob@localhost"})
        query = roster["command"].xml.find(f"{{{XDATA}}}x/{{jabber:iq:roster}}query")
        assert query is not None
        items = query.findall("{jabber:iq:roster}item")
        assert [i.get("jid") for i in items] == ["alice@localhost"]
        assert [g.text for g in items[0].findall("{jabber:iq:roster}group")] == ["Friends"]
        await run(boss, "reenable-user", {"accountjids": ["bob@localhost"]})
        bob = await login(running, "bob@localhost/phone", PASSWORD)
    finally:
        await close(bob)
        await close(boss)


async def test_end_user_session_by_full_jid_ends_only_that_one(running: RunningServer) -> None:
    boss = await admin_client(running)
    phone = await login(running, "alice@localhost/phone", PASSWORD)
    laptop = await login(running, "alice@localhost/laptop", PASSWORD)
    try:
        await run(boss, "end-user-session", {"accountjids": ["alice@localhost/phone"]})
        await wait_disconnected(phone)
        await laptop.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        await run(boss, "end-user-session", {"accountjids": ["alice@localhost"]})
        await wait_disconnected(laptop)
    finally:
        await close(phone)
        await close(laptop)
        await close(boss)


async def test_counts_and_lists_of_registered_and_online_users(running: RunningServer) -> None:
    boss = await admin_client(running)
    alice = await login(running, "alice@localhost/phone", PASSWORD)
    try:
        assert field_values(await run(boss, "get-registered-users-num"), "registeredusersnum") == [
            "3"
        ]
        listed = await run(boss, "get-registered-users-list", {"max_items": "25"})
        assert field_values(listed, "registereduserjids") == [
            "alice@localhost",
            "bob@localhost",
            "boss@localhost",
        ]
        two = await run(boss, "get-registered-users-list", {"max_items": "2"})
        assert len(field_values(two, "registereduserjids")) == 2
        assert field_values(await run(boss, "get-online-users-num"), "onlineusersnum") == ["2"]
        online = await run(boss, "get-online-users-list", {"max_items": "none"})
        assert field_values(online, "onlineuserjids") == ["alice@localhost", "boss@localhost"]
        assert field_values(online, "onlinesessions") == [
            "alice@localhost/phone",
            "boss@localhost/desk",
        ]
    finally:
        await close(alice)
        await close(boss)


async def test_announce_reaches_online_users(running: RunningServer) -> None:
    boss = await admin_client(running)
    alice = await login(running, "alice@localhost/phone", PASSWORD)
    try:
        inbox = collect_messages(alice)
        alice.send_presence()
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        done = await run(boss, "announce", {"announcement": ["Maintenance at 22:00", "Sorry"]})
        assert "sent to" in note(done)
        assert await asyncio.wait_for(inbox.get(), 5) == "Maintenance at 22:00\nSorry"
    finally:
        await close(alice)
        await close(boss)


async def test_message_of_the_day_now_at_next_login_once_then_edited_and_deleted(
    running: RunningServer,
) -> None:
    boss = await admin_client(running)
    alice = await login(running, "alice@localhost/phone", PASSWORD)
    try:
        inbox = collect_messages(alice)
        alice.send_presence()
        await alice.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        await run(boss, "set-motd", {"motd": "Welcome to Heron"})
        assert await asyncio.wait_for(inbox.get(), 5) == "Welcome to Heron"
        # Bob was offline: he gets it at his next login, and only once.
        for attempt in range(2):
            bob = await login(running, "bob@localhost/b", PASSWORD)
            bob_inbox = collect_messages(bob)
            bob.send_presence()
            await bob.plugin["xep_0199"].ping(jid="localhost", timeout=5)
            await asyncio.sleep(0.2)
            got = [] if bob_inbox.empty() else [bob_inbox.get_nowait()]
            assert got == (["Welcome to Heron"] if attempt == 0 else [])
            await close(bob)
        adhoc = boss.plugin["xep_0050"]
        first = await adhoc.send_command("localhost", f"{ADMIN}#edit-motd", timeout=5)
        assert field_values(first, "motd") == ["Welcome to Heron"]
        await adhoc.send_command(
            "localhost",
            f"{ADMIN}#edit-motd",
            action="complete",
            sessionid=first["command"]["sessionid"],
            payload=submit_form({"motd": "Welcome to Heron, again"}),
            timeout=5,
        )
        assert await asyncio.wait_for(inbox.get(), 5) == "Welcome to Heron, again"
        assert note(await run(boss, "delete-motd")) == "message of the day deleted"
        carol_free = await login(running, "bob@localhost/c", PASSWORD)
        late = collect_messages(carol_free)
        carol_free.send_presence()
        await carol_free.plugin["xep_0199"].ping(jid="localhost", timeout=5)
        await asyncio.sleep(0.2)
        assert late.empty()
        await close(carol_free)
    finally:
        await close(alice)
        await close(boss)


async def test_command_sessions_follow_xep_0050(running: RunningServer) -> None:
    """§4.6: bad-sessionid, session-expired, malformed-action, bad-payload; cancel."""
    boss = await admin_client(running)
    alice = await admin_client(running, "boss@localhost/other")
    adhoc = boss.plugin["xep_0050"]
    node = f"{ADMIN}#add-user"
    try:
        first = await adhoc.send_command("localhost", node, timeout=5)
        sessionid = first["command"]["sessionid"]
        assert sessionid
        # Another resource of the same admin may not continue this session.
        with pytest.raises(IqError) as other:
            await alice.plugin["xep_0050"].send_command(
                "localhost", node, action="complete", sessionid=sessionid, timeout=5
            )
        assert other.value.iq["error"].xml.find(f"{CMD}bad-sessionid") is not None
        with pytest.raises(IqError) as unknown:
            await adhoc.send_command(
                "localhost", node, action="complete", sessionid="nope", timeout=5
            )
        assert unknown.value.condition == "bad-request"
        with pytest.raises(IqError) as malformed:
            await adhoc.send_command("localhost", node, action="jump", timeout=5)
        assert malformed.value.iq["error"].xml.find(f"{CMD}malformed-action") is not None
        with pytest.raises(IqError) as prev:
            await adhoc.send_command("localhost", node, action="prev", sessionid=sessionid)
        assert prev.value.iq["error"].xml.find(f"{CMD}bad-action") is not None
        with pytest.raises(IqError) as payload:
            await adhoc.send_command(
                "localhost",
                node,
                action="complete",
                sessionid=sessionid,
                payload=submit_form({"password": "x"}),
                timeout=5,
            )
        assert payload.value.iq["error"].xml.find(f"{CMD}bad-payload") is not None
        canceled = await adhoc.send_command(
            "localhost", node, action="cancel", sessionid=sessionid, timeout=5
        )
        assert canceled["command"]["status"] == "canceled"
        with pytest.raises(IqError) as expired:
            await adhoc.send_command(
                "localhost", node, action="complete", sessionid=sessionid, timeout=5
            )
        assert expired.value.condition == "not-allowed"
        assert expired.value.iq["error"].xml.find(f"{CMD}session-expired") is not None
        with pytest.raises(IqError) as missing:
            await adhoc.send_command("localhost", f"{ADMIN}#nothing", timeout=5)
        assert missing.value.condition == "item-not-found"
    finally:
        await close(alice)
        await close(boss)


async def test_reload_without_a_configuration_file_is_refused_with_its_reason(
    running: RunningServer,
) -> None:
    boss = await admin_client(running)
    try:
        done = await run(boss, "https://heron.invalid/admin#reload")
        assert done["command"].xml.find(f"{CMD}note").get("type") == "error"
        assert "configuration file" in note(done)
    finally:
        await close(boss)
