"""The Redis cluster parts (broker, selections, deduper on one link) against a real Redis,
and how a node survives losing Redis and catches up when it is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from appointease_realtime.broker import Cluster, open_cluster
from appointease_realtime.events import ClientResumed, RoomSelections
from appointease_realtime.protocol import Room, Slot
from tests.processes import free_port
from tests.redis_support import ThrowawayRedis, wait_for
from tests.test_broker_memory import Recorder

pytestmark = pytest.mark.redis

DAY = "2030-05-06"
ROOM = Room(DAY, 3)
TEN, ELEVEN = Slot(DAY, "10:00", 3), Slot(DAY, "11:00", 3)
MakeNode = Callable[..., Awaitable[tuple[Cluster, Recorder]]]


def ping(name: str) -> ClientResumed:
    """A small event to tell publications apart."""
    return ClientResumed(name, "node")


@pytest.fixture
async def make_node(redis_url: str, namespace: str) -> AsyncIterator[MakeNode]:
    """Open and start one node's cluster parts (on the test namespace unless told), recording
    what its broker hands over."""
    started: list[Cluster] = []

    async def start(
        url: str = redis_url, recorder: Recorder | None = None, **options: Any
    ) -> tuple[Cluster, Recorder]:
        cluster = open_cluster(url, **{"namespace": namespace, **options})
        heard = recorder or Recorder()
        await cluster.broker.start(heard)
        started.append(cluster)
        return cluster, heard

    yield start
    for cluster in started:
        await cluster.close()


async def test_select_deselect_across_two_nodes(make_node: MakeNode) -> None:
    (a, _), (b, _) = await make_node(), await make_node()
    assert a.broker.status() is None and b.broker.status() is None
    assert a.broker.shared is True
    assert await a.selections.select(TEN, "ann", 60) == 1
    assert await a.selections.select(ELEVEN, "ann", 60) == 2
    assert await a.selections.select(TEN, "ann", 60) == 2  # a refresh, not a new one
    assert await b.selections.select(TEN, "bob", 60) == 1
    assert await b.selections.room_selections(ROOM) == ["10:00", "11:00"]
    assert await a.selections.room_selections(Room(DAY, 4)) == []
    marks = {(s.slot, s.client_id) for s in await b.selections.all_selections()}
    assert marks == {(TEN, "ann"), (ELEVEN, "ann"), (TEN, "bob")}
    assert await b.selections.deselect(ELEVEN, "ann") is True
    assert await a.selections.deselect(ELEVEN, "ann") is False
    assert await a.selections.room_selections(ROOM) == ["10:00"]
    assert await a.selections.select(ELEVEN, "ann", 60) == 2


async def test_client_selections_are_listed_oldest_first_on_every_node(
    make_node: MakeNode,
) -> None:
    (a, _), (b, _) = await make_node(), await make_node()
    other = Slot(DAY, "09:00", 4)
    await a.selections.select(TEN, "ann", 60)
    await a.selections.select(other, "ann", 61)
    await a.selections.select(ELEVEN, "ann", 62)
    assert await b.selections.client_selections("ann") == [TEN, other, ELEVEN]
    await b.selections.select(TEN, "ann", 63)  # selected again: now the newest
    assert await a.selections.client_selections("ann") == [other, ELEVEN, TEN]
    assert await a.selections.client_selections("nobody") == []


async def test_refresh_keeps_when_a_selection_began(make_node: MakeNode) -> None:
    a, _ = await make_node()
    await a.selections.select(TEN, "ann", 60)
    (first,) = await a.selections.all_selections()
    await asyncio.sleep(0.05)
    await a.selections.select(TEN, "ann", 90)
    (again,) = await a.selections.all_selections()
    assert again.since == pytest.approx(first.since)
    assert again.expires > first.expires
    assert again.since <= time.time() < again.expires


async def test_drop_client_removes_all_of_its_selections(make_node: MakeNode) -> None:
    (a, _), (b, _) = await make_node(), await make_node()
    other = Slot(DAY, "09:00", 4)
    await a.selections.select(TEN, "ann", 60)
    await a.selections.select(other, "ann", 60)
    await a.selections.select(TEN, "bob", 60)
    assert await b.selections.drop_client("ann") == {ROOM, other.room}
    assert await b.selections.drop_client("ann") == set()
    assert [(s.slot, s.client_id) for s in await a.selections.all_selections()] == [(TEN, "bob")]
    assert await a.selections.room_selections(other.room) == []
    assert await a.selections.select(ELEVEN, "ann", 60) == 1


async def test_selections_expire_by_ttl(
    make_node: MakeNode, redis_url: str, namespace: str
) -> None:
    (a, _), (b, _) = await make_node(), await make_node()
    await a.selections.select(TEN, "ann", 0.2)
    await a.selections.select(ELEVEN, "bob", 60)
    await asyncio.sleep(0.3)
    assert await b.selections.room_selections(ROOM) == ["11:00"]  # filtered before any sweep
    assert [s.client_id for s in await b.selections.all_selections()] == ["bob"]
    assert await a.selections.select(ELEVEN, "ann", 60) == 1  # the expired one no longer counts
    await a.selections.deselect(ELEVEN, "ann")
    assert await b.selections.expire() == {ROOM}
    assert await a.selections.expire() == set()  # one node announces each change
    await a.selections.deselect(ELEVEN, "bob")
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        assert [key async for key in redis.scan_iter(match=f"{namespace}:*")] == []
    finally:
        await redis.aclose()


async def test_remember_is_shared_and_expires(make_node: MakeNode) -> None:
    (a, _), (b, _) = await make_node(), await make_node()
    assert await a.deduper.remember("hook:1", 0.3) is True
    assert await b.deduper.remember("hook:1", 0.3) is False
    assert await b.deduper.remember("hook:2", 60) is True
    await asyncio.sleep(0.4)
    assert await b.deduper.remember("hook:1", 60) is True
    await a.deduper.forget("hook:2")
    assert await b.deduper.remember("hook:2", 60) is True


async def test_publish_reaches_every_node_including_its_own(make_node: MakeNode) -> None:
    (a, heard_a), (b, heard_b) = await make_node(), await make_node()
    event = RoomSelections(ROOM, ["10:00"])
    await a.broker.publish(event)
    await b.broker.publish(ping("b"))
    await wait_for(lambda: len(heard_a.events) == 2 and len(heard_b.events) == 2)
    assert heard_a.events == heard_b.events == [event, ping("b")]
    assert heard_a.calls == ["on_room", "on_resumed"]


async def test_namespaces_do_not_hear_each_other(make_node: MakeNode) -> None:
    (a, heard_a), (b, heard_b) = await make_node(), await make_node(namespace="aert-other")
    await b.broker.publish(ping("elsewhere"))
    await a.selections.select(TEN, "ann", 60)
    await a.broker.publish(ping("here"))
    await wait_for(lambda: heard_a.events == [ping("here")])
    assert heard_b.events == [ping("elsewhere")]
    assert await b.selections.room_selections(ROOM) == []


async def test_bad_events_and_failing_handlers_are_dropped(
    make_node: MakeNode, redis_url: str, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    class Faulty(Recorder):
        def on_resumed(self, event: ClientResumed) -> None:
            super().on_resumed(event)
            if event.client_id == "boom":
                raise RuntimeError("handler bug")

    a, heard = await make_node(recorder=Faulty())
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        await redis.publish(f"{namespace}:events", "not json")
        await redis.publish(f"{namespace}:events", '{"kind": "nope"}')
    finally:
        await redis.aclose()
    await a.broker.publish(ping("boom"))
    await a.broker.publish(ping("after"))
    await wait_for(lambda: heard.events[-1:] == [ping("after")])
    assert heard.events == [ping("boom"), ping("after")]
    assert a.broker.status() is None
    assert "dropped an undecodable cluster event" in caplog.text
    assert "event handler failed" in caplog.text


async def test_unreachable_at_start_serves_locally(make_node: MakeNode) -> None:
    node, heard = await make_node(f"redis://127.0.0.1:{free_port()}/0", backoff_cap=0.2)
    status = node.broker.status()
    assert status is not None and status.startswith("redis unavailable")
    await node.broker.publish(ping("local"))
    assert heard.events == [ping("local")]
    assert await node.selections.select(TEN, "ann", 60) == 1
    assert await node.selections.room_selections(ROOM) == ["10:00"]
    assert await node.selections.drop_client("ann") == {ROOM}
    assert await node.deduper.remember("hook:1", 60) is True
    assert await node.deduper.remember("hook:1", 60) is False
    await asyncio.sleep(0.3)  # a few reconnect attempts fail quietly
    assert node.broker.status() is not None
    assert heard.resyncs == []


async def test_lost_mid_run_then_back(
    make_node: MakeNode, throwaway: ThrowawayRedis, namespace: str
) -> None:
    options = {"backoff_base": 0.05, "backoff_cap": 0.2, "probe_interval": 0.2}
    in_redis_at_resync: list[list[str]] = []

    async def look() -> None:
        """What Redis holds for the room when node A is asked to resync."""
        raw = Redis.from_url(throwaway.url, decode_responses=True)
        try:
            members = await raw.zrange(f"{namespace}:sel:{DAY}:3", 0, -1)
            in_redis_at_resync.append([str(member) for member in members])
        finally:
            await raw.aclose()

    (a, heard_a), (b, heard_b) = (
        await make_node(throwaway.url, recorder=Recorder(look), **options),
        await make_node(throwaway.url, **options),
    )
    await b.selections.select(ELEVEN, "bob", 60)
    await a.broker.publish(ping("before"))
    await wait_for(lambda: heard_b.events == [ping("before")])

    await throwaway.stop()
    await wait_for(lambda: a.broker.status() is not None and b.broker.status() is not None)
    assert str(a.broker.status()).startswith("redis unavailable")
    await a.broker.publish(ping("during"))  # still reaches this node's own clients
    assert heard_a.events[-1] == ping("during")
    assert await a.selections.select(TEN, "ann", 60) == 1
    assert await a.selections.room_selections(ROOM) == ["10:00"]
    assert await a.deduper.remember("hook:9", 60) is True

    await throwaway.start()
    await asyncio.wait_for(heard_a.resynced.wait(), 5)
    assert a.broker.status() is None
    assert heard_a.resyncs[0].reason
    assert in_redis_at_resync[0] == ["10:00 ann"]  # handed over before the resync
    await wait_for(lambda: b.broker.status() is None)
    # what node A kept alone while Redis was away is shared again
    assert await b.selections.room_selections(ROOM) == ["10:00"]
    assert await b.deduper.remember("hook:9", 60) is False
    await b.broker.publish(ping("after"))
    await wait_for(lambda: heard_a.events[-1] == ping("after"))
    assert ping("during") not in heard_b.events


async def test_a_silent_loss_is_noticed_by_the_probe(
    make_node: MakeNode, throwaway: ThrowawayRedis
) -> None:
    options = {"timeout": 0.3, "probe_interval": 0.1, "backoff_base": 0.05, "backoff_cap": 0.2}
    node, heard = await make_node(throwaway.url, **options)
    raw = Redis.from_url(throwaway.url)
    try:
        await raw.client_pause(1000, all=True)  # answers nothing for a second
    finally:
        await raw.aclose()
    await wait_for(lambda: node.broker.status() is not None, timeout=2)
    assert str(node.broker.status()).startswith("redis unavailable")
    await asyncio.wait_for(heard.resynced.wait(), 5)
    assert node.broker.status() is None


async def test_close_is_idempotent_and_stops_reconnecting(make_node: MakeNode) -> None:
    node, heard = await make_node(f"redis://127.0.0.1:{free_port()}/0", backoff_base=0.01)
    assert node.link is not None and node.link.reconnecting is not None
    await node.close()
    await node.close()
    assert node.link.reconnecting is None
    await node.broker.publish(ping("after close"))
    assert heard.events == []
