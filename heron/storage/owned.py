"""Rows that belong to an account go when the account goes.

A store's per-account table names its owner with ``(domain, username)`` and a foreign key
to ``users`` with ``ON DELETE CASCADE``, so deleting the account (in-band, ``heron
deluser``, any future admin command) removes them in the same statement, on either engine,
without the deleting code knowing which modules kept what.

SQLite cannot add a foreign key to an existing table: `sqlite_rebuild` writes the usual
dance (a new table, the rows copied, the old one dropped, the new one renamed). Rows of
accounts that no longer exist are not copied: they were left behind by deletions made
before the key existed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from heron.storage.db import Dialect, Migration

OWNED_BY_ACCOUNT: Final = (
    "FOREIGN KEY (domain, username) REFERENCES users (domain, username) ON DELETE CASCADE"
)


def sqlite_rebuild(table: str, definition: str, columns: str, suffix: str = "") -> str:
    """A migration script giving SQLite ``table`` the column ``definition`` (the part
    between the parentheses of CREATE TABLE) while keeping ``columns`` of rows whose account
    exists; ``suffix`` follows the closing parenthesis (``WITHOUT ROWID``)."""
    new = f"{table}_rebuilt"
    # Names and definitions come from the stores' own constants, never from input.
    create = f"CREATE TABLE {new} ({definition}){suffix}"
    copy = f"INSERT INTO {new} ({columns}) SELECT {columns} FROM {table} AS t"  # noqa: S608
    owned = (
        "WHERE EXISTS (SELECT 1 FROM users AS u"
        " WHERE u.domain = t.domain AND u.username = t.username)"
    )
    swap = f"DROP TABLE {table};\nALTER TABLE {new} RENAME TO {table};\n"
    return f"{create};\n{copy} {owned};\n{swap}"


def owned_table(
    owner: str, table: str, columns: str, names: str, suffix: str = ""
) -> Mapping[Dialect, Sequence[Migration]]:
    """The migrations of one per-account table first made without its foreign key: on
    SQLite version 1 as it was made and 2 rebuilt with the key; on PostgreSQL (which came
    later) version 1 with the key at once. ``columns`` is the text between the parentheses,
    ``names`` the column names copied over, ``suffix`` what follows (``WITHOUT ROWID``)."""
    owned = f"{columns},\n{OWNED_BY_ACCOUNT}"
    return {
        "sqlite": (
            Migration(owner, 1, f"CREATE TABLE {table} ({columns}\n){suffix};"),
            Migration(owner, 2, sqlite_rebuild(table, owned, names, suffix)),
        ),
        "postgresql": (Migration(owner, 1, f"CREATE TABLE {table} ({owned});"),),
    }
