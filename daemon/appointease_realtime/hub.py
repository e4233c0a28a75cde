"""This node's connections, indexed by room and by the customer whose appointments they follow."""

from __future__ import annotations

from .connection import AppointmentFilter, Connection
from .protocol import Frame, Room


class Hub:
    """Local fan-out: text serialized once is handed to every matching connection."""

    def __init__(self) -> None:
        self.connections: dict[str, Connection] = {}
        self.rooms: dict[Room, set[Connection]] = {}
        self.customers: dict[str, set[Connection]] = {}
        self.staff: set[Connection] = set()

    def add(self, conn: Connection) -> None:
        """Register a new connection."""
        self.connections[conn.client_id] = conn

    def remove(self, conn: Connection) -> None:
        """Forget a connection and every index entry of it."""
        if self.connections.get(conn.client_id) is conn:
            del self.connections[conn.client_id]
        self.leave_room(conn)
        self.unwatch_customer(conn)

    def join_room(self, conn: Connection, room: Room, time: str | None = None) -> Room | None:
        """Move ``conn`` into ``room`` (one room per connection); return the room it left."""
        left = conn.room if conn.room != room else None
        if left is not None:
            self.leave_room(conn)
        conn.room, conn.watch_time = room, time
        self.rooms.setdefault(room, set()).add(conn)
        return left

    def leave_room(self, conn: Connection) -> Room | None:
        """Take ``conn`` out of its room; return that room."""
        room = conn.room
        if room is None:
            return None
        members = self.rooms.get(room)
        if members is not None:
            members.discard(conn)
            if not members:
                del self.rooms[room]
        conn.room, conn.watch_time = None, None
        return room

    def watch_customer(self, conn: Connection, email: str) -> None:
        """Follow one customer's appointments."""
        self.unwatch_customer(conn)
        conn.appointments_email = email
        self.customers.setdefault(email, set()).add(conn)

    def watch_all(self, conn: Connection, scope: AppointmentFilter) -> None:
        """Follow every appointment inside ``scope`` (staff and admins)."""
        self.unwatch_customer(conn)
        conn.appointments_filter = scope
        self.staff.add(conn)

    def unwatch_customer(self, conn: Connection) -> None:
        """Stop following appointments."""
        self.staff.discard(conn)
        conn.appointments_filter = None
        email = conn.appointments_email
        if email is None:
            return
        members = self.customers.get(email)
        if members is not None:
            members.discard(conn)
            if not members:
                del self.customers[email]
        conn.appointments_email = None

    def send_room(self, room: Room, text: str) -> int:
        """Hand ``text`` to every watcher of ``room``; return how many."""
        members = self.rooms.get(room, ())
        for conn in tuple(members):
            conn.send_text(text)
        return len(members)

    def send_staff(self, appointment: Frame, text: str) -> int:
        """Hand ``text`` to every staff dashboard whose scope covers ``appointment``."""
        count = 0
        for conn in tuple(self.staff):
            if conn.appointments_filter is not None and conn.appointments_filter.matches(
                appointment
            ):
                conn.send_text(text)
                count += 1
        return count

    def send_customer(self, email: str, text: str) -> int:
        """Hand ``text`` to every connection following ``email``'s appointments."""
        members = self.customers.get(email, ())
        for conn in tuple(members):
            conn.send_text(text)
        return len(members)
