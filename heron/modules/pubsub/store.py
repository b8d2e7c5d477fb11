"""Pubsub nodes and items in SQLite, for the service and for every PEP account alike.

A node is one row (configuration, affiliations and subscriptions as JSON); an item is one
row, its payload serialized XML that is parsed again under the client limits when read. Item
order is the rowid: a re-published id is written anew and so becomes the newest. An
operation's changes (an engine ``Outbox``) are written in one transaction, before the
client hears of success.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import Final

from heron.jid import JID, InvalidJID
from heron.modules.pubsub.config import NodeConfig
from heron.modules.pubsub.engine import Item, Node, Outbox, PubsubService, Subscription
from heron.storage.sqlite import Migration, SqliteDatabase, transaction
from heron.xmlstream import serialize
from heron.xmlstream.stored import parse_stored

log = logging.getLogger(__name__)

MIGRATIONS: Final = (
    Migration(
        "pubsub",
        1,
        """
        CREATE TABLE pubsub_nodes (
            service TEXT NOT NULL,
            node TEXT NOT NULL,
            config TEXT NOT NULL,
            affiliations TEXT NOT NULL,
            subscriptions TEXT NOT NULL,
            PRIMARY KEY (service, node)
        );
        CREATE TABLE pubsub_items (
            service TEXT NOT NULL,
            node TEXT NOT NULL,
            item_id TEXT NOT NULL,
            publisher TEXT NOT NULL,
            payload TEXT,
            UNIQUE (service, node, item_id)
        );
        """,
    ),
)


class PubsubStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self.db = db

    async def migrate(self) -> None:
        await self.db.migrate(MIGRATIONS)

    async def load(self, service: PubsubService) -> None:
        """Fill ``service`` with its stored nodes and items."""
        key = str(service.jid)
        nodes, items = await self.db.run(lambda conn: _read(conn, key))
        for name, config, affiliations, subscriptions in nodes:
            node = Node(name, NodeConfig.from_json(config))
            node.affiliations = {jid: str(a) for jid, a in _jids(json.loads(affiliations))}
            for jid, value in _jids(json.loads(subscriptions)):
                fields = value if isinstance(value, list) else []
                subid, state = (fields + ["", "subscribed"][len(fields) :])[:2]
                deliver = bool(fields[2]) if len(fields) > 2 else True  # older rows: on
                node.subscriptions[jid] = Subscription(jid, str(subid), str(state), deliver)
            service.nodes[name] = node
        for name, item_id, publisher, payload in items:
            node_ = service.nodes.get(name)
            if node_ is None:
                continue
            element = parse_stored(payload) if payload is not None else None
            if payload is not None and element is None:
                log.warning("stored item %s of node %s on %s is unreadable", item_id, name, key)
                continue
            try:
                by = JID.parse(publisher)
            except InvalidJID:
                by = service.jid
            node_.items[item_id] = Item(item_id, element, by)

    async def save(self, service: PubsubService, out: Outbox) -> None:
        if not out.changed:
            return
        key = str(service.jid)
        rows = []
        for name in out.saved_nodes:
            node = service.nodes.get(name)
            if node is None:
                continue
            rows.append(
                (
                    key,
                    name,
                    node.config.to_json(),
                    json.dumps({str(j): a for j, a in node.affiliations.items()}),
                    json.dumps(
                        {
                            str(j): [s.subid, s.state, s.deliver]
                            for j, s in node.subscriptions.items()
                        }
                    ),
                )
            )
        items = [
            (key, name, item.id, str(item.publisher), _xml(item))
            for name, item in out.saved_items
            if name in service.nodes and item.id in service.nodes[name].items
        ]
        deleted = [(key, name, item_id) for name, item_id in out.deleted_items]
        gone = [(key, name) for name in out.deleted_nodes | out.purged_nodes]
        dropped = [(key, name) for name in out.deleted_nodes]

        def write(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany("DELETE FROM pubsub_items WHERE service = ? AND node = ?", gone)
                conn.executemany("DELETE FROM pubsub_nodes WHERE service = ? AND node = ?", dropped)
                conn.executemany(
                    "INSERT OR REPLACE INTO pubsub_nodes"
                    " (service, node, config, affiliations, subscriptions) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                conn.executemany(
                    "DELETE FROM pubsub_items WHERE service = ? AND node = ? AND item_id = ?",
                    deleted,
                )
                conn.executemany(
                    "INSERT OR REPLACE INTO pubsub_items (service, node, item_id, publisher,"
                    " payload) VALUES (?, ?, ?, ?, ?)",
                    items,
                )

        await self.db.run(write)

    async def forget(self, service: JID) -> None:
        """Everything of one service (an account that was deleted)."""
        key = str(service)

        def delete(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute("DELETE FROM pubsub_items WHERE service = ?", (key,))
                conn.execute("DELETE FROM pubsub_nodes WHERE service = ?", (key,))

        await self.db.run(delete)


def _xml(item: Item) -> str | None:
    return serialize(item.payload) if item.payload is not None else None


def _jids(data: dict[str, object]) -> list[tuple[JID, object]]:
    found = []
    for text, value in data.items():
        try:
            found.append((JID.parse(str(text)), value))
        except InvalidJID:
            log.warning("stored pubsub JID %r is invalid; skipped", text)
    return found


def _read(
    conn: sqlite3.Connection, key: str
) -> tuple[list[tuple[str, str, str, str]], list[tuple[str, str, str, str | None]]]:
    nodes = conn.execute(
        "SELECT node, config, affiliations, subscriptions FROM pubsub_nodes WHERE service = ?",
        (key,),
    ).fetchall()
    items = conn.execute(
        "SELECT node, item_id, publisher, payload FROM pubsub_items WHERE service = ?"
        " ORDER BY rowid",
        (key,),
    ).fetchall()
    return [tuple(map(str, r)) for r in nodes], [  # type: ignore[misc]  # 4 columns each
        (str(a), str(b), str(c), None if d is None else str(d)) for a, b, c, d in items
    ]
