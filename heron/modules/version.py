"""XEP-0092: Software Version of the server.

The operating system is withheld unless the ``show_os`` option is set: telling every
stranger which platform the server runs on helps attackers more than it helps users.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

from heron import ns
from heron.config import build_options
from heron.core.module import Module, ModuleContext, Xep, iq_handler
from heron.core.registry import Target
from heron.stanza import Stanza
from heron.xmlstream.element import Element

SOFTWARE_NAME = "Heron"


@dataclass(frozen=True, slots=True)
class VersionOptions:
    show_os: bool = False
    """Include the operating system's name in answers (off: it helps attackers)."""


class VersionModule(Module):
    name = "version"
    description = "Tells the server's software name and version."
    xeps = (Xep(92, "1.1", "complete"),)
    disco_features = (ns.VERSION,)

    def __init__(self, ctx: ModuleContext) -> None:
        super().__init__(ctx)
        self.options = build_options(
            VersionOptions, ctx.options, f'hosts."{ctx.domain}".modules.{self.name}'
        )

    @iq_handler("get", ns.VERSION, Target.HOST)
    async def on_version(self, iq: Stanza) -> Element | None:
        """XEP-0092 §2: <name/> and <version/> are required, <os/> is optional."""
        query = Element("query", ns.VERSION)
        query.add("name", text=SOFTWARE_NAME)
        query.add("version", text=self.ctx.version)
        if self.options.show_os:
            query.add("os", text=platform.system())
        return query
