"""HTTP and WebSocket endpoints on the daemon's one port."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSMsgType, web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import hold_cookie
from . import protocol as p
from .auth import (
    TokenError,
    bearer_matches,
    client_ip,
    identify,
    is_loopback,
    origin_allowed,
    resume_token,
)
from .commands import handle
from .config import Settings
from .connection import Connection
from .keys import NODE, SETTINGS
from .limits import RateLimiter
from .node import Node
from .protocol import ProtocolError, Room
from .refusals import Refusal
from .rooms import availability_frame
from .store import StoreUnavailable
from .transport import Outbound

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024
HEARTBEAT_SECONDS = 30.0  # a peer that misses a pong is dropped within 45 s

TEXT, BINARY, ERROR = WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.ERROR
ENDED = frozenset((WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED))  # what ends `async for`

routes = web.RouteTableDef()


@web.middleware
async def origin_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Browsers may reach the daemon only from allowed origins; CORS headers for those."""
    settings = request.app[SETTINGS]
    origin = request.headers.get("Origin")
    if not origin_allowed(origin, settings):
        return Refusal(403, "forbidden_origin", "Origin not allowed").response()
    response = await handler(request)
    if origin is not None and not response.prepared:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response


@routes.get("/")
@routes.get("/ws")
@routes.get("/ws/{token}")
async def websocket(request: web.Request) -> web.StreamResponse:
    """The booking block's socket; a plain GET gets a short description instead."""
    # No permessage-deflate: frames are small JSON, and compressing each fan-out frame once
    # per watcher would cost far more CPU than the bytes it saves.
    ws = web.WebSocketResponse(
        heartbeat=HEARTBEAT_SECONDS, max_msg_size=MAX_FRAME_BYTES, compress=False
    )
    if not ws.can_prepare(request).ok:
        return web.json_response(
            {"service": "appointease-realtime", "websocket": "/ or /ws/<token>", "debug": "/debug"}
        )
    node, settings = request.app[NODE], request.app[SETTINGS]
    address = client_ip(request, settings)
    if not node.addresses.acquire(address):
        raise Refusal(429, "too_many_connections", "Too many connections from your address")
    try:
        return await _serve_socket(request, ws, node, settings, address)
    finally:
        node.addresses.release(address)


async def _serve_socket(
    request: web.Request,
    ws: web.WebSocketResponse,
    node: Node,
    settings: Settings,
    address: str,
) -> web.WebSocketResponse:
    try:
        identity = identify(request, settings)
    except TokenError as exc:
        await ws.prepare(request)
        await ws.close(code=exc.close_code, message=str(exc).encode()[:120])
        return ws
    client_id, resumed = node.client_id_for(identity, address, request.query.get("resume"))
    hold_cookie.attach(ws, request, settings, client_id)  # on the 101 response itself
    await ws.prepare(request)
    outbound = Outbound(ws, request.transport)
    conn = Connection(
        client_id,
        identity,
        outbound.put,
        closer=outbound.close,
        limiter=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
        count_out=node.metrics.sent,
        address=address,
    )
    outbound.start()
    await node.connect(conn, resumed)
    conn.send(
        p.reply(
            "connection",
            mode="websocket",
            status="connected",
            clientId=client_id,
            isAnonymous=identity.is_anonymous,
            role=identity.role,
            resumeToken=resume_token(node.resume_secret, client_id),
            resumed=resumed,
        )
    )
    try:
        # a task of its own: each frame then resumes two coroutines (the reader and
        # ws.receive), not nine (aiohttp's request handling and the middlewares sit above)
        await asyncio.get_running_loop().create_task(_read_frames(ws, node, conn, outbound))
    finally:
        await outbound.stop()
        await node.disconnect(conn)
        await outbound.lingered()  # the socket's slot of its address is free once it is gone
    return ws


async def _read_frames(
    ws: web.WebSocketResponse, node: Node, conn: Connection, outbound: Outbound
) -> None:
    """Handle the client's frames until its socket closes."""
    receive = ws.receive
    while True:
        msg = await receive()
        kind = msg.type
        if kind is TEXT or kind is BINARY:
            pending = handle(node, conn, msg.data)  # a ping is answered by now
            if pending is not None:
                await pending
        elif kind is ERROR:  # a refused frame (1002, 1007, 1009): aiohttp has closed
            outbound.linger_after(msg.data)  # now, before asyncio drops the socket
        elif kind in ENDED:
            return


@routes.get("/debug")
async def debug(request: web.Request) -> web.Response:
    """Clients, selections, live locks and this node.

    With DEBUG_TOKEN set it needs ``Authorization: Bearer <DEBUG_TOKEN>`` and shows e-mails;
    without, it answers only to loopback, with e-mails masked.
    """
    settings = request.app[SETTINGS]
    if settings.debug_token:
        if not bearer_matches(request, settings.debug_token):
            raise Refusal(401, "unauthorized", "Authorization: Bearer <DEBUG_TOKEN> required")
        unmasked = True
    elif is_loopback(client_ip(request, settings)):
        unmasked = False
    else:
        raise Refusal(403, "forbidden", "Set DEBUG_TOKEN to read /debug from elsewhere")
    return web.json_response(await request.app[NODE].debug_info(unmasked))


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition of this node's metrics: for loopback, or a bearer of
    METRICS_TOKEN or DEBUG_TOKEN (it tells how busy the site is)."""
    settings = request.app[SETTINGS]
    tokens = [t for t in (settings.metrics_token, settings.debug_token) if t]
    if not any(bearer_matches(request, t) for t in tokens) and not is_loopback(
        client_ip(request, settings)
    ):
        raise Refusal(
            403, "forbidden", "Metrics answer loopback, or Authorization: Bearer <METRICS_TOKEN>"
        )
    body = generate_latest(request.app[NODE].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready: the database answers and both tables are there (else 503 with the reason class,
    ``database`` or ``schema``); ``degraded`` while the node has lost its broker and serves
    only its own clients. The detail goes to the log, and to DEBUG_TOKEN holders only."""
    node = request.app[NODE]
    try:
        await node.store.ping()
        problems = await node.store.schema_problems()
    except StoreUnavailable as exc:
        return _not_ready(request, "database", str(exc))
    if problems:
        return _not_ready(request, "schema", "; ".join(problems))
    body = {"status": "ready", "store": node.store.kind, "node": node.id}
    problem = node.broker.status()
    if problem is not None:
        body.update(status="degraded", reason=problem)
    return web.json_response(body)


def _not_ready(request: web.Request, reason: str, detail: str) -> web.Response:
    """503 naming the reason class; the driver's words only for DEBUG_TOKEN holders."""
    log.warning("not ready (%s): %s", reason, detail)
    body = {"status": "unavailable", "reason": reason}
    token = request.app[SETTINGS].debug_token
    if token and bearer_matches(request, token):
        body["detail"] = detail
    return web.json_response(body, status=503)


@routes.get("/api/availability")
async def availability(request: web.Request) -> web.Response:
    """The ``availability_update`` document, for the block's polling fallback."""
    try:
        fields = p.validate(request.query, p.ROOM_SCHEMA)
    except ProtocolError as exc:
        raise Refusal(400, exc.code, exc.message, exc.field) from None
    room = Room(fields["date"], fields["employeeId"])
    try:
        state = await request.app[NODE].store.room_state(room)
    except StoreUnavailable:
        raise Refusal(
            503, p.UNAVAILABLE, "The booking database is unavailable; try again"
        ) from None
    return web.json_response(availability_frame(room, state.booked, state.locked))
