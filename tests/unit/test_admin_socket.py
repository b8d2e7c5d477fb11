"""The admin socket's protocol and the shell side's fallback for a file that does not
validate (the socket's answers with a running server: tests/integration/test_operations.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from heron.ops.cli import data_dir_only
from heron.ops.socket import AdminSocket, socket_path, socket_paths


async def test_bad_requests_are_answered_with_the_reason() -> None:
    admin = AdminSocket(cast(Any, None), Path("unused"))
    assert (await admin.answer(b"not json\n"))["ok"] is False
    assert (await admin.answer(b"[1, 2]\n")) == {"ok": False, "error": "expected a JSON object"}
    unknown = await admin.answer(b'{"cmd": "shutdown"}\n')
    assert unknown == {"ok": False, "error": "unknown command 'shutdown'"}
    typed = await admin.answer(b'{"cmd": "kick", "jid": 5}\n')
    assert typed == {"ok": False, "error": "jid: expected a string"}


def test_one_socket_per_server_or_per_worker(tmp_path: Path) -> None:
    assert socket_path(tmp_path) == tmp_path / "admin.sock"
    assert socket_path(tmp_path, "w2") == tmp_path / "admin-w2.sock"
    assert socket_paths(tmp_path) == []
    (tmp_path / "admin-w2.sock").touch()
    (tmp_path / "admin-w1.sock").touch()
    assert socket_paths(tmp_path) == [tmp_path / "admin-w1.sock", tmp_path / "admin-w2.sock"]


def test_the_data_dir_is_found_in_a_file_that_does_not_validate(tmp_path: Path) -> None:
    config = tmp_path / "heron.toml"
    config.write_text('data_dir = "state"\n[limits]\nmax_stanza_bytes = 1\n')
    assert data_dir_only(config).data_dir == tmp_path / "state"
    config.write_text('data_dir = "/var/lib/heron"\nthis is not TOML')
    assert data_dir_only(config).data_dir == tmp_path / "data"  # the default, beside it
