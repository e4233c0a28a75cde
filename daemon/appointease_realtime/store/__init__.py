"""Storage of locks and appointments: MySQL/MariaDB in production, SQLite embedded."""

from __future__ import annotations

from ..config import Settings
from .base import Store, StoreUnavailable


async def open_store(settings: Settings, create_embedded: bool = True) -> Store:
    """Open the configured store; the embedded SQLite file gets its tables created."""
    if settings.uses_mysql:
        from .mysql import MySQLStore

        try:
            return await MySQLStore.open(settings)
        except Exception as exc:
            raise StoreUnavailable(f"cannot connect to MySQL: {exc}") from exc
    from .sqlite import SQLiteStore

    return await SQLiteStore.open(settings.sqlite_path, settings.table_prefix, create_embedded)


__all__ = ["Store", "StoreUnavailable", "open_store"]
