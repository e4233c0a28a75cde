"""Store contract: the same rules, checked on SQLite and on real MariaDB."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from appointease_realtime.config import Settings
from appointease_realtime.protocol import Room, Slot
from appointease_realtime.store import Store, StoreUnavailable, open_store
from appointease_realtime.store.base import (
    HOLD_LIMIT,
    NOT_HOLDER,
    NOT_LOCKED,
    SLOT_BOOKED,
    SLOT_LOCKED,
)

SLOT = Slot("2030-05-06", "10:00", 3)
SQL = Callable[..., Awaitable[list[tuple[Any, ...]]]]


def appointment(**fields: Any) -> dict[str, Any]:
    row = {
        "name": "Ann",
        "email": "ann@example.com",
        "appointment_date": "2030-05-06 10:00:00",
        "employee_id": 3,
        "status": "confirmed",
    }
    return {**row, **fields}


async def test_lock_is_exclusive_and_refreshable(store: Store) -> None:
    first = await store.acquire_lock(SLOT, "a", 600, 2)
    assert first.acquired and 598 <= first.expires_in <= 600
    refused = await store.acquire_lock(SLOT, "b", 600, 2)
    assert not refused.acquired and refused.reason == SLOT_LOCKED
    assert 598 <= refused.expires_in <= 600
    refreshed = await store.acquire_lock(SLOT, "a", 900, 2)
    assert refreshed.acquired and refreshed.expires_in >= 898


async def insert_lock_as_php(store: Store, sql: SQL, client_id: str, seconds: int) -> None:
    """Write a lock row the way the plugin's PHP does, with the database's clock."""
    expires = (
        f"NOW() + INTERVAL {seconds} SECOND"
        if store.kind == "mysql"
        else f"datetime('now', '{seconds:+d} seconds')"
    )
    await sql(
        "INSERT INTO wp_appointease_slot_locks (date, time, employee_id, client_id, expires_at)"
        f" VALUES (%s, %s, %s, %s, {expires})",
        SLOT.date,
        "10:00:00",
        SLOT.employee_id,
        client_id,
    )


async def test_expired_row_is_taken_over(store: Store, sql: SQL) -> None:
    await insert_lock_as_php(store, sql, "php-client", 0)
    outcome = await store.acquire_lock(SLOT, "b", 600, 2)
    assert outcome.acquired
    assert await sql("SELECT client_id FROM wp_appointease_slot_locks") == [("b",)]


async def test_php_written_live_lock_is_respected(store: Store, sql: SQL) -> None:
    await insert_lock_as_php(store, sql, "php-client", 300)
    outcome = await store.acquire_lock(SLOT, "b", 600, 2)
    assert not outcome.acquired and outcome.reason == SLOT_LOCKED
    assert 298 <= outcome.expires_in <= 300
    assert await store.release_lock(SLOT, "b") == NOT_HOLDER


async def test_booked_slot_is_refused(store: Store) -> None:
    await store.insert_appointment(appointment())
    outcome = await store.acquire_lock(SLOT, "a", 600, 2)
    assert not outcome.acquired and outcome.reason == SLOT_BOOKED
    await store.insert_appointment(
        appointment(appointment_date="2030-05-06 11:00:00", status="cancelled", email="b@x.io")
    )
    assert (await store.acquire_lock(Slot(SLOT.date, "11:00", 3), "a", 600, 2)).acquired


async def test_hold_limit_counts_other_live_locks(store: Store) -> None:
    for time in ("09:00", "09:30"):
        assert (await store.acquire_lock(Slot(SLOT.date, time, 3), "a", 600, 2)).acquired
    third = await store.acquire_lock(Slot(SLOT.date, "10:00", 3), "a", 600, 2)
    assert not third.acquired and third.reason == HOLD_LIMIT
    assert (await store.acquire_lock(Slot(SLOT.date, "09:00", 3), "a", 600, 2)).acquired


async def test_release_only_by_holder(store: Store) -> None:
    assert await store.release_lock(SLOT, "a") == NOT_LOCKED
    await store.acquire_lock(SLOT, "a", 600, 2)
    assert await store.release_lock(SLOT, "b") == NOT_HOLDER
    assert await store.release_lock(SLOT, "a") is None
    assert await store.release_lock(SLOT, "a") == NOT_LOCKED


async def test_release_client_locks_and_delete_lock(store: Store) -> None:
    other = Slot(SLOT.date, "11:00", 3)
    await store.acquire_lock(SLOT, "a", 600, 5)
    await store.acquire_lock(other, "a", 600, 5)
    await store.acquire_lock(Slot(SLOT.date, "12:00", 3), "b", 600, 5)
    assert sorted(await store.release_client_locks("a")) == [SLOT, other]
    assert await store.release_client_locks("a") == []
    assert await store.delete_lock(Slot(SLOT.date, "12:00", 3)) == "b"
    assert await store.delete_lock(Slot(SLOT.date, "12:00", 3)) is None


async def test_sweep_deletes_expired_rows_only(store: Store) -> None:
    await store.acquire_lock(SLOT, "short", 1, 2)
    await store.acquire_lock(Slot(SLOT.date, "11:00", 3), "long", 600, 2)
    await asyncio.sleep(2.1)
    swept = await store.sweep_expired_locks()
    assert [(lock.slot, lock.client_id) for lock in swept] == [(SLOT, "short")]
    assert [lock.client_id for lock in await store.live_locks()] == ["long"]


async def test_room_state_and_booked_times(store: Store) -> None:
    await store.insert_appointment(appointment())
    await store.insert_appointment(
        appointment(appointment_date="2030-05-06 15:30:00", email="c@x.io")
    )
    await store.insert_appointment(
        appointment(appointment_date="2030-05-07 10:00:00", email="d@x.io")
    )
    await store.insert_appointment(
        appointment(appointment_date="2030-05-06 12:00:00", status="cancelled", email="e@x.io")
    )
    await store.acquire_lock(Slot(SLOT.date, "11:00", 3), "a", 600, 2)
    state = await store.room_state(Room(SLOT.date, 3))
    assert state.booked == ["10:00", "15:30"]
    assert state.locked == ["11:00"]
    times = await store.booked_times(
        [Room(SLOT.date, 3), Room("2030-05-07", 3), Room(SLOT.date, 4)]
    )
    assert times == {
        Room(SLOT.date, 3): {"10:00", "15:30"},
        Room("2030-05-07", 3): {"10:00"},
        Room(SLOT.date, 4): set(),
    }


async def test_appointments_by_email_and_reference(store: Store) -> None:
    first = await store.insert_appointment(appointment(strong_id="APT-2030-000001"))
    await store.insert_appointment(
        appointment(appointment_date="2030-05-06 08:00:00", status="cancelled", strong_id="APT-2")
    )
    await store.insert_appointment(appointment(email="other@example.com", strong_id="APT-3"))
    rows = await store.appointments_for("ann@example.com")
    assert [row["strong_id"] for row in rows] == ["APT-2030-000001"]
    assert rows[0]["appointment_date"] == "2030-05-06 10:00:00"
    assert rows[0]["employee_id"] == 3
    by_ref = await store.appointment("APT-2030-000001")
    assert by_ref is not None and by_ref["id"] == first
    assert await store.appointment(first) == by_ref
    assert await store.appointment(str(first)) == by_ref
    assert await store.appointment("APT-missing") is None


async def test_schema_check_and_create_never_alters(store: Store, sql: SQL) -> None:
    assert await store.schema_problems() == []
    assert await store.create_schema() == []
    await sql("DROP TABLE wp_appointease_slot_locks")
    assert await store.schema_problems() == ["table wp_appointease_slot_locks is missing"]
    assert await store.create_schema() == ["wp_appointease_slot_locks"]
    assert await store.schema_problems() == []


async def test_missing_unique_key_is_reported(settings: Settings, sql: SQL) -> None:
    await sql("DROP TABLE wp_appointease_slot_locks")
    await sql(
        "CREATE TABLE wp_appointease_slot_locks (id INTEGER PRIMARY KEY, date DATE NOT NULL,"
        " time TIME NOT NULL, employee_id INTEGER NOT NULL, client_id VARCHAR(255) NOT NULL,"
        " expires_at DATETIME NOT NULL)"
    )
    store = await open_store(settings, create_embedded=False)
    try:
        problems = await store.schema_problems()
    finally:
        await store.close()
    assert len(problems) == 1 and "no UNIQUE key on (date, time, employee_id)" in problems[0]


async def test_table_prefix_is_honoured(settings: Settings, sql: SQL) -> None:
    from dataclasses import replace

    store = await open_store(replace(settings, table_prefix="wp_2_"), create_embedded=False)
    try:
        assert "table wp_2_appointments is missing" in await store.schema_problems()
        assert await store.create_schema() == ["wp_2_appointments", "wp_2_appointease_slot_locks"]
        assert (await store.acquire_lock(SLOT, "a", 600, 2)).acquired
    finally:
        await store.close()
    assert await sql("SELECT client_id FROM wp_2_appointease_slot_locks") == [("a",)]
    assert await sql("SELECT client_id FROM wp_appointease_slot_locks") == []


@pytest.mark.parametrize("backend", ["mysql"])
async def test_expiry_follows_database_clock_whatever_the_time_zone(settings: Settings) -> None:
    """The old server computed expiry in its own zone and lost locks hours early."""
    import pymysql

    from tests.conftest import MYSQL

    root = pymysql.connect(**MYSQL, password="", autocommit=True)
    try:
        with root.cursor() as cur:
            cur.execute("SELECT @@GLOBAL.time_zone")
            (before,) = cur.fetchone()
            cur.execute("SET GLOBAL time_zone = '-05:00'")
        store = await open_store(settings)
        try:
            outcome = await store.acquire_lock(SLOT, "a", 600, 2)
            assert outcome.acquired and 598 <= outcome.expires_in <= 600
            assert (await store.acquire_lock(SLOT, "b", 600, 2)).reason == SLOT_LOCKED
        finally:
            await store.close()
        php = pymysql.connect(
            **MYSQL, password="", database=settings.db_name
        )  # a new $wpdb session
        try:
            with php.cursor() as cur:
                cur.execute(
                    "SELECT TIMESTAMPDIFF(SECOND, NOW(), expires_at) FROM wp_appointease_slot_locks"
                )
                (left,) = cur.fetchone()
        finally:
            php.close()
        assert 595 <= left <= 600  # PHP's `expires_at > NOW()` sees the same ten minutes
    finally:
        with root.cursor() as cur:
            cur.execute("SET GLOBAL time_zone = %s", (before,))
        root.close()


async def test_count_foreign_appointments(store: Store) -> None:
    assert await store.count_foreign_appointments("QA-") == 0
    for strong_id in ("QA-1", "QA-2", "APT-2030-000001", None, "QAX-3"):
        await store.insert_appointment(appointment(strong_id=strong_id, email=f"{strong_id}@x.io"))
    assert await store.count_foreign_appointments("QA-") == 3  # APT-..., NULL, QAX-3
    assert await store.count_foreign_appointments("Q_") == 5  # "_" is no wildcard
    assert await store.count_foreign_appointments("") == 1  # only the NULL


async def test_operations_are_observed_by_name_from_open(settings: Settings, sql: SQL) -> None:
    seen: list[tuple[str, float]] = []

    def observe(operation: str, seconds: float) -> None:
        seen.append((operation, seconds))

    store = await open_store(settings, observe=observe)
    try:
        assert store.observe is observe
        await store.acquire_lock(SLOT, "a", 600, 2)
        await store.room_state(SLOT.room)
        await store.booked_times([SLOT.room])
        await store.release_lock(SLOT, "a")
        await store.count_foreign_appointments("QA-")
        await sql("DROP TABLE wp_appointease_slot_locks")
        with pytest.raises(StoreUnavailable, match=r"^live_locks: "):
            await store.live_locks()
    finally:
        await store.close()
    assert [name for name, _ in seen if name != "describe_schema"] == [
        "acquire_lock",
        "room_state",
        "booked_times",
        "release_lock",
        "count_foreign_appointments",
    ]
    assert all(0 <= seconds < 5 for _, seconds in seen)


async def test_run_takes_the_operation_name(store: Store) -> None:
    from appointease_realtime.store.sql import SqlStore, Tx

    assert isinstance(store, SqlStore)
    seen: list[str] = []
    store.observe = lambda operation, seconds: seen.append(operation)

    async def work(tx: Tx) -> int:
        row = await tx.one("SELECT 41 + 1")
        return int(row[0]) if row else 0

    assert await store.run("answer", work) == 42
    assert seen == ["answer"]
