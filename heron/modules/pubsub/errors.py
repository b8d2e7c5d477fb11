"""The pubsub#errors application conditions (XEP-0060 §7-§8, schema in §14)."""

from __future__ import annotations

from heron import ns
from heron.stanza import StanzaCondition, StanzaError
from heron.xmlstream.element import Element


def pubsub_error(condition: str, *, feature: str = "") -> Element:
    """``<condition xmlns='…pubsub#errors'/>``, with the feature for ``unsupported``."""
    el = Element(condition, ns.PUBSUB_ERRORS)
    if feature:
        el.attrs["feature"] = feature
    return el


def error(condition: StanzaCondition, app: str = "", text: str = "") -> StanzaError:
    """A stanza error with an optional pubsub#errors child."""
    return StanzaError(condition, text, extra=pubsub_error(app) if app else None)


def unsupported(feature: str, text: str = "") -> StanzaError:
    return StanzaError(
        StanzaCondition.FEATURE_NOT_IMPLEMENTED,
        text or f"{feature} is not supported",
        extra=pubsub_error("unsupported", feature=feature),
    )


def node_not_found(node: str) -> StanzaError:
    return StanzaError(StanzaCondition.ITEM_NOT_FOUND, f"no node {node!r}")
