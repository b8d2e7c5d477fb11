"""Storage: the engine-neutral `Database` (heron.storage.db), its SQLite and PostgreSQL
engines, and the stores of the core (accounts, FAST tokens). Each module's store lives
beside the module and is written against `Database`."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from heron.storage.db import Database, StorageUnavailable


class StorageSettings(Protocol):
    """The `[storage]` table (heron.config.StorageConfig)."""

    @property
    def engine(self) -> str: ...
    @property
    def path(self) -> Path | None: ...
    @property
    def url(self) -> str: ...
    @property
    def password_file(self) -> Path | None: ...
    @property
    def pool_size(self) -> int: ...


async def open_database(config: StorageSettings, data_dir: Path) -> Database:
    """Open the configured engine; `StorageUnavailable` says which key and why."""
    if config.engine == "postgresql":
        from heron.storage.postgres import PostgresDatabase  # only a PostgreSQL site needs it

        return await PostgresDatabase.open(config.url, config.pool_size, config.password_file)
    from heron.storage.sqlite import SqliteDatabase

    path = config.path or data_dir / "heron.db"
    try:
        return await SqliteDatabase.open(path)
    except OSError as exc:
        raise StorageUnavailable(f"storage.path: cannot open {path}: {exc.strerror}") from exc
    except Exception as exc:  # sqlite3.DatabaseError: not a database, locked, …
        raise StorageUnavailable(f"storage.path: cannot open {path}: {exc}") from exc


__all__ = ["Database", "StorageUnavailable", "open_database"]
