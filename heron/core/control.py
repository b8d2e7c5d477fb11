"""Operations on the running server that the wiring offers to modules and the admin socket."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ReloadReport:
    ok: bool
    lines: tuple[str, ...]
    """What changed, or why the new configuration was refused (the old one stays)."""


class Reloader(Protocol):
    async def reload(self) -> ReloadReport:
        """Read the configuration file and certificates again and apply what changed."""
        ...


class Control:
    """A slot the wiring fills once the server runs (an in-process test has none)."""

    def __init__(self) -> None:
        self.reloader: Reloader | None = None

    async def reload(self) -> ReloadReport:
        if self.reloader is None:
            return ReloadReport(False, ("this server was not started from a configuration file",))
        return await self.reloader.reload()
