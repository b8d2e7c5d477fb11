"""MAM query latency on a one-million-message archive (XEP-0313), measured in-process.

Fills one account's archive with ARCHIVE messages spread over 100 correspondents (straight
into SQLite, as the archive module stores them), then times queries through the real
server path (stream engine → router → mam module → SQLite), each answered in full:
the latest page, a page with one correspondent, a page after an id in the middle, and a
time window. Prints one JSON line per query kind with the median and p95 in milliseconds.

    .venv/bin/python bench/mam_query.py [ARCHIVE]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from heron.modules.mam.store import MIGRATIONS  # noqa: E402
from tests.harness import connect, start_server  # noqa: E402

ARCHIVE = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
RUNS = 30
FORM = (
    "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>"
    "<value>urn:xmpp:mam:2</value></field>{fields}</x>"
)


def field(var: str, value: str) -> str:
    return f"<field var='{var}'><value>{value}</value></field>"


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = await start_server(Path(tmp), ("user",))
        db = server.db_or_fail()
        await db.migrate(MIGRATIONS)
        start = time.time() - ARCHIVE  # one message a second, ending now

        def fill(conn: object) -> None:
            import sqlite3

            assert isinstance(conn, sqlite3.Connection)
            xml = (
                "<message xmlns='jabber:client' type='chat' from='c{c}@localhost/r' "
                "to='user@localhost/x'><body>message {n}</body></message>"
            )
            batch = 50_000
            for first in range(0, ARCHIVE, batch):
                rows = [
                    (
                        f"id{n}",
                        "localhost",
                        "user",
                        f"c{n % 100}@localhost",
                        start + n,
                        xml.format(c=n % 100, n=n),
                    )
                    for n in range(first, min(first + batch, ARCHIVE))
                ]
                conn.executemany(
                    "INSERT INTO mam_messages (archive_id, domain, username, with_jid, at, xml)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                conn.commit()

        filled = time.perf_counter()
        await db.run(fill)
        print(f"# filled {ARCHIVE} messages in {time.perf_counter() - filled:.1f}s", flush=True)
        stream, link = await connect(server, "user", "x")
        middle = f"id{ARCHIVE // 2}"
        window = field(
            "start", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + ARCHIVE / 3))
        ) + field(
            "end", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + ARCHIVE / 3 + 600))
        )
        kinds = {
            "latest page (50, backwards)": ("", "<before/>"),
            "one correspondent, latest 50": (field("with", "c7@localhost"), "<before/>"),
            "50 after an id in the middle": ("", f"<after>{middle}</after>"),
            "a 10-minute window": (window, ""),
        }
        for name, (fields, rsm) in kinds.items():
            timings = []
            for n in range(RUNS):
                query = (
                    f"<iq type='set' id='q{n}'><query xmlns='urn:xmpp:mam:2' queryid='q{n}'>"
                    f"{FORM.format(fields=fields)}<set xmlns='http://jabber.org/protocol/rsm'>"
                    f"<max>50</max>{rsm}</set></query></iq>"
                )
                link.take()
                began = time.perf_counter()
                await stream.receive(query.encode())
                timings.append((time.perf_counter() - began) * 1000)
                answer = link.take()
                assert "<fin" in answer, answer[-300:]
                assert answer.count("<result") >= (1 if "window" in name else 50), name
            timings.sort()
            print(
                json.dumps(
                    {
                        "workload": "mam_query",
                        "query": name,
                        "archive": ARCHIVE,
                        "median_ms": round(statistics.median(timings), 2),
                        "p95_ms": round(timings[int(len(timings) * 0.95) - 1], 2),
                    }
                ),
                flush=True,
            )
        await server.stop()


if __name__ == "__main__":
    asyncio.run(main())
