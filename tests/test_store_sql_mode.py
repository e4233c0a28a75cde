"""The lock upsert on MariaDB, with the default left-to-right assignment and with
SIMULTANEOUS_ASSIGNMENT in sql_mode (which a site may set): the same outcome either way."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from appointease_realtime.config import Settings
from appointease_realtime.protocol import Slot
from appointease_realtime.store.base import HOLD_MAX, SLOT_LOCKED
from appointease_realtime.store.mysql import MySQLStore
from appointease_realtime.store.sql import Tx

SQL = Callable[..., Awaitable[list[tuple[Any, ...]]]]
SLOT = Slot("2030-05-06", "10:00", 3)
SIMULTANEOUS = "SET SESSION sql_mode = CONCAT(@@sql_mode, ',SIMULTANEOUS_ASSIGNMENT')"

pytestmark = pytest.mark.parametrize("backend", ["mysql"])


@pytest.fixture(params=["left_to_right", "simultaneous"])
async def mysql_store(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[MySQLStore]:
    """A MySQL store whose sessions assign left to right, or simultaneously."""
    simultaneous = request.param == "simultaneous"
    store = await MySQLStore.open(settings, init_command=SIMULTANEOUS if simultaneous else None)

    async def session(tx: Tx) -> tuple[Any, ...] | None:
        return await tx.one("SELECT VERSION(), @@SESSION.sql_mode")

    try:
        row = await store.run("probe", session)
        assert row is not None
        version, mode = str(row[0]), str(row[1])
        if simultaneous:
            numbers = tuple(int(part) for part in version.split("-")[0].split(".")[:3])
            if "mariadb" not in version.lower() or numbers < (10, 3, 5):
                pytest.skip(f"{version} has no SIMULTANEOUS_ASSIGNMENT")
        assert ("SIMULTANEOUS_ASSIGNMENT" in mode.split(",")) == simultaneous
        yield store
    finally:
        await store.close()


async def php_lock(sql: SQL, client_id: str, expires_in: int, age: int) -> None:
    """A lock row as PHP (or an earlier daemon) left it."""
    await sql(
        "INSERT INTO wp_appointease_slot_locks"
        " (date, time, employee_id, client_id, expires_at, created_at) VALUES"
        " (%s, %s, %s, %s, NOW() + INTERVAL %s SECOND, NOW() - INTERVAL %s SECOND)",
        SLOT.date,
        f"{SLOT.time}:00",
        SLOT.employee_id,
        client_id,
        expires_in,
        age,
    )


async def row(sql: SQL) -> tuple[Any, ...]:
    """client_id, expires_at, created_at, seconds left, age in seconds."""
    rows = await sql(
        "SELECT client_id, expires_at, created_at, TIMESTAMPDIFF(SECOND, NOW(), expires_at),"
        " TIMESTAMPDIFF(SECOND, created_at, NOW()) FROM wp_appointease_slot_locks"
    )
    assert len(rows) == 1
    return rows[0]


async def test_take_over_of_an_expired_row_gives_a_full_fresh_hold(
    mysql_store: MySQLStore, sql: SQL
) -> None:
    await php_lock(sql, "php-visitor", -5, 3600)
    outcome = await mysql_store.acquire_lock(SLOT, "b", 600, 2, max_hold_seconds=900)
    assert outcome.acquired and outcome.expires_in >= 598
    client, _, _, left, age = await row(sql)
    assert client == "b" and left >= 598 and age <= 2  # in the future, and a new age


async def test_a_refused_racer_changes_nothing(mysql_store: MySQLStore, sql: SQL) -> None:
    await php_lock(sql, "holder", 300, 100)
    before = await row(sql)
    outcome = await mysql_store.acquire_lock(SLOT, "racer", 600, 2, max_hold_seconds=900)
    assert not outcome.acquired and outcome.reason == SLOT_LOCKED
    assert (await row(sql))[:3] == before[:3]


async def test_refresh_is_capped_and_refused_past_the_maximum_age(
    mysql_store: MySQLStore, sql: SQL
) -> None:
    await php_lock(sql, "a", 50, 500)
    capped = await mysql_store.acquire_lock(SLOT, "a", 600, 2, max_hold_seconds=600)
    assert capped.acquired and 98 <= capped.expires_in <= 100
    await sql("UPDATE wp_appointease_slot_locks SET created_at = NOW() - INTERVAL 700 SECOND")
    before = await row(sql)
    refused = await mysql_store.acquire_lock(SLOT, "a", 600, 2, max_hold_seconds=600)
    assert refused.reason == HOLD_MAX and (await row(sql))[:3] == before[:3]


async def test_fresh_lock_and_plain_refresh(mysql_store: MySQLStore, sql: SQL) -> None:
    first = await mysql_store.acquire_lock(SLOT, "a", 300, 2)
    assert first.acquired and 298 <= first.expires_in <= 300
    refreshed = await mysql_store.acquire_lock(SLOT, "a", 600, 2)
    assert refreshed.acquired and refreshed.expires_in >= 598
    assert (await mysql_store.acquire_lock(SLOT, "b", 600, 2)).reason == SLOT_LOCKED
    client, _, _, left, age = await row(sql)
    assert client == "a" and left >= 598 and age <= 2
