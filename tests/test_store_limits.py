"""Hold limits per owner tag and the maximum hold age, on SQLite and on real MariaDB."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from appointease_realtime.config import Settings
from appointease_realtime.protocol import Slot
from appointease_realtime.store import Store, open_store
from appointease_realtime.store.base import (
    ADDRESS_LIMIT,
    HOLD_LIMIT,
    HOLD_MAX,
    SLOT_LOCKED,
)

SQL = Callable[..., Awaitable[list[tuple[Any, ...]]]]
DAY = "2030-05-06"
SLOT = Slot(DAY, "10:00", 3)
TAG = "9f2c1a"


def slot(n: int) -> Slot:
    """The n-th half hour of DAY, employee 3."""
    return Slot(DAY, f"{8 + n // 2:02d}:{30 * (n % 2):02d}", 3)


def at(store: Store, seconds: int) -> str:
    """SQL for the database's now plus ``seconds`` (negative: in the past)."""
    if store.kind == "mysql":
        return f"NOW() + INTERVAL {seconds} SECOND"
    return f"datetime('now', '{seconds:+d} seconds')"


def age_sql(store: Store) -> str:
    """SQL for the seconds since a lock row's created_at."""
    if store.kind == "mysql":
        return "TIMESTAMPDIFF(SECOND, created_at, NOW())"
    return "CAST(ROUND((julianday('now') - julianday(created_at)) * 86400) AS INTEGER)"


async def insert_lock(
    store: Store, sql: SQL, client_id: str, expires_in: int, age: int, at_slot: Slot = SLOT
) -> None:
    """A lock row written directly (as PHP, or an earlier daemon, would have left it)."""
    await sql(
        "INSERT INTO wp_appointease_slot_locks"
        " (date, time, employee_id, client_id, expires_at, created_at)"
        f" VALUES (%s, %s, %s, %s, {at(store, expires_in)}, {at(store, -age)})",
        at_slot.date,
        f"{at_slot.time}:00",
        at_slot.employee_id,
        client_id,
    )


async def lock_row(store: Store, sql: SQL) -> tuple[Any, ...]:
    """(client_id, expires_at, created_at, age in seconds) of SLOT's row."""
    rows = await sql(
        f"SELECT client_id, expires_at, created_at, {age_sql(store)}"
        " FROM wp_appointease_slot_locks WHERE time = %s",
        f"{SLOT.time}:00",
    )
    assert len(rows) == 1
    return rows[0]


# ---- owner tags ----


async def test_owner_limit_counts_live_holds_of_every_client_with_the_tag(
    store: Store, sql: SQL
) -> None:
    def lock(n: int, client: str, tag: str = TAG, limit: int = 3) -> Any:
        return store.acquire_lock(slot(n), client, 600, 2, owner=tag, owner_limit=limit)

    for n in range(3):
        assert (await lock(n, f"tab{n}~{TAG}")).acquired
    refused = await lock(3, f"tab3~{TAG}")
    assert not refused.acquired and refused.reason == ADDRESS_LIMIT
    assert (await lock(0, f"tab0~{TAG}")).acquired  # a refresh does not count its own slot
    assert (await lock(3, f"tab3~x{TAG}", tag=f"x{TAG}", limit=1)).acquired  # another owner
    assert await store.release_lock(slot(1), f"tab1~{TAG}") is None
    assert (await lock(4, f"tab4~{TAG}")).acquired  # a released hold frees its place
    await insert_lock(store, sql, f"old~{TAG}", -5, 700, slot(9))  # expired: not counted
    assert (await lock(5, f"tab0~{TAG}")).reason == ADDRESS_LIMIT
    assert await store.release_lock(slot(0), f"tab0~{TAG}") is None
    assert (await lock(5, f"tab0~{TAG}")).acquired


async def test_owner_limit_comes_after_the_client_hold_limit(store: Store) -> None:
    client = f"tab~{TAG}"
    for n in range(2):
        assert (
            await store.acquire_lock(slot(n), client, 600, 2, owner=TAG, owner_limit=5)
        ).acquired
    third = await store.acquire_lock(slot(2), client, 600, 2, owner=TAG, owner_limit=5)
    assert third.reason == HOLD_LIMIT


async def test_owner_tag_is_matched_literally(store: Store) -> None:
    """LIKE wildcards in a tag match only themselves; the ``~`` anchors the tag."""
    assert (await store.acquire_lock(slot(0), "q~abc", 600, 2, owner="abc", owner_limit=1)).acquired
    assert (await store.acquire_lock(slot(1), "p~a_c", 600, 2, owner="a_c", owner_limit=1)).acquired
    assert (await store.acquire_lock(slot(2), "r~%", 600, 2, owner="%", owner_limit=1)).acquired
    assert (await store.acquire_lock(slot(3), "s~bc", 600, 2, owner="bc", owner_limit=1)).acquired
    again = await store.acquire_lock(slot(4), "t~a_c", 600, 2, owner="a_c", owner_limit=1)
    assert again.reason == ADDRESS_LIMIT


