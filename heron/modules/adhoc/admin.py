"""XEP-0133: Service Administration, the commands of one host.

Each command is a `Command` of the generic engine (commands.py): a form as XEP-0133 shows
it, then the work. Accounts named in a form must be of this host (not-allowed otherwise:
an admin of example.org administers example.net at example.net's JID, if allowed there).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from heron import ns
from heron.core.module import ModuleContext
from heron.core.sessions import Session
from heron.jid import JID, InvalidJID
from heron.modules.adhoc.commands import (
    Command,
    Field,
    Result,
    Values,
    command_error,
    data_form,
)
from heron.modules.adhoc.store import Motd, MotdStore
from heron.stanza import StanzaCondition, StanzaError, StreamCondition, StreamError
from heron.storage.accounts import UserExists, UserNotFound
from heron.xmlstream.element import Element

RELOAD_NODE: Final = "https://heron.invalid/admin#reload"  # Heron's own; never fetched
MOTD_CACHE_S: Final = 30.0
MAX_ITEMS: Final = (("25", "25"), ("50", "50"), ("75", "75"), ("100", "100"), ("None", "none"))


Run = Callable[[JID, Values], Awaitable[Result]]


def node(name: str) -> str:
    return f"{ns.ADMIN}#{name}"


def _form(title: str, *fields: Field) -> Element:
    return data_form("form", fields, form_type=ns.ADMIN, title=title)


def _result(*fields: Field) -> Element:
    return data_form("result", fields, form_type=ns.ADMIN)


def _limit(values: Values, items: Sequence[str]) -> list[str]:
    raw = values.one("max_items")
    if raw and raw != "none":
        if not raw.isdigit():
            raise command_error(StanzaCondition.BAD_REQUEST, "bad-payload", "max_items")
        return list(items[: int(raw)])
    return list(items)


class AdminCommands:
    """The XEP-0133 set at one host's JID, for that host's admins."""

    def __init__(self, ctx: ModuleContext, motd: MotdStore) -> None:
        self.ctx = ctx
        self.motd = motd
        # Every available presence asks for the message of the day: kept for a while
        # (another node's change is seen within MOTD_CACHE_S), dropped on a local change.
        self._motd: tuple[float, Motd | None] | None = None

    async def current_motd(self) -> Motd | None:
        now = self.ctx.now()
        if self._motd is None or self._motd[0] <= now:
            self._motd = (now + MOTD_CACHE_S, await self.motd.get(self.ctx.domain))
        return self._motd[1]

    def commands(self) -> list[Command]:
        jid_multi = Field("accountjids", "jid-multi", "The Jabber ID(s)", required=True)
        jid_single = Field("accountjid", "jid-single", "The Jabber ID", required=True)
        max_items = Field("max_items", "list-single", "Maximum number of items", options=MAX_ITEMS)

        def cmd(name: str, label: str, run: Run, form: Element | None = None) -> Command:
            if form is None:
                return Command(node(name), label, run)

            async def make(_asker: JID) -> Element:
                return form.copy()

            return Command(node(name), label, run, make)

        password = Field("password", "text-private", "The password", required=True)
        return [
            cmd(
                "add-user",
                "Add a user",
                self.add_user,
                _form(
                    "Adding a User",
                    jid_single,
                    password,
                    Field("password-verify", "text-private", "Retype password", required=True),
                ),
            ),
            cmd(
                "delete-user", "Delete users", self.delete_user, _form("Deleting Users", jid_multi)
            ),
            cmd("disable-user", "Disable users", self.disable_user, _form("Disabling", jid_multi)),
            cmd(
                "reenable-user",
                "Re-enable users",
                self.reenable_user,
                _form("Re-enabling", jid_multi),
            ),
            cmd(
                "end-user-session",
                "End user sessions",
                self.end_sessions,
                _form("Ending User Sessions", jid_multi),
            ),
            cmd(
                "change-user-password",
                "Change a user's password",
                self.change_password,
                _form("Changing a User Password", jid_single, password),
            ),
            cmd(
                "get-user-roster",
                "Get a user's roster",
                self.get_roster,
                _form("Getting a User's Roster", jid_single),
            ),
            cmd("get-registered-users-num", "Number of registered users", self.registered_num),
            cmd(
                "get-registered-users-list",
                "List of registered users",
                self.registered_list,
                _form("Registered Users", max_items),
            ),
            cmd("get-disabled-users-num", "Number of disabled users", self.disabled_num),
            cmd(
                "get-disabled-users-list",
                "List of disabled users",
                self.disabled_list,
                _form("Disabled Users", max_items),
            ),
            cmd("get-online-users-num", "Number of online users", self.online_num),
            cmd(
                "get-online-users-list",
                "List of online users",
                self.online_list,
                _form("Online Users", max_items),
            ),
            cmd(
                "announce",
                "Send an announcement to online users",
                self.announce,
                _form("Making an Announcement", Field("announcement", "text-multi", required=True)),
            ),
            cmd(
                "set-motd",
                "Set the message of the day",
                self.set_motd,
                _form("Message of the Day", Field("motd", "text-multi", required=True)),
            ),
            Command(
                node("edit-motd"), "Edit the message of the day", self.set_motd, self.edit_form
            ),
            cmd("delete-motd", "Delete the message of the day", self.delete_motd),
            Command(RELOAD_NODE, "Reload the configuration", self.reload),
        ]

    # --- helpers --------------------------------------------------------------------
    def _account(self, text: str) -> JID:
        try:
            jid = JID.parse(text)
        except InvalidJID:
            raise command_error(StanzaCondition.BAD_REQUEST, "bad-payload", f"{text!r}") from None
        if jid.local is None:
            raise command_error(StanzaCondition.BAD_REQUEST, "bad-payload", f"{text}: no user")
        if jid.domain != self.ctx.domain:
            raise StanzaError(StanzaCondition.NOT_ALLOWED, f"{jid.domain} is not this host")
        return jid

    def _accounts(self, values: Values) -> list[JID]:
        texts = values.all("accountjids") or values.all("accountjid")
        if not texts:
            raise command_error(StanzaCondition.BAD_REQUEST, "bad-payload", "accountjids")
        return [self._account(t) for t in texts]

    def _host_sessions(self) -> list[Session]:
        return [s for s in self.ctx.sessions.all() if s.jid.domain == self.ctx.domain]

    def _close(self, account: JID, error: StreamError) -> int:
        sessions = (
            self.ctx.sessions.resources(account)
            if account.resource is None
            else [s for s in [self.ctx.sessions.get_local(account)] if s is not None]
        )
        for session in sessions:
            session.close(error)
        return len(sessions)

    @staticmethod
    def _summary(done: list[JID], verb: str, missing: list[JID]) -> Result:
        if not done and missing:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, f"no such account: {missing[0]}")
        note = f"{verb}: {', '.join(map(str, done))}"
        if missing:
            note += f"; not found: {', '.join(map(str, missing))}"
        return Result(note, "warn" if missing else "info")

    # --- accounts ---------------------------------------------------------------------
    async def add_user(self, asker: JID, values: Values) -> Result:
        jid = self._account(values.required("accountjid")).bare
        password = values.required("password")
        if password != values.one("password-verify"):
            raise command_error(StanzaCondition.BAD_REQUEST, "bad-payload", "passwords differ")
        try:
            await self.ctx.accounts.create(jid, password)
        except UserExists:
            raise StanzaError(StanzaCondition.CONFLICT, f"{jid} already exists") from None
        except ValueError as exc:
            raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, f"unusable password: {exc}") from None
        self.ctx.log.info("%s added account %s", asker.bare, jid)
        return Result(f"created {jid}")

    async def delete_user(self, asker: JID, values: Values) -> Result:
        done, missing = [], []
        for jid in self._accounts(values):
            account = jid.bare
            try:
                await self.ctx.accounts.delete(account)
            except UserNotFound:
                missing.append(account)
                continue
            await self.ctx.registry.forget_account(account)
            await self.ctx.fast.revoke(account.local or "", account.domain)
            self._close(account, StreamError(StreamCondition.NOT_AUTHORIZED, "account removed"))
            self.ctx.log.info("%s deleted account %s", asker.bare, account)
            done.append(account)
        return self._summary(done, "deleted", missing)

    async def disable_user(self, asker: JID, values: Values) -> Result:
        done, missing = [], []
        for jid in self._accounts(values):
            if not await self.ctx.accounts.disable(jid.bare):
                missing.append(jid.bare)
                continue
            # §4.3: the account's sessions end and it cannot log in until re-enabled.
            self._close(jid.bare, StreamError(StreamCondition.NOT_AUTHORIZED, "account disabled"))
            self.ctx.log.info("%s disabled account %s", asker.bare, jid.bare)
            done.append(jid.bare)
        return self._summary(done, "disabled", missing)

    async def reenable_user(self, asker: JID, values: Values) -> Result:
        done, missing = [], []
        for jid in self._accounts(values):
            if await self.ctx.accounts.enable(jid.bare):
                self.ctx.log.info("%s re-enabled account %s", asker.bare, jid.bare)
                done.append(jid.bare)
            else:
                missing.append(jid.bare)
        return self._summary(done, "re-enabled", missing)

    async def end_sessions(self, asker: JID, values: Values) -> Result:
        """§4.5: a bare JID ends all of the account's sessions, a full JID only that one."""
        ended = 0
        error = StreamError(StreamCondition.POLICY_VIOLATION, "session ended by an administrator")
        for jid in self._accounts(values):
            ended += self._close(jid, error)
        return Result(f"ended {ended} session(s)")

    async def change_password(self, asker: JID, values: Values) -> Result:
        jid = self._account(values.required("accountjid")).bare
        try:
            await self.ctx.accounts.set_password(jid, values.required("password"))
        except UserNotFound:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, f"no such account: {jid}") from None
        except ValueError as exc:
            raise StanzaError(StanzaCondition.NOT_ACCEPTABLE, f"unusable password: {exc}") from None
        await self.ctx.fast.revoke(jid.local or "", jid.domain)  # as a password change does
        self.ctx.log.info("%s changed the password of %s", asker.bare, jid)
        return Result(f"password changed for {jid}")

    async def get_roster(self, asker: JID, values: Values) -> Result:
        jid = self._account(values.required("accountjid")).bare
        contacts = self.ctx.registry.contacts
        if contacts is None:
            raise StanzaError(StanzaCondition.FEATURE_NOT_IMPLEMENTED, "no roster module here")
        if not await self.ctx.accounts.exists(jid):
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND, f"no such account: {jid}")
        form = _result(Field("accountjids", "jid-multi", values=(str(jid),)))
        query = form.add("query", ns.ROSTER)
        for item in await contacts.roster_items(jid):
            query.append(item)
        return Result(form=form)

    # --- numbers and lists ----------------------------------------------------------
    async def _registered(self) -> list[str]:
        return [str(j) for j in await self.ctx.accounts.users(self.ctx.domain)]

    async def _disabled(self) -> list[str]:
        names = await self.ctx.accounts.disabled.list_disabled(self.ctx.domain)
        return [f"{name}@{self.ctx.domain}" for name in names]

    def _online(self) -> list[Session]:
        return sorted(self._host_sessions(), key=lambda s: str(s.jid))

    async def registered_num(self, asker: JID, values: Values) -> Result:
        count = len(await self._registered())
        return Result(form=_result(Field("registeredusersnum", values=(str(count),))))

    async def registered_list(self, asker: JID, values: Values) -> Result:
        users = _limit(values, await self._registered())
        return Result(form=_result(Field("registereduserjids", "jid-multi", values=tuple(users))))

    async def disabled_num(self, asker: JID, values: Values) -> Result:
        count = len(await self._disabled())
        return Result(form=_result(Field("disabledusersnum", values=(str(count),))))

    async def disabled_list(self, asker: JID, values: Values) -> Result:
        users = _limit(values, await self._disabled())
        return Result(form=_result(Field("disableduserjids", "jid-multi", values=tuple(users))))

    async def online_num(self, asker: JID, values: Values) -> Result:
        count = len({s.jid.bare for s in self._host_sessions()})
        return Result(form=_result(Field("onlineusersnum", values=(str(count),))))

    async def online_list(self, asker: JID, values: Values) -> Result:
        """The accounts online (onlineuserjids) and each session with its resource
        (onlinesessions, Heron's own field: XEP-0133 has none for full JIDs)."""
        sessions = self._online()
        users = _limit(values, sorted({str(s.jid.bare) for s in sessions}))
        shown = set(users)
        full = tuple(str(s.jid) for s in sessions if str(s.jid.bare) in shown)
        return Result(
            form=_result(
                Field("onlineuserjids", "jid-multi", values=tuple(users)),
                Field("onlinesessions", "jid-multi", "Sessions with their resources", values=full),
            )
        )

    # --- announcements and the message of the day -----------------------------------
    def _message(self, to: JID, body: str, subject: str = "") -> Element:
        message = Element("message", ns.CLIENT, {"from": self.ctx.domain, "to": str(to)})
        message.attrs["type"] = "normal"
        if subject:
            message.add("subject", ns.CLIENT, text=subject)
        message.add("body", ns.CLIENT, text=body)
        return message

    def _broadcast(self, body: str, subject: str = "") -> list[Session]:
        """To every available session of this host, now (§4.23: only those online)."""
        reached = [s for s in self._host_sessions() if s.is_available and not s.hibernating]
        for session in reached:
            session.deliver(self._message(session.jid, body, subject))
        return reached

    async def announce(self, asker: JID, values: Values) -> Result:
        body = values.text("announcement")
        if not body:
            raise command_error(StanzaCondition.BAD_REQUEST, "bad-payload", "announcement")
        reached = self._broadcast(body)
        self.ctx.log.info("%s announced to %d session(s)", asker.bare, len(reached))
        return Result(f"sent to {len(reached)} session(s)")

    async def edit_form(self, asker: JID) -> Element:
        """§4.25: the form holds the current message, if any."""
        current = await self.motd.get(self.ctx.domain)
        lines = tuple(current.body.split("\n")) if current is not None else ()
        return _form("Editing the Message of the Day", Field("motd", "text-multi", values=lines))

    async def set_motd(self, asker: JID, values: Values) -> Result:
        body = values.text("motd")
        if not body:
            raise command_error(StanzaCondition.BAD_REQUEST, "bad-payload", "motd is required")
        motd = await self.motd.put(self.ctx.domain, body)
        self._motd = None
        # Those online get it now; the others at their next login (motd_at_login).
        reached = self._broadcast(body, "Message of the day")
        names = sorted({s.jid.local or "" for s in reached})
        await self.motd.mark_seen(self.ctx.domain, names, motd.version)
        self.ctx.log.info("%s set the message of the day", asker.bare)
        return Result(f"message of the day set; sent to {len(reached)} session(s)")

    async def delete_motd(self, asker: JID, values: Values) -> Result:
        self._motd = None
        if not await self.motd.delete(self.ctx.domain):
            return Result("there was no message of the day", "warn")
        self.ctx.log.info("%s deleted the message of the day", asker.bare)
        return Result("message of the day deleted")

    async def motd_at_login(self, session: Session) -> None:
        """Deliver the message of the day once to an account that has not seen it."""
        jid = session.jid
        motd = await self.current_motd()
        if motd is None or jid.local is None:
            return
        if await self.motd.seen(self.ctx.domain, jid.local) >= motd.version:
            return
        session.deliver(self._message(jid, motd.body, "Message of the day"))
        await self.motd.mark_seen(self.ctx.domain, [jid.local], motd.version)

    # --- the server -------------------------------------------------------------------
    async def reload(self, asker: JID, values: Values) -> Result:
        report = await self.ctx.reload()
        self.ctx.log.info(
            "%s asked for a reload: %s", asker.bare, "done" if report.ok else "refused"
        )
        text = "\n".join(report.lines) or ("reloaded" if report.ok else "refused")
        return Result(text, "info" if report.ok else "error")
