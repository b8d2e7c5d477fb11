"""A tiny authoritative DNS server on loopback, so that a real peer (Prosody) can find Heron
by SRV record on an ephemeral port without touching the machine's resolver."""

from __future__ import annotations

import asyncio
from typing import cast

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class _Responder(asyncio.DatagramProtocol):
    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        self.records = records
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            query = dns.message.from_wire(data)
        except Exception:
            return
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA | dns.flags.RA
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        answers = self.records.get((name, rdtype))
        if answers:
            response.answer.append(
                dns.rrset.from_text_list(name, 60, dns.rdataclass.IN, rdtype, answers)
            )
        elif not any(key[0] == name or key[0].endswith("." + name) for key in self.records):
            # Names above a record (``_tcp.heron.test``) exist, empty: resolvers that
            # minimise queries ask for them, and NXDOMAIN would hide everything below.
            response.set_rcode(dns.rcode.NXDOMAIN)
        assert self.transport is not None
        self.transport.sendto(response.to_wire(), addr)


class DnsServer:
    """``records`` maps (absolute name, type) to record texts, e.g.
    ``("_xmpp-server._tcp.heron.test.", "SRV"): ["0 5 5269 heron.test."]``."""

    def __init__(self, records: dict[tuple[str, str], list[str]]) -> None:
        self.records = records
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Responder(self.records), local_addr=("127.0.0.1", 0)
        )
        self._transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
