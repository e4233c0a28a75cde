"""Database timeouts: a database that stops answering (without closing anything) fails every
call within db_timeout, says whether a write may have landed, and leaves nothing poisoned.

MariaDB is reached through tests/stall_proxy.py; SQLite is stalled by another process's lock.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import pymysql
import pytest

from appointease_realtime.config import Settings
from appointease_realtime.protocol import Room, Slot
from appointease_realtime.store import StoreTimeout, StoreUnavailable
from appointease_realtime.store.mysql import (
    KEEPALIVE_COUNT,
    KEEPALIVE_IDLE,
    KEEPALIVE_INTERVAL,
    MySQLStore,
    connection_socket,
)
from appointease_realtime.store.sqlite import SQLiteStore
from tests.conftest import MYSQL, base_settings
from tests.stall_proxy import StallProxy

T = TypeVar("T")
TIMEOUT = 0.5
MARGIN = 0.5
SLOT = Slot("2030-05-06", "10:00", 3)
ROOM = Room("2030-05-06", 3)


async def times_out(call: Awaitable[T]) -> StoreTimeout:
    """Await ``call``; it must raise StoreTimeout after about TIMEOUT seconds."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(StoreTimeout) as caught:
        async with asyncio.timeout(TIMEOUT + 5):  # a call that hangs fails the test, not CI
            await call
    elapsed = loop.time() - began
    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + MARGIN, f"took {elapsed:.2f} s"
    return caught.value


