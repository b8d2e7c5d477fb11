"""Shared fixtures: a real Heron server in the test's loop, on ephemeral loopback ports."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from heron.app import RunningServer, start
from heron.config import ServerConfig, config_from_dict
from tests.engines import ENGINES, fresh_schema_url


def services_required() -> bool:
    return os.environ.get("HERON_REQUIRE_SERVICES") == "1"


def service_reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def need_service(name: str, host: str, port: int) -> None:
    """Skip with a reason when a service is down, unless CI requires it (then fail)."""
    if service_reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if services_required():
        pytest.fail(f"{message} and HERON_REQUIRE_SERVICES=1")
    pytest.skip(message)


def make_config(data_dir: Path, **overrides: object) -> ServerConfig:
    data: dict[str, object] = {
        "data_dir": str(data_dir),
        "listeners": [
            {"kind": "c2s", "host": "127.0.0.1", "port": 0},
            {"kind": "c2s_tls", "host": "127.0.0.1", "port": 0},
        ],
        "hosts": {"localhost": {}},
    }
    data.update(overrides)
    return config_from_dict(data, "test")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "both_engines: run the test once on SQLite and once on PostgreSQL (the `engine`"
        " fixture, used by config_factory and so by the server fixture)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_engines"):
        metafunc.parametrize("engine", ENGINES, indirect=True)


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> str:
    """The storage engine of the test's server: `sqlite` unless the test is marked
    `both_engines` (then once per engine)."""
    return str(getattr(request, "param", "sqlite"))


def storage_for(engine: str, request: pytest.FixtureRequest) -> dict[str, object]:
    """The `[storage]` table of a server on `engine`: PostgreSQL gets a fresh schema."""
    if engine == "sqlite":
        return {}
    return {"storage": {"engine": "postgresql", "url": fresh_schema_url(request), "pool_size": 4}}


@pytest.fixture
def config_factory(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> Callable[..., ServerConfig]:
    storage = storage_for(engine, request)

    def factory(**overrides: object) -> ServerConfig:
        return make_config(tmp_path / "data", **{**storage, **overrides})

    return factory


@pytest.fixture
async def server(config_factory: Callable[..., ServerConfig]) -> AsyncIterator[RunningServer]:
    running = await start(config_factory())
    try:
        yield running
    finally:
        await running.stop()


# Both storage engines (tests/engines.py): fixtures every test directory can ask for.
from tests.engines import database, pg_database  # noqa: E402, F401
