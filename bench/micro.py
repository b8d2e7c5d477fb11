"""Hot-path micro-benchmarks, in seconds: `make bench-micro`.

Each case runs its operation in batches and keeps the best batch (the least disturbed by
the rest of the machine), per operation: parsing a chat message from the stream,
serialising one, routing one from a bound session to another through the whole server
(parser, stream engine, router, modules; no sockets, archive off), and the server's side
of a SCRAM-SHA-1 exchange (with the client's HMACs, which are cheap once its salted
password is cached, as real clients do). Archive append and query run on each storage
engine whose store the module uses. The figures are appended to
`bench/results/micro.jsonl`; each is compared with the previous line there, and a case
more than 10 % slower is marked SLOWER so the commit that did it shows it.

    .venv/bin/python bench/micro.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from heron.config import config_from_dict  # noqa: E402
from heron.core.server import Server  # noqa: E402
from heron.credentials import derive_keys  # noqa: E402
from heron.jid import JID  # noqa: E402
from heron.modules import AVAILABLE  # noqa: E402
from heron.modules.mam.store import ArchiveRow, Query, SqlArchiveStore  # noqa: E402
from heron.storage.db import Database  # noqa: E402
from heron.storage.postgres import PostgresDatabase  # noqa: E402
from heron.storage.sqlite import SqliteDatabase  # noqa: E402
from heron.stream.sasl.scram import ScramServer  # noqa: E402
from heron.xmlstream.parser import ElementReceived, StreamParser  # noqa: E402
from heron.xmlstream.serializer import serialize_bytes  # noqa: E402
from tests.harness import HEADER, PASSWORD, connect  # noqa: E402

PG_URL = "postgresql://postgres@127.0.0.1:5432"
RESULTS = ROOT / "bench" / "results" / "micro.jsonl"
MESSAGE = (
    b"<message to='bob@localhost/r' type='chat' id='m{n}'>"
    b"<body>Hello Bob, this is a message of an ordinary length, about sixty chars.</body>"
    b"<active xmlns='http://jabber.org/protocol/chatstates'/></message>"
)
SLOWER = 1.10


def best(batch: Callable[[], int], batches: int) -> float:
    """Microseconds per operation: the fastest of `batches` batches."""
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        count = batch()
        times.append((time.perf_counter() - start) / count * 1e6)
    return min(times)


async def best_async(batch: Callable[[], Awaitable[int]], batches: int) -> float:
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        count = await batch()
        times.append((time.perf_counter() - start) / count * 1e6)
    return min(times)


def parse_case(n: int) -> Callable[[], int]:
    data = b"".join(MESSAGE.replace(b"{n}", str(i).encode()) for i in range(n))

    def batch() -> int:
        parser = StreamParser()
        parser.feed(HEADER)
        events = parser.feed(data)
        assert sum(isinstance(e, ElementReceived) for e in events) == n
        return n

    return batch


def serialize_case(n: int) -> Callable[[], int]:
    parser = StreamParser()
    parser.feed(HEADER)
    (event,) = parser.feed(MESSAGE.replace(b"{n}", b"1"))
    assert isinstance(event, ElementReceived)
    element = event.element

    def batch() -> int:
        for _ in range(n):
            serialize_bytes(element, "jabber:client")
        return n

    return batch


def scram_case(n: int) -> Callable[[], int]:
    keys = derive_keys(PASSWORD, "SHA-1", salt=b"0123456789abcdef")
    salted = hashlib.pbkdf2_hmac("sha1", PASSWORD.encode(), keys.salt, keys.iterations)
    client_key = hmac.new(salted, b"Client Key", "sha1").digest()
    stored = hashlib.sha1(client_key).digest()  # noqa: S324 - SCRAM-SHA-1 is the protocol's

    def login() -> None:
        server = ScramServer("SHA-1", plus=False, plus_offered=False, channel_bindings={})
        first_bare = "n=alice,r=clientnonce0123456789"
        server.start(f"n,,{first_bare}".encode())
        server_first = server.server_first(keys).decode()
        nonce = server_first.split(",")[0][2:]
        final_bare = f"c={base64.b64encode(b'n,,').decode()},r={nonce}"
        auth = f"{first_bare},{server_first},{final_bare}".encode()
        signature = hmac.new(stored, auth, "sha1").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server.finish(f"{final_bare},p={base64.b64encode(proof).decode()}".encode())

    def batch() -> int:
        for _ in range(n):
            login()
        return n

    return batch


async def route_case(n: int, batches: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        config = config_from_dict(
            {
                "data_dir": tmp,
                "listeners": [],
                "hosts": {"localhost": {"modules": {"mam": False}}},
            },
            "micro",
        )
        server = Server(config, AVAILABLE)
        await server.start()
        server.tls_domains = {"localhost"}
        try:
            for user in ("alice", "bob"):
                await server.accounts.create(JID.parse(f"{user}@localhost"), PASSWORD)
            alice, _ = await connect(server, "alice", "r")
            _bob, bob_link = await connect(server, "bob", "r")
            data = [MESSAGE.replace(b"{n}", str(i).encode()) for i in range(n)]

            async def batch() -> int:
                for chunk in data:
                    await alice.receive(chunk)
                delivered = bob_link.take().count("<message")
                assert delivered == n, f"bob got {delivered} of {n}"
                return n

            return await best_async(batch, batches)
        finally:
            await server.stop()


async def archive_cases(engine: str, n: int, batches: int) -> dict[str, float]:
    """Append ``n`` rows through the write-behind queue and flush them (the per-row cost of
    archiving, the database's share included), then fetch a page of 50 of one account's
    archive. Runs on a temporary SQLite file, or on a fresh PostgreSQL database dropped
    after."""
    with tempfile.TemporaryDirectory() as tmp:
        db: Database
        admin = None
        name = f"heron_micro_{secrets.token_hex(4)}"
        if engine == "sqlite":
            db = await SqliteDatabase.open(Path(tmp) / "heron.db")
        else:
            import asyncpg

            admin = await asyncpg.connect(f"{PG_URL}/postgres")
            await admin.execute(f"CREATE DATABASE {name}")
            db = await PostgresDatabase.open(f"{PG_URL}/{name}", pool_size=2)
        try:
            await db.migrate(SqlArchiveStore.migrations_for(db.dialect))
            store = SqlArchiveStore(db)
            xml = MESSAGE.decode().replace("{n}", "1")
            counter = iter(range(10**9))

            async def append() -> int:
                for _ in range(n):
                    i = next(counter)
                    user = f"user{i % 200}"
                    row = ArchiveRow(f"{i:016x}", "localhost", user, "bob@localhost", 1.0, xml)
                    await store.append(row)
                await store.flush()
                return n

            async def query() -> int:
                for _ in range(20):
                    page = await store.query("localhost", "user7", Query(max=50))
                    assert page.rows
                return 20

            figures = {
                f"archive append {engine}": await best_async(append, batches),
                f"archive query {engine}": await best_async(query, batches),
            }
            figures[f"archive flush lag {engine}"] = await flush_lag(store, xml)
            return figures
        finally:
            await db.close()
            if admin is not None:
                await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                await admin.close()


async def flush_lag(store: SqlArchiveStore, xml: str) -> float:
    """The longest the event loop went unanswered (µs) while full batches of the archive
    were written: a 1 ms ticker's worst lateness, beside appends that fill 8 batches."""
    worst = 0.0
    done = False

    async def ticker() -> None:
        nonlocal worst
        loop = asyncio.get_running_loop()
        while not done:
            due = loop.time() + 0.001
            await asyncio.sleep(0.001)
            worst = max(worst, loop.time() - due)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.005)
    for i in range(8 * 512):
        row = ArchiveRow(f"lag{i:012x}", "localhost", f"user{i % 200}", "bob@localhost", 2.0, xml)
        await store.append(row)
        if i % 64 == 0:
            await asyncio.sleep(0)  # messages arrive over many loop turns
    await store.flush()
    done = True
    await task
    return worst * 1e6


