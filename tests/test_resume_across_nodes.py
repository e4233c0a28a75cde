"""A resume on another node keeps the hold, with real daemon processes on MariaDB and Redis.

The old socket on node A is still open (A's heartbeat has not noticed anything) when the
client resumes on node B: A must close it as superseded and release nothing, ever.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pymysql
import pytest

from appointease_realtime.admin import init_db
from appointease_realtime.config import Settings
from tests.conftest import MYSQL
from tests.processes import Daemon
from tests.redis_support import ThrowawayRedis

pytestmark = [pytest.mark.mysql, pytest.mark.redis]
SLOT = {"date": "2030-05-06", "time": "10:00", "employeeId": 3}


async def hello(ws: aiohttp.ClientWebSocketResponse) -> dict[str, object]:
    frame: dict[str, object] = json.loads((await ws.receive(timeout=5)).data)
    assert frame["type"] == "connection"
    return frame


async def ask(ws: aiohttp.ClientWebSocketResponse, type_: str) -> dict[str, object]:
    await ws.send_json({"type": type_, **SLOT})
    while True:
        frame: dict[str, object] = json.loads((await ws.receive(timeout=5)).data)
        if frame["type"] in ("slot_locked", "lock_failed", "slot_unlocked", "unlock_failed"):
            return frame


def holders(database: str) -> list[tuple[str]]:
    conn = pymysql.connect(**MYSQL, password="", database=database, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT client_id FROM wp_appointease_slot_locks")
            return list(cur.fetchall())
    finally:
        conn.close()


async def test_a_resume_on_another_node_keeps_the_hold(
    mysql_database: str, throwaway: ThrowawayRedis, tmp_path: Path
) -> None:
    await init_db(Settings(db_host=MYSQL["host"], db_name=mysql_database))
    env = {
        "DB_HOST": str(MYSQL["host"]),
        "DB_NAME": mysql_database,
        "REDIS_URL": throwaway.url,
        "RESUME_SECRET": "one-secret-for-every-node",
        "LOCK_RELEASE_GRACE_SECONDS": "1",
    }
    a, b = Daemon(tmp_path, **env), Daemon(tmp_path, **env)
    await a.start()
    await b.start()
    try:
        async with aiohttp.ClientSession() as session:
            old = await session.ws_connect(f"{a.ws_url}/")
            first = await hello(old)
            assert (await ask(old, "lock_slot"))["type"] == "slot_locked"
            # The phone changed network: it resumes on B while A still has the old socket.
            new = await session.ws_connect(f"{b.ws_url}/?resume={first['resumeToken']}")
            again = await hello(new)
            assert again["clientId"] == first["clientId"] and again["resumed"] is True
            assert (await ask(new, "lock_slot"))["type"] == "slot_locked"
            closing = await old.receive(timeout=5)  # A heard of the resume and closed it
            assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 4009
            await asyncio.sleep(2.5)  # well past A's grace period
            assert holders(mysql_database) == [(first["clientId"],)]
            stranger = await session.ws_connect(f"{a.ws_url}/")
            await hello(stranger)
            refused = await ask(stranger, "lock_slot")
            assert refused["type"] == "lock_failed" and refused["reason"] == "slot_locked"
            assert (await ask(new, "unlock_slot"))["type"] == "slot_unlocked"
            for ws in (new, stranger):
                await ws.close()
    finally:
        await a.stop()
        await b.stop()
