"""A small XML element tree, the unit every layer above the parser works with.

Names are split: ``tag`` is the local name and ``ns`` the namespace URI. Attribute keys are
plain local names for unqualified attributes and ``{uri}local`` (Clark notation) for
namespaced ones (``xml:lang`` is ``{http://www.w3.org/XML/1998/namespace}lang``).
Children are elements or text strings, so mixed content (XHTML-IM) survives untouched.
"""

from __future__ import annotations

from collections.abc import Iterator

Prepared = tuple[tuple["Element | str", ...], str | None, str]
"""Children serialized ahead of time: (the children they were, their parent namespace, XML)."""


class Element:
    __slots__ = ("attrs", "children", "ns", "prepared", "tag")

    def __init__(
        self,
        tag: str,
        ns: str,
        attrs: dict[str, str] | None = None,
        children: list[Element | str] | None = None,
    ) -> None:
        self.tag = tag
        self.ns = ns
        self.attrs: dict[str, str] = attrs if attrs is not None else {}
        self.children: list[Element | str] = children if children is not None else []
        # Set by serializer.prepare() for fan-out: used only while ``children`` still holds
        # exactly the same objects, so changing the children simply makes it stale.
        self.prepared: Prepared | None = None

    def __repr__(self) -> str:
        return f"<Element {{{self.ns}}}{self.tag} {self.attrs!r} ({len(self.children)} children)>"

    # --- attributes -------------------------------------------------------------------
    def get(self, name: str, default: str | None = None) -> str | None:
        return self.attrs.get(name, default)

    def set(self, name: str, value: str | None) -> None:
        """Set an attribute, or remove it when ``value`` is None."""
        if value is None:
            self.attrs.pop(name, None)
        else:
            self.attrs[name] = value

    # --- children ---------------------------------------------------------------------
    def elements(self) -> Iterator[Element]:
        for child in self.children:
            if isinstance(child, Element):
                yield child

    def find(self, tag: str, ns: str | None = None) -> Element | None:
        """The first child element with this local name (and namespace, if given)."""
        for child in self.children:
            if isinstance(child, Element) and child.tag == tag and (ns is None or child.ns == ns):
                return child
        return None

    def find_all(self, tag: str, ns: str | None = None) -> list[Element]:
        return [
            c
            for c in self.children
            if isinstance(c, Element) and c.tag == tag and (ns is None or c.ns == ns)
        ]

    def first(self) -> Element | None:
        """The first child element, whatever its name (an IQ's payload)."""
        for child in self.children:
            if isinstance(child, Element):
                return child
        return None

    def append(self, child: Element | str) -> Element | str:
        self.children.append(child)
        return child

    def add(
        self, tag: str, ns: str | None = None, attrs: dict[str, str] | None = None, text: str = ""
    ) -> Element:
        """Append and return a new child element (inherits this element's ns by default)."""
        child = Element(tag, self.ns if ns is None else ns, attrs)
        if text:
            child.children.append(text)
        self.children.append(child)
        return child

    # --- text -------------------------------------------------------------------------
    @property
    def text(self) -> str:
        """The concatenated direct text content of this element."""
        return "".join(c for c in self.children if isinstance(c, str))

    @text.setter
    def text(self, value: str) -> None:
        self.children = [c for c in self.children if isinstance(c, Element)]
        if value:
            self.children.insert(0, value)

    def child_text(self, tag: str, ns: str | None = None) -> str | None:
        child = self.find(tag, ns)
        return None if child is None else child.text

    # --- copies and comparison --------------------------------------------------------
    def copy(self) -> Element:
        """A deep copy (stanzas are mutated per recipient, e.g. the ``to`` attribute)."""
        return Element(
            self.tag,
            self.ns,
            dict(self.attrs),
            [c.copy() if isinstance(c, Element) else c for c in self.children],
        )

    def shallow_copy(self) -> Element:
        """A copy sharing children (and their prepared XML): cheap when only attributes
        change, as for each recipient of a group chat message."""
        copy = Element(self.tag, self.ns, dict(self.attrs), list(self.children))
        copy.prepared = self.prepared
        return copy

    def renamespaced(self, old: str, new: str) -> Element:
        """A deep copy with every element in ``old`` moved to ``new`` (``jabber:client`` ↔
        ``jabber:server`` when a stanza crosses from a client stream to a server stream)."""
        return Element(
            self.tag,
            new if self.ns == old else self.ns,
            dict(self.attrs),
            [c.renamespaced(old, new) if isinstance(c, Element) else c for c in self.children],
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Element):
            return NotImplemented
        return (
            self.tag == other.tag
            and self.ns == other.ns
            and self.attrs == other.attrs
            and self.children == other.children
        )

    __hash__ = None  # type: ignore[assignment]  # mutable: not hashable
