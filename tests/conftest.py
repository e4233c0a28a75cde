"""Shared fixtures: throw-away databases (SQLite file, real MariaDB), the app, socket helpers.

A test that needs MariaDB skips locally when none answers, and fails in CI (CI=true).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pymysql
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from redis.exceptions import RedisError

from appointease_realtime.app import create_app
from appointease_realtime.auth import mint_token
from appointease_realtime.config import Settings
from appointease_realtime.store import Store, open_store
from tests.processes import self_signed_certificate
from tests.redis_support import REDIS_URL, ThrowawayRedis, drop_namespace

TOKEN_SECRET = "test-token-secret-of-at-least-32-characters"
MYSQL = {"host": os.environ.get("TEST_MYSQL_HOST", "127.0.0.1"), "port": 3306, "user": "root"}
IN_CI = os.environ.get("CI", "").lower() == "true"

Frame = dict[str, Any]


def need(service: str, reason: str) -> None:
    """Skip (locally) or fail (in CI) a test whose real service is missing."""
    message = f"{service} is not available: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing service is a failure)")
    pytest.skip(message)


def _mysql_root() -> pymysql.connections.Connection:
    return pymysql.connect(**MYSQL, password="", autocommit=True, connect_timeout=3)


def _mysql_admin(statement: str) -> None:
    root = _mysql_root()
    try:
        with root.cursor() as cur:
            cur.execute("SET SESSION lock_wait_timeout = 30")
            cur.execute(statement)
    finally:
        root.close()


@pytest.fixture
async def mysql_database() -> AsyncIterator[str]:
    """A throw-away MariaDB database (``aert_<random>``), dropped afterwards.

    Async, so the loop keeps running while the database is dropped: a task the test left
    mid-transaction can finish instead of holding a lock the DROP waits for.
    """
    name = f"aert_{secrets.token_hex(6)}"
    try:
        await asyncio.to_thread(_mysql_admin, f"CREATE DATABASE {name}")
    except pymysql.err.Error as exc:
        need("MariaDB at 127.0.0.1:3306", str(exc))
    try:
        yield name
    finally:
        await asyncio.to_thread(_mysql_admin, f"DROP DATABASE IF EXISTS {name}")


def base_settings(**overrides: Any) -> Settings:
    """Settings with short timers, for tests."""
    defaults: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "lock_sweep_interval_seconds": 0.2,
        "lock_release_grace_seconds": 0.5,
        "resume_secret": "test-resume-secret",
        "token_secret": TOKEN_SECRET,
        "db_pool_size": 20,
    }
    return Settings(**{**defaults, **overrides})


@pytest.fixture(params=["sqlite", "mysql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Run the test once on each store."""
    return str(request.param)


