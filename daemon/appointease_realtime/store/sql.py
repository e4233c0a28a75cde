"""The SQL both stores share; each dialect supplies its clock expressions and its connection.

Every query is parameterized; table names come only from the validated prefix.
"""

from __future__ import annotations

import asyncio
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from time import perf_counter
from typing import Any, Protocol, TypeVar

from ..protocol import Room, Slot
from .base import (
    HOLD_LIMIT,
    NOT_HOLDER,
    NOT_LOCKED,
    SLOT_BOOKED,
    SLOT_LOCKED,
    Appointment,
    HeldLock,
    LockOutcome,
    RoomState,
    StoreUnavailable,
)

T = TypeVar("T")
Row = tuple[Any, ...]

APPOINTMENT_COLUMNS = (
    "id",
    "strong_id",
    "name",
    "email",
    "phone",
    "appointment_date",
    "status",
    "service_id",
    "employee_id",
    "notes",
    "payment_status",
    "total_amount",
    "created_at",
    "rescheduled_at",
    "original_date",
)
REQUIRED_COLUMNS = {
    "appointments": {"id", "email", "appointment_date", "status", "employee_id", "strong_id"},
    "appointease_slot_locks": {"date", "time", "employee_id", "client_id", "expires_at"},
}
INSERTABLE_COLUMNS = frozenset(APPOINTMENT_COLUMNS) - {"id"} | {"customer_id", "idempotency_key"}
_RETRIES = 6


class Tx(Protocol):
    """A connection inside one transaction (or one autocommit read)."""

    async def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]: ...

    async def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None: ...

    async def run(self, sql: str, args: Sequence[Any] = ()) -> int: ...


def wire_time(value: Any) -> str:
    """``HH:MM`` from a TIME column (timedelta from MySQL, text from SQLite)."""
    if isinstance(value, timedelta):
        minutes = int(value.total_seconds()) // 60
        return f"{minutes // 60:02d}:{minutes % 60:02d}"
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return str(value)[:5]


