"""Writes that can wait, written together (the archive, offline messages, last activity).

A `WriteBehind` queues rows and writes them in one statement per batch: at most
``delay_s`` after the first queued row, or as soon as ``max_rows`` are waiting, and on
`close`. What a crash (not a stop) can lose is therefore bounded by the window: rows queued
in the last ``delay_s`` plus a batch being written. Readers call `flush` first, or merge
`pending()` (the queued rows and the batch being written) into what they read.

`append_rows` writes one batch: COPY on PostgreSQL (one round trip, no per-row parsing),
a multi-row executemany in one transaction on SQLite, sent to its thread in one hop (the
commit happens there, not on the event loop).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar, runtime_checkable

from heron.storage.db import Database

log = logging.getLogger(__name__)

T = TypeVar("T")
KEEP_BATCHES = 64  # while the database refuses writes, at most this many batches wait
BACKLOG_BATCHES = 8  # while a batch is written, adders wait only when this many more queue


@runtime_checkable
class BulkCopy(Protocol):
    """An engine that appends a batch in one call (COPY on PostgreSQL, one hop on SQLite)."""

    async def copy_records(
        self, table: str, columns: Sequence[str], records: Sequence[Sequence[object]]
    ) -> None: ...


async def append_rows(
    db: Database, table: str, columns: Sequence[str], rows: Sequence[Sequence[object]]
) -> None:
    """Append ``rows`` to ``table`` in one go, in their order (generated ids follow it)."""
    if not rows:
        return
    if isinstance(db, BulkCopy):
        await db.copy_records(table, columns, rows)
        return
    marks = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608 (names are the store's own)
    async with db.transaction() as tx:
        await tx.executemany(sql, rows)


class WriteBehind(Generic[T]):
    """A queue of rows written by ``write`` in batches, one batch at a time, in order."""

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[None]],
        *,
        delay_s: float,
        max_rows: int,
        what: str,
    ) -> None:
        self._write = write
        self.delay_s = delay_s
        self.max_rows = max_rows
        self._what = what
        self._queued: list[T] = []
        self._writing: list[T] = []
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def pending(self) -> list[T]:
        """Rows not yet in the database: the batch being written, then the queued ones."""
        return [*self._writing, *self._queued]

    async def add(self, row: T) -> None:
        """Queue ``row``; a full batch is written before this returns, unless a batch is
        being written already: the flush in progress takes the queued rows next, and the
        caller (a message on its way) does not wait for the database unless
        ``BACKLOG_BATCHES`` full batches are waiting (memory stays bounded)."""
        self._queued.append(row)
        queued = len(self._queued)
        if queued >= self.max_rows:
            if not self._lock.locked() or queued >= self.max_rows * BACKLOG_BATCHES:
                await self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.delay_s, self._due)

    def _due(self) -> None:
        self._timer = None
        task = asyncio.create_task(self.flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        """Write everything queued so far (returns once it is in the database)."""
        async with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            while self._queued:
                self._writing, self._queued = (
                    self._queued[: self.max_rows],
                    self._queued[self.max_rows :],
                )
                try:
                    await self._write(self._writing)
                except Exception:
                    # Kept for the next flush: a database that is briefly away loses nothing.
                    log.exception(
                        "could not write %d %s; will retry", len(self._writing), self._what
                    )
                    self._queued[:0] = self._writing
                    if len(self._queued) > self.max_rows * KEEP_BATCHES:  # bounded memory
                        dropped = len(self._queued) - self.max_rows * KEEP_BATCHES
                        log.error("dropping the %d oldest %s", dropped, self._what)
                        del self._queued[:dropped]
                    self._retry_later()
                    return
                finally:
                    self._writing = []

    def _retry_later(self) -> None:
        if self._timer is None and self._queued:  # add() may have armed one meanwhile
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(self.delay_s, 1.0), self._due)

    async def close(self) -> None:
        """Write what is queued and stop (a stop loses nothing)."""
        await self.flush()
        for task in list(self._tasks):
            await task
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._queued:
            log.error("dropping %d %s the database refused", len(self._queued), self._what)
            self._queued = []
