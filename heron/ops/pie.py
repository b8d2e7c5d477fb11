"""XEP-0227: Portable Import/Export of a deployment (`heron import`, `heron export`).

What moves: accounts with their SCRAM credentials (hashes stay hashes: a source that had
only SCRAM-SHA-1 keys gives an account that logs in with SCRAM-SHA-1), or a plain password
where the source kept one; rosters with subscription states, groups and pending requests;
vCards; private XML; offline messages; PEP nodes with their items. Read: one
`<server-data/>` file, or a directory of them (Prosody's xep0227 store writes one file a
user, ejabberd's export_piefxis one a host). Each account is one item: it is checked whole
before anything is written, and what was written for it is removed again if a later write
fails, so a failed item leaves nothing behind; the report lists each failure and counts at
the end.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from heron import ns
from heron.config import ServerConfig
from heron.core.accounts import AccountService
from heron.credentials import HASHES, ScramKeys, hashlib_name
from heron.jid import JID, InvalidJID
from heron.modules.offline.store import SqlOfflineStore
from heron.modules.private import SqlPrivateStore
from heron.modules.pubsub.engine import PubsubService
from heron.modules.pubsub.model import Policy
from heron.modules.pubsub.module import PEP_DEFAULT
from heron.modules.pubsub.store import SqlPubsubStore
from heron.modules.roster.store import RosterFull, RosterItem, SqlRosterStore
from heron.modules.vcard import SqlVcardStore
from heron.stanza import StanzaError
from heron.storage.accounts import SqlAccountStore, UserExists
from heron.storage.db import Database
from heron.xmlstream import serialize
from heron.xmlstream.element import Element
from heron.xmlstream.limits import Limits
from heron.xmlstream.stored import parse_stored

PIE, PIE_SCRAM, XINCLUDE = ns.PIE, ns.PIE_SCRAM, ns.XINCLUDE
ROSTER, PRIVATE, VCARD = ns.ROSTER, ns.PRIVATE, ns.VCARD
PUBSUB, PUBSUB_OWNER = ns.PUBSUB, ns.PUBSUB_OWNER
SUBSCRIPTIONS: Final = frozenset({"none", "to", "from", "both"})
MAX_FILE_BYTES: Final = 1 << 30
MAX_ROSTER: Final = 100_000
MAX_OFFLINE: Final = 100_000
_DECLARATION: Final = re.compile(r"^\ufeff?\s*<\?xml[^>]*\?>\s*")


class ImportProblem(Exception):
    """Why one item cannot be imported."""


@dataclass
class Report:
    imported: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (item, reason)

    def lines(self) -> list[str]:
        out = [f"failed {item}: {reason}" for item, reason in self.failed]
        out.append(f"{len(self.imported)} imported, {len(self.failed)} failed")
        return out


@dataclass
class _Plan:
    jid: JID
    keys: list[ScramKeys]
    password: str | None
    roster: list[RosterItem]
    vcard: str | None
    private: list[tuple[str, str, str]]
    offline: list[str]
    pep: list[tuple[str, Element | None, list[Element]]] = field(default_factory=list)
    """PEP nodes (XEP-0163): name, configuration form if exported, items oldest first."""


# --- reading ------------------------------------------------------------------------


def read_documents(source: Path) -> Iterator[tuple[str, list[Element] | None]]:
    """(file name, the `<host/>` elements it holds, or None when it is not a readable
    XEP-0227 document). ejabberd's export_piefxis writes a `<server-data/>` that includes
    (XInclude) one file a host whose root is `<host/>`: included files are read with the
    file that includes them, and once."""
    files = sorted(source.glob("*.xml")) if source.is_dir() else [source]
    done: set[Path] = set()
    for path in files:
        if path.resolve() in done:
            continue
        done.add(path.resolve())
        root = _read(path)
        if root is None:
            yield path.name, None
            continue
        if root.tag == "host":
            yield path.name, [root]
            continue
        hosts = root.find_all("host", PIE)
        for include in root.find_all("include", XINCLUDE):
            href = include.attrs.get("href", "")
            target = path.parent / href
            if not href or "/" in href or "\\" in href or target.resolve() in done:
                continue  # only a sibling file, and each once
            done.add(target.resolve())
            included = _read(target)
            if included is None:
                yield href, None
            elif included.tag == "host":
                hosts.append(included)
            else:
                hosts.extend(included.find_all("host", PIE))
        yield path.name, hosts


def _read(path: Path) -> Element | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return parse_document(data)


def parse_document(data: bytes) -> Element | None:
    """A whole XEP-0227 document (`<server-data/>`, or ejabberd's per-host `<host/>`), with
    Heron's restricted parser (no DTD, no entities)."""
    if len(data) > MAX_FILE_BYTES:
        return None
    try:
        text = _DECLARATION.sub("", data.decode("utf-8"), count=1)
    except UnicodeDecodeError:
        return None
    limits = Limits(max_stanza_bytes=len(data) + 1, max_depth=64, max_attr_bytes=1 << 20)
    root = parse_stored(text, limits=limits)
    if root is None or root.ns != PIE or root.tag not in ("server-data", "host"):
        return None
    return root


def _b64(text: str | None, what: str) -> bytes:
    if not text:
        raise ImportProblem(f"scram-credentials without {what}")
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ImportProblem(f"scram-credentials: {what} is not base64") from None


def _keys(user: Element) -> list[ScramKeys]:
    keys = []
    for cred in user.find_all("scram-credentials", PIE_SCRAM):
        mechanism = cred.attrs.get("mechanism", "")
        hash_name = mechanism.removeprefix("SCRAM-")
        if not mechanism.startswith("SCRAM-") or hash_name not in HASHES:
            raise ImportProblem(f"unknown hash scheme {mechanism!r}")
        count = cred.child_text("iter-count", PIE_SCRAM) or ""
        if not count.strip().isdigit() or int(count) < 1:
            raise ImportProblem("scram-credentials: iter-count is not a positive number")
        values = {
            what: _b64(cred.child_text(what, PIE_SCRAM), what)
            for what in ("salt", "stored-key", "server-key")
        }
        size = hashlib.new(hashlib_name(hash_name)).digest_size
        if len(values["stored-key"]) != size:
            # COMPAT: ejabberd 23.01's export_piefxis encodes each value in base64 twice.
            values = {what: _b64(v.decode("ascii", "replace"), what) for what, v in values.items()}
        if len(values["stored-key"]) != size or len(values["server-key"]) != size:
            raise ImportProblem(f"scram-credentials: keys of the wrong size for {mechanism}")
        keys.append(
            ScramKeys(
                hash_name=hash_name,
                salt=values["salt"],
                iterations=int(count),
                stored_key=values["stored-key"],
                server_key=values["server-key"],
            )
        )
    if len({k.hash_name for k in keys}) != len(keys):
        raise ImportProblem("two sets of credentials for one hash")
    return keys


def _bare(text: str, what: str) -> str:
    try:
        jid = JID.parse(text)
    except InvalidJID:
        raise ImportProblem(f"{what}: {text!r} is not a JID") from None
    return str(jid.bare)


def _roster(user: Element, me: JID) -> list[RosterItem]:
    pending = {
        _bare(p.attrs.get("from", ""), "subscription request")
        for p in user.elements()
        if p.tag == "presence" and p.attrs.get("type") == "subscribe"
    }
    items: dict[str, RosterItem] = {}
    query = user.find("query", ROSTER)
    for item in query.find_all("item", ROSTER) if query is not None else ():
        contact = _bare(item.attrs.get("jid", ""), "roster item")
        subscription = item.attrs.get("subscription", "none")
        if subscription not in SUBSCRIPTIONS:
            raise ImportProblem(f"roster item {contact}: subscription {subscription!r}")
        if contact == str(me):
            continue  # an account is never its own contact
        groups = tuple(dict.fromkeys(g.text for g in item.find_all("group", ROSTER) if g.text))
        items[contact] = RosterItem(
            contact,
            name=item.attrs.get("name") or None,
            subscription=subscription,
            ask=item.attrs.get("ask") == "subscribe",
            groups=groups,
            pending_in=contact in pending and subscription in ("none", "to"),
        )
    for contact in sorted(pending - set(items) - {str(me)}):
        items[contact] = RosterItem(contact, pending_in=True, in_roster=False)
    if len(items) > MAX_ROSTER:
        raise ImportProblem(f"more than {MAX_ROSTER} roster items")
    return list(items.values())


def _plan(user: Element, domain: str) -> _Plan:
    name = user.attrs.get("name", "")
    try:
        jid = JID.make(name, domain)
    except InvalidJID:
        raise ImportProblem(f"{name!r} is not a valid user name") from None
    keys = _keys(user)
    password = user.attrs.get("password")
    if password is not None and password.startswith("scram:"):
        raise ImportProblem("unknown hash scheme in the password attribute")
    if not keys and not password:
        raise ImportProblem("no credentials (neither scram-credentials nor a password)")
    vcard = user.find("vCard", VCARD)
    private = []
    query = user.find("query", PRIVATE)
    for fragment in query.elements() if query is not None else ():
        private.append((fragment.ns or "", fragment.tag, serialize(fragment)))
    offline = []
    box = user.find("offline-messages", PIE)
    for message in box.elements() if box is not None else ():
        if message.tag == "message":
            offline.append(serialize(message, ns.CLIENT))
    if len(offline) > MAX_OFFLINE:
        raise ImportProblem(f"more than {MAX_OFFLINE} offline messages")
    plan = _Plan(
        jid,
        keys,
        None if keys else password,
        _roster(user, jid),
        serialize(vcard) if vcard is not None else None,
        private,
        offline,
    )
    plan.pep = _pep(user)
    return plan


def _pep(user: Element) -> list[tuple[str, Element | None, list[Element]]]:
    """Prosody's PEP in XEP-0227: <pubsub/> with <items node/>, and configurations in a
    <pubsub xmlns='…#owner'/> of <configure node/> forms."""
    forms: dict[str, Element] = {}
    for owner in user.find_all("pubsub", PUBSUB_OWNER):
        for configure in owner.find_all("configure", PUBSUB_OWNER):
            form = configure.find("x", ns.DATA_FORMS)
            if configure.attrs.get("node") and form is not None:
                forms[configure.attrs["node"]] = form
    nodes: list[tuple[str, Element | None, list[Element]]] = []
    for pubsub in user.find_all("pubsub", PUBSUB):
        for items in pubsub.find_all("items", PUBSUB):
            name = items.attrs.get("node", "")
            if not name:
                raise ImportProblem("a PEP node without a name")
            nodes.append((name, forms.pop(name, None), items.find_all("item", PUBSUB)))
    nodes.extend((name, form, []) for name, form in forms.items())
    return nodes


# --- writing ------------------------------------------------------------------------


class Importer:
    def __init__(self, db: Database, config: ServerConfig, accounts: AccountService) -> None:
        self.config = config
        self.accounts = accounts
        self.account_store = SqlAccountStore(db)
        self.roster = SqlRosterStore(db)
        self.vcard = SqlVcardStore(db)
        self.private = SqlPrivateStore(db)
        self.offline = SqlOfflineStore(db)
        self.pubsub = SqlPubsubStore(db)
        self.report = Report()

    async def run(self, sources: Iterable[Path]) -> Report:
        try:
            for source in sources:
                for name, hosts in read_documents(source):
                    if hosts is None:
                        self.report.failed.append((name, "not a readable XEP-0227 document"))
                        continue
                    for host in hosts:
                        await self._host(host)
        finally:
            await self.offline.close()  # its write-behind queue
        return self.report

    async def _host(self, host: Element) -> None:
        domain = host.attrs.get("jid", "")
        for user in host.find_all("user", PIE):
            item = f"{user.attrs.get('name', '?')}@{domain}"
            if self.config.host(domain) is None:
                self.report.failed.append((item, f"{domain} is not a host of this server"))
                continue
            try:
                plan = _plan(user, domain)
                await self._write(plan)
            except ImportProblem as exc:
                self.report.failed.append((item, str(exc)))
                continue
            self.report.imported.append(str(plan.jid))

    async def _write(self, plan: _Plan) -> None:
        jid = plan.jid
        local = jid.local or ""
        try:
            if plan.password is not None:
                await self.accounts.create(jid, plan.password)
            else:
                await self.account_store.create(local, jid.domain, plan.keys)
        except UserExists:
            raise ImportProblem("the account already exists") from None
        except ValueError as exc:
            raise ImportProblem(f"unusable credentials: {exc}") from None
        try:
            if plan.roster:
                await self.roster.put_many(
                    [(local, jid.domain, item) for item in plan.roster], MAX_ROSTER
                )
            if plan.vcard is not None:
                await self.vcard.put(jid, plan.vcard)
            if plan.private:
                await self.private.put(jid, plan.private)
            for xml in plan.offline:
                await self.offline.add(local, jid.domain, xml, MAX_OFFLINE)
            await self.offline.close()  # written now, so that a failure is this item's
            if plan.pep:
                await self._write_pep(jid, plan.pep)
        except (RosterFull, OSError, ValueError, StanzaError) as exc:
            await self._undo(plan)
            raise ImportProblem(f"not written: {exc}") from None
        except BaseException:
            await self._undo(plan)
            raise

    async def _write_pep(
        self, jid: JID, nodes: list[tuple[str, Element | None, list[Element]]]
    ) -> None:
        """Through the pubsub engine, so that the nodes are what Heron would have made."""
        policy = Policy(max_items=10_000, default_config=PEP_DEFAULT)
        service = PubsubService(jid, policy, owner=jid)
        for name, form, items in nodes:
            if form is not None or not items:
                service.create(name, jid, form)
            for item in items:
                service.publish(name, jid, item, may_create=True)
        await self.pubsub.save(service, service.drain())

    async def _undo(self, plan: _Plan) -> None:
        jid = plan.jid
        await self.roster.forget(jid.local or "", jid.domain)
        await self.vcard.delete(jid)
        for namespace, name, _xml in plan.private:
            await self.private.delete(jid, namespace, name)
        await self.offline.forget(jid.local or "", jid.domain)
        await self.accounts.delete(jid)


# --- export -------------------------------------------------------------------------


async def export_users(db: Database, config: ServerConfig) -> Iterator[tuple[str, Element]]:
    """(domain, `<user/>`) for every account of every host."""
    accounts, roster = SqlAccountStore(db), SqlRosterStore(db)
    vcards, offline = SqlVcardStore(db), SqlOfflineStore(db)
    pubsub, private = SqlPubsubStore(db), SqlPrivateStore(db)
    found: list[tuple[str, Element]] = []
    for host in config.hosts:
        for username, domain in await accounts.list_users(host.domain):
            jid = JID(username, domain, None)
            user = Element("user", PIE, {"name": username})
            for key in (await accounts.get_keys(username, domain) or {}).values():
                cred = user.add(
                    "scram-credentials", PIE_SCRAM, {"mechanism": f"SCRAM-{key.hash_name}"}
                )
                cred.add("iter-count", PIE_SCRAM, text=str(key.iterations))
                cred.add("salt", PIE_SCRAM, text=base64.b64encode(key.salt).decode())
                cred.add("server-key", PIE_SCRAM, text=base64.b64encode(key.server_key).decode())
                cred.add("stored-key", PIE_SCRAM, text=base64.b64encode(key.stored_key).decode())
            version, items = await roster.get(username, domain)
            query = user.add("query", ROSTER, {"version": str(version)})
            for item in items:
                if item.in_roster:
                    attrs = {"jid": item.contact, "subscription": item.subscription}
                    if item.name:
                        attrs["name"] = item.name
                    if item.ask:
                        attrs["ask"] = "subscribe"
                    el = query.add("item", ROSTER, attrs)
                    for group in item.groups:
                        el.add("group", ROSTER, text=group)
            for item in items:
                if item.pending_in:
                    user.add("presence", ns.CLIENT, {"from": item.contact, "type": "subscribe"})
            card = await vcards.get(jid)
            parsed = parse_stored(card, ("vCard", VCARD)) if card else None
            if parsed is not None:
                user.append(parsed)
            stored = await private.fragments(jid)
            if stored:
                query = user.add("query", PRIVATE)
                for _ns, _name, xml in stored:
                    fragment = parse_stored(xml)
                    if fragment is not None:
                        query.append(fragment)
            service = PubsubService(jid, Policy(), owner=jid)
            await pubsub.load(service)
            if service.nodes:
                pep = user.add("pubsub", PUBSUB)
                for node in service.nodes.values():
                    listed = pep.add("items", PUBSUB, {"node": node.name})
                    for published in node.items.values():
                        el = listed.add("item", PUBSUB, {"id": published.id})
                        if published.payload is not None:
                            el.append(published.payload)
            messages = await offline.fetch(username, domain)
            if messages:
                box = user.add("offline-messages", PIE)
                for _id, xml in messages:
                    message = parse_stored(xml)
                    if message is not None:
                        box.append(message)
            found.append((domain, user))
    await offline.close()
    return iter(found)


def document(users: Iterable[tuple[str, Element]]) -> str:
    """One `<server-data/>` holding the users, grouped by host."""
    root = Element("server-data", PIE)
    hosts: dict[str, Element] = {}
    for domain, user in users:
        host = hosts.get(domain)
        if host is None:
            host = hosts[domain] = root.add("host", PIE, {"jid": domain})
        host.append(user)
    return "<?xml version='1.0' encoding='UTF-8'?>\n" + serialize(root) + "\n"
