"""SASL failure conditions (RFC 6120 §6.5)."""

from __future__ import annotations

from typing import Final

__all__ = ["CONDITIONS", "SaslFailure"]

CONDITIONS: Final = frozenset(
    {
        "aborted",
        "account-disabled",
        "credentials-expired",
        "encryption-required",
        "incorrect-encoding",
        "invalid-authzid",
        "invalid-mechanism",
        "malformed-request",
        "mechanism-too-weak",
        "not-authorized",
        "temporary-auth-failure",
    }
)


class SaslFailure(Exception):
    """The peer's SASL exchange failed; ``condition`` names the RFC 6120 §6.5 element.

    ``text`` is for logs and the optional ``<text/>``; it never contains secrets.
    """

    def __init__(self, condition: str, text: str = "") -> None:
        if condition not in CONDITIONS:
            raise ValueError(f"unknown SASL failure condition {condition!r}")
        super().__init__(condition, text)
        self.condition = condition
        self.text = text

    def __str__(self) -> str:
        return f"{self.condition}: {self.text}" if self.text else self.condition
