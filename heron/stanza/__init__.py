"""Typed stanza envelopes and errors."""

from heron.stanza.errors import (
    ErrorType,
    StanzaCondition,
    StanzaError,
    StreamCondition,
    StreamError,
    error_reply,
)
from heron.stanza.stanza import Stanza, iq_result

__all__ = [
    "ErrorType",
    "Stanza",
    "StanzaCondition",
    "StanzaError",
    "StreamCondition",
    "StreamError",
    "error_reply",
    "iq_result",
]
