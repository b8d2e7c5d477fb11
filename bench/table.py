"""The published benchmark table: Heron (archive off and on) beside Prosody and ejabberd.

Reads the JSON lines `bench/run-all` collected (the shared harness's lines, one per
workload and run, labelled by server: `prosody`, `ejabberd`, `prosody-mam`,
`ejabberd-mam`, `heron-nomam`, `heron`), takes the median over runs of each figure and the
median of the per-run ratios (run k of Heron against run k of the anchor, as
`run-anchors` does), prints the table as Markdown and, with `--readme`, puts it into the
README between the `bench:start` and `bench:end` markers.

    bench/table.py bench/results/bench-<time>.jsonl [--readme README.md]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Row:
    title: str
    workload: str
    key: str
    anchor_suffix: str  # "" or "-mam": which anchor runs the Heron figure stands beside
    heron: str  # label of the Heron run
    higher_is_better: bool
    unit: str


ROWS = (
    Row("W1 logins/s, 50 in flight", "login", "logins_per_s", "", "heron-nomam", True, ""),
    Row("W1 server CPU per login", "login", "server_ms_per_login", "", "heron-nomam", False, " ms"),
    Row(
        "W2 1:1 chat, max delivered msg/s, archive off",
        "chat",
        "max_delivered_per_s",
        "",
        "heron-nomam",
        True,
        "",
    ),
    Row(
        "W2 server CPU per message at half load, archive off",
        "chat",
        "server_us_per_msg_at_half",
        "",
        "heron-nomam",
        False,
        " µs",
    ),
    Row(
        "W2 1:1 chat, max delivered msg/s, archive on (each server's default store)",
        "chat",
        "max_delivered_per_s",
        "-mam",
        "heron",
        True,
        "",
    ),
    Row(
        "W2 p99 latency at half load, archive off",
        "chat",
        "p99_ms_at_half",
        "",
        "heron-nomam",
        False,
        " ms",
    ),
    Row(
        "W2 p99 latency at half load, archive on",
        "chat",
        "p99_ms_at_half",
        "-mam",
        "heron",
        False,
        " ms",
    ),
    Row(
        "W4 room fan-out, 100 occupants, delivered/s",
        "muc",
        "max_delivered_per_s",
        "",
        "heron-nomam",
        True,
        "",
    ),
    Row("W3 KiB per idle TLS session", "idle", "kib_per_session", "", "heron-nomam", False, ""),
)


def load(paths: list[Path]) -> dict[tuple[str, str], list[dict[str, object]]]:
    """(workload, server) -> the runs' result lines, in run order."""
    runs: dict[tuple[str, str], list[dict[str, object]]] = {}
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                runs.setdefault((str(row["workload"]), str(row["server"])), []).append(row)
    return runs


def figures(rows: list[dict[str, object]], key: str) -> list[float]:
    values = [row.get(key) for row in rows]
    return [float(v) for v in values if isinstance(v, int | float)]


def cell(values: list[float], unit: str) -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    text = f"{median:,.3g}" if median < 100 else f"{median:,.0f}"
    if len(values) > 1:
        low, high = min(values), max(values)
        spread = f"{low:,.3g}–{high:,.3g}" if high < 100 else f"{low:,.0f}–{high:,.0f}"
        return f"{text}{unit} ({spread})"
    return f"{text}{unit}"


def ratio(heron: list[float], anchor: list[float], higher_is_better: bool) -> str:
    """Median of the per-run ratios, written so that above 1 is better for Heron."""
    pairs = [(h, a) for h, a in zip(heron, anchor, strict=False) if h and a]
    if not pairs:
        return "-"
    per_run = [h / a if higher_is_better else a / h for h, a in pairs]
    return f"{statistics.median(per_run):.2f}×"


def table(runs: dict[tuple[str, str], list[dict[str, object]]]) -> str:
    lines = [
        "| workload | Prosody | ejabberd | Heron | Heron vs Prosody | Heron vs ejabberd |",
        "|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        anchors = {
            name: figures(runs.get((row.workload, name + row.anchor_suffix), []), row.key)
            for name in ("prosody", "ejabberd")
        }
        heron = figures(runs.get((row.workload, row.heron), []), row.key)
        lines.append(
            f"| {row.title} | {cell(anchors['prosody'], row.unit)}"
            f" | {cell(anchors['ejabberd'], row.unit)} | {cell(heron, row.unit)}"
            f" | {ratio(heron, anchors['prosody'], row.higher_is_better)}"
            f" | {ratio(heron, anchors['ejabberd'], row.higher_is_better)} |"
        )
    counts = sorted({len(v) for k, v in runs.items() if k[0] != "provision"})
    lines.append("")
    lines.append(
        f"Medians over {'/'.join(map(str, counts)) or 0} run(s), range in brackets; ratios are"
        " the median of per-run ratios, above 1× means Heron is better (more per second, less"
        " CPU, latency or memory)."
    )
    return "\n".join(lines)


SCALE = (
    ("heron-w1-nomam", "Heron, 1 worker"),
    ("heron-w2-nomam", "Heron, 2 workers"),
    ("heron-w3-nomam", "Heron, 3 nodes (workers)"),
    ("heron-w4-nomam", "Heron, 4 workers"),
    ("ejabberd-unpinned", "ejabberd on both cores"),
)


def scale(runs: dict[tuple[str, str], list[dict[str, object]]]) -> str:
    """W2 and W4 maxima per worker count, and the gain over one worker (median of runs)."""
    lines = [
        "| server | W2 max msg/s | W2 gain | W2 p99 at half | W4 delivered/s | W4 gain |",
        "|---|---|---|---|---|---|",
    ]
    base = {
        wl: figures(runs.get((wl, "heron-w1-nomam"), []), "max_delivered_per_s")
        for wl in ("chat", "muc")
    }
    for label, title in SCALE:
        chat = figures(runs.get(("chat", label), []), "max_delivered_per_s")
        muc = figures(runs.get(("muc", label), []), "max_delivered_per_s")
        p99 = figures(runs.get(("chat", label), []), "p99_ms_at_half")
        lines.append(
            f"| {title} | {cell(chat, '')} | {ratio(chat, base['chat'], True)}"
            f" | {cell(p99, ' ms')} | {cell(muc, '')} | {ratio(muc, base['muc'], True)} |"
        )
    return "\n".join(lines)


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {cpu or 'unknown CPU'}"


def update_readme(readme: Path, body: str, when: str, command: str) -> None:
    text = readme.read_text(encoding="utf-8")
    block = (
        "<!-- bench:start -->\n"
        f"Measured {when} on {machine()}: server pinned to one core, load generator on the"
        f" other, STARTTLS + SCRAM-SHA-1, with `{command}`.\n\n{body}\n"
        "<!-- bench:end -->"
    )
    pattern = re.compile(r"<!-- bench:start -->.*?<!-- bench:end -->", re.S)
    if not pattern.search(text):
        sys.exit(f"{readme}: no bench:start/bench:end markers")
    readme.write_text(pattern.sub(lambda _m: block, text), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--readme", type=Path, help="put the table into this README")
    parser.add_argument("--command", default="make bench")
    parser.add_argument("--scale", action="store_true", help="the workers table (run-scale)")
    args = parser.parse_args()
    runs = load(args.results)
    body = scale(runs) if args.scale else table(runs)
    print(body)
    if args.readme:
        stamps = [str(r.get("ts", "")) for rows in runs.values() for r in rows]
        when = max(stamps)[:10] if stamps else "?"
        update_readme(args.readme, body, when, args.command)


if __name__ == "__main__":
    main()