def compare(figures: dict[str, float]) -> list[str]:
    previous: dict[str, float] = {}
    if RESULTS.exists():
        lines = [x for x in RESULTS.read_text(encoding="utf-8").splitlines() if x.strip()]
        if lines:
            previous = json.loads(lines[-1]).get("us_per_op", {})
    report = []
    for name, value in figures.items():
        before = previous.get(name)
        if before:
            change = value / before
            mark = "  SLOWER" if change > SLOWER else ""
            report.append(f"{name:24} {value:10.2f} µs/op  ({change:.2f}× the last run){mark}")
        else:
            report.append(f"{name:24} {value:10.2f} µs/op")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer batches (noisier)")
    parser.add_argument("--no-save", action="store_true", help="compare only; keep no record")
    parser.add_argument("--no-postgresql", action="store_true", help="archive on SQLite only")
    args = parser.parse_args()
    batches = 3 if args.quick else 7
    figures = {
        "parse message": best(parse_case(2000), batches),
        "serialise message": best(serialize_case(2000), batches),
        "route message": asyncio.run(route_case(500, batches)),
        "scram-sha-1 server side": best(scram_case(500), batches),
    }
    figures.update(asyncio.run(archive_cases("sqlite", 1000, batches)))
    if not args.no_postgresql:
        figures.update(asyncio.run(archive_cases("postgresql", 1000, batches)))
    for line in compare(figures):
        print(line)
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a", encoding="utf-8") as out:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            out.write(json.dumps({"ts": stamp, "us_per_op": figures}) + "\n")


if __name__ == "__main__":
    main()
