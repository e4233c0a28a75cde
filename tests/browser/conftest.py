"""Fixtures for the QA page in a real browser: a daemon subprocess and headless Chromium.

``daemon`` is ``appointease-realtime serve`` as a real process on a free port, in QA mode,
once on a fresh SQLite file and once on a throw-away MariaDB database (the ``backend``
parameter); ``.kill()`` then ``.start()`` restarts it on the same port, database and secrets.
``browser`` is Debian's Chromium (``/usr/bin/chromium``) driven by Playwright for Python;
nothing is downloaded.

Without Playwright, Chromium or MariaDB the tests skip locally and fail with ``CI=true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import MYSQL, need

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The daemon under test: the venv's console script, or APPOINTEASE_DAEMON (a command line).
DAEMON = shlex.split(os.environ.get("APPOINTEASE_DAEMON", "")) or [
    str(Path(sys.executable).with_name("appointease-realtime"))
]
RESUME_SECRET = "browser-test-resume-secret"
TOKEN_SECRET = "browser-test-token-secret-of-32-characters-at-least"


def chromium_installed() -> bool:
    """True when the Chromium binary is there."""
    return Path(CHROMIUM).is_file()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    """One daemon process; ``kill`` and ``start`` again keep its port, database and secrets."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.env = env
        self.workdir = workdir
        self.log_path = workdir / "daemon.log"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """The page as the daemon serves it."""
        return f"http://127.0.0.1:{self.port}/test-websocket.html"

    async def start(self, timeout: float = 20.0) -> None:
        """Start the process and wait until /readyz answers 200."""
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *DAEMON,
                "--env-file",
                os.devnull,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        deadline = asyncio.get_running_loop().time() + timeout
        async with aiohttp.ClientSession() as http:
            while asyncio.get_running_loop().time() < deadline:
                if self.process.returncode is not None:
                    break
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(f"http://127.0.0.1:{self.port}/readyz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise AssertionError(f"the daemon did not become ready; its log:\n{self.log_tail()}")

    async def kill(self) -> None:
        """SIGKILL: no goodbye to the clients, nothing cleaned up."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not go within 10 s."""
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            await self.kill()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the daemon's output."""
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _base_env(tmp_path: Path) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "VIRTUAL_ENV")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env.update(
        {
            "QA_MODE": "true",
            "RESUME_SECRET": RESUME_SECRET,
            "TOKEN_SECRET": TOKEN_SECRET,
            "LOCK_RELEASE_GRACE_SECONDS": "1",
            "LOCK_SWEEP_INTERVAL_SECONDS": "0.2",
            "RECONCILE_INTERVAL_SECONDS": "1",
            "LOG_LEVEL": "INFO",
            "SQLITE_PATH": str(tmp_path / "qa.sqlite3"),
        }
    )
    return env


def _run_cli(env: dict[str, str], *args: str) -> None:
    result = subprocess.run(
        [*DAEMON, "--env-file", os.devnull, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def daemon_env(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The daemon's environment: QA mode on a fresh SQLite file or throw-away MariaDB database."""
    env = _base_env(tmp_path)
    if backend == "mysql":
        name = request.getfixturevalue("mysql_database")
        env.update(
            {
                "DB_HOST": str(MYSQL["host"]),
                "DB_PORT": "3306",
                "DB_USER": "root",
                "DB_PASSWORD": "",
                "DB_NAME": name,
            }
        )
        _run_cli(env, "init-db")
    return env


@pytest.fixture
async def daemon(daemon_env: dict[str, str], tmp_path: Path) -> AsyncIterator[Daemon]:
    """A running QA-mode daemon (``appointease-realtime serve`` as a real process)."""
    started = Daemon(daemon_env, tmp_path)
    try:
        await started.start()
        yield started
    finally:
        await started.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium from Debian, driven by Playwright (no browser download)."""
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        need("Playwright for Python", str(exc))
    if not chromium_installed():
        need("Chromium", f"{CHROMIUM} is missing (apt-get install chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()
