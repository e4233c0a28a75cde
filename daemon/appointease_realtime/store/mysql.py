"""MySQL/MariaDB store (aiomysql pool): what production uses.

The session ``time_zone`` is never set, as WordPress's ``$wpdb`` never sets it: every expiry is
computed and compared with the database's ``NOW()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, TypeVar

import aiomysql
import pymysql

from ..config import Settings
from .sql import Observe, Result, Row, SqlStore, Statement, Tx

T = TypeVar("T")
_RETRYABLE = {1205, 1213}  # lock wait timeout, deadlock
# TCP keepalive on every connection: a peer that vanished is noticed after about a minute
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 30, 10, 3
# Our sessions end server-side after this much silence (or the server's own lower limit), so
# a connection we abandoned in a partition cannot hold a named lock for hours; idle pooled
# connections are recycled before it.
SESSION_WAIT_TIMEOUT = 300
IDLE_RECYCLE = 240.0
# failures after which a connection is not trusted again (a timeout leaves an answer unread)
_CONNECTION_ERRORS = (TimeoutError, pymysql.err.OperationalError, pymysql.err.InterfaceError)

# AppointEase's two tables (shared/booking-block.md), with ``{prefix}`` for the table prefix:
# one file that the PHP tests read too. Read at import, so a package without it fails at once.
SCHEMA_FILE = "schema.mysql.sql"


def schema_statements(text: str) -> dict[str, str]:
    """The ``CREATE TABLE IF NOT EXISTS {prefix}<name>`` statements of ``text`` by ``<name>``.

    Lines starting with ``--`` are dropped and the rest split on ``;``, as the PHP readers do.
    """
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    statements: dict[str, str] = {}
    for statement in filter(None, (part.strip() for part in body.split(";"))):
        match = re.match(r"CREATE TABLE IF NOT EXISTS \{prefix\}(\w+) \(", statement)
        if match is None:
            raise ValueError(f"{SCHEMA_FILE}: not a CREATE TABLE IF NOT EXISTS: {statement[:60]!r}")
        statements[match[1]] = statement
    return statements


_SCHEMA = schema_statements(
    resources.files(__name__.rpartition(".")[0]).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
)
APPOINTMENTS_DDL = _SCHEMA["appointments"]
LOCKS_DDL = _SCHEMA["appointease_slot_locks"]


# ---- the only code that reads aiomysql internals ----


def _streams(conn: aiomysql.Connection) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """The connection's reader and writer, or None once closed.

    aiomysql offers no hook for socket options and no way to see that the server closed an
    idle connection, so this one function reads its private ``_reader``/``_writer``
    (present in aiomysql 0.1 to 0.3; it sets SO_KEEPALIVE itself but no timing).
    """
    reader = getattr(conn, "_reader", None)
    writer = getattr(conn, "_writer", None)
    if reader is None or writer is None:
        return None
    return reader, writer


def connection_socket(conn: aiomysql.Connection) -> Any:
    """The TCP (or unix) socket under ``conn``, or None once closed."""
    streams = _streams(conn)
    return None if streams is None else streams[1].get_extra_info("socket")


def set_keepalive(conn: aiomysql.Connection) -> None:
    """SO_KEEPALIVE and, where the platform has them, the probe timings on a TCP connection."""
    sock = connection_socket(conn)
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    idle = getattr(socket, "TCP_KEEPIDLE", None) or getattr(socket, "TCP_KEEPALIVE", None)
    for option, value in (
        (idle, KEEPALIVE_IDLE),
        (getattr(socket, "TCP_KEEPINTVL", None), KEEPALIVE_INTERVAL),
        (getattr(socket, "TCP_KEEPCNT", None), KEEPALIVE_COUNT),
    ):
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


def is_broken(conn: aiomysql.Connection) -> bool:
    """Closed, or the server closed or broke it while it sat idle in the pool."""
    streams = _streams(conn)
    if streams is None:
        return True
    reader = streams[0]
    return bool(
        reader.at_eof() or reader.exception() is not None or getattr(reader, "eof_received", 0)
    )


# ---- the pool ----


class Pool:
    """At most ``size`` connections: idle ones reused newest first, broken ones never.

    Written here rather than using ``aiomysql.Pool`` so that a connection can be discarded
    (closed, its slot freed for a waiter), every new connection gets keepalive timings and
    its session setup, and no connect holds a lock that other acquirers wait behind.
    Callers bound every wait (``MySQLStore`` wraps each call in its timeout); a cancelled
    acquire gives its slot back.
    """

    def __init__(self, options: dict[str, Any], size: int, setup: Sequence[str] = ()) -> None:
        self.options = options
        self.size = size
        self.setup = tuple(setup)  # run once on each new connection
        self.idle: list[tuple[aiomysql.Connection, float]] = []  # (connection, idle since)
        self.busy: set[aiomysql.Connection] = set()
        self.slots = asyncio.Semaphore(size)
        self.drained = asyncio.Event()
        self.closing = False
        self.opened = 0  # connections opened so far
        self.discarded = 0  # connections closed instead of reused

    @property
    def in_use(self) -> int:
        """Connections handed out and not yet released."""
        return len(self.busy)

    async def acquire(self) -> aiomysql.Connection:
        """A healthy idle connection, or a new one once a slot is free."""
        if self.closing:
            raise pymysql.err.InterfaceError(0, "the connection pool is closed")
        await self.slots.acquire()
        try:
            if self.closing:
                raise pymysql.err.InterfaceError(0, "the connection pool is closed")
            conn = self._reuse() or await self._connect()
        except BaseException:
            self.slots.release()
            raise
        self.busy.add(conn)
        return conn

    def release(self, conn: aiomysql.Connection, discard: bool = False) -> None:
        """Give ``conn`` back: pooled if healthy and outside a transaction, else closed."""
        if conn not in self.busy:
            return
        self.busy.remove(conn)
        if discard or self.closing or is_broken(conn) or conn.get_transaction_status():
            conn.close()
            self.discarded += 1
        else:
            self.idle.append((conn, asyncio.get_running_loop().time()))
        self.slots.release()
        if self.closing and not self.busy:
            self.drained.set()

    async def close(self, wait: float) -> None:
        """Close idle connections now and busy ones when released (or after ``wait`` s)."""
        self.closing = True
        idle, self.idle = self.idle, []
        for conn, _ in idle:
            with contextlib.suppress(Exception):  # say goodbye (COM_QUIT), but never wait long
                async with asyncio.timeout(wait):
                    await conn.ensure_closed()
            conn.close()
        if self.busy:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self.drained.wait()
        for conn in list(self.busy):
            conn.close()

    def _reuse(self) -> aiomysql.Connection | None:
        now = asyncio.get_running_loop().time()
        while self.idle:
            conn, since = self.idle.pop()
            if not is_broken(conn) and now - since < IDLE_RECYCLE:
                return conn
            conn.close()
            self.discarded += 1
        return None

    async def _connect(self) -> aiomysql.Connection:
        conn = await aiomysql.connect(**self.options)
        try:
            set_keepalive(conn)
            cur = await conn.cursor()
            for statement in self.setup:
                await cur.execute(statement)
        except BaseException:
            conn.close()
            raise
        self.opened += 1
        return conn


class _Cursor:
    """Tx over one aiomysql cursor; every call is bounded by ``timeout``.

    In a write transaction the ``BEGIN`` is not a round trip of its own: it goes out in front
    of the first statement, in the same query (aiomysql connects with multi-statements on).
    """

    def __init__(self, cur: aiomysql.Cursor, timeout: float, in_transaction: bool) -> None:
        self.cur = cur
        self.timeout = timeout
        self.in_transaction = in_transaction
        self.pending_begin = in_transaction  # BEGIN not sent yet
        self.write_sent = False
        self.discard = False

    async def call(self, awaitable: Awaitable[T]) -> T:
        """Await one database call, at most ``timeout`` seconds (aiomysql closes the
        connection when a read is cancelled, so a late answer can never be misread)."""
        async with asyncio.timeout(self.timeout):
            return await awaitable

    async def _execute(self, sql: str, args: Sequence[Any]) -> int:
        """Send ``sql`` (with the pending BEGIN in front); the cursor is left on the result
        of the first statement of ``sql``."""
        cur = self.cur
        if self.pending_begin:
            self.pending_begin = False
            await cur.execute("BEGIN; " + sql, tuple(args) or None)
            await cur.nextset()
            return int(cur.rowcount)
        count: int = await cur.execute(sql, tuple(args) or None)
        return count

    async def all(self, sql: str, args: Sequence[Any] = ()) -> list[Row]:
        await self.call(self._execute(sql, args))
        return list(await self.cur.fetchall())

    async def one(self, sql: str, args: Sequence[Any] = ()) -> Row | None:
        await self.call(self._execute(sql, args))
        row: Row | None = await self.cur.fetchone()
        return row

    async def run(self, sql: str, args: Sequence[Any] = ()) -> int:
        if not self.in_transaction:
            self.write_sent = True  # autocommit: once sent, it may be applied
        return await self.call(self._execute(sql, args))

    async def batch(self, statements: Sequence[Statement], write: bool = False) -> list[Result]:
        if write and not self.in_transaction:
            self.write_sent = True  # autocommit: once sent, it may be applied
        return await self.call(self._batch(statements))

    async def _batch(self, statements: Sequence[Statement]) -> list[Result]:
        cur = self.cur
        sql = "; ".join(statement for statement, _ in statements)
        await self._execute(sql, [arg for _, args in statements for arg in args])
        results: list[Result] = []
        for n in range(len(statements)):
            if n:
                await cur.nextset()
            results.append(Result(list(await cur.fetchall()), int(cur.rowcount)))
        return results


class MySQLStore(SqlStore):
    """The plugin's tables in MySQL/MariaDB."""

    kind = "mysql"
    now_sql = "NOW()"
    for_update = " FOR UPDATE"
    lock_in_transaction = False  # autocommit under a named lock: see SqlStore.acquire_lock

    def __init__(
        self,
        pool: Pool,
        prefix: str,
        *,
        db_timeout: float = 5.0,
        observe: Observe | None = None,
        lock_scope: str = "",
    ) -> None:
        super().__init__(prefix, db_timeout=db_timeout, observe=observe)
        self.pool = pool
        self.lock_scope = lock_scope or prefix  # names GET_LOCK locks apart per site

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        observe: Observe | None = None,
        init_command: str | None = None,
    ) -> MySQLStore:
        """Create the connection pool; connections open on first use.

        ``init_command`` runs once on each new connection (for example a session
        ``sql_mode``); the session ``time_zone`` is never set.
        """
        timeout = settings.db_timeout_seconds
        options: dict[str, Any] = {
            "user": settings.db_user,
            "password": settings.db_password,
            "db": settings.db_name,
            "autocommit": True,
            "charset": "utf8mb4",
            "connect_timeout": timeout + 1,  # a backstop: every acquire is bounded by timeout
        }
        if settings.db_socket:
            options["unix_socket"] = settings.db_socket
        else:
            options["host"] = settings.db_host
            options["port"] = settings.db_port
        setup = [f"SET SESSION wait_timeout = LEAST(@@GLOBAL.wait_timeout, {SESSION_WAIT_TIMEOUT})"]
        if init_command:
            setup.append(init_command)
        return cls(
            Pool(options, settings.db_pool_size, setup),
            settings.table_prefix,
            db_timeout=timeout,
            observe=observe,
            lock_scope=f"{settings.db_name}.{settings.table_prefix}",
        )

    @asynccontextmanager
    async def transaction(self, write: bool) -> AsyncIterator[Tx]:
        """A pooled connection; BEGIN/COMMIT around writes. Each call is time-boxed; a
        connection that timed out, broke or was cancelled is closed, never pooled again."""
        async with asyncio.timeout(self.timeout):
            conn = await self.pool.acquire()
        discard = True  # unless the block ends cleanly (or with a plain SQL error)
        try:
            tx = _Cursor(await conn.cursor(), self.timeout, in_transaction=write)
            try:
                yield tx
                if write and not tx.pending_begin:
                    tx.write_sent = True
                    await tx.call(conn.commit())
            except Exception as exc:
                if conn.closed or (
                    isinstance(exc, _CONNECTION_ERRORS) and not self.is_retryable(exc)
                ):
                    raise
                if write and not tx.pending_begin:
                    try:
                        await tx.call(conn.rollback())
                    except Exception:
                        raise exc from None
                discard = tx.discard
                raise
            discard = tx.discard
        finally:
            self.pool.release(conn, discard=discard)

    def holder_lock_sql(self, key: str) -> tuple[Statement, str, Statement]:
        """``GET_LOCK`` and ``RELEASE_LOCK`` on a name derived from ``key``; the outcome of
        GET_LOCK is kept in a session variable, read with the counts (one result set less).

        A session that fails between the two is discarded (``acquire_lock`` marks it): closing
        the session frees the lock (and GET_LOCK nests per session, so a reused one could
        keep it).
        """
        digest = hashlib.sha256(f"{self.lock_scope}\0{key}".encode()).hexdigest()
        name = f"appointease:{digest[:48]}"  # names are at most 64 characters
        wait = round(self.timeout * 0.8, 3)
        return (
            ("SET @appointease_held = GET_LOCK(%s, %s)", (name, wait)),
            "@appointease_held",
            ("DO RELEASE_LOCK(%s)", (name,)),
        )

    def remember_sql(self, values: Sequence[Statement]) -> tuple[list[Statement], list[Statement]]:
        """One ``SELECT ... INTO`` session variables: a plain consistent read (no row locks,
        where an ``INSERT ... SELECT`` reading the table would take shared next-key locks)."""
        names = [f"@appointease_v{n}" for n in range(len(values))]
        select = (
            f"SELECT {', '.join(sql for sql, _ in values)} INTO {', '.join(names)}",
            [arg for _, args in values for arg in args],
        )
        return [select], [(name, ()) for name in names]

    def plus_seconds_sql(self) -> str:
        """``NOW() + INTERVAL n SECOND``."""
        return "NOW() + INTERVAL %s SECOND"

    def seconds_left_sql(self, column: str) -> str:
        """Seconds from ``NOW()`` until ``column``."""
        return f"TIMESTAMPDIFF(SECOND, NOW(), {column})"

    def add_seconds_sql(self, expression: str) -> str:
        """``expression + INTERVAL n SECOND``."""
        return f"{expression} + INTERVAL %s SECOND"

    def upsert_lock_sql(self, condition: str) -> str:
        """Correct whether the server assigns left to right (the default) or simultaneously
        (``SIMULTANEOUS_ASSIGNMENT`` in sql_mode): client_id is assigned first and created_at
        second, each reading only expires_at (still the old value) and itself; expires_at
        last reads created_at and client_id only where they cannot have changed (the row was
        live, so created_at stayed, and client_id became ours exactly when it was ours)."""
        expired = "expires_at <= NOW()"
        created = "COALESCE(created_at, NOW())"
        return (
            f"INSERT INTO {self.locks}"  # noqa: S608
            " (date, time, employee_id, client_id, expires_at, created_at)"
            f" SELECT %s, %s, %s, %s, {self.plus_seconds_sql()}, NOW() FROM DUAL"
            f" WHERE {condition}"
            " ON DUPLICATE KEY UPDATE"
            f" client_id = IF({expired} OR client_id = VALUES(client_id),"
            " VALUES(client_id), client_id),"
            f" created_at = IF({expired}, NOW(), created_at),"
            f" expires_at = IF({expired}, VALUES(expires_at),"
            f" IF(client_id = VALUES(client_id) AND {created} + INTERVAL %s SECOND > NOW(),"
            f" LEAST(NOW() + INTERVAL %s SECOND, {created} + INTERVAL %s SECOND), expires_at))"
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

        column_rows, key_rows = await self.run("describe_schema", work)
        columns: dict[str, set[str]] = {}
        for table, column in column_rows:
            columns.setdefault(str(table), set()).add(str(column).lower())
        keys: dict[str, list[str]] = {}
        for index, column in key_rows:
            keys.setdefault(str(index), []).append(str(column).lower())
        return columns, list(keys.values())

    async def close(self) -> None:
        """Close the pool: idle connections now, busy ones when released (bounded wait)."""
        await self.pool.close(self.timeout)
