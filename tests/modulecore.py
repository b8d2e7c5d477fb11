"""CoreServices for unit tests that load modules without a whole server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from heron.core.accounts import AccountService
from heron.core.bytestreams import BytestreamBroker
from heron.core.metrics import Metrics
from heron.core.module import CoreServices, HttpHandler, Stores
from heron.core.registry import HostRegistry
from heron.core.router import Router
from heron.core.sessions import SessionManager
from heron.jid import JID
from heron.storage.db import Database
from heron.storage.fast import FastTokenStore


class FakeDomains:
    """Service domains and HTTP routes, kept in plain tables."""

    def __init__(self, registries: dict[str, HostRegistry]) -> None:
        self.registries = registries
        self.services: set[str] = set()
        self.http_routes: list[tuple[str, str, HttpHandler]] = []
        self.http_base_url = ""

    def add_service(self, domain: str) -> HostRegistry:
        registry = self.registries[domain] = HostRegistry(domain)
        self.services.add(domain)
        return registry

    def remove_service(self, domain: str) -> None:
        self.services.discard(domain)
        self.registries.pop(domain, None)

    def is_local_host(self, domain: str) -> bool:
        return domain in self.registries and domain not in self.services


def make_core(
    db: Database,
    accounts: AccountService,
    registries: dict[str, HostRegistry],
    *,
    version: str = "9.8.7",
    sessions: SessionManager | None = None,
    clock: Callable[[], float] | None = None,
    data_dir: Path = Path("/nonexistent"),
) -> CoreServices:
    sessions = sessions or SessionManager()

    async def exists(jid: JID) -> bool:
        return await accounts.exists(jid)

    domains = FakeDomains(registries)
    extra: dict[str, Any] = {} if clock is None else {"clock": clock}
    return CoreServices(
        sessions=sessions,
        router=Router(sessions, registries.get, exists),
        accounts=accounts,
        fast=FastTokenStore(db),
        metrics=Metrics(),
        stores=Stores(db),
        domains=domains,
        http=domains,
        bytestreams=BytestreamBroker(),
        secret=lambda purpose: b"s" * 32,
        version=version,
        data_dir=data_dir,
        **extra,
    )