@pytest.fixture
def settings(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for a fresh, empty database of ``backend`` with both tables created."""
    if backend == "mysql":
        name = request.getfixturevalue("mysql_database")
        result = base_settings(db_host=MYSQL["host"], db_port=3306, db_user="root", db_name=name)
    else:
        result = base_settings(sqlite_path=str(tmp_path / "test.sqlite3"))
    asyncio.run(_create_schema(result))
    return result


async def _create_schema(settings: Settings) -> None:
    store = await open_store(settings, create_embedded=False)
    try:
        await store.create_schema()
    finally:
        await store.close()


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    """An open store on the test database."""
    opened = await open_store(settings)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def sql(settings: Settings) -> Callable[..., Awaitable[list[tuple[Any, ...]]]]:
    """Run raw SQL on the test database as PHP or an admin would (``%s`` placeholders).

    It runs in a thread: a blocking call would stall the daemon's loop mid-transaction.
    """

    async def run(query: str, *args: Any) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(blocking, query, *args)

    def blocking(query: str, *args: Any) -> list[tuple[Any, ...]]:
        if settings.uses_mysql:
            conn = pymysql.connect(**MYSQL, password="", database=settings.db_name, autocommit=True)
            try:
                with conn.cursor() as cur:
                    cur.execute(query, args or None)
                    return list(cur.fetchall())
            finally:
                conn.close()
        import sqlite3

        lite = sqlite3.connect(settings.sqlite_path, isolation_level=None)
        try:
            return list(lite.execute(query.replace("%s", "?"), args).fetchall())
        finally:
            lite.close()

    return run


@pytest.fixture
def make_client(aiohttp_client: Callable[..., Any], settings: Settings) -> Callable[..., Any]:
    """Start the daemon app (optionally with changed settings) and return its test client."""

    async def start(**overrides: Any) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = await aiohttp_client(
            create_app(replace(settings, **overrides))
        )
        return client

    return start


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> TestClient[Any, Any]:
    """The daemon app on the test database."""
    started: TestClient[Any, Any] = await make_client()
    return started


class Socket:
    """A test WebSocket client: send frames, wait for a frame of a given type."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, hello: Frame) -> None:
        self.ws = ws
        self.hello = hello
        self.client_id: str = hello["clientId"]
        self.seen: list[Frame] = []

    async def send(self, type_: str, **fields: Any) -> None:
        await self.ws.send_str(json.dumps({"type": type_, **fields}))

    async def recv(self, timeout: float = 5.0) -> Frame:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, f"expected a text frame, got {msg.type}"
        frame: Frame = json.loads(msg.data)
        self.seen.append(frame)
        return frame

    async def expect(self, *types: str, timeout: float = 5.0, **match: Any) -> Frame:
        """The next frame of one of ``types`` whose fields equal ``match``; others are skipped."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"no {types} {match} within {timeout}s; saw {self.seen[-5:]}")
            try:
                frame = await self.recv(left)
            except TimeoutError:
                continue
            if frame["type"] in types and all(frame.get(k) == v for k, v in match.items()):
                return frame

    async def request(self, type_: str, reply: str | tuple[str, ...], **fields: Any) -> Frame:
        await self.send(type_, **fields)
        replies = (reply,) if isinstance(reply, str) else reply
        return await self.expect(*replies, "error")

    async def quiet(self, seconds: float = 0.3) -> list[Frame]:
        """Frames that arrive within ``seconds``."""
        frames = []
        try:
            while True:
                frames.append(await self.recv(seconds))
        except TimeoutError:
            return frames

    async def close(self) -> None:
        await self.ws.close()


def token_for(email: str | None = None, role: str = "customer", **claims: Any) -> str:
    """A connection token as the bridge would mint it, signed with the tests' secret."""
    return mint_token(TOKEN_SECRET, f"test:{email or role}", email, role, **claims)


@pytest.fixture
def connect(client: TestClient[Any, Any]) -> Callable[..., Any]:
    """Open a socket to the daemon.

    ``email``/``role`` connect with a signed token for that identity (``/ws/<token>``);
    other keyword arguments become query parameters.
    """

    async def open_socket(
        path: str = "/",
        on: TestClient[Any, Any] | None = None,
        email: str | None = None,
        role: str | None = None,
        **query: str,
    ) -> Socket:
        if email or role:
            path = f"/ws/{token_for(email, role or 'customer')}"
        ws = await (on or client).ws_connect(path, params=query or None)
        msg = await ws.receive(timeout=5)
        hello = json.loads(msg.data)
        assert hello["type"] == "connection", hello
        return Socket(ws, hello)

    return open_socket


async def assert_one_winner_per_round(
    sockets: list[Socket], sql: Callable[..., Awaitable[list[tuple[Any, ...]]]], rounds: int
) -> None:
    """All ``sockets`` lock one slot at the same instant, ``rounds`` times: exactly one wins
    each round, every other is refused ``slot_locked``, and the row names the winner."""
    day = "2030-05-06"
    for round_ in range(rounds):
        slot = {
            "date": day,
            "time": f"{8 + round_ // 2:02d}:{30 * (round_ % 2):02d}",
            "employeeId": 7,
        }
        await asyncio.gather(*(s.send("lock_slot", **slot) for s in sockets))
        replies = await asyncio.gather(
            *(s.expect("slot_locked", "lock_failed", "error", timeout=20) for s in sockets)
        )
        winners = [s for s, r in zip(sockets, replies, strict=True) if r["type"] == "slot_locked"]
        losers = [r for r in replies if r["type"] == "lock_failed"]
        assert len(winners) == 1, f"round {round_}: {[r['type'] for r in replies]}"
        assert len(losers) == len(sockets) - 1
        assert {r["reason"] for r in losers} == {"slot_locked"}
        rows = await sql(
            "SELECT client_id FROM wp_appointease_slot_locks WHERE date = %s AND time = %s",
            day,
            f"{slot['time']}:00",
        )
        assert rows == [(winners[0].client_id,)]
        await winners[0].request("unlock_slot", "slot_unlocked", **slot)


@pytest.fixture
async def redis_url() -> str:
    """The shared Redis, or a skip (a failure in CI) when it does not answer."""
    redis = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await redis.ping()
    except RedisError as exc:
        need("Redis at 127.0.0.1:6379", str(exc))
    finally:
        await redis.aclose()
    return REDIS_URL


@pytest.fixture
async def namespace(redis_url: str) -> AsyncIterator[str]:
    """A namespace of this test alone; its keys are deleted afterwards."""
    name = f"aert-test-{secrets.token_hex(6)}"
    try:
        yield name
    finally:
        await drop_namespace(redis_url, name)


@pytest.fixture
async def throwaway() -> AsyncIterator[ThrowawayRedis]:
    """A private redis-server, killed afterwards."""
    server = ThrowawayRedis()
    try:
        await server.start()
    except FileNotFoundError as exc:
        need("redis-server", str(exc))
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with openssl."""
    try:
        return self_signed_certificate(tmp_path)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"openssl could not make a test certificate: {exc.stderr.decode()}")
