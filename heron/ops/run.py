"""`heron serve`: the server, its admin socket, and the signals an init system sends.

SIGHUP reloads the configuration (heron.ops.reload). SIGTERM and SIGINT stop it cleanly:
listeners close, clients are told system-shutdown, hibernated stream-management sessions'
unacknowledged messages go to offline storage, the archive flushes, federation closes, and
the process exits 0; the whole stop is bounded by STOP_BOUND_S (README, "Operating Heron").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Final

from heron.app import start
from heron.config import ServerConfig
from heron.core.loopwatch import LoopWatch, settle_heap
from heron.ops.reload import ConfigReloader
from heron.ops.socket import AdminSocket, socket_path

log = logging.getLogger(__name__)

STOP_BOUND_S: Final = 15.0


async def serve(
    config: ServerConfig, path: Path | None = None, *, reuse_port: bool = False
) -> None:
    """Run until SIGTERM or SIGINT; reload on SIGHUP when started from a file."""
    running = await start(config, reuse_port=reuse_port)
    watch = LoopWatch(running.server.metrics)  # stalls and collector pauses on /metrics
    watch.start()
    settle_heap()
    node = config.cluster.node if config.cluster is not None else None
    admin = AdminSocket(running, socket_path(config.data_dir, node))
    reloads: set[asyncio.Task[object]] = set()
    try:
        if path is not None:
            running.server.control.reloader = ConfigReloader(running, path)
        try:
            await admin.start()
        except OSError as exc:  # the server still serves; only the shell commands are off
            log.error("no admin socket: %s", exc)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def reload() -> None:
            log.info("SIGHUP: reloading the configuration")
            task: asyncio.Task[object] = asyncio.ensure_future(running.server.control.reload())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, reload)
        await stop.wait()
    finally:
        log.info("shutting down")
        watch.stop()
        try:
            async with asyncio.timeout(STOP_BOUND_S):
                for task in list(reloads):
                    with contextlib.suppress(Exception):
                        await task
                await admin.stop()
                await running.stop()
        except TimeoutError:
            log.error("the stop took longer than %ss; exiting anyway", STOP_BOUND_S)
        log.info("stopped")
