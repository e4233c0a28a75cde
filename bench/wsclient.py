"""A lean WebSocket client for load generation: asyncio.Protocol, no per-message coroutine.

Why not aiohttp's client: on the client side it costs about as much CPU per message as the
server does, so a generator built on it saturates before the daemon. This one:

- sends the upgrade request by hand and does not check ``Sec-WebSocket-Accept``;
- offers no extensions (no permessage-deflate; see docs/performance.md);
- masks every frame with the all-zero key, so a frame is its header plus the payload
  unchanged and can be built once and re-sent (RFC 6455 wants an unpredictable key, but a
  server only XORs with it and cannot tell);
- resolves ``first_text`` with the first text frame (the server's hello) and hands every
  later one's payload (bytes) to ``on_text``;
- answers the server's heartbeat pings so idle connections stay open.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable
from typing import Any

OP_TEXT = 0x1
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

_ZERO_MASK = b"\x00\x00\x00\x00"


def client_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One final, masked (zero key) client frame carrying ``payload``."""
    length = len(payload)
    first = 0x80 | opcode
    if length < 126:
        header = struct.pack("!BB", first, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, length)
    return header + _ZERO_MASK + payload


def upgrade_request(host: str, port: int, path: str, forwarded_for: str | None = None) -> bytes:
    """The HTTP/1.1 upgrade request; ``forwarded_for`` adds an ``X-Forwarded-For`` line, as
    the reverse proxy in front of the daemon does (the benchmark gives every connection an
    address of its own, as real visitors have)."""
    forwarded = f"X-Forwarded-For: {forwarded_for}\r\n" if forwarded_for else ""
    return (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        f"{forwarded}"
        "\r\n"
    ).encode()


class WSClient(asyncio.Protocol):
    """One client connection; ``opened`` resolves after the 101 response."""

    def __init__(self, request: bytes, on_text: Callable[[WSClient, bytes], None]) -> None:
        self.request = request
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.closed = False
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.first_text: asyncio.Future[bytes] = loop.create_future()
        for future in (self.opened, self.first_text):  # failures are read by whoever awaits
            future.add_done_callback(_retrieve)
        # Free for the scenario to use (the generator keeps per-connection state here).
        self.state: dict[str, object] = {}
        self.received_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before the upgrade"))
        if not self.first_text.done():
            self.first_text.set_exception(exc or ConnectionError("closed before the first frame"))
        if not self.lost.done():
            self.lost.set_result(None)

    def send(self, frame: bytes) -> None:
        """Write a frame built by :func:`client_frame`."""
        if self.transport is not None and not self.closed:
            self.transport.write(frame)

    def close(self) -> None:
        """Drop the TCP connection (the server sees it as a disconnect)."""
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(self.buffer[:12])
            del self.buffer[: end + 4]
            if not status.startswith(b"HTTP/1.1 101"):
                if not self.opened.done():
                    self.opened.set_exception(ConnectionError(f"upgrade refused: {status!r}"))
                self.close()
                return
            self.upgraded = True
            if self.opened.done():  # the opener gave up waiting (timeout): drop the connection
                self.close()
                return
            self.opened.set_result(None)
        self._frames()

    def _frames(self) -> None:
        buf = self.buffer
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            length = second & 0x7F
            head = 2
            if length == 126:
                if size - pos < 4:
                    break
                (length,) = struct.unpack_from("!H", buf, pos + 2)
                head = 4
            elif length == 127:
                if size - pos < 10:
                    break
                (length,) = struct.unpack_from("!Q", buf, pos + 2)
                head = 10
            if size - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            opcode = first & 0x0F
            if opcode == OP_TEXT:
                self.received_at = time.monotonic()
                if not self.first_text.done():
                    self.first_text.set_result(payload)
                    continue
                self.on_text(self, payload)
            elif opcode == OP_PING:
                self.send(client_frame(payload, OP_PONG))
            elif opcode == OP_CLOSE:
                self.close()
                break
        if pos:
            del buf[:pos]


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def open_client(
    host: str,
    port: int,
    path: str,
    on_text: Callable[[WSClient, bytes], None],
    forwarded_for: str | None = None,
) -> WSClient:
    """Connect and upgrade one client."""
    loop = asyncio.get_running_loop()
    request = upgrade_request(host, port, path, forwarded_for)
    transport, client = await loop.create_connection(lambda: WSClient(request, on_text), host, port)
    try:
        await client.opened
    except BaseException:  # refused, or the caller's timeout: do not leave it open
        transport.close()
        raise
    return client
