"""The systemd notify protocol, received on a real AF_UNIX datagram socket as systemd would."""

from __future__ import annotations

import asyncio
import http.client
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from appointease_realtime import systemd
from appointease_realtime.app import create_app
from tests.conftest import base_settings
from tests.processes import free_port

SCRIPT = Path(sys.executable).parent / "appointease-realtime"


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket bound in tmp and named by NOTIFY_SOCKET, as systemd sets it."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(10)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        yield sock


def receive_until(sock: socket.socket, wanted: str) -> list[str]:
    """Datagrams up to and including the first that contains the line ``wanted``."""
    seen: list[str] = []
    while True:
        try:
            message = sock.recv(4096).decode()
        except TimeoutError:
            raise AssertionError(f"no {wanted!r}; received {seen}") from None
        seen.append(message)
        if wanted in message.splitlines():
            return seen


def test_notify_sends_each_state(listener: socket.socket) -> None:
    for state in ("READY=1", "WATCHDOG=1", "STOPPING=1"):
        assert systemd.notify(state)
        assert listener.recv(4096) == state.encode()


def test_ready_says_ready_whatever_it_is_given(listener: socket.socket) -> None:
    systemd.ready("======== Running on http://127.0.0.1:8080 ========")
    assert "READY=1" in listener.recv(4096).decode().splitlines()


def test_notify_reaches_an_abstract_socket() -> None:
    name = f"appointease-test-{secrets.token_hex(6)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert systemd.notify("READY=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"READY=1"


def test_notify_without_systemd_does_nothing(tmp_path: Path) -> None:
    assert not systemd.notify("READY=1", {})
    assert not systemd.notify("READY=1", {"NOTIFY_SOCKET": "relative/not-allowed"})
    assert not systemd.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_is_half_the_period(
    environ: dict[str, str], interval: float | None
) -> None:
    assert systemd.watchdog_interval(environ) == interval


async def test_watchdog_loop_pings_until_cancelled(listener: socket.socket) -> None:
    listener.setblocking(False)
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(systemd.watchdog_loop(0.01))
    for _ in range(3):
        assert await asyncio.wait_for(loop.sock_recv(listener, 4096), 5) == b"WATCHDOG=1"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_context_feeds_the_watchdog_and_says_stopping(
    listener: socket.socket,
    monkeypatch: pytest.MonkeyPatch,
    aiohttp_client: Callable[..., Any],
    tmp_path: Path,
) -> None:
    """The cleanup context as the lead wires it: after the node's context."""
    monkeypatch.setenv("WATCHDOG_USEC", "20000")
    app = create_app(base_settings(sqlite_path=str(tmp_path / "ctx.sqlite3")))
    if systemd.systemd_context not in app.cleanup_ctx:
        app.cleanup_ctx.append(systemd.systemd_context)
    listener.setblocking(False)
    loop = asyncio.get_running_loop()

    async def next_state() -> str:
        return (await asyncio.wait_for(loop.sock_recv(listener, 4096), 5)).decode()

    client = await aiohttp_client(app)
    assert (await client.get("/readyz")).status == 200
    assert await next_state() == "WATCHDOG=1"
    await client.close()
    states = [await next_state()]
    while states[-1] == "WATCHDOG=1":
        states.append(await next_state())
    assert states[-1] == "STOPPING=1"


def _status(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_daemon_under_notify_socket(listener: socket.socket, tmp_path: Path) -> None:
    """The console script as systemd starts it: READY=1 once bound, WATCHDOG=1, STOPPING=1."""
    port = free_port()
    env = {
        **os.environ,
        "WATCHDOG_USEC": "400000",
        "SQLITE_PATH": str(tmp_path / "notify.sqlite3"),
        "DB_HOST": "",
        "DB_SOCKET": "",
    }
    args = [str(SCRIPT), "--env-file", os.devnull, "serve", "--host", "127.0.0.1"]
    proc = subprocess.Popen([*args, "--port", str(port)], env=env)
    try:
        receive_until(listener, "READY=1")
        assert _status(port, "/healthz") == 200, "READY=1 came before the port was bound"
        assert _status(port, "/readyz") == 200
        receive_until(listener, "WATCHDOG=1")
        proc.send_signal(signal.SIGTERM)
        receive_until(listener, "STOPPING=1")
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
