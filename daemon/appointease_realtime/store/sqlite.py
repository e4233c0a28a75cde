"""SQLite store (aiosqlite): the embedded default, same two tables, same rules.

One connection, one coroutine at a time; writes run in ``BEGIN IMMEDIATE`` so the lock
rules are as exclusive as on MySQL. The clock is SQLite's ``datetime('now')`` (UTC).

Every call is time-boxed like MySQL's. aiosqlite runs calls in one thread that a timeout
cannot stop (``interrupt()`` ends a running statement, not a wait for another process's
lock, so ``busy_timeout`` ends just after the timeout); the next transaction first waits
for that thread and rolls back whatever the abandoned call left open.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from .base import StoreUnavailable
from .sql import Observe, Result, Row, SqlStore, Statement, Tx

T = TypeVar("T")

APPOINTMENTS_DDL = """CREATE TABLE IF NOT EXISTS {prefix}appointments (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  email TEXT NOT NULL COLLATE NOCASE,
  phone TEXT,
  appointment_date TEXT NOT NULL,
  status TEXT DEFAULT 'confirmed',
  service_id INTEGER,
  employee_id INTEGER,
  customer_id INTEGER,
  notes TEXT,
  payment_status TEXT DEFAULT 'pending',
  total_amount NUMERIC,
  strong_id TEXT UNIQUE,
  idempotency_key TEXT UNIQUE,
  created_at TEXT DEFAULT CURRENT_TIMESTAMP,
  rescheduled_at TEXT NULL,
  original_date TEXT NULL
)"""

LOCKS_DDL = """CREATE TABLE IF NOT EXISTS {prefix}appointease_slot_locks (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  date TEXT NOT NULL,
  time TEXT NOT NULL,
  employee_id INTEGER NOT NULL,
  client_id TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  created_at TEXT DEFAULT CURRENT_TIMESTAMP,
  CONSTRAINT {prefix}unique_slot UNIQUE (date, time, employee_id)
)"""

APPOINTMENT_INDEXES = (
    "CREATE INDEX IF NOT EXISTS {prefix}idx_appointment_slot"
    " ON {prefix}appointments (appointment_date, employee_id)",
    "CREATE INDEX IF NOT EXISTS {prefix}idx_email_date"
    " ON {prefix}appointments (email, appointment_date)",
)
LOCK_INDEXES = (
    "CREATE INDEX IF NOT EXISTS {prefix}idx_expires ON {prefix}appointease_slot_locks (expires_at)",
    "CREATE INDEX IF NOT EXISTS {prefix}idx_client ON {prefix}appointease_slot_locks (client_id)",
)


def _sqlite(sql: str) -> str:
    return sql.replace("%s", "?")


class _Connection:
    """Tx over the single aiosqlite connection."""

    def __init__(self, store: SQLiteStore, in_transaction: bool) -> None:
        self.store = store
        self.conn = store.conn
        self.in_transaction = in_transaction
        self.write_sent = False
        self.discard = False

    async def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        rows = await self.store.call(self.conn.execute_fetchall(_sqlite(sql), tuple(args)))
        return [tuple(row) for row in rows]

    async def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        rows = await self.all(sql, args)
        return rows[0] if rows else None

    async def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        if not self.in_transaction:
            self.write_sent = True  # autocommit: once handed over, it may be applied
        cur = await self.store.call(self.conn.execute(_sqlite(sql), tuple(args)))
        count = int(cur.rowcount)
        await self.store.call(cur.close())
        return count

    async def batch(self, statements: Sequence[Statement], write: bool = False) -> list[Result]:
        """One statement after the other (a local file: no round trips to save)."""
        results: list[Result] = []
        for sql, args in statements:
            if write and not self.in_transaction:
                self.write_sent = True
            cur = await self.store.call(self.conn.execute(_sqlite(sql), tuple(args)))
            rows = [tuple(row) for row in await self.store.call(cur.fetchall())]
            results.append(Result(rows, int(cur.rowcount)))
            await self.store.call(cur.close())
        return results


class SQLiteStore(SqlStore):
    """The two tables in a local SQLite file."""

    kind = "sqlite"
    now_sql = "datetime('now')"
    for_update = ""
    lock_in_transaction = True  # BEGIN IMMEDIATE excludes every other writer, in any process

    def __init__(
        self,
        conn: aiosqlite.Connection,
        prefix: str,
        *,
        db_timeout: float = 5.0,
        observe: Observe | None = None,
    ) -> None:
        super().__init__(prefix, db_timeout=db_timeout, observe=observe)
        self.conn = conn
        self.guard = asyncio.Lock()
        self.unsettled = False  # a call timed out or was cancelled: settle before the next

    @classmethod
    async def open(
        cls,
        path: str,
        prefix: str,
        create: bool = True,
        *,
        db_timeout: float = 5.0,
        observe: Observe | None = None,
    ) -> SQLiteStore:
        """Open (and by default create the tables of) the SQLite file at ``path``; a file that
        cannot be opened, or is no SQLite database, is StoreUnavailable saying so."""
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = await aiosqlite.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open SQLite file {path}: {exc}") from None
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            # SQLite's own wait for another process's lock ends just after our timeout
            await conn.execute(f"PRAGMA busy_timeout={int(db_timeout * 1000) + 100}")
        except sqlite3.Error as exc:
            await conn.close()
            raise StoreUnavailable(f"cannot open SQLite file {path}: {exc}") from None
        store = cls(conn, prefix, db_timeout=db_timeout, observe=observe)
        if create:
            await store.create_schema()
        return store

    async def call(self, awaitable: Awaitable[T]) -> T:
        """Await one call on the connection, at most ``timeout`` seconds."""
        try:
            async with asyncio.timeout(self.timeout):
                return await awaitable
        except (TimeoutError, asyncio.CancelledError):
            self.unsettled = True  # the call may still be running in aiosqlite's thread
            raise

    @asynccontextmanager
    async def transaction(self, write: bool) -> AsyncIterator[Tx]:
        """The connection, alone; writes inside BEGIN IMMEDIATE ... COMMIT."""
        async with self.guard:
            if self.unsettled:
                await self._settle()
            tx = _Connection(self, in_transaction=write)
            if not write:
                yield tx
                return
            await self.call(self.conn.execute("BEGIN IMMEDIATE"))
            try:
                yield tx
            except BaseException:
                if not self.unsettled:
                    try:
                        await self.call(self.conn.execute("ROLLBACK"))
                    except Exception:
                        self.unsettled = True
                raise
            tx.write_sent = True
            await self.call(self.conn.execute("COMMIT"))

    async def _settle(self) -> None:
        """Wait for the call a timeout abandoned, then roll back what it left open."""
        await self.conn.interrupt()  # ends a statement still running; not a busy wait
        await self.call(self.conn.execute_fetchall("SELECT 1"))  # queued behind it
        if self.conn.in_transaction:
            await self.call(self.conn.execute("ROLLBACK"))
        self.unsettled = False

    def holder_lock_sql(self, key: str) -> None:
        """Nothing more to hold: acquire_lock runs in BEGIN IMMEDIATE (lock_in_transaction)."""
        return None

    def remember_sql(self, values: Sequence[Statement]) -> tuple[list[Statement], list[Statement]]:
        """Nothing to run first: inside BEGIN IMMEDIATE nobody else writes, so each value is
        its expression again."""
        return [], list(values)

    def plus_seconds_sql(self) -> str:
        """``datetime('now', '+n seconds')``."""
        return "datetime('now', '+' || %s || ' seconds')"

    def add_seconds_sql(self, expression: str) -> str:
        """``datetime(expression, '+n seconds')``."""
        return f"datetime({expression}, '+' || %s || ' seconds')"

    def seconds_left_sql(self, column: str) -> str:
        """Whole seconds from now until ``column``."""
        return f"CAST(ROUND((julianday({column}) - julianday('now')) * 86400) AS INTEGER)"

    def upsert_lock_sql(self, condition: str) -> str:
        """SQLite evaluates every SET expression on the old row (``{locks}.column``)."""
        locks = self.locks
        expired = f"{locks}.expires_at <= datetime('now')"
        created = f"COALESCE({locks}.created_at, datetime('now'))"
        return (
            f"INSERT INTO {locks}"
            " (date, time, employee_id, client_id, expires_at, created_at)"
            f" SELECT %s, %s, %s, %s, {self.plus_seconds_sql()}, datetime('now')"
            f" WHERE {condition}"  # a WHERE also keeps ON CONFLICT from reading as a join
            " ON CONFLICT (date, time, employee_id) DO UPDATE SET"
            f" client_id = CASE WHEN {expired} OR {locks}.client_id = excluded.client_id"
            f" THEN excluded.client_id ELSE {locks}.client_id END,"
            f" created_at = CASE WHEN {expired} THEN datetime('now')"
            f" ELSE {locks}.created_at END,"
            f" expires_at = CASE WHEN {expired} THEN excluded.expires_at"
            f" WHEN {locks}.client_id = excluded.client_id"
            f" AND {self.add_seconds_sql(created)} > datetime('now')"
            f" THEN min({self.plus_seconds_sql()}, {self.add_seconds_sql(created)})"
            f" ELSE {locks}.expires_at END"
        )

    def last_insert_id_sql(self) -> str:
        """``last_insert_rowid()``."""
        return "SELECT last_insert_rowid()"

    def is_retryable(self, exc: BaseException) -> bool:
        """Another process holds the write lock past busy_timeout."""
        return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)

    def is_database_error(self, exc: BaseException) -> bool:
        """Any sqlite3 error."""
        return isinstance(exc, sqlite3.Error)

    def schema_ddl(self) -> dict[str, list[str]]:
        """Both tables and their indexes."""
        return {
            self.appointments: [
                ddl.format(prefix=self.prefix) for ddl in (APPOINTMENTS_DDL, *APPOINTMENT_INDEXES)
            ],
            self.locks: [ddl.format(prefix=self.prefix) for ddl in (LOCKS_DDL, *LOCK_INDEXES)],
        }

    async def describe_schema(self) -> tuple[dict[str, set[str]], list[list[str]]]:
        """Columns of both tables and the unique keys of the locks table."""

        async def work(tx: Tx) -> tuple[dict[str, set[str]], list[list[str]]]:
            columns: dict[str, set[str]] = {}
            for table in (self.appointments, self.locks):
                rows = await tx.all("SELECT name FROM pragma_table_info(%s)", (table,))
                if rows:
                    columns[table] = {str(name).lower() for (name,) in rows}
            keys = []
            for name, unique in await tx.all(
                'SELECT name, "unique" FROM pragma_index_list(%s)', (self.locks,)
            ):
                if unique:
                    cols = await tx.all(
                        "SELECT name FROM pragma_index_info(%s) ORDER BY seqno", (name,)
                    )
                    keys.append([str(c).lower() for (c,) in cols])
            return columns, keys

        return await self.run("describe_schema", work)

    async def close(self) -> None:
        """Close the connection."""
        await self.conn.close()
