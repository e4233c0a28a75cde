"""Soft selections, as ``locks.py`` is for holds: select, deselect, expire, drop on
disconnect, and announce a room's selected times to every node after each change.

They behave as a customer clicks: a new selection in a room replaces the client's previous
one there (one "looking at" per client per room), and past MAX_SELECTIONS_PER_CLIENT the
client's least recently selected mark is dropped instead of refusing the new one.
"""

from __future__ import annotations

from .broker import Broker, Selection, SelectionStore
from .events import RoomSelections
from .protocol import Frame, Room, Slot
from .rooms import selections_frame


class Selections:
    """The "someone is looking at this" marks of every client, shown to the room's watchers."""

    def __init__(
        self, store: SelectionStore, broker: Broker, ttl_seconds: float, per_client: int
    ) -> None:
        self.store = store
        self.broker = broker
        self.ttl_seconds = ttl_seconds
        self.per_client = per_client

    async def select(self, client_id: str, slot: Slot) -> set[Room]:
        """Mark (or refresh) ``slot`` for ``client_id``, replacing its previous mark in the
        room and dropping its oldest past the cap; return the rooms that changed.

        The caller answers the client first, then calls :meth:`announce` for those rooms.
        (One socket's frames run one at a time, so a client never races itself here.)
        """
        changed = {slot.room}
        for old in await self.store.client_selections(client_id):
            if old.room == slot.room and old != slot:
                await self.store.deselect(old, client_id)
        count = await self.store.select(slot, client_id, self.ttl_seconds)
        if count > self.per_client:
            for old in await self.store.client_selections(client_id):
                if count <= self.per_client:
                    break
                if old != slot and await self.store.deselect(old, client_id):
                    changed.add(old.room)
                    count -= 1
        return changed

    async def deselect(self, client_id: str, slot: Slot) -> bool:
        """Remove a mark; True when there was one (then the caller announces the room)."""
        return await self.store.deselect(slot, client_id)

    async def drop_client(self, client_id: str) -> None:
        """A client left: its marks go at once."""
        for room in await self.store.drop_client(client_id):
            await self.announce(room)

    async def expire(self) -> None:
        """Drop marks past their TTL and announce the rooms they were in."""
        for room in await self.store.expire():
            await self.announce(room)

    async def announce(self, room: Room) -> None:
        """Send ``room``'s selected times to every node."""
        await self.broker.publish(RoomSelections(room, await self.store.room_selections(room)))

    async def snapshot(self, room: Room) -> Frame:
        """The ``active_selections`` a new watcher gets at once."""
        return selections_frame(room, await self.store.room_selections(room))

    async def resync(self, rooms: list[Room]) -> None:
        """Re-announce ``rooms`` (events may have been missed while the broker was away)."""
        for room in rooms:
            await self.announce(room)

    async def all(self) -> list[Selection]:
        """Every live mark, for ``/debug``."""
        return await self.store.all_selections()
