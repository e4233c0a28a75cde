"""One handler per client message type, registered with its schema in a table.

``dispatch`` maps every failure to an ``error`` frame with a machine-readable ``code``; the
socket stays open, and nothing answers success when its write failed.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import protocol as p
from .auth import ADMIN
from .connection import Connection
from .limits import ABUSIVE, LIMITED, OK
from .node import Node
from .protocol import Field, ProtocolError, Schema, room_of, slot_of
from .rooms import availability_frame
from .store import StoreTimeout, StoreUnavailable

log = logging.getLogger(__name__)

CLOSE_POLICY_VIOLATION = 1008


@dataclass(slots=True)
class Request:
    """One validated client message, and the way to answer it."""

    conn: Connection
    fields: dict[str, Any]
    request_id: str | int | None

    def reply(self, type_: str, **fields: Any) -> None:
        """Answer with one frame that carries the request's ``requestId``."""
        self.send(p.reply(type_, **fields))

    def send(self, frame: p.Frame) -> None:
        """Send a prepared frame, tagged with the ``requestId``."""
        if self.request_id is not None:
            frame["requestId"] = self.request_id
        self.conn.send(frame)


Handler = Callable[[Node, Request], Awaitable[None] | None]


@dataclass(frozen=True)
class Command:
    """A message type's schema and handler. A handler that never waits may be a plain
    function: it then runs inside :func:`handle`, with no coroutine for the message."""

    schema: Schema
    handler: Handler
    waits: bool = field(init=False)
    fields: p.CompiledSchema = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "waits", inspect.iscoroutinefunction(self.handler))
        object.__setattr__(self, "fields", p.compile_schema(self.schema))


COMMANDS: dict[str, Command] = {}


def command(*names: str, schema: Schema | None = None) -> Callable[[Handler], Handler]:
    """Register ``handler`` for one message type (and its aliases)."""

    def register(handler: Handler) -> Handler:
        for name in names:
            COMMANDS[name] = Command(schema or {}, handler)
        return handler

    return register


async def dispatch(node: Node, conn: Connection, raw: str | bytes) -> None:
    """Parse, validate and run one frame; every failure becomes an ``error`` frame.

    Every frame counts against the rate limit, binary ones too (they are then refused).
    """
    pending = handle(node, conn, raw)
    if pending is not None:
        await pending


def handle(node: Node, conn: Connection, raw: str | bytes) -> Awaitable[None] | None:
    """:func:`dispatch` without a coroutine where none is needed: a frame refused, or taken
    by a handler that never waits (a ``ping``), is done when this returns None; otherwise the
    returned awaitable finishes it. The socket loop calls this for every frame."""
    request_id = None
    limiter = conn.limiter
    verdict = limiter.check() if limiter is not None else OK
    if verdict == ABUSIVE:
        return _close_abusive(conn)
    try:
        if not isinstance(raw, str):
            if verdict == LIMITED:
                raise ProtocolError(p.RATE_LIMITED, "Too many messages; slow down")
            raise ProtocolError(p.INVALID_JSON, "Binary frames are not accepted; send JSON")
        frame = p.parse_frame(raw)
        if "requestId" in frame:
            request_id = p.request_id(frame)
        type_ = frame["type"]
        if type_ == "ping" and verdict == OK and _plain_ping(frame):
            # the hottest frame (every open page, every few seconds), with the fields the
            # schema would pass through unchanged: answered without the generic layers
            if node is not None:
                node.metrics.received(type_)
            pong = pong_frame(frame)
            if request_id is not None:
                pong["requestId"] = request_id
            conn.send(pong)
            return None
        cmd = COMMANDS.get(type_)
        if node is not None:  # None only in pure protocol tests
            node.metrics.received(type_ if cmd is not None else "unknown")
        if verdict == LIMITED:
            raise ProtocolError(p.RATE_LIMITED, "Too many messages; slow down")
        if cmd is None:
            raise ProtocolError(p.UNKNOWN_TYPE, f"Unknown message type: {type_[:64]}")
        req = Request(conn, p.validate_compiled(frame, cmd.fields), request_id)
        if cmd.waits:
            return _finish(cmd.handler(node, req), conn, request_id)  # type: ignore[arg-type]
        cmd.handler(node, req)
    except Exception as exc:
        _refuse(conn, request_id, exc)
    return None


