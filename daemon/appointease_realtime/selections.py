"""Soft selections, as ``locks.py`` is for holds: select, deselect, expire, drop on
disconnect, and announce a room's selected times to every node after each change."""

from __future__ import annotations

from . import protocol as p
from .broker import Broker, Selection, SelectionStore
from .events import RoomSelections
from .protocol import Frame, ProtocolError, Room, Slot
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

    async def select(self, client_id: str, slot: Slot) -> None:
        """Mark (or refresh) ``slot`` for ``client_id``; refused past the per-client cap.

        The caller answers the client first, then calls :meth:`announce` for the room.
        """
        count = await self.store.select(slot, client_id, self.ttl_seconds)
        if count > self.per_client:
            await self.store.deselect(slot, client_id)  # roll back the mark just made
            raise ProtocolError(
                p.INVALID_REQUEST, f"At most {self.per_client} selections per client", "time"
            )

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
