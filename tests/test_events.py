"""Cluster events survive encode/decode, and decode refuses anything else."""

from __future__ import annotations

from typing import Any

import pytest

from appointease_realtime.events import (
    ClientResumed,
    CustomerChange,
    Event,
    RoomAvailability,
    RoomSelections,
    decode,
    encode,
)
from appointease_realtime.protocol import Room

ROOM = Room("2030-05-06", 3)
EVERY_KIND: list[Any] = [
    RoomAvailability(ROOM, booked=["09:00"], locked=["10:00", "10:30"]),
    RoomSelections(ROOM, slots=["11:00"]),
    CustomerChange(
        "ann@example.com",
        "appointment_update",
        appointment={"id": 7, "status": "confirmed", "notes": None},
        appointments=[{"id": 7}, {"id": 8, "time": "12:00"}],
    ),
    ClientResumed("client-1", "node-a"),
]


@pytest.mark.parametrize(
    "event", EVERY_KIND, ids=["availability", "selections", "customer", "resumed"]
)
def test_every_kind_round_trips(event: Event) -> None:
    text = encode(event)
    assert decode(text) == event
    assert decode(text.encode()) == event
    assert type(decode(text)) is type(event)


def test_rooms_come_back_as_rooms() -> None:
    event = decode(encode(RoomSelections(ROOM, ["11:00"])))
    assert isinstance(event, RoomSelections)
    assert isinstance(event.room, Room) and event.room == ROOM


@pytest.mark.parametrize(
    "junk",
    [
        "not json",
        b"\xff\xfe",
        "null",
        '"a string"',
        "[1, 2]",
        "{}",
        '{"kind": "nope"}',
        '{"kind": ["selections"]}',
        '{"kind": "selections"}',
        '{"kind": "selections", "room": "x", "slots": []}',
        '{"kind": "selections", "room": ["2030-05-06", "three"], "slots": []}',
        '{"kind": "resumed", "client_id": "a", "node": "b", "extra": 1}',
        '{"kind": "customer", "email": "a@b", "room": ["2030-05-06", 3]}',
    ],
)
def test_decode_refuses_junk(junk: str | bytes) -> None:
    with pytest.raises(ValueError, match="not a cluster event"):
        decode(junk)