def wire_value(value: Any) -> Any:
    """A column value as JSON can carry it."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def day_bounds(day: str) -> tuple[str, str]:
    """The half-open datetime range ``[day 00:00, next day 00:00)`` as text."""
    start = date.fromisoformat(day)
    return f"{start} 00:00:00", f"{start + timedelta(days=1)} 00:00:00"


class SqlStore(ABC):
    """The lock rules and queries, written once for MySQL/MariaDB and SQLite."""

    kind: str
    now_sql: str  # the database's clock
    for_update: str  # row-lock suffix of a locking read ("" where the database has none)

    def __init__(self, prefix: str) -> None:
        self.observe: Callable[[str, float], None] | None = None  # (operation, seconds)
        self.prefix = prefix
        self.locks = f"{prefix}appointease_slot_locks"
        self.appointments = f"{prefix}appointments"
        self.not_cancelled = "(status IS NULL OR status <> 'cancelled')"

    # ---- what a dialect provides ----

    @abstractmethod
    def schema_ddl(self) -> dict[str, list[str]]:
        """Per table, the statements that create it (and its indexes) where missing."""

    @abstractmethod
    async def describe_schema(self) -> tuple[dict[str, set[str]], list[list[str]]]:
        """Columns per existing table, and the column lists of the locks table's unique keys."""

    @abstractmethod
    def transaction(self, write: bool) -> AbstractAsyncContextManager[Tx]:
        """A connection in a transaction (``write``) or in autocommit (read)."""

    @abstractmethod
    def plus_seconds_sql(self) -> str:
        """SQL for the database's now plus one bound number of seconds."""

    @abstractmethod
    def seconds_left_sql(self, column: str) -> str:
        """SQL for whole seconds from the database's now until ``column``."""

    @abstractmethod
    def upsert_lock_sql(self) -> str:
        """Insert a lock, or refresh/take over the row only if it is ours or expired."""

    @abstractmethod
    def is_retryable(self, exc: BaseException) -> bool:
        """A deadlock or lock-wait timeout: the transaction may simply be run again."""

    @abstractmethod
    def is_database_error(self, exc: BaseException) -> bool:
        """An error of the driver or the server (mapped to StoreUnavailable)."""

    # ---- the retry and error boundary ----

    async def run(self, work: Callable[[Tx], Awaitable[T]], write: bool = False) -> T:
        """Run ``work`` in a transaction; retry deadlocks; map failures to StoreUnavailable."""
        began = perf_counter()
        for attempt in range(_RETRIES):
            try:
                async with self.transaction(write) as tx:
                    result = await work(tx)
                if (
                    self.observe is not None
                ):  # e.g. "acquire_lock" from "...acquire_lock.<locals>.work"
                    self.observe(work.__qualname__.split(".")[-3], perf_counter() - began)
                return result
            except Exception as exc:
                if self.is_retryable(exc) and attempt < _RETRIES - 1:
                    await asyncio.sleep(random.uniform(0.001, 0.01) * (attempt + 1))
                    continue
                if self.is_database_error(exc) or isinstance(exc, OSError):
                    raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""

        async def work(tx: Tx) -> None:
            await tx.one("SELECT 1")

        await self.run(work)

    async def schema_problems(self) -> list[str]:
        """Missing tables, columns or the unique key on (date, time, employee_id)."""
        columns, unique_keys = await self.describe_schema()
        problems: list[str] = []
        for table, suffix in (
            (self.appointments, "appointments"),
            (self.locks, "appointease_slot_locks"),
        ):
            found = columns.get(table, set())
            if not found:
                problems.append(f"table {table} is missing")
                continue
            missing = REQUIRED_COLUMNS[suffix] - found
            if missing:
                problems.append(f"table {table} lacks column(s) {', '.join(sorted(missing))}")
        if columns.get(self.locks) and ["date", "time", "employee_id"] not in unique_keys:
            problems.append(
                f"table {self.locks} has no UNIQUE key on (date, time, employee_id):"
                " two clients could hold one slot"
            )
        return problems

    async def create_schema(self) -> list[str]:
        """Create each missing table exactly as booking-block.md has it; never alter one."""
        existing, _ = await self.describe_schema()
        missing = [t for t in (self.appointments, self.locks) if t not in existing]
        if not missing:
            return []
        ddl = self.schema_ddl()

        async def work(tx: Tx) -> None:
            for table in missing:
                for statement in ddl[table]:
                    await tx.run(statement)

        await self.run(work)
        return missing

    # ---- locks ----

    async def acquire_lock(
        self, slot: Slot, client_id: str, ttl_seconds: int, hold_limit: int
    ) -> LockOutcome:
        """Take, refresh or take over the lock on ``slot`` for ``client_id``.

        The single upsert statement decides, atomically in the database, who holds the slot
        (an expired row is taken over inside it); the read before it refuses booked slots and
        clients at their hold limit, the read after it says who won. Three round trips, no
        explicit transaction: nothing between them can hand our fresh row to someone else.
        """
        key = (slot.date, f"{slot.time}:00", slot.employee_id)
        locks = self.locks

        async def work(tx: Tx) -> LockOutcome:
            checks = await tx.one(
                f"SELECT EXISTS (SELECT 1 FROM {self.appointments}"  # noqa: S608
                f" WHERE appointment_date = %s AND employee_id = %s AND {self.not_cancelled}),"
                f" (SELECT COUNT(*) FROM {locks} WHERE client_id = %s"
                f" AND expires_at > {self.now_sql}"
                " AND NOT (date = %s AND time = %s AND employee_id = %s))",
                (f"{slot.date} {slot.time}:00", slot.employee_id, client_id, *key),
            )
            booked, held = checks if checks else (0, 0)
            if booked:
                return LockOutcome(False, 0, SLOT_BOOKED)
            if held >= hold_limit:
                return LockOutcome(False, 0, HOLD_LIMIT)
            await tx.run(self.upsert_lock_sql(), (*key, client_id, ttl_seconds))
            row = await tx.one(
                f"SELECT client_id, {self.seconds_left_sql('expires_at')} FROM {locks}"  # noqa: S608
                " WHERE date = %s AND time = %s AND employee_id = %s",
                key,
            )
            if row is not None and row[0] == client_id:
                return LockOutcome(True, int(row[1]))
            return LockOutcome(False, max(int(row[1]), 0) if row else 0, SLOT_LOCKED)

        return await self.run(work)

    async def release_lock(self, slot: Slot, client_id: str) -> str | None:
        """Delete ``client_id``'s lock on ``slot``; None when released, else the reason."""
        key = (slot.date, f"{slot.time}:00", slot.employee_id)

        async def work(tx: Tx) -> str | None:
            deleted = await tx.run(
                f"DELETE FROM {self.locks} WHERE date = %s AND time = %s"  # noqa: S608
                " AND employee_id = %s AND client_id = %s",
                (*key, client_id),
            )
            if deleted:
                return None
            live = await tx.one(
                f"SELECT 1 FROM {self.locks} WHERE date = %s AND time = %s"  # noqa: S608
                f" AND employee_id = %s AND expires_at > {self.now_sql}",
                key,
            )
            return NOT_HOLDER if live else NOT_LOCKED

        return await self.run(work, write=True)

    async def release_client_locks(self, client_id: str) -> list[Slot]:
        """Delete every lock ``client_id`` holds; return the freed slots."""

        async def work(tx: Tx) -> list[Slot]:
            rows = await tx.all(
                f"SELECT date, time, employee_id FROM {self.locks}"  # noqa: S608
                f" WHERE client_id = %s{self.for_update}",
                (client_id,),
            )
            if rows:
                await tx.run(f"DELETE FROM {self.locks} WHERE client_id = %s", (client_id,))  # noqa: S608
            return [Slot(str(wire_value(d)), wire_time(t), int(e)) for d, t, e in rows]

        return await self.run(work, write=True)

    async def delete_lock(self, slot: Slot) -> str | None:
        """Delete whatever lock is on ``slot``; return the former holder's client id."""
        key = (slot.date, f"{slot.time}:00", slot.employee_id)
        where = "WHERE date = %s AND time = %s AND employee_id = %s"

        async def work(tx: Tx) -> str | None:
            row = await tx.one(
                f"SELECT client_id FROM {self.locks} {where}{self.for_update}",  # noqa: S608
                key,
            )
            if row is None:
                return None
            await tx.run(f"DELETE FROM {self.locks} {where}", key)  # noqa: S608
            return str(row[0])

        return await self.run(work, write=True)

    async def sweep_expired_locks(self) -> list[HeldLock]:
        """Delete expired lock rows (whoever wrote them); return what was deleted."""

        async def work(tx: Tx) -> list[HeldLock]:
            rows = await tx.all(
                f"SELECT id, date, time, employee_id, client_id FROM {self.locks}"  # noqa: S608
                f" WHERE expires_at <= {self.now_sql}{self.for_update}"
            )
            if not rows:
                return []
            marks = ", ".join(["%s"] * len(rows))
            await tx.run(
                f"DELETE FROM {self.locks} WHERE id IN ({marks})"  # noqa: S608
                f" AND expires_at <= {self.now_sql}",
                [row[0] for row in rows],
            )
            return [
                HeldLock(Slot(str(wire_value(d)), wire_time(t), int(e)), str(c), 0)
                for _, d, t, e, c in rows
            ]

        return await self.run(work, write=True)

    async def live_locks(self, limit: int = 1000) -> list[HeldLock]:
        """Live locks, soonest expiry first."""

        async def work(tx: Tx) -> list[HeldLock]:
            rows = await tx.all(
                f"SELECT date, time, employee_id, client_id,"  # noqa: S608
                f" {self.seconds_left_sql('expires_at')} FROM {self.locks}"
                f" WHERE expires_at > {self.now_sql} ORDER BY expires_at LIMIT %s",
                (limit,),
            )
            return [
                HeldLock(Slot(str(wire_value(d)), wire_time(t), int(e)), str(c), int(s))
                for d, t, e, c, s in rows
            ]

        return await self.run(work)

    # ---- rooms and appointments ----

    async def room_state(self, room: Room) -> RoomState:
        """Booked and held times of one room."""
        start, end = day_bounds(room.date)

        async def work(tx: Tx) -> RoomState:
            booked = await tx.all(
                f"SELECT appointment_date FROM {self.appointments}"  # noqa: S608
                " WHERE appointment_date >= %s AND appointment_date < %s"
                f" AND employee_id = %s AND {self.not_cancelled}",
                (start, end, room.employee_id),
            )
            locks = await tx.all(
                f"SELECT time, client_id, {self.seconds_left_sql('expires_at')}"  # noqa: S608
                f" FROM {self.locks} WHERE date = %s AND employee_id = %s"
                f" AND expires_at > {self.now_sql} ORDER BY time",
                (room.date, room.employee_id),
            )
            return RoomState(
                booked=sorted({wire_value(b)[11:16] for (b,) in booked}),
                locks=[
                    HeldLock(Slot(room.date, wire_time(t), room.employee_id), str(c), int(s))
                    for t, c, s in locks
                ],
            )

        return await self.run(work)

    async def booked_times(self, rooms: Collection[Room]) -> dict[Room, set[str]]:
        """Booked times of many rooms in one query."""
        result: dict[Room, set[str]] = {room: set() for room in rooms}
        if not rooms:
            return result
        by_day: dict[str, list[int]] = {}
        for room in rooms:
            by_day.setdefault(room.date, []).append(room.employee_id)
        clauses: list[str] = []
        args: list[Any] = []
        for day, employees in by_day.items():  # one index range per watched day
            marks = ", ".join(["%s"] * len(employees))
            clauses.append(
                f"(appointment_date >= %s AND appointment_date < %s AND employee_id IN ({marks}))"
            )
            args.extend((*day_bounds(day), *employees))

        async def work(tx: Tx) -> list[Row]:
            return await tx.all(
                f"SELECT employee_id, appointment_date FROM {self.appointments}"  # noqa: S608
                f" WHERE {self.not_cancelled} AND ({' OR '.join(clauses)})",
                args,
            )

        for employee_id, when in await self.run(work):
            text = wire_value(when)
            room = Room(text[:10], int(employee_id))
            if room in result:
                result[room].add(text[11:16])
        return result

    async def appointments_for(self, email: str) -> list[Appointment]:
        """Non-cancelled appointments of one customer, by date (at most 500)."""

        async def work(tx: Tx) -> list[Row]:
            return await tx.all(
                f"SELECT {', '.join(APPOINTMENT_COLUMNS)} FROM {self.appointments}"  # noqa: S608
                f" WHERE email = %s AND {self.not_cancelled}"
                " ORDER BY appointment_date, id LIMIT 500",
                (email,),
            )

        return [self._appointment(row) for row in await self.run(work)]

    async def appointments_matching(
        self, employee_id: int | None, date_from: str | None, date_to: str | None
    ) -> list[Appointment]:
        """Non-cancelled appointments of everyone (staff), optionally narrowed (at most 500)."""
        where: list[str] = [self.not_cancelled]
        args: list[Any] = []
        if employee_id is not None:
            where.append("employee_id = %s")
            args.append(employee_id)
        if date_from is not None:
            where.append("appointment_date >= %s")
            args.append(f"{date_from} 00:00:00")
        if date_to is not None:
            where.append("appointment_date < %s")
            args.append(day_bounds(date_to)[1])

        async def work(tx: Tx) -> list[Row]:
            return await tx.all(
                f"SELECT {', '.join(APPOINTMENT_COLUMNS)} FROM {self.appointments}"  # noqa: S608
                f" WHERE {' AND '.join(where)} ORDER BY appointment_date, id LIMIT 500",
                args,
            )

        return [self._appointment(row) for row in await self.run(work)]

    async def appointment(self, ref: str | int) -> Appointment | None:
        """One appointment by numeric id or ``strong_id``."""
        column = "id" if isinstance(ref, int) or str(ref).isdigit() else "strong_id"

        async def work(tx: Tx) -> Row | None:
            return await tx.one(
                f"SELECT {', '.join(APPOINTMENT_COLUMNS)} FROM {self.appointments}"  # noqa: S608
                f" WHERE {column} = %s",
                (int(ref) if column == "id" else str(ref),),
            )

        row = await self.run(work)
        return None if row is None else self._appointment(row)

    async def insert_appointment(self, fields: dict[str, Any]) -> int:
        """Insert one appointment row (demo data and QA); return its id."""
        unknown = set(fields) - INSERTABLE_COLUMNS
        if unknown:
            raise ValueError(f"unknown appointment columns: {sorted(unknown)}")
        names = list(fields)

        async def work(tx: Tx) -> int:
            await tx.run(
                f"INSERT INTO {self.appointments} ({', '.join(names)})"  # noqa: S608
                f" VALUES ({', '.join(['%s'] * len(names))})",
                [fields[n] for n in names],
            )
            row = await tx.one(self.last_insert_id_sql())
            return int(row[0]) if row else 0

        return await self.run(work, write=True)

    async def update_appointment(self, appointment_id: int, fields: dict[str, Any]) -> bool:
        """Change columns of one appointment (QA); True when the row exists."""
        unknown = set(fields) - INSERTABLE_COLUMNS
        if unknown or not fields:
            raise ValueError(f"unknown or no appointment columns: {sorted(unknown)}")
        names = list(fields)

        async def work(tx: Tx) -> int:
            return await tx.run(
                f"UPDATE {self.appointments} SET {', '.join(f'{n} = %s' for n in names)}"  # noqa: S608
                " WHERE id = %s",
                [*(fields[n] for n in names), appointment_id],
            )

        return await self.run(work, write=True) > 0

    @abstractmethod
    def last_insert_id_sql(self) -> str:
        """SQL that returns the id of the row this connection inserted last."""

    @staticmethod
    def _appointment(row: Row) -> Appointment:
        return {
            name: wire_value(value) for name, value in zip(APPOINTMENT_COLUMNS, row, strict=True)
        }
