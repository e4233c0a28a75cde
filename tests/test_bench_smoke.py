"""The benchmark harness runs end to end on a tiny load, so it cannot rot.

No timing is asserted: benchmarks are not tests. Only that every figure is there, a number.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import pymysql
import pytest
from bench.run import QUICK, figure_keys

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
    figures = result["figures"]
    for key in figure_keys(QUICK):
        value = figures.get(key)
        assert isinstance(value, (int, float)) and math.isfinite(value), (key, value, run.stderr)
    assert "| figure | value |" in run.stdout
    assert result["machine"]["nproc"] >= 1
