"""Reading XML back from storage: parsed again under the client limits, never trusted."""

from __future__ import annotations

import logging
from typing import Final

from heron import ns
from heron.xmlstream.element import Element
from heron.xmlstream.errors import XmlStreamError
from heron.xmlstream.limits import Limits
from heron.xmlstream.parser import ElementReceived, StreamParser
from heron.xmlstream.serializer import stream_header

log = logging.getLogger(__name__)

_HEADER: Final = stream_header(
    default_ns=ns.CLIENT, from_=None, to=None, stream_id=None, lang=None
).encode()


def parse_stored(
    xml: str, expect: tuple[str, str] | None = None, limits: Limits | None = None
) -> Element | None:
    """The single element stored as ``xml``, or None when it is unreadable, over the limits,
    not exactly one element, or not the ``(tag, namespace)`` expected (an archived stanza
    must never become a crash loop)."""
    parser = StreamParser(limits or Limits())
    try:
        events = parser.feed(_HEADER)
        events += parser.feed(xml.encode("utf-8", errors="strict"))
    except (XmlStreamError, UnicodeError):
        return None
    found = [e.element for e in events if isinstance(e, ElementReceived)]
    if len(found) != 1:
        return None
    element = found[0]
    if expect is not None and (element.tag, element.ns) != expect:
        return None
    return element


def read_stored(xml: str, tag: str, namespace: str) -> Element | None:
    """A stored ``{namespace}tag`` element, re-checked; None (logged) when it is not one."""
    element = parse_stored(xml, (tag, namespace))
    if element is None:
        log.warning("stored %s element is unreadable or not a single {%s}%s", tag, namespace, tag)
    return element
