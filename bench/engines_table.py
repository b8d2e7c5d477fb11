"""Print the storage engines' table from a bench/run-engines results file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def main(path: Path) -> None:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    pending_pg: dict[str, float] = {}
    for line in lines:
        server = line.get("server", "")
        engine = "postgresql" if server.startswith("heron-pg") else "sqlite"
        if line["workload"] == "pg_cpu":
            pending_pg[line["for"]] = line["cpu_s"]
            continue
        workload = line["workload"]
        steps = line.get("steps") or []
        row = rows.setdefault((engine, workload), {})
        if len(steps) == 1:  # the fixed-rate run
            step = steps[0]
            units = step["sent_per_s"] * step["wall_s"] * (100 if workload == "muc" else 1)
            row["server_us"] = step.get("server_us_per_msg")
            row["rate"] = step["offered"]
            cpu = pending_pg.pop(workload, None)
            if engine == "postgresql" and cpu is not None and units:
                row["pg_us"] = round(cpu / units * 1e6, 1)
        else:
            row["max"] = line.get("max_delivered_per_s")
            pending_pg.pop(workload, None)
    print(
        "| workload | engine | max delivered/s | at fixed rate | Heron CPU µs/msg | PostgreSQL CPU µs/msg |"
    )
    print("|---|---|---|---|---|---|")
    for workload, name in (("chat", "W2 1:1 chat, archive on"), ("muc", "W4 room fan-out (100)")):
        for engine in ("sqlite", "postgresql"):
            r = rows.get((engine, workload), {})
            print(
                f"| {name} | {engine} | {r.get('max', '-')} | {r.get('rate', '-')} "
                f"| {r.get('server_us', '-')} | {r.get('pg_us', '-')} |"
            )
        lite = rows.get(("sqlite", workload), {}).get("server_us")
        pg = rows.get(("postgresql", workload), {}).get("server_us")
        if lite and pg:
            print(f"| {name} | PostgreSQL / SQLite, Heron CPU | | | {pg / lite:.2f}× | |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
