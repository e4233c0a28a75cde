"""Primary while the link is up, fallback while it is down, and back again.

:class:`Failover` is the one generic wrapper: a call goes to the primary (Redis) while the
link is up and to the fallback (memory) otherwise; a primary call that fails with a
Redis/OS error marks the link lost and is answered by the fallback. When the link has
recovered, what the fallback kept is handed over to the primary and a fresh fallback takes
its place. :class:`FailoverSelections` and :class:`FailoverDeduper` are the two uses.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from redis.asyncio import Redis

from ..protocol import Room, Slot
from .base import Deduper, Selection, SelectionStore
from .memory import MemoryDeduper, MemorySelections
from .redis_link import LINK_ERRORS

P = TypeVar("P")
F = TypeVar("F")
R = TypeVar("R")


class Link(Protocol):
    """What a failover needs of the link: whether it is up, and a way to say it is not."""

    @property
    def up(self) -> bool:
        """True while the primary may be used."""

    def lost(self, exc: BaseException) -> None:
        """The primary failed: stop using it until the link recovers."""


class Failover(Generic[P, F]):
    """Route calls to ``primary`` or the current fallback; hand the fallback over on recovery.

    ``hand_over(kept)`` is awaited with the fallback that served while the link was down, after
    a fresh one replaced it; it should move ``kept``'s content through this wrapper (so a
    failure midway lands in the new fallback, to be handed over next time).
    """

    def __init__(
        self,
        link: Link,
        primary: P,
        make_fallback: Callable[[], F],
        hand_over: Callable[[F], Awaitable[None]],
    ) -> None:
        self.link = link
        self.primary = primary
        self.make_fallback = make_fallback
        self.fallback = make_fallback()
        self.hand_over = hand_over

    async def call(self, op: Callable[[P | F], Awaitable[R]]) -> R:
        """``op`` on the primary while the link is up and it answers; else on the fallback."""
        if self.link.up:
            try:
                return await op(self.primary)
            except LINK_ERRORS as exc:
                self.link.lost(exc)
        return await op(self.fallback)

    async def attach(self, redis: Redis) -> None:
        """Nothing to do: the primary is a part of the link itself."""

    async def detach(self) -> None:
        """Nothing to do: calls go to the fallback while the link is down."""

    async def recovered(self) -> None:
        """Swap in a fresh fallback and hand what the old one kept to the primary."""
        kept, self.fallback = self.fallback, self.make_fallback()
        await self.hand_over(kept)


class FailoverSelections:
    """A SelectionStore on Redis that keeps serving (alone) from memory while Redis is away."""

    def __init__(
        self,
        link: Link,
        primary: SelectionStore,
        make_fallback: Callable[[], SelectionStore] = MemorySelections,
    ) -> None:
        self.failover: Failover[SelectionStore, SelectionStore] = Failover(
            link, primary, make_fallback, self._hand_over
        )

    async def _hand_over(self, kept: SelectionStore) -> None:
        """Select again, with the time each has left, what was selected while away."""
        now = time.time()
        for mark in await kept.all_selections():
            if mark.expires > now:
                await self.select(mark.slot, mark.client_id, mark.expires - now)

    async def select(self, slot: Slot, client_id: str, ttl: float) -> int:
        """Mark (or refresh) a selection; return how many ``client_id`` now has."""
        return await self.failover.call(lambda store: store.select(slot, client_id, ttl))

    async def deselect(self, slot: Slot, client_id: str) -> bool:
        """Remove a selection; True when there was one."""
        return await self.failover.call(lambda store: store.deselect(slot, client_id))

    async def drop_client(self, client_id: str) -> set[Room]:
        """Remove every selection of ``client_id``; return the rooms that changed."""
        return await self.failover.call(lambda store: store.drop_client(client_id))

    async def client_selections(self, client_id: str) -> list[Slot]:
        """The live selections of ``client_id``, the least recently selected first."""
        return await self.failover.call(lambda store: store.client_selections(client_id))

    async def room_selections(self, room: Room) -> list[str]:
        """Distinct selected times in ``room``, sorted."""
        return await self.failover.call(lambda store: store.room_selections(room))

    async def all_selections(self) -> list[Selection]:
        """Every live selection."""
        return await self.failover.call(lambda store: store.all_selections())

    async def expire(self) -> set[Room]:
        """Drop selections past their TTL; return the rooms that changed."""
        return await self.failover.call(lambda store: store.expire())


class FailoverDeduper:
    """A Deduper on Redis that remembers in memory while Redis is away, and hands over after."""

    def __init__(
        self,
        link: Link,
        primary: Deduper,
        make_fallback: Callable[[], MemoryDeduper] = MemoryDeduper,
    ) -> None:
        self.failover: Failover[Deduper, MemoryDeduper] = Failover(
            link, primary, make_fallback, self._hand_over
        )

    async def _hand_over(self, kept: MemoryDeduper) -> None:
        """Remember again, for the time each has left, the keys remembered while away."""
        for key, ttl in kept.live().items():
            await self.remember(key, ttl)

    async def remember(self, key: str, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds; True when it was not already recorded."""
        return await self.failover.call(lambda seen: seen.remember(key, ttl))

    async def forget(self, key: str) -> None:
        """Drop a recorded ``key``."""
        await self.failover.call(lambda seen: seen.forget(key))
