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
import hashlib
import hmac
import secrets
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final
from urllib.parse import quote

from aiohttp import web

from heron import ns, timestamps
from heron.config import option
from heron.core.module import Module, ModuleContext, Xep
from heron.core.registry import Target
from heron.jid import JID
from heron.modules.upload.store import Slot, SqlUploadStore, UploadStore
from heron.stanza import Stanza, StanzaCondition, StanzaError
from heron.stanza.forms import add_field, data_form
from heron.xmlstream.element import Element

CHUNK: Final = 65536
INLINE_TYPES: Final = ("image/", "audio/", "video/")
FILE_CSP: Final = "default-src 'none'; sandbox; frame-ancestors 'none'"


@dataclass(frozen=True, slots=True)
class UploadOptions:
    service: str = ""
    """The service's JID; default upload.<host>."""
    max_file_size: int = option(100 * 1024 * 1024, min=1)
    quota_bytes: int = option(1024 * 1024 * 1024, min="max_file_size")
    """Per user: files kept and slots not yet used; at least max_file_size."""
    expire_days: float = option(30.0, above=0)
    put_ttl_s: float = option(300.0, above=0)
    """A slot's PUT URL is good for this long."""


def safe_filename(name: str) -> str:
    """The last path part, without control characters, at most 200 characters."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip(" .")
    return name[:200] or "file"


class UploadModule(Module):
    name = "upload"
    description = "HTTP File Upload: files shared in chats, stored by this server"
    xeps = (Xep(363, "1.1.0", "complete", "slots signed with an HMAC, per-user quota, expiry"),)
    stores = (SqlUploadStore,)

    def __init__(self, ctx: ModuleContext) -> None:
        super().__init__(ctx)
        self.options = o = ctx.settings(UploadOptions)
        self.domain = o.service or f"upload.{ctx.domain}"
        self.store: UploadStore = ctx.store(SqlUploadStore)

    async def start(self) -> None:
        self.ctx.on_account_deleted(self.on_account_deleted)
        self.key = self.ctx.secret(f"upload {self.domain}")
        self.root = self.ctx.data_dir / "upload"
        self.root.mkdir(parents=True, exist_ok=True)
        registry = self.ctx.add_service(self.domain)
        registry.add_iq_handler("get", ns.DISCO_INFO, Target.HOST, self.info)
        registry.add_iq_handler("get", ns.UPLOAD, Target.HOST, self.request_slot)
        self.ctx.add_item(self.domain, "HTTP File Upload")
        prefix = f"/upload/{self.domain}/{{slot}}/{{name}}"
        self.ctx.add_http_route("PUT", prefix, self.put)
        self.ctx.add_http_route("GET", prefix, self.get)
        self.ctx.every(3600, self.expire)

    async def on_account_deleted(self, account: JID) -> None:
        """A deleted account's files go at once (other processes' deletions: at the next
        sweep, see `UploadStore.expired`)."""
        await self._remove_files(await self.store.forget_owner(self.domain, str(account.bare)))

    # --- XMPP: discovery and slots ----------------------------------------------------
    async def info(self, iq: Stanza) -> Element | None:
        query = Element("query", ns.DISCO_INFO)
        query.add(
            "identity",
            ns.DISCO_INFO,
            {"category": "store", "type": "file", "name": "HTTP File Upload"},
        )
        for feature in (ns.DISCO_INFO, ns.UPLOAD):
            query.add("feature", ns.DISCO_INFO, {"var": feature})
        form = data_form("result", ns.UPLOAD, parent=query)
        add_field(form, "max-file-size", [str(self.options.max_file_size)])
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
            extra = Element("file-too-large", ns.UPLOAD)
            extra.add("max-file-size", ns.UPLOAD, text=str(limit))
            raise StanzaError(
                StanzaCondition.NOT_ACCEPTABLE,
                f"File too large: at most {limit} bytes",
                extra=extra,
            )
        if not self.ctx.http_base_url:
            raise StanzaError(StanzaCondition.SERVICE_UNAVAILABLE, "no HTTP listener is set up")
        owner = str(sender.bare)
        used, oldest = await self.store.usage(owner)
        if used + size > self.options.quota_bytes:
            extra = Element("retry", ns.UPLOAD)
            retry_at = (oldest or time.time()) + self.options.expire_days * 86400
            extra.attrs["stamp"] = timestamps.stamp(retry_at)
            raise StanzaError(
                StanzaCondition.RESOURCE_CONSTRAINT, "upload quota reached", extra=extra
            )
        slot = Slot(
            secrets.token_urlsafe(24), owner, filename, size, content_type, time.time(), False
        )
        await self.store.add(self.domain, slot)
        base = f"{self.ctx.http_base_url}/upload/{self.domain}/{slot.slot}/{quote(filename)}"
        expires = int(slot.created + self.options.put_ttl_s)
        answer = Element("slot", ns.UPLOAD)
        answer.add("put", ns.UPLOAD, {"url": f"{base}?e={expires}&s={self._sign(slot, expires)}"})
        answer.add("get", ns.UPLOAD, {"url": base})
        return answer

    def _sign(self, slot: Slot, expires: int) -> str:
        message = f"{slot.slot}\0{slot.filename}\0{slot.size}\0{slot.content_type}\0{expires}"
        return hmac.new(self.key, message.encode(), hashlib.sha256).hexdigest()

    # --- HTTP: upload and download ----------------------------------------------------
    def _file(self, slot: Slot) -> Path:
        return self.root / slot.slot

    async def _slot(self, request: web.Request) -> Slot:
        wanted = request.match_info["slot"]
        slot = await self.store.find(self.domain, wanted)
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
        await self.store.mark_uploaded(slot.slot)
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
        gone = await self.store.expired(self.domain, kept_until, unused_until)
        await self._remove_files(gone)
        return len(gone)

    async def _remove_files(self, slots: list[Slot]) -> None:
        for slot in slots:
            await asyncio.to_thread(self._file(slot).unlink, missing_ok=True)
            await asyncio.to_thread(self._file(slot).with_suffix(".part").unlink, missing_ok=True)