async def _finish(pending: Awaitable[None], conn: Connection, request_id: str | int | None) -> None:
    """Run a waiting handler; its failure becomes an ``error`` frame."""
    try:
        await pending
    except Exception as exc:
        _refuse(conn, request_id, exc)


async def _close_abusive(conn: Connection) -> None:
    log.warning("closing %s: kept flooding past the rate limit", conn.client_id)
    await conn.close(CLOSE_POLICY_VIOLATION, "rate limit exceeded")


def _refuse(conn: Connection, request_id: str | int | None, exc: Exception) -> None:
    """Answer a failed frame with the ``error`` frame its failure maps to."""
    if isinstance(exc, ProtocolError):
        error = exc
    elif isinstance(exc, StoreUnavailable):
        log.warning("database unavailable: %s", exc)
        message = "The booking database is unavailable; try again"
        if isinstance(exc, StoreTimeout) and exc.outcome_unknown:
            message = (
                "The booking database did not confirm in time: the change may or may not"
                " have been made; check again before relying on it"
            )
        error = ProtocolError(p.UNAVAILABLE, message)
    else:
        log.error("command failed", exc_info=exc)
        error = ProtocolError(p.INTERNAL_ERROR, "The server failed to handle this message")
    Request(conn, {}, request_id).send(p.error_frame(error))


# ---- heartbeat and session ----

PING_SCHEMA: Schema = {
    "timestamp": Field(p.parse_number, required=False),
    "sequence": Field(p.parse_number, required=False),
}


@command("ping", schema=PING_SCHEMA)
def ping(node: Node, req: Request) -> None:
    """``pong`` with the server time; ``latency`` is now minus the client's timestamp."""
    req.send(pong_frame(req.fields))


def pong_frame(asked: Mapping[str, Any]) -> p.Frame:
    """The ``pong`` for a ping's validated fields (an absent field may also be None)."""
    now = p.now_ms()
    pong: p.Frame = {"type": "pong"}  # what p.reply builds, written out: the hottest reply
    stamp = asked.get("timestamp")
    if stamp is not None:
        pong["clientTimestamp"] = stamp
        pong["latency"] = max(0, now - int(stamp))
    sequence = asked.get("sequence")
    if sequence is not None:
        pong["sequence"] = sequence
    pong["timestamp"] = now
    return pong


def _plain_ping(frame: p.Frame) -> bool:
    """A ping whose ``timestamp`` and ``sequence`` are absent, null or integers that
    :func:`protocol.parse_number` accepts as they are: validation would change nothing.
    Anything else (a float, a string, a number too large) takes the generic path, which
    validates it (and refuses it) like every other frame."""
    stamp, sequence = frame.get("timestamp"), frame.get("sequence")
    return (stamp is None or (type(stamp) is int and -p.EXACT_INT < stamp < p.EXACT_INT)) and (
        sequence is None or (type(sequence) is int and -p.EXACT_INT < sequence < p.EXACT_INT)
    )


SESSION_SCHEMA: Schema = {
    "step": Field(p.parse_step),
    "service": Field(p.parse_label, required=False),
    "employee": Field(p.parse_label, required=False),
    "date": Field(p.parse_date, required=False),
    "time": Field(p.parse_time, required=False),
}


@command("booking_session", schema=SESSION_SCHEMA)
def booking_session(node: Node, req: Request) -> None:
    """Remember which step of the booking the visitor is on."""
    req.conn.session = dict(req.fields)
    req.reply("session_tracked", step=req.fields["step"])


@command("get_debug")
async def get_debug(node: Node, req: Request) -> None:
    """The ``/debug`` document over the socket, for admins only."""
    if req.conn.identity.role != ADMIN:
        raise ProtocolError(p.FORBIDDEN, "Only an admin may read debug information")
    req.reply("debug_info", **await node.debug_info(unmasked=True))


# ---- locks ----

UNLOCK_SCHEMA: Schema = {**p.SLOT_SCHEMA, "completed": Field(p.parse_bool, required=False)}


@command("lock_slot", schema={**p.SLOT_SCHEMA, "service": Field(p.parse_label, required=False)})
async def lock_slot(node: Node, req: Request) -> None:
    """Hold a slot for ``LOCK_TTL_SECONDS``; refused with a reason when it is not free."""
    slot = slot_of(req.fields)
    outcome = await node.locks.lock(req.conn.client_id, slot)
    if outcome.acquired:
        req.reply("slot_locked", **slot.fields(), expiresIn=outcome.expires_in)
        node.hold_clock.held(req.conn, slot, outcome.expires_in)
    else:
        req.reply(
            "lock_failed", **slot.fields(), reason=outcome.reason, expiresIn=outcome.expires_in
        )


