"""Fault survival with real processes: SIGTERM, kill -9 and restart, MariaDB restarted."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pymysql

from tests.conftest import need
from tests.processes import Daemon, PrivateMariaDB

DAY = "2030-05-06"


async def hello(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    frame: dict[str, Any] = await ws.receive_json(timeout=5)
    assert frame["type"] == "connection"
    return frame


async def ask(ws: aiohttp.ClientWebSocketResponse, type_: str, **fields: Any) -> dict[str, Any]:
    """Send one request and return the frame that carries its requestId."""
    rid = f"r{time.monotonic_ns()}"
    await ws.send_json({"type": type_, "requestId": rid, **fields})
    while True:
        frame: dict[str, Any] = await ws.receive_json(timeout=10)
        if frame.get("requestId") == rid:
            return frame


async def test_sigterm_closes_sockets_with_1001_and_exits_0(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, SHUTDOWN_TIMEOUT_SECONDS="10")
    await daemon.start()
    async with aiohttp.ClientSession() as session, session.ws_connect(daemon.ws_url) as ws:
        await hello(ws)
        began = time.monotonic()
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGTERM)
        msg = await ws.receive(timeout=15)
        assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1001
        assert await asyncio.wait_for(daemon.proc.wait(), 15) == 0
    assert time.monotonic() - began < 10  # SHUTDOWN_TIMEOUT_SECONDS


async def test_kill9_loses_no_lock_and_clients_resume(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, RESUME_SECRET="fixed-resume-secret", LOCK_RELEASE_GRACE_SECONDS="30")
    await daemon.start()
    slot = {"date": DAY, "time": "10:00", "employeeId": 3}
    async with aiohttp.ClientSession() as session:
        holder = await session.ws_connect(daemon.ws_url)
        first = await hello(holder)
        assert (await ask(holder, "lock_slot", **slot))["type"] == "slot_locked"
        await daemon.kill9()
        await daemon.start()
        back = await session.ws_connect(f"{daemon.ws_url}/?resume={first['resumeToken']}")
        again = await hello(back)
        assert again["clientId"] == first["clientId"] and again["resumed"] is True
        rival = await session.ws_connect(daemon.ws_url)
        await hello(rival)
        refused = await ask(rival, "lock_slot", **slot)
        assert refused["type"] == "lock_failed" and refused["reason"] == "slot_locked"
        assert (await ask(back, "unlock_slot", **slot))["type"] == "slot_unlocked"
        for ws in (holder, back, rival):
            await ws.close()
    await daemon.stop()


async def test_mariadb_restarted_under_load(tmp_path: Path) -> None:
    missing = PrivateMariaDB.available()
    if missing:
        need("a private MariaDB server", missing)
    db = PrivateMariaDB(tmp_path)
    db.install()
    db.start()
    try:
        root = pymysql.connect(host="127.0.0.1", port=db.port, user="root", autocommit=True)
        root.cursor().execute("CREATE DATABASE wp")
        root.close()
        env = {"DB_HOST": "127.0.0.1", "DB_PORT": str(db.port), "DB_NAME": "wp", "DB_USER": "root"}
        init = Daemon(tmp_path, **env)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "appointease_realtime",
            "--env-file",
            os.devnull,
            "init-db",
            env=init.env,
        )
        assert await proc.wait() == 0
        daemon = Daemon(tmp_path, **env, LOCK_RELEASE_GRACE_SECONDS="60")
        await daemon.start()
        await run_load_through_restart(daemon, db)
        assert daemon.alive()
        await daemon.stop()
    finally:
        db.stop()


async def run_load_through_restart(daemon: Daemon, db: PrivateMariaDB) -> None:
    held: dict[str, str] = {}  # time -> clientId of every lock a client was told it holds
    outcomes: list[str] = []
    async with aiohttp.ClientSession() as session:
        sockets = [await session.ws_connect(daemon.ws_url) for _ in range(10)]
        ids = [(await hello(ws))["clientId"] for ws in sockets]
        stop = asyncio.Event()

        async def client(index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
            round_ = 0
            while not stop.is_set():
                time_ = f"{8 + index:02d}:{(round_ % 2) * 30:02d}"
                reply = await ask(ws, "lock_slot", date=DAY, time=time_, employeeId=9)
                outcomes.append(reply.get("code", reply["type"]))
                if reply["type"] == "slot_locked":
                    held[time_] = ids[index]
                round_ += 1
                await asyncio.sleep(0.07)  # about 14 requests a second: under the rate limit

        load = [asyncio.create_task(client(i, ws)) for i, ws in enumerate(sockets)]
        await asyncio.sleep(1.0)
        db.stop()
        async with session.get(f"{daemon.url}/readyz") as ready:
            assert ready.status == 503
        await asyncio.sleep(1.5)
        assert "unavailable" in outcomes  # clients were told, nobody was told a false success
        db.start()
        before = len(outcomes)
        for _ in range(100):  # recovers without a restart
            await asyncio.sleep(0.2)
            if outcomes[before:].count("slot_locked") >= 10:
                break
        stop.set()
        await asyncio.gather(*load)
        async with session.get(f"{daemon.url}/readyz") as ready:
            assert ready.status == 200
        for ws in sockets:
            await ws.close()
    rows = pymysql.connect(host="127.0.0.1", port=db.port, user="root", database="wp")
    with rows.cursor() as cur:
        cur.execute("SELECT TIME_FORMAT(time, '%H:%i'), client_id FROM wp_appointease_slot_locks")
        in_db = dict(cur.fetchall())
    rows.close()
    assert in_db == held  # every lock a client was told it holds is there, with that holder
    print(json.dumps({"outcomes": {o: outcomes.count(o) for o in set(outcomes)}}))
