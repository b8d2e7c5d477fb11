"""SASL upgrade tasks (XEP-0480) for SCRAM: a client asks for a stored hash the server lacks.

After authenticating with any mechanism, the client names ``UPGR-SCRAM-<hash>`` tasks in its
SASL2 ``<authenticate/>``; the server answers ``<continue/>`` with one task at a time, sends a
fresh salt and iteration count when the client starts it (``<next/>``), and the client
answers with the SaltedPassword (RFC 5802 §3) for them, never the password itself. The server
keeps StoredKey and ServerKey derived from it, as it does for a password it derived itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Final

from heron import ns
from heron.credentials import HASHES, SALT_BYTES, ScramKeys, hashlib_name
from heron.stream.sasl.errors import SaslFailure
from heron.xmlstream import Element

TASKS: Final = {f"UPGR-SCRAM-{name}": name for name in HASHES}
StoreKeys = Callable[[str, str, ScramKeys], Awaitable[None]]  # (username, domain, keys)
log = logging.getLogger(__name__)


def requested(authenticate: Element) -> list[str]:
    """The tasks a SASL2 <authenticate/> asks for; one not offered fails it (XEP-0388 §2.3)."""
    tasks = [u.text.strip() for u in authenticate.find_all("upgrade", ns.SASL_UPGRADE)]
    if any(task not in TASKS for task in tasks):
        raise SaslFailure("invalid-mechanism", "no such upgrade task here")
    return list(dict.fromkeys(tasks))


def advertise(authentication: Element) -> None:
    for task in TASKS:
        authentication.add("upgrade", ns.SASL_UPGRADE, text=task)


def continue_with(task: str, final: bytes) -> Element:
    """The <continue/> naming the one task the client does next (XEP-0480 §3.2)."""
    answer = Element("continue", ns.SASL2)
    if final:
        answer.add("additional-data", ns.SASL2, text=base64.b64encode(final).decode())
    answer.add("tasks", ns.SASL2).add("task", ns.SASL2, text=task)
    return answer


class UpgradeTasks:
    """The tasks one SASL2 exchange asked for, done in order after authentication; then
    the login completes as ``username`` (rotating its FAST token if ``rotate``)."""

    def __init__(self, tasks: list[str], username: str, rotate: bool, iterations: int) -> None:
        self.tasks = tasks
        self.username = username
        self.rotate = rotate
        self.iterations = iterations
        self.current: ScramUpgrade | None = None

    def step(self, el: Element) -> Element | ScramKeys:
        """<next/>: the challenge to send; <task-data/>: the keys to store."""
        if el.tag == "next":
            if self.current is not None or el.attrs.get("task") != self.tasks[0]:
                raise SaslFailure("malformed-request", "start the task asked for")
            self.current = ScramUpgrade(self.tasks[0], self.iterations)
            return self.current.challenge()
        if self.current is None:
            raise SaslFailure("malformed-request", "start the task first")
        keys = self.current.finish(el)
        self.current = None
        self.tasks.pop(0)
        return keys

    def following(self) -> Element | None:
        """The <continue/> for the next task, or None when all are done."""
        return continue_with(self.tasks[0], b"") if self.tasks else None

    async def advance(self, el: Element, domain: str, store: StoreKeys) -> Element | None:
        """One client element: what to send next, or None once every task is done (the
        keys of each finished task stored first)."""
        answer = self.step(el)
        if isinstance(answer, Element):
            return answer
        await store(self.username, domain, answer)
        log.info("stored SCRAM-%s keys for %s (XEP-0480)", answer.hash_name, self.username)
        return self.following()


class ScramUpgrade:
    """One UPGR-SCRAM-* task: the salt sent, then the client's SaltedPassword checked."""

    def __init__(self, task: str, iterations: int) -> None:
        self.hash_name = TASKS[task]
        self.salt = secrets.token_bytes(SALT_BYTES)
        self.iterations = iterations

    def challenge(self) -> Element:
        data = Element("task-data", ns.SASL2)
        salt = base64.b64encode(self.salt).decode()
        data.add("salt", ns.SCRAM_UPGRADE, {"iterations": str(self.iterations)}, text=salt)
        return data

    def finish(self, answer: Element) -> ScramKeys:
        """The keys to store, from the client's <task-data><hash/></task-data>."""
        el = answer.find("hash", ns.SCRAM_UPGRADE) if answer.tag == "task-data" else None
        if el is None:
            raise SaslFailure("malformed-request", "expected the salted password hash")
        try:
            salted = base64.b64decode(el.text.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SaslFailure("incorrect-encoding") from exc
        name = hashlib_name(self.hash_name)
        if len(salted) != hashlib.new(name).digest_size:
            raise SaslFailure("malformed-request", "wrong hash length")
        client_key = hmac.digest(salted, b"Client Key", name)
        return ScramKeys(
            hash_name=self.hash_name,
            salt=self.salt,
            iterations=self.iterations,
            stored_key=hashlib.new(name, client_key).digest(),
            server_key=hmac.digest(salted, b"Server Key", name),
        )
