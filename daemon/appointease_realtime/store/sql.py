"""The SQL both stores share; each dialect supplies its clock expressions and its connection.

Every query is parameterized; table names come only from the validated prefix.
"""

from __future__ import annotations

import asyncio
import random
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from time import perf_counter
from typing import Any, NamedTuple, Protocol, TypeVar

from ..protocol import Room, Slot
from .base import (
    ADDRESS_LIMIT,
    HOLD_LIMIT,
    HOLD_MAX,
    NOT_HOLDER,
    NOT_LOCKED,
    SLOT_BOOKED,
    SLOT_LOCKED,
    Appointment,
    HeldLock,
    LockOutcome,
    RoomState,
    StoreTimeout,
    StoreUnavailable,
)

T = TypeVar("T")
Row = tuple[Any, ...]
Statement = tuple[str, Sequence[Any]]  # SQL and its arguments

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
_NO_CAP = 10 * 365 * 86400  # max_hold_seconds when the caller sets none: ten years
# booked_times: one index range per (day, employees) clause; every query stays this small
_BATCH_CLAUSES = 100
_BATCH_PARAMS = 900  # below SQLite's oldest limit of 999 bound variables
_CLAUSE_EMPLOYEES = 200

Observe = Callable[[str, float], None]  # (operation, seconds)
Work = Callable[["Tx"], Awaitable[T]]


class Result(NamedTuple):
    """What one statement of a batch gave: its rows (a read) and its row count (rows
    changed, for a write)."""

    rows: list[Row]
    rowcount: int


class Tx(Protocol):
    """A connection inside one transaction (or in autocommit); every call is time-boxed."""

    write_sent: bool  # an autocommitted write or a COMMIT went out: its outcome may be unknown
    discard: bool  # set to close the connection afterwards instead of reusing it

    async def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        """Rows of a read."""

    async def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        """The first row of a read."""

    async def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Execute a statement that changes data; return the affected row count."""

    async def batch(self, statements: Sequence[Statement], write: bool = False) -> list[Result]:
        """Run ``statements`` in order, in one round trip where the database allows it
        (MySQL: one multi-statement query); ``write`` when any of them changes data. Stops at
        the first that fails (its error is raised)."""


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


def like_escape(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern that uses ``ESCAPE '!'``."""
    return text.replace("!", "!!").replace("%", "!%").replace("_", "!_")


def booked_batches(rooms: Iterable[Room]) -> list[tuple[str, list[Any]]]:
    """The WHERE clause and arguments of each booked_times query: days in order, one index
    range per day (split when a day has many employees), at most ``_BATCH_CLAUSES`` ranges
    and about ``_BATCH_PARAMS`` arguments per query, so no query grows with the watched days."""
    by_day: dict[str, set[int]] = {}
    for room in rooms:
        by_day.setdefault(room.date, set()).add(room.employee_id)
    clauses: list[tuple[str, list[Any]]] = []
    for day in sorted(by_day):
        employees = sorted(by_day[day])
        for i in range(0, len(employees), _CLAUSE_EMPLOYEES):
            chunk = employees[i : i + _CLAUSE_EMPLOYEES]
            marks = ", ".join(["%s"] * len(chunk))
            clauses.append(
                (
                    "(appointment_date >= %s AND appointment_date < %s"
                    f" AND employee_id IN ({marks}))",
                    [*day_bounds(day), *chunk],
                )
            )
    batches: list[tuple[str, list[Any]]] = []
    parts: list[str] = []
    args: list[Any] = []
    for clause, clause_args in clauses:
        if parts and (len(parts) >= _BATCH_CLAUSES or len(args) + len(clause_args) > _BATCH_PARAMS):
            batches.append((" OR ".join(parts), args))
            parts, args = [], []
        parts.append(clause)
        args.extend(clause_args)
    if parts:
        batches.append((" OR ".join(parts), args))
    return batches


