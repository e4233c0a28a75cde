"""``appointease-realtime serve --workers N``: real processes on one port (SO_REUSEPORT), on a
throw-away MariaDB database and a private redis-server.

Which worker a socket reached is read from the socket itself (``get_debug`` as an admin gives
that node's id); the kernel spreads new connections over the workers, so a handful of sockets
finds both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pymysql
import pytest

from appointease_realtime.hooks import signed_request
from tests.conftest import MYSQL, TOKEN_SECRET, Socket, assert_one_winner_per_round, token_for
from tests.processes import Daemon
from tests.redis_support import ThrowawayRedis

pytestmark = [pytest.mark.slow, pytest.mark.mysql, pytest.mark.redis]

SCRIPT = Path(sys.executable).parent / "appointease-realtime"
HOOK_SECRET = "whsec_YXBwb2ludGVhc2Utd29ya2Vycy10ZXN0LXNlY3JldA=="
DAY = "2030-05-06"


class Workers(Daemon):
    """``appointease-realtime serve --workers N`` (the console script) on one port."""

    def __init__(self, workdir: Path, count: int, **env: str) -> None:
        super().__init__(workdir, command=[str(SCRIPT)], **env)
        self.count = count

    def command_line(self) -> list[str]:
        return [*super().command_line(), "--workers", str(self.count)]

    async def start(self) -> None:
        """Start, and wait until the parent says every worker is ready."""
        await super().start()
        deadline = time.monotonic() + 30
        while f"all {self.count} workers ready" not in self.log.read_text():
            assert self.alive() and time.monotonic() < deadline, self.log_tail()
            await asyncio.sleep(0.05)


def _sql(database: str, query: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = pymysql.connect(**MYSQL, password="", database=database, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(query, args)
            return list(cur.fetchall())
    finally:
        conn.close()


@pytest.fixture
def environment(mysql_database: str, tmp_path: Path) -> dict[str, str]:
    """Settings of the workers: MariaDB with both tables, hooks and tokens on."""
    env = {
        "DB_HOST": str(MYSQL["host"]),
        "DB_PORT": "3306",
        "DB_USER": "root",
        "DB_NAME": mysql_database,
        "TOKEN_SECRET": TOKEN_SECRET,
        "HOOK_SECRET": HOOK_SECRET,
        "RESUME_SECRET": "workers-test-resume-secret",
        "RECONCILE_INTERVAL_SECONDS": "3600",  # what watchers see came by hook or by Redis
        "LOG_LEVEL": "INFO",
    }
    made = subprocess.run(
        [str(SCRIPT), "--env-file", os.devnull, "init-db"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    return env


@pytest.fixture
async def workers(
    environment: dict[str, str], throwaway: ThrowawayRedis, tmp_path: Path
) -> AsyncIterator[Workers]:
    """Two workers on the private Redis."""
    started = Workers(tmp_path, 2, REDIS_URL=throwaway.url, **environment)
    await started.start()
    try:
        yield started
    finally:
        await started.close()


async def _open(
    session: aiohttp.ClientSession, url: str, role: str = "admin"
) -> tuple[Socket, str]:
    """A socket and the id of the node (worker) it reached."""
    ws = await session.ws_connect(f"{url}/ws/{token_for(role=role)}")
    hello = json.loads((await ws.receive(timeout=5)).data)
    sock = Socket(ws, hello)
    debug = await sock.request("get_debug", "debug_info")
    return sock, str(debug["node"]["id"])


async def spread(
    session: aiohttp.ClientSession, url: str, nodes: int, per_node: int
) -> dict[str, list[Socket]]:
    """Open sockets until each of ``nodes`` nodes has ``per_node`` of them; by node id."""
    found: dict[str, list[Socket]] = {}
    for _ in range(200):
        sock, node = await _open(session, url)
        if len(found.setdefault(node, [])) >= per_node:
            await sock.close()  # that node has enough
            continue
        found[node].append(sock)
        if len(found) == nodes and all(len(s) >= per_node for s in found.values()):
            return found
    raise AssertionError(f"200 sockets reached only {[(n, len(s)) for n, s in found.items()]}")


async def _read_to_the_end(sock: Socket) -> int | None:
    """Read (as a browser does) until the server closes; the close code."""
    with contextlib.suppress(AssertionError):
        while True:
            await sock.recv(30)
    return sock.ws.close_code


def _pid(node_id: str) -> int:
    """The process id inside a node id (``host:pid:random``)."""
    return int(node_id.split(":")[-2])


def _children(pid: int) -> set[int]:
    out = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def test_more_than_one_worker_needs_redis_and_mysql(tmp_path: Path) -> None:
    cases = {
        (("DB_HOST", "127.0.0.1"),): "WORKERS: 2 workers need REDIS_URL",
        (("REDIS_URL", "redis://127.0.0.1:1/0"),): "WORKERS: 2 workers need MySQL/MariaDB",
    }
    for env, message in cases.items():
        result = subprocess.run(
            [str(SCRIPT), "--env-file", os.devnull, "serve", "--workers", "2"],
            env={**os.environ, "DB_HOST": "", "REDIS_URL": "", **dict(env)},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"configuration error: {message}"), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


async def test_two_workers_act_as_one_daemon_and_drain_on_sigterm(
    workers: Workers, environment: dict[str, str]
) -> None:
    database = environment["DB_NAME"]
    async with aiohttp.ClientSession() as session:
        by_node = await spread(session, workers.ws_url, nodes=2, per_node=6)
        (one, two) = by_node.values()
        node_ids = list(by_node)
        assert {_pid(n) for n in node_ids} == _children(workers.pid)  # one node per worker
        print(f"\nworkers: {node_ids}")

        # A selection on one worker reaches a watcher on the other, both ways.
        rounds = (
            (one[0], two[0], "10:00", ["10:00"]),
            (two[0], one[0], "10:30", ["10:00", "10:30"]),
        )
        for picker, watcher, time_, slots in rounds:
            await watcher.request("watch_slot", "active_selections", date=DAY, employeeId=3)
            await picker.request(
                "selecting_slot", "selection_confirmed", date=DAY, time=time_, employeeId=3
            )
            await watcher.expect("active_selections", slots=slots)

        # A hook received by whichever worker accepts it reaches watchers on both.
        watchers = [one[1], two[1]]
        for w in watchers:
            await w.request("watch_slot", "active_selections", date=DAY, employeeId=5)
        await asyncio.to_thread(
            _sql,
            database,
            "INSERT INTO wp_appointments (name, email, appointment_date, employee_id, strong_id)"
            " VALUES ('Ann', 'ann@example.org', %s, 5, 'APT-2030-000001')",
            f"{DAY} 11:00:00",
        )
        body, headers = signed_request(
            HOOK_SECRET, "appointment.created", {"id": "APT-2030-000001"}
        )
        async with session.post(f"{workers.url}/hooks/booking", data=body, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
        for w in watchers:
            taken = await w.expect("slot_taken", timeout=5)
            assert taken["slot"] == f"{DAY} 11:00"

        # A race across both workers has one winner per round.
        racers = one[2:6] + two[2:6]

        async def sql(query: str, *args: Any) -> list[tuple[Any, ...]]:
            return await asyncio.to_thread(_sql, database, query, *args)

        await assert_one_winner_per_round(racers, sql, rounds=10)

        # SIGTERM to the parent: every worker closes its sockets with 1001 and exits 0.
        everyone = [s for socks in by_node.values() for s in socks]
        readers = [asyncio.create_task(_read_to_the_end(sock)) for sock in everyone]
        assert await workers.stop(signal.SIGTERM) == 0
        assert set(await asyncio.gather(*readers)) == {1001}
    log = workers.log.read_text()
    for node in node_ids:
        assert f"(pid {_pid(node)}) exited 0" in log, log
        assert _pid(node) not in _children(workers.pid)
    assert "all workers stopped (exit statuses [0, 0])" in log


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[socket.socket]:
    """A datagram socket standing in for systemd's, telling who sent each message."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify.sock"))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        sock.setblocking(False)
        yield sock


