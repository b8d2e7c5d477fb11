"""Logging set-up: one line per event, session-scoped context, no secrets.

Two formats: `text` (a line a record) and `json` (one object a line: time, level, logger,
message, and the session's peer or host when an adapter supplied them, for collectors such
as journald's JSON export, Loki or Elasticsearch). Under a service manager (systemd sets
INVOCATION_ID, and JOURNAL_STREAM when stdout goes to the journal) records go to stdout,
where the manager collects them; otherwise to stderr.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import TextIO

_CONTEXT = ("peer", "host")


class _ContextFormatter(logging.Formatter):
    """Prefixes the session's peer address or host when an adapter supplied one."""

    def format(self, record: logging.LogRecord) -> str:
        context = [f"{key}={getattr(record, key)}" for key in _CONTEXT if hasattr(record, key)]
        base = super().format(record)
        return f"{base} [{' '.join(context)}]" if context else base


class JsonFormatter(logging.Formatter):
    """One JSON object a line; a traceback goes in `exc` (never across lines)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _CONTEXT:
            if hasattr(record, key):
                entry[key] = str(getattr(record, key))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def under_service_manager() -> bool:
    return bool(os.environ.get("INVOCATION_ID") or os.environ.get("JOURNAL_STREAM"))


def setup_logging(level: str = "INFO", format: str = "text", stream: TextIO | None = None) -> None:
    if stream is None:
        stream = sys.stdout if under_service_manager() else sys.stderr
    handler = logging.StreamHandler(stream)
    if format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_ContextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
