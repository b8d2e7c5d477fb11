"""XEP-0363 HTTP File Upload at ``upload.DOMAIN`` (option ``service``).

A user of the host asks the service for a slot (name, size, type); the answer is a PUT URL
signed with an HMAC of everything the slot allows and its expiry, and the GET URL others
will fetch. Files are streamed to disk under ``data_dir/upload`` (never held in memory),
served with their declared type, inline only for pictures, sound and video and always
under a sandboxing CSP, and deleted after ``expire_days``. Each user has a byte quota; a
file over ``max_file_size`` is refused with the XEP's <file-too-large/>.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import sqlite3
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final
from urllib.parse import quote

from aiohttp import web

from heron import ns, timestamps
from heron.config import ConfigError, build_options
from heron.core.module import Module, Xep
from heron.core.registry import Target
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.storage.sqlite import Migration, transaction
from heron.xmlstream.element import Element

log = logging.getLogger(__name__)

UPLOAD: Final = "urn:xmpp:http:upload:0"
DATA: Final = "jabber:x:data"
CHUNK: Final = 65536
INLINE_TYPES: Final = ("image/", "audio/", "video/")
FILE_CSP: Final = "default-src 'none'; sandbox; frame-ancestors 'none'"
MIGRATIONS: Final = (
    Migration(
        "upload",
        1,
        """
        CREATE TABLE upload_files (
            slot TEXT PRIMARY KEY,
            service TEXT NOT NULL,
            owner TEXT NOT NULL,
            filename TEXT NOT NULL,
            size INTEGER NOT NULL,
            content_type TEXT NOT NULL,
            created REAL NOT NULL,
            uploaded INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX upload_by_owner ON upload_files (owner);
        CREATE INDEX upload_by_created ON upload_files (created);
        """,
    ),
)


@dataclass(frozen=True, slots=True)
class UploadOptions:
    service: str = ""  # default: upload.<host>
    max_file_size: int = 100 * 1024 * 1024
    quota_bytes: int = 1024 * 1024 * 1024  # per user, files kept and slots not yet used
    expire_days: float = 30.0
    put_ttl_s: float = 300.0  # a slot's PUT URL is good for this long


@dataclass(frozen=True, slots=True)
class Slot:
    slot: str
    owner: str
    filename: str
    size: int
    content_type: str
    created: float
    uploaded: bool


def safe_filename(name: str) -> str:
    """The last path part, without control characters, at most 200 characters."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip(" .")
    return name[:200] or "file"


class UploadModule(Module):
    name = "upload"
    description = "HTTP File Upload: files shared in chats, stored by this server"
    xeps = (Xep(363, "1.1.0", "complete", "slots signed with an HMAC, per-user quota, expiry"),)

    async def start(self) -> None:
        path = f'hosts."{self.ctx.domain}".modules.upload'
        self.options = o = build_options(UploadOptions, self.ctx.options, path)
        if o.max_file_size < 1 or o.quota_bytes < o.max_file_size or o.expire_days <= 0:
            raise ConfigError(f"{path}: max_file_size ≥ 1, quota_bytes ≥ it, expire_days > 0")
        self.domain = o.service or f"upload.{self.ctx.domain}"
        self.db = self.ctx.sqlite()
        await self.db.migrate(MIGRATIONS)
        self.key = self.ctx.secret(f"upload {self.domain}")
        self.root = self.ctx.data_dir / "upload"
        self.root.mkdir(parents=True, exist_ok=True)
        registry = self.ctx.add_service(self.domain)
        registry.add_iq_handler("get", ns.DISCO_INFO, Target.HOST, self.info)
        registry.add_iq_handler("get", UPLOAD, Target.HOST, self.request_slot)
        self.ctx.add_item(self.domain, "HTTP File Upload")
        prefix = f"/upload/{self.domain}/{{slot}}/{{name}}"
        self.ctx.add_http_route("PUT", prefix, self.put)
        self.ctx.add_http_route("GET", prefix, self.get)
        self.expiry = asyncio.create_task(self._expire_forever())

    async def stop(self) -> None:
        self.expiry.cancel()

    # --- XMPP: discovery and slots ----------------------------------------------------
    async def info(self, iq: Stanza) -> Element | None:
        query = Element("query", ns.DISCO_INFO)
        query.add(
            "identity",
            ns.DISCO_INFO,
            {"category": "store", "type": "file", "name": "HTTP File Upload"},
        )
        for feature in (ns.DISCO_INFO, UPLOAD):
            query.add("feature", ns.DISCO_INFO, {"var": feature})
        form = query.add("x", DATA, {"type": "result"})
        form.add("field", DATA, {"var": "FORM_TYPE", "type": "hidden"}).add(
            "value", DATA, text=UPLOAD
        )
        form.add("field", DATA, {"var": "max-file-size"}).add(
            "value", DATA, text=str(self.options.max_file_size)
        )
        return query

    async def request_slot(self, iq: Stanza) -> Element | None:
        sender = iq.from_
        payload = iq.payload
        assert payload is not None
        if sender is None or sender.local is None or sender.domain != self.ctx.domain:
            raise StanzaError(StanzaCondition.NOT_ALLOWED, "for this server's users only")
        if payload.tag != "request":
            raise StanzaError(StanzaCondition.BAD_REQUEST, "expected <request/>")
        filename = safe_filename(payload.attrs.get("filename", ""))
        content_type = payload.attrs.get("content-type", "") or "application/octet-stream"
        if len(content_type) > 128 or "\n" in content_type or "\r" in content_type:
            raise StanzaError(StanzaCondition.BAD_REQUEST, "bad content-type")
        try:
            size = int(payload.attrs.get("size", ""))
        except ValueError as exc:
            raise StanzaError(StanzaCondition.BAD_REQUEST, "size is a number of bytes") from exc
        if size < 1:
            raise StanzaError(StanzaCondition.BAD_REQUEST, "an empty file needs no upload")
        limit = self.options.max_file_size
        if size > limit:
            extra = Element("file-too-large", UPLOAD)
            extra.add("max-file-size", UPLOAD, text=str(limit))
            raise StanzaError(
                StanzaCondition.NOT_ACCEPTABLE,
                f"File too large: at most {limit} bytes",
                extra=extra,
            )
        if not self.ctx.http_base_url:
            raise StanzaError(StanzaCondition.SERVICE_UNAVAILABLE, "no HTTP listener is set up")
        owner = str(sender.bare)
        used, oldest = await self.db.run(lambda c: _usage(c, owner))
        if used + size > self.options.quota_bytes:
            extra = Element("retry", UPLOAD)
            retry_at = (oldest or time.time()) + self.options.expire_days * 86400
            extra.attrs["stamp"] = timestamps.stamp(retry_at)
            raise StanzaError(
                StanzaCondition.RESOURCE_CONSTRAINT, "upload quota reached", extra=extra
            )
        slot = Slot(
            secrets.token_urlsafe(24), owner, filename, size, content_type, time.time(), False
        )
        await self.db.run(lambda c: _insert(c, self.domain, slot))
        base = f"{self.ctx.http_base_url}/upload/{self.domain}/{slot.slot}/{quote(filename)}"
        expires = int(slot.created + self.options.put_ttl_s)
        answer = Element("slot", UPLOAD)
        answer.add("put", UPLOAD, {"url": f"{base}?e={expires}&s={self._sign(slot, expires)}"})
        answer.add("get", UPLOAD, {"url": base})
        return answer

    def _sign(self, slot: Slot, expires: int) -> str:
        message = f"{slot.slot}\0{slot.filename}\0{slot.size}\0{slot.content_type}\0{expires}"
        return hmac.new(self.key, message.encode(), hashlib.sha256).hexdigest()

    # --- HTTP: upload and download ----------------------------------------------------
    def _file(self, slot: Slot) -> Path:
        return self.root / slot.slot

    async def _slot(self, request: web.Request) -> Slot:
        wanted = request.match_info["slot"]
        slot = await self.db.run(lambda c: _find(c, self.domain, wanted))
        if slot is None or slot.filename != request.match_info["name"]:
            raise web.HTTPNotFound(text="no such file\n")
        return slot

    async def put(self, request: web.Request) -> web.StreamResponse:
        slot = await self._slot(request)
        try:
            expires = int(request.query.get("e", ""))
        except ValueError as exc:
            raise web.HTTPForbidden(text="not a signed upload URL\n") from exc
        given = request.query.get("s", "")
        if not hmac.compare_digest(given, self._sign(slot, expires)):
            raise web.HTTPForbidden(text="bad signature\n")
        if time.time() > expires:
            raise web.HTTPForbidden(text="this upload URL has expired; ask for a new slot\n")
        if slot.uploaded:
            raise web.HTTPConflict(text="already uploaded\n")
        if request.content_length != slot.size:
            raise web.HTTPBadRequest(text=f"Content-Length must be {slot.size}\n")
        sent_type = request.headers.get("Content-Type", "application/octet-stream")
        if sent_type.split(";")[0].strip().lower() != slot.content_type.split(";")[0].lower():
            raise web.HTTPUnsupportedMediaType(text=f"Content-Type must be {slot.content_type}\n")
        target = self._file(slot)
        partial = target.with_suffix(".part")
        received = 0
        handle: IO[bytes] = await asyncio.to_thread(partial.open, "xb")
        try:
            async for chunk in request.content.iter_chunked(CHUNK):
                received += len(chunk)
                if received > slot.size:
                    raise web.HTTPBadRequest(text="more bytes than the slot allows\n")
                await asyncio.to_thread(handle.write, chunk)
        except BaseException:
            await asyncio.to_thread(handle.close)
            partial.unlink(missing_ok=True)
            raise
        await asyncio.to_thread(handle.close)
        if received != slot.size:
            partial.unlink(missing_ok=True)
            raise web.HTTPBadRequest(text="the upload ended early\n")
        await asyncio.to_thread(partial.replace, target)
        await self.db.run(lambda c: _mark_uploaded(c, slot.slot))
        return web.Response(status=201, text="stored\n")

    async def get(self, request: web.Request) -> web.StreamResponse:
        slot = await self._slot(request)
        if not slot.uploaded:
            raise web.HTTPNotFound(text="not uploaded yet\n")
        inline = slot.content_type.startswith(INLINE_TYPES) and "svg" not in slot.content_type
        disposition = "inline" if inline else "attachment"
        headers = {
            "Content-Type": slot.content_type,
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(slot.filename)}",
            "Content-Security-Policy": FILE_CSP,
            "Cache-Control": "public, max-age=31536000, immutable",
        }
        return web.FileResponse(self._file(slot), headers=headers)

    # --- expiry -----------------------------------------------------------------------
    async def expire(self, now: float | None = None) -> int:
        """Delete files past ``expire_days`` and slots never used; returns how many."""
        now = time.time() if now is None else now
        kept_until = now - self.options.expire_days * 86400
        unused_until = now - self.options.put_ttl_s
        gone = await self.db.run(lambda c: _expired(c, self.domain, kept_until, unused_until))
        for slot in gone:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(self._file(slot).unlink)
            await asyncio.to_thread(self._file(slot).with_suffix(".part").unlink, missing_ok=True)
        return len(gone)

    async def _expire_forever(self) -> None:
        while True:
            try:
                await self.expire()
            except Exception:
                log.exception("could not expire old uploads")
            await asyncio.sleep(3600)


