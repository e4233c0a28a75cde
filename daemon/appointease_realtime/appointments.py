"""Appointment changes: applying a booking event (hooks, QA, the same path), announcing it to
every node, and delivering it to the dashboards on this node that follow it.

A customer follows their own appointments (by e-mail); staff and admins follow everyone's,
optionally narrowed by an :class:`AppointmentFilter`. Events carry data; each node builds the
frames (``update`` with the customer's list, then ``appointment_update``/``_cancel``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from . import protocol as p
from .auth import Identity
from .broker import Broker
from .connection import Connection
from .events import CustomerChange
from .locks import Locks
from .metrics import Metrics
from .protocol import Frame, ProtocolError, Room, Slot, encode, reply
from .rooms import Rooms
from .store import Store
from .store.base import Appointment
from .transport import wire

log = logging.getLogger(__name__)

UPDATE = "appointment_update"
CANCEL = "appointment_cancel"


@dataclass(frozen=True)
class AppointmentFilter:
    """What a staff dashboard follows: every appointment, or one employee's, in a date range."""

    employee_id: int | None = None
    date_from: str | None = None
    date_to: str | None = None

    def matches(self, appointment: Frame) -> bool:
        """True when ``appointment`` falls inside this filter."""
        day = str(appointment.get("appointment_date", ""))[:10]
        if self.employee_id is not None and appointment.get("employee_id") != self.employee_id:
            return False
        if self.date_from is not None and day < self.date_from:
            return False
        return self.date_to is None or day <= self.date_to


def room_of(when: Any, employee_id: Any) -> Room | None:
    """The room of an ``appointment_date`` text and an employee id, if both are usable."""
    text = str(when or "")
    try:
        return Room(text[:10], int(employee_id)) if len(text) >= 16 else None
    except (TypeError, ValueError):
        return None


class Appointments:
    """Followers of appointments on this node, and the cluster-wide announcement of changes."""

    def __init__(
        self, store: Store, broker: Broker, rooms: Rooms, locks: Locks, metrics: Metrics
    ) -> None:
        self.store = store
        self.broker = broker
        self.rooms = rooms
        self.locks = locks
        self.metrics = metrics
        self.customers: dict[str, set[Connection]] = {}
        self.staff: dict[Connection, AppointmentFilter] = {}
        self.following: dict[Connection, str] = {}  # connection -> e-mail it follows

    # ---- following ----

    async def follow(self, conn: Connection, fields: dict[str, Any]) -> list[Appointment]:
        """Subscribe ``conn`` to the appointments its identity may see; return them now.

        A customer follows only their own; staff and admins follow one customer by ``email``
        or everyone, optionally narrowed by ``employeeId`` and ``dateFrom``/``dateTo``.
        """
        identity = conn.identity
        if identity.is_staff and "email" not in fields:
            scope = AppointmentFilter(
                fields.get("employeeId"), fields.get("dateFrom"), fields.get("dateTo")
            )
            appointments = await self.store.appointments_matching(
                scope.employee_id, scope.date_from, scope.date_to
            )
            self.unfollow(conn)
            self.staff[conn] = scope
            return appointments
        email = _email_to_follow(identity, fields)
        appointments = await self.store.appointments_for(email)
        self.unfollow(conn)
        self.following[conn] = email
        self.customers.setdefault(email, set()).add(conn)
        return appointments

    def email_of(self, conn: Connection) -> str | None:
        """The e-mail whose appointments ``conn`` follows, if one."""
        return self.following.get(conn)

    def unfollow(self, conn: Connection) -> None:
        """Stop sending appointment changes to ``conn``."""
        self.staff.pop(conn, None)
        email = self.following.pop(conn, None)
        members = self.customers.get(email) if email is not None else None
        if members is not None:
            members.discard(conn)
            if not members:
                del self.customers[str(email)]

    # ---- changes ----

    async def apply(
        self, event_type: str, ref: str | int, previous: dict[str, Any] | None = None
    ) -> bool:
        """Announce one booking change after re-reading it; False when no such appointment."""
        appointment = await self.store.appointment(ref)
        if appointment is None:
            log.info("%s for unknown appointment %r: nothing to announce", event_type, ref)
            return False
        room = room_of(appointment["appointment_date"], appointment["employee_id"])
        cancelled = appointment.get("status") == "cancelled"
        if room is not None:
            if not cancelled:  # the booking completes the hold on its slot
                time = str(appointment["appointment_date"])[11:16]
                await self.locks.consume(Slot(room.date, time, room.employee_id))
            self.rooms.touch(room)
        if previous:
            old = room_of(previous.get("appointment_date"), previous.get("employee_id"))
            if old is not None and old != room:
                self.rooms.touch(old)
        await self.announce(appointment, CANCEL if cancelled else UPDATE)
        return True

    async def announce(self, appointment: Appointment, kind: str) -> None:
        """Send the customer's fresh list and the changed appointment to every node."""
        email = str(appointment.get("email") or "").lower()
        if not email:
            return
        appointments = await self.store.appointments_for(email)
        await self.broker.publish(CustomerChange(email, kind, appointment, appointments))

    def deliver(self, event: CustomerChange) -> None:
        """Frames for this node's dashboards that follow the changed appointment."""
        change = reply(event.change, appointment=event.appointment)
        followers = self.customers.get(event.email, ())
        if followers:
            update = wire(encode(reply("update", data={"appointments": event.appointments})))
            changed = wire(encode(change))
            for conn in tuple(followers):
                conn.send_wire(update)
                conn.send_wire(changed)
            self.metrics.sent("update", len(followers))
            self.metrics.sent(event.change, len(followers))
        staff = [conn for conn, scope in self.staff.items() if scope.matches(event.appointment)]
        if staff:
            built = wire(encode(change))
            for conn in staff:
                conn.send_wire(built)
            self.metrics.sent(event.change, len(staff))


def _email_to_follow(identity: Identity, fields: dict[str, Any]) -> str:
    """The e-mail a non-staff-wide subscription follows, or ProtocolError when not allowed."""
    if identity.email is None and not identity.is_staff:
        raise ProtocolError(p.FORBIDDEN, "Sign in to follow appointments", "email")
    if not identity.is_staff:
        if fields.get("email", identity.email) != identity.email:
            raise ProtocolError(p.FORBIDDEN, "You may follow only your own appointments", "email")
        if {"employeeId", "dateFrom", "dateTo"} & set(fields):
            raise ProtocolError(p.FORBIDDEN, "Only staff may follow all appointments", "employeeId")
    return str(fields.get("email", identity.email))
