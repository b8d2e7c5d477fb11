"""`heron serve --workers N`: N worker processes on one machine, each a full cluster node.

The workers share the listening ports (SO_REUSEPORT: the kernel spreads new connections
over them) and meet each other through the cluster's registry and bus exactly as nodes on
different machines do (docs/cluster.md); worker ``i`` is node ``<cluster.node>-<i>``. The
supervisor prepares what the workers would otherwise race to create (the server secret,
self-signed certificates), restarts a worker that dies, and on SIGTERM or SIGINT stops
them all (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from heron.config import ConfigError, ServerConfig

log = logging.getLogger("heron.supervisor")

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
STABLE_AFTER_S = 10.0  # a worker that lived this long restarts at once if it dies
GRACE_S = 20.0  # SIGTERM to SIGKILL


def worker_names(config: ServerConfig, count: int) -> list[str]:
    if config.cluster is None:
        raise ConfigError(
            "serve --workers: workers are cluster nodes; the config needs a [cluster] table"
            " (docs/cluster.md)"
        )
    return [f"{config.cluster.node}-{n}" for n in range(1, count + 1)]


def prepare(config: ServerConfig) -> None:
    """Make the files every worker reads but none may create at the same time as another."""
    from heron.app import certificates_for
    from heron.core.server import load_secret

    load_secret(config.server_secret_file or config.data_dir / "secret")
    certificates_for(config)


@dataclass
class Worker:
    name: str
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    backoff: float = FIRST_BACKOFF_S
    restarts: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    def __init__(self, config_path: Path, names: list[str]) -> None:
        self.config_path = config_path
        self.workers = [Worker(name) for name in names]
        self.stopping = asyncio.Event()

    def command(self, worker: Worker) -> list[str]:
        return [
            sys.executable,
            "-m",
            "heron",
            "-c",
            str(self.config_path),
            "serve",
            "--node",
            worker.name,
            "--reuse-port",
        ]

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        for worker in self.workers:
            worker.task = loop.create_task(self._keep(worker))
        await self.stopping.wait()
        log.info("stopping %d workers", len(self.workers))
        await asyncio.gather(*(self._stop(w) for w in self.workers))
        for worker in self.workers:
            if worker.task is not None:
                worker.task.cancel()
        await asyncio.gather(*(w.task for w in self.workers if w.task), return_exceptions=True)
        return 0

    async def _keep(self, worker: Worker) -> None:
        """Run the worker; whenever it exits (unless stopping), start it again."""
        while not self.stopping.is_set():
            worker.process = await asyncio.create_subprocess_exec(*self.command(worker))
            worker.started = time.monotonic()
            log.info("worker %s started (pid %d)", worker.name, worker.process.pid)
            code = await worker.process.wait()
            if self.stopping.is_set():
                return
            lived = time.monotonic() - worker.started
            if lived >= STABLE_AFTER_S:
                worker.backoff = FIRST_BACKOFF_S
            log.warning(
                "worker %s exited with %d after %.1f s: restarting in %.1f s",
                worker.name,
                code,
                lived,
                worker.backoff,
            )
            worker.restarts += 1
            try:
                await asyncio.wait_for(self.stopping.wait(), worker.backoff)
                return
            except TimeoutError:
                pass
            worker.backoff = min(worker.backoff * 2, MAX_BACKOFF_S)

    async def _stop(self, worker: Worker) -> None:
        process = worker.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), GRACE_S)
        except TimeoutError:
            log.warning("worker %s did not stop within %.0f s: killing it", worker.name, GRACE_S)
            process.kill()
            await process.wait()


def supervise(config_path: Path | None, config: ServerConfig, count: int) -> int:
    if config_path is None:
        raise ConfigError("serve --workers: give the configuration file with -c")
    names = worker_names(config, count)
    prepare(config)
    return asyncio.run(Supervisor(config_path.resolve(), names).run())
