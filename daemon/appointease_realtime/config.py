"""Settings: read once from the environment over an optional .env file, cast and validated.

A bad value raises :class:`ConfigError` whose message names the key and the reason,
so start-up stops with one readable line.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from dotenv import dotenv_values

_PREFIX_RE = re.compile(r"^[A-Za-z0-9_]+$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the key."""


@dataclass(frozen=True)
class Settings:
    """Every setting of the daemon, typed. Build with :func:`load_settings` or directly in tests."""

    host: str = "0.0.0.0"  # noqa: S104 - a network daemon binds all interfaces by default
    port: int = 8080
    db_host: str | None = None
    db_port: int = 3306
    db_user: str = "root"
    db_password: str = field(default="", repr=False)
    db_name: str = "wordpress"
    db_socket: str | None = None
    db_pool_size: int = 10
    table_prefix: str = "wp_"
    sqlite_path: str = "appointease-realtime.sqlite3"
    lock_ttl_seconds: int = 600
    hold_limit: int = 2
    lock_release_grace_seconds: float = 30.0
    lock_sweep_interval_seconds: float = 2.0
    selection_ttl_seconds: float = 120.0
    max_selections_per_client: int = 10
    resume_secret: str = field(default="", repr=False)
    hook_secret: str = field(default="", repr=False)
    reconcile_interval_seconds: float = 2.0
    redis_url: str | None = field(default=None, repr=False)
    token_secret: str = field(default="", repr=False)
    allow_unsigned_email: bool = False
    debug_token: str = field(default="", repr=False)
    site_url: str | None = None
    allowed_origins: tuple[str, ...] = ()
    rate_limit_per_second: float = 20.0
    rate_limit_burst: int = 40
    max_connections_per_ip: int = 50
    trusted_proxies: tuple[str, ...] = ()
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    qa_mode: bool = False
    qa_force: bool = False
    shutdown_timeout_seconds: float = 10.0
    log_level: str = "INFO"
    log_format: str = "text"

    @property
    def uses_mysql(self) -> bool:
        """True when a MySQL/MariaDB server is configured; otherwise the embedded SQLite file."""
        return bool(self.db_host or self.db_socket)


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


def _optional(raw: str) -> str | None:
    return raw or None


class _Reader:
    """Looks keys up in the merged environment and casts them, naming the key on failure."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = values

    def get(self, key: str, cast: Callable[[str], T], default: T) -> T:
        raw = self.values.get(key)
        if raw is None or raw == "":
            return default
        try:
            return cast(raw)
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from None


def load_settings(
    env_file: str | Path | None = ".env", environ: Mapping[str, str] | None = None
) -> Settings:
    """Read settings from ``environ`` (default ``os.environ``) over the values in ``env_file``."""
    merged: dict[str, str] = {}
    if env_file is not None:
        path = Path(env_file)
        if path.exists():
            merged.update({k: v for k, v in dotenv_values(path).items() if v is not None})
        elif str(env_file) != ".env":
            raise ConfigError(f"--env-file: {path} does not exist")
    merged.update(os.environ if environ is None else environ)
    r = _Reader(merged)
    d = Settings()
    settings = Settings(
        host=r.get("HOST", _text, d.host),
        port=r.get("PORT", _int(0, 65535), d.port),
        db_host=r.get("DB_HOST", _optional, d.db_host),
        db_port=r.get("DB_PORT", _int(1, 65535), d.db_port),
        db_user=r.get("DB_USER", _text, d.db_user),
        db_password=r.get("DB_PASSWORD", _text, d.db_password),
        db_name=r.get("DB_NAME", _text, d.db_name),
        db_socket=r.get("DB_SOCKET", _optional, d.db_socket),
        db_pool_size=r.get("DB_POOL_SIZE", _int(1, 500), d.db_pool_size),
        table_prefix=r.get("TABLE_PREFIX", _prefix, d.table_prefix),
        sqlite_path=r.get("SQLITE_PATH", _text, d.sqlite_path),
        lock_ttl_seconds=r.get("LOCK_TTL_SECONDS", _int(1, 86400), d.lock_ttl_seconds),
        hold_limit=r.get("HOLD_LIMIT", _int(1, 100), d.hold_limit),
        lock_release_grace_seconds=r.get(
            "LOCK_RELEASE_GRACE_SECONDS", _float(0, 3600), d.lock_release_grace_seconds
        ),
        lock_sweep_interval_seconds=r.get(
            "LOCK_SWEEP_INTERVAL_SECONDS", _float(0.1, 3600), d.lock_sweep_interval_seconds
        ),
        selection_ttl_seconds=r.get(
            "SELECTION_TTL_SECONDS", _float(1, 86400), d.selection_ttl_seconds
        ),
        max_selections_per_client=r.get(
            "MAX_SELECTIONS_PER_CLIENT", _int(1, 1000), d.max_selections_per_client
        ),
        resume_secret=r.get("RESUME_SECRET", _text, d.resume_secret),
        hook_secret=r.get("HOOK_SECRET", _hook_secret, d.hook_secret),
        reconcile_interval_seconds=r.get(
            "RECONCILE_INTERVAL_SECONDS", _float(0.1, 3600), d.reconcile_interval_seconds
        ),
        redis_url=r.get("REDIS_URL", _redis_url, d.redis_url),
        token_secret=r.get("TOKEN_SECRET", _text, d.token_secret),
        allow_unsigned_email=r.get("ALLOW_UNSIGNED_EMAIL", _bool, d.allow_unsigned_email),
        debug_token=r.get("DEBUG_TOKEN", _text, d.debug_token),
        site_url=r.get("SITE_URL", _origin, d.site_url),
        allowed_origins=r.get("ALLOWED_ORIGINS", _origins, d.allowed_origins),
        rate_limit_per_second=r.get(
            "RATE_LIMIT_PER_SECOND", _float(0.1, 10000), d.rate_limit_per_second
        ),
        rate_limit_burst=r.get("RATE_LIMIT_BURST", _int(1, 100000), d.rate_limit_burst),
        max_connections_per_ip=r.get(
            "MAX_CONNECTIONS_PER_IP", _int(1, 1000000), d.max_connections_per_ip
        ),
        trusted_proxies=r.get("TRUSTED_PROXIES", _networks, d.trusted_proxies),
        tls_cert_file=r.get("TLS_CERT_FILE", _file, d.tls_cert_file),
        tls_key_file=r.get("TLS_KEY_FILE", _file, d.tls_key_file),
        qa_mode=r.get("QA_MODE", _bool, d.qa_mode),
        qa_force=r.get("QA_FORCE", _bool, d.qa_force),
        shutdown_timeout_seconds=r.get(
            "SHUTDOWN_TIMEOUT_SECONDS", _float(0, 600), d.shutdown_timeout_seconds
        ),
        log_level=r.get("LOG_LEVEL", _log_level, d.log_level),
        log_format=r.get("LOG_FORMAT", _log_format, d.log_format),
    )
    if bool(settings.tls_cert_file) != bool(settings.tls_key_file):
        raise ConfigError("TLS_CERT_FILE: TLS_CERT_FILE and TLS_KEY_FILE go together")
    if settings.token_secret and len(settings.token_secret) < 32:
        raise ConfigError("TOKEN_SECRET: must be at least 32 characters (HS256 key)")
    return settings
