"""The release as an admin gets it: scripts/dist.sh, the wheel installed into a fresh venv
outside the checkout, the sdist's contents, and the versions every part reports."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from appointease_realtime import __version__
from tests.processes import Daemon

ROOT = Path(__file__).resolve().parent.parent
BRIDGE = ROOT / "wp-bridge" / "appointease-realtime-bridge"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``scripts/dist.sh OUT``, as the README tells a maintainer to run it."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "dist.sh"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"release {__version__}" in result.stdout
    return out


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the wheel installed the documented way (not editable)."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    wheel = next(dist.glob("appointease_realtime-*.whl"))
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            str(wheel),
        ],
        check=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},  # nothing from here
    )
    yield venv


def cli(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed console script, run outside the checkout."""
    return subprocess.run(
        [str(venv / "bin" / "appointease-realtime"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},
        check=False,
    )


def test_dist_holds_wheel_sdist_and_plugin_zip(dist: Path) -> None:
    names = sorted(path.name for path in dist.iterdir())
    assert f"appointease_realtime-{__version__}-py3-none-any.whl" in names
    assert f"appointease_realtime-{__version__}.tar.gz" in names
    assert f"appointease-realtime-bridge-{__version__}.zip" in names


def test_wheel_carries_the_qa_page_and_client_once(dist: Path) -> None:
    wheel = zipfile.ZipFile(next(dist.glob("*.whl")))
    names = wheel.namelist()
    page = wheel.read("appointease_realtime/static/test-websocket.html")
    client = wheel.read("appointease_realtime/static/realtime-client.js")
    assert page == (ROOT / "test-websocket.html").read_bytes()
    assert client == (BRIDGE / "assets" / "realtime-client.js").read_bytes()
    assert any(name.endswith("licenses/LICENSE") for name in names)
    metadata = wheel.read(f"appointease_realtime-{__version__}.dist-info/METADATA").decode()
    assert "License: GPL-2.0-or-later" in metadata or "GPL-2.0-or-later" in metadata
    assert "Requires-Python: >=3.11" in metadata
    assert "Project-URL: Source" in metadata


def test_sdist_carries_everything_a_deployment_needs(dist: Path) -> None:
    with tarfile.open(next(dist.glob("*.tar.gz"))) as sdist:
        members = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for needed in (
        "LICENSE",
        "README.md",
        ".env.example",
        "test-websocket.html",
        "systemd/appointease-realtime.service",
        "supervisor/appointease-realtime.conf",
        "docs/operations.md",
        "wp-bridge/appointease-realtime-bridge/appointease-realtime-bridge.php",
        "daemon/appointease_realtime/static/realtime-client.js",
    ):
        assert needed in members, needed


def test_plugin_zip_has_one_top_folder(dist: Path) -> None:
    plugin = zipfile.ZipFile(next(dist.glob("appointease-realtime-bridge-*.zip")))
    names = plugin.namelist()
    assert all(name.startswith("appointease-realtime-bridge/") for name in names)
    assert "appointease-realtime-bridge/appointease-realtime-bridge.php" in names
    assert "appointease-realtime-bridge/readme.txt" in names
    assert not [name for name in names if "/." in name or "tests/" in name]


def found(pattern: str, text: str) -> str:
    """The first group of ``pattern`` in ``text`` (multi-line); fails when absent."""
    match = re.search(pattern, text, re.M)
    assert match is not None, pattern
    return match[1]


def test_every_part_reports_one_version() -> None:
    """The daemon, the plugin header and constant, readme.txt and the JS client agree."""
    header = (BRIDGE / "appointease-realtime-bridge.php").read_text()
    assert found(r"^\s*\*\s*Version:\s*(\S+)", header) == __version__
    assert found(r"define\( 'APPOINTEASE_RT_VERSION', '([^']+)' \);", header) == __version__
    assert found(r"^Stable tag:\s*(\S+)", (BRIDGE / "readme.txt").read_text()) == __version__
    client = (BRIDGE / "assets" / "realtime-client.js").read_text()
    assert found(r"VERSION\s*=\s*['\"]([^'\"]+)['\"]", client) == __version__


def test_installed_cli_version_genconfig_and_check(installed: Path, tmp_path: Path) -> None:
    assert cli(installed, "--version", cwd=tmp_path).stdout.strip() == (
        f"appointease-realtime {__version__}"
    )
    made = cli(installed, "genconfig", "--output", "site.env", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "define( 'APPOINTEASE_RT_HOOK_SECRET', 'whsec_" in made.stdout
    assert (tmp_path / "site.env").stat().st_mode & 0o077 == 0
    checked = cli(installed, "check", "--env-file", "site.env", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "warning" not in checked.stdout and "not a setting" not in checked.stdout
    # --env-file also goes before the subcommand
    before = cli(installed, "--env-file", "site.env", "check", cwd=tmp_path)
    assert before.returncode == 0 and before.stdout == checked.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site.env"]  # check created nothing


async def test_installed_init_db_creates_the_plugin_tables_from_the_packaged_schema(
    installed: Path, tmp_path: Path, mysql_database: str
) -> None:
    (tmp_path / "site.env").write_text(
        f"DB_HOST=127.0.0.1\nDB_USER=root\nDB_NAME={mysql_database}\n", encoding="utf-8"
    )
    made = await asyncio.to_thread(
        cli, installed, "--env-file", "site.env", "init-db", cwd=tmp_path
    )
    assert made.returncode == 0, made.stdout + made.stderr
    checked = await asyncio.to_thread(
        cli, installed, "--env-file", "site.env", "check", cwd=tmp_path
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "wp_appointease_slot_locks" in made.stdout and "wp_appointments" in made.stdout


async def test_installed_daemon_serves_the_qa_page_and_client(
    installed: Path, tmp_path: Path
) -> None:
    daemon = Daemon(tmp_path, command=[str(installed / "bin" / "appointease-realtime")])
    await daemon.start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{daemon.url}/test-websocket.html") as page:
                assert page.status == 200
                assert page.content_type == "text/html"
                assert (await page.read()) == (ROOT / "test-websocket.html").read_bytes()
            async with session.get(f"{daemon.url}/assets/realtime-client.js") as script:
                assert script.status == 200
                assert f"'{__version__}'" in (await script.text()).replace('"', "'")
    finally:
        assert await daemon.stop() == 0
    log = daemon.log.read_text()
    assert f"listening on http://127.0.0.1:{daemon.port} (store sqlite, broker memory" in log
    assert log.rstrip().endswith("stopped") or "stopped" in log.splitlines()[-1]


def test_operations_doc_names_only_shipped_paths(dist: Path) -> None:
    """Every repository path docs/operations.md tells an admin to use is in the sdist."""
    with tarfile.open(next(dist.glob("*.tar.gz"))) as sdist:
        members = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    text = (ROOT / "docs" / "operations.md").read_text()
    named = set(
        re.findall(r"(?<![\w/.-])((?:systemd|supervisor|nginx|docs|wp-bridge)/[\w./-]+\w)", text)
    )
    assert {"systemd/appointease-realtime.service", "supervisor/appointease-realtime.conf"} <= named
    assert sorted(named - members) == []
