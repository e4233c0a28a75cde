"""Reconciliation: a booking nobody announced still reaches the watchers of its room."""

from __future__ import annotations

from appointease_realtime.config import Settings
from appointease_realtime.protocol import Room
from appointease_realtime.reconcile import reconcile_rooms
from appointease_realtime.store import Store
from tests.units import Listener, memory_node, settle

DAY = "2030-05-06"


async def test_an_unannounced_booking_is_found_and_announced(
    settings: Settings, store: Store
) -> None:
    async with memory_node(settings, store) as node:
        ann = Listener("ann")
        node.rooms.watch(ann.conn, Room(DAY, 1))
        await node.rooms.snapshot(Room(DAY, 1))
        await reconcile_rooms(node)
        await settle(node)
        assert ann.frames == []  # nothing changed: nothing sent
        await store.insert_appointment(
            {
                "name": "X",
                "email": "x@example.com",
                "appointment_date": f"{DAY} 10:00:00",
                "employee_id": 1,
            }
        )  # as an admin's edit in wp-admin: no hook
        await reconcile_rooms(node)
        await settle(node)
        assert [f["time"] for f in ann.of_type("slot_taken")] == ["10:00"]
        before = len(ann.frames)
        await reconcile_rooms(node)
        await settle(node)
        assert len(ann.frames) == before  # announced once
        assert node.metrics.last_reconcile > 0


async def test_nothing_is_read_when_nobody_watches(settings: Settings, store: Store) -> None:
    async with memory_node(settings, store) as node:
        calls: list[object] = []
        original = node.store.booked_times

        async def counting(rooms: object) -> dict[Room, set[str]]:
            calls.append(rooms)
            return await original(rooms)  # type: ignore[arg-type]

        node.store.booked_times = counting  # type: ignore[method-assign]
        await reconcile_rooms(node)
        assert calls == []
