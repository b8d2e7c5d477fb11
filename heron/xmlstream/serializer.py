"""A serializer that cannot emit invalid XML: names are checked, characters escaped, and
characters illegal in XML 1.0 replaced by U+FFFD."""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from typing import Final

from heron import ns
from heron.xmlstream.element import Element

STREAM_FOOTER: Final = "</stream:stream>"

_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Fast paths: most text and attribute values need no escaping at all.
_TEXT_SPECIAL = re.compile("[&<>\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_ATTR_SPECIAL = re.compile("[&<>\"'\n\r\t\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NAME = re.compile(r"^[A-Za-z_][\w.\-]*$")
_XML_LANG: Final = f"{{{ns.XML}}}"


def _clean(text: str) -> str:
    return _ILLEGAL.sub("\ufffd", text)


def escape_text(text: str) -> str:
    if _TEXT_SPECIAL.search(text) is None:
        return text
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # A raw CR would come back as LF (XML 1.0 §2.11 end-of-line handling).
    return _clean(text.replace("\r", "&#13;"))


def escape_attr(text: str) -> str:
    if _ATTR_SPECIAL.search(text) is None:
        return text
    text = (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
        .replace("\n", "&#10;")
        .replace("\r", "&#13;")
        .replace("\t", "&#9;")
    )
    return _clean(text)


_GOOD_NAMES: set[str] = set()  # names already checked (a handful in practice)


def _check_name(name: str) -> str:
    if name in _GOOD_NAMES:
        return name
    if not _NAME.match(name) or ":" in name:
        raise ValueError(f"invalid XML name {name!r}")
    if len(_GOOD_NAMES) < 4096:
        _GOOD_NAMES.add(name)
    return name


def _write(el: Element, parent_ns: str | None, out: list[str], prefix: str | None = None) -> None:
    if prefix is not None:  # a namespace the stream header binds to this prefix
        tag = f"{prefix}:{_check_name(el.tag)}"
        ns_decl = ""
        child_parent: str | None = parent_ns
    elif el.ns == ns.STREAM and parent_ns is not None and parent_ns != ns.STREAM:
        tag = "stream:" + _check_name(el.tag)
        ns_decl = ""
        child_parent = parent_ns
    else:
        tag = _check_name(el.tag)
        ns_decl = "" if el.ns == parent_ns else f' xmlns="{escape_attr(el.ns)}"'
        child_parent = el.ns
    out.append("<" + tag + ns_decl)
    prefixes = 0
    for key, value in el.attrs.items():
        if key[0] == "{":
            uri, _, local = key[1:].partition("}")
            if uri == ns.XML:
                out.append(f' xml:{_check_name(local)}="{escape_attr(value)}"')
            else:
                prefixes += 1
                out.append(
                    f' xmlns:a{prefixes}="{escape_attr(uri)}"'
                    f' a{prefixes}:{_check_name(local)}="{escape_attr(value)}"'
                )
        else:
            out.append(f' {_check_name(key)}="{escape_attr(value)}"')
    children = el.children
    if not children:
        out.append("/>")
        return
    out.append(">")
    prepared = el.prepared
    if (
        prepared is not None
        and prepared[1] == child_parent
        and len(prepared[0]) == len(children)
        and all(map(operator.is_, prepared[0], children))
    ):
        out.append(prepared[2])
    else:
        _write_children(children, child_parent, out)
    out.append(f"</{tag}>")


def _write_children(children: list[Element | str], parent_ns: str | None, out: list[str]) -> None:
    for child in children:
        if isinstance(child, str):
            out.append(escape_text(child))
        else:
            _write(child, parent_ns, out)


def prepare(el: Element, parent_ns: str | None = None) -> None:
    """Serialize ``el``'s children once, for the many copies of a fan-out: each copy then
    costs only its own start tag. Preparing again after children were appended serializes
    only the new ones. ``parent_ns`` as for serialize(); the stream namespace
    decides the children's context, so a copy renamespaced for a server stream (a deep
    copy) is serialized afresh."""
    stream_prefixed = el.ns == ns.STREAM and parent_ns is not None and parent_ns != ns.STREAM
    child_parent = parent_ns if stream_prefixed else el.ns
    children = el.children
    out: list[str] = []
    done = el.prepared
    if (  # children only appended since the last prepare: the earlier ones' XML is reused
        done is not None
        and done[1] == child_parent
        and len(done[0]) <= len(children)
        and all(map(operator.is_, done[0], children))
    ):
        out.append(done[2])
        _write_children(children[len(done[0]) :], child_parent, out)
    else:
        _write_children(children, child_parent, out)
    el.prepared = (tuple(children), child_parent, "".join(out))


def serialize(
    el: Element, parent_ns: str | None = None, prefixes: Mapping[str, str] | None = None
) -> str:
    """Serialize ``el``; ``xmlns`` is written only where it differs from ``parent_ns``.

    Pass the stream's content namespace (e.g. ``jabber:client``) as ``parent_ns`` for
    top-level elements: stanzas then carry no xmlns, and elements of the streams namespace
    use the ``stream:`` prefix that the stream header declares. ``prefixes`` maps further
    namespaces the header declares to their prefix (``{ns.DIALBACK: "db"}``): a top-level
    element in one of them is written with the prefix (``<db:result/>``).
    """
    out: list[str] = []
    _write(el, parent_ns, out, prefixes.get(el.ns) if prefixes else None)
    return "".join(out)


def serialize_bytes(el: Element, parent_ns: str | None = None) -> bytes:
    return serialize(el, parent_ns).encode()


def stream_header(
    *,
    default_ns: str,
    from_: str | None,
    to: str | None,
    stream_id: str | None,
    version: str | None = "1.0",
    lang: str | None = "en",
    prefixes: dict[str, str] | None = None,
) -> str:
    """The opening tag; ``prefixes`` declares more (``{"db": "jabber:server:dialback"}``)."""
    parts = [
        f"<?xml version='1.0'?><stream:stream xmlns='{escape_attr(default_ns)}'"
        f" xmlns:stream='{ns.STREAM}'"
    ]
    for prefix, uri in (prefixes or {}).items():
        parts.append(f" xmlns:{prefix}='{escape_attr(uri)}'")
    for name, value in (("from", from_), ("to", to), ("id", stream_id), ("version", version)):
        if value is not None:
            parts.append(f" {name}='{escape_attr(value)}'")
    if lang is not None:
        parts.append(f" xml:lang='{escape_attr(lang)}'")
    parts.append(">")
    return "".join(parts)
