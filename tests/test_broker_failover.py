"""The failover wrapper with fakes: primary while up, fallback while down, hand-over after;
and the order in which the link tells its parts that Redis is back. No sockets."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from appointease_realtime.broker import (
    Failover,
    FailoverDeduper,
    FailoverSelections,
    MemoryDeduper,
    MemorySelections,
    RedisBroker,
    RedisLink,
    open_cluster,
)
from appointease_realtime.protocol import Room, Slot

DAY = "2030-05-06"
ROOM = Room(DAY, 3)
TEN, ELEVEN = Slot(DAY, "10:00", 3), Slot(DAY, "11:00", 3)


class FakeLink:
    """Up or down as the test says; remembers every loss it is told of."""

    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.losses: list[BaseException] = []

    def lost(self, exc: BaseException) -> None:
        self.up = False
        self.losses.append(exc)


class Box:
    """A named store whose one operation says who answered, or fails when told to."""

    def __init__(self, name: str, error: Exception | None = None) -> None:
        self.name = name
        self.error = error

    async def who(self) -> str:
        if self.error is not None:
            raise self.error
        return self.name


class FlakySelections(MemorySelections):
    """A primary stand-in that fails every ``select`` after the first ``ok`` ones."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self.ok = ok

    async def select(self, slot: Slot, client_id: str, ttl: float) -> int:
        if self.ok <= 0:
            raise RedisConnectionError("gone again")
        self.ok -= 1
        return await super().select(slot, client_id, ttl)


def boxes(primary: Box) -> tuple[FakeLink, Failover[Box, Box], list[Box]]:
    """A failover over ``primary`` whose fallbacks are numbered and whose hand-overs logged."""
    link, made, handed = FakeLink(), [0], []

    def make() -> Box:
        made[0] += 1
        return Box(f"fallback-{made[0]}")

    async def hand_over(kept: Box) -> None:
        handed.append(kept)

    return link, Failover(link, primary, make, hand_over), handed


async def test_routes_to_primary_while_up_and_fallback_while_down() -> None:
    link, failover, _ = boxes(Box("primary"))
    assert await failover.call(lambda box: box.who()) == "primary"
    link.up = False
    assert await failover.call(lambda box: box.who()) == "fallback-1"
    link.up = True
    assert await failover.call(lambda box: box.who()) == "primary"
    assert link.losses == []


@pytest.mark.parametrize("error", [RedisConnectionError("reset"), ResponseError("x"), OSError()])
async def test_a_failing_primary_marks_the_link_lost(error: Exception) -> None:
    link, failover, _ = boxes(Box("primary", error))
    assert await failover.call(lambda box: box.who()) == "fallback-1"
    assert link.losses == [error] and link.up is False
    failover.primary.error = None
    assert await failover.call(lambda box: box.who()) == "fallback-1"  # until it recovers


async def test_other_errors_are_the_callers() -> None:
    link, failover, _ = boxes(Box("primary", KeyError("bug")))
    with pytest.raises(KeyError):
        await failover.call(lambda box: box.who())
    assert link.up is True and link.losses == []


async def test_recovery_hands_the_old_fallback_over_and_starts_a_fresh_one() -> None:
    _, failover, handed = boxes(Box("primary"))
    first = failover.fallback
    await failover.recovered()
    assert handed == [first]
    assert failover.fallback is not first and failover.fallback.name == "fallback-2"


async def test_selections_kept_while_down_move_to_the_primary_with_their_ttl() -> None:
    link, primary = FakeLink(up=False), MemorySelections()
    selections = FailoverSelections(link, primary)
    assert await selections.select(TEN, "ann", 60) == 1
    assert await selections.select(ELEVEN, "bob", 0.01) == 1
    (kept,) = [s for s in await selections.all_selections() if s.client_id == "ann"]
    assert await primary.all_selections() == []
    await asyncio.sleep(0.02)  # bob's lapses before Redis is back

    link.up = True
    await selections.failover.recovered()
    (moved,) = await primary.all_selections()
    assert (moved.slot, moved.client_id) == (TEN, "ann")
    assert moved.expires == pytest.approx(kept.expires, abs=0.05)
    assert await selections.room_selections(ROOM) == ["10:00"]  # answered by the primary
    assert await selections.failover.fallback.all_selections() == []


