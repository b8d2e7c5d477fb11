"""XEP-0050 Ad-Hoc Commands at the server's JID, with XEP-0133's Service Administration set.

Only the host's administrators (the config's `admins`) see the command nodes in disco#items
and may run them; anyone else gets an empty list and forbidden. The message of the day is
kept by `SqlMotdStore` on either engine and delivered once per message at login.
"""

from __future__ import annotations

from heron import ns
from heron.core.module import Module, ModuleContext, Xep, hook, iq_handler
from heron.core.registry import Target
from heron.jid import JID
from heron.modules.adhoc.admin import AdminCommands
from heron.modules.adhoc.commands import CommandEngine
from heron.modules.adhoc.store import MotdStore, SqlMotdStore
from heron.stanza import Stanza
from heron.xmlstream.element import Element


class AdhocModule(Module):
    name = "adhoc"
    description = "Ad-hoc commands; the service administration commands for admins"
    xeps = (
        Xep(50, "1.3.0", "complete", "commands at the server's JID, for its admins"),
        Xep(
            133,
            "1.3.1",
            "partial",
            "users (add, delete, disable, re-enable, password, roster, sessions), counts and"
            " lists, announce, message of the day, reload; no blacklists or shutdown",
        ),
    )
    disco_features = (ns.COMMANDS,)
    stores = (SqlMotdStore,)

    def __init__(self, ctx: ModuleContext) -> None:
        super().__init__(ctx)
        store: MotdStore = ctx.store(SqlMotdStore)
        self.store = store
        self.admin = AdminCommands(ctx, store)
        self.engine = CommandEngine(ctx.domain, self.admin.commands(), ctx.is_admin)

    async def start(self) -> None:
        self.ctx.add_disco_nodes(self)
        self.ctx.on_account_deleted(self.on_account_deleted)

    # --- disco nodes (XEP-0050 §2) ----------------------------------------------------
    async def node_info(self, node: str, asker: JID) -> Element | None:
        return self.engine.info(node, asker)

    async def node_items(self, node: str, asker: JID) -> Element | None:
        return self.engine.items(asker) if node == ns.COMMANDS else None

    @iq_handler("set", ns.COMMANDS, Target.HOST)
    async def on_command(self, iq: Stanza) -> Element | None:
        return await self.engine.handle(iq)

    @hook("pre-presence", priority=5)
    async def on_presence(self, stanza: Stanza) -> bool:
        """An account's available presence: its message of the day, if not yet seen."""
        full = stanza.from_
        if stanza.to is not None or stanza.type != "available" or full is None:
            return False
        session = self.ctx.sessions.get_local(full) if full.domain == self.ctx.domain else None
        if session is not None:
            await self.admin.motd_at_login(session)
        return False

    async def on_account_deleted(self, account: JID) -> None:
        await self.store.forget(account.domain, account.local or "")