class Notifications:
    """Every message on the notify socket, with the sender's pid and the time it came."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.messages: list[tuple[float, int, str]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            waiter = loop.create_future()
            loop.add_reader(self.sock, waiter.set_result, None)
            try:
                await waiter
            finally:
                loop.remove_reader(self.sock)
            with contextlib.suppress(BlockingIOError):
                data, ancillary, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
                pid = 0
                for level, kind, cred in ancillary:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                        pid = struct.unpack("3i", cred[:12])[0]
                self.messages.append((time.monotonic(), pid, data.decode()))

    def lines(self, wanted: str) -> list[tuple[float, int, str]]:
        return [m for m in self.messages if wanted in m[2].splitlines()]

    async def wait_for(
        self, wanted: str, timeout: float = 30, count: int = 1
    ) -> tuple[float, int, str]:
        """The first message with the line ``wanted``, once ``count`` such have come."""
        deadline = time.monotonic() + timeout
        while len(self.lines(wanted)) < count:
            assert time.monotonic() < deadline, f"no {wanted!r}: {self.messages}"
            await asyncio.sleep(0.02)
        return self.lines(wanted)[0]


async def test_systemd_hears_ready_once_from_the_parent_when_every_worker_serves(
    environment: dict[str, str],
    throwaway: ThrowawayRedis,
    notify_socket: socket.socket,
    tmp_path: Path,
) -> None:
    notes = Notifications(notify_socket)
    parent = Workers(
        tmp_path,
        3,
        REDIS_URL=throwaway.url,
        NOTIFY_SOCKET=notify_socket.getsockname(),
        WATCHDOG_USEC="1000000",  # WatchdogSec=1: the parent pings every 0.5 s
        **environment,
    )
    try:
        await parent.start()
        _, sender, ready = await notes.wait_for("READY=1")
        assert sender == parent.pid
        assert "STATUS=serving with 3 workers" in ready.splitlines()
        # READY=1 came after every worker bound the port: all three answer at once.
        async with aiohttp.ClientSession() as session:
            by_node = await spread(session, parent.ws_url, nodes=3, per_node=1)
            assert {_pid(n) for n in by_node} == _children(parent.pid)

            # A killed worker is started again; the others keep serving meanwhile.
            victim = _pid(next(iter(by_node)))
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 20
            while not (len(_children(parent.pid)) == 3 and victim not in _children(parent.pid)):
                assert time.monotonic() < deadline, parent.log_tail()
                await asyncio.sleep(0.1)
            await notes.wait_for("STATUS=serving with 2 of 3 workers")
            await notes.wait_for("STATUS=serving with 3 workers", count=2)  # the new one is ready
            again = await spread(session, parent.ws_url, nodes=3, per_node=1)
            assert victim not in {_pid(n) for n in again}
            for sockets in (*by_node.values(), *again.values()):
                for sock in sockets:
                    await sock.close()
        await asyncio.sleep(1.2)
        assert len(notes.lines("WATCHDOG=1")) >= 2
        assert await parent.stop(signal.SIGTERM) == 0
        await notes.wait_for("STOPPING=1")
    finally:
        await parent.close()
        notes.task.cancel()
    # Only the parent spoke to "systemd"; READY=1 exactly once.
    assert {pid for _, pid, _ in notes.messages} == {parent.pid}, notes.messages
    assert len(notes.lines("READY=1")) == 1
