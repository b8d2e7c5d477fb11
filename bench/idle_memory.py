"""What an idle TLS client session costs Heron in memory, and which lines allocate it.

Runs Heron in this process (uvloop, the bench's limits) on 127.0.0.1, has the shared
harness (a separate process, so its memory is not counted) provision accounts and hold
``--sessions`` logged-in STARTTLS sessions, and reads this process's RSS before and while
they are held. With ``--trace`` it also compares tracemalloc snapshots taken at the same two
moments, grouped by file and line, and prints the top allocations per session (tracemalloc
slows the server and adds its own memory, so the RSS figure of a traced run is not the one to
quote).

Usage: .venv/bin/python bench/idle_memory.py [--sessions 2000] [--trace] [--top 25]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from heron.app import RunningServer, start
from heron.config import config_from_dict

HARNESS = Path(__file__).resolve().parents[1] / ".." / "shared" / "bench" / "xmppbench.py"


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def config(data_dir: Path, port: int) -> dict[str, object]:
    big = 100000
    return {
        "data_dir": str(data_dir),
        "listeners": [{"kind": "c2s", "host": "127.0.0.1", "port": port}],
        "logging": {"level": "WARNING"},
        "limits": {
            "stanzas_per_s": float(big),
            "stanzas_burst": big,
            "max_connections": 20000,
            "max_connections_per_ip": 20000,
            "max_unauthenticated_per_ip": 20000,
            "new_connections_per_ip_per_s": float(big),
            "new_connections_per_ip_burst": big,
        },
        "hosts": {
            "localhost": {
                "modules": {
                    "register": {"allow_registration": True, "throttle_per_ip": 1000000},
                }
            }
        },
    }


def streams(running: RunningServer) -> int:
    return sum(len(getattr(listener, "streams", ())) for listener in running.listeners)


async def harness(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(HARNESS), *args, stdout=subprocess.PIPE
    )
    out, _ = await proc.communicate()
    print(
        out.decode().strip().splitlines()[-1] if out.strip() else f"harness: {args[0]} gave nothing"
    )


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data_dir) if args.data_dir else Path(tmp) / "data"
        raw = config(data, args.port)
        running = await start(config_from_dict(raw, "idle_memory"))
        common = ["--host", "127.0.0.1", "--port", str(args.port), "--domain", "localhost"]
        common += ["--out", str(Path(tmp) / "harness.jsonl"), "--label", "heron-inproc"]
        try:
            await harness("provision", *common, "--users", str(args.sessions), "--kind", "ibr")
            if args.trace:
                tracemalloc.start(args.frames)
            await asyncio.sleep(1)
            before_rss = rss_kib()
            before = tracemalloc.take_snapshot() if args.trace else None
            idle = asyncio.create_task(
                harness("idle", *common, "--sessions", str(args.sessions), "--settle", "8")
            )
            deadline = time.monotonic() + 600
            # polled: the streams are counted from outside the listeners, no event to wait on
            while streams(running) < args.sessions * 0.98 and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.5)
            await asyncio.sleep(3)
            n = streams(running)
            after_rss = rss_kib()
            after = tracemalloc.take_snapshot() if args.trace else None
            await idle
            print(
                f"{n} idle sessions: RSS {before_rss} -> {after_rss} KiB ="
                f" {(after_rss - before_rss) / max(n, 1):.2f} KiB/session"
            )
            if before is not None and after is not None:
                key = "traceback" if args.frames > 1 else "lineno"
                stats = after.compare_to(before, key)
                total = sum(s.size_diff for s in stats)
                print(f"traced Python allocations: {total / 1024 / max(n, 1):.2f} KiB/session")
                for stat in stats[: args.top]:
                    where = stat.traceback.format()[-1 if args.frames == 1 else 0 :]
                    print(
                        f"{stat.size_diff / max(n, 1):8.0f} B/session"
                        f" {stat.count_diff / max(n, 1):6.2f} blocks/session  "
                        + " <- ".join(line.strip() for line in where if line.strip())[:300]
                    )
        finally:
            await running.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--port", type=int, default=41433)
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--frames", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--data-dir", help="keep the accounts here between runs")
    os.environ.setdefault("PYTHONHASHSEED", "0")
    import uvloop

    uvloop.run(main(parser.parse_args()))
