"""Selections: soft marks with a per-client cap, expiry and drop on disconnect, announced."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from appointease_realtime.config import Settings
from appointease_realtime.protocol import ProtocolError, Room, Slot
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
        await node.selections.select("bob", slot("11:00"))
        await node.selections.announce(MON)
        assert watcher.of_type("active_selections")[-1]["slots"] == ["10:00", "11:00"]
        assert await node.selections.deselect("bob", slot("11:00")) is True
        await node.selections.announce(MON)
        assert watcher.of_type("active_selections")[-1]["slots"] == ["10:00"]
        assert await node.selections.deselect("bob", slot("11:00")) is False
        await node.selections.drop_client("ann")
        assert watcher.of_type("active_selections")[-1]["slots"] == ["10:00"]  # bob's stays
        await node.selections.drop_client("bob")
        assert watcher.of_type("active_selections")[-1]["slots"] == []
        assert (await node.selections.snapshot(MON))["slots"] == []


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_cap_refuses_and_rolls_back_the_extra_mark(
    settings: Settings, store: Store
) -> None:
    async with memory_node(replace(settings, max_selections_per_client=2), store) as node:
        await node.selections.select("ann", slot("09:00"))
        await node.selections.select("ann", slot("10:00"))
        with pytest.raises(ProtocolError) as refused:
            await node.selections.select("ann", slot("11:00"))
        assert refused.value.code == "invalid_request" and refused.value.field == "time"
        marks = {(s.slot.time, s.client_id) for s in await node.selections.all()}
        assert marks == {("09:00", "ann"), ("10:00", "ann")}  # the extra one is gone
        await node.selections.select("ann", slot("10:00"))  # a refresh is not a new one


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
