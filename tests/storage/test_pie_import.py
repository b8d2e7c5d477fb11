"""XEP-0227 import on both engines: bad input is reported per item with a count, and an
item that fails leaves nothing behind."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from heron.config import config_from_dict
from heron.core.accounts import AccountService
from heron.core.server import Server
from heron.credentials import derive_keys, prepare_password
from heron.jid import JID
from heron.modules import AVAILABLE
from heron.modules.pubsub.engine import PubsubService
from heron.modules.pubsub.model import Policy
from heron.modules.pubsub.store import SqlPubsubStore
from heron.modules.roster.store import SqlRosterStore
from heron.modules.vcard import SqlVcardStore
from heron.ops.pie import Importer, export_users
from heron.storage.accounts import SqlAccountStore
from heron.storage.db import Database
from heron.storage.disabled import SqlDisabledAccounts
from tests.engines import ENGINES, open_engine

CONFIG = config_from_dict({"hosts": {"example.org": {}}}, "test")


@pytest.fixture(params=ENGINES)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    database = await open_engine(request.param, tmp_path, request)
    await database.migrate(Server(CONFIG, AVAILABLE).migrations(database.dialect))
    try:
        yield database
    finally:
        await database.close()


def importer(db: Database) -> Importer:
    accounts = AccountService(SqlAccountStore(db), b"s" * 32, 4096, SqlDisabledAccounts(db))
    return Importer(db, CONFIG, accounts)


def scram(password: str, mechanism: str = "SCRAM-SHA-1") -> str:
    keys = derive_keys(prepare_password(password), "SHA-1")
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return (
        f"<scram-credentials xmlns='urn:xmpp:pie:0#scram' mechanism='{mechanism}'>"
        f"<iter-count>4096</iter-count><salt>{b64(keys.salt)}</salt>"
        f"<server-key>{b64(keys.server_key)}</server-key>"
        f"<stored-key>{b64(keys.stored_key)}</stored-key></scram-credentials>"
    )


def document(users: str, host: str = "example.org") -> str:
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        f"<server-data xmlns='urn:xmpp:pie:0'><host jid='{host}'>{users}</host></server-data>"
    )


async def test_bad_items_are_reported_one_by_one_and_leave_nothing(
    db: Database, tmp_path: Path
) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "a-good.xml").write_text(
        document(
            f"<user name='alice'>{scram('pw')}"
            "<query xmlns='jabber:iq:roster'><item jid='bob@example.org' subscription='from'>"
            "<group>Work</group></item></query>"
            "<presence xmlns='jabber:client' from='eve@example.net' type='subscribe'/>"
            "<vCard xmlns='vcard-temp'><FN>Alice ✈</FN></vCard>"
            "<query xmlns='jabber:iq:private'><note xmlns='urn:x:notes'>hi</note></query>"
            "<offline-messages><message xmlns='jabber:client' from='bob@example.org'"
            " to='alice@example.org' type='chat'><body>while away</body></message>"
            "</offline-messages>"
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'>"
            "<items node='urn:xmpp:bookmarks:1'>"
            "<item id='room1@conference.example.org'><conference xmlns='urn:xmpp:bookmarks:1'"
            " name='One'/></item>"
            "<item id='room2@conference.example.org'><conference xmlns='urn:xmpp:bookmarks:1'"
            " name='Two'/></item></items>"
            "<items node='http://jabber.org/protocol/nick'><item id='current'>"
            "<nick xmlns='http://jabber.org/protocol/nick'>Ally</nick></item></items>"
            "</pubsub>"
            "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>"
            "<configure node='urn:xmpp:bookmarks:1'><x xmlns='jabber:x:data' type='submit'>"
            "<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#node_config</value>"
            "</field><field var='pubsub#max_items'><value>max</value></field>"
            "<field var='pubsub#access_model'><value>whitelist</value></field>"
            "</x></configure></pubsub></user>"
            "<user name='plain' password='plain-pw'/>"
        )
    )
    (folder / "b-bad.xml").write_text(
        document(
            f"<user name='hashy'>{scram('pw', 'SCRAM-MD5')}"
            "<vCard xmlns='vcard-temp'><FN>never</FN></vCard></user>"
            "<user name='nocreds'/>"
            f"<user name='badroster'>{scram('pw')}<query xmlns='jabber:iq:roster'>"
            "<item jid='x@example.org' subscription='sometimes'/></query></user>"
            # Fails only when its PEP node is made, after the account and roster are written.
            f"<user name='halfway'>{scram('pw')}<query xmlns='jabber:iq:roster'>"
            "<item jid='bob@example.org' subscription='both'/></query>"
            "<vCard xmlns='vcard-temp'><FN>Half</FN></vCard>"
            "<pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>"
            "<configure node='n'><x xmlns='jabber:x:data' type='submit'>"
            "<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#node_config</value>"
            "</field><field var='pubsub#max_items'><value>lots</value></field>"
            "</x></configure></pubsub></user>"
        )
    )
    (folder / "c-elsewhere.xml").write_text(
        document(f"<user name='other'>{scram('pw')}</user>", "example.net")
    )
    (folder / "d-broken.xml").write_text("<server-data xmlns='urn:xmpp:pie:0'><host>")
    (folder / "e-entity.xml").write_text(
        "<!DOCTYPE x [<!ENTITY a 'b'>]><server-data xmlns='urn:xmpp:pie:0'/>"
    )
    report = await importer(db).run([folder])
    assert sorted(report.imported) == ["alice@example.org", "plain@example.org"]
    reasons = dict(report.failed)
    assert reasons["hashy@example.org"] == "unknown hash scheme 'SCRAM-MD5'"
    assert "no credentials" in reasons["nocreds@example.org"]
    assert "subscription 'sometimes'" in reasons["badroster@example.org"]
    assert "not a host of this server" in reasons["other@example.net"]
    assert "not a readable" in reasons["d-broken.xml"]
    assert "not a readable" in reasons["e-entity.xml"]
    assert reasons["halfway@example.org"].startswith("not written")
    assert report.lines()[-1] == "2 imported, 7 failed"
    accounts = SqlAccountStore(db)
    assert await accounts.list_users("example.org") == [
        ("alice", "example.org"),
        ("plain", "example.org"),
    ]
    assert await SqlVcardStore(db).get(JID.parse("hashy@example.org")) is None
    # What was written for the one that failed halfway is gone again.
    assert await SqlVcardStore(db).get(JID.parse("halfway@example.org")) is None
    assert (await SqlRosterStore(db).get("halfway", "example.org"))[1] == []
    # What alice brought is all there; the account that already exists is refused.
    _version, items = await SqlRosterStore(db).get("alice", "example.org")
    by_contact = {i.contact: i for i in items}
    assert by_contact["bob@example.org"].subscription == "from"
    assert by_contact["bob@example.org"].groups == ("Work",)
    assert by_contact["eve@example.net"].pending_in
    assert not by_contact["eve@example.net"].in_roster
    again = await importer(db).run([folder / "a-good.xml"])
    assert again.imported == []
    assert dict(again.failed)["alice@example.org"] == "the account already exists"
    _version, unchanged = await SqlRosterStore(db).get("alice", "example.org")
    assert unchanged == items
    # Exported again, everything is in the document (keys as they were).
    users = dict((u.attrs["name"], u) for _d, u in await export_users(db, CONFIG))
    alice = users["alice"]
    assert alice.find("scram-credentials", "urn:xmpp:pie:0#scram") is not None
    offline = alice.find("offline-messages", "urn:xmpp:pie:0")
    assert offline is not None
    assert [m.child_text("body", "jabber:client") for m in offline.elements()] == ["while away"]
    assert users["plain"].find_all("scram-credentials", "urn:xmpp:pie:0#scram")
    private = alice.find("query", "jabber:iq:private")
    assert private is not None
    assert [(e.tag, e.ns, e.text) for e in private.elements()] == [("note", "urn:x:notes", "hi")]
    # PEP: both nodes with their items, the bookmarks node configured as exported.
    service = PubsubService(JID.parse("alice@example.org"), Policy(), owner=None)
    await SqlPubsubStore(db).load(service)
    bookmarks = service.nodes["urn:xmpp:bookmarks:1"]
    assert list(bookmarks.items) == ["room1@conference.example.org", "room2@conference.example.org"]
    assert bookmarks.config.access_model == "whitelist"
    assert list(service.nodes["http://jabber.org/protocol/nick"].items) == ["current"]
    pep = alice.find("pubsub", "http://jabber.org/protocol/pubsub")
    assert pep is not None
    assert sorted(i.attrs["node"] for i in pep.elements()) == [
        "http://jabber.org/protocol/nick",
        "urn:xmpp:bookmarks:1",
    ]