def _usage(conn: sqlite3.Connection, owner: str) -> tuple[int, float | None]:
    row = conn.execute(
        "SELECT COALESCE(SUM(size), 0), MIN(created) FROM upload_files WHERE owner = ?", (owner,)
    ).fetchone()
    return int(row[0]), (float(row[1]) if row[1] is not None else None)


def _insert(conn: sqlite3.Connection, service: str, slot: Slot) -> None:
    with transaction(conn):
        conn.execute(
            "INSERT INTO upload_files"
            " (slot, service, owner, filename, size, content_type, created)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                slot.slot,
                service,
                slot.owner,
                slot.filename,
                slot.size,
                slot.content_type,
                slot.created,
            ),
        )


def _find(conn: sqlite3.Connection, service: str, slot: str) -> Slot | None:
    row = conn.execute(
        "SELECT slot, owner, filename, size, content_type, created, uploaded"
        " FROM upload_files WHERE slot = ? AND service = ?",
        (slot, service),
    ).fetchone()
    if row is None:
        return None
    return Slot(
        str(row[0]), str(row[1]), str(row[2]), int(row[3]), str(row[4]), float(row[5]), bool(row[6])
    )


def _mark_uploaded(conn: sqlite3.Connection, slot: str) -> None:
    with transaction(conn):
        conn.execute("UPDATE upload_files SET uploaded = 1 WHERE slot = ?", (slot,))


def _expired(
    conn: sqlite3.Connection, service: str, kept_until: float, unused_until: float
) -> list[Slot]:
    rows = conn.execute(
        "SELECT slot, owner, filename, size, content_type, created, uploaded FROM upload_files"
        " WHERE service = ? AND (created < ? OR (uploaded = 0 AND created < ?))",
        (service, kept_until, unused_until),
    ).fetchall()
    gone = [
        Slot(str(r[0]), str(r[1]), str(r[2]), int(r[3]), str(r[4]), float(r[5]), bool(r[6]))
        for r in rows
    ]
    with transaction(conn):
        conn.executemany("DELETE FROM upload_files WHERE slot = ?", [(s.slot,) for s in gone])
    return gone
