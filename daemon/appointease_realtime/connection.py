"""One client: its identity, what it follows, and a bounded outbound queue with one writer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web

from .auth import Identity, mask_email
from .limits import RateLimiter
from .protocol import Frame, Room, encode

log = logging.getLogger(__name__)

OUTBOUND_LIMIT = 256  # frames queued for one client before it counts as a slow consumer
CLOSE_SLOW_CONSUMER = 1013  # "try again later": the client reconnects and resyncs
DIRECT_WRITE_BUFFER_LIMIT = 64 * 1024  # past this many unsent bytes, frames wait in the queue


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


class Connection:
    """A connected client as the commands see it: state plus a ``sink`` that takes text frames."""

    def __init__(
        self,
        client_id: str,
        identity: Identity,
        sink: Callable[[str], None],
        limiter: RateLimiter | None = None,
    ) -> None:
        self.client_id = client_id
        self.identity = identity
        self.sink = sink
        self.limiter = limiter
        self.count_out: Callable[[str], None] | None = None
        self.connected_at = time.time()
        self.room: Room | None = None
        self.watch_time: str | None = None
        self.appointments_email: str | None = None
        self.appointments_filter: AppointmentFilter | None = None
        self.session: dict[str, Any] | None = None
        self.closer: Callable[..., Awaitable[object]] | None = None

    async def close(self, code: int, message: str) -> None:
        """Close the socket with ``code`` (no-op for a connection without one)."""
        if self.closer is not None:
            await self.closer(code=code, message=message.encode())

    def send(self, frame: Frame) -> None:
        """Serialize and queue one frame for this client."""
        self.sink(encode(frame))
        if self.count_out is not None:
            self.count_out(frame["type"])

    def send_text(self, text: str) -> None:
        """Queue an already serialized frame (room fan-out serializes once for all)."""
        self.sink(text)

    def debug_info(self, unmasked: bool = False) -> Frame:
        """This client as ``/debug`` lists it; e-mails masked unless ``unmasked``."""
        watching = None
        if self.room is not None:
            watching = {"date": self.room.date, "employeeId": self.room.employee_id}
            if self.watch_time:
                watching["time"] = self.watch_time
        return {
            "id": self.client_id,
            "email": (self.identity.email if unmasked else mask_email(self.identity.email))
            or "Anonymous",
            "role": self.identity.role,
            "isAnonymous": self.identity.is_anonymous,
            "watchingSlot": watching,
        }


class Outbound:
    """One client's output: written at once while the client keeps up, else queued (bounded)
    and drained by one writer task; overflow closes the socket, never blocks the hub."""

    def __init__(self, ws: web.WebSocketResponse, limit: int = OUTBOUND_LIMIT) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str] = asyncio.Queue(limit)
        self.overflowed = False
        self.writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the writer task."""
        self.writer = asyncio.create_task(self._drain())

    def put(self, text: str) -> None:
        """Send a frame now if nothing waits before it, else queue it; a full queue closes."""
        if self.overflowed or self.ws.closed:
            return
        if self.queue.empty() and self._write_now(text):
            return
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.overflowed = True
            log.warning("closing a slow consumer: %d frames queued", self.queue.qsize())
            self.queue = asyncio.Queue(1)  # drop what it could not read; it resyncs on reconnect
            if self.writer is not None:
                self.writer.cancel()
            asyncio.get_running_loop().create_task(
                self.ws.close(code=CLOSE_SLOW_CONSUMER, message=b"slow consumer")
            )

    def _write_now(self, text: str) -> bool:
        """Write an uncompressed frame straight to a transport that keeps up; False to queue.

        This skips one queue put, one task wake-up and one task step per frame per client,
        which was a third of the daemon's time in a 5,000-watcher fan-out (docs/performance.md).
        ``send_str`` does the same write synchronously for uncompressed frames but is a
        coroutine; aiohttp has no public synchronous send, so this uses its writer's
        ``_write_websocket_frame`` when present, and the queue otherwise.
        """
        writer = getattr(self.ws, "_writer", None)
        write = getattr(writer, "_write_websocket_frame", None)
        transport = getattr(writer, "transport", None)
        if (
            write is None
            or transport is None
            or getattr(writer, "compress", True)
            or getattr(writer, "_closing", True)
            or transport.is_closing()
            or transport.get_write_buffer_size() >= DIRECT_WRITE_BUFFER_LIMIT
        ):
            return False
        try:
            write(text.encode(), WSMsgType.TEXT, 0)
        except (ConnectionError, RuntimeError):
            pass  # the reader sees the socket close and cleans up
        return True

    async def _drain(self) -> None:
        while True:
            text = await self.queue.get()
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    async def stop(self) -> None:
        """Stop the writer task."""
        if self.writer is not None:
            self.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.writer
