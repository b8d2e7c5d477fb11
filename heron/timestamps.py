"""XEP-0082 date-times: the one place that writes and reads them (always UTC)."""

from __future__ import annotations

from datetime import UTC, datetime


def stamp(unix: float, *, microseconds: bool = False) -> str:
    """``2026-11-25T08:00:00Z`` (or with ``.123456`` before the Z)."""
    pattern = "%Y-%m-%dT%H:%M:%S.%fZ" if microseconds else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.fromtimestamp(unix, UTC).strftime(pattern)


def parse(value: str) -> float | None:
    """Unix time of a XEP-0082 date-time (no zone means UTC), None when it is not one."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
