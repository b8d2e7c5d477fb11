"""The routing bus between nodes: stanzas for a node on its own channel, registry changes
on one channel every node hears. Redis pub/sub by default; NATS can replace it.

Sends are batched per loop turn: everything queued for one node while the loop runs one
turn goes out as one published message (frames joined by NUL, which XML never contains).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

SEP = b"\x00"

OnFrames = Callable[[list[bytes]], None]


class Channels:
    def __init__(self, prefix: str) -> None:
        self.events = f"{prefix}.events"
        self._node = f"{prefix}.node."

    def node(self, node: str) -> str:
        return self._node + node


class Bus(Protocol):
    async def start(self, node: str, on_stanzas: OnFrames, on_events: OnFrames) -> None: ...

    def send(self, node: str, frame: bytes) -> None:
        """Queue a frame for ``node`` (published at the end of this loop turn)."""

    def broadcast(self, frame: bytes) -> None:
        """Queue a frame for every node, this one included."""

    async def close(self) -> None: ...


class _Batching:
    """The per-turn batching both buses share; `publish` is the engine's own."""

    def __init__(self, prefix: str) -> None:
        self.channels = Channels(prefix)
        self._pending: dict[str, list[bytes]] = {}
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, node: str, frame: bytes) -> None:
        self._queue(self.channels.node(node), frame)

    def broadcast(self, frame: bytes) -> None:
        self._queue(self.channels.events, frame)

    def _queue(self, channel: str, frame: bytes) -> None:
        self._pending.setdefault(channel, []).append(frame)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, {}
        for channel, frames in pending.items():
            task = asyncio.ensure_future(self._publish_logged(channel, SEP.join(frames)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _publish_logged(self, channel: str, payload: bytes) -> None:
        try:
            await self.publish(channel, payload)
        except Exception as exc:  # the bus is down: the frames are lost, say so once each
            log.warning("cluster bus: could not publish to %s: %s", channel, exc)

    async def publish(self, channel: str, payload: bytes) -> None:
        raise NotImplementedError

    async def drain(self) -> None:
        if self._scheduled:
            self._flush()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class RedisBus(_Batching):
    def __init__(self, url: str, prefix: str = "heron") -> None:
        super().__init__(prefix)
        import redis.asyncio

        self.redis: Any = redis.asyncio.from_url(url)
        self._listener: asyncio.Task[None] | None = None

    async def start(self, node: str, on_stanzas: OnFrames, on_events: OnFrames) -> None:
        pubsub = self.redis.pubsub()
        mine = self.channels.node(node)
        await pubsub.subscribe(mine, self.channels.events)
        handlers = {mine: on_stanzas, self.channels.events: on_events}
        self._listener = asyncio.ensure_future(self._listen(pubsub, handlers))

    async def _listen(self, pubsub: Any, handlers: dict[str, OnFrames]) -> None:
        while True:
            try:
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    channel = message["channel"]
                    channel = channel.decode() if isinstance(channel, bytes) else channel
                    handlers[channel](bytes(message["data"]).split(SEP))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarted: subscribe again when it is back
                log.warning("cluster bus: subscription lost (%s); retrying", exc)
                await asyncio.sleep(0.5)
                try:
                    await pubsub.subscribe(*handlers)
                except Exception:  # noqa: S112 - still down; the loop tries again
                    continue

    async def publish(self, channel: str, payload: bytes) -> None:
        await self.redis.publish(channel, payload)

    async def close(self) -> None:
        await self.drain()
        if self._listener is not None:
            self._listener.cancel()
        await self.redis.aclose()


class NatsBus(_Batching):
    def __init__(self, url: str, prefix: str = "heron") -> None:
        super().__init__(prefix)
        self.url = url
        self.nc: Any = None

    async def start(self, node: str, on_stanzas: OnFrames, on_events: OnFrames) -> None:
        import nats

        self.nc = await nats.connect(self.url, max_reconnect_attempts=-1)

        def handler(deliver: OnFrames) -> Callable[[Any], Any]:
            async def on_message(msg: Any) -> None:
                deliver(bytes(msg.data).split(SEP))

            return on_message

        await self.nc.subscribe(self.channels.node(node), cb=handler(on_stanzas))
        await self.nc.subscribe(self.channels.events, cb=handler(on_events))

    async def publish(self, channel: str, payload: bytes) -> None:
        await self.nc.publish(channel, payload)

    async def close(self) -> None:
        await self.drain()
        if self.nc is not None:
            await self.nc.drain()
