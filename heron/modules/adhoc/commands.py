"""XEP-0050: Ad-Hoc Commands, the generic part: command sessions, actions, data forms, errors.

A `Command` has an optional form (its first stage) and a `run` that receives the submitted
values and returns what completes it (a note, a result form). Every command here has at most
one form, so the only actions offered are ``complete`` (the default of ``execute``) and
``cancel``; ``prev`` is refused with bad-action (§4.6).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from heron import ns
from heron.jid import JID
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.xmlstream.element import Element

ACTIONS: Final = frozenset({"execute", "cancel", "prev", "next", "complete"})
SESSION_TIMEOUT_S: Final = 600.0
MAX_SESSIONS: Final = 200  # open command sessions per host; the oldest is dropped past it
ENDED_REMEMBERED: Final = 1000  # ended session ids told apart from unknown ones (§4.6)


def command_error(
    condition: StanzaCondition, specific: str | None = None, text: str = ""
) -> StanzaError:
    """A stanza error with XEP-0050's specific condition (§4.6: bad-payload, bad-sessionid…)."""
    extra = Element(specific, ns.COMMANDS) if specific is not None else None
    return StanzaError(condition, text, extra=extra)


# --- data forms (XEP-0004) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    var: str
    type: str = "text-single"
    label: str = ""
    required: bool = False
    values: tuple[str, ...] = ()
    options: tuple[tuple[str, str], ...] = ()
    """(label, value) pairs of a list-single or list-multi field."""


def data_form(
    type_: str,
    fields: Sequence[Field],
    *,
    form_type: str = "",
    title: str = "",
    instructions: str = "",
) -> Element:
    """A data form (XEP-0004 ``<x/>``) of `type_` (form or result), FORM_TYPE first."""
    x = Element("x", ns.DATA_FORMS, {"type": type_})
    if title:
        x.add("title", ns.DATA_FORMS, text=title)
    if instructions:
        x.add("instructions", ns.DATA_FORMS, text=instructions)
    if form_type:
        hidden = x.add("field", ns.DATA_FORMS, {"var": "FORM_TYPE", "type": "hidden"})
        hidden.add("value", ns.DATA_FORMS, text=form_type)
    for f in fields:
        attrs = {"var": f.var, "type": f.type}
        if f.label:
            attrs["label"] = f.label
        el = x.add("field", ns.DATA_FORMS, attrs)
        if f.required:
            el.add("required", ns.DATA_FORMS)
        for label, value in f.options:
            el.add("option", ns.DATA_FORMS, {"label": label}).add(
                "value", ns.DATA_FORMS, text=value
            )
        for value in f.values:
            el.add("value", ns.DATA_FORMS, text=value)
    return x


@dataclass(frozen=True, slots=True)
class Values:
    """What a submitted form holds: every field's values by name."""

    by_var: dict[str, list[str]] = field(default_factory=dict)

    def all(self, var: str) -> list[str]:
        return [v for v in self.by_var.get(var, []) if v]

    def one(self, var: str) -> str:
        values = self.all(var)
        return values[0] if values else ""

    def required(self, var: str) -> str:
        value = self.one(var)
        if not value:
            raise command_error(StanzaCondition.BAD_REQUEST, "bad-payload", f"{var} is required")
        return value

    def text(self, var: str) -> str:
        """A text-multi field: its lines joined (empty lines kept inside the text)."""
        return "\n".join(self.by_var.get(var, [])).strip("\n")


def submitted(command: Element) -> Values | None:
    """The values of the ``<x type='submit'/>`` in a command, or None without one."""
    for x in command.elements():
        if x.tag == "x" and x.ns == ns.DATA_FORMS and x.attrs.get("type") == "submit":
            by_var: dict[str, list[str]] = {}
            for f in x.elements():
                if f.tag == "field" and f.ns == ns.DATA_FORMS and "var" in f.attrs:
                    values = [
                        v.text for v in f.elements() if v.tag == "value" and v.ns == ns.DATA_FORMS
                    ]
                    by_var.setdefault(f.attrs["var"], []).extend(values)
            return Values(by_var)
    return None


# --- commands and their sessions ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    """How a command completed: a note for the person, and/or a result form."""

    note: str = ""
    note_type: str = "info"  # info, warn or error (§4.5)
    form: Element | None = None
    extra: tuple[Element, ...] = ()


@dataclass(frozen=True, slots=True)
class Command:
    node: str
    name: str
    run: Callable[[JID, Values], Awaitable[Result]]
    form: Callable[[JID], Awaitable[Element]] | None = None
    """The form to fill first; None: the command runs as soon as it is executed."""


@dataclass(slots=True)
class _Session:
    node: str
    owner: JID
    expires: float