def direct(database: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    """A query on the real server, past the proxy (as PHP would run it)."""
    conn = pymysql.connect(
        host=str(MYSQL["host"]),
        port=3306,
        user="root",
        password="",
        database=database,
        autocommit=True,
    )
    try:
        with conn.cursor() as cur:
            cur.execute(query, args or None)
            return list(cur.fetchall())
    finally:
        conn.close()


@pytest.fixture
async def proxy() -> AsyncIterator[StallProxy]:
    """A stall proxy in front of the test MariaDB."""
    started = await StallProxy(str(MYSQL["host"]), 3306).start()
    try:
        yield started
    finally:
        await started.close()


@pytest.fixture
def proxied(mysql_database: str, proxy: StallProxy) -> Settings:
    """Settings that reach the throw-away database through the proxy, with a 0.5 s timeout."""
    return base_settings(
        db_host="127.0.0.1",
        db_port=proxy.port,
        db_user="root",
        db_name=mysql_database,
        db_pool_size=5,
        db_timeout_seconds=TIMEOUT,
    )


@pytest.fixture
async def mysql_store(proxied: Settings) -> AsyncIterator[MySQLStore]:
    """A MySQL store behind the proxy, tables created."""
    store = await MySQLStore.open(proxied)
    try:
        await store.create_schema()
        yield store
    finally:
        await store.close()


async def server_sessions(database: str) -> int:
    """Sessions the server has open on ``database`` (not counting the one asking)."""
    rows = await asyncio.to_thread(
        direct,
        database,
        "SELECT COUNT(*) FROM information_schema.processlist"
        " WHERE db = %s AND id <> CONNECTION_ID()",
        database,
    )
    return int(rows[0][0])


async def test_every_call_times_out_on_a_stalled_database_and_recovers(
    mysql_store: MySQLStore, proxy: StallProxy, mysql_database: str
) -> None:
    store = mysql_store
    await asyncio.gather(store.ping(), store.room_state(ROOM), store.live_locks())
    assert store.pool.opened >= 1
    proxy.pause()
    # on pooled connections first, then on new ones whose handshake never comes
    for pooled in (True, False):
        for call in (store.ping(), store.room_state(ROOM)):
            assert not (await times_out(call)).outcome_unknown  # only reads were sent
        failure = await times_out(store.acquire_lock(SLOT, "a", 600, 2))
        assert "acquire_lock" in str(failure)
        # the lock is one round trip that carries its write: unknown once it was sent
        assert failure.outcome_unknown == pooled
    assert store.pool.in_use == 0 and store.pool.idle == []
    proxy.resume()
    # every connection that saw a stall was closed, none came back poisoned
    for _ in range(3):
        await store.ping()
        assert (await store.acquire_lock(SLOT, "a", 600, 2)).acquired
        state = await store.room_state(ROOM)
        assert state.locked == ["10:00"] and state.locks[0].client_id == "a"
    assert direct(mysql_database, "SELECT client_id FROM wp_appointease_slot_locks") == [("a",)]


async def test_a_lock_write_that_got_no_answer_reports_outcome_unknown(
    mysql_store: MySQLStore, proxy: StallProxy, mysql_database: str
) -> None:
    store = mysql_store
    await store.ping()
    proxy.pause(after=b"ON DUPLICATE KEY UPDATE")  # the upsert reaches MariaDB, no answer returns
    failure = await times_out(store.acquire_lock(SLOT, "a", 600, 2))
    assert failure.outcome_unknown and isinstance(failure, StoreUnavailable)
    # and indeed it was applied: the caller must re-read rather than assume either way
    assert direct(mysql_database, "SELECT client_id FROM wp_appointease_slot_locks") == [("a",)]
    proxy.resume()
    # the abandoned session held the holder's GET_LOCK; closing it freed it for the next call
    refreshed = await store.acquire_lock(SLOT, "a", 600, 2)
    assert refreshed.acquired and refreshed.expires_in >= 598
    assert (await store.acquire_lock(SLOT, "b", 600, 2)).reason == "slot_locked"


async def test_a_transaction_is_unknown_only_once_its_commit_was_sent(
    mysql_store: MySQLStore, proxy: StallProxy, mysql_database: str
) -> None:
    store = mysql_store
    assert (await store.acquire_lock(SLOT, "a", 600, 2)).acquired

    proxy.pause(after=b"DELETE")  # the DELETE is sent, the COMMIT never is
    failure = await times_out(store.release_client_locks("a"))
    assert not failure.outcome_unknown
    proxy.resume()
    await asyncio.sleep(0.2)  # the server notices the closed session and rolls it back
    rows = direct(mysql_database, "SELECT client_id FROM wp_appointease_slot_locks")
    assert rows == [("a",)]  # never committed

    proxy.pause(after=b"COMMIT")  # the COMMIT is sent, its answer never comes
    failure = await times_out(store.release_client_locks("a"))
    assert failure.outcome_unknown
    proxy.resume()
    assert await store.release_client_locks("a") == []  # it had been committed


async def test_an_autocommitted_unlock_is_unknown_once_sent(
    mysql_store: MySQLStore, proxy: StallProxy, mysql_database: str
) -> None:
    store = mysql_store
    assert (await store.acquire_lock(SLOT, "a", 600, 2)).acquired
    proxy.pause(after=b"DELETE")  # one statement, no transaction: applied once it arrives
    failure = await times_out(store.release_lock(SLOT, "a"))
    assert failure.outcome_unknown
    proxy.resume()
    assert direct(mysql_database, "SELECT client_id FROM wp_appointease_slot_locks") == []


async def test_a_flood_during_a_stall_fails_fast_and_leaks_no_connection(
    proxied: Settings, proxy: StallProxy, mysql_database: str
) -> None:
    store = await MySQLStore.open(proxied)
    try:
        await store.create_schema()
        await asyncio.gather(*(store.ping() for _ in range(5)))
        proxy.pause()
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with asyncio.timeout(TIMEOUT + 5):  # a hang fails the test
            results = await asyncio.gather(
                *(store.room_state(Room(SLOT.date, n)) for n in range(30)),
                return_exceptions=True,
            )
        assert all(isinstance(r, StoreTimeout) for r in results), results
        assert loop.time() - began < TIMEOUT + MARGIN  # waiting for a pool slot is bounded too
        assert store.pool.in_use == 0 and store.pool.idle == []
        proxy.resume()
        states = await asyncio.gather(*(store.room_state(Room(SLOT.date, n)) for n in range(30)))
        assert all(state.booked == state.locked == [] for state in states)
        assert store.pool.in_use == 0 and len(store.pool.idle) <= proxied.db_pool_size
        assert store.pool.opened - store.pool.discarded == len(store.pool.idle)
    finally:
        await store.close()
    await proxy.wait_closed_connections()  # every connection the store opened, it closed
    for _ in range(50):  # and the server let go of every session
        if await server_sessions(mysql_database) == 0:
            break
        await asyncio.sleep(0.1)
    assert await server_sessions(mysql_database) == 0


async def test_connections_have_tcp_keepalive(mysql_store: MySQLStore) -> None:
    conn = await mysql_store.pool.acquire()
    try:
        sock = connection_socket(conn)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        for name, value in (
            ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
            ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
            ("TCP_KEEPCNT", KEEPALIVE_COUNT),
        ):
            if hasattr(socket, name):
                assert sock.getsockopt(socket.IPPROTO_TCP, getattr(socket, name)) == value
    finally:
        mysql_store.pool.release(conn)


async def test_sqlite_calls_time_out_while_another_process_holds_the_file(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "stalled.sqlite3")
    store = await SQLiteStore.open(path, "wp_", db_timeout=TIMEOUT)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        assert (await store.acquire_lock(SLOT, "a", 600, 2)).acquired
        other.execute("BEGIN EXCLUSIVE")  # e.g. a CLI or a backup writing to the same file
        failure = await times_out(store.acquire_lock(Slot(SLOT.date, "11:00", 3), "a", 600, 2))
        assert not failure.outcome_unknown
        failure = await times_out(store.release_lock(SLOT, "a"))
        assert not failure.outcome_unknown
        assert (await store.room_state(ROOM)).locked == ["10:00"]  # reads go on (WAL)
        other.execute("COMMIT")
        assert (await store.acquire_lock(Slot(SLOT.date, "11:00", 3), "a", 600, 2)).acquired
        assert await store.release_lock(SLOT, "a") is None
        other.execute("PRAGMA busy_timeout = 0")
        other.execute("BEGIN IMMEDIATE")  # the store left no transaction open behind it
        other.execute("ROLLBACK")
    finally:
        other.close()
        await store.close()


# ---- what a client of the daemon sees ----


async def test_a_stalled_database_answers_clients_and_probes_in_bounded_time(
    aiohttp_client: Any, proxied: Settings, proxy: StallProxy, mysql_store: MySQLStore
) -> None:
    """lock_slot gets ``unavailable`` (never success) and /readyz 503 within the timeout,
    instead of waiting as long as the stall lasts; after it, both work again."""
    from appointease_realtime.app import create_app

    client = await aiohttp_client(create_app(proxied))
    ws = await client.ws_connect("/")
    await ws.receive_json()
    proxy.pause()
    loop = asyncio.get_running_loop()
    began = loop.time()
    await ws.send_json({"type": "lock_slot", "date": SLOT.date, "time": "12:00", "employeeId": 3})
    answer = await ws.receive_json(timeout=10)
    assert answer["type"] == "error" and answer["code"] == "unavailable", answer
    ready = await client.get("/readyz")
    assert ready.status == 503 and (await ready.json())["reason"] == "database"
    assert loop.time() - began < 4 * TIMEOUT + 1
    proxy.resume()
    await ws.send_json({"type": "lock_slot", "date": SLOT.date, "time": "13:00", "employeeId": 3})
    while (answer := await ws.receive_json(timeout=10))["type"] != "slot_locked":
        assert answer["type"] in ("availability_update", "active_selections"), answer
    assert (await client.get("/readyz")).status == 200
    await ws.close()


async def test_a_lock_whose_answer_never_came_is_not_claimed(
    aiohttp_client: Any, proxied: Settings, proxy: StallProxy, mysql_store: MySQLStore
) -> None:
    from appointease_realtime.app import create_app

    client = await aiohttp_client(create_app(proxied))
    ws = await client.ws_connect("/")
    await ws.receive_json()
    proxy.pause(after=b"INSERT INTO")  # the upsert reaches the server; its answer does not
    await ws.send_json({"type": "lock_slot", "date": SLOT.date, "time": "14:00", "employeeId": 3})
    answer = await ws.receive_json(timeout=10)
    assert answer["type"] == "error" and answer["code"] == "unavailable"
    assert "may or may not" in answer["message"]
    proxy.resume()
    await ws.close()
