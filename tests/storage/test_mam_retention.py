"""The archive's retention finds the first row to keep by binary search over row ids."""

from __future__ import annotations

import sqlite3

import pytest

from heron.modules.mam import MIGRATIONS, _first_row_at_or_after


@pytest.fixture
def conn() -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:")
    for migration in MIGRATIONS:
        connection.executescript(migration.sql)
    return connection


def fill(conn: sqlite3.Connection, stamps: list[tuple[int, float]]) -> None:
    conn.executemany(
        "INSERT INTO mam_messages (id, archive_id, domain, username, with_jid, at, xml)"
        " VALUES (?, ?, 'localhost', 'a', 'b@localhost', ?, '<message/>')",
        [(row_id, f"id{row_id}", at) for row_id, at in stamps],
    )


@pytest.mark.parametrize("cutoff", [0.0, 5.0, 10.0, 10.5, 55.0, 99.0, 1000.0])
def test_first_row_to_keep_with_gaps(conn: sqlite3.Connection, cutoff: float) -> None:
    stamps = [(1, 1.0), (2, 5.0), (7, 10.0), (8, 11.0), (30, 55.0), (31, 56.0), (90, 99.0)]
    fill(conn, stamps)
    expected = next((row_id for row_id, at in stamps if at >= cutoff), 91)
    assert _first_row_at_or_after(conn, cutoff) == expected


def test_empty_archive(conn: sqlite3.Connection) -> None:
    assert _first_row_at_or_after(conn, 10.0) == 0
