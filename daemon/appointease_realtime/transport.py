"""One client's output: frames built once, written straight to the socket while the client
keeps up, else queued (bounded) for one writer task; every close time-boxed, then aborted;
a close for a refused frame ends the connection in order (``Outbound.linger_after``).

Server frames are never masked (RFC 6455, 5.1), so a fan-out builds one frame's bytes and
writes the same bytes to every watcher's transport: no per-socket framing, no task step.
Only public aiohttp API is used: ``request.transport``, ``ws.closed``, ``ws.send_frame`` and
``ws.close``; the frame header is this module's own (a text frame, FIN set, no RSV bits). The
lingering close uses asyncio's public ``get_extra_info("socket")``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct

from aiohttp import WebSocketError, WSMsgType, web

log = logging.getLogger(__name__)

OUTBOUND_LIMIT = 256  # frames queued for one client before it counts as a slow consumer
DIRECT_WRITE_BUFFER_LIMIT = 64 * 1024  # past this many unsent bytes, frames wait in the queue
CLOSE_TIMEOUT_SECONDS = 2.0  # a close handshake longer than this is cut: the transport aborts
CLOSE_SLOW_CONSUMER = 1013  # "try again later": the client reconnects and resyncs
LINGER_SECONDS = 2.0  # after a refused frame, the peer's bytes are read and dropped this long
LINGER_BYTES = 8 * 1024 * 1024  # ... and no more than this many of them
_DISCARD_CHUNK = 64 * 1024

_FIN_TEXT = 0x80 | WSMsgType.TEXT
_SHORT = struct.Struct("!BB").pack
_MEDIUM = struct.Struct("!BBH").pack
_LONG = struct.Struct("!BBQ").pack


Wire = bytes  # one text frame, ready to go: header and payload, as written on the socket


def wire(text: str) -> Wire:
    """Encode ``text`` and frame it once (unmasked server text frame)."""
    return wire_bytes(text.encode())


def wire_bytes(payload: bytes) -> Wire:
    """Frame UTF-8 ``payload`` once (unmasked server text frame)."""
    size = len(payload)
    if size < 126:
        header = _SHORT(_FIN_TEXT, size)
    elif size < 65536:
        header = _MEDIUM(_FIN_TEXT, 126, size)
    else:
        header = _LONG(_FIN_TEXT, 127, size)
    return header + payload


def payload_of(item: Wire) -> bytes:
    """The payload of a frame :func:`wire_bytes` built (after a 2, 4 or 10 byte header)."""
    size = item[1]  # the mask bit is never set in a server frame
    return item[2 if size < 126 else 4 if size == 126 else 10 :]


_lingering: set[asyncio.Task[int]] = set()  # lingering closes, referenced while they run


async def linger(
    sock: socket.socket, seconds: float = LINGER_SECONDS, max_bytes: int = LINGER_BYTES
) -> int:
    """Close ``sock`` in order, the peer still sending: shut down writing (FIN, after what was
    written), then read and drop what the peer sends until it closes its side too, for at most
    ``seconds`` and ``max_bytes`` (into one scratch buffer: nothing is kept); then close it.
    Past either bound the peer gets what it would have got at once: a reset. Returns the
    number of bytes dropped."""
    loop = asyncio.get_running_loop()
    sink = bytearray(_DISCARD_CHUNK)
    dropped = 0
    try:
        sock.setblocking(False)
        sock.shutdown(socket.SHUT_WR)
        async with asyncio.timeout(seconds):
            while dropped < max_bytes:
                count = await loop.sock_recv_into(sock, sink)
                if not count:
                    break  # the peer has closed its side: an orderly end
                dropped += count
    except (TimeoutError, OSError):
        pass
    finally:
        sock.close()
    return dropped


async def linger_after_tls(sock: socket.socket, held: socket.socket) -> int:
    """:func:`linger` on ``held`` (a second handle on ``sock``) once asyncio has ended the TLS
    session on ``sock`` (its close_notify written after the close frame) and let go of it,
    within the same time bound."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LINGER_SECONDS
    # asyncio has no public event for "let go of the socket": its handle reads -1 then
    while sock.fileno() != -1 and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    return await linger(held, max(0.0, deadline - loop.time()), LINGER_BYTES)