@command("unlock_slot", schema=UNLOCK_SCHEMA)
async def unlock_slot(node: Node, req: Request) -> None:
    """Release a hold; only its holder may. ``completed`` marks a finished booking."""
    slot = slot_of(req.fields)
    reason = await node.locks.unlock(req.conn.client_id, slot)
    node.hold_clock.released(req.conn, slot)
    if reason is None:
        req.reply("slot_unlocked", **slot.fields())
    else:
        req.reply("unlock_failed", **slot.fields(), reason=reason)
    if req.fields.get("completed"):
        node.rooms.touch(slot.room)  # the booking may be in the table now: announce it


# ---- soft selections ----


@command("selecting_slot", "select_slot", schema=p.SLOT_SCHEMA)
async def select_slot(node: Node, req: Request) -> None:
    """Mark "someone is looking at this"; the room's watchers see the selected times."""
    slot = slot_of(req.fields)
    changed = await node.selections.select(req.conn.client_id, slot)
    req.reply("selection_confirmed", **slot.fields())
    for room in sorted(changed):
        await node.selections.announce(room)


@command("deselect_slot", schema=p.SLOT_SCHEMA)
async def deselect_slot(node: Node, req: Request) -> None:
    """Remove a selection; the room's watchers see the change."""
    slot = slot_of(req.fields)
    removed = await node.selections.deselect(req.conn.client_id, slot)
    req.reply("deselection_confirmed", **slot.fields())
    if removed:
        await node.selections.announce(slot.room)


# ---- rooms and availability ----


@command("watch_slot", schema={**p.ROOM_SCHEMA, "time": Field(p.parse_time, required=False)})
async def watch_slot(node: Node, req: Request) -> None:
    """Follow one day of one employee; answer at once with its availability and selections."""
    room = room_of(req.fields)
    node.rooms.watch(req.conn, room, req.fields.get("time"))
    req.send(await node.rooms.snapshot(room))
    req.send(await node.selections.snapshot(room))


UNWATCH_SCHEMA: Schema = {
    "date": Field(p.parse_date, required=False),
    "employeeId": Field(p.parse_employee_id, required=False),
}


@command("unwatch_slot", schema=UNWATCH_SCHEMA)
async def unwatch_slot(node: Node, req: Request) -> None:
    """Stop following a day (the current one when no date is given)."""
    watch = node.hub.watch_of(req.conn)
    asked = (req.fields.get("date"), req.fields.get("employeeId"))
    if (
        watch is not None
        and asked[0] in (None, watch.room.date)
        and asked[1]
        in (
            None,
            watch.room.employee_id,
        )
    ):
        node.rooms.unwatch(req.conn)
    req.reply(
        "slot_unwatched", date=req.fields.get("date"), employeeId=req.fields.get("employeeId")
    )


@command("check_availability", schema=p.ROOM_SCHEMA)
async def check_availability(node: Node, req: Request) -> None:
    """Booked and held times of one day, from the database."""
    room = room_of(req.fields)
    state = await node.store.room_state(room)
    req.send(availability_frame(room, state.booked, state.locked))


# ---- appointments ----


WATCH_SCHEMA: Schema = {
    "email": Field(p.parse_email, required=False),
    "employeeId": Field(p.parse_employee_id, required=False),
    "dateFrom": Field(p.parse_date, required=False),
    "dateTo": Field(p.parse_date, required=False),
}


@command("watch_appointments", schema=WATCH_SCHEMA)
async def watch_appointments(node: Node, req: Request) -> None:
    """The appointments this identity may see, then live updates of them."""
    appointments = await node.appointments.follow(req.conn, req.fields)
    req.reply(
        "appointments_data",
        email=node.appointments.email_of(req.conn),
        appointments=appointments,
        count=len(appointments),
    )


@command("subscribe", schema=WATCH_SCHEMA)
async def subscribe(node: Node, req: Request) -> None:
    """The old name of ``watch_appointments``, answered in the old ``update`` shape."""
    req.reply("update", data={"appointments": await node.appointments.follow(req.conn, req.fields)})


@command("unwatch_appointments")
async def unwatch_appointments(node: Node, req: Request) -> None:
    """Stop following appointments."""
    node.appointments.unfollow(req.conn)
    req.reply("unwatch_confirmed")
