"""The routing bus between nodes: stanzas for a node on its own channel, registry changes
on one channel every node hears. Redis pub/sub by default; NATS can replace it.

Sends are batched per loop turn: everything queued for one node while the loop runs one
turn goes out as one published message (frames joined by NUL, which XML never contains),
in order, and again while nobody heard it (a Redis restart) for a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
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

    def node_of(self, channel: str) -> str | None:
        return channel[len(self._node) :] if channel.startswith(self._node) else None


class Bus(Protocol):
    undelivered: Callable[[str, list[bytes]], None] | None
    """Given a node's frames that nobody received within the retry time."""
    lost: int

    async def start(self, node: str, on_stanzas: OnFrames, on_events: OnFrames) -> None: ...

    def send(self, node: str, frame: bytes) -> None:
        """Queue a frame for ``node`` (published at the end of this loop turn)."""

    def broadcast(self, frame: bytes) -> None:
        """Queue a frame for every node, this one included."""

    def abandon(self, node: str) -> None:
        """``node`` is gone: what waits for it goes to ``undelivered`` now."""

    async def unsubscribe(self) -> None:
        """A clean stop: take no more stanzas for this node (what was received is handed
        over first); the others hold theirs and route them again once it is gone."""

    async def close(self) -> None: ...


class _Batching:
    """The per-turn batching both buses share, and delivery that survives a Redis restart.

    One pump task publishes, so frames for one channel leave in the order they were
    queued. A publish that fails (Redis is down) or that no subscriber received (the
    node's subscription is not back yet: PUBLISH counts its receivers) is tried again,
    frames in the same order, for ``retry_s``; then the frames are given to ``undelivered``
    (a node's: the cluster node routes its messages again) and counted in ``lost``.
    `publish_many` is the engine's own."""

    CHUNK = 256 * 1024  # the most bytes one published message carries

    def __init__(self, prefix: str, retry_s: float = 15.0) -> None:
        self.channels = Channels(prefix)
        self.retry_s = retry_s
        self.undelivered: Callable[[str, list[bytes]], None] | None = None
        self.lost = 0  # frames given up on (metrics, tests)
        self._pending: dict[str, list[bytes]] = {}
        self._since: dict[str, float] = {}  # channel → when its oldest pending frame came
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # nothing pending
        self._busy = False  # the pump is publishing
        self._pump: asyncio.Task[None] | None = None
        self._failing = False
        self._abandoned: dict[str, float] = {}  # channel → when its node was declared gone

    def send(self, node: str, frame: bytes) -> None:
        self._queue(self.channels.node(node), frame)

    def broadcast(self, frame: bytes) -> None:
        self._queue(self.channels.events, frame)

    def abandon(self, node: str) -> None:
        channel = self.channels.node(node)
        self._abandoned[channel] = time.monotonic()
        frames = self._pending.pop(channel, None)
        self._since.pop(channel, None)
        if frames:
            self._give_up(channel, frames)

    def _give_up(self, channel: str, frames: list[bytes]) -> None:
        self.lost += len(frames)
        log.warning("cluster bus: %d frames for %s never heard; given up", len(frames), channel)
        node = self.channels.node_of(channel)
        if node is not None and self.undelivered is not None:
            self.undelivered(node, frames)

    def _queue(self, channel: str, frame: bytes) -> None:
        self._pending.setdefault(channel, []).append(frame)
        self._since.setdefault(channel, time.monotonic())
        self._wake.set()
        self._idle.clear()
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self._wake.wait()  # set this turn: everything queued in it goes together
            self._wake.clear()
            self._busy = True
            while self._pending:
                if not await self._publish_pending():
                    await asyncio.sleep(0.2)
            self._busy = False
            if not self._wake.is_set():
                self._idle.set()

    async def _publish_pending(self) -> bool:
        """Publish what is pending; False when some of it must be tried again."""
        batch, self._pending = self._pending, {}
        since, self._since = self._since, {}
        chunks = [(ch, part) for ch, frames in batch.items() for part in _chunks(frames)]
        try:
            counts = await self.publish_many([(ch, SEP.join(part)) for ch, part in chunks])
        except Exception as exc:  # Redis is down: everything waits
            if not self._failing:
                log.warning("cluster bus: cannot publish (%s); holding frames", exc)
            self._failing = True
            counts = [0] * len(chunks)
        else:
            if self._failing:
                log.warning("cluster bus: publishing again")
            self._failing = False
        now = time.monotonic()
        unheard: dict[str, list[bytes]] = {}
        for (channel, part), count in zip(chunks, counts, strict=True):
            if count == 0:
                unheard.setdefault(channel, []).extend(part)
        for channel, frames in unheard.items():
            gone = self._abandoned.get(channel, -1.0) >= since[channel]
            if now - since[channel] < self.retry_s and not gone:
                self._pending[channel] = frames + self._pending.get(channel, [])
                self._since[channel] = min(since[channel], self._since.get(channel, now))
                continue
            self._give_up(channel, frames)
        return not unheard

    async def publish_many(self, messages: list[tuple[str, bytes]]) -> list[int]:
        """Publish in order; per message, how many subscribers received it."""
        raise NotImplementedError

    async def drain(self, timeout_s: float = 2.0) -> None:
        """Give what is pending a moment to go out (a clean stop)."""
        if self._pump is not None:
            if self._pending or self._busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._idle.wait(), timeout_s)
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None


