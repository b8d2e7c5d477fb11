"""What the blocking command keeps: each account's blocked JIDs (gone with the account),
and the XEP-0377 reports users attached to blocks, kept for the admins (``heron reports``)
even after the reporting account is deleted: they are evidence about someone else."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Protocol

from heron.jid import JID
from heron.storage.db import Dialect, Migration, SqlStore, ddl
from heron.storage.owned import OWNED_BY_ACCOUNT, sqlite_rebuild


@dataclass(frozen=True, slots=True)
class Report:
    """A XEP-0377 report: who reported whom, why, and which messages."""

    reporter: str
    reported: str
    reason: str
    text: str
    stanza_ids: tuple[str, ...]
    at: float


class ListFull(Exception):
    """The block would take the account's list past its limit."""


@dataclass(frozen=True, slots=True)
class Change:
    """One change of an account's block list: block ``add``, unblock ``remove`` (or
    everything, ``remove_all``), and keep the spam ``reports`` that came with it."""

    add: Sequence[str] = ()
    remove: Sequence[str] = ()
    remove_all: bool = False
    reports: Sequence[Report] = ()


class BlockingStore(Protocol):
    async def blocked(self, account: JID) -> set[str]:
        """The JIDs (bare, full or domains, as text) the account blocks."""
        ...

    async def change(self, account: JID, change: Change, limit: int | None = None) -> None:
        """Make ``change``, all or none. Raises `ListFull` when the list would hold more
        than ``limit`` JIDs."""
        ...

    async def reports(self, domain: str) -> list[Report]:
        """Every report made by users of ``domain``, oldest first."""
        ...


_BLOCKLIST: Final = """
    domain TEXT NOT NULL,
    username TEXT NOT NULL,
    blocked TEXT NOT NULL,
    PRIMARY KEY (domain, username, blocked)"""
_REPORTS: Final = """
        CREATE TABLE spam_reports (
            id {serial},
            domain TEXT NOT NULL,
            reporter TEXT NOT NULL,
            reported TEXT NOT NULL,
            reason TEXT NOT NULL,
            text TEXT NOT NULL,
            stanza_ids TEXT NOT NULL,
            at {real} NOT NULL
        );
        """
_SQLITE: Final = (
    # Versions 1 and 2 are the tables as the module made them before the store existed.
    Migration("blocking", 1, f"CREATE TABLE blocklist ({_BLOCKLIST}\n);"),
    Migration("blocking", 2, ddl("sqlite", _REPORTS)),
    Migration(
        "blocking",
        3,
        sqlite_rebuild(
            "blocklist", f"{_BLOCKLIST},\n{OWNED_BY_ACCOUNT}", "domain, username, blocked"
        ),
    ),
)
_POSTGRESQL: Final = (
    Migration(
        "blocking",
        1,
        f"""
        CREATE TABLE blocklist ({_BLOCKLIST},
            {OWNED_BY_ACCOUNT}
        );"""
        + ddl("postgresql", _REPORTS)
        + "CREATE INDEX spam_reports_domain ON spam_reports (domain, id);\n        ",
    ),
)


class SqlBlockingStore(SqlStore):
    """The ``blocklist`` and ``spam_reports`` tables, on either engine."""

    MIGRATIONS: ClassVar[Mapping[Dialect, Sequence[Migration]]] = {
        "sqlite": _SQLITE,
        "postgresql": _POSTGRESQL,
    }

    async def blocked(self, account: JID) -> set[str]:
        rows = await self.db.fetch(
            "SELECT blocked FROM blocklist WHERE domain = ? AND username = ?",
            account.domain,
            account.local,
        )
        return {str(row[0]) for row in rows}

    async def change(self, account: JID, change: Change, limit: int | None = None) -> None:
        add, remove, reports = change.add, change.remove, change.reports
        owner = (account.domain, account.local)
        async with self.db.transaction() as tx:
            if change.remove_all:
                await tx.execute("DELETE FROM blocklist WHERE domain = ? AND username = ?", *owner)
            if remove:
                await tx.executemany(
                    "DELETE FROM blocklist WHERE domain = ? AND username = ? AND blocked = ?",
                    [(*owner, item) for item in remove],
                )
            if add:
                await tx.executemany(
                    "INSERT INTO blocklist (domain, username, blocked) VALUES (?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    [(*owner, item) for item in add],
                )
                if limit is not None:
                    count = await tx.fetchval(
                        "SELECT COUNT(*) FROM blocklist WHERE domain = ? AND username = ?", *owner
                    )
                    if int(count) > limit:
                        raise ListFull(f"at most {limit} blocked JIDs")  # rolls back
            if reports:
                await tx.executemany(
                    "INSERT INTO spam_reports"
                    " (domain, reporter, reported, reason, text, stanza_ids, at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            account.domain,
                            r.reporter,
                            r.reported,
                            r.reason,
                            r.text,
                            json.dumps(list(r.stanza_ids)),
                            r.at,
                        )
                        for r in reports
                    ],
                )

    async def reports(self, domain: str) -> list[Report]:
        rows = await self.db.fetch(
            "SELECT reporter, reported, reason, text, stanza_ids, at FROM spam_reports"
            " WHERE domain = ? ORDER BY id",
            domain,
        )
        return [
            Report(str(r), str(d), str(why), str(t), tuple(json.loads(str(i))), float(at))
            for r, d, why, t, i, at in rows
        ]
