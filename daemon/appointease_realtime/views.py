"""HTTP and WebSocket endpoints on the daemon's one port."""

from __future__ import annotations

import logging

from aiohttp import WSMsgType, web

from . import protocol as p
from .auth import identify, resume_token
from .commands import dispatch
from .connection import Connection, Outbound
from .keys import NODE
from .protocol import ProtocolError, Room
from .rooms import availability_frame
from .store import StoreUnavailable

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024
HEARTBEAT_SECONDS = 30.0  # a peer that misses a pong is dropped within 45 s

routes = web.RouteTableDef()


def _json_error(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    body = {"error": message, "code": code}
    if field:
        body["field"] = field
    return web.json_response(body, status=status)


@routes.get("/")
@routes.get("/ws")
async def websocket(request: web.Request) -> web.StreamResponse:
    """The booking block's socket; a plain GET gets a short description instead."""
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS, max_msg_size=MAX_FRAME_BYTES)
    if not ws.can_prepare(request).ok:
        return web.json_response(
            {
                "service": "appointease-realtime",
                "websocket": "ws://<host>:<port>/",
                "debug": "/debug",
            }
        )
    node = request.app[NODE]
    identity = identify(request)
    await ws.prepare(request)
    client_id, resumed = node.client_id_for(identity, request.query.get("resume"))
    outbound = Outbound(ws)
    conn = Connection(client_id, identity, outbound.put)
    conn.closer = ws.close
    outbound.start()
    node.connect(conn)
    conn.send(
        p.reply(
            "connection",
            mode="websocket",
            status="connected",
            clientId=client_id,
            isAnonymous=identity.is_anonymous,
            resumeToken=resume_token(node.resume_secret, client_id),
            resumed=resumed,
        )
    )
    try:
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await dispatch(node, conn, msg.data)
            elif msg.type == WSMsgType.BINARY:
                error = ProtocolError(
                    p.INVALID_JSON, "Binary frames are not accepted; send JSON text"
                )
                conn.send(p.error_frame(error))
    finally:
        await outbound.stop()
        await node.disconnect(conn)
    return ws


@routes.get("/debug")
async def debug(request: web.Request) -> web.Response:
    """Connected clients, selections, live locks and this node."""
    return web.json_response(await request.app[NODE].debug_info())


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready: the database answers; 503 with the reason otherwise."""
    node = request.app[NODE]
    try:
        await node.store.ping()
    except StoreUnavailable as exc:
        return web.json_response({"status": "unavailable", "reason": str(exc)}, status=503)
    return web.json_response({"status": "ready", "store": node.store.kind, "node": node.id})


@routes.get("/api/availability")
async def availability(request: web.Request) -> web.Response:
    """The ``availability_update`` document, for the block's polling fallback."""
    try:
        fields = p.validate(request.query, p.ROOM_SCHEMA)
    except ProtocolError as exc:
        return _json_error(400, exc.code, exc.message, exc.field)
    room = Room(fields["date"], fields["employeeId"])
    try:
        state = await request.app[NODE].store.room_state(room)
    except StoreUnavailable:
        return _json_error(503, p.UNAVAILABLE, "The booking database is unavailable; try again")
    return web.json_response(availability_frame(room, state.booked, state.locked))
