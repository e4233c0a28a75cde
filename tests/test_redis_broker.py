"""The Broker contract on RedisBroker against a real Redis, and how it survives losing Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from appointease_realtime.broker import Event
from appointease_realtime.protocol import Room, Slot
from appointease_realtime.redis_broker import RedisBroker
from tests.processes import free_port
from tests.redis_support import ThrowawayRedis, wait_for

pytestmark = pytest.mark.redis

DAY = "2030-05-06"
ROOM = Room(DAY, 3)
TEN, ELEVEN = Slot(DAY, "10:00", 3), Slot(DAY, "11:00", 3)
MakeBroker = Callable[..., Awaitable[tuple[RedisBroker, list[Event]]]]


@pytest.fixture
async def make_broker(redis_url: str, namespace: str) -> AsyncIterator[MakeBroker]:
    """Start a RedisBroker (on the test namespace unless told) that records what it hears."""
    started: list[RedisBroker] = []

    async def start(url: str = redis_url, **options: Any) -> tuple[RedisBroker, list[Event]]:
        broker = RedisBroker(url, **{"namespace": namespace, **options})
        heard: list[Event] = []
        await broker.start(heard.append)
        started.append(broker)
        return broker, heard

    yield start
    for broker in started:
        await broker.close()


async def test_select_deselect_across_two_nodes(make_broker: MakeBroker) -> None:
    (a, _), (b, _) = await make_broker(), await make_broker()
    assert a.status() is None and b.status() is None
    assert await a.select(TEN, "ann", 60) == 1
    assert await a.select(ELEVEN, "ann", 60) == 2
    assert await a.select(TEN, "ann", 60) == 2  # a refresh, not a new one
    assert await b.select(TEN, "bob", 60) == 1
    assert await b.room_selections(ROOM) == ["10:00", "11:00"]
    assert await a.room_selections(Room(DAY, 4)) == []
    marks = {(s.slot, s.client_id) for s in await b.all_selections()}
    assert marks == {(TEN, "ann"), (ELEVEN, "ann"), (TEN, "bob")}
    assert await b.deselect(ELEVEN, "ann") is True
    assert await a.deselect(ELEVEN, "ann") is False
    assert await a.room_selections(ROOM) == ["10:00"]
    assert await a.select(ELEVEN, "ann", 60) == 2


async def test_refresh_keeps_when_a_selection_began(make_broker: MakeBroker) -> None:
    a, _ = await make_broker()
    await a.select(TEN, "ann", 60)
    (first,) = await a.all_selections()
    await asyncio.sleep(0.05)
    await a.select(TEN, "ann", 90)
    (again,) = await a.all_selections()
    assert again.since == pytest.approx(first.since)
    assert again.expires > first.expires
    assert again.since <= time.time() < again.expires


async def test_drop_client_removes_all_of_its_selections(make_broker: MakeBroker) -> None:
    (a, _), (b, _) = await make_broker(), await make_broker()
    other = Slot(DAY, "09:00", 4)
    await a.select(TEN, "ann", 60)
    await a.select(other, "ann", 60)
    await a.select(TEN, "bob", 60)
    assert await b.drop_client("ann") == {ROOM, other.room}
    assert await b.drop_client("ann") == set()
    assert [(s.slot, s.client_id) for s in await a.all_selections()] == [(TEN, "bob")]
    assert await a.room_selections(other.room) == []
    assert await a.select(ELEVEN, "ann", 60) == 1


async def test_selections_expire_by_ttl(
    make_broker: MakeBroker, redis_url: str, namespace: str
) -> None:
    (a, _), (b, _) = await make_broker(), await make_broker()
    await a.select(TEN, "ann", 0.2)
    await a.select(ELEVEN, "bob", 60)
    await asyncio.sleep(0.3)
    assert await b.room_selections(ROOM) == ["11:00"]  # filtered before any sweep
    assert [s.client_id for s in await b.all_selections()] == ["bob"]
    assert await a.select(ELEVEN, "ann", 60) == 1  # the expired one no longer counts
    await a.deselect(ELEVEN, "ann")
    assert await b.expire_selections() == {ROOM}
    assert await a.expire_selections() == set()  # one node announces each change
    await a.deselect(ELEVEN, "bob")
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        assert [key async for key in redis.scan_iter(match=f"{namespace}:*")] == []
    finally:
        await redis.aclose()


async def test_remember_is_shared_and_expires(make_broker: MakeBroker) -> None:
    (a, _), (b, _) = await make_broker(), await make_broker()
    assert await a.remember("hook:1", 0.3) is True
    assert await b.remember("hook:1", 0.3) is False
    assert await b.remember("hook:2", 60) is True
    await asyncio.sleep(0.4)
    assert await b.remember("hook:1", 60) is True
    await a.forget("hook:2")
    assert await b.remember("hook:2", 60) is True


async def test_publish_reaches_every_node_including_its_own(make_broker: MakeBroker) -> None:
    (a, heard_a), (b, heard_b) = await make_broker(), await make_broker()
    event = {"kind": "selections", "room": [DAY, 3], "slots": ["10:00"]}
    await a.publish(event)
    await b.publish({"kind": "ping"})
    await wait_for(lambda: len(heard_a) == 2 and len(heard_b) == 2)
    assert heard_a == heard_b == [event, {"kind": "ping"}]


async def test_namespaces_do_not_hear_each_other(make_broker: MakeBroker) -> None:
    (a, heard_a), (b, heard_b) = await make_broker(), await make_broker(namespace="aert-other")
    await b.publish({"kind": "elsewhere"})
    await a.select(TEN, "ann", 60)
    await a.publish({"kind": "here"})
    await wait_for(lambda: heard_a == [{"kind": "here"}])
    assert heard_b == [{"kind": "elsewhere"}]
    assert await b.room_selections(ROOM) == []


async def test_unreachable_at_start_serves_locally(make_broker: MakeBroker) -> None:
    broker, heard = await make_broker(f"redis://127.0.0.1:{free_port()}/0", backoff_cap=0.2)
    status = broker.status()
    assert status is not None and status.startswith("redis unavailable")
    await broker.publish({"kind": "local"})
    assert heard == [{"kind": "local"}]
    assert await broker.select(TEN, "ann", 60) == 1
    assert await broker.room_selections(ROOM) == ["10:00"]
    assert await broker.drop_client("ann") == {ROOM}
    assert await broker.remember("hook:1", 60) is True
    assert await broker.remember("hook:1", 60) is False
    await asyncio.sleep(0.3)  # a few reconnect attempts fail quietly
    assert broker.status() is not None


async def test_lost_mid_run_then_back(make_broker: MakeBroker, throwaway: ThrowawayRedis) -> None:
    options = {"backoff_base": 0.05, "backoff_cap": 0.2, "probe_interval": 0.2}
    (a, heard_a), (b, heard_b) = (
        await make_broker(throwaway.url, **options),
        await make_broker(throwaway.url, **options),
    )
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    a.on_reconnect = on_reconnect
    await b.select(ELEVEN, "bob", 60)
    await a.publish({"kind": "before"})
    await wait_for(lambda: heard_b == [{"kind": "before"}])

    await throwaway.stop()
    await wait_for(lambda: a.status() is not None and b.status() is not None)
    assert str(a.status()).startswith("redis unavailable")
    await a.publish({"kind": "during"})  # still reaches this node's own clients
    assert heard_a[-1] == {"kind": "during"}
    assert await a.select(TEN, "ann", 60) == 1
    assert await a.room_selections(ROOM) == ["10:00"]
    assert await a.remember("hook:9", 60) is True

    await throwaway.start()
    await asyncio.wait_for(reconnected.wait(), 5)
    assert a.status() is None
    await wait_for(lambda: b.status() is None)
    # what node A kept alone while Redis was away is shared again
    assert await b.room_selections(ROOM) == ["10:00"]
    assert await b.remember("hook:9", 60) is False
    await b.publish({"kind": "after"})
    await wait_for(lambda: heard_a[-1] == {"kind": "after"})
    assert {"kind": "during"} not in heard_b


async def test_close_is_idempotent_and_stops_reconnecting(make_broker: MakeBroker) -> None:
    broker, heard = await make_broker(f"redis://127.0.0.1:{free_port()}/0", backoff_base=0.01)
    await broker.close()
    await broker.close()
    assert not broker.tasks
    await broker.publish({"kind": "after close"})
    assert heard == []
