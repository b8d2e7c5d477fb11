"""What stalls the event loop: lag and garbage-collector pauses, as metrics and log lines.

A tick is scheduled every ``period_s``; how late it runs is the loop's lag (a callback that
ran too long, a synchronous write, a big fan-out in one turn). The garbage collector's
pauses are timed from ``gc.callbacks``. Both feed `/metrics` (stalls by size, the worst
lag and the longest collection since start, collections and their total time) and a
warning names any stall of ``warn_s`` or more, with the collector's share of it, so that
a latency spike in a benchmark can be matched to its cause.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Iterable
from typing import Final

from heron.core.metrics import Metrics, Sample

log = logging.getLogger(__name__)

BUCKETS_S: Final = (0.005, 0.02, 0.05, 0.1, 0.5)


class LoopWatch:
    def __init__(self, metrics: Metrics, period_s: float = 0.1, warn_s: float = 0.1) -> None:
        self.metrics = metrics
        self.period_s = period_s
        self.warn_s = warn_s
        self.stalls = dict.fromkeys(BUCKETS_S, 0)  # lag of at least each bucket
        self.worst_lag_s = 0.0
        self.gc_pause_s = 0.0  # total
        self.gc_worst_s = 0.0
        self.gc_runs = [0, 0, 0]  # by generation
        self._gc_since_tick = 0.0
        self._gc_started = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        gc.callbacks.append(self._gc)
        self._due = loop.time() + self.period_s
        self._handle = loop.call_at(self._due, self._tick)
        self.metrics.gauge("heron_loop_stalls", "Loop turns late by at least `over` s", self._read)
        self.metrics.gauge("heron_gc", "Garbage collections and their pauses", self._read_gc)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)
        self.metrics.remove("heron_loop_stalls", self._read)
        self.metrics.remove("heron_gc", self._read_gc)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        lag = now - self._due
        self.worst_lag_s = max(self.worst_lag_s, lag)
        for bucket in BUCKETS_S:
            if lag >= bucket:
                self.stalls[bucket] += 1
        if lag >= self.warn_s:
            log.warning(
                "event loop stalled %.0f ms (garbage collection %.0f ms of it)",
                lag * 1000,
                self._gc_since_tick * 1000,
            )
        self._gc_since_tick = 0.0
        self._due = now + self.period_s
        self._handle = loop.call_at(self._due, self._tick)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_started
        self.gc_pause_s += pause
        self._gc_since_tick += pause
        self.gc_worst_s = max(self.gc_worst_s, pause)
        generation = info.get("generation", 0)
        if 0 <= generation < len(self.gc_runs):
            self.gc_runs[generation] += 1

    def _read(self) -> Iterable[Sample]:
        for bucket, count in self.stalls.items():
            yield {"over": f"{bucket:g}"}, float(count)
        yield {"over": "worst"}, self.worst_lag_s

    def _read_gc(self) -> Iterable[Sample]:
        for generation, runs in enumerate(self.gc_runs):
            yield {"generation": str(generation)}, float(runs)
        yield {"pause": "total_s"}, self.gc_pause_s
        yield {"pause": "worst_s"}, self.gc_worst_s


def settle_heap() -> None:
    """After start: collect once, then move every object alive now (modules, config,
    compiled patterns, caches) out of the collector's reach (`gc.freeze`), so that later
    full collections walk only what the traffic allocates."""
    gc.collect()
    gc.freeze()
