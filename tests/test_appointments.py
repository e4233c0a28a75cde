"""Appointments: who may follow what, and a change reaching exactly the dashboards it concerns."""

from __future__ import annotations

import pytest

from appointease_realtime.appointments import AppointmentFilter
from appointease_realtime.auth import ADMIN, CUSTOMER, STAFF, Identity
from appointease_realtime.config import Settings
from appointease_realtime.protocol import ProtocolError, Room, Slot
from appointease_realtime.store import Store
from tests.units import Listener, memory_node, settle

DAY = "2030-05-06"


async def add(store: Store, email: str, when: str, employee: int = 1, ref: str = "") -> int:
    row = {"name": "X", "email": email, "appointment_date": when, "employee_id": employee}
    if ref:
        row["strong_id"] = ref
    return await store.insert_appointment(row)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_customers_follow_only_their_own(settings: Settings, store: Store) -> None:
    async with memory_node(settings, store) as node:
        ann = Listener("ann", Identity("ann@example.com", CUSTOMER))
        await add(store, "ann@example.com", f"{DAY} 09:00:00")
        await add(store, "bob@example.com", f"{DAY} 10:00:00")
        mine = await node.appointments.follow(ann.conn, {})
        assert [a["email"] for a in mine] == ["ann@example.com"]
        assert node.appointments.email_of(ann.conn) == "ann@example.com"
        for fields in ({"email": "bob@example.com"}, {"employeeId": 1}, {"dateFrom": DAY}):
            with pytest.raises(ProtocolError) as refused:
                await node.appointments.follow(ann.conn, fields)
            assert refused.value.code == "forbidden"
        anonymous = Listener("anon")
        with pytest.raises(ProtocolError):
            await node.appointments.follow(anonymous.conn, {})


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_change_reaches_the_customer_and_matching_staff(
    settings: Settings, store: Store
) -> None:
    async with memory_node(settings, store) as node:
        ann = Listener("ann", Identity("ann@example.com", CUSTOMER))
        bob = Listener("bob", Identity("bob@example.com", CUSTOMER))
        desk = Listener("desk", Identity("desk@example.com", STAFF))
        other_desk = Listener("other", Identity("o@example.com", ADMIN))
        watcher = Listener("watcher")
        await node.appointments.follow(ann.conn, {})
        await node.appointments.follow(bob.conn, {})
        await node.appointments.follow(desk.conn, {"employeeId": 1, "dateFrom": DAY})
        await node.appointments.follow(other_desk.conn, {"employeeId": 2})
        node.rooms.watch(watcher.conn, Room(DAY, 1))
        await node.rooms.snapshot(Room(DAY, 1))
        await node.locks.lock("holder", Slot(DAY, "09:00", 1))
        await add(store, "ann@example.com", f"{DAY} 09:00:00", ref="APT-1")
        assert await node.appointments.apply("appointment.created", "APT-1") is True
        await settle(node)
        assert [f["type"] for f in ann.frames] == ["update", "appointment_update"]
        assert ann.frames[0]["data"]["appointments"][0]["strong_id"] == "APT-1"
        assert bob.frames == [] and other_desk.frames == []
        assert [f["type"] for f in desk.frames] == ["appointment_update"]
        assert [f["time"] for f in watcher.of_type("slot_taken")] == ["09:00"]
        assert await store.live_locks() == []  # the booking consumed the hold
        assert await node.appointments.apply("appointment.created", "APT-404") is False


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_unfollow_stops_the_frames(settings: Settings, store: Store) -> None:
    async with memory_node(settings, store) as node:
        ann = Listener("ann", Identity("ann@example.com", CUSTOMER))
        await node.appointments.follow(ann.conn, {})
        node.appointments.unfollow(ann.conn)
        await add(store, "ann@example.com", f"{DAY} 09:00:00", ref="APT-2")
        await node.appointments.apply("appointment.created", "APT-2")
        assert ann.frames == [] and node.appointments.customers == {}


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_lists_stop_at_500_and_staff_filters_narrow(settings: Settings, store: Store) -> None:
    async with memory_node(settings, store) as node:
        for i in range(501):
            day = f"2030-06-{1 + i % 28:02d}"
            await add(store, "many@example.com", f"{day} {8 + i // 28 % 10:02d}:{i % 60:02d}:00")
        await add(store, "x@example.com", "2030-07-01 09:00:00", employee=2)
        desk = Listener("desk", Identity("desk@example.com", STAFF))
        assert len(await node.appointments.follow(desk.conn, {"email": "many@example.com"})) == 500
        narrowed = await node.appointments.follow(
            desk.conn, {"employeeId": 2, "dateFrom": "2030-07-01", "dateTo": "2030-07-01"}
        )
        assert [a["email"] for a in narrowed] == ["x@example.com"]
        assert node.appointments.staff[desk.conn] == AppointmentFilter(
            2, "2030-07-01", "2030-07-01"
        )


def test_filter_matches_employee_and_range() -> None:
    scope = AppointmentFilter(3, "2030-05-01", "2030-05-31")
    assert scope.matches({"employee_id": 3, "appointment_date": "2030-05-31 23:00:00"})
    assert not scope.matches({"employee_id": 4, "appointment_date": "2030-05-10 09:00:00"})
    assert not scope.matches({"employee_id": 3, "appointment_date": "2030-06-01 00:00:00"})
    assert AppointmentFilter().matches({"employee_id": 9, "appointment_date": "1999-01-01"})
