"""The lock floor: the daemon's own store, driven directly, with no WebSocket or daemon layers.

``saturate`` opens the store exactly as the daemon does (``open_store`` with the Settings the
daemon reads from the same environment, so the same pool size and driver) and runs the same
closed loop as the benchmark's clients: ``clients`` tasks, each with its own client id and
employee, each calling ``Store.acquire_lock`` then ``Store.release_lock`` (the statements a
``lock_slot`` and an ``unlock_slot`` run in the daemon) as fast as they complete. What the
daemon adds on top (frames, parsing, validation, limits, metrics, the event loop it shares
with its sockets) is the gap between its lock rate and this one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from appointease_realtime.config import Settings
from appointease_realtime.protocol import Slot
from appointease_realtime.store import open_store

from .loadgen import slot_of


async def saturate(
    settings: Settings,
    clients: int,
    seconds: float,
    warmup: float,
    date: str,
    employee_base: int,
) -> dict[str, Any]:
    """Locks a second (each followed by its unlock) of ``clients`` closed-loop tasks."""
    store = await open_store(settings, create_embedded=False)
    locks: list[float] = []
    refused = 0
    start = time.monotonic() + warmup
    end = start + seconds

    async def client_loop(n: int) -> None:
        nonlocal refused
        client_id = f"bench-driver-{n}"
        i = 0
        while time.monotonic() < end:
            fields = slot_of(date, employee_base + n, i % 1440)
            slot = Slot(fields["date"], fields["time"], fields["employeeId"])
            i += 1
            sent = time.monotonic()
            outcome = await store.acquire_lock(
                slot, client_id, settings.lock_ttl_seconds, settings.hold_limit
            )
            answered = time.monotonic()
            if not outcome.acquired:
                refused += 1
            if start <= answered <= end:
                locks.append(answered - sent)
            await store.release_lock(slot, client_id)

    try:
        await asyncio.gather(*(client_loop(n) for n in range(clients)))
    finally:
        await store.close()
    return {"lock": locks, "refused": refused, "seconds": seconds}
