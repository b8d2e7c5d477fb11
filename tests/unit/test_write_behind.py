"""The write-behind queue (storage/batch.py): batches by size and by time, in order, one
at a time; pending rows are visible; a refused batch is kept and retried; close writes all."""

from __future__ import annotations

import asyncio

import pytest

from heron.storage.batch import BACKLOG_BATCHES, WriteBehind


class Sink:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.refuse = 0  # refuse this many writes
        self.gate: asyncio.Event | None = None
        self.writing = 0
        self.most_at_once = 0

    async def write(self, rows: list[int]) -> None:
        self.writing += 1
        self.most_at_once = max(self.most_at_once, self.writing)
        try:
            if self.gate is not None:
                await self.gate.wait()
            await asyncio.sleep(0)
            if self.refuse:
                self.refuse -= 1
                raise OSError("database away")
            self.batches.append(list(rows))
        finally:
            self.writing -= 1


async def test_a_full_batch_is_written_at_once_and_the_rest_after_the_delay() -> None:
    sink = Sink()
    queue = WriteBehind(sink.write, delay_s=0.02, max_rows=4, what="rows")
    for n in range(6):
        await queue.add(n)
    assert sink.batches == [[0, 1, 2, 3]]
    assert queue.pending() == [4, 5]
    await asyncio.sleep(0.1)
    assert sink.batches == [[0, 1, 2, 3], [4, 5]]
    assert queue.pending() == []
    await queue.close()


async def test_rows_being_written_are_still_pending_and_batches_never_overlap() -> None:
    sink = Sink()
    sink.gate = asyncio.Event()
    queue = WriteBehind(sink.write, delay_s=10, max_rows=100, what="rows")
    for n in range(3):
        await queue.add(n)
    flushing = asyncio.ensure_future(queue.flush())
    await asyncio.sleep(0)
    await queue.add(3)
    assert queue.pending() == [0, 1, 2, 3]  # the batch in flight, then the queued row
    second = asyncio.ensure_future(queue.flush())
    sink.gate.set()
    await asyncio.gather(flushing, second)
    assert [row for batch in sink.batches for row in batch] == [0, 1, 2, 3]
    assert sink.most_at_once == 1
    await queue.close()


async def test_a_refused_batch_is_kept_and_written_later(caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink()
    sink.refuse = 1
    queue = WriteBehind(sink.write, delay_s=0.01, max_rows=10, what="rows")
    await queue.add(1)
    await queue.flush()
    assert sink.batches == []
    assert queue.pending() == [1]
    assert "will retry" in caplog.text
    await queue.add(2)
    await queue.close()
    assert sink.batches == [[1, 2]]


async def test_close_writes_everything_queued() -> None:
    sink = Sink()
    queue = WriteBehind(sink.write, delay_s=60, max_rows=3, what="rows")
    for n in range(7):
        await queue.add(n)
    await queue.close()
    assert [row for batch in sink.batches for row in batch] == list(range(7))
    assert all(len(batch) <= 3 for batch in sink.batches)


async def test_adders_do_not_wait_for_a_batch_in_flight_until_the_backlog_is_long() -> None:
    sink = Sink()
    sink.gate = asyncio.Event()
    queue = WriteBehind(sink.write, delay_s=10, max_rows=2, what="rows")
    await queue.add(0)
    first = asyncio.ensure_future(queue.add(1))  # a full batch: written, held at the gate
    await asyncio.sleep(0)
    assert not first.done()
    for n in range(2, 2 + 2 * BACKLOG_BATCHES - 1):
        await asyncio.wait_for(queue.add(n), 1)  # returns at once: the flush takes them next
    last = asyncio.ensure_future(queue.add(2 * BACKLOG_BATCHES + 1))
    await asyncio.sleep(0)
    assert not last.done()  # the backlog is full: this adder waits for the database
    sink.gate.set()
    await asyncio.gather(first, last)
    rows = [row for batch in sink.batches for row in batch]
    assert rows == list(range(2 * BACKLOG_BATCHES + 2))
    assert all(len(batch) <= 2 for batch in sink.batches)
    assert sink.most_at_once == 1
    await queue.close()
