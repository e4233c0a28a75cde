"""The benchmark harness runs end to end on a tiny load, so it cannot rot.

No timing is asserted: benchmarks are not tests. Only that every figure is there: the headline
ratios and figures finite positive numbers, the rest numbers (or null where a floor could not
be measured, and then the output says why).
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pymysql
import pytest
from bench.run import REQUIRED_FIGURES, REQUIRED_RATIOS, figure_keys

from tests.conftest import MYSQL, need

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.mysql, pytest.mark.redis, pytest.mark.slow]


def _reachable(port: int) -> str | None:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError as exc:
        return str(exc)
    return None


def test_quick_run_reports_every_figure(tmp_path: Path) -> None:
    try:
        pymysql.connect(**MYSQL, password="", connect_timeout=3).close()
    except pymysql.err.Error as exc:
        need("MariaDB at 127.0.0.1:3306", str(exc))
    problem = _reachable(6379)
    if problem:
        need("Redis at 127.0.0.1:6379", problem)  # the cross-node figure needs two daemons on it
    out = tmp_path / "quick.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())

    def positive(value: object) -> bool:
        return isinstance(value, (int, float)) and math.isfinite(value) and value > 0

    assert set(result["ratios"]) == set(REQUIRED_RATIOS)
    for key, value in result["ratios"].items():
        assert positive(value), (key, value, run.stderr[-3000:])
    figures = result["figures"]
    for key in REQUIRED_FIGURES:
        assert positive(figures.get(key)), (key, figures.get(key), run.stderr[-3000:])
    for key in figure_keys():
        value = figures.get(key, "absent")
        if value is None:  # a part that could not be measured: a note says why
            assert any("not measured" in note for note in result["notes"]), (key, run.stdout)
            continue
        assert isinstance(value, (int, float)) and math.isfinite(value), (key, value)
    if figures["ping_50_vs_node_ws"] is None:  # no node/npm, or the install failed: said so
        assert any("Node ws floor not measured" in note for note in result["notes"])
        assert "| Node ws: " in run.stdout
    else:
        assert positive(figures["ping_50_vs_node_ws"]), figures["ping_50_vs_node_ws"]
    assert "| figure | value | floor (same run) | ratio | target |" in run.stdout
    # the daemons ran this tree's code (``--daemon-path`` would name another's)
    assert result["daemon_module"] == str(ROOT / "daemon" / "appointease_realtime" / "__init__.py")
    assert result["details"]["lock_driver"]["owner_per_client"] is True  # as the daemon counts
    machine = result["machine"]
    assert machine["nproc"] >= 1
    assert machine["cpu"] and machine["python"] and machine["aiohttp"]
    assert f"aiohttp {machine['aiohttp']}" in run.stdout


def test_instruction_counts_run_for_the_echo_and_the_daemon(tmp_path: Path) -> None:
    """``bench.instructions`` on a few pings: a count for each server, and the ratio."""
    if shutil.which("valgrind") is None:
        need("valgrind", "not installed (scripts/test.sh installs it)")
    out = tmp_path / "instructions.json"
    command = ["bench.instructions", "--connections", "3", "--pings", "5", "--out", str(out)]
    run = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [row["server"] for row in rows] == ["echo", "daemon"]
    for row in rows:
        assert row["pings"] == 15 and row["instructions_per_ping"] > 1000, row
        assert row["d1_misses_per_ping"] > 0 and row["ll_misses_per_ping"] >= 0, row
    assert rows[0]["vs_echo"] == 1.0 and rows[1]["vs_echo"] > 0
    assert "| daemon | 3 |" in run.stdout
