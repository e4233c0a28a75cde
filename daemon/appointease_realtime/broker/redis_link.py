"""One node's one Redis client, and what happens when Redis goes away and comes back.

:class:`RedisLink` connects with timeouts, pings every ``probe_interval`` so a silent loss is
noticed, and after a loss reconnects with capped, jittered exponential backoff. Its parts (the
Redis broker, selection store, deduper, and the failover wrappers) are told when the client
comes (``attach``), goes (``detach``), and once every part is attached again after a loss
(``recovered``, in the order they were added).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Protocol

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

LINK_ERRORS = (RedisError, OSError)  # what a lost or refused connection raises


class LinkPart(Protocol):
    """Something that works on the link's client and must hear when it comes and goes."""

    async def attach(self, redis: Redis) -> None:
        """The client is connected: start using it (an error here fails the connection)."""

    async def detach(self) -> None:
        """The client is going away: stop using it (must not raise)."""

    async def recovered(self) -> None:
        """Every part is attached again after a loss: catch up."""


async def stop_task(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` (unless it is the caller) and wait until it has ended.

    Unlike ``suppress(CancelledError)`` around ``await task``, this never swallows a
    cancellation of the caller itself.
    """
    if task is None or task is asyncio.current_task():
        return
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled() and task.exception() is not None:
        log.warning("%r ended with %r", task, task.exception())


def reason(exc: BaseException) -> str:
    """The degraded status for a connection failure."""
    return f"redis unavailable: {str(exc) or type(exc).__name__}"


class RedisLink:
    """Owns the node's Redis client; says whether it is up, and why not."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 3.0,
        probe_interval: float = 5.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.probe_interval = probe_interval
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.parts: list[LinkPart] = []
        self.redis: Redis | None = None
        self.problem: str | None = None
        self.watchdog: asyncio.Task[None] | None = None
        self.reconnecting: asyncio.Task[None] | None = None
        self.started = False
        self.closed = False

    def add(self, part: LinkPart) -> None:
        """Tell ``part`` about the client from now on (before :meth:`start`)."""
        self.parts.append(part)

    @property
    def up(self) -> bool:
        """True while the client is connected and answering."""
        return self.redis is not None and self.problem is None

    def status(self) -> str | None:
        """None when Redis answers; otherwise why not."""
        return self.problem

    async def start(self) -> None:
        """Connect now, or (when Redis does not answer) keep trying in the background."""
        if self.started or self.closed:
            return
        self.started = True
        try:
            await self._connect()
        except LINK_ERRORS as exc:
            self.lost(exc)

    def lost(self, exc: BaseException) -> None:
        """Redis failed: route around it from now on and start reconnecting."""
        if self.closed:
            return
        if self.problem is None:
            log.warning("redis unavailable, serving this node's clients only: %s", exc)
        self.problem = reason(exc)
        if self.reconnecting is None:
            self.reconnecting = asyncio.create_task(self._reconnect())

    async def close(self) -> None:
        """Stop reconnecting, detach every part and close the client; safe to call twice."""
        self.closed = True
        task, self.reconnecting = self.reconnecting, None
        await stop_task(task)
        await self._disconnect()

    async def _connect(self) -> None:
        """Open a client, check it answers, attach every part, and start the watchdog."""
        redis = Redis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=self.timeout,
            socket_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
        )
        attached: list[LinkPart] = []
        try:
            await redis.ping()
            for part in self.parts:
                attached.append(part)
                await part.attach(redis)
        except BaseException:
            for part in reversed(attached):
                await part.detach()
            with contextlib.suppress(*LINK_ERRORS):
                await redis.aclose()
            raise
        self.redis = redis
        self.watchdog = asyncio.create_task(self._watch(redis))

    async def _watch(self, redis: Redis) -> None:
        """Ping every ``probe_interval``: a connection that died silently fails the ping."""
        try:
            while True:
                await asyncio.sleep(self.probe_interval)
                await redis.ping()
        except LINK_ERRORS as exc:
            self.lost(exc)

    async def _disconnect(self) -> None:
        """Detach every part (last added first), stop the watchdog and close the client."""
        watchdog, redis = self.watchdog, self.redis
        self.watchdog, self.redis = None, None
        await stop_task(watchdog)
        if redis is None:
            return
        for part in reversed(self.parts):
            try:
                await part.detach()
            except Exception:
                log.exception("detaching %r failed", part)
        with contextlib.suppress(*LINK_ERRORS):
            await redis.aclose()

    def _delay(self, attempt: int) -> float:
        """Capped exponential backoff with jitter (half to all of the step)."""
        step = min(self.backoff_cap, self.backoff_base * 2.0 ** min(attempt, 32))
        return step * random.uniform(0.5, 1.0)

    async def _reconnect(self) -> None:
        """Retry until Redis answers and every part has caught up, then stop."""
        attempt = 0
        try:
            while self.problem is not None and not self.closed:
                await self._disconnect()
                await asyncio.sleep(self._delay(attempt))
                attempt += 1
                try:
                    await self._connect()
                except LINK_ERRORS as exc:
                    self.problem = reason(exc)
                    log.debug("redis reconnect attempt %d failed: %s", attempt, exc)
                    continue
                self.problem = None
                log.info("redis is back after %d attempt(s)", attempt)
                await self._recovered()
        finally:
            if self.reconnecting is asyncio.current_task():
                self.reconnecting = None

    async def _recovered(self) -> None:
        """Tell each part, in order, that Redis is back; stop early if it went away again."""
        for part in self.parts:
            if self.problem is not None:
                return
            try:
                await part.recovered()
            except Exception:
                log.exception("catching up after reconnecting failed in %r", part)
