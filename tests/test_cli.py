"""The command line: serve, check, init-db, seed-demo, as an admin runs them."""

from __future__ import annotations

import gc
import logging
import os
import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from appointease_realtime.__main__ import freeze_heap, raise_open_files_limit
from appointease_realtime.config import Settings
from tests.conftest import need
from tests.processes import Daemon, free_port

CLI = [sys.executable, "-m", "appointease_realtime"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--env-file", os.devnull, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def db_env(settings: Settings) -> dict[str, str]:
    if settings.uses_mysql:
        return {"DB_HOST": str(settings.db_host), "DB_NAME": settings.db_name, "DB_USER": "root"}
    return {"SQLITE_PATH": settings.sqlite_path, "DB_HOST": ""}


def test_bad_config_stops_with_one_line() -> None:
    result = run("check", env={"PORT": "eighty"})
    assert result.returncode == 2
    assert (
        result.stderr.strip() == "configuration error: PORT: must be a whole number, got 'eighty'"
    )


def test_check_then_init_db(mysql_database: str) -> None:
    env = {
        "DB_HOST": "127.0.0.1",
        "DB_NAME": mysql_database,
        "DB_USER": "root",
        "TABLE_PREFIX": "wp_9_",
    }
    missing = run("check", env=env)
    assert missing.returncode == 1
    assert "schema: table wp_9_appointments is missing" in missing.stdout
    created = run("init-db", env=env)
    assert created.returncode == 0, created.stderr
    assert "created: wp_9_appointments, wp_9_appointease_slot_locks" in created.stdout
    again = run("init-db", env=env)
    assert "tables already exist; nothing altered" in again.stdout
    assert run("check", env=env).returncode == 0


@pytest.mark.parametrize("backend", ["mysql"])
def test_check_reports_an_unreachable_database(settings: Settings) -> None:
    result = run("check", env={"DB_HOST": "127.0.0.1", "DB_PORT": str(free_port())})
    assert result.returncode == 1 and "database unavailable" in result.stderr


def test_seed_demo_only_on_the_embedded_database(tmp_path: Path) -> None:
    path = str(tmp_path / "demo.sqlite3")
    first = run("seed-demo", "--days", "2", env={"SQLITE_PATH": path, "DB_HOST": ""})
    assert first.returncode == 0 and "10 appointment(s) added" in first.stdout
    second = run("seed-demo", "--days", "2", env={"SQLITE_PATH": path, "DB_HOST": ""})
    assert "0 appointment(s) added" in second.stdout
    refused = run("seed-demo", env={"DB_HOST": "127.0.0.1"})
    assert refused.returncode == 2 and "embedded" in refused.stderr


async def test_serve_holds_a_slot_for_a_websocket_client(tmp_path: Path) -> None:
    """The README's promise: start it, connect with any client, hold a slot."""
    daemon = Daemon(tmp_path)
    await daemon.start()
    async with aiohttp.ClientSession() as session, session.ws_connect(daemon.ws_url) as ws:
        assert (await ws.receive_json())["type"] == "connection"
        await ws.send_json(
            {"type": "lock_slot", "date": "2030-05-06", "time": "10:00", "employeeId": 1}
        )
        assert (await ws.receive_json())["type"] == "slot_locked"
    assert await daemon.stop() == 0


def test_check_flags_a_typo_and_missing_secrets_and_creates_nothing(tmp_path: Path) -> None:
    env_file = tmp_path / "site.env"
    env_file.write_text(f"LOCK_TTL=5\nSQLITE_PATH={tmp_path / 'data' / 'db.sqlite3'}\n")
    result = subprocess.run(
        [*CLI, "check", "--env-file", str(env_file)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "DB_HOST": ""},
        check=False,
    )
    assert result.returncode == 1
    assert "config: LOCK_TTL is not a setting (did you mean LOCK_TTL_SECONDS?)" in result.stdout
    for key in ("HOOK_SECRET", "TOKEN_SECRET", "RESUME_SECRET", "DEBUG_TOKEN"):
        assert f"warning: {key} is not set: " in result.stdout
    assert "database: cannot use SQLite file: folder" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site.env"]  # nothing created


def test_check_on_an_unusable_sqlite_path_is_one_line(tmp_path: Path) -> None:
    result = run("check", env={"DB_HOST": "", "SQLITE_PATH": str(tmp_path)})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"database: cannot use SQLite file: {tmp_path} is not a file" in result.stdout


def test_genconfig_never_overwrites_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    target.write_text("PORT=9000\n")
    refused = run("genconfig", "--output", str(target))
    assert refused.returncode == 1 and "not overwritten" in refused.stderr
    assert target.read_text() == "PORT=9000\n"
    forced = run("genconfig", "--output", str(target), "--force")
    assert forced.returncode == 0
    text = target.read_text()
    assert "HOOK_SECRET=whsec_" in text and "\n# PORT=8080\n" in text


def test_genconfig_secrets_are_fresh_and_pass_check(tmp_path: Path) -> None:
    first, second = tmp_path / "a.env", tmp_path / "b.env"
    assert run("genconfig", "--output", str(first)).returncode == 0
    assert run("genconfig", "--output", str(second)).returncode == 0
    secrets_of = [
        {
            line
            for line in path.read_text().splitlines()
            if re.match(r"[A-Z_]+(SECRET|TOKEN)=.", line)
        }
        for path in (first, second)
    ]
    assert len(secrets_of[0]) == 4 and not secrets_of[0] & secrets_of[1]
    env = {"DB_HOST": "", "SQLITE_PATH": str(tmp_path / "x.sqlite3")}
    checked = subprocess.run(
        [*CLI, "check", "--env-file", str(first)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )
    assert checked.returncode == 0, checked.stdout
    assert "warning" not in checked.stdout


def test_a_file_that_is_no_database_is_one_line_for_check_and_serve(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite3"
    bad.write_text("not a database")
    env = {"DB_HOST": "", "SQLITE_PATH": str(bad)}
    for args in (("check",), ("serve", "--port", str(free_port()))):
        result = run(*args, env=env)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"cannot open SQLite file {bad}: file is not a database" in result.stderr


class LowSoftLimit(Daemon):
    """``serve`` started by ``prlimit`` under a soft open-files limit of ``soft``, as from a shell
    whose soft limit is 1,024; the hard limit stays this process's. ``extra``: more arguments."""

    def __init__(self, workdir: Path, soft: int, *extra: str) -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        shown = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
        super().__init__(workdir, command=["prlimit", f"--nofile={soft}:{shown}", *CLI])
        self.extra = list(extra)

    def command_line(self) -> list[str]:
        return [*super().command_line(), *self.extra]


@pytest.mark.parametrize("worker", [False, True], ids=["serve", "worker"])
async def test_serve_raises_its_soft_open_files_limit_to_the_hard_one(
    tmp_path: Path, worker: bool
) -> None:
    """Each WebSocket is one open file: a soft limit of 256 would refuse the 250th client.
    A worker of ``serve --workers N`` is started as ``serve --worker-of PID`` (this test is its
    parent here) and raises its own."""
    soft, hard = 256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= soft:
        pytest.skip(f"the hard open-files limit is {hard}: nothing to raise")
    if shutil.which("prlimit") is None:
        need("prlimit", "not installed (util-linux)")
    extra = ["--worker-of", str(os.getpid())] if worker else []
    daemon = LowSoftLimit(tmp_path, soft, *extra)
    await daemon.start()
    try:
        assert daemon.open_files_limit() == hard
        log = daemon.log.read_text()
        assert f"open files: limit {hard} (raised from {soft})" in log
        assert re.search(r"start-up heap frozen: [1-9][0-9]{3,} objects", log)
    finally:
        assert await daemon.stop() == 0


def test_the_start_up_heap_leaves_the_collector_s_walks() -> None:
    """What lives at start-up is no longer among the objects a collection walks; what comes
    later still is."""
    early: list[object] = []

    def walked(thing: object) -> bool:
        return any(tracked is thing for tracked in gc.get_objects())

    assert walked(early)
    try:
        frozen = freeze_heap()
        later: list[object] = []
        assert frozen == gc.get_freeze_count() > 1000
        assert not walked(early) and walked(later)
    finally:
        gc.unfreeze()


def test_a_refused_raise_keeps_the_soft_limit_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(resource_: int, limits: tuple[int, int]) -> None:
        raise ValueError("not allowed to raise maximum limit")

    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))
    monkeypatch.setattr(resource, "setrlimit", refuse)
    with caplog.at_level(logging.INFO, logger="appointease_realtime"):
        raise_open_files_limit()
    assert caplog.messages == [
        "open files: limit 1024 (raising it to 4096 failed: not allowed to raise maximum limit)"
    ]
    caplog.clear()
    monkeypatch.setattr(resource, "getrlimit", lambda _: (4096, 4096))
    with caplog.at_level(logging.INFO, logger="appointease_realtime"):
        raise_open_files_limit()  # already equal: setrlimit is not called
    assert caplog.messages == ["open files: limit 4096"]
