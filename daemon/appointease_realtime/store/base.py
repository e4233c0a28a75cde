"""The Store interface and the values it returns. The database is the source of truth."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

from ..protocol import Room, Slot

# Reasons a lock is refused or an unlock fails; they travel on the wire unchanged.
SLOT_LOCKED = "slot_locked"
SLOT_BOOKED = "slot_booked"
HOLD_LIMIT = "hold_limit"
NOT_HOLDER = "not_holder"
NOT_LOCKED = "not_locked"
ADDRESS_LIMIT = "address_limit"  # the hold owner (address or identity) has too many live holds
HOLD_MAX = "hold_max"  # the holder may not refresh past its maximum hold age

Appointment = dict[str, Any]


class StoreUnavailable(Exception):
    """The database did not answer or refused the query; nothing was changed.

    (Except for a :class:`StoreTimeout` whose ``outcome_unknown`` is True.)
    """


class StoreTimeout(StoreUnavailable):
    """The database did not answer a call within ``db_timeout_seconds``; the connection is gone.

    ``outcome_unknown`` is True when a write (an autocommitted statement or a COMMIT) had been
    sent and no answer came: it may or may not have been applied, so re-read before assuming
    either. It is False for reads and when nothing that could change data was sent.
    """

    def __init__(self, message: str, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.outcome_unknown = outcome_unknown


@dataclass(frozen=True)
class LockOutcome:
    """The result of a lock attempt: acquired, or refused with a reason."""

    acquired: bool
    expires_in: int
    reason: str | None = None


@dataclass(frozen=True)
class HeldLock:
    """A lock row as the database holds it."""

    slot: Slot
    client_id: str
    expires_in: int


@dataclass(frozen=True)
class RoomState:
    """What makes a room's times unavailable: booked appointments and live locks."""

    booked: list[str]
    locks: list[HeldLock]

    @property
    def locked(self) -> list[str]:
        """Held times, sorted."""
        return sorted({lock.slot.time for lock in self.locks})


class Store(Protocol):
    """Everything the daemon reads and writes in the plugin's two tables."""

    kind: str
    observe: Callable[[str, float], None] | None

    async def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""

    async def schema_problems(self) -> list[str]:
        """What is missing from the two tables (empty when all is in place)."""

    async def create_schema(self) -> list[str]:
        """Create the tables that are missing, never altering one; return the names created."""

    async def acquire_lock(
        self,
        slot: Slot,
        client_id: str,
        ttl_seconds: int,
        hold_limit: int,
        *,
        owner: str | None = None,
        owner_limit: int = 0,
        max_hold_seconds: int | None = None,
    ) -> LockOutcome:
        """Take, refresh or take over the lock on ``slot`` for ``client_id`` atomically.

        Refused with SLOT_BOOKED, SLOT_LOCKED, HOLD_LIMIT (``client_id`` holds ``hold_limit``
        other live locks), ADDRESS_LIMIT (``owner`` given: client ids ending in ``~<owner>``
        hold ``owner_limit`` other live locks) or HOLD_MAX (a refresh of a hold that is
        ``max_hold_seconds`` old; a refresh never extends a hold past that age).
        """

    async def release_lock(self, slot: Slot, client_id: str) -> str | None:
        """Delete ``client_id``'s lock on ``slot``; None when released, else the reason."""

    async def release_client_locks(self, client_id: str) -> list[Slot]:
        """Delete every lock ``client_id`` holds; return the freed slots."""

    async def delete_lock(self, slot: Slot) -> str | None:
        """Delete whatever lock is on ``slot``; return the former holder's client id."""

    async def sweep_expired_locks(self) -> list[HeldLock]:
        """Delete expired lock rows (whoever wrote them); return what was deleted."""

    async def live_locks(self, limit: int = 1000) -> list[HeldLock]:
        """Live locks, soonest expiry first."""

    async def room_state(self, room: Room) -> RoomState:
        """Booked and held times of one room."""

    async def booked_times(self, rooms: Collection[Room]) -> dict[Room, set[str]]:
        """Booked times of many rooms, in queries of bounded size."""

    async def count_foreign_appointments(self, prefix: str) -> int:
        """Appointments whose ``strong_id`` is NULL or does not start with ``prefix``."""

    async def appointments_for(self, email: str) -> list[Appointment]:
        """Non-cancelled appointments of one customer, by date."""

    async def appointments_matching(
        self, employee_id: int | None, date_from: str | None, date_to: str | None
    ) -> list[Appointment]:
        """Non-cancelled appointments of everyone (staff), optionally narrowed."""

    async def appointment(self, ref: str | int) -> Appointment | None:
        """One appointment by numeric id or ``strong_id``."""

    async def insert_appointment(self, fields: dict[str, Any]) -> int:
        """Insert one appointment row (demo data and QA); return its id."""

    async def update_appointment(self, appointment_id: int, fields: dict[str, Any]) -> bool:
        """Change columns of one appointment (QA); True when the row exists."""

    async def close(self) -> None:
        """Release connections."""
