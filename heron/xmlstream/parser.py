"""Incremental, restricted XML stream parser on pyexpat (sans-IO).

Bytes in; ``StreamOpened`` / ``ElementReceived`` / ``StreamClosed`` out. RFC 6120 §11.1
restrictions (no DTD, entity declarations or references beyond the predefined five, no
processing instructions, no comments) and size/depth/attribute limits are enforced while
expat runs: input is fed in slices so an oversized stanza is refused before it is held whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final
from xml.parsers import expat

from heron import ns
from heron.xmlstream.element import Element
from heron.xmlstream.errors import XmlStreamError
from heron.xmlstream.limits import Limits

SEP: Final = "\x01"  # namespace separator: a character that cannot appear in XML
SLICE: Final = 16384
TEXT_BUFFER: Final = 512


@dataclass(frozen=True, slots=True)
class StreamOpened:
    tag: str
    ns: str
    attrs: dict[str, str]
    default_ns: str


@dataclass(frozen=True, slots=True)
class ElementReceived:
    element: Element


@dataclass(frozen=True, slots=True)
class StreamClosed:
    pass


StreamEvent = StreamOpened | ElementReceived | StreamClosed


def _is_markup_declaration(chunk: bytes, at: int) -> bool:
    for i in (at, at - 1, at - 2):
        if 0 <= i < len(chunk) and chunk.startswith(b"<!", i):
            return not chunk.startswith(b"<![CDATA[", i)
    return False


def _split(name: str) -> tuple[str, str]:
    uri, sep, local = name.rpartition(SEP)
    return (local, uri) if sep else (name, "")


def _refusing(text: str) -> Callable[..., Any]:
    """An expat handler refusing what restricted XML forbids (RFC 6120 §11.1)."""

    def refuse(*_args: object) -> Any:
        raise XmlStreamError("restricted-xml", text)

    return refuse


# Plain functions made once, not bound methods: one object per process, not six per parser
# (``feed`` keeps the error they raise as the parser's).
_RESTRICTED: Final = {
    "StartDoctypeDeclHandler": _refusing("a DTD is not allowed"),
    "EntityDeclHandler": _refusing("entity declarations are not allowed"),
    "ProcessingInstructionHandler": _refusing("processing instructions are not allowed"),
    "CommentHandler": _refusing("comments are not allowed"),
    "ExternalEntityRefHandler": _refusing("external entities are not allowed"),
    "SkippedEntityHandler": _refusing("entity references are not allowed"),
}


def _declaration(prefix: str | None, uri: str) -> bytes:
    name = "xmlns" if prefix is None else f"xmlns:{prefix}"
    value = uri.replace("&", "&amp;").replace("<", "&lt;").replace("'", "&apos;")
    return f" {name}='{value}'".encode()


class StreamParser:
    _root_decls: tuple[tuple[str | None, str], ...]
    _base: int
    _swept_fed: int
    _compact_fed: int
    _mid: bool
    _fed: int
    _last_event_fed: int

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._error: XmlStreamError | None = None
        self._events: list[StreamEvent] = []
        self._new_parser()

    # --- public -----------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self._opened and not self._closed

    @property
    def mid_stanza(self) -> bool:
        """True while a stanza (or the stream header) has begun and not ended.

        Judged from the input: an element is open, or the last non-blank byte fed is not
        the ``>`` that ends markup (so half a tag counts as begun).
        """
        return self._mid

    def set_limits(self, limits: Limits) -> None:
        self.limits = limits

    def reset(self) -> None:
        """A stream restart (after STARTTLS or SASL): a fresh header is expected."""
        self._new_parser()

    def sweep(self) -> bool:
        """Called every few seconds: a stream quiet since the last call and not mid-stanza
        gets a fresh expat parser (``compact``), once per quiet spell. True if it did."""
        if self._fed != self._swept_fed:
            self._swept_fed = self._fed  # input since the last sweep: not idle yet
            return False
        return self._fed != self._compact_fed and self.compact()

    def compact(self) -> bool:
        """Between stanzas, go on in a fresh expat parser inside the same stream root. Expat
        keeps every element and attribute name the stream ever used, and its input buffer,
        for the stream's life (about 10 KiB per logged-in session); an idle session need not.
        The new parser is given the root's namespace declarations, so the stanzas that
        follow mean what they meant; nothing is reported and the byte counts go on."""
        if not self._opened or self._closed or self._mid or self._stack or self._error:
            return False
        fed, last_event, decls = self._fed, self._last_event_fed, self._root_decls
        bound = dict(decls)
        if ns.STREAM in bound.values():
            prefix = next(p for p, uri in decls if uri == ns.STREAM)
            root, extra = (b"stream" if prefix is None else f"{prefix}:stream".encode()), b""
        elif "stream" not in bound:
            root, extra = b"stream:stream", _declaration("stream", ns.STREAM)
        else:
            return False  # "stream" names another namespace, none the stream's: leave it
        header = b"<" + root + b"".join(_declaration(p, u) for p, u in decls) + extra + b">"
        self._new_parser()
        self._parser.Parse(header, False)
        self._events = []  # the header's StreamOpened was reported when the stream began
        self._root_decls = decls
        self._base = fed - len(header)  # the new parser's byte indexes, in stream bytes
        self._fed = self._swept_fed = self._compact_fed = fed
        self._last_event_fed = last_event
        return True

    def feed(self, data: bytes) -> list[StreamEvent]:
        if self._error is not None:
            raise self._error
        self._events = []
        chunk = b""
        chunk_start = 0
        tail = data.rstrip(b" \t\r\n")
        if tail:
            self._tail_is_gt = tail.endswith(b">")
        try:
            for start in range(0, len(data), SLICE):
                chunk = data[start : start + SLICE]
                chunk_start = self._fed
                self._fed += len(chunk)
                self._parser.Parse(chunk, False)
                self._check_size()
                if self._closed:
                    break
        except expat.ExpatError as exc:
            condition = self._expat_condition(exc)
            at = self._parser.ErrorByteIndex + self._base - chunk_start
            if _is_markup_declaration(chunk, at):
                condition = "restricted-xml"  # a DOCTYPE/ENTITY inside the stream
            self._fail(condition, str(exc))
        except XmlStreamError as exc:
            self._error = exc
            raise
        self._mid = bool(self._stack) or not self._tail_is_gt or not self._opened
        events, self._events = self._events, []
        return events

    # --- internals --------------------------------------------------------------------
    def _new_parser(self) -> None:
        p = expat.ParserCreate("UTF-8", SEP)
        p.buffer_text = True
        # The text buffer is allocated per parser, i.e. per connection, idle or not: a
        # small one keeps idle sessions small (longer text arrives in pieces, joined in _text).
        p.buffer_size = TEXT_BUFFER
        p.ordered_attributes = False
        p.specified_attributes = True
        p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._text
        p.StartNamespaceDeclHandler = self._ns_decl
        p.XmlDeclHandler = self._xml_decl
        for handler, refuse in _RESTRICTED.items():
            setattr(p, handler, refuse)
        self._parser = p
        self._events = []
        self._stack: list[Element] = []
        self._opened = False
        self._closed = False
        self._fed = 0
        self._tail_is_gt = True
        self._mid = False
        self._last_event_fed = 0  # bytes fed when the parser last reported progress
        self._stanza_start = -1
        self._root_default_ns = ""
        self._pending_default_ns: str | None = None
        self._root_decls = ()  # (prefix, uri) declared on the root
        self._base = 0  # stream bytes before the expat parser's first (``compact``)
        self._swept_fed = self._compact_fed = -1  # ``_fed`` at the last sweep, compaction

    def _fail(self, condition: str, text: str) -> None:
        self._error = XmlStreamError(condition, text)
        raise self._error

    def _check_size(self) -> None:
        if not self._opened and self._fed > self.limits.max_header_bytes:
            self._fail("policy-violation", "stream header too large")
        elif self._stanza_start >= 0 and (
            self._fed - self._stanza_start > self.limits.max_stanza_bytes
        ):
            self._fail("policy-violation", "stanza too large")
        elif self._stanza_start < 0 and (
            self._fed - self._last_event_fed > self.limits.max_stanza_bytes + SLICE
        ):
            # Half a start tag never reaches _start: bound what expat holds for it.
            self._fail("policy-violation", "stanza too large")

    @staticmethod
    def _expat_condition(exc: expat.ExpatError) -> str:
        code = exc.code
        if code in (
            expat.errors.codes[expat.errors.XML_ERROR_UNDEFINED_ENTITY],
            expat.errors.codes[expat.errors.XML_ERROR_ENTITY_DECLARED_IN_PE],
        ):
            return "restricted-xml"
        if code == expat.errors.codes[expat.errors.XML_ERROR_UNKNOWN_ENCODING]:
            return "unsupported-encoding"
        return "not-well-formed"

    def _xml_decl(self, version: str | None, encoding: str | None, standalone: int) -> None:
        if encoding is not None and encoding.upper().replace("_", "-") not in ("UTF-8", "UTF8"):
            self._fail("unsupported-encoding", "only UTF-8 is supported")

    def _ns_decl(self, prefix: str | None, uri: str | None) -> None:
        if not self._opened:
            self._root_decls += ((prefix, uri or ""),)
            if prefix is None:
                self._pending_default_ns = uri or ""

    # content
    def _start(self, name: str, attrs: dict[str, str]) -> None:
        limits = self.limits
        if len(attrs) > limits.max_attrs:
            self._fail("policy-violation", "too many attributes")
        parsed: dict[str, str] = {}
        for key, value in attrs.items():
            if len(value) > limits.max_attr_bytes:
                self._fail("policy-violation", "attribute value too long")
            if SEP in key:
                local, uri = _split(key)
                parsed[f"{{{uri}}}{local}"] = value
            else:
                parsed[key] = value
        tag, uri = _split(name)
        if not self._opened:
            if tag != "stream" or uri != ns.STREAM:
                self._fail("invalid-namespace", "the root must be a stream:stream")
            self._opened = True
            self._root_default_ns = self._pending_default_ns or ""
            self._events.append(StreamOpened(tag, uri, parsed, self._root_default_ns))
            self._last_event_fed = self._fed
            return
        depth = len(self._stack)
        if depth >= limits.max_depth:
            self._fail("policy-violation", "elements nested too deeply")
        element = Element(tag, uri, parsed)
        if depth == 0:
            self._stanza_start = self._parser.CurrentByteIndex + self._base
        else:
            self._stack[-1].children.append(element)
        self._stack.append(element)

    def _end(self, name: str) -> None:
        if not self._stack:
            self._closed = True
            self._events.append(StreamClosed())
            return
        element = self._stack.pop()
        if not self._stack:
            self._stanza_start = -1
            self._last_event_fed = self._fed
            self._events.append(ElementReceived(element))

    def _text(self, data: str) -> None:
        if self._stack:
            children = self._stack[-1].children
            if children and isinstance(children[-1], str):
                children[-1] += data
            else:
                children.append(data)
        elif data.strip() and self._opened:
            # RFC 6120 §11.3: only whitespace may appear between top-level elements.
            self._fail("bad-format", "text directly under the stream root")
        else:
            self._last_event_fed = self._fed  # whitespace keepalives are progress