def _chunks(frames: list[bytes]) -> list[list[bytes]]:
    """Frames in published messages of at most CHUNK bytes (one frame may be alone over)."""
    out: list[list[bytes]] = []
    size = 0
    for frame in frames:
        if not out or size + len(frame) > _Batching.CHUNK:
            out.append([])
            size = 0
        out[-1].append(frame)
        size += len(frame) + 1
    return out


class RedisBus(_Batching):
    def __init__(self, url: str, prefix: str = "heron", retry_s: float = 15.0) -> None:
        super().__init__(prefix, retry_s)
        import redis.asyncio

        self.redis: Any = redis.asyncio.from_url(url)
        self._listener: asyncio.Task[None] | None = None
        self._pubsub: Any = None
        self._mine = ""
        self._handlers: dict[str, OnFrames] = {}
        self._unsubscribed = asyncio.Event()

    async def start(self, node: str, on_stanzas: OnFrames, on_events: OnFrames) -> None:
        self._pubsub = pubsub = self.redis.pubsub()
        self._mine = mine = self.channels.node(node)
        await pubsub.subscribe(mine, self.channels.events)
        self._handlers = handlers = {mine: on_stanzas, self.channels.events: on_events}
        self._listener = asyncio.ensure_future(self._listen(pubsub, handlers))

    async def unsubscribe(self) -> None:
        if self._pubsub is None:
            return
        await self._pubsub.unsubscribe(self._mine)
        # What Redis delivered before the unsubscription comes first, then its answer.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._unsubscribed.wait(), 2.0)
        self._handlers.pop(self._mine, None)  # not subscribed again after an error

    async def _listen(self, pubsub: Any, handlers: dict[str, OnFrames]) -> None:
        while True:
            try:
                async for message in pubsub.listen():
                    kind = message.get("type")
                    channel = message.get("channel") or b""
                    channel = channel.decode() if isinstance(channel, bytes) else channel
                    if kind == "unsubscribe" and channel == self._mine:
                        self._unsubscribed.set()
                    handler = handlers.get(channel)
                    if kind == "message" and handler is not None:
                        handler(bytes(message["data"]).split(SEP))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarted: subscribe again when it is back
                log.warning("cluster bus: subscription lost (%s); retrying", exc)
                await asyncio.sleep(0.5)
                try:
                    await pubsub.subscribe(*handlers)
                except Exception:  # noqa: S112 - still down; the loop tries again
                    continue

    async def publish_many(self, messages: list[tuple[str, bytes]]) -> list[int]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for channel, payload in messages:
                pipe.publish(channel, payload)
            return [int(n) for n in await pipe.execute()]

    async def close(self) -> None:
        await self.drain()
        if self._listener is not None:
            self._listener.cancel()
        await self.redis.aclose()


class NatsBus(_Batching):
    def __init__(self, url: str, prefix: str = "heron", retry_s: float = 15.0) -> None:
        super().__init__(prefix, retry_s)
        self.url = url
        self.nc: Any = None
        self._node_sub: Any = None

    async def start(self, node: str, on_stanzas: OnFrames, on_events: OnFrames) -> None:
        import nats

        self.nc = await nats.connect(self.url, max_reconnect_attempts=-1)

        def handler(deliver: OnFrames) -> Callable[[Any], Any]:
            async def on_message(msg: Any) -> None:
                deliver(bytes(msg.data).split(SEP))

            return on_message

        self._node_sub = await self.nc.subscribe(self.channels.node(node), cb=handler(on_stanzas))
        await self.nc.subscribe(self.channels.events, cb=handler(on_events))

    async def unsubscribe(self) -> None:
        if self._node_sub is not None:
            await self._node_sub.drain()  # what it received is handed over first

    async def publish_many(self, messages: list[tuple[str, bytes]]) -> list[int]:
        for channel, payload in messages:  # NATS does not say who heard: taken as heard
            await self.nc.publish(channel, payload)
        return [1] * len(messages)

    async def close(self) -> None:
        await self.drain()
        if self.nc is not None:
            await self.nc.drain()
