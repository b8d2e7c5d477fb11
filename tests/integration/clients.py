"""Driving Heron with slixmpp, a client library Heron did not write."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slixmpp import ClientXMPP
from slixmpp.xmlstream import ET

from heron.app import RunningServer

log = logging.getLogger(__name__)


class LoginFailed(Exception):
    pass


def make_client(
    server: RunningServer,
    jid: str,
    password: str,
    *,
    direct_tls: bool = False,
    mech: str | None = None,
    plugins: tuple[str, ...] = (),
) -> ClientXMPP:
    client = ClientXMPP(jid, password)
    domain = jid.split("@")[-1].split("/")[0]
    client.ca_certs = server.certificates[domain]
    client.enable_direct_tls = direct_tls
    client.enable_starttls = not direct_tls
    client.enable_plaintext = False
    client.auto_reconnect = False
    for plugin in ("xep_0030", "xep_0199", "xep_0092", "xep_0202", "xep_0077", *plugins):
        client.register_plugin(plugin)
    if mech is not None:
        client.plugin["feature_mechanisms"].use_mech = mech
    return client


async def login(
    server: RunningServer,
    jid: str,
    password: str,
    *,
    direct_tls: bool = False,
    mech: str | None = None,
    timeout: float = 10.0,
    plugins: tuple[str, ...] = (),
) -> ClientXMPP:
    """Connect, authenticate and bind; raises LoginFailed with the reason."""
    client = make_client(server, jid, password, direct_tls=direct_tls, mech=mech, plugins=plugins)
    done: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def finish(result: str) -> Any:
        def handler(*_args: Any) -> None:
            if not done.done():
                done.set_result(result)

        return handler

    client.add_event_handler("session_start", finish("ok"))
    client.add_event_handler("failed_all_auth", finish("auth failed"))
    client.add_event_handler("disconnected", finish("disconnected"))
    port = server.ports["c2s_tls" if direct_tls else "c2s"]
    client.connect("127.0.0.1", port)
    try:
        result = await asyncio.wait_for(done, timeout)
    except TimeoutError:
        result = "timeout"
    if result != "ok":
        await close(client)
        raise LoginFailed(result)
    return client


async def close(client: ClientXMPP) -> None:
    try:
        await asyncio.wait_for(client.disconnect(wait=1.0), 5)
    except (TimeoutError, Exception):  # best effort in teardown
        client.abort()


async def instant_room(client: ClientXMPP, room: str) -> None:
    """XEP-0045 §10.1.2: accept the default configuration, which opens a new room."""
    iq = client.make_iq_set(ito=room)
    iq.append(
        ET.fromstring(
            "<query xmlns='http://jabber.org/protocol/muc#owner'>"
            "<x xmlns='jabber:x:data' type='submit'/></query>"
        )
    )
    await iq.send(timeout=5)
