"""The bridge as it is released: the zip, its version, readme.txt, the .pot, and
a WordPress that installed it from that zip (Plugins > Add New > Upload Plugin).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from wp_harness import BRIDGE_ZIP_SCRIPT, PLUGIN_DIR, PLUGIN_SLUG, REPO, WordPressSite

import appointease_realtime

MAIN_FILE = PLUGIN_DIR / "appointease-realtime-bridge.php"
POT = PLUGIN_DIR / "languages" / "appointease-realtime-bridge.pot"
TOP = "appointease-realtime-bridge/"


def _header(name: str) -> str:
    match = re.search(rf"^\s*\*\s*{re.escape(name)}:\s*(.+?)\s*$", MAIN_FILE.read_text(), re.M)
    assert match is not None, name
    return match.group(1)


def _shipped_files() -> set[str]:
    """What a site needs: every file of the plugin directory but dotfiles (and tests)."""
    return {
        TOP + path.relative_to(PLUGIN_DIR).as_posix()
        for path in PLUGIN_DIR.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") or part == "tests" for part in path.parts[-4:])
    }


def _script(
    *args: str, cwd: Path = REPO, script: Path = BRIDGE_ZIP_SCRIPT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_one_version_everywhere() -> None:
    version = _header("Version")
    assert version == appointease_realtime.__version__ == "0.2.0"
    source = MAIN_FILE.read_text()
    assert f"define( 'APPOINTEASE_RT_VERSION', '{version}' );" in source
    readme = (PLUGIN_DIR / "readme.txt").read_text()
    assert re.search(rf"^Stable tag: {re.escape(version)}$", readme, re.M)
    client = (PLUGIN_DIR / "assets" / "realtime-client.js").read_text()
    assert f"const VERSION = '{version}';" in client
    assert "AppointEaseRealtime.version = VERSION;" in client
    node = shutil.which("node")
    if node:  # what a page actually sees
        out = subprocess.run(
            [
                node,
                "-e",
                "const c = require(process.argv[1]); console.log(c.version, c.VERSION)",
                str(PLUGIN_DIR / "assets" / "realtime-client.js"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert out.stdout.split() == [version, version]
    assert _header("License") == "GPL-2.0-or-later"
    assert _header("Text Domain") == "appointease-realtime-bridge"
    assert (PLUGIN_DIR / _header("Domain Path").lstrip("/")).is_dir()


def test_readme_txt_is_in_the_wordpress_org_format() -> None:
    readme = (PLUGIN_DIR / "readme.txt").read_text()
    lines = readme.splitlines()
    assert lines[0] == "=== AppointEase Realtime Bridge ===" == f"=== {_header('Plugin Name')} ==="
    head = dict(line.split(": ", 1) for line in lines[1 : lines.index("")] if ": " in line)
    for field in (
        "Contributors",
        "Tags",
        "Requires at least",
        "Tested up to",
        "Requires PHP",
        "Stable tag",
        "License",
        "License URI",
    ):
        assert head.get(field), field
    assert head["Requires at least"] == _header("Requires at least")
    assert head["Requires PHP"] == _header("Requires PHP")
    assert head["License"] == _header("License")
    assert len(head["Tags"].split(",")) <= 5
    short = lines[lines.index("") + 1]
    assert short and not short.startswith("=") and len(short) <= 150
    sections = re.findall(r"^== (.+) ==$", readme, re.M)
    for section in ("Description", "Installation", "Frequently Asked Questions", "Changelog"):
        assert section in sections, section
    assert f"= {head['Stable tag']} =" in readme.split("== Changelog ==")[1]
    # True to the code: what the installation steps name exists.
    assert "Upload Plugin" in readme and "Generate secrets" in readme
    for word in ("appointease_rt_staff", "HOOK_SECRET=", "TOKEN_SECRET=", "APPOINTEASE_RT_URL"):
        assert word in readme, word


def test_the_zip_holds_exactly_what_a_site_needs(bridge_zip: Path) -> None:
    assert bridge_zip.name == f"appointease-realtime-bridge-{_header('Version')}.zip"
    with zipfile.ZipFile(bridge_zip) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        files = {n for n in names if not n.endswith("/")}
        assert all(n.startswith(TOP) for n in names), names
        assert files == _shipped_files()
        for needed in (
            "appointease-realtime-bridge.php",
            "uninstall.php",
            "readme.txt",
            "README.md",
            "languages/appointease-realtime-bridge.pot",
            "assets/realtime-client.js",
            "includes/class-settings-page.php",
        ):
            assert TOP + needed in files, needed
        assert not any("/." in n or "/tests/" in n for n in names)
        for name in files:
            assert archive.read(name) == (PLUGIN_DIR / name.removeprefix(TOP)).read_bytes()


def test_the_zip_script_refuses_clearly(tmp_path: Path) -> None:
    no_args = _script()
    assert no_args.returncode != 0 and "usage" in no_args.stderr
    # A copy of the tree whose readme.txt lags behind the header: nothing is built.
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "bridge-zip.sh"
    shutil.copy(BRIDGE_ZIP_SCRIPT, script)
    plugin = tmp_path / "wp-bridge" / "appointease-realtime-bridge"
    shutil.copytree(PLUGIN_DIR, plugin)
    readme = plugin / "readme.txt"
    readme.write_text(readme.read_text().replace("Stable tag: 0.2.0", "Stable tag: 0.1.9"))
    (plugin / ".secret-notes").write_text("not for the zip")
    out = tmp_path / "out"
    lagging = _script(str(out), script=script)
    assert lagging.returncode != 0
    assert "Stable tag is '0.1.9'" in lagging.stderr
    assert not out.exists() or not list(out.glob("*.zip"))
    # Fixed, it builds, and leaves the dotfile out.
    readme.write_text(readme.read_text().replace("Stable tag: 0.1.9", "Stable tag: 0.2.0"))
    built = _script(str(out), script=script)
    assert built.returncode == 0, built.stderr
    with zipfile.ZipFile(built.stdout.strip()) as archive:
        assert TOP + ".secret-notes" not in archive.namelist()


def _msgids(pot: str) -> set[tuple[str, str, str]]:
    """(msgctxt, msgid, msgid_plural) of every entry but the header."""
    entries: set[tuple[str, str, str]] = set()
    for block in re.split(r"\n\s*\n", pot):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            match = re.match(r'^(msgctxt|msgid|msgid_plural|msgstr(?:\[\d+\])?) "(.*)"$', line)
            if match:
                key = match.group(1)
                fields[key] = match.group(2)
            elif key and line.startswith('"'):
                fields[key] += line[1:-1]
        if fields.get("msgid"):
            entries.add(
                (fields.get("msgctxt", ""), fields["msgid"], fields.get("msgid_plural", ""))
            )
    return entries


def test_the_committed_pot_has_every_string_of_the_code(tmp_path: Path) -> None:
    if shutil.which("xgettext") is None:
        reason = "xgettext is missing (apt-get install gettext)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    fresh = tmp_path / "fresh.pot"
    result = _script("--pot", str(fresh))
    assert result.returncode == 0, result.stderr
    generated, committed = _msgids(fresh.read_text()), _msgids(POT.read_text())
    # The parser sees real strings (so an empty comparison cannot pass by accident).
    for known in (
        "Send test hook",
        "Generate secrets",
        "AppointEase Realtime Bridge",
        "%1$d event(s) queued, %2$d due now.",
    ):
        assert ("", known, "") in generated, known
    missing = generated - committed
    assert not missing, f"regenerate with scripts/bridge-zip.sh --pot; missing: {sorted(missing)}"
    stale = committed - generated
    assert not stale, f"regenerate with scripts/bridge-zip.sh --pot; stale: {sorted(stale)}"
    assert '"Content-Type: text/plain; charset=UTF-8\\n"' in POT.read_text()
    assert '"X-Domain: appointease-realtime-bridge\\n"' in POT.read_text()


def test_the_site_runs_the_copy_installed_from_the_zip(
    wordpress_site: WordPressSite, bridge_zip: Path
) -> None:
    site = wordpress_site
    report = site.plugin_install
    assert report["plugin"] == PLUGIN_SLUG
    assert report["version"] == _header("Version")
    installed = Path(report["directory"])
    assert installed == site.docroot / "wp-content" / "plugins" / "appointease-realtime-bridge"
    assert installed.is_dir() and not installed.is_symlink()
    assert not any(p.is_symlink() for p in installed.rglob("*"))
    with zipfile.ZipFile(bridge_zip) as archive:
        for name in archive.namelist():
            if not name.endswith("/"):
                assert (installed / name.removeprefix(TOP)).read_bytes() == archive.read(name)
    # What WordPress runs is that copy (not the checkout), active, with its translations folder.
    where = site.php(
        "require_once ABSPATH . 'wp-admin/includes/plugin.php';"
        "echo (new ReflectionClass('AppointEase_RT_Plugin'))->getFileName(), '|',"
        " is_plugin_active($args[0]) ? 'active' : 'inactive';",
        PLUGIN_SLUG,
    )
    assert where == f"{installed / 'includes' / 'class-plugin.php'}|active"
    assert (installed / "languages").is_dir()
    # The test theme, not one from a Recommends of the wordpress package.
    assert site.php("echo get_stylesheet();") == "aert-test-theme"
    front = site.request("GET", "/")
    assert front.status == 200 and 'id="aert-test-theme"' in front.text
    assert "window.bookingAPI.wsUrl" in front.text
    assert site.php_problems() == []