class CommandEngine:
    """The commands one entity offers to those ``allowed`` to run them (the host's admins).

    Others see no command nodes at all and get forbidden when they try one (XEP-0133 §8).
    """

    def __init__(
        self,
        jid: str,
        commands: Sequence[Command],
        allowed: Callable[[JID], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jid = jid
        self.commands = {c.node: c for c in commands}
        self.allowed = allowed
        self.clock = clock
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._ended: OrderedDict[str, None] = OrderedDict()

    # --- disco (§2.1, §2.2) -------------------------------------------------------------------
    def items(self, asker: JID) -> Element:
        """§2.2: the command list, empty for whoever may not run them."""
        query = Element("query", ns.DISCO_ITEMS, {"node": ns.COMMANDS})
        if self.allowed(asker):
            for command in self.commands.values():
                attrs = {"jid": self.jid, "node": command.node, "name": command.name}
                query.add("item", ns.DISCO_ITEMS, attrs)
        return query

    def info(self, node: str, asker: JID) -> Element | None:
        """§2.2: the command list's and each command's identity and features."""
        query = Element("query", ns.DISCO_INFO, {"node": node})
        if node == ns.COMMANDS:
            query.add("identity", ns.DISCO_INFO, {"category": "automation", "type": "command-list"})
            return query
        command = self.commands.get(node)
        if command is None:
            return None
        if not self.allowed(asker):
            # §2.2: a command not available to the requester is answered with forbidden.
            raise StanzaError(StanzaCondition.FORBIDDEN)
        query.add(
            "identity",
            ns.DISCO_INFO,
            {"category": "automation", "type": "command-node", "name": command.name},
        )
        query.add("feature", ns.DISCO_INFO, {"var": ns.COMMANDS})
        query.add("feature", ns.DISCO_INFO, {"var": ns.DATA_FORMS})
        return query

    # --- execution (§3, §4) -------------------------------------------------------------
    async def handle(self, iq: Stanza) -> Element:
        request = iq.payload
        asker = iq.from_
        if request is None or asker is None:
            raise StanzaError(StanzaCondition.BAD_REQUEST)
        node = request.attrs.get("node", "")
        if not node:
            raise StanzaError(StanzaCondition.BAD_REQUEST, "the node attribute is required")
        command = self.commands.get(node)
        if command is None:
            raise StanzaError(StanzaCondition.ITEM_NOT_FOUND)
        if not self.allowed(asker):
            raise StanzaError(StanzaCondition.FORBIDDEN)
        action = request.attrs.get("action", "execute")
        if action not in ACTIONS:
            raise command_error(StanzaCondition.BAD_REQUEST, "malformed-action")
        self._expire()
        sessionid = request.attrs.get("sessionid")
        if sessionid is None:
            return await self._begin(command, asker, action)
        session = self._sessions.get(sessionid)
        if session is None:
            if sessionid in self._ended:
                raise command_error(StanzaCondition.NOT_ALLOWED, "session-expired")
            raise command_error(StanzaCondition.BAD_REQUEST, "bad-sessionid")
        if session.owner != asker or session.node != node:
            raise command_error(StanzaCondition.BAD_REQUEST, "bad-sessionid")
        if action == "cancel":
            self._end(sessionid)
            return self._reply(node, sessionid, "canceled")
        if action == "prev":
            raise command_error(StanzaCondition.BAD_REQUEST, "bad-action", "no previous stage")
        values = submitted(request)
        if values is None:
            raise command_error(StanzaCondition.BAD_REQUEST, "bad-payload", "a form is expected")
        try:
            result = await command.run(asker, values)
        except StanzaError as exc:
            if not (exc.extra is not None and exc.extra.tag == "bad-payload"):
                self._end(sessionid)  # a form missing a field may be sent again
            raise
        self._end(sessionid)
        return self._completed(node, sessionid, result)

    async def _begin(self, command: Command, asker: JID, action: str) -> Element:
        if action == "cancel":
            return self._reply(command.node, secrets.token_urlsafe(9), "canceled")
        if action == "prev":
            raise command_error(StanzaCondition.BAD_REQUEST, "bad-action", "no previous stage")
        sessionid = secrets.token_urlsafe(12)
        if command.form is None:
            return self._completed(command.node, sessionid, await command.run(asker, Values()))
        form = await command.form(asker)
        self._sessions[sessionid] = _Session(command.node, asker, self.clock() + SESSION_TIMEOUT_S)
        while len(self._sessions) > MAX_SESSIONS:
            self._end(next(iter(self._sessions)))
        reply = self._reply(command.node, sessionid, "executing")
        actions = reply.add("actions", ns.COMMANDS, {"execute": "complete"})
        actions.add("complete", ns.COMMANDS)
        reply.append(form)
        return reply

    @staticmethod
    def _reply(node: str, sessionid: str, status: str) -> Element:
        return Element(
            "command", ns.COMMANDS, {"node": node, "sessionid": sessionid, "status": status}
        )

    def _completed(self, node: str, sessionid: str, result: Result) -> Element:
        reply = self._reply(node, sessionid, "completed")
        if result.note:
            reply.add("note", ns.COMMANDS, {"type": result.note_type}, result.note)
        if result.form is not None:
            reply.append(result.form)
        for el in result.extra:
            reply.append(el)
        return reply

    def _end(self, sessionid: str) -> None:
        self._sessions.pop(sessionid, None)
        self._ended[sessionid] = None
        while len(self._ended) > ENDED_REMEMBERED:
            self._ended.popitem(last=False)

    def _expire(self) -> None:
        now = self.clock()
        for sessionid in [s for s, v in self._sessions.items() if v.expires <= now]:
            self._end(sessionid)
