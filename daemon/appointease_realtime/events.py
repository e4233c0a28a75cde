"""Typed cluster events: what one node tells every node (itself too), and their encoding.

Events carry data, never wire frames: each receiving node builds the frames with its own
clock, the same way whether the event came from itself or from another node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from .protocol import Room


@dataclass(frozen=True)
class RoomAvailability:
    """A room's booked and held times changed (or were re-read)."""

    room: Room
    booked: list[str]
    locked: list[str]


@dataclass(frozen=True)
class RoomSelections:
    """A room's softly selected times changed."""

    room: Room
    slots: list[str]


@dataclass(frozen=True)
class CustomerChange:
    """One customer's appointment changed: ``change`` is appointment_update or _cancel."""

    email: str
    change: str
    appointment: dict[str, Any]
    appointments: list[dict[str, Any]]


@dataclass(frozen=True)
class ClientResumed:
    """A client resumed on ``node``: no other node may release its holds any more."""

    client_id: str
    node: str


@dataclass(frozen=True)
class Resync:
    """This node missed events (its broker was away): re-read what it watches. Never sent."""

    reason: str


RoomEvent = RoomAvailability | RoomSelections
Event = RoomAvailability | RoomSelections | CustomerChange | ClientResumed

_KINDS: dict[str, type[Event]] = {
    "availability": RoomAvailability,
    "selections": RoomSelections,
    "customer": CustomerChange,
    "resumed": ClientResumed,
}
_NAMES = {cls: kind for kind, cls in _KINDS.items()}


class EventHandler(Protocol):
    """What a node does with the events its broker delivers."""

    def on_room(self, event: RoomEvent) -> None:
        """A room changed: tell this node's watchers."""

    def on_customer(self, event: CustomerChange) -> None:
        """An appointment changed: tell this node's dashboards that follow it."""

    def on_resumed(self, event: ClientResumed) -> None:
        """A client resumed somewhere: stop any pending release of its holds here."""

    async def on_resync(self, event: Resync) -> None:
        """Events may have been missed: re-read and re-announce what this node watches."""


def dispatch(handler: EventHandler, event: Event) -> None:
    """Hand ``event`` to the handler method of its kind."""
    if isinstance(event, RoomAvailability | RoomSelections):
        handler.on_room(event)
    elif isinstance(event, CustomerChange):
        handler.on_customer(event)
    else:
        handler.on_resumed(event)


def encode(event: Event) -> str:
    """One event as compact JSON: ``{"kind": ..., ...fields}``."""
    body: dict[str, Any] = {"kind": _NAMES[type(event)], **event.__dict__}
    if isinstance(event, RoomAvailability | RoomSelections):
        body["room"] = [event.room.date, event.room.employee_id]
    return json.dumps(body, separators=(",", ":"))


def decode(text: str | bytes) -> Event:
    """The event ``encode`` wrote; ValueError for anything else."""
    try:
        body = json.loads(text)
        cls = _KINDS[body.pop("kind")]
        if "room" in body:
            date, employee_id = body["room"]
            body["room"] = Room(str(date), int(employee_id))
        return cls(**body)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not a cluster event: {str(text)[:200]!r}") from exc
