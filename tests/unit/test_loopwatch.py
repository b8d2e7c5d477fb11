"""The loop watch counts a stalled turn and a collector pause, and shows them on /metrics."""

from __future__ import annotations

import asyncio
import gc
import time

from heron.core.loopwatch import LoopWatch
from heron.core.metrics import Metrics


async def test_a_blocking_callback_is_counted_as_a_stall() -> None:
    metrics = Metrics()
    watch = LoopWatch(metrics, period_s=0.01, warn_s=10.0)
    watch.start()
    try:
        await asyncio.sleep(0.03)
        assert watch.stalls[0.05] == 0
        time.sleep(0.08)  # noqa: ASYNC251 - the stall under test
        await asyncio.sleep(0.03)
        assert watch.stalls[0.05] == 1
        assert watch.worst_lag_s >= 0.05
        gc.collect()
        assert sum(watch.gc_runs) >= 1
        assert watch.gc_pause_s > 0
        text = metrics.render()
        assert 'heron_loop_stalls{over="0.05"} 1' in text
        assert 'heron_gc{generation="2"}' in text
    finally:
        watch.stop()
    assert watch._gc not in gc.callbacks
    assert "heron_loop_stalls" not in metrics.render()
