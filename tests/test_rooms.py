"""Rooms: the one owner of what a node remembers of a room, announcing and delivering changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from appointease_realtime.config import Settings
from appointease_realtime.events import RoomAvailability, RoomSelections
from appointease_realtime.protocol import Room, Slot
from appointease_realtime.store import Store
from tests.units import Listener, memory_node, settle

DAY = "2030-05-06"
MON = Room(DAY, 1)
Connect = Callable[..., Any]


async def book(store: Store, time: str, employee: int = 1, day: str = DAY) -> None:
    await store.insert_appointment(
        {
            "name": "X",
            "email": "x@example.com",
            "appointment_date": f"{day} {time}:00",
            "employee_id": employee,
        }
    )


async def test_a_room_is_forgotten_when_its_last_watcher_leaves(
    settings: Settings, store: Store
) -> None:
    """The bug: remembered bookings outlived the watchers, and a later watcher got a spurious
    ``slot_taken`` for a booking already in its snapshot."""
    async with memory_node(settings, store) as node:
        ann = Listener("ann")
        node.rooms.watch(ann.conn, MON)
        await node.rooms.snapshot(MON)
        await book(store, "09:00")
        node.rooms.touch(MON)
        await settle(node)
        assert [f["time"] for f in ann.of_type("slot_taken")] == ["09:00"]
        assert node.rooms.unwatch(ann.conn) == MON
        assert MON not in node.rooms.known_booked  # forgotten with its last watcher
        await book(store, "11:00")  # booked while nobody watches
        bob = Listener("bob")
        node.rooms.watch(bob.conn, MON)
        snapshot = await node.rooms.snapshot(MON)
        assert snapshot["booked"] == ["09:00", "11:00"]
        await node.locks.lock("cid", Slot(DAY, "14:00", 1))  # the next room event
        await settle(node)
        assert bob.of_type("slot_taken") == []
        assert bob.of_type("availability_update")[-1]["locked"] == ["14:00"]


async def test_memory_does_not_grow_with_rooms_nobody_watches(
    settings: Settings, store: Store
) -> None:
    async with memory_node(settings, store) as node:
        ann = Listener("ann")
        for day in range(1, 29):
            room = Room(f"2030-02-{day:02d}", 1)
            node.rooms.watch(ann.conn, room)  # leaves the previous day
            await node.rooms.snapshot(room)
        assert list(node.rooms.known_booked) == [Room("2030-02-28", 1)]
        node.rooms.unwatch(ann.conn)
        assert node.rooms.known_booked == {}


async def test_deliver_sends_slot_taken_once_per_new_booking(
    settings: Settings, store: Store
) -> None:
    async with memory_node(settings, store) as node:
        ann, other = Listener("ann"), Listener("other")
        node.rooms.watch(ann.conn, MON)
        node.rooms.watch(other.conn, Room(DAY, 2))
        await node.rooms.snapshot(MON)
        node.rooms.deliver(RoomAvailability(MON, ["10:00"], ["12:00"]))
        node.rooms.deliver(RoomAvailability(MON, ["10:00"], []))
        taken = ann.of_type("slot_taken")
        assert [(f["time"], f["slot"]) for f in taken] == [("10:00", f"{DAY} 10:00")]
        latest = ann.of_type("availability_update")[-1]
        assert latest["unavailable"] == ["10:00"] and latest["employeeId"] == 1
        node.rooms.deliver(RoomSelections(MON, ["15:00"]))
        assert ann.of_type("active_selections")[-1]["slots"] == ["15:00"]
        assert other.frames == []  # another room hears nothing


async def test_changed_lists_rooms_whose_bookings_differ(settings: Settings, store: Store) -> None:
    async with memory_node(settings, store) as node:
        ann = Listener("ann")
        node.rooms.watch(ann.conn, MON)
        await node.rooms.snapshot(MON)
        assert node.rooms.changed({MON: set()}) == []
        assert node.rooms.changed({MON: {"09:00"}}) == [MON]


async def test_a_new_watcher_gets_no_spurious_slot_taken_over_the_socket(
    connect: Connect, store: Store
) -> None:
    """The bug as a visitor saw it, end to end over real sockets."""
    ann = await connect()
    await ann.request("watch_slot", "active_selections", date=DAY, employeeId=1)
    await book(store, "09:00")
    holder = await connect()
    await holder.request("lock_slot", "slot_locked", date=DAY, time="13:00", employeeId=1)
    await ann.expect("slot_taken", time="09:00")
    await ann.request("unwatch_slot", "slot_unwatched")
    await book(store, "11:00")  # nobody watches now
    bob = await connect()
    await bob.send("watch_slot", date=DAY, employeeId=1)
    first = await bob.expect("availability_update")
    assert first["booked"] == ["09:00", "11:00"]
    await holder.request("lock_slot", "slot_locked", date=DAY, time="14:00", employeeId=1)
    await bob.expect("availability_update", locked=["13:00", "14:00"])
    assert not [f for f in bob.seen if f["type"] == "slot_taken"]
