"""Shared fixtures: a real Heron server in the test's loop, on ephemeral loopback ports."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from heron.app import RunningServer, start
from heron.config import ServerConfig, config_from_dict


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


@pytest.fixture
def config_factory(tmp_path: Path) -> Callable[..., ServerConfig]:
    def factory(**overrides: object) -> ServerConfig:
        return make_config(tmp_path / "data", **overrides)

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
