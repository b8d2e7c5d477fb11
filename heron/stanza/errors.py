"""Stanza and stream errors as typed values (RFC 6120 §8.3 and §4.9)."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from heron import ns
from heron.xmlstream.element import Element


class ErrorType(StrEnum):
    """RFC 6120 §8.3.2: what the sender should do about the error."""

    AUTH = "auth"
    CANCEL = "cancel"
    CONTINUE = "continue"
    MODIFY = "modify"
    WAIT = "wait"


class StanzaCondition(StrEnum):
    """RFC 6120 §8.3.3 defined conditions."""

    BAD_REQUEST = "bad-request"
    CONFLICT = "conflict"
    FEATURE_NOT_IMPLEMENTED = "feature-not-implemented"
    FORBIDDEN = "forbidden"
    GONE = "gone"
    INTERNAL_SERVER_ERROR = "internal-server-error"
    ITEM_NOT_FOUND = "item-not-found"
    JID_MALFORMED = "jid-malformed"
    NOT_ACCEPTABLE = "not-acceptable"
    NOT_ALLOWED = "not-allowed"
    NOT_AUTHORIZED = "not-authorized"
    POLICY_VIOLATION = "policy-violation"
    RECIPIENT_UNAVAILABLE = "recipient-unavailable"
    REDIRECT = "redirect"
    REGISTRATION_REQUIRED = "registration-required"
    REMOTE_SERVER_NOT_FOUND = "remote-server-not-found"
    REMOTE_SERVER_TIMEOUT = "remote-server-timeout"
    RESOURCE_CONSTRAINT = "resource-constraint"
    SERVICE_UNAVAILABLE = "service-unavailable"
    SUBSCRIPTION_REQUIRED = "subscription-required"
    UNDEFINED_CONDITION = "undefined-condition"
    UNEXPECTED_REQUEST = "unexpected-request"


# The error type each condition usually carries, from the examples of RFC 6120 §8.3.3.
DEFAULT_TYPE: Final[dict[StanzaCondition, ErrorType]] = {
    StanzaCondition.BAD_REQUEST: ErrorType.MODIFY,
    StanzaCondition.CONFLICT: ErrorType.CANCEL,
    StanzaCondition.FEATURE_NOT_IMPLEMENTED: ErrorType.CANCEL,
    StanzaCondition.FORBIDDEN: ErrorType.AUTH,
    StanzaCondition.GONE: ErrorType.CANCEL,
    StanzaCondition.INTERNAL_SERVER_ERROR: ErrorType.CANCEL,
    StanzaCondition.ITEM_NOT_FOUND: ErrorType.CANCEL,
    StanzaCondition.JID_MALFORMED: ErrorType.MODIFY,
    StanzaCondition.NOT_ACCEPTABLE: ErrorType.MODIFY,
    StanzaCondition.NOT_ALLOWED: ErrorType.CANCEL,
    StanzaCondition.NOT_AUTHORIZED: ErrorType.AUTH,
    StanzaCondition.POLICY_VIOLATION: ErrorType.MODIFY,
    StanzaCondition.RECIPIENT_UNAVAILABLE: ErrorType.WAIT,
    StanzaCondition.REDIRECT: ErrorType.MODIFY,
    StanzaCondition.REGISTRATION_REQUIRED: ErrorType.AUTH,
    StanzaCondition.REMOTE_SERVER_NOT_FOUND: ErrorType.CANCEL,
    StanzaCondition.REMOTE_SERVER_TIMEOUT: ErrorType.WAIT,
    StanzaCondition.RESOURCE_CONSTRAINT: ErrorType.WAIT,
    StanzaCondition.SERVICE_UNAVAILABLE: ErrorType.CANCEL,
    StanzaCondition.SUBSCRIPTION_REQUIRED: ErrorType.AUTH,
    StanzaCondition.UNDEFINED_CONDITION: ErrorType.CANCEL,
    StanzaCondition.UNEXPECTED_REQUEST: ErrorType.WAIT,
}


class StanzaError(Exception):
    """A remote error: the peer's stanza cannot be served; only that stanza fails."""

    def __init__(
        self,
        condition: StanzaCondition,
        text: str = "",
        *,
        type: ErrorType | None = None,
        extra: Element | None = None,
        by: str | None = None,
    ) -> None:
        super().__init__(f"{condition}: {text}" if text else str(condition))
        self.condition = condition
        self.type = type or DEFAULT_TYPE[condition]
        self.text = text
        self.extra = extra
        self.by = by  # RFC 6120 §8.3.2: the entity that generated the error, when known

    def to_element(self, stanza_ns: str = ns.CLIENT) -> Element:
        error = Element("error", stanza_ns, {"type": str(self.type)})
        if self.by is not None:
            error.attrs["by"] = self.by
        return _described(error, str(self.condition), ns.STANZAS_ERRORS, self.text, self.extra)


