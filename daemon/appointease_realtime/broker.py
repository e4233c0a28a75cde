"""What nodes share that may be lost: room events, soft selections, seen hook ids.

``MemoryBroker`` serves one process; ``RedisBroker`` (redis_broker.py) makes many act as one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .protocol import Room, Slot

Event = dict[str, Any]
EventHandler = Callable[[Event], None]


@dataclass(frozen=True)
class Selection:
    """A soft "someone is looking at this" mark, with its age for /debug."""

    slot: Slot
    client_id: str
    since: float
    expires: float


class Broker(Protocol):
    """The shared, lossy state of the cluster, and the bus every node listens to."""

    shared: bool  # True when other nodes hear what this one publishes

    async def start(self, handler: EventHandler) -> None:
        """Begin delivering every published event (this node's own too) to ``handler``."""

    async def publish(self, event: Event) -> None:
        """Send ``event`` to every node."""

    async def select(self, slot: Slot, client_id: str, ttl: float) -> int:
        """Mark (or refresh) a selection; return how many ``client_id`` now has."""

    async def deselect(self, slot: Slot, client_id: str) -> bool:
        """Remove a selection; True when there was one."""

    async def drop_client(self, client_id: str) -> set[Room]:
        """Remove every selection of ``client_id``; return the rooms that changed."""

    async def room_selections(self, room: Room) -> list[str]:
        """Distinct selected times in ``room``, sorted."""

    async def all_selections(self) -> list[Selection]:
        """Every live selection."""

    async def expire_selections(self) -> set[Room]:
        """Drop selections past their TTL; return the rooms that changed."""

    async def remember(self, key: str, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds; True when it was not already recorded."""

    async def forget(self, key: str) -> None:
        """Drop a recorded ``key`` (a hook that failed to apply may come again)."""

    def status(self) -> str | None:
        """None when healthy; otherwise why the node serves only its own clients (degraded)."""

    async def close(self) -> None:
        """Stop delivering and release connections."""


class MemoryBroker:
    """The single-process broker: events go straight back to this node's handler."""

    shared = False

    def __init__(self) -> None:
        self.handler: EventHandler | None = None
        self.rooms: dict[Room, dict[tuple[str, str], Selection]] = {}
        self.by_client: dict[str, set[Slot]] = {}
        self.seen: dict[str, float] = {}

    async def start(self, handler: EventHandler) -> None:
        """Deliver events to ``handler`` from now on."""
        self.handler = handler

    async def publish(self, event: Event) -> None:
        """Hand ``event`` to this node's handler."""
        if self.handler is not None:
            self.handler(event)

    async def select(self, slot: Slot, client_id: str, ttl: float) -> int:
        """Mark (or refresh) a selection; return how many ``client_id`` now has."""
        now = time.time()
        marks = self.rooms.setdefault(slot.room, {})
        old = marks.get((slot.time, client_id))
        marks[(slot.time, client_id)] = Selection(
            slot, client_id, old.since if old else now, now + ttl
        )
        slots = self.by_client.setdefault(client_id, set())
        slots.add(slot)
        return len(slots)

    async def deselect(self, slot: Slot, client_id: str) -> bool:
        """Remove a selection; True when there was one."""
        marks = self.rooms.get(slot.room, {})
        if marks.pop((slot.time, client_id), None) is None:
            return False
        if not marks:
            self.rooms.pop(slot.room, None)
        slots = self.by_client.get(client_id, set())
        slots.discard(slot)
        if not slots:
            self.by_client.pop(client_id, None)
        return True

    async def drop_client(self, client_id: str) -> set[Room]:
        """Remove every selection of ``client_id``; return the rooms that changed."""
        rooms = set()
        for slot in tuple(self.by_client.get(client_id, ())):
            if await self.deselect(slot, client_id):
                rooms.add(slot.room)
        return rooms

    async def room_selections(self, room: Room) -> list[str]:
        """Distinct selected times in ``room``, sorted."""
        now = time.time()
        return sorted({s.slot.time for s in self.rooms.get(room, {}).values() if s.expires > now})

    async def all_selections(self) -> list[Selection]:
        """Every live selection."""
        now = time.time()
        return [s for marks in self.rooms.values() for s in marks.values() if s.expires > now]

    async def expire_selections(self) -> set[Room]:
        """Drop selections past their TTL; return the rooms that changed."""
        now = time.time()
        stale = [s for marks in self.rooms.values() for s in marks.values() if s.expires <= now]
        for selection in stale:
            await self.deselect(selection.slot, selection.client_id)
        for key in [k for k, until in self.seen.items() if until <= now]:
            del self.seen[key]
        return {s.slot.room for s in stale}

    async def remember(self, key: str, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds; True when it was not already recorded."""
        now = time.time()
        if self.seen.get(key, 0) > now:
            return False
        self.seen[key] = now + ttl
        return True

    async def forget(self, key: str) -> None:
        """Drop a recorded ``key``."""
        self.seen.pop(key, None)

    def status(self) -> str | None:
        """Always healthy: there is nothing to lose contact with."""
        return None

    async def close(self) -> None:
        """Stop delivering."""
        self.handler = None
