"""One client as the services see it: who it is, what it sent about its booking, and where
its frames go. All of its wiring is given to the constructor."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from .auth import Identity, mask_email
from .limits import RateLimiter
from .protocol import Frame, encode_bytes
from .transport import Wire, wire_bytes


class Connection:
    """A connected client: state, plus a ``sink`` that takes built frames and a ``closer``."""

    __slots__ = (
        "address",
        "client_id",
        "closer",
        "connected_at",
        "count_out",
        "identity",
        "limiter",
        "session",
        "sink",
    )

    def __init__(
        self,
        client_id: str,
        identity: Identity,
        sink: Callable[[Wire], None],
        *,
        closer: Callable[[int, str], Awaitable[None]] | None = None,
        limiter: RateLimiter | None = None,
        count_out: Callable[[str], None] | None = None,
        address: str = "",
    ) -> None:
        self.client_id = client_id
        self.identity = identity
        self.address = address
        self.sink = sink
        self.closer = closer
        self.limiter = limiter
        self.count_out = count_out
        self.connected_at = time.time()
        self.session: dict[str, Any] | None = None  # the last booking_session: step, date, ...

    async def close(self, code: int, message: str) -> None:
        """Close the socket with ``code`` (no-op for a connection without one)."""
        if self.closer is not None:
            await self.closer(code, message)

    def send(self, frame: Frame) -> None:
        """Serialize, frame and queue one frame for this client."""
        self.sink(wire_bytes(encode_bytes(frame)))
        if self.count_out is not None:
            self.count_out(frame["type"])

    def send_wire(self, item: Wire) -> None:
        """Queue an already built frame (a fan-out builds it once for all)."""
        self.sink(item)

    def debug_info(self, watching: Frame | None, unmasked: bool = False) -> Frame:
        """This client as ``/debug`` lists it; e-mails masked unless ``unmasked``."""
        info: Frame = {
            "id": self.client_id,
            "email": (self.identity.email if unmasked else mask_email(self.identity.email))
            or "Anonymous",
            "role": self.identity.role,
            "isAnonymous": self.identity.is_anonymous,
            "watchingSlot": watching,
        }
        if self.session is not None:
            info["session"] = {
                key: self.session[key]
                for key in ("step", "service", "employee", "date", "time")
                if key in self.session
            }
        return info
