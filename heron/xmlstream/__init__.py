"""The sans-IO XML stream layer: parser, element tree, serializer, limits."""

from heron.xmlstream.element import Element
from heron.xmlstream.errors import XmlStreamError
from heron.xmlstream.limits import Limits
from heron.xmlstream.parser import (
    ElementReceived,
    StreamClosed,
    StreamEvent,
    StreamOpened,
    StreamParser,
)
from heron.xmlstream.serializer import (
    STREAM_FOOTER,
    prepare,
    serialize,
    serialize_bytes,
    stream_header,
)

__all__ = [
    "STREAM_FOOTER",
    "Element",
    "ElementReceived",
    "Limits",
    "StreamClosed",
    "StreamEvent",
    "StreamOpened",
    "StreamParser",
    "XmlStreamError",
    "prepare",
    "serialize",
    "serialize_bytes",
    "stream_header",
]
