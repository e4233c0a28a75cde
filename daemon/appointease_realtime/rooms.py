"""Room state on the wire: availability and selections, announced once per change.

The one owner of what this node remembers of a room (the booked times it last told its
watchers). A change anywhere (lock, unlock, expiry, booking) ``touch``-es its room; bursts of
touches coalesce into one database read, published to every node. Each node turns the event
into a frame built once for all its local watchers, and sends ``slot_taken`` for times that
became booked since it last looked. When a room's last local watcher leaves (the hub says
so), the room is forgotten here, so a later watcher starts from a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import logging

from .broker import Broker
from .connection import Connection
from .events import RoomAvailability, RoomEvent, RoomSelections
from .hub import Hub, Watch
from .metrics import Metrics
from .protocol import Frame, Room, encode_bytes, reply
from .store import Store, StoreUnavailable
from .transport import wire_bytes

log = logging.getLogger(__name__)


def availability_frame(room: Room, booked: list[str], locked: list[str]) -> Frame:
    """``availability_update`` for one room: unavailable = booked + held."""
    return reply(
        "availability_update",
        date=room.date,
        employeeId=room.employee_id,
        unavailable=sorted(set(booked) | set(locked)),
        booked=booked,
        locked=locked,
    )


def selections_frame(room: Room, times: list[str]) -> Frame:
    """``active_selections`` for one room."""
    return reply("active_selections", date=room.date, employeeId=room.employee_id, slots=times)


def slot_taken_frame(room: Room, time: str) -> Frame:
    """``slot_taken``: the block disables the time, and clears it if it was the chosen one."""
    return reply(
        "slot_taken",
        date=room.date,
        time=time,
        employeeId=room.employee_id,
        slot=f"{room.date} {time}",
    )


class Rooms:
    """Who watches what (through the hub), and announcing and delivering room changes."""

    def __init__(self, store: Store, broker: Broker, hub: Hub, metrics: Metrics) -> None:
        self.metrics = metrics
        self.store = store
        self.broker = broker
        self.hub = hub
        self.known_booked: dict[Room, set[str]] = {}
        self.pending: set[Room] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopped = False

    # ---- membership ----

    def watch(self, conn: Connection, room: Room, time: str | None = None) -> None:
        """``conn`` follows ``room`` from now on (and leaves the room it watched before)."""
        left, emptied = self.hub.join(conn, Watch(room, time))
        if emptied and left is not None:
            self.known_booked.pop(left, None)

    def unwatch(self, conn: Connection) -> Room | None:
        """``conn`` follows no room any more; return the room it left."""
        left, emptied = self.hub.leave(conn)
        if emptied and left is not None:
            self.known_booked.pop(left, None)
        return left

    # ---- announcing ----

    def touch(self, room: Room) -> None:
        """Schedule one announcement of ``room``'s availability (bursts coalesce)."""
        if room in self.pending or self.stopped:
            return
        if not self.broker.shared and not self.hub.is_watched(room):
            return  # one process and nobody here watches: no one to tell
        self.pending.add(room)
        task = asyncio.get_running_loop().create_task(self._announce(room))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _announce(self, room: Room) -> None:
        await asyncio.sleep(0)  # let the rest of this burst join
        self.pending.discard(room)
        try:
            state = await self.store.room_state(room)
        except StoreUnavailable as exc:
            log.warning("room %s not announced, database unavailable: %s", room, exc)
            return
        await self.broker.publish(RoomAvailability(room, state.booked, state.locked))

    async def snapshot(self, room: Room) -> Frame:
        """The availability a new watcher gets at once (remembered for ``slot_taken``)."""
        state = await self.store.room_state(room)
        if self.hub.is_watched(room):
            self.known_booked.setdefault(room, set(state.booked))
        return availability_frame(room, state.booked, state.locked)

    def changed(self, booked: dict[Room, set[str]]) -> list[Room]:
        """Rooms whose freshly read booked times differ from what their watchers were told."""
        return [room for room, times in booked.items() if times != self.known_booked.get(room)]

    def resync(self) -> None:
        """Re-read and re-announce every room watched here (events may have been missed)."""
        for room in self.hub.watched():
            self.touch(room)

    # ---- delivering ----

    def deliver(self, event: RoomEvent) -> None:
        """Turn a room event into frames for this node's watchers of that room."""
        room = event.room
        if not self.hub.is_watched(room):
            return
        if isinstance(event, RoomSelections):
            self._fan_out(room, selections_frame(room, event.slots))
            return
        known = self.known_booked.get(room)
        if known is not None:
            for time in sorted(set(event.booked) - known):
                self._fan_out(room, slot_taken_frame(room, time))
        self.known_booked[room] = set(event.booked)
        self._fan_out(room, availability_frame(room, event.booked, event.locked))

    def _fan_out(self, room: Room, frame: Frame) -> None:
        """Build the frame once, hand it to every local watcher, count it."""
        sent = self.hub.send_room(room, wire_bytes(encode_bytes(frame)))
        self.metrics.fanout.observe(sent)
        self.metrics.sent(frame["type"], sent)

    async def stop(self) -> None:
        """Schedule no more announcements; wait for those already scheduled."""
        self.stopped = True
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
