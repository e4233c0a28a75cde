"""The holder's view of its holds: ``lock_expiring`` some seconds before a hold ends, and
``lock_expired`` once it is gone without a booking, sent to the socket that holds it.

Timers live on the node of the holding socket. When a timer fires the database decides:
a hold refreshed meanwhile (by another tab's PHP or a resumed socket) reschedules, a
booking ends it quietly, anything else is an expiry.
"""

from __future__ import annotations

import asyncio
import logging

from . import protocol as p
from .connection import Connection
from .protocol import Slot
from .store import Store, StoreUnavailable

log = logging.getLogger(__name__)

EXPIRY_MARGIN_SECONDS = 0.5  # look a little after the expiry, so the database agrees


class HoldClock:
    """Per-socket timers for the holds it has."""

    def __init__(self, store: Store, warning_seconds: float) -> None:
        self.store = store
        self.warning_seconds = warning_seconds
        self.timers: dict[tuple[Connection, Slot], list[asyncio.TimerHandle]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def held(self, conn: Connection, slot: Slot, expires_in: float) -> None:
        """``conn`` holds ``slot`` for ``expires_in`` seconds from now (taken or refreshed)."""
        self.released(conn, slot)
        loop = asyncio.get_running_loop()
        warn_in = max(0.0, expires_in - self.warning_seconds)
        self.timers[(conn, slot)] = [
            loop.call_later(warn_in, self._warn, conn, slot, loop.time() + expires_in),
            loop.call_later(expires_in + EXPIRY_MARGIN_SECONDS, self._spawn, conn, slot),
        ]

    def released(self, conn: Connection, slot: Slot) -> None:
        """The hold ended on purpose (unlocked, booked): no more frames about it."""
        for handle in self.timers.pop((conn, slot), ()):
            handle.cancel()

    def gone(self, conn: Connection) -> None:
        """The socket left: its timers go (a resume starts the clock again on the next lock)."""
        for key in [key for key in self.timers if key[0] is conn]:
            self.released(*key)

    def _warn(self, conn: Connection, slot: Slot, ends_at: float) -> None:
        left = max(0, round(ends_at - asyncio.get_running_loop().time()))
        conn.send(p.reply("lock_expiring", **slot.fields(), expiresIn=left))

    def _spawn(self, conn: Connection, slot: Slot) -> None:
        task = asyncio.get_running_loop().create_task(self._check(conn, slot))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _check(self, conn: Connection, slot: Slot) -> None:
        """At the expected end: still ours (refreshed elsewhere), booked, or expired?"""
        self.timers.pop((conn, slot), None)
        try:
            state = await self.store.room_state(slot.room)
        except StoreUnavailable as exc:
            log.warning("expiry of %s for %s not checked: %s", slot, conn.client_id, exc)
            return
        for lock in state.locks:
            if lock.slot.time == slot.time and lock.client_id == conn.client_id:
                self.held(conn, slot, lock.expires_in)
                return
        if slot.time not in state.booked:
            conn.send(p.reply("lock_expired", **slot.fields()))

    async def stop(self) -> None:
        """Cancel every timer and wait for checks under way."""
        for handles in self.timers.values():
            for handle in handles:
                handle.cancel()
        self.timers.clear()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
