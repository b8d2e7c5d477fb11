"""The external component listener (XEP-0114, by custom on 127.0.0.1:5347).

Components authenticate with a shared secret over plain TCP, so the listener belongs on
loopback or a private network (XEP-0114 §5). Each connection runs one ``ComponentStream``
under the same traffic policy and connection guard as clients.
"""

from __future__ import annotations

import asyncio

from heron.config import LimitsConfig
from heron.ratelimit import ConnectionGuard
from heron.stream.component import ComponentStream
from heron.stream.hosts import ComponentHost
from heron.transport.runner import Admission, TcpListener
from heron.transport.tcp import TcpLink


class ComponentListener(TcpListener[ComponentStream]):
    """Accepts component connections and runs one stream engine per connection."""

    backlog = 128

    def __init__(
        self,
        host: ComponentHost,
        *,
        policy: LimitsConfig,
        guard: ConnectionGuard,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(guard=guard, reuse_port=reuse_port)
        self.host = host
        self.policy = policy

    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, admission: Admission
    ) -> None:
        link = TcpLink(reader, writer, None)  # no STARTTLS in XEP-0114
        stream = ComponentStream(self.host, link)
        stream.log.info("component connection")

        def after_read() -> None:
            if stream.is_authenticated:
                admission.authenticated()

        try:
            await self.connections.run(
                stream,
                reader,
                self.policy,
                deadlines=[(self.policy.auth_timeout_s, stream.timed_out)],
                after_read=after_read,
            )
        finally:
            stream.eof()  # stops routing to it if it still was
            link.close()
            stream.log.info(
                "component %s disconnected: %s",
                stream.domain or "(none)",
                stream.close_reason or "closed",
            )