async def test_owner_must_be_the_client_ids_tag(store: Store) -> None:
    with pytest.raises(ValueError, match="owner tag"):
        await store.acquire_lock(SLOT, "tab-without-tag", 600, 2, owner=TAG, owner_limit=3)
    with pytest.raises(ValueError, match="owner_limit"):
        await store.acquire_lock(SLOT, f"tab~{TAG}", 600, 2, owner=TAG, owner_limit=0)


async def test_thirty_tabs_of_one_owner_racing_on_three_nodes_get_exactly_ten_holds(
    store: Store, settings: Settings
) -> None:
    """The count and the write are serialized per owner across processes (three stores here,
    each with its own connections), so the limit holds exactly under a real race."""
    nodes = [store, *[await open_store(settings) for _ in range(2)]]
    try:
        outcomes = await asyncio.gather(
            *(
                nodes[n % 3].acquire_lock(
                    Slot(DAY, f"{8 + n // 4:02d}:{15 * (n % 4):02d}", 3 + n % 2),
                    f"tab{n}~{TAG}",
                    600,
                    2,
                    owner=TAG,
                    owner_limit=10,
                )
                for n in range(30)
            )
        )
    finally:
        for node in nodes[1:]:
            await node.close()
    assert sum(o.acquired for o in outcomes) == 10
    assert {o.reason for o in outcomes if not o.acquired} == {ADDRESS_LIMIT}
    assert len(await store.live_locks()) == 10


# ---- maximum hold age ----


async def test_fresh_hold_starts_its_age_now_and_is_capped_by_it(store: Store, sql: SQL) -> None:
    outcome = await store.acquire_lock(SLOT, "a", 600, 2, max_hold_seconds=60)
    assert outcome.acquired and 58 <= outcome.expires_in <= 60
    assert (await lock_row(store, sql))[3] <= 2
    again = await store.acquire_lock(SLOT, "a", 600, 2, max_hold_seconds=60)
    assert again.acquired and again.expires_in <= 60  # a refresh cannot pass created_at + 60


async def test_refresh_is_capped_at_the_maximum_hold_age(store: Store, sql: SQL) -> None:
    await insert_lock(store, sql, "a", 50, 500)
    outcome = await store.acquire_lock(SLOT, "a", 600, 2, max_hold_seconds=600)
    assert outcome.acquired and 98 <= outcome.expires_in <= 100
    assert (await lock_row(store, sql))[3] >= 499  # the age is kept


async def test_refresh_past_the_maximum_hold_age_is_refused_and_changes_nothing(
    store: Store, sql: SQL
) -> None:
    await insert_lock(store, sql, "a", 300, 700)
    before = await lock_row(store, sql)
    outcome = await store.acquire_lock(SLOT, "a", 600, 2, max_hold_seconds=600)
    assert not outcome.acquired and outcome.reason == HOLD_MAX
    assert 298 <= outcome.expires_in <= 300  # the hold stays until it expires
    assert (await lock_row(store, sql))[:3] == before[:3]
    other = await store.acquire_lock(SLOT, "b", 600, 2, max_hold_seconds=600)
    assert other.reason == SLOT_LOCKED  # and nobody else may take it meanwhile
    assert (await lock_row(store, sql))[:3] == before[:3]


async def test_taking_over_an_expired_hold_resets_its_age(store: Store, sql: SQL) -> None:
    await insert_lock(store, sql, "php-visitor", -1, 7200)
    outcome = await store.acquire_lock(SLOT, "b", 600, 2, max_hold_seconds=600)
    assert outcome.acquired and outcome.expires_in >= 598
    client, _, _, age = await lock_row(store, sql)
    assert client == "b" and age <= 2
    refreshed = await store.acquire_lock(SLOT, "b", 600, 2, max_hold_seconds=600)
    assert refreshed.acquired and refreshed.expires_in >= 598


async def test_the_same_client_may_start_a_new_hold_once_its_old_one_expired(
    store: Store, sql: SQL
) -> None:
    await insert_lock(store, sql, "a", -1, 700)
    outcome = await store.acquire_lock(SLOT, "a", 600, 2, max_hold_seconds=600)
    assert outcome.acquired and outcome.expires_in >= 598
    assert (await lock_row(store, sql))[3] <= 2


async def test_without_a_maximum_a_refresh_extends_as_before(store: Store, sql: SQL) -> None:
    await insert_lock(store, sql, "a", 300, 86400)
    outcome = await store.acquire_lock(SLOT, "a", 600, 2)
    assert outcome.acquired and outcome.expires_in >= 598
