"""Logs for machines: one JSON object a line, with the session's context; stdout under a
service manager."""

from __future__ import annotations

import io
import json
import logging

import pytest

from heron.config import ConfigError, config_from_dict
from heron.log import setup_logging


@pytest.fixture(autouse=True)
def restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield None
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_level_logger_message_context_and_traceback() -> None:
    out = io.StringIO()
    setup_logging("INFO", "json", out)
    log = logging.LoggerAdapter(logging.getLogger("heron.test"), {"peer": "192.0.2.1"})
    log.info("hello %s", "wörld")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("heron.test").exception("failed\nover lines")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["level"] == "INFO"
    assert first["logger"] == "heron.test"
    assert first["message"] == "hello wörld"
    assert first["peer"] == "192.0.2.1"
    assert first["time"].endswith("+00:00")
    assert second["message"] == "failed\nover lines"
    assert "ValueError: boom" in second["exc"]


def test_under_a_service_manager_records_go_to_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("INVOCATION_ID", "0123")
    setup_logging("INFO", "text")
    logging.getLogger("heron.test").warning("to stdout")
    captured = capsys.readouterr()
    assert "to stdout" in captured.out
    assert "to stdout" not in captured.err
    monkeypatch.delenv("INVOCATION_ID")
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    setup_logging("INFO", "text")
    logging.getLogger("heron.test").warning("to stderr")
    assert "to stderr" in capsys.readouterr().err


def test_the_format_is_checked() -> None:
    config = config_from_dict({"hosts": {"a.example": {}}, "logging": {"format": "json"}}, "t")
    assert config.logging.format == "json"
    with pytest.raises(ConfigError, match=r"logging\.format: must be one of text, json"):
        config_from_dict({"hosts": {"a.example": {}}, "logging": {"format": "xml"}}, "t")
