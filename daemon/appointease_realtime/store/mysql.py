"""MySQL/MariaDB store (aiomysql pool): what production uses.

The session ``time_zone`` is never set, as WordPress's ``$wpdb`` never sets it: every expiry is
computed and compared with the database's ``NOW()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiomysql
import pymysql

from ..config import Settings
from .sql import Row, SqlStore, Tx

_RETRYABLE = {1205, 1213}  # lock wait timeout, deadlock

APPOINTMENTS_DDL = """CREATE TABLE IF NOT EXISTS {prefix}appointments (
  id mediumint(9) NOT NULL AUTO_INCREMENT,
  name varchar(100) NOT NULL,
  email varchar(100) NOT NULL,
  phone varchar(20),
  appointment_date datetime NOT NULL,
  status varchar(20) DEFAULT 'confirmed',
  service_id mediumint(9),
  employee_id mediumint(9),
  customer_id mediumint(9),
  notes text,
  payment_status varchar(20) DEFAULT 'pending',
  total_amount decimal(10,2),
  strong_id varchar(20) UNIQUE,
  idempotency_key varchar(64) UNIQUE,
  created_at datetime DEFAULT CURRENT_TIMESTAMP,
  rescheduled_at datetime NULL,
  original_date datetime NULL,
  PRIMARY KEY (id),
  INDEX idx_appointment_slot (appointment_date, employee_id),
  INDEX idx_email_date (email, appointment_date)
) DEFAULT CHARSET=utf8mb4"""

LOCKS_DDL = """CREATE TABLE IF NOT EXISTS {prefix}appointease_slot_locks (
  id mediumint(9) NOT NULL AUTO_INCREMENT,
  date DATE NOT NULL,
  time TIME NOT NULL,
  employee_id mediumint(9) NOT NULL,
  client_id VARCHAR(255) NOT NULL,
  expires_at DATETIME NOT NULL,
  created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  UNIQUE KEY unique_slot (date, time, employee_id),
  INDEX idx_expires (expires_at),
  INDEX idx_client (client_id)
) DEFAULT CHARSET=utf8mb4"""


class _Cursor:
    """Tx over one aiomysql cursor."""

    def __init__(self, cur: aiomysql.Cursor) -> None:
        self.cur = cur

    async def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        await self.cur.execute(sql, tuple(args) or None)
        return list(await self.cur.fetchall())

    async def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        await self.cur.execute(sql, tuple(args) or None)
        row: Row | None = await self.cur.fetchone()
        return row

    async def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        count: int = await self.cur.execute(sql, tuple(args) or None)
        return count


class MySQLStore(SqlStore):
    """The plugin's tables in MySQL/MariaDB."""

    kind = "mysql"
    now_sql = "NOW()"
    for_update = " FOR UPDATE"

    def __init__(self, pool: aiomysql.Pool, prefix: str) -> None:
        super().__init__(prefix)
        self.pool = pool

    @classmethod
    async def open(cls, settings: Settings) -> MySQLStore:
        """Create the connection pool; connections open on first use."""
        options: dict[str, Any] = {
            "user": settings.db_user,
            "password": settings.db_password,
            "db": settings.db_name,
            "autocommit": True,
            "charset": "utf8mb4",
            "minsize": 0,  # connect on demand: a database that is down now may be up later
            "maxsize": settings.db_pool_size,
            "pool_recycle": 3600,
            "connect_timeout": 5,
        }
        if settings.db_socket:
            options["unix_socket"] = settings.db_socket
        else:
            options["host"] = settings.db_host
            options["port"] = settings.db_port
        pool = await aiomysql.create_pool(**options)
        return cls(pool, settings.table_prefix)

    @asynccontextmanager
    async def transaction(self, write: bool) -> AsyncIterator[Tx]:
        """A pooled connection; BEGIN/COMMIT around writes, ROLLBACK and discard on failure."""
        conn = await self.pool.acquire()
        try:
            async with conn.cursor() as cur:
                if write:
                    await conn.begin()
                try:
                    yield _Cursor(cur)
                    if write:
                        await conn.commit()
                except BaseException:
                    if write and not conn.closed:
                        try:
                            await conn.rollback()
                        except pymysql.err.Error:
                            conn.close()
                    raise
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError):
            conn.close()  # a broken connection must not go back to the pool
            raise
        finally:
            self.pool.release(conn)

    def plus_seconds_sql(self) -> str:
        """``NOW() + INTERVAL n SECOND``."""
        return "NOW() + INTERVAL %s SECOND"

    def seconds_left_sql(self, column: str) -> str:
        """Seconds from ``NOW()`` until ``column``."""
        return f"TIMESTAMPDIFF(SECOND, NOW(), {column})"

    def upsert_lock_sql(self) -> str:
        """Assignments run left to right: client_id changes only when the row is ours or expired,
        and expires_at then moves only when client_id is (now) ours."""
        return (
            f"INSERT INTO {self.locks} (date, time, employee_id, client_id, expires_at)"  # noqa: S608
            f" VALUES (%s, %s, %s, %s, {self.plus_seconds_sql()})"
            " ON DUPLICATE KEY UPDATE"
            " client_id = IF(expires_at <= NOW() OR client_id = VALUES(client_id),"
            " VALUES(client_id), client_id),"
            " expires_at = IF(client_id = VALUES(client_id), VALUES(expires_at), expires_at)"
        )

    def last_insert_id_sql(self) -> str:
        """``LAST_INSERT_ID()``."""
        return "SELECT LAST_INSERT_ID()"

    def is_retryable(self, exc: BaseException) -> bool:
        """Deadlock or lock-wait timeout."""
        return isinstance(exc, pymysql.err.OperationalError) and bool(
            exc.args and exc.args[0] in _RETRYABLE
        )

    def is_database_error(self, exc: BaseException) -> bool:
        """Any PyMySQL error."""
        return isinstance(exc, pymysql.err.Error)

    def schema_ddl(self) -> dict[str, list[str]]:
        """The two CREATE TABLE IF NOT EXISTS statements of booking-block.md."""
        return {
            self.appointments: [APPOINTMENTS_DDL.format(prefix=self.prefix)],
            self.locks: [LOCKS_DDL.format(prefix=self.prefix)],
        }

    async def describe_schema(self) -> tuple[dict[str, set[str]], list[list[str]]]:
        """Columns of both tables and the unique keys of the locks table."""

        async def work(tx: Tx) -> tuple[list[Row], list[Row]]:
            columns = await tx.all(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = DATABASE() AND table_name IN (%s, %s)",
                (self.appointments, self.locks),
            )
            keys = await tx.all(
                "SELECT index_name, column_name FROM information_schema.statistics"
                " WHERE table_schema = DATABASE() AND table_name = %s AND non_unique = 0"
                " ORDER BY index_name, seq_in_index",
                (self.locks,),
            )
            return columns, keys

        column_rows, key_rows = await self.run(work)
        columns: dict[str, set[str]] = {}
        for table, column in column_rows:
            columns.setdefault(str(table), set()).add(str(column).lower())
        keys: dict[str, list[str]] = {}
        for index, column in key_rows:
            keys.setdefault(str(index), []).append(str(column).lower())
        return columns, list(keys.values())

    async def close(self) -> None:
        """Close the pool and wait for its connections."""
        self.pool.close()
        await self.pool.wait_closed()