def error_reply(stanza: Element, error: StanzaError) -> Element:
    """The error answer to ``stanza`` (RFC 6120 §8.3.1): addresses swapped, type error."""
    reply = Element(stanza.tag, stanza.ns)
    for name in ("id",):
        if name in stanza.attrs:
            reply.attrs[name] = stanza.attrs[name]
    if "from" in stanza.attrs:
        reply.attrs["to"] = stanza.attrs["from"]
    if "to" in stanza.attrs:
        reply.attrs["from"] = stanza.attrs["to"]
    reply.attrs["type"] = "error"
    if stanza.tag != "iq":
        # Messages and presences carry their payload back so the sender can tell which failed.
        reply.children.extend(c.copy() if isinstance(c, Element) else c for c in stanza.children)
    reply.append(error.to_element(stanza.ns))
    return reply


class StreamCondition(StrEnum):
    """RFC 6120 §4.9.3 defined stream error conditions."""

    BAD_FORMAT = "bad-format"
    BAD_NAMESPACE_PREFIX = "bad-namespace-prefix"
    CONFLICT = "conflict"
    CONNECTION_TIMEOUT = "connection-timeout"
    HOST_GONE = "host-gone"
    HOST_UNKNOWN = "host-unknown"
    IMPROPER_ADDRESSING = "improper-addressing"
    INTERNAL_SERVER_ERROR = "internal-server-error"
    INVALID_FROM = "invalid-from"
    INVALID_NAMESPACE = "invalid-namespace"
    INVALID_XML = "invalid-xml"
    NOT_AUTHORIZED = "not-authorized"
    NOT_WELL_FORMED = "not-well-formed"
    POLICY_VIOLATION = "policy-violation"
    REMOTE_CONNECTION_FAILED = "remote-connection-failed"
    RESET = "reset"
    RESOURCE_CONSTRAINT = "resource-constraint"
    RESTRICTED_XML = "restricted-xml"
    SEE_OTHER_HOST = "see-other-host"
    SYSTEM_SHUTDOWN = "system-shutdown"
    UNDEFINED_CONDITION = "undefined-condition"
    UNSUPPORTED_ENCODING = "unsupported-encoding"
    UNSUPPORTED_FEATURE = "unsupported-feature"
    UNSUPPORTED_STANZA_TYPE = "unsupported-stanza-type"
    UNSUPPORTED_VERSION = "unsupported-version"


class StreamError(Exception):
    """A stream-level error: the stream is closed with this condition."""

    def __init__(
        self, condition: StreamCondition, text: str = "", extra: Element | None = None
    ) -> None:
        super().__init__(f"{condition}: {text}" if text else str(condition))
        self.condition = condition
        self.text = text
        self.extra = extra  # an application-specific condition (RFC 6120 §4.9.4)

    def to_element(self) -> Element:
        error = Element("error", ns.STREAM)
        return _described(error, str(self.condition), ns.STREAMS_ERRORS, self.text, self.extra)


def _described(
    error: Element, condition: str, conditions_ns: str, text: str, extra: Element | None
) -> Element:
    """What a stream or stanza error carries (RFC 6120 §4.9.2, §8.3.2): the defined
    condition, an optional human-readable <text/>, an optional application condition."""
    error.add(condition, conditions_ns)
    if text:
        error.add("text", conditions_ns, {ns.XML_LANG: "en"}, text)
    if extra is not None:
        error.append(extra)
    return error
