"""Settings: environment over .env, typed, one clear line naming a bad key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appointease_realtime.config import (
    ConfigError,
    Settings,
    env_text,
    load_settings,
    table,
    unknown_keys,
)


def test_defaults_run_on_the_embedded_database() -> None:
    settings = load_settings(None, environ={})
    assert settings == Settings()
    assert settings.port == 8080 and settings.lock_ttl_seconds == 600
    assert settings.hold_limit == 2 and settings.lock_release_grace_seconds == 30
    assert not settings.uses_mysql


def test_environment_wins_over_dotenv(tmp_path: Path) -> None:
    env = tmp_path / "site.env"
    env.write_text("PORT=9001\nDB_HOST=db.internal\nTABLE_PREFIX=wp_2_\nLOG_LEVEL=debug\n")
    settings = load_settings(env, environ={"PORT": "9002"})
    assert settings.port == 9002 and settings.db_host == "db.internal"
    assert settings.table_prefix == "wp_2_" and settings.log_level == "DEBUG"
    assert settings.uses_mysql


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("PORT", "eighty", "PORT: must be a whole number, got 'eighty'"),
        ("PORT", "70000", "PORT: must be between 0 and 65535, got 70000"),
        ("TABLE_PREFIX", "wp_; DROP TABLE x", "TABLE_PREFIX: must match [A-Za-z0-9_]+"),
        ("LOCK_TTL_SECONDS", "0", "LOCK_TTL_SECONDS: must be between 1 and 86400, got 0"),
        ("HOLD_LIMIT", "-1", "HOLD_LIMIT: must be between 1 and 100"),
        ("LOCK_RELEASE_GRACE_SECONDS", "soon", "LOCK_RELEASE_GRACE_SECONDS: must be a number"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL: must be one of DEBUG, INFO"),
    ],
)
def test_bad_values_name_the_key(key: str, value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(None, environ={key: value})
    assert str(error.value).startswith(reason)


def test_a_named_env_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--env-file"):
        load_settings(tmp_path / "missing.env", environ={})


def test_the_docs_match_the_settings_table() -> None:
    """README's table and .env.example list exactly the table's keys, defaults and docs."""
    root = Path(__file__).parent.parent
    example = (root / ".env.example").read_text()
    readme = (root / "README.md").read_text()
    entries = table()
    assert len(entries) >= 38
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", readme, re.M))
    assert documented == {entry.key for entry in entries}
    assert set(re.findall(r"^#? ?([A-Z][A-Z_]+)=", example, re.M)) == {e.key for e in entries}
    for entry in entries:
        assert f"| `{entry.key}` | `{entry.shown}` | {entry.doc} |" in readme or (
            f"| `{entry.key}` | {entry.shown} | {entry.doc} |" in readme
        ), f"README row of {entry.key} differs from the table"


def test_every_setting_casts_its_default_text() -> None:
    """What genconfig writes for a default reads back as that default."""
    for entry in table():
        text = env_text(entry)
        if text:
            assert entry.cast(text) == entry.default, entry.key


def test_unknown_keys_suggest_the_closest() -> None:
    assert unknown_keys({"LOCK_TTL": "5", "PORT": "1", "ZZZ": "1"}) == [
        "LOCK_TTL is not a setting (did you mean LOCK_TTL_SECONDS?)",
        "ZZZ is not a setting",
    ]