class Outbound:
    """Writes one client's frames in order; overflow closes the socket, never blocks the hub.

    While the client keeps up (nothing queued, the transport's buffer small) a frame is one
    ``transport.write``. The queue and its writer task exist only once a client has fallen
    behind: an idle connection carries neither (they are most of its memory otherwise).
    """

    __slots__ = (
        "backlog",
        "buffer_limit",
        "close_timeout",
        "closing",
        "direct",
        "limit",
        "lingering",
        "overflowed",
        "queue",
        "queued",
        "started",
        "transport",
        "writer",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.BaseTransport | None,
        limit: int = OUTBOUND_LIMIT,
        buffer_limit: int = DIRECT_WRITE_BUFFER_LIMIT,
        close_timeout: float = CLOSE_TIMEOUT_SECONDS,
    ) -> None:
        self.ws = ws
        self.transport = transport if isinstance(transport, asyncio.WriteTransport) else None
        self.limit = limit
        self.buffer_limit = buffer_limit
        self.close_timeout = close_timeout
        self.queue: asyncio.Queue[Wire] | None = None  # made when first needed
        self.backlog = 0  # frames queued and not yet written by the writer task
        self.overflowed = False
        self.direct = 0  # frames written at once (the fast path)
        self.queued = 0  # frames that waited for the writer task
        self.started = False
        self.writer: asyncio.Task[None] | None = None
        self.closing: asyncio.Task[None] | None = None
        self.lingering: asyncio.Task[int] | None = None  # the lingering close, once started

    def start(self) -> None:
        """Let queued frames be written (by a writer task, started when a frame first waits)."""
        self.started = True
        if self.backlog and self.writer is None:
            self.writer = asyncio.get_running_loop().create_task(self._drain())

    def put(self, item: Wire) -> None:
        """Send a frame now if nothing waits before it, else queue it; a full queue closes."""
        transport = self.transport
        if (
            not self.backlog
            and transport is not None
            and not self.overflowed
            and not transport.is_closing()
            and transport.get_write_buffer_size() < self.buffer_limit
            and not self.ws.closed
        ):
            transport.write(item)
            self.direct += 1
            return
        if self.overflowed or self.ws.closed:
            return
        queue = self.queue
        if queue is None:
            queue = self.queue = asyncio.Queue(self.limit)
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True
            log.warning("closing a slow consumer: %d frames queued", queue.qsize())
            self.queue = asyncio.Queue(1)  # drop what it could not read; it resyncs on reconnect
            if self.writer is not None:
                self.writer.cancel()
            self.closing = asyncio.get_running_loop().create_task(
                self.close(CLOSE_SLOW_CONSUMER, "slow consumer")
            )
            return
        self.backlog += 1
        self.queued += 1
        if self.started and self.writer is None:
            self.writer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        queue = self.queue
        assert queue is not None
        while True:
            item = await queue.get()
            try:
                await self.ws.send_frame(payload_of(item), WSMsgType.TEXT)
            except (ConnectionError, RuntimeError):
                return
            finally:
                self.backlog -= 1

    async def close(self, code: int, message: str) -> None:
        """Close with ``code``; a peer that does not complete the handshake in time (it stopped
        reading, or vanished) has its transport aborted, so the socket never lingers."""
        try:
            async with asyncio.timeout(self.close_timeout):
                await self.ws.close(code=code, message=message.encode())
        except (TimeoutError, ConnectionError, RuntimeError):
            pass
        else:
            if self.transport is None or self.transport.get_write_buffer_size() == 0:
                return
        self.abort()

    def abort(self) -> None:
        """Drop the connection at once, unsent bytes and all."""
        if self.transport is not None:
            self.transport.abort()

    def linger_after(self, error: object) -> None:
        """After aiohttp's close for a frame it refused (``error``, from an ``ERROR`` message:
        1002, 1007, 1009), end the connection in order: a lingering close (``linger``).

        aiohttp has sent its close frame and called ``transport.close()`` with the rest of the
        peer's frame unread; asyncio closes its socket on the next turn of the loop, and a socket
        closed with bytes unread (or receiving more) is answered by the kernel with a reset, which
        can destroy the close frame before the peer reads it: browsers then report 1006, not the
        code. A second handle on the socket, taken here (so call this in the same step as the
        ``ERROR`` message arrives), keeps the kernel's socket alive once asyncio lets go, and a
        task of its own lingers on it. Over TLS served by the daemon it lingers once asyncio has
        ended the TLS session (its close_notify follows the close frame) and let go.
        """
        transport = self.transport
        if not isinstance(error, WebSocketError) or transport is None or self.lingering is not None:
            return
        if transport.get_write_buffer_size():
            return  # a peer not reading its close frame gets no favour
        sock = transport.get_extra_info("socket")
        if sock is None:
            return
        try:
            held: socket.socket = sock.dup()
        except OSError:  # already closed: nothing left to save
            return
        tls = transport.get_extra_info("sslcontext") is not None
        work = linger_after_tls(sock, held) if tls else linger(held, LINGER_SECONDS, LINGER_BYTES)
        task = asyncio.get_running_loop().create_task(work)
        _lingering.add(task)
        task.add_done_callback(_lingering.discard)
        self.lingering = task

    async def lingered(self) -> None:
        """Wait for a lingering close to end. Shielded: a handler cancelled because asyncio has
        let go of the connection (``handler_cancellation``) leaves the linger running."""
        if self.lingering is not None:
            await asyncio.shield(self.lingering)

    async def stop(self) -> None:
        """Stop the writer task."""
        if self.writer is not None:
            self.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.writer
