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
    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(daemon.ws_url) as ws:
            await hello(ws)
            began = time.monotonic()
            assert daemon.proc is not None
            daemon.proc.send_signal(signal.SIGTERM)
            msg = await ws.receive(timeout=15)
            assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1001
            assert await asyncio.wait_for(daemon.proc.wait(), 15) == 0
        assert time.monotonic() - began < 10  # SHUTDOWN_TIMEOUT_SECONDS
    finally:
        await daemon.close()  # a no-op when it exited; never left running


async def test_kill9_loses_no_lock_and_clients_resume(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path, RESUME_SECRET="fixed-resume-secret", LOCK_RELEASE_GRACE_SECONDS="30")
    await daemon.start()
    try:
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
    finally:
        await daemon.close()


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
        daemon = Daemon(
            tmp_path,
            **env,
            LOCK_RELEASE_GRACE_SECONDS="60",
            HOLD_LIMIT="100",  # every request takes a fresh slot: no refusal for the count
            HOLDS_PER_ADDRESS="100000",
        )
        await daemon.start()
        try:
            await run_load_through_restart(daemon, db)
            assert daemon.alive()
        finally:
            await daemon.close()
    finally:
        db.stop()


async def run_load_through_restart(daemon: Daemon, db: PrivateMariaDB) -> None:
    """Ten clients lock a fresh slot (a new row) about five times a second each while MariaDB
    is stopped and started again. While it is down nobody may be told ``slot_locked``; after
    it is back every client holds new slots again; and the table holds exactly the slots
    clients were told they hold (plus, at most, writes whose answer was lost as it went down,
    which were answered ``unavailable``)."""
    held: dict[tuple[int, str], str] = {}  # (employee, time) -> clientId told it holds it
    unanswered: set[tuple[int, str]] = set()  # slots whose lock was answered unavailable
    log: list[tuple[float, float, int, str]] = []  # (sent, answered, client, outcome)
    async with aiohttp.ClientSession() as session:
        sockets = [await session.ws_connect(daemon.ws_url) for _ in range(10)]
        ids = [(await hello(ws))["clientId"] for ws in sockets]
        stop = asyncio.Event()

        async def client(index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
            employee = 100 + index  # each client its own employee, each request a new minute
            for minute in range(24 * 60):
                if stop.is_set():
                    return
                slot = (employee, f"{minute // 60:02d}:{minute % 60:02d}")
                sent = time.monotonic()
                reply = await ask(ws, "lock_slot", date=DAY, time=slot[1], employeeId=employee)
                outcome = reply.get("code", reply["type"])
                log.append((sent, time.monotonic(), index, outcome))
                if outcome == "slot_locked":
                    held[slot] = ids[index]
                elif outcome == "unavailable":
                    unanswered.add(slot)
                await asyncio.sleep(0.2)  # five requests a second: under the rate limit
            raise AssertionError("ran out of fresh slots")

        load = [asyncio.create_task(client(i, ws)) for i, ws in enumerate(sockets)]
        await asyncio.sleep(1.0)
        await asyncio.to_thread(db.stop)  # the load goes on while the server shuts down
        down = time.monotonic()
        async with session.get(f"{daemon.url}/readyz") as ready:
            assert ready.status == 503
        await asyncio.sleep(2.0)
        restarting = time.monotonic()
        await asyncio.to_thread(db.start)
        up = time.monotonic()
        deadline = up + 30
        while time.monotonic() < deadline:  # recovers without a restart of the daemon
            recovered = {i for sent, _, i, o in log if sent > up and o == "slot_locked"}
            if len(recovered) == len(sockets):
                break
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*load)
        async with session.get(f"{daemon.url}/readyz") as ready:
            assert ready.status == 200
        for ws in sockets:
            await ws.close()
    outage = [o for sent, answered, _, o in log if sent > down and answered < restarting]
    assert len(outage) >= 10, f"only {len(outage)} requests while the database was down"
    assert set(outage) == {"unavailable"}, {o: outage.count(o) for o in set(outage)}
    after = {i for sent, _, i, o in log if sent > up and o == "slot_locked"}
    assert after == set(range(len(sockets))), f"clients {sorted(after)} locked after the restart"
    rows = pymysql.connect(host="127.0.0.1", port=db.port, user="root", database="wp")
    with rows.cursor() as cur:
        cur.execute(
            "SELECT employee_id, TIME_FORMAT(time, '%H:%i'), client_id"
            " FROM wp_appointease_slot_locks"
        )
        in_db = {(int(e), t): c for e, t, c in cur.fetchall()}
    rows.close()
    # every lock a client was told it holds is there, with that holder
    assert {slot: in_db.get(slot) for slot in held} == held
    # and nothing else, except writes that were answered unavailable (outcome unknown)
    extra = set(in_db) - set(held)
    assert extra <= unanswered, sorted(extra - unanswered)[:5]
    outcomes = [o for *_, o in log]
    print(
        json.dumps({"outcomes": {o: outcomes.count(o) for o in set(outcomes)}, "lost": len(extra)})
    )
