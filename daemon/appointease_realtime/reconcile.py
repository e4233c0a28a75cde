"""Background loops: lock expiry, selection expiry, and re-reading the watched days.

Hooks make an update instant; reconciliation makes it certain: every interval the booked
times of all rooms watched on this node are read (in batches of bounded size), and a room
whose bookings changed (a lost hook, no bridge, an admin's edit) is announced exactly as a
hook would.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine

from .node import Node
from .store import StoreUnavailable

log = logging.getLogger(__name__)


async def repeat(interval: float, job: Callable[[], Awaitable[object]], name: str) -> None:
    """Run ``job`` every ``interval`` seconds until cancelled; a failure is logged, not fatal."""
    while True:
        try:
            await job()
        except StoreUnavailable as exc:
            log.warning("%s skipped, database unavailable: %s", name, exc)
        except Exception:
            log.exception("%s failed", name)
        await asyncio.sleep(interval)


async def reconcile_rooms(node: Node) -> None:
    """Re-read the booked times of every locally watched room; announce the rooms that changed."""
    rooms = node.hub.watched()
    began = time.perf_counter()
    booked = await node.store.booked_times(rooms) if rooms else {}
    node.metrics.reconcile_seconds.observe(time.perf_counter() - began)
    node.metrics.last_reconcile = time.time()
    for room in node.rooms.changed(booked):
        node.rooms.touch(room)


def background_jobs(node: Node) -> list[Coroutine[None, None, None]]:
    """The loops one node runs for as long as it serves."""
    settings = node.settings
    return [
        repeat(settings.lock_sweep_interval_seconds, node.locks.sweep, "lock expiry"),
        repeat(1.0, node.selections.expire, "selection expiry"),
        repeat(settings.reconcile_interval_seconds, lambda: reconcile_rooms(node), "reconcile"),
    ]
