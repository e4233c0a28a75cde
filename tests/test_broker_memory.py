"""The memory parts of the cluster (one process, no sockets), and the recording handler the
broker tests share."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from appointease_realtime.broker import (
    MemoryBroker,
    MemoryDeduper,
    MemorySelections,
    open_cluster,
)
from appointease_realtime.events import (
    ClientResumed,
    CustomerChange,
    Event,
    Resync,
    RoomAvailability,
    RoomEvent,
    RoomSelections,
)
from appointease_realtime.protocol import Room, Slot

DAY = "2030-05-06"
ROOM = Room(DAY, 3)
TEN, ELEVEN = Slot(DAY, "10:00", 3), Slot(DAY, "11:00", 3)


class Recorder:
    """An EventHandler that keeps what it is given, in order (``calls`` names the method)."""

    def __init__(self, on_resync: Callable[[], Awaitable[None]] | None = None) -> None:
        self.events: list[Event] = []
        self.resyncs: list[Resync] = []
        self.calls: list[str] = []
        self.resynced = asyncio.Event()
        self.resync_hook = on_resync

    def on_room(self, event: RoomEvent) -> None:
        self.calls.append("on_room")
        self.events.append(event)

    def on_customer(self, event: CustomerChange) -> None:
        self.calls.append("on_customer")
        self.events.append(event)

    def on_resumed(self, event: ClientResumed) -> None:
        self.calls.append("on_resumed")
        self.events.append(event)

    async def on_resync(self, event: Resync) -> None:
        self.calls.append("on_resync")
        if self.resync_hook is not None:
            await self.resync_hook()
        self.resyncs.append(event)
        self.resynced.set()


async def test_memory_broker_hands_each_kind_to_its_method() -> None:
    broker, heard = MemoryBroker(), Recorder()
    assert broker.shared is False and broker.status() is None
    await broker.publish(ClientResumed("early", "a"))  # nobody listens yet
    await broker.start(heard)
    events: list[Event] = [
        RoomAvailability(ROOM, ["09:00"], []),
        RoomSelections(ROOM, ["10:00"]),
        CustomerChange("a@b", "appointment_cancel", {"id": 1}, []),
        ClientResumed("c1", "node-a"),
    ]
    for event in events:
        await broker.publish(event)
    assert heard.events == events
    assert heard.calls == ["on_room", "on_room", "on_customer", "on_resumed"]
    await broker.close()
    await broker.close()
    await broker.publish(ClientResumed("late", "a"))
    assert len(heard.events) == 4


async def test_open_cluster_without_redis_is_all_memory() -> None:
    cluster = open_cluster(None)
    assert isinstance(cluster.broker, MemoryBroker)
    assert isinstance(cluster.selections, MemorySelections)
    assert isinstance(cluster.deduper, MemoryDeduper)
    assert cluster.link is None
    await cluster.close()
    await cluster.close()


async def test_select_counts_refreshes_and_deselects() -> None:
    marks = MemorySelections()
    assert await marks.select(TEN, "ann", 60) == 1
    assert await marks.select(ELEVEN, "ann", 60) == 2
    assert await marks.select(TEN, "ann", 60) == 2  # a refresh, not a new one
    assert await marks.select(TEN, "bob", 60) == 1
    assert await marks.room_selections(ROOM) == ["10:00", "11:00"]
    assert await marks.room_selections(Room(DAY, 4)) == []
    got = {(s.slot, s.client_id) for s in await marks.all_selections()}
    assert got == {(TEN, "ann"), (ELEVEN, "ann"), (TEN, "bob")}
    assert await marks.deselect(ELEVEN, "ann") is True
    assert await marks.deselect(ELEVEN, "ann") is False
    assert await marks.room_selections(ROOM) == ["10:00"]


async def test_refresh_keeps_when_a_selection_began() -> None:
    marks = MemorySelections()
    await marks.select(TEN, "ann", 60)
    (first,) = await marks.all_selections()
    await asyncio.sleep(0.02)
    await marks.select(TEN, "ann", 90)
    (again,) = await marks.all_selections()
    assert again.since == first.since
    assert again.expires > first.expires
    assert again.since <= time.time() < again.expires


async def test_drop_client_removes_all_of_its_selections() -> None:
    marks = MemorySelections()
    other = Slot(DAY, "09:00", 4)
    await marks.select(TEN, "ann", 60)
    await marks.select(other, "ann", 60)
    await marks.select(TEN, "bob", 60)
    assert await marks.drop_client("ann") == {ROOM, other.room}
    assert await marks.drop_client("ann") == set()
    assert [(s.slot, s.client_id) for s in await marks.all_selections()] == [(TEN, "bob")]
    assert await marks.select(ELEVEN, "ann", 60) == 1


async def test_selections_expire_by_ttl() -> None:
    marks = MemorySelections()
    await marks.select(TEN, "ann", 0.05)
    await marks.select(ELEVEN, "bob", 60)
    await asyncio.sleep(0.1)
    assert await marks.room_selections(ROOM) == ["11:00"]  # filtered before any sweep
    assert [s.client_id for s in await marks.all_selections()] == ["bob"]
    assert await marks.select(ELEVEN, "ann", 60) == 1  # the expired one no longer counts
    await marks.deselect(ELEVEN, "ann")
    assert await marks.expire() == {ROOM}
    assert await marks.expire() == set()
    await marks.deselect(ELEVEN, "bob")
    assert marks.rooms == {} and marks.by_client == {}


async def test_deduper_remembers_expires_and_forgets() -> None:
    seen = MemoryDeduper()
    assert await seen.remember("hook:1", 0.05) is True
    assert await seen.remember("hook:1", 60) is False
    assert await seen.remember("hook:2", 60) is True
    assert set(seen.live()) == {"hook:1", "hook:2"}
    assert 59 < seen.live()["hook:2"] <= 60
    await asyncio.sleep(0.1)
    assert set(seen.live()) == {"hook:2"}
    assert await seen.remember("hook:1", 60) is True
    await seen.forget("hook:2")
    await seen.forget("hook:2")
    assert await seen.remember("hook:2", 60) is True


async def test_deduper_sweeps_expired_keys_as_it_grows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MemoryDeduper, "SWEEP_FLOOR", 4)
    seen = MemoryDeduper()
    for i in range(3):
        await seen.remember(f"old:{i}", 0.01)
    await asyncio.sleep(0.03)
    await seen.remember("new", 60)  # the fourth key: the three stale ones go
    assert list(seen.seen) == ["new"]
