"""Background loops: lock expiry and selection expiry (and, later, re-reading watched days)."""

from __future__ import annotations

import asyncio
import logging
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


async def expire_selections(node: Node) -> None:
    """Drop selections past their TTL and announce the rooms they were in."""
    for room in await node.broker.expire_selections():
        await node.rooms.announce_selections(room)


def background_jobs(node: Node) -> list[Coroutine[None, None, None]]:
    """The loops one node runs for as long as it serves."""
    return [
        repeat(node.settings.lock_sweep_interval_seconds, node.locks.sweep, "lock expiry"),
        repeat(1.0, lambda: expire_selections(node), "selection expiry"),
    ]
