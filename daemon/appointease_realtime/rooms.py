"""Room state on the wire: availability and selections, announced once per change.

A change anywhere (lock, unlock, expiry, booking) ``touch``-es its room; bursts of touches
coalesce into one database read, published to every node. Each node turns the event into
frames serialized once and handed to its local watchers, and sends ``slot_taken`` for times
that became booked since it last looked.
"""

from __future__ import annotations

import asyncio
import logging

from .broker import Broker, Event
from .hub import Hub
from .metrics import Metrics
from .protocol import Frame, Room, encode, reply
from .store import Store, StoreUnavailable
from .store.base import RoomState

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
    """Announces room changes cluster-wide and delivers room events to local watchers."""

    def __init__(self, store: Store, broker: Broker, hub: Hub, metrics: Metrics) -> None:
        self.metrics = metrics
        self.store = store
        self.broker = broker
        self.hub = hub
        self.known_booked: dict[Room, set[str]] = {}
        self.pending: set[Room] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopped = False

    def touch(self, room: Room) -> None:
        """Schedule one announcement of ``room``'s availability (bursts coalesce)."""
        if room in self.pending or self.stopped:
            return
        if not self.broker.shared and room not in self.hub.rooms:
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
        await self.publish_availability(room, state)

    async def publish_availability(self, room: Room, state: RoomState) -> None:
        """Send a room's availability to every node."""
        await self.broker.publish(
            {
                "kind": "availability",
                "room": list(room),
                "booked": state.booked,
                "locked": state.locked,
            }
        )

    async def announce_selections(self, room: Room) -> None:
        """Send a room's selected times to every node."""
        times = await self.broker.room_selections(room)
        await self.broker.publish({"kind": "selections", "room": list(room), "slots": times})

    async def snapshot(self, room: Room) -> tuple[Frame, Frame]:
        """The two frames a new watcher gets at once: availability and selections."""
        state = await self.store.room_state(room)
        self.known_booked.setdefault(room, set(state.booked))
        times = await self.broker.room_selections(room)
        return availability_frame(room, state.booked, state.locked), selections_frame(room, times)

    def forget(self, room: Room | None) -> None:
        """Drop what this node remembers of ``room`` once nobody here watches it."""
        if room is not None and room not in self.hub.rooms:
            self.known_booked.pop(room, None)

    def deliver(self, event: Event) -> None:
        """Turn a room event into frames for this node's watchers of that room."""
        room = Room(str(event["room"][0]), int(event["room"][1]))
        if room not in self.hub.rooms:
            return
        if event["kind"] == "selections":
            self._fan_out(room, selections_frame(room, event["slots"]))
            return
        booked, locked = list(event["booked"]), list(event["locked"])
        known = self.known_booked.get(room)
        if known is not None:
            for time in sorted(set(booked) - known):
                self._fan_out(room, slot_taken_frame(room, time))
        self.known_booked[room] = set(booked)
        self._fan_out(room, availability_frame(room, booked, locked))

    def _fan_out(self, room: Room, frame: Frame) -> None:
        """Serialize once, hand to every local watcher, count it."""
        sent = self.hub.send_room(room, encode(frame))
        self.metrics.fanout.observe(sent)
        self.metrics.sent(frame["type"], sent)

    async def stop(self) -> None:
        """Schedule no more announcements; wait for those already scheduled."""
        self.stopped = True
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