async def test_every_selection_method_follows_the_link() -> None:
    link, primary = FakeLink(up=False), MemorySelections()
    selections = FailoverSelections(link, primary)
    await selections.select(TEN, "ann", 60)
    assert await selections.room_selections(ROOM) == ["10:00"]
    assert await selections.deselect(TEN, "ann") is True
    await selections.select(ELEVEN, "ann", 0.01)
    await asyncio.sleep(0.02)
    assert await selections.expire() == {ROOM}
    await selections.select(TEN, "ann", 60)
    assert await selections.drop_client("ann") == {ROOM}
    assert primary.rooms == {}


async def test_a_hand_over_cut_short_lands_in_the_new_fallback() -> None:
    link, primary = FakeLink(up=False), FlakySelections(ok=1)
    selections = FailoverSelections(link, primary)
    for slot in (TEN, ELEVEN, Slot(DAY, "12:00", 3)):
        await selections.select(slot, "ann", 60)
    link.up = True
    await selections.failover.recovered()
    assert len(link.losses) == 1 and link.up is False
    in_primary = {s.slot for s in await primary.all_selections()}
    in_fallback = {s.slot for s in await selections.failover.fallback.all_selections()}
    assert len(in_primary) == 1 and len(in_fallback) == 2
    assert in_primary | in_fallback == {TEN, ELEVEN, Slot(DAY, "12:00", 3)}


async def test_remembered_keys_move_to_the_primary_with_their_ttl() -> None:
    link, primary = FakeLink(up=False), MemoryDeduper()
    seen = FailoverDeduper(link, primary)
    assert await seen.remember("hook:1", 60) is True
    assert await seen.remember("hook:1", 60) is False
    assert await seen.remember("hook:2", 0.01) is True
    await seen.remember("hook:3", 60)
    await seen.forget("hook:3")
    await asyncio.sleep(0.02)
    link.up = True
    await seen.failover.recovered()
    assert set(primary.live()) == {"hook:1"}
    assert 59 < primary.live()["hook:1"] <= 60
    assert await seen.remember("hook:1", 60) is False  # the primary knows it now
    assert seen.failover.fallback.live() == {}


class Part:
    """A link part that logs when it is told Redis is back (and may lose it again)."""

    def __init__(self, name: str, log: list[str], link: RedisLink, lose: bool = False) -> None:
        self.name, self.log, self.link, self.lose = name, log, link, lose

    async def attach(self, redis: Redis) -> None:
        self.log.append(f"attach {self.name}")

    async def detach(self) -> None:
        self.log.append(f"detach {self.name}")

    async def recovered(self) -> None:
        self.log.append(self.name)
        if self.lose:
            self.link.problem = "redis unavailable: gone again"


async def test_the_link_tells_parts_in_order_and_stops_when_lost_again() -> None:
    link, log = RedisLink("redis://127.0.0.1:1/0"), list[str]()
    for name in ("selections", "deduper", "broker"):
        link.add(Part(name, log, link))
    await link._recovered()
    assert log == ["selections", "deduper", "broker"]

    log.clear()
    link = RedisLink("redis://127.0.0.1:1/0")
    link.add(Part("selections", log, link, lose=True))
    link.add(Part("broker", log, link))
    await link._recovered()
    assert log == ["selections"]  # no resync before the hand-over is complete


def test_open_cluster_registers_the_hand_overs_before_the_broker() -> None:
    cluster = open_cluster("redis://127.0.0.1:1/0", namespace="x")
    assert cluster.link is not None
    parts = cluster.link.parts
    assert isinstance(parts[-1], RedisBroker)
    assert [p for p in parts if isinstance(p, Failover)] == [
        cluster.selections.failover,  # type: ignore[attr-defined]
        cluster.deduper.failover,  # type: ignore[attr-defined]
    ]