class SqlStore(ABC):
    """The lock rules and queries, written once for MySQL/MariaDB and SQLite."""

    kind: str
    now_sql: str  # the database's clock
    for_update: str  # row-lock suffix of a locking read ("" where the database has none)
    lock_in_transaction: bool  # acquire_lock runs in a write transaction (else in autocommit)

    def __init__(
        self, prefix: str, *, db_timeout: float = 5.0, observe: Observe | None = None
    ) -> None:
        self.observe = observe  # called with (operation, seconds) after each successful run
        self.timeout = db_timeout  # seconds any single database call may take
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
    def holder_lock_sql(self, key: str) -> tuple[Statement, str, Statement] | None:
        """Around the count and the write of one holder's locks: the statement that takes
        ``key`` exclusively (across processes), an SQL expression that is 1 once it is taken
        (read in the same query, right after it), and the statement that gives it back;
        None where ``acquire_lock``'s transaction already excludes every other writer
        (``lock_in_transaction``)."""

    @abstractmethod
    def remember_sql(self, values: Sequence[Statement]) -> tuple[list[Statement], list[Statement]]:
        """Statements that evaluate each of ``values`` (SQL expressions and their arguments)
        once, and how later statements of the same batch refer to each value.

        Where the caller holds every writer off for the whole batch (``lock_in_transaction``)
        the references may be the expressions themselves, evaluated again."""

    @abstractmethod
    def plus_seconds_sql(self) -> str:
        """SQL for the database's now plus one bound number of seconds."""

    @abstractmethod
    def add_seconds_sql(self, expression: str) -> str:
        """SQL for the datetime ``expression`` plus one bound number of seconds."""

    @abstractmethod
    def seconds_left_sql(self, column: str) -> str:
        """SQL for whole seconds from the database's now until ``column``."""

    @abstractmethod
    def upsert_lock_sql(self, condition: str) -> str:
        """Insert a lock, or take over the row if expired, or refresh it if ours (capped);
        nothing at all unless the SQL ``condition`` holds.

        Arguments: date, time, employee_id, client_id, first ttl (ttl capped by the maximum
        hold), the condition's, max hold, ttl, max hold. A new or taken-over row gets
        ``created_at`` = now; a
        refresh sets ``expires_at`` to ``LEAST(now + ttl, created_at + max hold)`` and is
        skipped once ``created_at + max hold <= now``; a live row of another holder, unchanged.
        Every assignment must read only the row's values before the statement, whatever the
        order the database evaluates them in.
        """

    @abstractmethod
    def is_retryable(self, exc: BaseException) -> bool:
        """A deadlock or lock-wait timeout: the transaction may simply be run again."""

    @abstractmethod
    def is_database_error(self, exc: BaseException) -> bool:
        """An error of the driver or the server (mapped to StoreUnavailable)."""

    # ---- the retry and error boundary ----

    async def run(self, name: str, work: Work[T], write: bool = False) -> T:
        """Run ``work`` as the operation ``name`` in a transaction (``write``) or autocommit.

        Deadlocks are retried while the timeout lasts; a call that gets no answer within
        ``timeout`` raises StoreTimeout, any other database failure StoreUnavailable, both
        naming the operation. ``observe(name, seconds)`` follows each success.
        """
        began = perf_counter()
        for attempt in range(_RETRIES):
            tx: Tx | None = None
            try:
                async with self.transaction(write) as tx:
                    result = await work(tx)
            except TimeoutError as exc:
                unknown = tx is not None and tx.write_sent
                raise StoreTimeout(
                    f"{name}: the database did not answer within {self.timeout:g} s"
                    + ("; a write may or may not have been applied" if unknown else ""),
                    outcome_unknown=unknown,
                ) from exc
            except StoreUnavailable:
                raise
            except Exception as exc:
                retry = attempt < _RETRIES - 1 and perf_counter() - began < self.timeout
                if retry and self.is_retryable(exc):
                    await asyncio.sleep(random.uniform(0.001, 0.01) * (attempt + 1))
                    continue
                if self.is_database_error(exc) or isinstance(exc, OSError):
                    raise StoreUnavailable(f"{name}: {type(exc).__name__}: {exc}") from exc
                raise
            if self.observe is not None:
                self.observe(name, perf_counter() - began)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""

        async def work(tx: Tx) -> None:
            await tx.one("SELECT 1")

        await self.run("ping", work)

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

        await self.run("create_schema", work)
        return missing

    # ---- locks ----

    async def acquire_lock(
        self,
        slot: Slot,
        client_id: str,
        ttl_seconds: int,
        hold_limit: int,
        *,
        owner: str | None = None,
        owner_limit: int = 0,
        max_hold_seconds: int | None = None,
    ) -> LockOutcome:
        """Take, refresh or take over the lock on ``slot`` for ``client_id``.

        The single upsert statement decides, atomically in the database, who holds the slot
        (an expired row is taken over inside it, a refresh is capped at ``created_at +
        max_hold_seconds``); the reads of its condition refuse booked slots and holders at
        their limits, the read after it says who won.

        The limits are counts of other rows, and two requests of one holder could both count
        before either writes. So the count and the write of one holder run under one lock
        that every process takes: on MySQL a named lock (``GET_LOCK``) keyed by the owner tag
        (or by ``client_id`` without one), held around autocommitted statements so each
        count sees every committed row and each write is committed before the lock is
        released; on SQLite the ``BEGIN IMMEDIATE`` write transaction, which already
        excludes every other writer. Different slots of different holders never wait for
        each other; racers for one slot are decided by the upsert.

        One round trip on MySQL (``Tx.batch``): the named lock, the read into session
        variables, the upsert guarded by them, the read-back of them and of the row, the
        release. A refusal writes nothing: the upsert's condition is false.
        """
        if owner is not None and (not owner or not client_id.endswith(f"~{owner}")):
            raise ValueError(f"client id {client_id!r} does not carry the owner tag {owner!r}")
        if owner is not None and owner_limit < 1:
            raise ValueError("owner_limit must be at least 1 when an owner is given")
        cap = _NO_CAP if max_hold_seconds is None else max_hold_seconds
        if ttl_seconds < 1 or cap < 1:
            raise ValueError("ttl_seconds and max_hold_seconds must be at least 1")
        key = (slot.date, f"{slot.time}:00", slot.employee_id)
        locks, now = self.locks, self.now_sql
        elsewhere = f"expires_at > {now} AND NOT (date = %s AND time = %s AND employee_id = %s)"
        holder = owner if owner is not None else client_id
        serial = self.holder_lock_sql(holder)
        take, taken, give = serial if serial is not None else (None, "1", None)
        values: list[Statement] = [
            (taken, ()),
            (
                f"EXISTS (SELECT 1 FROM {self.appointments} WHERE appointment_date = %s"  # noqa: S608
                f" AND employee_id = %s AND {self.not_cancelled})",
                (f"{slot.date} {slot.time}:00", slot.employee_id),
            ),
            (
                f"(SELECT COUNT(*) FROM {locks} WHERE client_id = %s AND {elsewhere})",  # noqa: S608
                (client_id, *key),
            ),
        ]
        if owner is not None:
            values.append(
                (
                    f"(SELECT COUNT(*) FROM {locks} WHERE client_id LIKE %s ESCAPE '!'"  # noqa: S608
                    f" AND {elsewhere})",
                    (f"%~{like_escape(owner)}", *key),
                )
            )
        remember, refs = self.remember_sql(values)
        allowed = [f"{refs[0][0]} = 1", f"NOT {refs[1][0]}", f"{refs[2][0]} < %s"]
        allowed_args: list[Any] = [*refs[0][1], *refs[1][1], *refs[2][1], hold_limit]
        if owner is not None:
            allowed.append(f"{refs[3][0]} < %s")
            allowed_args.extend((*refs[3][1], owner_limit))
        upsert: Statement = (
            self.upsert_lock_sql(" AND ".join(allowed)),
            (*key, client_id, min(ttl_seconds, cap), *allowed_args, cap, ttl_seconds, cap),
        )
        created = f"COALESCE(held.created_at, {now})"
        readback: Statement = (
            f"SELECT {', '.join(sql for sql, _ in refs)}, held.client_id,"  # noqa: S608
            f" {self.seconds_left_sql('held.expires_at')},"
            f" {self.add_seconds_sql(created)} <= {now}"
            f" FROM (SELECT 1 AS one) AS probe LEFT JOIN {locks} AS held"
            " ON held.date = %s AND held.time = %s AND held.employee_id = %s",
            (*(arg for _, args in refs for arg in args), cap, *key),
        )
        statements = [*([take] if take else []), *remember, upsert, readback]
        answer = len(statements) - 1  # the read-back's result
        statements += [give] if give else []
        checked = len(values)

        async def work(tx: Tx) -> LockOutcome:
            try:
                results = await tx.batch(statements, write=True)
            except BaseException:
                if take is not None:  # the session may still hold the named lock: close it
                    tx.discard = True
                raise
            row = results[answer].rows[0]
            if row[0] != 1:  # the holder's lock was not ours in time: nothing was written
                raise StoreUnavailable(
                    f"acquire_lock: another request of {holder!r} holds its lock"
                )
            _, booked, held, *owned = row[:checked]
            if booked:
                return LockOutcome(False, 0, SLOT_BOOKED)
            if held >= hold_limit:
                return LockOutcome(False, 0, HOLD_LIMIT)
            if owned and owned[0] >= owner_limit:
                return LockOutcome(False, 0, ADDRESS_LIMIT)
            holder_id, left, at_max = row[checked:]
            if holder_id is None:  # deleted (by an admin or a sweep) in between: nobody holds it
                return LockOutcome(False, 0, SLOT_LOCKED)
            if str(holder_id) != client_id:
                return LockOutcome(False, max(int(left), 0), SLOT_LOCKED)
            if at_max:  # our own hold, as old as it may get: not refreshed
                return LockOutcome(False, max(int(left), 0), HOLD_MAX)
            return LockOutcome(True, int(left))

        return await self.run("acquire_lock", work, write=self.lock_in_transaction)

    async def release_lock(self, slot: Slot, client_id: str) -> str | None:
        """Delete ``client_id``'s lock on ``slot``; None when released, else the reason."""
        key = (slot.date, f"{slot.time}:00", slot.employee_id)

        delete: Statement = (
            f"DELETE FROM {self.locks} WHERE date = %s AND time = %s"  # noqa: S608
            " AND employee_id = %s AND client_id = %s",
            (*key, client_id),
        )
        live: Statement = (
            f"SELECT 1 FROM {self.locks} WHERE date = %s AND time = %s"  # noqa: S608
            f" AND employee_id = %s AND expires_at > {self.now_sql}",
            key,
        )

        async def work(tx: Tx) -> str | None:
            # one autocommitted statement on MySQL; the read that says why nothing was
            # deleted only when nothing was (a race in between changes only that reason)
            if await tx.run(*delete):
                return None
            return NOT_HOLDER if await tx.one(*live) else NOT_LOCKED

        return await self.run("release_lock", work, write=self.lock_in_transaction)

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

        return await self.run("release_client_locks", work, write=True)

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

        return await self.run("delete_lock", work, write=True)

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

        return await self.run("sweep_expired_locks", work, write=True)

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

        return await self.run("live_locks", work)

    # ---- rooms and appointments ----

    async def room_state(self, room: Room) -> RoomState:
        """Booked and held times of one room."""
        start, end = day_bounds(room.date)

        statements: list[Statement] = [
            (
                f"SELECT appointment_date FROM {self.appointments}"  # noqa: S608
                " WHERE appointment_date >= %s AND appointment_date < %s"
                f" AND employee_id = %s AND {self.not_cancelled}",
                (start, end, room.employee_id),
            ),
            (
                f"SELECT time, client_id, {self.seconds_left_sql('expires_at')}"  # noqa: S608
                f" FROM {self.locks} WHERE date = %s AND employee_id = %s"
                f" AND expires_at > {self.now_sql} ORDER BY time",
                (room.date, room.employee_id),
            ),
        ]

        async def work(tx: Tx) -> RoomState:
            booked, locks = (result.rows for result in await tx.batch(statements))
            return RoomState(
                booked=sorted({wire_value(b)[11:16] for (b,) in booked}),
                locks=[
                    HeldLock(Slot(room.date, wire_time(t), room.employee_id), str(c), int(s))
                    for t, c, s in locks
                ],
            )

        return await self.run("room_state", work)

    async def booked_times(self, rooms: Collection[Room]) -> dict[Room, set[str]]:
        """Booked times of many rooms, in queries of bounded size (see booked_batches)."""
        result: dict[Room, set[str]] = {room: set() for room in rooms}
        batches = booked_batches(result)

        async def work(tx: Tx) -> list[Row]:
            rows: list[Row] = []
            for where, args in batches:
                rows.extend(
                    await tx.all(
                        f"SELECT employee_id, appointment_date FROM {self.appointments}"  # noqa: S608
                        f" WHERE {self.not_cancelled} AND ({where})",
                        args,
                    )
                )
            return rows

        if not batches:
            return result
        for employee_id, when in await self.run("booked_times", work):
            text = wire_value(when)
            room = Room(text[:10], int(employee_id))
            if room in result:
                result[room].add(text[11:16])
        return result

    async def count_foreign_appointments(self, prefix: str) -> int:
        """Appointments whose ``strong_id`` is NULL or does not start with ``prefix``
        (compared as the column's collation compares: case-insensitively on MySQL)."""

        async def work(tx: Tx) -> int:
            row = await tx.one(
                f"SELECT COUNT(*) FROM {self.appointments}"  # noqa: S608
                " WHERE strong_id IS NULL OR strong_id NOT LIKE %s ESCAPE '!'",
                (f"{like_escape(prefix)}%",),
            )
            return int(row[0]) if row else 0

        return await self.run("count_foreign_appointments", work)

    async def appointments_for(self, email: str) -> list[Appointment]:
        """Non-cancelled appointments of one customer, by date (at most 500)."""

        async def work(tx: Tx) -> list[Row]:
            return await tx.all(
                f"SELECT {', '.join(APPOINTMENT_COLUMNS)} FROM {self.appointments}"  # noqa: S608
                f" WHERE email = %s AND {self.not_cancelled}"
                " ORDER BY appointment_date, id LIMIT 500",
                (email,),
            )

        return [self._appointment(row) for row in await self.run("appointments_for", work)]

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

        rows = await self.run("appointments_matching", work)
        return [self._appointment(row) for row in rows]

    async def appointment(self, ref: str | int) -> Appointment | None:
        """One appointment by numeric id or ``strong_id``."""
        column = "id" if isinstance(ref, int) or str(ref).isdigit() else "strong_id"

        async def work(tx: Tx) -> Row | None:
            return await tx.one(
                f"SELECT {', '.join(APPOINTMENT_COLUMNS)} FROM {self.appointments}"  # noqa: S608
                f" WHERE {column} = %s",
                (int(ref) if column == "id" else str(ref),),
            )

        row = await self.run("appointment", work)
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

        return await self.run("insert_appointment", work, write=True)

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

        return await self.run("update_appointment", work, write=True) > 0

    @abstractmethod
    def last_insert_id_sql(self) -> str:
        """SQL that returns the id of the row this connection inserted last."""

    @staticmethod
    def _appointment(row: Row) -> Appointment:
        """A row as the wire carries it."""
        return {
            name: wire_value(value) for name, value in zip(APPOINTMENT_COLUMNS, row, strict=True)
        }
