"""The systemd unit and the supervisor program config, checked by the real tools.

``systemd-analyze verify`` checks that ExecStart's binary exists, so it runs on a copy
whose ExecStart points at this venv's console script; everything else is the shipped
file. The supervisor test runs a real supervisord on a copy with paths moved into tmp.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appointease_realtime.config import Settings
from tests.conftest import need
from tests.processes import free_port

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "appointease-realtime.service"
PROGRAM = ROOT / "supervisor" / "appointease-realtime.conf"
SCRIPT = Path(sys.executable).parent / "appointease-realtime"
SHIPPED_SCRIPT = "/opt/appointease-realtime/venv/bin/appointease-realtime"
NAME = "appointease-realtime"


def _unit_values() -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit, by key (a key may repeat)."""
    values: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def _seconds(value: str) -> float:
    """A plain systemd time span in seconds (``30``, ``30s``, ``1min``)."""
    if value.endswith("min"):
        return float(value[:-3]) * 60
    return float(value.removesuffix("s"))


def _filled(text: str, replacements: dict[str, str]) -> str:
    """``text`` with each key replaced; every key must occur, so the shipped file is what runs."""
    for old, new in replacements.items():
        assert old in text, f"{old!r} is no longer in the shipped file"
        text = text.replace(old, new)
    return text


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("systemd-analyze") is None:
        need("systemd-analyze", "install the Debian package systemd")
    return subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=unit.parent,
    )


def test_unit_declares_what_operations_rely_on() -> None:
    unit = _unit_values()
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert unit["ExecStart"] == [f"{SHIPPED_SCRIPT} --env-file /dev/null serve"]
    assert unit["EnvironmentFile"] == ["/etc/appointease-realtime/env"]
    assert unit["User"] == [NAME] and unit["Group"] == [NAME]
    assert unit["Restart"] == ["on-failure"]
    assert int(unit["LimitNOFILE"][0]) >= 65536
    assert _seconds(unit["WatchdogSec"][0]) >= 10
    assert _seconds(unit["TimeoutStopSec"][0]) > Settings().shutdown_timeout_seconds
    assert unit["StateDirectory"] == [NAME]
    assert unit["Environment"] == [f"SQLITE_PATH=/var/lib/{NAME}/{NAME}.sqlite3"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert unit[key] == ["yes"], key
    assert unit["ProtectSystem"] == ["strict"]


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    copy = tmp_path / UNIT.name
    copy.write_text(_filled(UNIT.read_text(), {SHIPPED_SCRIPT: str(SCRIPT)}))
    result = _verify(copy)
    assert result.returncode == 0, result.stderr
    assert (result.stdout + result.stderr).strip() == "", "systemd-analyze printed a warning"


def test_systemd_analyze_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    """verify exits 0 on a bad directive and only warns, so the test above demands silence."""
    copy = tmp_path / UNIT.name
    text = _filled(UNIT.read_text(), {SHIPPED_SCRIPT: str(SCRIPT), "Type=notify": "Type=notfy"})
    copy.write_text(text)
    result = _verify(copy)
    assert "Type=notfy" in result.stderr or "notfy" in result.stderr


# ---- supervisor ----


def _get(port: int, path: str) -> int | None:
    """The status of ``GET path``, or None when nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Supervisor:
    """A real supervisord in ``tmp`` running the shipped program config with paths filled in."""

    def __init__(self, tmp: Path, port: int) -> None:
        self.tmp = tmp
        self.port = port
        self.conf = tmp / "supervisord.conf"
        self.log = tmp / "supervisord.log"
        self.daemon_log = tmp / "daemon.log"
        env_file = tmp / "env"
        env_file.write_text(
            f"HOST=127.0.0.1\nPORT={port}\nSQLITE_PATH={tmp / 'realtime.sqlite3'}\n"
            "DB_HOST=\nDB_SOCKET=\nRESUME_SECRET=supervisor-test\n"
        )
        program = _filled(
            PROGRAM.read_text(),
            {
                SHIPPED_SCRIPT: str(SCRIPT),
                "/etc/appointease-realtime/env": str(env_file),
                "directory=/var/lib/appointease-realtime": f"directory={tmp}",
                f"user={NAME}\n": "",
                "/var/log/appointease-realtime/daemon.log": str(self.daemon_log),
            },
        )
        (tmp / "program.conf").write_text(program)
        self.conf.write_text(
            f"[unix_http_server]\nfile={tmp / 'supervisor.sock'}\n\n"
            f"[supervisord]\nlogfile={self.log}\npidfile={tmp / 'supervisord.pid'}\n"
            f"childlogdir={tmp}\nnodaemon=true\n\n"
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
            f"[supervisorctl]\nserverurl=unix://{tmp / 'supervisor.sock'}\n\n"
            f"[include]\nfiles = {tmp / 'program.conf'}\n"
        )
        # The daemon must not inherit a NOTIFY_SOCKET or settings from the test's environment.
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "PORT", "HOST")}
        self.proc = subprocess.Popen(
            ["supervisord", "-n", "-c", str(self.conf)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def ctl(self, *args: str) -> str:
        result = subprocess.run(
            ["supervisorctl", "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return result.stdout.strip()

    def pid(self) -> int:
        """The daemon's pid, 0 while it is not running."""
        answer = self.ctl("pid", NAME)
        return int(answer) if answer.isdigit() else 0

    def healthy(self) -> bool:
        return _get(self.port, "/healthz") == 200

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    """supervisord running the shipped program config; shut down afterwards."""
    for tool in ("supervisord", "supervisorctl"):
        if shutil.which(tool) is None:
            need(tool, "install the Debian package supervisor")
    running = Supervisor(tmp_path, free_port())
    try:
        yield running
    finally:
        running.close()


@pytest.mark.slow
def test_supervisor_restarts_a_killed_daemon_and_stops_it_cleanly(supervisor: Supervisor) -> None:
    _wait_for("/healthz under supervisord", supervisor.healthy)
    _wait_for("RUNNING", lambda: "RUNNING" in supervisor.ctl("status", NAME))
    first = supervisor.pid()
    assert first > 0

    os.kill(first, signal.SIGKILL)
    _wait_for("a new daemon", lambda: supervisor.pid() not in (0, first))
    _wait_for("/healthz from the new daemon", supervisor.healthy)
    _wait_for("RUNNING again", lambda: "RUNNING" in supervisor.ctl("status", NAME))
    second = supervisor.pid()

    assert supervisor.ctl("stop", NAME) == f"{NAME}: stopped"
    assert "STOPPED" in supervisor.ctl("status", NAME)
    with pytest.raises(ProcessLookupError):
        os.kill(second, 0)
    assert _get(supervisor.port, "/healthz") is None

    assert supervisor.ctl("shutdown").endswith("Shut down")
    assert supervisor.proc.wait(30) == 0
    log = supervisor.log.read_text()
    assert f"exited: {NAME} (terminated by SIGKILL; not expected)" in log
    assert f"stopped: {NAME} (exit status 0)" in log, log
    assert "serving on sqlite store" in supervisor.daemon_log.read_text()
