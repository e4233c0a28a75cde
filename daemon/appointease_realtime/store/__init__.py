"""Storage of locks and appointments: MySQL/MariaDB in production, SQLite embedded."""

from __future__ import annotations

from collections.abc import Callable

from ..config import Settings
from .base import ADDRESS_LIMIT, HOLD_MAX, Store, StoreTimeout, StoreUnavailable


async def open_store(
    settings: Settings,
    create_embedded: bool = True,
    observe: Callable[[str, float], None] | None = None,
) -> Store:
    """Open the configured store; the embedded SQLite file gets its tables created.

    Every database call is bounded by ``settings.db_timeout_seconds``; ``observe(operation,
    seconds)`` is called after each successful operation (e.g. a latency histogram).
    """
    if settings.uses_mysql:
        from .mysql import MySQLStore

        try:
            return await MySQLStore.open(settings, observe=observe)
        except Exception as exc:
            raise StoreUnavailable(f"cannot connect to MySQL: {exc}") from exc
    from .sqlite import SQLiteStore

    return await SQLiteStore.open(
        settings.sqlite_path,
        settings.table_prefix,
        create_embedded,
        db_timeout=settings.db_timeout_seconds,
        observe=observe,
    )


__all__ = [
    "ADDRESS_LIMIT",
    "HOLD_MAX",
    "Store",
    "StoreTimeout",
    "StoreUnavailable",
    "open_store",
]
