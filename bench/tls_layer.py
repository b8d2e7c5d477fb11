"""Which TLS layer for tls-exporter (RFC 9266)? CPython's ssl against pyOpenSSL, both on
memory BIOs as Heron's transport uses them, server side only:

- handshakes: server CPU seconds per TLS 1.3 handshake (with a client in the same process,
  whose time is not counted), the figure W1 logins/s is most sensitive to;
- idle: RSS per established server-side connection once the clients are freed (glibc's
  heap trimmed), the part of W3's KiB per idle session the layer accounts for;
- exporter: that pyOpenSSL's ``export_keying_material`` gives both ends the same 32 bytes
  under RFC 9266's label, which CPython's ssl cannot give at all.

Usage: .venv/bin/python bench/tls_layer.py [--handshakes 400] [--idle 2000]
Needs pyOpenSSL (not a dependency of Heron; install it in the venv to run this).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import ssl
import tempfile
import time
from pathlib import Path
from typing import Any

from OpenSSL import SSL

from heron.tls import ensure_certificate

LABEL = b"EXPORTER-Channel-Binding"


def rss_kib() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def trim() -> None:
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


class Stdlib:
    name = "ssl"

    def __init__(self, cert: Path, key: Path) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ctx.load_cert_chain(cert, key)

    def server(self) -> tuple[Any, ssl.MemoryBIO, ssl.MemoryBIO]:
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        return self.ctx.wrap_bio(inc, out, server_side=True), inc, out

    @staticmethod
    def step(obj: Any) -> bool:
        try:
            obj.do_handshake()
            return True
        except ssl.SSLWantReadError:
            return False

    @staticmethod
    def feed(bio: Any, data: bytes) -> None:
        bio[1].write(data)

    @staticmethod
    def drain(bio: Any) -> bytes:
        data: bytes = bio[2].read()
        return data


class PyOpenSSL:
    name = "pyopenssl"

    def __init__(self, cert: Path, key: Path, *, release_buffers: bool = True) -> None:
        self.name = "pyopenssl" if release_buffers else "pyopenssl-keep-buffers"
        self.ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        self.ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
        self.ctx.use_certificate_chain_file(str(cert))
        self.ctx.use_privatekey_file(str(key))
        if release_buffers:  # what CPython's ssl sets on every context
            self.ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)

    def server(self) -> tuple[Any, None, None]:
        conn = SSL.Connection(self.ctx, None)
        conn.set_accept_state()
        return conn, None, None

    @staticmethod
    def step(obj: Any) -> bool:
        try:
            obj.do_handshake()
            return True
        except SSL.WantReadError:
            return False

    @staticmethod
    def feed(bio: Any, data: bytes) -> None:
        if data:  # an empty write is an error in pyOpenSSL
            bio[0].bio_write(data)

    @staticmethod
    def drain(bio: Any) -> bytes:
        try:
            data: bytes = bio[0].bio_read(1 << 20)
        except SSL.WantReadError:
            return b""
        return data


def client(ca: Path) -> tuple[ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    ctx = ssl.create_default_context(cafile=str(ca))
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    return ctx.wrap_bio(inc, out, server_hostname="localhost"), inc, out


def handshake(layer: Any, ca: Path) -> tuple[Any, Any, float]:
    """One TLS 1.3 handshake; the server side's CPU seconds."""
    srv = layer.server()
    cli = client(ca)
    spent = 0.0
    Stdlib.step(cli[0])
    for _ in range(10):
        t = time.process_time()
        layer.feed(srv, cli[2].read())
        done = layer.step(srv[0])
        back = layer.drain(srv)
        spent += time.process_time() - t
        cli[1].write(back)
        client_done = Stdlib.step(cli[0])
        if done and client_done:
            t = time.process_time()
            layer.feed(srv, cli[2].read())
            spent += time.process_time() - t
            return srv, cli, spent
    raise RuntimeError("handshake did not finish")


def exporter(cert: Path, key: Path) -> dict[str, Any]:
    """Both ends of a pyOpenSSL pair derive the same tls-exporter binding (RFC 9266 §2)."""
    server = PyOpenSSL(cert, key).server()[0]
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.load_verify_locations(str(cert))
    ctx.set_verify(SSL.VERIFY_PEER, lambda *_a: True)
    cli = SSL.Connection(ctx, None)
    cli.set_tlsext_host_name(b"localhost")
    cli.set_connect_state()
    for _ in range(10):
        for one, other in ((cli, server), (server, cli)):
            try:
                one.do_handshake()
            except SSL.WantReadError:
                pass
            try:
                other.bio_write(one.bio_read(1 << 20))
            except SSL.WantReadError:
                pass
    mine = server.export_keying_material(LABEL, 32)
    theirs = cli.export_keying_material(LABEL, 32)
    return {"same": mine == theirs, "bytes": len(mine), "tls": server.get_protocol_version_name()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--handshakes", type=int, default=400)
    parser.add_argument("--idle", type=int, default=2000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    cert, key = ensure_certificate("localhost", folder)
    results: dict[str, dict[str, float]] = {}
    layers = (Stdlib(cert, key), PyOpenSSL(cert, key), PyOpenSSL(cert, key, release_buffers=False))
    for layer in layers:
        handshake(layer, cert)  # warm up
        cpu = sum(handshake(layer, cert)[2] for _ in range(args.handshakes))
        trim()
        before = rss_kib()
        kept = []
        for _ in range(args.idle):
            srv, cli, _spent = handshake(layer, cert)
            kept.append(srv)
            del cli
        trim()
        after = rss_kib()
        results[layer.name] = {
            "server_ms_per_handshake": round(1000 * cpu / args.handshakes, 3),
            "kib_per_idle_connection": round((after - before) / args.idle, 2),
        }
        del kept
        trim()
    results["exporter"] = exporter(cert, key)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
