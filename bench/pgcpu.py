"""PostgreSQL's own CPU time (the postmaster and all its children) across a workload.

`pgcpu.py --start` remembers the total; `pgcpu.py --stop WORKLOAD --out FILE --label L`
appends `{"workload": "pg_cpu", "for": WORKLOAD, "cpu_s": …}` to FILE. Only meaningful
when nothing else uses this PostgreSQL server during the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

STATE = Path("/tmp/heron-bench-pgcpu")  # noqa: S108 - a bench run's scratch value
TICK = os.sysconf("SC_CLK_TCK")


def postmaster() -> int:
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "SHOW data_directory", "postgres"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return int(Path(out, "postmaster.pid").read_text().split()[0])


def cpu_of_tree(root: int) -> float:
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        pid, ppid = int(entry.name), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        times[pid] = (int(fields[11]) + int(fields[12])) / TICK
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--start", action="store_true")
    parser.add_argument("--stop", metavar="WORKLOAD")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--label", default="heron-pg")
    args = parser.parse_args()
    now = cpu_of_tree(postmaster())
    if args.start:
        STATE.write_text(str(now))
        return
    before = float(STATE.read_text())
    line = {"workload": "pg_cpu", "for": args.stop, "server": args.label, "cpu_s": now - before}
    if args.out is not None:
        with args.out.open("a") as f:
            f.write(json.dumps(line) + "\n")
    print(f"# postgresql cpu during {args.stop}: {now - before:.2f} s")


if __name__ == "__main__":
    main()
