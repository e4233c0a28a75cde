"""Reconciliation reads: booked_times over thousands of watched rooms, in bounded queries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date, timedelta
from typing import Any

import pytest

from appointease_realtime.protocol import Room
from appointease_realtime.store import Store, StoreTimeout, StoreUnavailable
from appointease_realtime.store.sql import SqlStore, Tx

SQL = Callable[..., Awaitable[list[tuple[Any, ...]]]]
FIRST = date(2031, 1, 1)
DAYS = [(FIRST + timedelta(days=n)).isoformat() for n in range(1500)]


class Spy:
    """Tx that records the size of every statement it passes on."""

    def __init__(self, tx: Tx, seen: list[tuple[int, int]]) -> None:
        self.tx = tx
        self.seen = seen
        self.write_sent = False
        self.discard = False

    async def all(self, sql: str, args: Any = ()) -> list[tuple[Any, ...]]:
        self.seen.append((len(sql), len(args)))
        return await self.tx.all(sql, args)

    async def one(self, sql: str, args: Any = ()) -> tuple[Any, ...] | None:
        self.seen.append((len(sql), len(args)))
        return await self.tx.one(sql, args)

    async def run(self, sql: str, args: Any = ()) -> int:
        self.seen.append((len(sql), len(args)))
        return await self.tx.run(sql, args)


def spy_on(store: Store, seen: list[tuple[int, int]]) -> None:
    """Record (characters, arguments) of every statement ``store`` sends from now on."""
    assert isinstance(store, SqlStore)
    transaction = store.transaction

    @asynccontextmanager
    async def spied(write: bool) -> AsyncIterator[Tx]:
        async with transaction(write) as tx:
            yield Spy(tx, seen)

    store.transaction = spied  # type: ignore[method-assign]


async def insert_rows(sql: SQL, rows: list[tuple[str, str, int, str]]) -> None:
    """Appointments (email, appointment_date, employee_id, status), a few hundred at a time."""
    for start in range(0, len(rows), 300):
        chunk = rows[start : start + 300]
        await sql(
            "INSERT INTO wp_appointments (name, email, appointment_date, employee_id, status)"
            " VALUES " + ", ".join(["('x', %s, %s, %s, %s)"] * len(chunk)),
            *(value for row in chunk for value in row),
        )


async def test_booked_times_of_2000_rooms_over_1500_days(store: Store, sql: SQL) -> None:
    rooms = [Room(day, 1) for day in DAYS] + [Room(day, 2) for day in DAYS[::3]]
    assert len(rooms) == 2000
    rows: list[tuple[str, str, int, str]] = []
    expected: dict[Room, set[str]] = {room: set() for room in rooms}
    for n, day in enumerate(DAYS):
        if n % 7 == 0:
            for time in ("09:00", "14:30"):
                rows.append((f"a{n}{time}@x.io", f"{day} {time}:00", 1, "confirmed"))
                expected[Room(day, 1)].add(time)
        if n % 6 == 0:  # employee 2, watched every third day: so on every sixth
            rows.append((f"b{n}@x.io", f"{day} 00:00:00", 2, "completed"))
            expected[Room(day, 2)].add("00:00")
        if n % 10 == 0:  # never counted: cancelled, or an employee nobody watches
            rows.append((f"c{n}@x.io", f"{day} 11:00:00", 1, "cancelled"))
            rows.append((f"d{n}@x.io", f"{day} 12:00:00", 3, "confirmed"))
        if n % 6 == 1:  # employee 2 on a day only employee 1 is watched
            rows.append((f"e{n}@x.io", f"{day} 08:00:00", 2, "confirmed"))
    after = (FIRST + timedelta(days=1500)).isoformat()
    rows.append(("late@x.io", f"{after} 00:00:00", 1, "confirmed"))  # the day after the last
    before = (FIRST - timedelta(days=1)).isoformat()
    rows.append(("early@x.io", f"{before} 23:59:59", 1, "confirmed"))
    await insert_rows(sql, rows)

    seen: list[tuple[int, int]] = []
    spy_on(store, seen)
    assert await store.booked_times(rooms) == expected
    assert len(seen) >= 15  # in batches...
    assert max(arguments for _, arguments in seen) <= 900  # ...each of bounded size
    assert max(characters for characters, _ in seen) < 20_000


async def test_many_employees_on_one_day_are_split_too(store: Store, sql: SQL) -> None:
    rooms = [Room(DAYS[0], employee) for employee in range(1, 3001)]
    await insert_rows(
        sql, [(f"{e}@x.io", f"{DAYS[0]} 10:00:00", e, "confirmed") for e in (1, 1500, 3000, 3001)]
    )
    seen: list[tuple[int, int]] = []
    spy_on(store, seen)
    times = await store.booked_times(rooms)
    assert {room.employee_id for room, booked in times.items() if booked} == {1, 1500, 3000}
    assert len(times) == 3000 and max(arguments for _, arguments in seen) <= 900


async def test_booked_times_of_no_rooms_asks_nothing(store: Store) -> None:
    seen: list[tuple[int, int]] = []
    spy_on(store, seen)
    assert await store.booked_times([]) == {}
    assert seen == []


async def test_a_failing_batch_is_an_error_naming_the_operation(store: Store, sql: SQL) -> None:
    await sql("DROP TABLE wp_appointments")
    with pytest.raises(StoreUnavailable, match="booked_times") as caught:
        await store.booked_times([Room(day, 1) for day in DAYS[:300]])
    assert not isinstance(caught.value, StoreTimeout)
    assert "appointments" in str(caught.value)  # and what it could not read
