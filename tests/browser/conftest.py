"""Fixtures for the QA page in a real browser: a daemon subprocess and headless Chromium.

``daemon`` is ``appointease-realtime serve`` as a real process on a free port, in QA mode,
once on a fresh SQLite file and once on a throw-away MariaDB database (the ``backend``
parameter); ``.kill()`` then ``.start()`` restarts it on the same port, database and secrets.
``browser`` is Debian's Chromium (``/usr/bin/chromium``) driven by Playwright for Python;
nothing is downloaded.

Without Playwright, Chromium or MariaDB the tests skip locally and fail with ``CI=true``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MYSQL, need
from tests.processes import Daemon

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
RESUME_SECRET = "browser-test-resume-secret"
TOKEN_SECRET = "browser-test-token-secret-of-32-characters-at-least"


def chromium_installed() -> bool:
    """True when the Chromium binary is there."""
    return Path(CHROMIUM).is_file()


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
        [sys.executable, "-m", "appointease_realtime", "--env-file", os.devnull, *args],
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
    started = Daemon(tmp_path, **daemon_env)
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
