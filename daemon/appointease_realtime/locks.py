"""Lock rules over the store: TTL, limits per client and per owner (address or signed-in
person), a maximum hold age, release after a disconnect grace, expiry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace

from .auth import owner_of
from .config import Settings
from .metrics import Metrics
from .protocol import Slot
from .rooms import Rooms
from .store import Store, StoreUnavailable
from .store.base import ADDRESS_LIMIT, LockOutcome

IDENTITY_LIMIT = "identity_limit"  # a signed-in person's holds, all their sockets together

log = logging.getLogger(__name__)


class Locks:
    """Takes and gives back slot holds; every change is announced to the slot's room."""

    def __init__(self, settings: Settings, store: Store, rooms: Rooms, metrics: Metrics) -> None:
        self.metrics = metrics
        self.settings = settings
        self.store = store
        self.rooms = rooms
        self.releases: dict[str, asyncio.Task[None]] = {}
        self.stopped = False

    async def lock(self, client_id: str, slot: Slot) -> LockOutcome:
        """Hold ``slot`` for ``client_id`` (or refresh its hold); refused when another has it."""
        settings = self.settings
        owner = owner_of(client_id)
        owner_limit = 0
        if owner is not None:
            identity = owner.startswith("u")
            owner_limit = settings.holds_per_identity if identity else settings.holds_per_address
        outcome = await self.store.acquire_lock(
            slot,
            client_id,
            settings.lock_ttl_seconds,
            settings.hold_limit,
            owner=owner,
            owner_limit=owner_limit,
            max_hold_seconds=settings.hold_max_seconds,
        )
        if outcome.reason == ADDRESS_LIMIT and owner is not None and owner.startswith("u"):
            outcome = replace(outcome, reason=IDENTITY_LIMIT)
        self.metrics.locks.labels(
            "acquired" if outcome.acquired else f"refused_{outcome.reason}"
        ).inc()
        if outcome.acquired:
            self.rooms.touch(slot.room)
        return outcome

    async def unlock(self, client_id: str, slot: Slot) -> str | None:
        """Release ``client_id``'s hold on ``slot``; None when released, else the reason."""
        reason = await self.store.release_lock(slot, client_id)
        self.metrics.locks.labels("released" if reason is None else "unlock_refused").inc()
        if reason is None:
            self.metrics.holds_ended.labels("released").inc()
            self.rooms.touch(slot.room)
        return reason

    async def release_all(self, client_id: str) -> None:
        """Release every hold of ``client_id`` and announce the freed slots."""
        freed = await self.store.release_client_locks(client_id)
        self.metrics.locks.labels("released").inc(len(freed))
        self.metrics.holds_ended.labels("released").inc(len(freed))
        for room in {slot.room for slot in freed}:
            self.rooms.touch(room)
        if freed:
            log.info("released %d lock(s) of %s", len(freed), client_id)

    async def consume(self, slot: Slot) -> None:
        """A booking took ``slot``: the hold on it (whoever had it) has done its job."""
        if await self.store.delete_lock(slot) is not None:
            self.metrics.locks.labels("booked").inc()
            self.metrics.holds_ended.labels("booked").inc()

    def release_later(self, client_id: str) -> None:
        """After a disconnect: keep the holds for the grace period, then release them."""
        self.reclaim(client_id)
        if self.stopped:  # shutting down: holds stay in the database for a resume elsewhere
            return
        self.releases[client_id] = asyncio.get_running_loop().create_task(
            self._release_after_grace(client_id)
        )

    def reclaim(self, client_id: str) -> bool:
        """The client is back: cancel its pending release; True when one was pending."""
        task = self.releases.pop(client_id, None)
        if task is None:
            return False
        task.cancel()
        return True

    async def _release_after_grace(self, client_id: str) -> None:
        await asyncio.sleep(self.settings.lock_release_grace_seconds)
        self.releases.pop(client_id, None)
        try:
            await self.release_all(client_id)
        except StoreUnavailable as exc:
            log.warning("locks of %s left to expire, database unavailable: %s", client_id, exc)

    async def sweep(self) -> None:
        """Delete expired locks (whoever wrote them) and announce the freed slots."""
        expired = await self.store.sweep_expired_locks()
        self.metrics.locks.labels("expired").inc(len(expired))
        self.metrics.holds_ended.labels("expired").inc(len(expired))
        for room in {lock.slot.room for lock in expired}:
            self.rooms.touch(room)

    async def stop(self) -> None:
        """Cancel pending releases: the holds stay in the database and expire by TTL."""
        self.stopped = True
        tasks = list(self.releases.values())
        self.releases.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
