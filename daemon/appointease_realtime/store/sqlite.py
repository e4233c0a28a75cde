"""SQLite store (aiosqlite): the embedded default, same two tables, same rules.

One connection, one coroutine at a time; writes run in ``BEGIN IMMEDIATE`` so the lock
rules are as exclusive as on MySQL. The clock is SQLite's ``datetime('now')`` (UTC).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from .sql import Row, SqlStore, Tx

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

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        async with self.conn.execute(_sqlite(sql), tuple(args)) as cur:
            return [tuple(row) for row in await cur.fetchall()]

    async def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        async with self.conn.execute(_sqlite(sql), tuple(args)) as cur:
            row = await cur.fetchone()
            return None if row is None else tuple(row)

    async def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        async with self.conn.execute(_sqlite(sql), tuple(args)) as cur:
            return int(cur.rowcount)


class SQLiteStore(SqlStore):
    """The two tables in a local SQLite file."""

    kind = "sqlite"
    now_sql = "datetime('now')"
    for_update = ""

    def __init__(self, conn: aiosqlite.Connection, prefix: str) -> None:
        super().__init__(prefix)
        self.conn = conn
        self.guard = asyncio.Lock()

    @classmethod
    async def open(cls, path: str, prefix: str, create: bool = True) -> SQLiteStore:
        """Open (and by default create the tables of) the SQLite file at ``path``."""
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA busy_timeout=5000")
        store = cls(conn, prefix)
        if create:
            await store.create_schema()
        return store

    @asynccontextmanager
    async def transaction(self, write: bool) -> AsyncIterator[Tx]:
        """The connection, alone; writes inside BEGIN IMMEDIATE ... COMMIT."""
        async with self.guard:
            if not write:
                yield _Connection(self.conn)
                return
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield _Connection(self.conn)
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            await self.conn.execute("COMMIT")

    def plus_seconds_sql(self) -> str:
        """``datetime('now', '+n seconds')``."""
        return "datetime('now', '+' || %s || ' seconds')"

    def seconds_left_sql(self, column: str) -> str:
        """Whole seconds from now until ``column``."""
        return f"CAST(ROUND((julianday({column}) - julianday('now')) * 86400) AS INTEGER)"

    def upsert_lock_sql(self) -> str:
        """SQLite evaluates every SET expression on the old row, so both test the same thing."""
        ours_or_expired = (
            f"{self.locks}.expires_at <= datetime('now')"
            f" OR {self.locks}.client_id = excluded.client_id"
        )
        return (
            f"INSERT INTO {self.locks} (date, time, employee_id, client_id, expires_at)"  # noqa: S608
            f" VALUES (%s, %s, %s, %s, {self.plus_seconds_sql()})"
            " ON CONFLICT (date, time, employee_id) DO UPDATE SET"
            f" client_id = CASE WHEN {ours_or_expired}"
            f" THEN excluded.client_id ELSE {self.locks}.client_id END,"
            f" expires_at = CASE WHEN {ours_or_expired}"
            f" THEN excluded.expires_at ELSE {self.locks}.expires_at END"
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

        return await self.run(work)

    async def close(self) -> None:
        """Close the connection."""
        await self.conn.close()
