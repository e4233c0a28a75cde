"""Selections: soft marks with a per-client cap, expiry and drop on disconnect, announced."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from appointease_realtime.config import Settings
from appointease_realtime.protocol import Room, Slot
from appointease_realtime.store import Store
from tests.units import Listener, memory_node

DAY = "2030-05-06"
MON = Room(DAY, 1)


def slot(time: str) -> Slot:
    return Slot(DAY, time, 1)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_select_and_deselect_are_announced_to_the_room(
    settings: Settings, store: Store
) -> None:
    async with memory_node(settings, store) as node:
        watcher = Listener("w")
        node.rooms.watch(watcher.conn, MON)
        await node.selections.select("ann", slot("10:00"))
        await node.selections.select("bob", slot("10:00"))
        await node.selections.select("cid", slot("11:00"))
        await node.selections.announce(MON)
        assert watcher.of_type("active_selections")[-1]["slots"] == ["10:00", "11:00"]
        assert await node.selections.deselect("cid", slot("11:00")) is True
        await node.selections.announce(MON)
        assert watcher.of_type("active_selections")[-1]["slots"] == ["10:00"]
        assert await node.selections.deselect("cid", slot("11:00")) is False
        await node.selections.drop_client("ann")
        assert watcher.of_type("active_selections")[-1]["slots"] == ["10:00"]  # bob's stays
        await node.selections.drop_client("bob")
        assert watcher.of_type("active_selections")[-1]["slots"] == []
        assert (await node.selections.snapshot(MON))["slots"] == []


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_new_click_in_a_room_replaces_the_previous_one(
    settings: Settings, store: Store
) -> None:
    """One "looking at" per client per room: the block never deselects the time it left."""
    async with memory_node(settings, store) as node:
        assert await node.selections.select("ann", slot("09:00")) == {MON}
        assert await node.selections.select("ann", slot("10:00")) == {MON}
        await node.selections.select("bob", slot("09:00"))
        marks = {(s.slot.time, s.client_id) for s in await node.selections.all()}
        assert marks == {("10:00", "ann"), ("09:00", "bob")}
        tue = Slot("2030-05-07", "09:00", 1)
        await node.selections.select("ann", tue)  # another room: both stay
        assert {s.slot for s in await node.selections.all() if s.client_id == "ann"} == {
            slot("10:00"),
            tue,
        }


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_past_the_cap_the_oldest_mark_goes(settings: Settings, store: Store) -> None:
    """The twelfth click-through of one visitor is not refused: its oldest mark goes."""
    async with memory_node(replace(settings, max_selections_per_client=2), store) as node:
        rooms = [Room(f"2030-05-{day:02d}", 1) for day in (6, 7, 8)]
        await node.selections.select("ann", Slot(rooms[0].date, "09:00", 1))
        await asyncio.sleep(0.01)
        await node.selections.select("ann", Slot(rooms[1].date, "09:00", 1))
        await asyncio.sleep(0.01)
        changed = await node.selections.select("ann", Slot(rooms[2].date, "09:00", 1))
        assert changed == {rooms[2], rooms[0]}  # the new room, and the oldest one's room
        left = {s.slot.room for s in await node.selections.all()}
        assert left == {rooms[1], rooms[2]}


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_twelve_click_throughs_are_all_shown_to_the_others(
    make_client: Any, connect: Any
) -> None:
    """Tried as a new user would: every click of a visitor is confirmed and shown."""
    client = await make_client(max_selections_per_client=10)
    visitor, watcher = await connect(on=client), await connect(on=client)
    for day in range(1, 13):
        date = f"2030-06-{day:02d}"
        await watcher.request("watch_slot", "active_selections", date=date, employeeId=2)
        answer = await visitor.request(
            "selecting_slot", "selection_confirmed", date=date, time="09:00", employeeId=2
        )
        assert answer["type"] == "selection_confirmed", answer
        await watcher.expect("active_selections", date=date, slots=["09:00"])


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_expiry_is_announced(settings: Settings, store: Store) -> None:
    async with memory_node(replace(settings, selection_ttl_seconds=1), store) as node:
        watcher = Listener("w")
        node.rooms.watch(watcher.conn, MON)
        await node.selections.select("ann", slot("10:00"))
        await node.selections.announce(MON)
        assert watcher.of_type("active_selections")[-1]["slots"] == ["10:00"]
        await asyncio.sleep(1.1)
        await node.selections.expire()
        assert watcher.of_type("active_selections")[-1]["slots"] == []
        assert await node.selections.all() == []
