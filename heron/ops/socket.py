"""The local admin socket: a UNIX socket under data_dir, mode 0600, for `heron status`,
`heron sessions`, `heron kick` and `heron reload` while the server runs.

One JSON object a line each way: ``{"cmd": "status"}`` → ``{"ok": true, "result": …}``
or ``{"ok": false, "error": "…"}``. Only the server's own user (or root) may connect: the
file's mode says so, and the peer's credentials are checked again on each connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from heron.ops.status import kick, sessions, status

if TYPE_CHECKING:
    from heron.app import RunningServer

log = logging.getLogger(__name__)

SOCKET_NAME: Final = "admin.sock"
MAX_REQUEST: Final = 65536
REQUEST_TIMEOUT_S: Final = 10.0


def socket_path(data_dir: Path, node: str | None = None) -> Path:
    """The socket of this process: one per node when workers share a data_dir."""
    return data_dir / (SOCKET_NAME if node is None else f"admin-{node}.sock")


def socket_paths(data_dir: Path) -> list[Path]:
    """Every admin socket in data_dir: the server's, or each worker's."""
    single = data_dir / SOCKET_NAME
    return [single] if single.exists() else sorted(data_dir.glob("admin-*.sock"))


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", data)
    return int(uid)


class AdminSocket:
    def __init__(self, running: RunningServer, path: Path) -> None:
        self.running = running
        self.path = path
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            if await _answers(self.path):
                raise OSError(f"{self.path}: another Heron is running with this data_dir")
            self.path.unlink()  # left by a server that did not stop cleanly
        self._server = await asyncio.start_unix_server(
            self._client, path=str(self.path), limit=MAX_REQUEST
        )
        os.chmod(self.path, 0o600)
        log.info("admin socket at %s", self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            uid = _peer_uid(writer)
            if uid is not None and uid not in (0, os.getuid()):
                log.warning("admin socket: refused a connection from uid %d", uid)
                return
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                line = await reader.readline()
            answer = await self.answer(line)
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ValueError, ConnectionError) as exc:
            log.debug("admin socket: %s", exc)
        finally:
            writer.close()

    async def answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("expected a JSON object")
            return {"ok": True, "result": await self.dispatch(request)}
        except (ValueError, KeyError) as exc:
            return {"ok": False, "error": str(exc)}

    async def dispatch(self, request: dict[str, Any]) -> Any:
        cmd = request.get("cmd")
        jid = request.get("jid")
        if jid is not None and not isinstance(jid, str):
            raise ValueError("jid: expected a string")
        if cmd == "status":
            return status(self.running)
        if cmd == "sessions":
            return sessions(self.running, jid)
        if cmd == "kick":
            return {"ended": kick(self.running, jid or "")}
        if cmd == "reload":
            report = await self.running.server.control.reload()
            return {"reloaded": report.ok, "lines": list(report.lines)}
        raise ValueError(f"unknown command {cmd!r}")


async def _answers(path: Path) -> bool:
    try:
        _reader, writer = await asyncio.open_unix_connection(str(path))
    except OSError:
        return False
    writer.close()
    return True


async def ask(path: Path, request: dict[str, Any], timeout_s: float = 60.0) -> dict[str, Any]:
    """Send one request to a running server's admin socket; its answer."""
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 24)
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
    answer = json.loads(line) if line else {"ok": False, "error": "no answer"}
    if not isinstance(answer, dict):
        raise ValueError("unexpected answer")
    return answer
