"""Transport against real aiohttp sockets: the fast path is the one taken, the queue keeps
order when forced, frames are framed right at every length, a close never lingers, and a
lingering close (after a refused frame) ends in order yet within its bounds."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from appointease_realtime import transport
from appointease_realtime.transport import (
    Outbound,
    linger,
    linger_after_tls,
    payload_of,
    wire,
    wire_bytes,
)

Serve = Callable[..., Awaitable[tuple[TestServer, list[Outbound]]]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """A real aiohttp server whose socket handler writes ``texts`` through an Outbound."""
    servers: list[TestServer] = []

    async def start(texts: list[str], **options: Any) -> tuple[TestServer, list[Outbound]]:
        made: list[Outbound] = []

        async def handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse(compress=False)
            await ws.prepare(request)
            outbound = Outbound(ws, request.transport, **options)
            made.append(outbound)
            outbound.start()
            for text in texts:
                outbound.put(wire(text))
            async for _ in ws:
                pass
            await outbound.stop()
            return ws

        app = web.Application()
        app.router.add_get("/", handler)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        return server, made

    yield start
    for server in servers:
        await server.close()


async def received(server: TestServer, count: int) -> list[str]:
    async with aiohttp.ClientSession() as session, session.ws_connect(server.make_url("/")) as ws:
        return [(await ws.receive(timeout=5)).data for _ in range(count)]


async def test_an_idle_outbound_has_no_queue_and_no_writer(serve: Serve) -> None:
    """A socket that keeps up costs no asyncio Queue and no parked writer task (memory)."""
    server, made = await serve(["hello"])
    async with aiohttp.ClientSession() as session, session.ws_connect(server.make_url("/")) as ws:
        assert (await ws.receive(timeout=5)).data == "hello"
        (outbound,) = made
        assert outbound.queue is None and outbound.writer is None and outbound.direct == 1


async def test_frames_go_straight_to_the_socket(serve: Serve) -> None:
    """If an aiohttp upgrade broke the direct write, this fails instead of slowing us down."""
    texts = [f'{{"n":{i}}}' for i in range(50)]
    server, made = await serve(texts)
    assert await received(server, 50) == texts
    (outbound,) = made
    assert outbound.direct == 50 and outbound.queued == 0


async def test_the_queue_keeps_order_when_the_fast_path_is_closed(serve: Serve) -> None:
    texts = [f'{{"n":{i}}}' for i in range(50)]
    server, made = await serve(texts, buffer_limit=0)  # the transport never "keeps up"
    assert await received(server, 50) == texts
    (outbound,) = made
    assert outbound.direct == 0 and outbound.queued == 50


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
async def test_every_length_is_framed_right(serve: Serve, size: int) -> None:
    text = "x" * size
    server, _ = await serve([text, "end"])
    assert await received(server, 2) == [text, "end"]


def test_one_frame_is_built_once_and_unmasked() -> None:
    item = wire("hi")
    assert item == b"\x81\x02hi" and payload_of(item) == b"hi"


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_a_payload_is_read_back_after_each_header_size(size: int) -> None:
    payload = b"y" * size
    assert payload_of(wire_bytes(payload)) == payload


async def test_a_slow_consumer_is_cut_off_within_the_close_time_box() -> None:
    """A raw TCP peer finishes the handshake and then never reads: the queue overflows, the
    1013 close cannot complete, and the transport is aborted within the time box instead of
    waiting for the peer forever (the socket's handler ends, so the hub forgets it)."""
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[float] = loop.create_future()
    made: list[Outbound] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        outbound = Outbound(ws, request.transport, close_timeout=0.5)
        made.append(outbound)
        began = loop.time()
        try:
            for _ in range(20000):  # fill every buffer between us and the peer
                outbound.put(wire("y" * 1000))
            async for _ in ws:
                pass
        finally:
            ended.set_result(loop.time() - began)
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    server = TestServer(app)
    await server.start_server()
    peer = socket.socket()
    try:
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        peer.connect(("127.0.0.1", server.port))
        key = base64.b64encode(os.urandom(16)).decode()
        peer.sendall(
            (
                f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        took = await asyncio.wait_for(ended, 10)
        (outbound,) = made
        assert outbound.overflowed and outbound.queued == 256
        assert took < 2.0, f"the handler lingered {took:.1f}s"
    finally:
        peer.close()
        await server.close()


async def test_a_lingering_close_sends_fin_drops_what_comes_and_ends_with_the_peer() -> None:
    """The peer reads EOF at once (FIN: our side is done), may still send (it is read and
    dropped), and when it closes too the linger ends, long before its time box."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    ours.sendall(b"close frame")
    lingering = loop.create_task(linger(ours, seconds=30))
    assert await loop.sock_recv(theirs, 100) == b"close frame"
    assert await loop.sock_recv(theirs, 100) == b""  # FIN after what was written
    await loop.sock_sendall(theirs, b"x" * 300_000)  # the rest of its frame, then its close
    theirs.close()
    dropped = await asyncio.wait_for(lingering, 5)
    assert dropped == 300_000
    assert ours.fileno() == -1  # closed


async def test_a_lingering_close_is_cut_off_in_time() -> None:
    """A peer that neither closes nor stops sending keeps the socket for ``seconds`` only."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    began = loop.time()
    lingering = loop.create_task(linger(ours, seconds=0.3))
    await loop.sock_sendall(theirs, b"x" * 1000)
    await asyncio.wait_for(lingering, 5)
    assert 0.25 < loop.time() - began < 2.0
    assert ours.fileno() == -1
    theirs.close()


async def test_over_tls_the_linger_waits_for_asyncio_to_let_go_first() -> None:
    """``linger_after_tls`` leaves the socket to asyncio while it still has it (ending the TLS
    session), then lingers on the second handle: FIN, drop, end with the peer."""
    loop = asyncio.get_running_loop()
    asyncio_own, theirs = socket.socketpair()
    theirs.setblocking(False)
    lingering = loop.create_task(linger_after_tls(asyncio_own, asyncio_own.dup()))
    await asyncio.sleep(0.1)
    assert not lingering.done()
    asyncio_own.sendall(b"close frame, close_notify")  # asyncio's last words
    asyncio_own.close()  # asyncio lets go
    assert await loop.sock_recv(theirs, 100) == b"close frame, close_notify"
    assert await loop.sock_recv(theirs, 100) == b""  # then the linger's FIN
    await loop.sock_sendall(theirs, b"x" * 1000)
    theirs.close()
    assert await asyncio.wait_for(lingering, 5) == 1000


async def test_over_tls_the_linger_keeps_its_time_bound_if_asyncio_holds_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transport, "LINGER_SECONDS", 0.3)
    loop = asyncio.get_running_loop()
    asyncio_own, theirs = socket.socketpair()
    held = asyncio_own.dup()
    began = loop.time()
    await asyncio.wait_for(linger_after_tls(asyncio_own, held), 5)
    assert 0.25 < loop.time() - began < 2.0
    assert held.fileno() == -1 and asyncio_own.fileno() != -1  # ours closed, asyncio's kept
    asyncio_own.close()
    theirs.close()


async def test_a_lingering_close_drops_no_more_than_its_byte_bound() -> None:
    """A peer sending as fast as it can is cut off after ``max_bytes``, whatever the time."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    lingering = loop.create_task(linger(ours, seconds=30, max_bytes=200_000))

    async def flood() -> None:
        with contextlib.suppress(OSError):
            while True:
                await loop.sock_sendall(theirs, b"x" * 65536)

    flooding = loop.create_task(flood())
    dropped = await asyncio.wait_for(lingering, 5)
    assert 200_000 <= dropped < 200_000 + 65536
    assert ours.fileno() == -1
    await asyncio.wait_for(flooding, 5)  # it meets the closed socket
    theirs.close()
