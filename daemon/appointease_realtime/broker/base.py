"""The contracts of what nodes share that may be lost, each with a memory and a Redis side.

- :class:`Broker`: publish an event to every node, and deliver every node's events here.
- :class:`SelectionStore`: soft "someone is looking at this" marks (presence).
- :class:`Deduper`: keys seen recently (booking hook ids), so a retried hook applies once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..events import Event, EventHandler
from ..protocol import Room, Slot


@dataclass(frozen=True)
class Selection:
    """A soft "someone is looking at this" mark, with its age for /debug."""

    slot: Slot
    client_id: str
    since: float
    expires: float


class Broker(Protocol):
    """The bus every node listens to."""

    shared: bool  # True when other nodes hear what this one publishes

    async def start(self, handler: EventHandler) -> None:
        """Begin delivering every published event (this node's own too) to ``handler``."""

    async def publish(self, event: Event) -> None:
        """Send ``event`` to every node."""

    def status(self) -> str | None:
        """None when healthy; otherwise why the node serves only its own clients (degraded)."""

    async def close(self) -> None:
        """Stop delivering and release connections; safe to call twice."""


class SelectionStore(Protocol):
    """Soft selections, visible to every node."""

    async def select(self, slot: Slot, client_id: str, ttl: float) -> int:
        """Mark (or refresh) a selection; return how many ``client_id`` now has."""

    async def deselect(self, slot: Slot, client_id: str) -> bool:
        """Remove a selection; True when there was one."""

    async def drop_client(self, client_id: str) -> set[Room]:
        """Remove every selection of ``client_id``; return the rooms that changed."""

    async def client_selections(self, client_id: str) -> list[Slot]:
        """The live selections of ``client_id``, the least recently selected first."""

    async def room_selections(self, room: Room) -> list[str]:
        """Distinct selected times in ``room``, sorted."""

    async def all_selections(self) -> list[Selection]:
        """Every live selection."""

    async def expire(self) -> set[Room]:
        """Drop selections past their TTL; return the rooms that changed."""


class Deduper(Protocol):
    """Keys remembered for a while, cluster-wide."""

    async def remember(self, key: str, ttl: float) -> bool:
        """Record ``key`` for ``ttl`` seconds; True when it was not already recorded."""

    async def forget(self, key: str) -> None:
        """Drop a recorded ``key`` (a hook that failed to apply may come again)."""
