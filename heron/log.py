"""Logging set-up: one line per event, session-scoped context, no secrets."""

from __future__ import annotations

import logging


class _ContextFormatter(logging.Formatter):
    """Prefixes the session's peer address or host when an adapter supplied one."""

    def format(self, record: logging.LogRecord) -> str:
        context = [
            f"{key}={getattr(record, key)}" for key in ("peer", "host") if hasattr(record, key)
        ]
        base = super().format(record)
        return f"{base} [{' '.join(context)}]" if context else base


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_ContextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
