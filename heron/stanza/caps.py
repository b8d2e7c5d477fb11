"""XEP-0115 Entity Capabilities: the verification string and hash of a disco#info result.

A client's presence carries ``<c node ver hash/>``; the server asks the client for
``disco#info`` on ``node#ver``, recomputes the hash (§5.1, §5.4) and, only when it matches,
caches the features under that ver for every other client with the same software. The
legacy form without ``hash`` (§4 before v1.4) is never cached by ver.
"""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from heron import ns
from heron.xmlstream.element import Element

# The IANA hash names of §5.1 to hashlib's.
HASHES: Final = {"sha-1": "sha1", "sha-224": "sha224", "sha-256": "sha256", "sha-384": "sha384",
                 "sha-512": "sha512"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Caps:
    """The ``<c/>`` of a presence."""

    node: str
    ver: str
    hash: str  # "" for the legacy form

    @classmethod
    def from_presence(cls, presence: Element) -> Caps | None:
        c = presence.find("c", ns.CAPS)
        if c is None or not c.attrs.get("node") or not c.attrs.get("ver"):
            return None
        return cls(c.attrs["node"], c.attrs["ver"], c.attrs.get("hash", ""))


class MalformedInfo(ValueError):
    """A disco#info result that §5.4 says must not be accepted (duplicates, bad forms)."""


def verification_string(query: Element) -> str:
    """§5.1 steps 1-8: identities, features, then extended forms, each sorted."""
    identities = []
    for identity in query.find_all("identity", ns.DISCO_INFO):
        a = identity.attrs
        lang = a.get(ns.XML_LANG, "")
        identities.append(f"{a.get('category', '')}/{a.get('type', '')}/{lang}/{a.get('name', '')}")
    features = [f.attrs.get("var", "") for f in query.find_all("feature", ns.DISCO_INFO)]
    if len(set(identities)) != len(identities) or len(set(features)) != len(features):
        raise MalformedInfo("duplicate identities or features")  # §5.4 step 3.3-3.4
    text = "".join(f"{i}<" for i in sorted(identities))
    text += "".join(f"{f}<" for f in sorted(features))
    forms: dict[str, Element] = {}
    for form in query.find_all("x", ns.DATA_FORMS):
        by_var = {f.attrs.get("var", ""): f for f in form.find_all("field", ns.DATA_FORMS)}
        form_type = by_var.get("FORM_TYPE")
        if form_type is None:
            continue  # §5.4 step 3.6: forms without FORM_TYPE are ignored
        if form_type.attrs.get("type") not in (None, "hidden"):
            raise MalformedInfo("FORM_TYPE is not hidden")
        name = form_type.child_text("value", ns.DATA_FORMS) or ""
        if name in forms:
            raise MalformedInfo("two forms of one FORM_TYPE")  # §5.4 step 3.5
        forms[name] = form
    for name in sorted(forms):
        text += f"{name}<"
        fields = sorted(
            (
                f
                for f in forms[name].find_all("field", ns.DATA_FORMS)
                if f.attrs.get("var") != "FORM_TYPE"
            ),
            key=lambda f: f.attrs.get("var", ""),
        )
        for fld in fields:
            text += f"{fld.attrs.get('var', '')}<"
            text += "".join(
                f"{v}<" for v in sorted(v.text for v in fld.find_all("value", ns.DATA_FORMS))
            )
    return text


def ver_of(query: Element, hash_name: str) -> str | None:
    """The ver the client should have sent, or None for an unknown hash or a bad result."""
    algorithm = HASHES.get(hash_name)
    if algorithm is None:
        return None
    try:
        text = verification_string(query)
    except MalformedInfo:
        return None
    digest = hashlib.new(algorithm, text.encode()).digest()
    return base64.b64encode(digest).decode()


def features_of(query: Element) -> frozenset[str]:
    return frozenset(f.attrs.get("var", "") for f in query.find_all("feature", ns.DISCO_INFO))


class CapsCache:
    """Features by (hash, ver), verified only; bounded, least recently used goes first."""

    def __init__(self, size: int = 1000) -> None:
        self._size = size
        self._known: OrderedDict[tuple[str, str], frozenset[str]] = OrderedDict()

    def get(self, caps: Caps) -> frozenset[str] | None:
        key = (caps.hash, caps.ver)
        found = self._known.get(key)
        if found is not None:
            self._known.move_to_end(key)
        return found

    def learn(self, caps: Caps, query: Element) -> frozenset[str] | None:
        """Cache the features when the result hashes to ``caps.ver``. Returns the features
        to use for this one client either way (None: the result was malformed)."""
        try:
            verification_string(query)
        except MalformedInfo:
            return None
        features = features_of(query)
        if caps.hash and ver_of(query, caps.hash) == caps.ver:
            self._known[(caps.hash, caps.ver)] = features
            self._known.move_to_end((caps.hash, caps.ver))
            while len(self._known) > self._size:
                self._known.popitem(last=False)
        return features
