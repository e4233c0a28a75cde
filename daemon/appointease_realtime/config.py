"""Settings: one table (key, cast, default, doc) from which :class:`Settings` is built.

Each setting is declared once, as a field of :class:`Settings` made with :func:`setting`;
its key is the field name in capitals. Values are read once from the environment over an
optional .env file, cast and validated; a bad value raises :class:`ConfigError` whose message
names the key and the reason, so start-up stops with one readable line. ``genconfig`` and
``check`` (``__main__``) and the docs tests read the same table through :func:`table`.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from dotenv import dotenv_values

_PREFIX_RE = re.compile(r"^[A-Za-z0-9_]+$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the key."""


def _int(low: int, high: int) -> Callable[[str], int]:
    def cast(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"must be a whole number, got {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return cast


def _float(low: float, high: float) -> Callable[[str], float]:
    def cast(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"must be a number, got {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g}, got {value:g}")
        return value

    return cast


def _prefix(raw: str) -> str:
    if not _PREFIX_RE.match(raw):
        raise ValueError(f"must match [A-Za-z0-9_]+, got {raw!r}")
    return raw


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in _LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}, got {raw!r}")
    return level


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


def _hook_secret(raw: str) -> str:
    if not raw.startswith("whsec_") or len(raw) < 20:
        raise ValueError("must be a Standard Webhooks secret: whsec_ followed by base64")
    try:
        base64.b64decode(raw.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        raise ValueError("the part after whsec_ is not valid base64") from None
    return raw


def _redis_url(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"must start with redis://, rediss:// or unix://, got {raw!r}")
    return raw


def _log_format(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("text", "json"):
        raise ValueError(f"must be text or json, got {raw!r}")
    return value


def _origin(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"must be an origin like https://shop.example.com, got {raw!r}")
    return f"{parts.scheme}://{parts.netloc}".lower()


def _origins(raw: str) -> tuple[str, ...]:
    return tuple(_origin(item) for item in raw.split(",") if item.strip())


def _networks(raw: str) -> tuple[str, ...]:
    networks = []
    for item in (part.strip() for part in raw.split(",")):
        if item:
            try:
                networks.append(str(ipaddress.ip_network(item, strict=False)))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
    return tuple(networks)


def _file(raw: str) -> str:
    if not Path(raw).is_file():
        raise ValueError(f"{raw} is not a readable file")
    return raw


def _text(raw: str) -> str:
    return raw


def _token_secret(raw: str) -> str:
    if len(raw) < 32:
        raise ValueError("must be at least 32 characters (HS256 key)")
    return raw


def _optional(raw: str) -> str | None:
    return raw or None


@dataclass(frozen=True)
class Entry:
    """One row of the settings table."""

    key: str
    name: str
    cast: Callable[[str], Any]
    default: Any
    doc: str
    shown: str  # the default as the docs show it
    secret: bool


def setting(
    default: T,
    cast: Callable[[str], T],
    doc: str,
    *,
    shown: str | None = None,
    secret: bool = False,
) -> T:
    """Declare one setting: its default, how its text is cast and checked, and one line of doc."""
    meta = {"cast": cast, "doc": doc, "shown": shown, "secret": secret}
    result: T = field(default=default, repr=not secret, metadata=meta)
    return result


@dataclass(frozen=True)
class Settings:
    """Every setting of the daemon, typed. Build with :func:`load_settings` or directly in tests."""

    host: str = setting("0.0.0.0", _text, "address to listen on")  # noqa: S104 - a daemon
    port: int = setting(8080, _int(0, 65535), "port for WebSocket and HTTP")
    workers: int = setting(
        1,
        _int(1, 256),
        "processes serving `PORT` together (SO_REUSEPORT), each a node of its own;"
        " more than 1 needs `REDIS_URL` and MySQL/MariaDB",
    )
    db_host: str | None = setting(
        None,
        _optional,
        "MySQL/MariaDB host; unset (and no `DB_SOCKET`) means the embedded SQLite file",
        shown="(unset)",
    )
    db_port: int = setting(3306, _int(1, 65535), "MySQL port")
    db_user: str = setting("root", _text, "MySQL user")
    db_password: str = setting("", _text, "MySQL password", shown="(empty)", secret=True)
    db_name: str = setting("wordpress", _text, "the WordPress database")
    db_socket: str | None = setting(
        None, _optional, "MySQL unix socket, instead of host and port", shown="(unset)"
    )
    db_pool_size: int = setting(10, _int(1, 500), "most MySQL connections the daemon opens")
    db_timeout_seconds: float = setting(
        5.0,
        _float(0.1, 600),
        "longest wait for any database call; past it the call fails as `unavailable`",
    )
    table_prefix: str = setting(
        "wp_", _prefix, "`$table_prefix` of the site; must match `[A-Za-z0-9_]+`"
    )
    sqlite_path: str = setting("appointease-realtime.sqlite3", _text, "the embedded database file")
    lock_ttl_seconds: int = setting(
        600, _int(1, 86400), "how long a hold lasts; the holder locking again refreshes it"
    )
    hold_limit: int = setting(2, _int(1, 100), "live holds one client may have at once")
    holds_per_address: int = setting(
        10,
        _int(1, 100000),
        "live holds all anonymous sockets of one address (IPv6: one /64) may have, across nodes",
    )
    holds_per_identity: int = setting(
        10, _int(1, 100000), "live holds one signed-in person may have, all sockets together"
    )
    hold_max_seconds: int = setting(
        1800,
        _int(1, 86400),
        "a hold cannot be refreshed past this many seconds after it was first taken",
    )
    hold_warning_seconds: float = setting(
        60.0,
        _float(0, 86400),
        "the holder gets `lock_expiring` this many seconds before its hold ends",
    )
    lock_release_grace_seconds: float = setting(
        30.0,
        _float(0, 3600),
        "holds of a disconnected client survive this long; resuming within it keeps them",
    )
    lock_sweep_interval_seconds: float = setting(
        2.0,
        _float(0.1, 3600),
        "how often expired lock rows (also PHP's) are deleted and announced",
    )
    selection_ttl_seconds: float = setting(
        120.0, _float(1, 86400), "a soft selection not renewed within this is dropped"
    )
    max_selections_per_client: int = setting(
        10, _int(1, 1000), "soft selections one client may have"
    )
    resume_secret: str = setting(
        "",
        _text,
        "signs resume tokens; set it so clients can resume across a restart and across nodes",
        shown="(random per start)",
        secret=True,
    )
    hook_secret: str = setting(
        "",
        _hook_secret,
        "Standard Webhooks secret `whsec_...` shared with the bridge;"
        " unset: `/hooks/booking` answers 503",
        shown="(unset)",
        secret=True,
    )
    reconcile_interval_seconds: float = setting(
        2.0,
        _float(0.1, 3600),
        "how often the watched days are re-read to catch changes no hook announced",
    )
    redis_url: str | None = setting(
        None,
        _redis_url,
        "`redis://...`: room events, selections and hook ids shared by every daemon;"
        " unset: one process",
        shown="(unset)",
        secret=True,
    )
    redis_namespace: str = setting(
        "appointease",
        _prefix,
        "prefix of every Redis key and channel: give each site sharing one Redis its own",
    )
    token_secret: str = setting(
        "",
        _token_secret,
        "HS256 key (32+ characters) of connection tokens, the bridge's"
        " `APPOINTEASE_RT_TOKEN_SECRET`",
        shown="(unset)",
        secret=True,
    )
    cookie_domain: str | None = setting(
        None,
        _optional,
        "domain of the hold cookie, e.g. `example.com` for a daemon on `rt.example.com`;"
        " unset: the daemon's own host",
        shown="(unset)",
    )
    allow_unsigned_email: bool = setting(
        False,
        _bool,
        "believe a bare `?email=` (unsafe: anyone can read anyone's appointments);"
        " logged at start-up",
    )
    debug_token: str = setting(
        "",
        _text,
        "`/debug` (and `/metrics`) need `Authorization: Bearer <DEBUG_TOKEN>`;"
        " unset: loopback only, e-mails masked",
        shown="(unset)",
        secret=True,
    )
    metrics_token: str = setting(
        "",
        _text,
        "`/metrics` also answers `Authorization: Bearer <METRICS_TOKEN>` (for a scraper that"
        " should not read `/debug`); otherwise loopback or DEBUG_TOKEN only",
        shown="(unset)",
        secret=True,
    )
    site_url: str | None = setting(
        None,
        _origin,
        "the WordPress site's origin, e.g. `https://shop.example.com`;"
        " browsers may connect from it",
        shown="(unset)",
    )
    allowed_origins: tuple[str, ...] = setting(
        (),
        _origins,
        "more origins, comma-separated; localhost is always allowed, others get 403",
        shown="(none)",
    )
    rate_limit_per_second: float = setting(
        20.0,
        _float(0.1, 10000),
        "messages a second one socket may send; more are answered `rate_limited`",
    )
    rate_limit_burst: int = setting(
        40,
        _int(1, 100000),
        "messages a socket may send at once; a socket that keeps flooding is closed (1008)",
    )
    max_connections_per_ip: int = setting(
        50, _int(1, 1000000), "open sockets per client address; more get 429"
    )
    trusted_proxies: tuple[str, ...] = setting(
        (),
        _networks,
        "addresses/networks (comma-separated) whose `X-Forwarded-For` is believed",
        shown="(none)",
    )
    tls_cert_file: str | None = setting(
        None,
        _file,
        "certificate chain (PEM) to serve `wss://` directly; nginx in front is the recommended way",
        shown="(unset)",
    )
    tls_key_file: str | None = setting(None, _file, "its private key", shown="(unset)")
    shutdown_timeout_seconds: float = setting(
        10.0,
        _float(0, 600),
        "on SIGTERM/SIGINT, how long in-flight work may finish before the process exits",
    )
    qa_mode: bool = setting(
        False,
        _bool,
        "offer the QA endpoint that test-websocket.html uses to book test appointments",
    )
    qa_force: bool = setting(
        False, _bool, "allow QA_MODE on a database that holds real appointments"
    )
    log_level: str = setting(
        "INFO", _log_level, "`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`"
    )
    log_format: str = setting(
        "text",
        _log_format,
        "`text` or `json` (one object per line); tokens and e-mails are never logged",
    )

    @property
    def uses_mysql(self) -> bool:
        """True when a MySQL/MariaDB server is configured; otherwise the embedded SQLite file."""
        return bool(self.db_host or self.db_socket)


def table() -> list[Entry]:
    """The settings table, in declaration order."""
    return [
        Entry(
            f.name.upper(),
            f.name,
            f.metadata["cast"],
            f.default,
            f.metadata["doc"],
            f.metadata["shown"] or _env_value(f.default),
            f.metadata["secret"],
        )
        for f in fields(Settings)
    ]


def _env_value(value: object) -> str:
    """A value as an env file writes it (empty for unset)."""
    if value is None or value == ():
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def env_text(entry: Entry) -> str:
    """A default as an env file writes it (empty for unset)."""
    return _env_value(entry.default)


def unknown_keys(values: Mapping[str, object]) -> list[str]:
    """Keys of an env file that are no setting, each with the closest real key suggested."""
    known = [entry.key for entry in table()]
    notes = []
    for key in values:
        if key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        notes.append(f"{key} is not a setting{hint}")
    return notes


def read_env_file(env_file: str | Path | None) -> dict[str, str]:
    """The values of ``env_file``: {} when it is the default ``.env`` and absent."""
    if env_file is None:
        return {}
    path = Path(env_file)
    if path.exists():
        return {k: v for k, v in dotenv_values(path).items() if v is not None}
    if str(env_file) != ".env":
        raise ConfigError(f"--env-file: {path} does not exist")
    return {}


def load_settings(
    env_file: str | Path | None = ".env", environ: Mapping[str, str] | None = None
) -> Settings:
    """Read settings from ``environ`` (default ``os.environ``) over the values in ``env_file``."""
    merged = read_env_file(env_file)
    merged.update(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    for entry in table():
        raw = merged.get(entry.key)
        if raw is None or raw == "":
            continue
        try:
            values[entry.name] = entry.cast(raw)
        except ValueError as exc:
            raise ConfigError(f"{entry.key}: {exc}") from None
    settings = Settings(**values)
    if bool(settings.tls_cert_file) != bool(settings.tls_key_file):
        raise ConfigError("TLS_CERT_FILE: TLS_CERT_FILE and TLS_KEY_FILE go together")
    return settings
