"""The cluster bus on Redis pub/sub: every node publishes to ``<namespace>:events`` and hears
every event there, its own too. While the link is down, events reach this node only."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from ..events import Event, EventHandler, Resync, decode, dispatch, encode
from .redis_link import LINK_ERRORS, RedisLink, stop_task

log = logging.getLogger(__name__)


class RedisBroker:
    """Many nodes hear one another through Redis; a part of the node's :class:`RedisLink`."""

    shared = True

    def __init__(self, link: RedisLink, namespace: str = "appointease") -> None:
        self.link = link
        self.channel = f"{namespace}:events"
        self.handler: EventHandler | None = None
        self.redis: Redis | None = None
        self.pubsub: PubSub | None = None
        self.listener: asyncio.Task[None] | None = None

    async def start(self, handler: EventHandler) -> None:
        """Deliver every event to ``handler``; connect the link now, or keep trying."""
        self.handler = handler
        await self.link.start()

    async def publish(self, event: Event) -> None:
        """Send ``event`` to every node (to this node alone while Redis is away)."""
        text = encode(event)
        if self.link.up and self.redis is not None:
            try:
                await self.redis.publish(self.channel, text)
                return
            except LINK_ERRORS as exc:
                self.link.lost(exc)
        self._hand(event)

    def status(self) -> str | None:
        """None when Redis answers; otherwise why this node serves only its own clients."""
        return self.link.status()

    async def close(self) -> None:
        """Stop delivering and close the link; safe to call twice."""
        self.handler = None
        await self.link.close()

    # ---- the link's part ----

    async def attach(self, redis: Redis) -> None:
        """Subscribe on the new client and start listening."""
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
        except BaseException:
            with contextlib.suppress(*LINK_ERRORS):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise
        self.redis, self.pubsub = redis, pubsub
        self.listener = asyncio.create_task(self._listen(pubsub))

    async def detach(self) -> None:
        """Stop listening and close the subscription."""
        listener, pubsub = self.listener, self.pubsub
        self.listener, self.pubsub, self.redis = None, None, None
        await stop_task(listener)
        if pubsub is not None:
            with contextlib.suppress(*LINK_ERRORS):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def recovered(self) -> None:
        """Events published while Redis was away never came: ask the node to re-read."""
        if self.handler is None:
            return
        try:
            await self.handler.on_resync(Resync("redis reconnected"))
        except Exception:
            log.exception("resync after reconnecting to redis failed")

    # ---- delivery ----

    async def _listen(self, pubsub: PubSub) -> None:
        """Hand every message on the channel over; a failed read means the link is lost."""
        try:
            while True:
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=self.link.probe_interval
                )
                if message is not None and message["type"] == "message":
                    self._deliver(message["data"])
        except LINK_ERRORS as exc:
            self.link.lost(exc)

    def _deliver(self, data: str) -> None:
        """Decode one message and hand it over; an undecodable one is logged and dropped."""
        try:
            event = decode(data)
        except ValueError:
            log.warning("dropped an undecodable cluster event: %r", str(data)[:200])
            return
        self._hand(event)

    def _hand(self, event: Event) -> None:
        """Give ``event`` to the handler; a handler's failure is logged, never fatal."""
        if self.handler is None:
            return
        try:
            dispatch(self.handler, event)
        except Exception:
            log.exception("event handler failed on %r", event)
