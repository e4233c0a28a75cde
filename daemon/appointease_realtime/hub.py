"""This node's connections and which room each watches: the one owner of room membership.

Like centrifuge's hub, :meth:`Hub.leave` says when a room's last local watcher has gone, so
the room's owner (:class:`~.rooms.Rooms`) can forget it at that moment and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from .connection import Connection
from .protocol import Room
from .transport import Wire


@dataclass(frozen=True)
class Watch:
    """What one connection follows: a room, and optionally the time it looks at."""

    room: Room
    time: str | None = None


class Hub:
    """Local fan-out: a frame built once is handed to every watcher of a room."""

    def __init__(self) -> None:
        self.connections: dict[str, Connection] = {}
        self.rooms: dict[Room, set[Connection]] = {}
        self.watches: dict[Connection, Watch] = {}

    def add(self, conn: Connection) -> None:
        """Register a new connection."""
        self.connections[conn.client_id] = conn

    def remove(self, conn: Connection) -> None:
        """Forget a connection (take it out of its room first, with :meth:`leave`)."""
        if self.connections.get(conn.client_id) is conn:
            del self.connections[conn.client_id]

    def join(self, conn: Connection, watch: Watch) -> tuple[Room | None, bool]:
        """Make ``conn`` watch ``watch.room`` (one room per connection).

        Returns the room it left (None if none, or the same room) and whether that room's
        last local watcher has now gone.
        """
        previous = self.watches.get(conn)
        left, emptied = (None, False)
        if previous is not None and previous.room != watch.room:
            left, emptied = self.leave(conn)
        self.watches[conn] = watch
        self.rooms.setdefault(watch.room, set()).add(conn)
        return left, emptied

    def leave(self, conn: Connection) -> tuple[Room | None, bool]:
        """Take ``conn`` out of its room; return that room and whether it is now unwatched."""
        watch = self.watches.pop(conn, None)
        if watch is None:
            return None, False
        members = self.rooms.get(watch.room)
        if members is not None:
            members.discard(conn)
            if not members:
                del self.rooms[watch.room]
                return watch.room, True
        return watch.room, False

    def watch_of(self, conn: Connection) -> Watch | None:
        """What ``conn`` watches, if anything."""
        return self.watches.get(conn)

    def watched(self) -> list[Room]:
        """Every room watched on this node."""
        return list(self.rooms)

    def is_watched(self, room: Room) -> bool:
        """True while somebody on this node watches ``room``."""
        return room in self.rooms

    def send_room(self, room: Room, item: Wire) -> int:
        """Hand one built frame to every watcher of ``room``; return how many."""
        members = self.rooms.get(room, ())
        for conn in tuple(members):
            conn.sink(item)  # Connection.send_wire, one call less per watcher
        return len(members)
