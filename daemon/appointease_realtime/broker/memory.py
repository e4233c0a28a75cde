"""The single-process side: events straight back to this node, selections and keys in dicts.

These serve a node that runs alone, and stand in for Redis while a clustered node cannot
reach it (see failover.py).
"""

from __future__ import annotations

import time

from ..events import Event, EventHandler, dispatch
from ..protocol import Room, Slot
from .base import Selection


class MemoryBroker:
    """The single-process bus: what this node publishes, this node hears, at once."""

    shared = False

    def __init__(self) -> None:
        self.handler: EventHandler | None = None

    async def start(self, handler: EventHandler) -> None:
        """Deliver events to ``handler`` from now on."""
        self.handler = handler

    async def publish(self, event: Event) -> None:
        """Hand ``event`` to this node's handler (its errors reach the publisher)."""
        if self.handler is not None:
            dispatch(self.handler, event)

    def status(self) -> str | None:
        """Always healthy: there is nothing to lose contact with."""
        return None

    async def close(self) -> None:
        """Stop delivering; safe to call twice."""
        self.handler = None


class MemorySelections:
    """Soft selections of this process: per room ``(time, client) -> Selection``."""

    def __init__(self) -> None:
        self.rooms: dict[Room, dict[tuple[str, str], Selection]] = {}
        self.by_client: dict[str, set[Slot]] = {}

    async def select(self, slot: Slot, client_id: str, ttl: float) -> int:
        """Mark (or refresh, keeping when it began) a selection; return the client's count."""
        now = time.time()
        marks = self.rooms.setdefault(slot.room, {})
        old = marks.get((slot.time, client_id))
        since = old.since if old is not None and old.expires > now else now
        marks[(slot.time, client_id)] = Selection(slot, client_id, since, now + ttl)
        slots = self.by_client.setdefault(client_id, set())
        slots.add(slot)
        return sum(1 for s in slots if self._live(s, client_id, now))

    def _live(self, slot: Slot, client_id: str, now: float) -> bool:
        """Whether ``client_id`` still selects ``slot`` (not past its TTL)."""
        mark = self.rooms.get(slot.room, {}).get((slot.time, client_id))
        return mark is not None and mark.expires > now

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

    async def client_selections(self, client_id: str) -> list[Slot]:
        """The live selections of ``client_id``, the least recently selected first."""
        now = time.time()
        marks = [
            self.rooms[slot.room][(slot.time, client_id)]
            for slot in self.by_client.get(client_id, ())
            if self._live(slot, client_id, now)
        ]
        return [mark.slot for mark in sorted(marks, key=lambda mark: mark.expires)]

    async def room_selections(self, room: Room) -> list[str]:
        """Distinct selected times in ``room``, sorted."""
        now = time.time()
        return sorted({s.slot.time for s in self.rooms.get(room, {}).values() if s.expires > now})

    async def all_selections(self) -> list[Selection]:
        """Every live selection."""
        now = time.time()
        return [s for marks in self.rooms.values() for s in marks.values() if s.expires > now]

    async def expire(self) -> set[Room]:
        """Drop selections past their TTL; return the rooms that changed."""
        now = time.time()
        stale = [s for marks in self.rooms.values() for s in marks.values() if s.expires <= now]
        for selection in stale:
            await self.deselect(selection.slot, selection.client_id)
        return {s.slot.room for s in stale}


class MemoryDeduper:
    """Keys this process saw recently, each until its own deadline."""

    SWEEP_FLOOR = 1024  # past this many keys, expired ones are swept (amortized, on remember)

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self._sweep_at = self.SWEEP_FLOOR

    async def remember(self, key: str, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds; True when it was not already recorded."""
        now = time.time()
        if self.seen.get(key, 0.0) > now:
            return False
        self.seen[key] = now + ttl
        if len(self.seen) >= self._sweep_at:
            self.seen = {k: until for k, until in self.seen.items() if until > now}
            self._sweep_at = max(self.SWEEP_FLOOR, 2 * len(self.seen))
        return True

    async def forget(self, key: str) -> None:
        """Drop a recorded ``key``."""
        self.seen.pop(key, None)

    def live(self) -> dict[str, float]:
        """Every recorded key with the seconds it has left."""
        now = time.time()
        return {key: until - now for key, until in self.seen.items() if until > now}
