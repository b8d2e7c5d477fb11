"""XEP-0115 §6.3: the server names its capabilities in the stream features after login, and
answers disco#info for that node#ver with exactly what the hash covers."""

from __future__ import annotations

import base64
import re
from pathlib import Path

from heron.stanza.caps import ver_of
from heron.stream.base import TlsInfo
from heron.stream.c2s import C2SStream
from heron.xmlstream import Limits
from heron.xmlstream.stored import parse_stored
from tests.harness import HEADER, PASSWORD, MemoryLink, start_server


async def test_server_caps_in_features_match_its_disco(tmp_path: Path) -> None:
    server = await start_server(tmp_path, ("alice",))
    try:
        link = MemoryLink()
        stream = C2SStream(server, link, is_tls=True)
        stream.tls_established(TlsInfo("TLSv1.3", {}))
        await stream.receive(HEADER)
        token = base64.b64encode(f"\0alice\0{PASSWORD}".encode())
        await stream.receive(
            b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>" % token
        )
        link.take()
        await stream.receive(HEADER)
        features = link.take()
        caps = re.search(r'<c xmlns="http://jabber.org/protocol/caps"[^>]*/>', features)
        assert caps is not None, features
        node = re.search(r'node="([^"]+)"', caps.group(0))
        ver = re.search(r'ver="([^"]+)"', caps.group(0))
        assert node is not None
        assert ver is not None
        await stream.receive(
            b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>"
        )
        link.take()
        await stream.receive(
            f"<iq type='get' id='d' to='localhost'><query xmlns='http://jabber.org/protocol/"
            f"disco#info' node='{node.group(1)}#{ver.group(1)}'/></iq>".encode()
        )
        answer = parse_stored(link.take(), ("iq", "jabber:client"), Limits())
        assert answer is not None
        query = answer.find("query", "http://jabber.org/protocol/disco#info")
        assert query is not None
        assert ver_of(query, "sha-1") == ver.group(1)
    finally:
        await server.stop()
